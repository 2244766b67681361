"""Command-line values at and past their limits: refused in one line before anything is made.

Seeds past NumPy's 2**32, NaN or all-consuming validation splits, synthetic
data or input shapes larger than memory (kspec.data refuses those before
making them), batch sizes past TensorFlow's
32-bit count, names longer than a file system takes, output folders that do
not exist. Each is exit 2 (a usage error: click prints its usage and one
"Error:" line) or exit 1 (one located "error:" line), with no traceback and
nothing written; and every seed the command line takes works, resume too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SPECS

from kspec import arrays
from kspec import data as data_module
from kspec.cli import main

MLP = str(SPECS / "mlp.yaml")
BIG = 100_000_000_000_000_000_000  # 1e20 written out: a valid Python int


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty working folder (default run folders go to its runs/), and a known memory size."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for module in (arrays, data_module):  # messages that quote it read the same on every machine
        monkeypatch.setattr(module, "memory_bytes", lambda: 2**30)
    return work


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mlp.keras"
    assert CliRunner().invoke(main, ["build", MLP, "-o", str(path)]).exit_code == 0
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mlp.npz"
    rng = np.random.default_rng(0)
    np.savez(path, inputs=rng.random((6, 784), dtype="float32"),
             predictions=np.eye(10, dtype="float32")[rng.integers(0, 10, 6)])
    return str(path)


def _refused(args: list[str], folder: Path, code: int, line: str) -> None:
    """The command exits `code` with `line` as its only error line, no traceback, and nothing in `folder`."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    errors = [text for text in result.stderr.splitlines() if text.startswith("Error:") or ": error: " in text]
    assert errors == [line], result.stderr
    assert "Traceback" not in result.output
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "inspect"])
def test_a_seed_past_two_to_the_32_is_a_usage_error(folder, command):
    extra = ["--all"] if command == "inspect" else ["--out", "run"]
    _refused([command, MLP, "--synthetic", "4", "--seed", str(2**32), *extra], folder, 2,
             "Error: Invalid value for '--seed': 4294967296 is not in the range 0<=x<=4294967295.")


def test_the_largest_seed_trains_and_resumes(folder):
    # A resumed run reseeds with seed + epoch: past 2**32 - 1 that must wrap, not fail in NumPy.
    first = CliRunner().invoke(main, ["train", MLP, "--synthetic", "8", "--seed", str(2**32 - 1), "--out", "run",
                                      "-q", "--epochs", "1"])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(main, ["train", MLP, "--resume", "run", "--epochs", "2", "-q"])
    assert resumed.exit_code == 0, resumed.output
    settings = json.loads((folder / "run" / "run.json").read_text())
    assert (settings["seed"], settings["epochs_completed"], settings["status"]) == (2**32 - 1, 2, "completed")
    # A seed the command line would refuse, written into run.json by hand, is refused on resume too.
    edited = json.dumps({**settings, "seed": 2**32})
    (folder / "run" / "run.json").write_text(edited)
    refused = CliRunner().invoke(main, ["train", MLP, "--resume", "run", "--epochs", "3", "-q"])
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.splitlines()[0] == (f"{Path('run') / 'run.json'}: error: the run settings were edited or "
                                              "damaged: 'seed' is 4294967296, above 4294967295")
    assert "Traceback" not in refused.output
    assert (folder / "run" / "run.json").read_text() == edited


@pytest.mark.parametrize("value", ["nan", "NaN", "1", "-0.1", "inf"])
def test_a_validation_split_outside_0_to_1_is_a_usage_error(folder, value):
    result = CliRunner().invoke(main, ["train", MLP, "--synthetic", "8", "--validation-split", value,
                                       "--out", "run"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1].startswith("Error: Invalid value for '--validation-split': ")
    assert "Traceback" not in result.output
    assert list(folder.iterdir()) == []


def test_a_validation_split_that_holds_out_no_rows_is_refused_before_training(folder, data):
    _refused(["train", MLP, "--data", data, "--validation-split", "0.1", "--out", "run"], folder, 1,
             f"{data}: error: a validation split of 0.1 holds out no rows of 6")


def test_a_validation_split_in_the_spec_that_holds_out_no_rows_is_refused_too(folder, data, write_spec):
    spec = write_spec(Path(MLP).read_text() + "\ntraining: {validation_split: 0.05}\n")
    _refused(["train", str(spec), "--data", data, "--out", "run"], folder, 1,
             f"{data}: error: a validation split of 0.05 holds out no rows of 6")


@pytest.mark.parametrize("command", ["train", "inspect"])
def test_synthetic_data_larger_than_memory_is_refused_before_it_is_made(folder, command):
    extra = ["--all"] if command == "inspect" else ["--out", "run"]
    _refused([command, MLP, "--synthetic", "1000000000", *extra], folder, 1,
             f"{MLP}:7:3: error: synthetic data of shape (1000000000, 784) for input 'inputs' would take "
             "6,272,000,000,000 bytes with the other inputs, more than half of this machine's memory "
             "(1,073,741,824 bytes)")


def test_synthetic_counts_are_whole_numbers(folder):
    _refused(["train", MLP, "--synthetic", "1e9", "--out", "run"], folder, 2,
             "Error: Invalid value for '--synthetic': '1e9' is not a valid integer range.")


@pytest.mark.parametrize("command", ["train", "inspect"])
def test_an_input_shape_that_promises_terabytes_is_refused_before_it_is_made(folder, command):
    # Refused at the input's line by whichever check meets it first (the model's layer outputs for one
    # batch, or the synthetic data), never by allocating it.
    extra = ["--all"] if command == "inspect" else ["--out", "run"]
    result = CliRunner().invoke(main, [command, MLP, "--synthetic", "1", "--set",
                                       "inputs.inputs.shape=[1000000, 1000000]", *extra])
    assert result.exit_code == 1, result.output
    [line] = [text for text in result.stderr.splitlines() if ": error: " in text]
    assert line.startswith(f"{MLP}:7:3: error: ")
    assert "000,000,000,000 bytes" in line and "half of this machine's memory (1,073,741,824 bytes)" in line
    assert "Traceback" not in result.output
    assert list(folder.iterdir()) == []


def test_an_epoch_count_past_a_32_bit_count_is_a_usage_error(folder):
    _refused(["train", MLP, "--synthetic", "4", "--epochs", str(2**32), "--out", "run"], folder, 2,
             "Error: Invalid value for '--epochs': 4294967296 is not in the range 1<=x<=2147483647.")


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "inspect"])
@pytest.mark.parametrize("size, line", [
    (str(BIG), f"Error: Invalid value for '--batch-size': {BIG} is not in the range 1<=x<=2147483647."),
    ("1e20", "Error: Invalid value for '--batch-size': '1e20' is not a valid integer range."),
])
def test_batch_sizes_past_a_32_bit_count_are_usage_errors(folder, model, data, command, size, line):
    args = {"train": ["train", MLP, "--data", data, "--out", "run"],
            "evaluate": ["evaluate", MLP, "--weights", model, "--data", data],
            "predict": ["predict", MLP, "--weights", model, "--data", data, "-o", "p.npz"],
            "inspect": ["inspect", MLP, "--all", "--data", data, "-o", "d.npz"]}[command]
    _refused([*args, "--batch-size", size], folder, 2, line)


def test_a_spec_name_longer_than_a_file_name_gets_a_run_folder_that_fits(folder, write_spec):
    long_name = "n" * 300
    spec = write_spec(Path(MLP).read_text().replace("name: mlp", f"name: {long_name}"))
    result = CliRunner().invoke(main, ["train", str(spec), "--synthetic", "4", "-q"])
    assert result.exit_code == 0, result.output
    [run] = (folder / "runs").iterdir()
    assert run.name.startswith("n" * 150) and len(run.name.encode()) <= 255
    assert (run / "model.keras").is_file()


def test_an_out_name_longer_than_a_file_name_is_refused(folder):
    name = "m" * 300
    _refused(["train", MLP, "--synthetic", "4", "--out", name], folder, 2,
             f"Error: Invalid value for '--out': '{name}': cannot use this output path: File name too long; "
             "choose another output path")


def test_an_out_name_with_no_room_to_be_assembled_is_refused_before_training(folder):
    name = "m" * 250  # fits a file name, but not the run's temporary .NAME.PID.tmp beside it
    _refused(["train", MLP, "--synthetic", "4", "--out", name], folder, 1,
             f"{name}: error: the run folder's name is 250 bytes long; it may take 239 at most")


@pytest.mark.parametrize("command", ["predict", "inspect"])
def test_an_output_file_in_a_folder_that_does_not_exist_is_refused(folder, model, data, command):
    target = "missing/dir/x.npz"
    args = {"predict": ["predict", MLP, "--weights", model, "--data", data, "-o", target],
            "inspect": ["inspect", MLP, "--all", "--data", data, "-o", target]}[command]
    _refused(args, folder, 2, f"Error: Invalid value for '-o': '{target}': its folder 'missing/dir' does not "
             "exist; create it first, or choose another path")
