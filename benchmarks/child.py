"""One job in a fresh process, for figure 4: its peak resident memory and epoch times.

    python benchmarks/child.py RESULT.json kspec ARGS...             a kspec command, in process
    python benchmarks/child.py RESULT.json fit STEM DATA BATCH EPOCHS  model.fit on the arrays in memory

Peak memory is the process's own high-water mark (VmHWM), so
each job runs alone in its process. With BENCH_TRACEMALLOC=1 the job also
records which lines had allocated the most memory when Keras was first handed
the data (the first fit/predict call): a memory profile, slow, used only to
explain a missed target. With BENCH_PROFILE=1 the job runs under cProfile, its
data-reading threads included, and the result holds what the profile showed.
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from common import profile  # noqa: E402
from epochs import epoch_timer, timed_fit  # noqa: E402

TRACE = os.environ.get("BENCH_TRACEMALLOC") == "1"
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
_snapshot: dict[str, Any] = {}


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # kB
    return 0


def rss_bytes() -> int:
    """Resident memory now."""
    return _status("VmRSS")


def peak_rss_bytes() -> int:
    """This process's resident high-water mark.

    Not getrusage's ru_maxrss: Linux carries that across exec, so a child
    started by a big parent would report the parent's peak.
    """
    return _status("VmHWM")


def top_allocations(limit: int = 6) -> list[str]:
    """The biggest live allocations, each charged to its innermost kspec line (else its own line)."""
    totals: dict[str, int] = {}
    for stat in tracemalloc.take_snapshot().statistics("traceback"):
        frames = list(stat.traceback)  # oldest call first
        ours = [f for f in frames if f"{os.sep}kspec{os.sep}" in f.filename]
        frame = (ours or frames)[-1]
        where = f"{frame.filename.replace(str(ROOT) + os.sep, '').split('site-packages' + os.sep)[-1]}:{frame.lineno}"
        totals[where] = totals.get(where, 0) + stat.size
    biggest = sorted(totals.items(), key=lambda item: -item[1])[:limit]
    return [f"{size / 2**20:8.1f} MB  {where}" for where, size in biggest]


def snapshot_on_first_data_call() -> None:
    """Wrap Keras's entry points so the first one to receive data records the allocations."""
    import keras

    for name in ("fit", "predict", "predict_on_batch", "evaluate"):
        original = getattr(keras.Model, name)

        def wrapper(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if not _snapshot:
                _snapshot["traced_now_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
                _snapshot["rss_now_mb"] = rss_bytes() / 2**20
                _snapshot["top"] = top_allocations()
            return _original(self, *args, **kwargs)

        setattr(keras.Model, name, wrapper)


def run_kspec(args: list[str], timer: Any) -> int:
    from kspec.cli import main

    try:
        with timed_fit(timer):
            main(args, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def run_fit(stem: str, data: str, batch_size: int, epochs: int, timer: Any) -> int:
    import numpy as np
    from building import hand_model
    from kspec.spec import read_spec

    spec, _ = read_spec(ROOT / "specs" / f"{stem}.yaml")
    with np.load(data) as archive:  # held in memory, as a user of model.fit would
        arrays = {key: archive[key] for key in archive.files}
    x = [arrays[inp.name] for inp in spec.inputs]
    y = [arrays[name] for name in spec.output_names]
    model = hand_model(stem)
    model.fit(x if len(x) > 1 else x[0], y if len(y) > 1 else y[0], batch_size=batch_size, epochs=epochs,
              shuffle=True, verbose=0, callbacks=[timer])
    return 0


def main() -> None:
    result_path, job, *args = sys.argv[1:]
    from kspec.build import import_keras

    import_keras()  # the command would import it anyway; measured here as the starting point
    start = rss_bytes()
    if TRACE:
        tracemalloc.start(30)
        snapshot_on_first_data_call()
    timer = epoch_timer()

    def work() -> int:
        if job == "kspec":
            return run_kspec(args, timer)
        stem, data, batch_size, epochs = args
        return run_fit(stem, data, int(batch_size), int(epochs), timer)

    codes: list[int] = []
    text = profile(lambda: codes.append(work()), threads=True) if PROFILE else None
    code = codes[0] if PROFILE else work()
    result = {"exit_code": code, "peak_rss_bytes": peak_rss_bytes(), "rss_after_import_bytes": start,
              "epoch_seconds": timer.seconds, "profile": text}
    if TRACE:
        result["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        result["at_first_data_call"] = _snapshot
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
