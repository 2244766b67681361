"""kspec's benchmark: every figure of issue 8, each a ratio measured side by side.

    python benchmarks/run.py                 the full run (about 15 minutes on 2 cores)
    python benchmarks/run.py --quick         every figure with tiny sizes and one round (a smoke test)
    python benchmarks/run.py --json out.json --markdown table.md
    python benchmarks/run.py --only 1,3      some figures

Each figure alternates its two sides over several rounds and reports the
median ratio; see common.py. Where a target is missed, the run profiles it
(cProfile, or tracemalloc for memory) and prints what the profile showed.
Exits 0 when every figure was measured (met or missed), 1 when one crashed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]  # benchmarks, kspec, seed_models
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from common import PYTHON, QUIET_ENV, ROOT, Report, Row, format_table, machine  # noqa: E402


@dataclass
class Settings:
    """Sizes and repetitions of a run."""

    validate_rounds: int = 7
    seed_rounds: int = 7
    layer_sizes: list[int] = field(default_factory=lambda: [100, 1000, 5000])
    layer_rounds: int = 5  # validate at each size
    layer_build_rounds: int = 3  # build at each size: a 5,000-layer build takes about 25 s
    train_samples: dict[str, int] = field(default_factory=lambda: {"multi_io": 1024, "shared_lstm": 256})
    train_epochs: int = 4  # the first is left out
    train_rounds: int = 7
    memory_mb: int = 1024
    memory_rounds: int = 3
    memory_batch_size: int = 256
    memory_epochs: int = 4  # the first is left out


QUICK = Settings(validate_rounds=1, seed_rounds=1, layer_sizes=[10, 20, 40], layer_rounds=1,
                 layer_build_rounds=1, train_samples={"multi_io": 64, "shared_lstm": 32}, train_epochs=2,
                 train_rounds=1, memory_mb=50, memory_rounds=1, memory_epochs=2)


def figure_1(report: Report, settings: Settings, folder: Path, profile: bool) -> None:
    import validation

    validation.run(report, settings.validate_rounds, profile)


def figure_2(report: Report, settings: Settings, folder: Path, profile: bool) -> None:
    import building
    from kspec.build import import_keras

    import_keras()
    building.run_seeds(report, settings.seed_rounds, profile)
    building.run_generated(report, folder, settings.layer_sizes, settings.layer_rounds,
                           settings.layer_build_rounds, profile)


def figure_3(report: Report, settings: Settings, folder: Path, profile: bool) -> None:
    import throughput
    from kspec.build import import_keras

    import_keras()
    throughput.run(report, folder, settings.train_samples, settings.train_epochs, settings.train_rounds, profile)


def figure_4(report: Report, settings: Settings, folder: Path, profile: bool) -> None:
    import memory

    memory.run(report, folder, settings.memory_mb, settings.memory_rounds, settings.memory_batch_size,
               settings.memory_epochs, profile)


def gpu_reason() -> str | None:
    """Why figure 5 cannot run here, or None when it can (a GPU and JAX are present)."""
    if importlib.util.find_spec("jax") is None:
        return "JAX is not installed (pip install 'jax[cuda12]')"
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode:
        return "no GPU on this machine"
    return None


def figure_5(report: Report, settings: Settings, folder: Path, profile: bool, quick: bool) -> None:
    """Figure 3 again with KERAS_BACKEND=jax on a GPU, in a child run of this script."""
    reason = gpu_reason()
    if reason is not None:
        report.add(Row("5. training throughput with KERAS_BACKEND=jax on a GPU", None, ">= 0.98", None,
                       f"not measured: {reason}"))
        return
    result = folder / "jax.json"
    command = [PYTHON, str(HERE / "run.py"), "--only", "3", "--json", str(result)] + (["--quick"] * quick)
    subprocess.run(command, cwd=ROOT, env={**QUIET_ENV, "KERAS_BACKEND": "jax"}, check=True)
    for item in json.loads(result.read_text())["rows"]:
        item.pop("status")
        report.add(Row(**{**item, "figure": item["figure"].replace("3.", "5. [jax, GPU]", 1)}))


FIGURES: dict[str, Callable[..., None]] = {"1": figure_1, "2": figure_2, "3": figure_3, "4": figure_4}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: checks that it runs")
    parser.add_argument("--only", default="1,2,3,4,5", help="comma-separated figures to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--memory-mb", type=int, help="size of figure 4's data file (default 1024, quick 50)")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction,
                        help="profile missed targets (default: yes, but not with --quick, whose misses are noise)")
    args = parser.parse_args()
    profile = (not args.quick) if args.profile is None else args.profile
    settings = QUICK if args.quick else Settings()
    if args.memory_mb:
        settings.memory_mb = args.memory_mb
    chosen = [item.strip() for item in args.only.split(",")]

    report = Report()
    crashed = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kspec-bench-") as scratch:
        for number in chosen:
            print(f"figure {number}", flush=True)
            folder = Path(scratch) / f"figure-{number}"
            folder.mkdir()
            figure_started = time.perf_counter()
            try:
                if number == "5":
                    figure_5(report, settings, folder, profile, args.quick)
                else:
                    FIGURES[number](report, settings, folder, profile)
            except Exception as exc:  # report it, finish the other figures, exit 1
                traceback.print_exc()
                crashed.append(number)
                report.add(Row(f"{number}. (crashed)", None, "-", None, f"{type(exc).__name__}: {exc}"[:300]))
            print(f"figure {number}: {time.perf_counter() - figure_started:.0f} s", flush=True)
    seconds = time.perf_counter() - started

    report.details["settings"] = {"quick": args.quick, "seconds": round(seconds, 1), **vars(settings)}
    print(f"\nkspec benchmark{' (quick)' if args.quick else ''}: {seconds:.0f} s\n")
    print(format_table(report.rows))
    for name, text in report.profiles.items():
        print(f"\nprofile: {name}\n{text}")
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=1, default=str) + "\n", encoding="utf-8")
    if args.markdown:
        info = machine()
        args.markdown.write_text(
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Python {info['python']}, "
            f"TensorFlow {info.get('tensorflow')}, Keras {info.get('keras')}, NumPy {info.get('numpy')}; "
            f"commit {info['commit']}\n\n{format_table(report.rows, markdown=True)}\n", encoding="utf-8")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
