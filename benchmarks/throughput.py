"""Figure 3: training throughput of `kspec.train.train` against `model.fit` by hand.

Same data (an .npz in a temporary folder; the hand-written side holds it in
memory), same batch size, same compile settings, the model written by hand in
tests/seed_models.py. Only steady-state epochs count: the first, which traces
the training step, is left out on both sides.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from building import hand_model
from common import ROOT, Report, alternate, median_ratio, profile, row
from epochs import epoch_timer, steady_seconds, timed_fit

STEMS = ("multi_io", "shared_lstm")
BATCH_SIZE = 32  # kspec's default


def write_data(path: Path, stem: str, samples: int, seed: int = 0) -> None:
    """Inputs that fit the spec, and random targets in [0, 1) of each output's shape."""
    import keras
    from kspec.data import synthetic_inputs
    from kspec.spec import read_spec

    spec, _ = read_spec(ROOT / "specs" / f"{stem}.yaml")
    rng = np.random.default_rng(seed)
    arrays = synthetic_inputs(spec, samples, rng)
    model = hand_model(stem)
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    for name, tensor in zip(spec.output_names, outputs):
        arrays[name] = rng.random((samples,) + tuple(tensor.shape[1:]), dtype="float32")
    keras.backend.clear_session()
    np.savez(path, **arrays)


@contextmanager
def determinism_restored() -> Iterator[None]:
    """kspec train turns on TensorFlow's op determinism for the whole process; turn it off after.

    Otherwise the hand-written side, run after it, would pay for it too.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        yield
        return
    from tensorflow.python.framework import config

    before = config.is_op_determinism_enabled()
    try:
        yield
    finally:
        if not before:
            config.disable_op_determinism()


def kspec_side(stem: str, data: Path, epochs: int, folder: Path) -> Any:
    """A side running kspec's library `train` on the .npz; returns steady seconds per epoch."""
    import keras
    from kspec.spec import read_spec, spec_text
    from kspec.train import train

    path = ROOT / "specs" / f"{stem}.yaml"
    spec, _ = read_spec(path)
    text = spec_text(path)
    runs = itertools.count()

    def side() -> float:
        keras.backend.clear_session()
        out = folder / f"{stem}-run-{next(runs)}"
        timer = epoch_timer()
        try:
            with timed_fit(timer), determinism_restored():
                train(spec, text, data=data, epochs=epochs, batch_size=BATCH_SIZE, out=out, seed=0,
                      verbose=0, progress=lambda _: None)
        finally:
            shutil.rmtree(out, ignore_errors=True)  # checkpoints fill the disk otherwise
        return steady_seconds(timer.seconds)
    return side


def hand_side(stem: str, data: Path, epochs: int) -> Any:
    """A side running `model.fit` on the hand-written model, the arrays in memory."""
    import keras
    from kspec.spec import read_spec

    spec, _ = read_spec(ROOT / "specs" / f"{stem}.yaml")
    with np.load(data) as archive:
        arrays = {key: archive[key] for key in archive.files}
    x = [arrays[inp.name] for inp in spec.inputs]
    y = [arrays[name] for name in spec.output_names]

    def side() -> float:
        keras.backend.clear_session()
        model = hand_model(stem)
        timer = epoch_timer()
        model.fit(x if len(x) > 1 else x[0], y if len(y) > 1 else y[0], batch_size=BATCH_SIZE,
                  epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
        return steady_seconds(timer.seconds)
    return side


def run(report: Report, folder: Path, samples: dict[str, int], epochs: int, rounds: int,
        profile_misses: bool) -> None:
    details = {}
    for stem in STEMS:
        data = folder / f"{stem}.npz"
        write_data(data, stem, samples[stem])
        sides = {"kspec": kspec_side(stem, data, epochs, folder), "hand": hand_side(stem, data, epochs)}
        seconds = alternate(sides, rounds)
        n = samples[stem]
        item = row(f"3. training throughput {stem}: kspec train / model.fit (samples/s)",
                   median_ratio(seconds["hand"], seconds["kspec"]), ">=", 0.98,
                   f"{n / statistics.median(seconds['kspec']):.0f} vs {n / statistics.median(seconds['hand']):.0f} "
                   f"samples/s; {n} samples, batch {BATCH_SIZE}, {epochs - 1} steady epoch(s) per run")
        report.add(item)
        details[stem] = seconds
        if profile_misses and item.met is False:
            report.profiles[f"3. kspec train {stem}"] = profile(sides["kspec"])
    report.details["throughput_epoch_seconds"] = details
