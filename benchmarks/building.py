"""Figure 2: compile overhead, and how validate and build scale with the number of layers.

Seed specs: `kspec.build.build` on an already-parsed spec against the same
model written by hand (tests/seed_models.py) and compiled with the same
settings, in one process. Generated specs: validate and build time per layer
at every size, and kspec against the same loop written in Keras.
"""

from __future__ import annotations

import statistics
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable

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


def per_layer_ratio(samples: dict[str, list[float]], small: str, big: str, calls: dict[str, int]) -> float:
    """Per-layer cost at the big size over that at the small size, per round, median."""
    return median_ratio([t / calls[big] for t in samples[big]], [t / calls[small] for t in samples[small]])


def run_generated(report: Report, folder: Path, sizes: list[int], rounds: int, build_rounds: int,
                  profile_misses: bool) -> None:
    from kspec.build import build
    from kspec.spec import read_spec, validate

    small, big = sizes[-2], sizes[-1]
    details: dict[str, Any] = {}
    for shape in generated.SHAPES:
        paths = {n: generated.write_spec(folder, shape, n) for n in sizes}
        calls = {str(n): generated.layer_calls(shape, n) for n in sizes}
        # validate, in process: does the cost per layer stay flat?
        validated = alternate({str(n): (lambda p=paths[n]: timed(lambda: validate(p))) for n in sizes}, rounds)
        linear = row(f"2. validate {shape}: per-layer cost {big:,} / {small:,} layers",
                     per_layer_ratio(validated, str(small), str(big), calls), "<=", 1.2,
                     "ms per layer: " + ", ".join(f"{n:,}: {1000 * statistics.median(validated[str(n)]) / calls[str(n)]:.3f}"
                                                  for n in sizes))
        # validate as a user runs it: the whole command, interpreter start included
        cli = alternate({"cli": lambda: run_seconds([PYTHON, "-m", "kspec", "validate", str(paths[big])])}, rounds)
        absolute = row(f"2. kspec validate, {shape} of {big:,} layers (command wall time)",
                       statistics.median(cli["cli"]), "<", 1.0, "absolute time, as the issue asks", unit="s")
        report.add(linear, absolute)
        if profile_misses and (linear.met is False or absolute.met is False):
            report.profiles[f"2. validate {shape} {big}"] = profile(lambda: validate(paths[big]))

        specs = {n: read_spec(paths[n])[0] for n in sizes}
        # Keras walks the graph recursively (one frame per layer): see what the default limit allows.
        default_limit = {}
        for n in sizes:
            default_limit[f"kspec {n}"] = try_once(lambda: build(specs[n]))[1]
            default_limit[f"hand {n}"] = try_once(lambda: generated.hand_written(shape, n))[1]
        failures = {key: why for key, why in default_limit.items() if why != "ok"}
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 10 * big + 10_000))
        try:
            sides: dict[str, Callable[[], float]] = {}
            for n in sizes:
                sides[f"kspec {n}"] = fresh(lambda n=n: build(specs[n]))
                sides[f"hand {n}"] = fresh(lambda n=n: generated.hand_written(shape, n))
            built = alternate(sides, build_rounds)
        finally:
            sys.setrecursionlimit(limit)
        kspec_times = {str(n): built[f"kspec {n}"] for n in sizes}
        hand_times = {str(n): built[f"hand {n}"] for n in sizes}
        note = ("ms per layer: " + ", ".join(f"{n:,}: {1000 * statistics.median(kspec_times[str(n)]) / calls[str(n)]:.2f}"
                                             for n in sizes)
                + f"; hand-written Keras's own ratio {per_layer_ratio(hand_times, str(small), str(big), calls):.2f}")
        if failures:
            note += (f"; measured with sys.setrecursionlimit({10 * big + 10_000}): at the default limit "
                     f"({limit}) {', '.join(failures)} fail")
        scaling = row(f"2. build {shape}: per-layer cost {big:,} / {small:,} layers",
                      per_layer_ratio(kspec_times, str(small), str(big), calls), "<=", 1.2, note)
        overhead = row(f"2. build {shape} of {big:,} layers: kspec / hand-written Keras",
                       median_ratio(built[f"kspec {big}"], built[f"hand {big}"]), "<=", 1.05,
                       f"{statistics.median(built[f'kspec {big}']):.1f} s vs "
                       f"{statistics.median(built[f'hand {big}']):.1f} s")
        report.add(scaling, overhead)
        for key, why in failures.items():
            print(f"    at the default recursion limit, {shape} {key}: {why}")
        if profile_misses and (scaling.met is False or overhead.met is False):
            sys.setrecursionlimit(max(limit, 10 * big + 10_000))
            try:
                report.profiles[f"2. build {shape} {big}"] = profile(fresh(lambda: build(specs[big])))
            finally:
                sys.setrecursionlimit(limit)
        details[shape] = {"validate": validated, "validate_cli": cli, "build": built,
                          "default_recursion_limit": default_limit, "calls": calls}
    report.details["generated"] = details
