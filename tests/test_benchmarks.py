"""The benchmark (benchmarks/run.py) keeps running: its quick mode reports every figure.

Nothing here checks a measured ratio against its target: timings on shared
machines are noise, and the benchmark exists to report them, not to fail.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402  (benchmarks/common.py)

# A phrase from each figure's rows, and the figures in all.
EXPECTED = {
    "1": ["kspec validate (", "kspec --help: heavy modules", "kspec validate: heavy modules"],
    "2": ["build all 9 seed specs", "validate chain: per-layer", "validate graph: per-layer",
          "kspec validate, chain of", "build chain: per-layer", "build graph of"],
    "3": ["training throughput multi_io", "training throughput shared_lstm"],
    "4": ["kspec train on", "kspec predict on", "kspec inspect on", "model.fit, arrays in memory",
          "kspec train --no-stream"],
    "5": ["KERAS_BACKEND=jax"],
}


@pytest.mark.slow
def test_quick_mode_measures_and_reports_every_figure(tmp_path):
    results, table = tmp_path / "bench.json", tmp_path / "bench.md"
    done = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--json", str(results),
                           "--markdown", str(table)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    report = json.loads(results.read_text(encoding="utf-8"))
    rows = report["rows"]
    assert {row["figure"].split(".")[0] for row in rows} == set(EXPECTED)
    names = "\n".join(row["figure"] for row in rows)
    for phrases in EXPECTED.values():
        for phrase in phrases:
            assert phrase in names
    for row in rows:
        assert row["figure"] in done.stdout  # the printed table has every row
        assert row["target"]
        if row["status"] == "skipped":  # only the GPU figure may be skipped, and it says why
            assert row["figure"].startswith("5.") and row["note"].startswith("not measured")
        else:
            assert row["status"] in ("met", "MISSED")
            assert isinstance(row["value"], float) and math.isfinite(row["value"])
    assert report["machine"]["cpu"] and report["machine"]["keras"]
    assert "| figure |" in table.read_text(encoding="utf-8")


def test_profile_names_kspec_functions():
    from kspec.spec import validate

    text = common.profile(lambda: validate(ROOT / "specs" / "multi_io.yaml"))
    assert "own time in kspec/ code" in text
    assert "kspec/spec/__init__.py" in text and "(validate)" in text


def test_child_reports_peak_memory_and_allocations_at_the_first_data_call(tmp_path):
    result = tmp_path / "child.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BENCH_TRACEMALLOC": "1"}
    subprocess.run([sys.executable, "benchmarks/child.py", str(result), "kspec", "inspect", "specs/mlp.yaml",
                    "--layer", "predictions", "--synthetic", "8"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    outcome = json.loads(result.read_text(encoding="utf-8"))
    assert outcome["exit_code"] == 0
    assert outcome["peak_rss_bytes"] >= outcome["rss_after_import_bytes"] > 0
    assert outcome["at_first_data_call"]["top"]  # lines with their megabytes


def test_ratios_are_medians_of_paired_rounds():
    assert common.median_ratio([2, 3, 10], [1, 1, 2]) == 3
    order: list[str] = []
    samples = common.alternate({"a": lambda: order.append("a") or 1.0, "b": lambda: order.append("b") or 2.0}, 3)
    assert order == ["a", "b", "b", "a", "a", "b"]  # the order flips every round
    assert samples == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
