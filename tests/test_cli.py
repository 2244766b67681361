"""The command line through click's CliRunner: exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

from kspec.cli import main

SEED_SPECS = sorted(str(path) for path in SPECS.glob("*.yaml"))


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args))

    return invoke


def test_validate_all_seed_specs(run):
    result = run("validate", *SEED_SPECS)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:-1] == [f"{path}: ok" for path in SEED_SPECS]
    count = len(SEED_SPECS)
    assert result.stdout.splitlines()[-1] == f"{count} spec(s): {count} valid, 0 invalid (0 error(s))"


def test_validate_reports_every_spec_and_exits_1(run, write_spec):
    bad = write_spec("inputs: {x: [4]}\nedges:\n  y: {Dense: {unit: 2}}\noutputs: [y]\n", "bad.yaml")
    result = run("validate", str(bad), SEED_SPECS[0])
    assert result.exit_code == 1
    assert f"{bad}:3:15: error: unknown argument 'unit' for Dense; did you mean 'units'?" in result.stderr
    assert f"{SEED_SPECS[0]}: ok" in result.stdout
    assert "Traceback" not in result.output


def test_validate_json(run, write_spec):
    bad = write_spec("inputs: {x: [4]}\nedges:\n  y: {Dense: {units: 2}, in: z}\noutputs: [y]\n")
    result = run("validate", "--json", str(bad))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    [diagnostic] = report["specs"][0]["diagnostics"]
    assert diagnostic == {
        "file": str(bad), "line": 3, "column": 30, "severity": "error",
        "message": "unknown tensor 'z' in edge 'y'",
        "hint": "tensors are the model's inputs and the names of edges above this one",
    }


def test_validate_warnings_do_not_fail(run, write_spec):
    spec = write_spec("inputs: {x: [4]}\nlayers:\n  unused: {Dense: {units: 3}}\n"
                      "edges:\n  y: {Dense: {units: 2}}\noutputs: [y]\n")
    result = run("validate", str(spec))
    assert result.exit_code == 0
    assert f"{spec}:3:3: warning: 'unused' is declared but never called" in result.stderr


def test_missing_file_is_a_located_error(run, tmp_path):
    missing = tmp_path / "nope.yaml"
    result = run("validate", str(missing))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{missing}: error: spec file not found"


def test_usage_errors_exit_2(run):
    assert run("validate").exit_code == 2
    assert run("build").exit_code == 2
    assert run("frobnicate").exit_code == 2
    result = run("build", SEED_SPECS[0], "-o", "model.h5")
    assert result.exit_code == 2
    assert "must end in .keras" in result.output


def test_build_prints_one_line_and_writes_keras_file(run, tmp_path):
    target = tmp_path / "multi_io.keras"
    result = run("build", str(SPECS / "multi_io.yaml"), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "multi_io: main_input (None, 100), aux_input (None, 5) -> "
        f"main_output (None, 1), aux_output (None, 1); 5,200,610 parameters; saved to {target}\n")
    loaded = keras.saving.load_model(target)
    assert loaded.name == "multi_io"
    assert loaded.count_params() == 5_200_610
    assert [layer.name for layer in loaded.layers][:3] == ["main_input", "embedded", "lstm_out"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi_io.keras"]  # no temporary left


def test_build_json(run):
    result = run("build", "--json", str(SPECS / "shared_conv.yaml"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "name": "shared_conv",
        "inputs": {"a": [None, 32, 32, 3], "b": [None, 64, 64, 3]},
        "outputs": {"conved_a": [None, 32, 32, 16], "conved_b": [None, 64, 64, 16]},
        "params": 448,
        "output": None,
    }


def test_build_error_is_located_and_has_no_traceback(run, write_spec, tmp_path):
    spec = write_spec("inputs:\n  a: [4]\n  b: [5]\nedges:\n  s: {Add: {}, in: [a, b]}\noutputs: [s]\n")
    target = tmp_path / "out.keras"
    result = run("build", str(spec), "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{spec}:5:3: error: Keras rejected the call of Add 's': Inputs have incompatible shapes. "
        "Received shapes (4,) and (5,)")
    assert "Traceback" not in result.output
    assert not target.exists()


def test_build_into_missing_folder(run, tmp_path):
    target = tmp_path / "no" / "such" / "m.keras"
    result = run("build", str(SPECS / "mlp.yaml"), "-o", str(target))
    assert result.exit_code == 2
    assert f"'{target}': its folder '{target.parent}' does not exist; create it first" in result.stderr


def test_summary_shows_spec_names_and_nested_layers(run):
    result = run("summary", "--expand", str(SPECS / "shared_vision.yaml"))
    assert result.exit_code == 0, result.output
    for name in ("classification_model", "digit_a", "vision_model", "conv_1", "concatenated"):
        assert name in result.stdout
    assert "Total params: 53,057" in result.stdout
    collapsed = run("summary", str(SPECS / "shared_vision.yaml")).stdout
    assert "conv_1" not in collapsed


def test_summary_of_invalid_spec(run, write_spec):
    spec = write_spec("inputs: {x: [4]}\nedges:\n  y: {Dens: {units: 2}}\noutputs: [y]\n")
    result = run("summary", str(spec))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{spec}:3:7: error: unknown layer class 'Dens'; did you mean 'Dense'?"


def test_validate_does_not_import_tensorflow_or_keras():
    code = (
        "import sys\n"
        "from kspec.cli import main\n"
        "try:\n"
        f"    main(['validate', *{SEED_SPECS!r}])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "kspec", "--version"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip() == "kspec, version 0.1.0"
