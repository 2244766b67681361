"""Figure 2: compile overhead, and how validate and build scale with the number of layers.

Seed specs: `kspec.build.build` on an already-parsed spec against the same
model written by hand (tests/seed_models.py) and compiled with the same
settings, in one process. Generated specs: validate and build time per layer
at every size, and kspec against the same loop written in Keras.
"""

from __future__ import annotations

import gc
import statistics
import sys
import traceback
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import generated
from common import PYTHON, ROOT, Report, alternate, median_ratio, profile, row, run_seconds, timed

# The seed specs' compile settings, written as a user would pass them to model.compile.
HAND_COMPILE: dict[str, dict[str, Any]] = {
    "mlp": {"optimizer": "rmsprop", "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
    "multi_io": {"optimizer": "rmsprop",
                 "loss": {"main_output": "binary_crossentropy", "aux_output": "binary_crossentropy"},
                 "loss_weights": {"main_output": 1.0, "aux_output": 0.2}},
    "shared_lstm": {"optimizer": "rmsprop", "loss": "binary_crossentropy", "metrics": ["accuracy"]},
    "shared_nodes": {"optimizer": "rmsprop", "loss": "mse"},
    "shared_conv": {"optimizer": "rmsprop", "loss": "mse"},
    "inception": {"optimizer": "rmsprop", "loss": "mse"},
    "residual": {"optimizer": "rmsprop", "loss": "mse"},
    "shared_vision": {"optimizer": "rmsprop", "loss": "binary_crossentropy", "metrics": ["accuracy"]},
    "vqa": {"optimizer": "rmsprop", "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
}


def hand_model(stem: str) -> Any:
    """The seed's hand-written model, compiled as its spec says."""
    from seed_models import SEED_MODELS

    model = SEED_MODELS[stem][0]()
    model.compile(**HAND_COMPILE[stem])
    return model


def fresh(function: Callable[[], Any]) -> Callable[[], float]:
    """A side that starts from an empty Keras session (not timed) and times `function`."""
    def side() -> float:
        import keras

        keras.backend.clear_session()
        return timed(function)
    return side


# ------------------------------------------------------------------ seeds
def run_seeds(report: Report, rounds: int, profile_misses: bool) -> None:
    from kspec.build import build
    from kspec.spec import read_spec
    from seed_models import SEED_MODELS

    stems = sorted(SEED_MODELS)
    specs = {stem: read_spec(ROOT / "specs" / f"{stem}.yaml")[0] for stem in stems}
    samples: dict[str, dict[str, list[float]]] = {}
    for stem in stems:
        sides = {"kspec": fresh(lambda: build(specs[stem])), "hand": fresh(lambda: hand_model(stem))}
        alternate(sides, 1)  # warm-up: the first build of a model pays Keras's one-time costs
        samples[stem] = alternate(sides, rounds)
    report.details["seed_build"] = samples

    totals = {side: [sum(samples[stem][side][r] for stem in stems) for r in range(rounds)]
              for side in ("kspec", "hand")}
    report.add(row(f"2. build all {len(stems)} seed specs: kspec / hand-written Keras",
                   median_ratio(totals["kspec"], totals["hand"]), "<=", 1.05,
                   f"{statistics.median(totals['kspec']):.2f} s vs {statistics.median(totals['hand']):.2f} s"))
    missed = []
    for stem in stems:
        ratio = median_ratio(samples[stem]["kspec"], samples[stem]["hand"])
        item = row(f"2. build {stem}: kspec / hand", ratio, "<=", 1.05,
                   f"hand {1000 * statistics.median(samples[stem]['hand']):.0f} ms")
        report.add(item)
        if item.met is False:
            missed.append(stem)
    if profile_misses and missed:
        report.profiles["2. seed builds (" + ", ".join(missed) + ")"] = profile(
            lambda: [build(specs[stem]) for stem in missed for _ in range(3)])


# -------------------------------------------------------------- generated
def describe_failure(exc: BaseException) -> str:
    """One line on why a build failed: the exception (and what caused it) and its deepest repeated frame."""
    causes = []
    current: BaseException | None = exc
    while current is not None:
        causes.append(current)
        current = current.__cause__ or current.__context__
    root = causes[-1]
    frames = traceback.extract_tb(root.__traceback__)
    counted = Counter((Path(f.filename).as_posix().split("site-packages/")[-1], f.lineno, f.name) for f in frames)
    (file, line, name), count = counted.most_common(1)[0] if counted else (("?", 0, "?"), 0)
    chain = " <- ".join(f"{type(e).__name__}: {' '.join(str(e).split())[:120]}" for e in causes)
    return f"{chain}; {len(frames)} frames deep, {count} of them {file}:{line} {name}"


def try_once(function: Callable[[], Any]) -> tuple[float | None, str]:
    """Seconds of one call, or None and why it failed (e.g. Python's recursion limit)."""
    import keras

    keras.backend.clear_session()
    try:
        return timed(function), "ok"
    except Exception as exc:  # RecursionError, and kspec's SpecError wrapping it
        return None, describe_failure(exc)


def validate_without_gc(validate: Callable[[Path], Any], paths: dict[int, Path], small: int, big: int,
                        calls: dict[str, int], rounds: int) -> str:
    """The per-layer ratio again with Python's cyclic garbage collector off (cProfile does not show GC)."""
    def side(path: Path) -> Callable[[], float]:
        def run() -> float:
            gc.disable()
            try:
                return timed(lambda: validate(path))
            finally:
                gc.enable()
        return run

    samples = alternate({str(n): side(paths[n]) for n in (small, big)}, rounds)
    return (f"with the garbage collector off: per-layer cost {big:,} / {small:,} layers "
            f"{per_layer_ratio(samples, str(small), str(big), calls):.2f}, "
            f"{statistics.median(samples[str(big)]):.2f} s at {big:,} layers")


def yaml_composing(path: Path) -> str:
    """How long PyYAML alone takes to compose the file, in Python and with libyaml (when installed)."""
    import yaml

    text = path.read_text(encoding="utf-8")
    loaders = {"SafeLoader (pure Python)": yaml.SafeLoader}
    if getattr(yaml, "CSafeLoader", None) is not None:
        loaders["CSafeLoader (libyaml)"] = yaml.CSafeLoader
    times = {name: statistics.median(timed(lambda: yaml.compose(text, Loader=loader)) for _ in range(3))
             for name, loader in loaders.items()}
    return "YAML composing alone: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items())


def per_layer_ratio(samples: dict[str, list[float]], small: str, big: str, calls: dict[str, int]) -> float:
    """Per-layer cost at the big size over that at the small size, per round, median."""
    return median_ratio([t / calls[big] for t in samples[big]], [t / calls[small] for t in samples[small]])


@contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Let Python recurse deeper for a while: Keras walks a model's graph one frame per layer."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def per_layer_ms(samples: dict[str, list[float]], calls: dict[str, int]) -> str:
    return ", ".join(f"{int(n):,}: {1000 * statistics.median(samples[n]) / calls[n]:.3f}" for n in samples)


def validate_scaling(report: Report, shape: str, paths: dict[int, Path], calls: dict[str, int], rounds: int,
                     profile_misses: bool) -> dict[str, Any]:
    """In process: does validate's cost per layer stay flat? As a command: is the largest under 1 s?"""
    from kspec.spec import validate

    *_, small, big = paths
    samples = alternate({str(n): (lambda p=path: timed(lambda: validate(p))) for n, path in paths.items()}, rounds)
    linear = row(f"2. validate {shape}: per-layer cost {big:,} / {small:,} layers",
                 per_layer_ratio(samples, str(small), str(big), calls), "<=", 1.2,
                 "ms per layer: " + per_layer_ms(samples, calls))
    # as a user runs it: the whole command, interpreter start included
    command = alternate({"cli": lambda: run_seconds([PYTHON, "-m", "kspec", "validate", str(paths[big])])}, rounds)
    absolute = row(f"2. kspec validate, {shape} of {big:,} layers (command wall time)",
                   statistics.median(command["cli"]), "<", 1.0, "absolute time, as the issue asks", unit="s")
    report.add(linear, absolute)
    if profile_misses and (linear.met is False or absolute.met is False):
        report.profiles[f"2. validate {shape} {big}"] = "\n".join([
            profile(lambda: validate(paths[big])),
            validate_without_gc(validate, paths, small, big, calls, rounds),
            yaml_composing(paths[big])])
    return {"in_process": samples, "command": command["cli"]}


def build_scaling(report: Report, shape: str, paths: dict[int, Path], calls: dict[str, int], rounds: int,
                  profile_misses: bool) -> dict[str, Any]:
    """Build time per layer at every size, kspec against the same loop written in Keras."""
    from kspec.build import build
    from kspec.spec import read_spec

    *_, small, big = paths
    specs = {n: read_spec(path)[0] for n, path in paths.items()}
    # First at Python's default recursion limit, once each: what happens there is a finding too.
    default_limit = {}
    for n in specs:
        default_limit[f"kspec {n}"] = try_once(lambda: build(specs[n]))[1]
        default_limit[f"hand {n}"] = try_once(lambda: generated.hand_written(shape, n))[1]
    failures = [key for key, why in default_limit.items() if why != "ok"]
    for key in failures:
        print(f"    at the default recursion limit, {shape} {key}: {default_limit[key]}")

    deeper = 10 * big + 10_000
    sides: dict[str, Callable[[], float]] = {}
    for n in specs:
        sides[f"kspec {n}"] = fresh(lambda n=n: build(specs[n]))
        sides[f"hand {n}"] = fresh(lambda n=n: generated.hand_written(shape, n))
    with recursion_limit(deeper):
        samples = alternate(sides, rounds)
    ours = {str(n): samples[f"kspec {n}"] for n in specs}
    theirs = {str(n): samples[f"hand {n}"] for n in specs}
    note = (f"ms per layer: {per_layer_ms(ours, calls)}; hand-written Keras's own ratio "
            f"{per_layer_ratio(theirs, str(small), str(big), calls):.2f}")
    if failures:
        note += (f"; measured with sys.setrecursionlimit({deeper}): at the default limit "
                 f"({sys.getrecursionlimit()}) {', '.join(failures)} fail")
    scaling = row(f"2. build {shape}: per-layer cost {big:,} / {small:,} layers",
                  per_layer_ratio(ours, str(small), str(big), calls), "<=", 1.2, note)
    overhead = row(f"2. build {shape} of {big:,} layers: kspec / hand-written Keras",
                   median_ratio(ours[str(big)], theirs[str(big)]), "<=", 1.05,
                   f"{statistics.median(ours[str(big)]):.1f} s vs {statistics.median(theirs[str(big)]):.1f} s")
    report.add(scaling, overhead)
    if profile_misses and (scaling.met is False or overhead.met is False):
        with recursion_limit(deeper):
            report.profiles[f"2. build {shape} {big}"] = profile(fresh(lambda: build(specs[big])))
    return {"build": samples, "default_recursion_limit": default_limit}


def run_generated(report: Report, folder: Path, sizes: list[int], rounds: int, build_rounds: int,
                  profile_misses: bool) -> None:
    details: dict[str, Any] = {}
    for shape in generated.SHAPES:
        paths = {n: generated.write_spec(folder, shape, n) for n in sizes}
        calls = {str(n): generated.layer_calls(shape, n) for n in sizes}
        details[shape] = {"layer_calls": calls,
                          "validate": validate_scaling(report, shape, paths, calls, rounds, profile_misses),
                          **build_scaling(report, shape, paths, calls, build_rounds, profile_misses)}
    report.details["generated"] = details
