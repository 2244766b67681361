"""Figure 4: data larger than memory: peak memory of kspec train, predict and inspect.

Each command runs in its own process (benchmarks/child.py) on the shipped
mlp spec, once on a tiny .npz and once on a large one; the difference in peak
resident memory is what the data costs. The issue's bound, under 1.5 GB for
4 GB of data, becomes a bound on that growth per byte of data:
growth / data <= (1.5 GB - peak on the tiny file) / 4 GB.

Throughput: `kspec train` on the large file against `model.fit` on the same
arrays held in memory (hand-written model, same batch size), steady-state
epochs, alternating in rounds.
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


def run_child(folder: Path, job: list[str], trace: bool = False) -> dict[str, Any]:
    """Run one job of child.py; its JSON result."""
    result = folder / "child-result.json"
    env = {**QUIET_ENV, "BENCH_TRACEMALLOC": "1" if trace else "0"}
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
    """The kspec command lines of this figure, each with a fresh output path."""

    def __init__(self, folder: Path, batch_size: int, epochs: int):
        self.folder, self.batch_size, self.epochs = folder, str(batch_size), str(epochs)
        self.count = 0

    def fresh(self, name: str) -> str:
        self.count += 1
        return str(self.folder / f"{name}-{self.count}")

    def train(self, data: Path) -> list[str]:
        return ["kspec", "train", SPEC, "--data", str(data), "--epochs", self.epochs, "--batch-size",
                self.batch_size, "--seed", "0", "-q", "--out", self.fresh("run")]

    def predict(self, data: Path, weights: Path) -> list[str]:
        return ["kspec", "predict", SPEC, "--weights", str(weights), "--data", str(data), "-o",
                self.fresh("predictions") + ".npz", "--batch-size", self.batch_size]

    def inspect(self, data: Path) -> list[str]:
        return ["kspec", "inspect", SPEC, "--layer", "predictions", "--data", str(data), "--batch-size",
                self.batch_size]

    def fit(self, data: Path) -> list[str]:
        return ["fit", STEM, str(data), self.batch_size, self.epochs]


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
    train_command = commands.train(tiny)
    baseline = {"train": run_child(folder, train_command)}
    weights = Path(train_command[train_command.index("--out") + 1]) / "model.keras"
    baseline["predict"] = run_child(folder, commands.predict(tiny, weights))
    baseline["inspect"] = run_child(folder, commands.inspect(tiny))

    # The large file: training alternates with model.fit on the same arrays in memory.
    trained, fitted = [], []
    for index in range(rounds):
        pair = [("kspec", commands.train(large)), ("fit", commands.fit(large))]
        for name, job in (pair if index % 2 == 0 else pair[::-1]):
            (trained if name == "kspec" else fitted).append(run_child(folder, job))
    measured = {"train": trained[0], "predict": run_child(folder, commands.predict(large, weights)),
                "inspect": run_child(folder, commands.inspect(large))}

    missed = []
    for command, outcome in measured.items():
        peaks = [r["peak_rss_bytes"] for r in (trained if command == "train" else [outcome])]
        peak = statistics.median(peaks)
        floor = baseline[command]["peak_rss_bytes"]
        item = row(f"4. kspec {command} on {size / MB:,.0f} MB npz: peak memory growth / data size",
                   (peak - floor) / size, "<=", round((BOUND_BYTES - floor) / AT_BYTES, 3),
                   f"peak {peak / MB:,.0f} MB, {floor / MB:,.0f} MB on the tiny file; target = "
                   f"(1.5 GB - {floor / MB:,.0f} MB) / 4 GB")
        report.add(item)
        if item.met is False:
            missed.append(command)
    steady_kspec = [steady_seconds(r["epoch_seconds"]) for r in trained]
    steady_fit = [steady_seconds(r["epoch_seconds"]) for r in fitted]
    report.add(row(f"4. kspec train on {size / MB:,.0f} MB npz / model.fit, data in memory (samples/s)",
                   median_ratio(steady_fit, steady_kspec), ">=", 0.9,
                   f"{rows / statistics.median(steady_kspec):,.0f} vs {rows / statistics.median(steady_fit):,.0f} "
                   f"samples/s, batch {batch_size}; model.fit's peak "
                   f"{statistics.median(r['peak_rss_bytes'] for r in fitted) / MB:,.0f} MB"))
    report.details["memory"] = {"data_bytes": size, "rows": rows, "baseline": baseline, "measured": measured,
                                "train_rounds": trained, "fit_rounds": fitted}

    if profile_misses and missed:
        # Where the memory is when Keras first gets the data: tracemalloc, charged to kspec's lines.
        jobs = {"train": commands.train(large), "predict": commands.predict(large, weights),
                "inspect": commands.inspect(large)}
        lines = []
        for command in missed:
            traced = run_child(folder, jobs[command], trace=True)
            seen = traced.get("at_first_data_call", {})
            lines.append(f"kspec {command}: peak RSS {traced['peak_rss_bytes'] / MB:,.0f} MB; when Keras first got "
                         f"the data: RSS {seen.get('rss_now_mb', 0):,.0f} MB, NumPy/Python allocations "
                         f"{seen.get('traced_now_mb', 0):,.0f} MB (peak {traced['traced_peak_mb']:,.0f} MB), "
                         "biggest by line:")
            lines += ["  " + line for line in seen.get("top", [])]
        report.profiles["4. memory"] = "\n".join(lines)
    for path in (tiny, large):
        os.unlink(path)
