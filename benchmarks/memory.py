"""Figure 4: data larger than memory: peak memory of kspec train, predict and inspect.

Each command runs in its own process (benchmarks/child.py) on the shipped
mlp spec, once on a tiny .npz and once on a large one; the difference in peak
resident memory is what the data costs. The issue's bound, under 1.5 GB for
4 GB of data, becomes a bound on that growth per byte of data:
growth / data <= (1.5 GB - peak on the tiny file) / 4 GB.

Throughput: `kspec train --stream` on the large file against the same data
held in memory, two ways: kspec's own in-memory path (`--no-stream`) and
`model.fit` on the arrays loaded by hand (hand-written model); same batch
size, steady-state epochs, alternating in rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from common import PYTHON, QUIET_ENV, ROOT, Report, median_ratio, row
from epochs import steady_seconds

SPEC = "specs/mlp.yaml"
STEM = "mlp"
FEATURES, CLASSES = 784, 10  # mlp's input and output widths
ROW_BYTES = 4 * (FEATURES + CLASSES)
TINY_ROWS = 2048
BOUND_BYTES, AT_BYTES = 1.5 * 2**30, 4 * 2**30  # the issue: under 1.5 GB for 4 GB of data
MB = 2**20


def write_npz(path: Path, rows: int, seed: int = 0, chunk: int = 16_384) -> int:
    """An uncompressed .npz of `rows` mlp samples, written in chunks (this process never holds it all)."""
    rng = np.random.default_rng(seed)
    members = {"inputs": (FEATURES,), "predictions": (CLASSES,)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, shape in members.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype("float32")), "fortran_order": False,
                          "shape": (rows,) + shape}
                np.lib.format.write_array_header_1_0(handle, header)
                for start in range(0, rows, chunk):
                    n = min(chunk, rows - start)
                    if name == "inputs":
                        block = rng.random((n, FEATURES), dtype="float32")
                    else:
                        block = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, n)]
                    handle.write(block.tobytes())
    return path.stat().st_size


def run_child(folder: Path, job: list[str], trace: bool = False, profile: bool = False) -> dict[str, Any]:
    """Run one job of child.py; its JSON result."""
    result = folder / "child-result.json"
    env = {**QUIET_ENV, "BENCH_TRACEMALLOC": "1" if trace else "0", "BENCH_PROFILE": "1" if profile else "0"}
    done = subprocess.run([PYTHON, str(ROOT / "benchmarks" / "child.py"), str(result), *job], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0 or not result.exists():
        raise RuntimeError(f"child job {job} failed ({done.returncode}): {done.stderr[-2000:]}")
    outcome = json.loads(result.read_text(encoding="utf-8"))
    result.unlink()
    if outcome["exit_code"] != 0:
        raise RuntimeError(f"kspec exited {outcome['exit_code']} in {job}: {done.stderr[-2000:]}")
    return outcome


class Commands:
    """The child jobs of this figure, each kspec command with a fresh output path."""

    def __init__(self, folder: Path, batch_size: int, epochs: int):
        self.folder, self.batch_size, self.epochs = folder, str(batch_size), str(epochs)
        self.count = 0

    def fresh(self, name: str) -> str:
        self.count += 1
        return str(self.folder / f"{name}-{self.count}")

    def train(self, data: Path, stream: bool = True) -> list[str]:
        return ["kspec", "train", SPEC, "--data", str(data), "--stream" if stream else "--no-stream", "--epochs",
                self.epochs, "--batch-size", self.batch_size, "--seed", "0", "-q", "--out", self.fresh("run")]

    def predict(self, data: Path, weights: Path) -> list[str]:
        return ["kspec", "predict", SPEC, "--weights", str(weights), "--data", str(data), "-o",
                self.fresh("predictions") + ".npz", "--batch-size", self.batch_size]

    def inspect(self, data: Path) -> list[str]:
        return ["kspec", "inspect", SPEC, "--layer", "predictions", "--data", str(data), "--batch-size",
                self.batch_size]

    def fit(self, data: Path) -> list[str]:
        return ["fit", STEM, str(data), self.batch_size, self.epochs]


def _peak(outcomes: list[dict[str, Any]]) -> float:
    return statistics.median(outcome["peak_rss_bytes"] for outcome in outcomes)


def _steady(outcomes: list[dict[str, Any]]) -> list[float]:
    return [steady_seconds(outcome["epoch_seconds"]) for outcome in outcomes]


def run(report: Report, folder: Path, megabytes: int, rounds: int, batch_size: int, epochs: int,
        profile_misses: bool) -> None:
    tiny, large = folder / "tiny.npz", folder / "large.npz"
    write_npz(tiny, TINY_ROWS)
    rows = max(TINY_ROWS, megabytes * MB // ROW_BYTES)
    size = write_npz(large, rows)
    commands = Commands(folder, batch_size, epochs)
    print(f"    data: {large.name} {size / MB:,.0f} MB ({rows:,} rows of {SPEC}), tiny file {TINY_ROWS:,} rows",
          flush=True)

    # The tiny file: each command's memory without data to speak of; the trained weights feed predict.
    train_tiny = commands.train(tiny)
    floor = {"train": run_child(folder, train_tiny)}
    weights = Path(train_tiny[train_tiny.index("--out") + 1]) / "model.keras"
    floor["predict"] = run_child(folder, commands.predict(tiny, weights))
    floor["inspect"] = run_child(folder, commands.inspect(tiny))

    # The large file, read from the file (--stream), against the same data in memory: kspec's own
    # in-memory path (--no-stream) and model.fit on arrays loaded by hand. Rounds flip the order.
    jobs = {"stream": lambda: commands.train(large), "memory": lambda: commands.train(large, stream=False),
            "fit": lambda: commands.fit(large)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in jobs}
    for index in range(rounds):
        for name in (list(jobs) if index % 2 == 0 else list(jobs)[::-1]):
            runs[name].append(run_child(folder, jobs[name]()))
    measured = {"train": runs["stream"], "predict": [run_child(folder, commands.predict(large, weights))],
                "inspect": [run_child(folder, commands.inspect(large))]}

    memory_missed = []
    for command, outcomes in measured.items():
        peak, base = _peak(outcomes), floor[command]["peak_rss_bytes"]
        note = f"peak {peak / MB:,.0f} MB, {base / MB:,.0f} MB on the tiny file"
        if command == "train":
            note += (f" (--no-stream: {_peak(runs['memory']) / MB:,.0f} MB, "
                     f"model.fit on arrays in memory: {_peak(runs['fit']) / MB:,.0f} MB)")
        item = row(f"4. kspec {command} on {size / MB:,.0f} MB npz: peak memory growth / data size",
                   (peak - base) / size, "<=", round((BOUND_BYTES - base) / AT_BYTES, 3),
                   note + f"; target = (1.5 GB - {base / MB:,.0f} MB) / 4 GB")
        report.add(item)
        if item.met is False:
            memory_missed.append(command)

    streamed = _steady(runs["stream"])
    speed_missed = False
    for name, label in (("fit", "model.fit, arrays in memory"), ("memory", "kspec train --no-stream")):
        baseline = _steady(runs[name])
        item = row(f"4. kspec train --stream on {size / MB:,.0f} MB npz / {label} (samples/s)",
                   median_ratio(baseline, streamed), ">=", 0.9,
                   f"{rows / statistics.median(streamed):,.0f} vs {rows / statistics.median(baseline):,.0f} "
                   f"samples/s, batch {batch_size}")
        report.add(item)
        speed_missed = speed_missed or item.met is False
    report.details["memory"] = {"data_bytes": size, "rows": rows, "floor": floor, "runs": runs,
                                "predict": measured["predict"], "inspect": measured["inspect"]}

    if profile_misses and memory_missed:
        report.profiles["4. memory"] = memory_profile(folder, memory_missed, {
            "train": commands.train(large), "predict": commands.predict(large, weights),
            "inspect": commands.inspect(large)})
    if profile_misses and speed_missed:
        outcome = run_child(folder, commands.train(large), profile=True)
        report.profiles["4. kspec train --stream"] = outcome["profile"]
    for path in (tiny, large):
        os.unlink(path)


def memory_profile(folder: Path, commands: list[str], jobs: dict[str, list[str]]) -> str:
    """Where the memory is when Keras first gets the data: tracemalloc, charged to kspec's lines."""
    lines = []
    for command in commands:
        traced = run_child(folder, jobs[command], trace=True)
        seen = traced.get("at_first_data_call", {})
        lines.append(f"kspec {command}: peak RSS {traced['peak_rss_bytes'] / MB:,.0f} MB; when Keras first got "
                     f"the data: RSS {seen.get('rss_now_mb', 0):,.0f} MB, NumPy/Python allocations "
                     f"{seen.get('traced_now_mb', 0):,.0f} MB (peak {traced['traced_peak_mb']:,.0f} MB), "
                     "biggest by line:")
        lines += ["  " + line for line in seen.get("top", [])]
    return "\n".join(lines)
