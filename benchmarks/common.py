"""What every figure shares: result rows, side-by-side timing, profiles, the machine.

Absolute times on a shared machine are noise, so a figure is a ratio of two
sides measured in the same run: each round runs both sides, one right after
the other (the order flips every round, so a slow drift hurts neither side),
and the figure is the median of the per-round ratios.
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# TensorFlow's C++ start-up lines would drown the table; every child process is told to be quiet.
QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


@dataclass
class Row:
    """One line of the results table."""

    figure: str
    value: float | None  # the measured ratio (or seconds, where the issue asks for an absolute figure)
    target: str  # e.g. "<= 0.05"
    met: bool | None  # None: not measured (skipped, or the measurement failed)
    note: str = ""
    unit: str = "x"

    def status(self) -> str:
        return "skipped" if self.met is None else ("met" if self.met else "MISSED")

    def shown_value(self) -> str:
        if self.value is None:
            return "-"
        return f"{self.value:.3g} {self.unit}".strip()


def check(value: float | None, sense: str, limit: float) -> bool | None:
    """Whether a measured value meets its target (`sense` is '<=', '<' or '>=')."""
    if value is None:
        return None
    return {"<=": value <= limit, "<": value < limit, ">=": value >= limit}[sense]


def row(figure: str, value: float | None, sense: str, limit: float, note: str = "", unit: str = "x") -> Row:
    return Row(figure, value, f"{sense} {limit:g}{'' if unit in ('x', '') else ' ' + unit}",
               check(value, sense, limit), note, unit)


@dataclass
class Report:
    """Everything a run found: table rows, profiles of missed targets, the machine."""

    rows: list[Row] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)  # figure -> what the profile showed
    details: dict[str, Any] = field(default_factory=dict)  # raw samples, for the JSON file

    def add(self, *rows: Row) -> None:
        for item in rows:
            self.rows.append(item)
            print(f"  {item.figure}: {item.shown_value()} (target {item.target}: {item.status()})"
                  + (f" - {item.note}" if item.note else ""), flush=True)

    def to_json(self) -> dict[str, Any]:
        return {"machine": machine(), "rows": [asdict(r) | {"status": r.status()} for r in self.rows],
                "profiles": self.profiles, "details": self.details}


# ----------------------------------------------------------------- timing
def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every side once per round, flipping the order each round; each returns its seconds.

    A side times itself, so that it can leave its own set-up out of the figure.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for index in range(rounds):
        for name in (names if index % 2 == 0 else names[::-1]):
            gc.collect()  # a collection left over from the other side is not this side's cost
            samples[name].append(sides[name]())
    return samples


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of per-round ratios: rounds pair measurements made close together in time."""
    return statistics.median(a / b for a, b in zip(numerators, denominators))


def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def run_seconds(command: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall time of a child process; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env or QUIET_ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


# --------------------------------------------------------------- profiles
def profile(function: Callable[[], Any], focus: str = "kspec", top: int = 12, threads: bool = False) -> str:
    """cProfile `function`; return where the time went, with `focus`'s own functions first.

    Lists the focus package's functions by cumulative time, the whole run's
    functions by own time, and the share of the run spent in the package's
    own code (its functions' own time). With `threads`, threads started
    during the call (e.g. Keras's data workers) are profiled too and added in.
    """
    profilers = [cProfile.Profile()]

    def start_in_thread(*_: Any) -> None:  # the first event of each new thread
        sys.setprofile(None)
        profilers.append(cProfile.Profile())
        profilers[-1].enable()

    if threads:
        threading.setprofile(start_in_thread)
    profilers[0].enable()
    try:
        function()
    finally:
        profilers[0].disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(profilers[0])
    for extra in profilers[1:]:
        stats.add(extra)
    return _summary(stats, focus, top, len(profilers))


def _summary(stats: pstats.Stats, focus: str, top: int, threads: int) -> str:
    total = stats.total_tt  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]  # (file, line, name) -> (cc, nc, tt, ct, callers)
    marker = f"{os.sep}{focus}{os.sep}"

    def label(key: tuple[str, int, str]) -> str:
        file, line, name = key
        short = file.split("site-packages" + os.sep)[-1].replace(str(ROOT) + os.sep, "")
        return f"{short}:{line}({name})"

    own = [(key, value) for key, value in entries.items() if marker in key[0]]
    own_time = sum(value[2] for _, value in own)
    lines = [f"profiled total {total:.3f} s{f' over {threads} threads' if threads > 1 else ''}; own time in "
             f"{focus}/ code {own_time:.3f} s ({100 * own_time / total if total else 0:.1f}%)",
             f"{focus} functions by cumulative time:"]
    for key, value in sorted(own, key=lambda kv: -kv[1][3])[:top]:
        lines.append(f"  {value[3]:8.3f} s cum {value[2]:8.3f} s own {value[1]:>8} calls  {label(key)}")
    lines.append("all functions by own time:")
    for key, value in sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(f"  {value[2]:8.3f} s own {value[3]:8.3f} s cum {value[1]:>8} calls  {label(key)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    """The machine and versions the figures come from (without importing TensorFlow here)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = subprocess.run(
        [PYTHON, "-c", "import json, numpy, keras, tensorflow as tf, kspec; print(json.dumps({"
         "'tensorflow': tf.__version__, 'keras': keras.__version__, 'numpy': numpy.__version__, "
         "'kspec': kspec.__version__}))"],
        capture_output=True, text=True, env=QUIET_ENV, cwd=ROOT)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    memory = next((line.split()[1] for line in _read_lines("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(int(memory) / 2**20, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            **(json.loads(versions.stdout.strip().splitlines()[-1]) if versions.returncode == 0 else {}),
            "commit": commit.stdout.strip()}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    header = ["figure", "measured (median)", "target", "result"]
    body = [[r.figure, r.shown_value(), r.target, r.status()] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(str(cells[i])) for cells in [header] + body) for i in range(len(header))]
    out = io.StringIO()
    for cells in [header, ["-" * w for w in widths]] + body:
        out.write("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip() + "\n")
    return out.getvalue()
