"""kspec check: every spec in a folder, in one process, with JUnit and JSON results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from conftest import SPECS

from kspec import check
from kspec.cli import main

BROKEN = "inputs: {x: [4]}\nedges:\n  y: {Dense: {unit: 2}}\noutputs: [y]\nloss: mse\n"


def _folder(tmp_path):
    folder = tmp_path / "specs"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(SPECS / "mlp.yaml", folder / "mlp.yaml")
    shutil.copy(SPECS / "shared_vision.yaml", folder / "nested" / "shared_vision.yaml")
    (folder / "broken.yaml").write_text(BROKEN)
    (folder / "notes.txt").write_text("not a spec")
    return folder


def test_broken_spec_fails_alone_and_others_still_run(tmp_path):
    folder = _folder(tmp_path)
    junit = tmp_path / "results.xml"
    result = CliRunner().invoke(main, ["check", str(folder), "--junit", str(junit)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["spec", "status", "params", "time", "note"]
    assert lines[1].split()[:2] == [str(folder / "broken.yaml"), "FAILED"]
    assert lines[2] == f"    {folder / 'broken.yaml'}:3:15: error: unknown argument 'unit' for Dense; did you mean 'units'?"
    assert [line.split()[:3] for line in lines if " ok " in line] == [
        [str(folder / "mlp.yaml"), "ok", "55,050"], [str(folder / "nested" / "shared_vision.yaml"), "ok", "53,057"]]
    assert lines[-1] == "3 spec(s): 2 passed, 1 failed"
    # Progress on stderr, a line as each spec starts and one as it ends.
    specs = [folder / "broken.yaml", folder / "mlp.yaml", folder / "nested" / "shared_vision.yaml"]
    assert result.stderr.splitlines() == [line for spec, status in zip(specs, ["FAILED", "ok", "ok"])
                                          for line in (f"checking {spec} ...", f"{status}  {spec}")]

    suite = ET.parse(junit).getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures")) == ("testsuite", "3", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases[str(folder / "broken.yaml")].find("failure")
    assert failure.get("message") == (f"{folder / 'broken.yaml'}:3:15: error: unknown argument 'unit' for Dense; "
                                      "did you mean 'units'?")
    assert cases[str(folder / "mlp.yaml")].find("failure") is None


def test_all_passing_exits_0_with_json(tmp_path):
    result = CliRunner().invoke(main, ["check", str(SPECS / "mlp.yaml"), str(SPECS / "residual.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(r["spec"], r["status"], r["params"]) for r in report] == [
        (str(SPECS / "mlp.yaml"), "passed", 55_050), (str(SPECS / "residual.yaml"), "passed", 84)]
    assert report[0]["note"].startswith("loss ")


def test_globs_and_missing_paths(tmp_path):
    folder = _folder(tmp_path)
    result = CliRunner().invoke(main, ["check", str(folder / "m*.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["spec"] for r in json.loads(result.stdout)] == [str(folder / "mlp.yaml")]
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'nothing'}: error: no such file or folder\n  hint: check the path\n"


def test_overrides_apply_to_every_spec(tmp_path):
    result = CliRunner().invoke(main, ["check", str(SPECS / "mlp.yaml"), "--json", "--set", "edges.hidden.units=8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["params"] == 784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10


def test_an_embedding_inside_a_sub_model_gets_ids_it_can_take(tmp_path):
    # input_dim 3 in a sequential sub-model: synthetic ids of 3 or more would fail in Keras's gather.
    spec = tmp_path / "ids.yaml"
    spec.write_text("inputs: {ids: {shape: [5], dtype: int32}}\n"
                    "models:\n  enc:\n    sequential:\n"
                    "      - Embedding: {input_dim: 3, output_dim: 4}\n      - GlobalAveragePooling1D: {}\n"
                    "edges:\n  h: {layer: enc, in: ids}\n  y: {Dense: {units: 1}}\noutputs: [y]\nloss: mse\n")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 spec(s): 1 passed, 0 failed"


def test_a_loss_that_is_not_finite_is_reported_at_the_loss(tmp_path):
    spec = tmp_path / "nan.yaml"
    spec.write_text("inputs: {x: {shape: [2], dtype: int32}}\nedges:\n  h: {Add: {}, in: [x, x]}\n"
                    "  y: {Dense: {units: 1}}\noutputs: [y]\noptimizer: adafactor\nloss: categorical_crossentropy\n")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 1, result.output
    assert f"    {spec}:7:7: error: training gave a loss of nan" in result.stdout.splitlines()


def test_a_spec_whose_process_dies_is_reported(monkeypatch):
    if not check._can_fork():
        pytest.skip("Keras already runs in this process, so specs are checked in it, not in forked children")
    monkeypatch.setattr(check, "check_spec", lambda *args: os.kill(os.getpid(), signal.SIGKILL))
    result = check.check_isolated(SPECS / "mlp.yaml")
    assert not result.passed
    assert [d.format() for d in result.diagnostics] == [
        f"{SPECS / 'mlp.yaml'}: error: the process checking this spec ended without a result (killed by signal 9)\n"
        "  hint: a process killed by signal 9 most often ran out of memory; the system log (dmesg) says"]
