"""Every keras.applications model round-trips through `kspec import` with equal outputs.

For each model function of keras.applications (found by walking the package,
so a model added by a new Keras is tested, not skipped): build it with
`weights=None` and a small input, save it as .keras, `kspec import` the file,
check that the spec validates with no errors, build the spec with the saved
model's weights (as `kspec predict --weights` does), and compare the outputs
of both models on the same random input.

The models run in worker processes, one per keras.applications module (the
ConvNeXts together, the EfficientNets together, ...), so that the memory of
the largest ones (ConvNeXtXLarge holds 350 million weights) is returned to
the system between groups. Run one group by hand with
`python tests/test_applications.py convnext`.
"""

from __future__ import annotations

import gc
import inspect
import json
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The smallest input each family accepts (weights=None lifts the 224 minimum
# of most); 32x32 elsewhere. Small inputs keep a round trip of the largest
# models to seconds.
INPUT_SHAPES = {
    "inception_v3": (75, 75, 3),
    "inception_resnet_v2": (75, 75, 3),
    "xception": (71, 71, 3),
}
DEFAULT_SHAPE = (32, 32, 3)
CLASSES = 10

# Models a round trip cannot do, with the reason. The test expects the
# importer to refuse each one with this text in its message, so a model that
# starts to work (or fails for another reason) is noticed.
_LAYER_SCALE = ("ConvNeXt scales each block by LayerScale, a layer class of keras.applications' convnext "
                "module holding a trained weight (gamma): a spec names keras.layers classes only, and no "
                "keras.layers class would load that weight from the saved model",
                "class 'keras.src.applications.convnext.LayerScale'")
CANNOT = {name: _LAYER_SCALE for name in
          ("ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge")}


def application_functions() -> dict[str, list[str]]:
    """Module name -> the model functions of keras.applications defined in it, every one listed."""
    import keras

    groups: dict[str, list[str]] = {}
    for name in sorted(dir(keras.applications)):
        function = getattr(keras.applications, name)
        if inspect.isfunction(function) and name[:1].isupper():
            groups.setdefault(function.__module__.rsplit(".", 1)[-1], []).append(name)
    return groups


# ------------------------------------------------------------------ worker
def round_trip(module_name: str, name: str, folder: Path) -> dict[str, Any]:
    """Import one application model and compare the rebuilt model's outputs with the original's."""
    import keras
    import numpy as np

    from kspec.build import load_trained
    from kspec.importer import import_file
    from kspec.spec import validate

    times: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now = time.perf_counter()
        times[phase] = round(now - clock[0], 1)
        clock[0] = now

    factory = getattr(keras.applications, name)
    shape = INPUT_SHAPES.get(module_name, DEFAULT_SHAPE)
    original = factory(weights=None, input_shape=shape, classes=CLASSES)
    if name in CANNOT:  # only the refusal is wanted: no file of its weights to write
        return _refusal(original)
    saved = folder / f"{name}.keras"
    original.save(saved)
    lap("build and save")
    spec_path = folder / f"{name}.yaml"
    spec_path.write_text(import_file(saved), encoding="utf-8")
    lap("import")
    spec, diagnostics = validate(spec_path)  # as `kspec validate` does
    errors = [d.format() for d in diagnostics if d.is_error]
    if errors or spec is None:
        return {"validate_errors": errors}
    lap("validate")
    rebuilt = load_trained(spec, saved).model
    lap("build from spec")
    batch = np.random.default_rng(0).uniform(0, 255, size=(2, *shape)).astype("float32")
    expected = np.asarray(original(batch, training=False))
    got = np.asarray(rebuilt(batch, training=False))
    lap("predict")
    result = {
        "validate_errors": errors,
        "same_outputs": bool(got.shape == expected.shape and np.allclose(got, expected, rtol=1e-5, atol=1e-6)),
        "max_difference": float(np.max(np.abs(got - expected))) if got.shape == expected.shape else None,
        "parameters": int(original.count_params()),
        "spec_lines": len(spec_path.read_text(encoding="utf-8").splitlines()),
    }
    del original, rebuilt
    keras.backend.clear_session()
    gc.collect()
    for path in (saved, spec_path):
        path.unlink()
    result["seconds"] = times
    return result


def _refusal(model: Any) -> dict[str, Any]:
    from kspec.importer import from_model

    try:
        from_model(model)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"imported": True}


def run_group(module_name: str) -> dict[str, Any]:
    """Round-trip every model of one module, each failure kept as its message."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in application_functions()[module_name]:
            try:
                results[name] = round_trip(module_name, name, Path(folder))
            except Exception as exc:  # reported by the test, per model
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return results


# ------------------------------------------------------------------ tests
@lru_cache(maxsize=None)
def group_results(module_name: str) -> dict[str, Any]:
    """One worker process per module; its JSON results by model name."""
    done = subprocess.run([sys.executable, __file__, module_name], capture_output=True, text=True,
                          cwd=ROOT, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1])


def _cases() -> list[Any]:
    return [pytest.param(module_name, name, id=name)
            for module_name, names in application_functions().items() for name in names]


@pytest.mark.slow
@pytest.mark.parametrize("module_name, name", _cases())
def test_application_round_trips(module_name, name):
    result = group_results(module_name)[name]
    print(json.dumps(result))  # its times, shown by pytest -rA
    if name in CANNOT:
        assert CANNOT[name][1] in result.get("error", ""), f"{name} imports now: remove it from CANNOT"
        return
    assert "error" not in result, result.get("error")
    assert result["validate_errors"] == [], "\n".join(result["validate_errors"])
    assert result["same_outputs"], result


if __name__ == "__main__":
    print(json.dumps(run_group(sys.argv[1])))
