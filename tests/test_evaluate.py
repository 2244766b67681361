"""`kspec evaluate`: a run's model on exactly its held-out rows (--run), and the report (--report)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kspec.cli import main
from kspec.plot import read_history

SPEC = """\
name: tiny
inputs:
  x: {shape: [4]}
edges:
  hidden: {Dense: {units: 8, activation: relu}}
  cls: {Dense: {units: 3, activation: softmax}}
outputs: [cls]
optimizer: adam
loss: sparse_categorical_crossentropy
metrics: [accuracy]
"""


def _data(path, rows=50, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype("float32")
    np.savez(path, x=x, cls=(x[:, 0] > 0).astype("int64") + (x[:, 1] > 1))
    return path


def _train(folder, *args):
    spec = folder / "tiny.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(main, ["train", str(spec), "--epochs", "2", "--batch-size", "8", "--seed", "1",
                                       "--out", str(folder / "run"), "-q", *args])
    assert result.exit_code == 0, result.output
    return folder / "run"


def _evaluate(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


@pytest.fixture(scope="module")
def split_run(tmp_path_factory):
    """A run trained with --validation-split 0.3 on 50 rows, and its data file (shared: neither is changed)."""
    folder = tmp_path_factory.mktemp("split")
    data = _data(folder / "d.npz")
    return _train(folder, "--data", str(data), "--validation-split", "0.3"), data


def test_evaluate_run_scores_the_rows_the_split_held_out_as_keras_does(split_run):
    import keras

    run, data = split_run
    assert json.loads((run / "validation.json").read_text())["rows"] == [35, 50]  # Keras: floor(50 * 0.7)
    result = _evaluate("--run", run, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)

    model = keras.saving.load_model(run / "model.keras")
    with np.load(data) as arrays:
        expected = model.evaluate(arrays["x"][35:], arrays["cls"][35:], batch_size=32, verbose=0, return_dict=True)
    assert scores == pytest.approx(expected, rel=1e-6)
    last = read_history(run / "history.csv")[-1]  # what training itself measured on those rows
    assert (scores["loss"], scores["accuracy"]) == pytest.approx((last["val_loss"], last["val_accuracy"]), rel=1e-6)

    result = _evaluate("--run", run)  # the text form names the rows
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"held-out rows: the last 15 rows of {data} (rows 35 to 49)\n")
    assert result.stdout.endswith(f"\naccuracy: {scores['accuracy']:.6g}\nloss: {scores['loss']:.6g}\n")


def test_a_run_on_a_val_data_file_is_evaluated_on_that_file(tmp_path):
    val = _data(tmp_path / "v.npz", rows=12, seed=3)
    run = _train(tmp_path, "--data", str(_data(tmp_path / "d.npz")), "--val-data", str(val))
    result = _evaluate("--run", run, "--json")
    assert result.exit_code == 0, result.output
    last = read_history(run / "history.csv")[-1]
    assert json.loads(result.stdout)["loss"] == pytest.approx(last["val_loss"], rel=1e-6)


def test_a_synthetic_run_makes_its_validation_rows_again(tmp_path):
    run = _train(tmp_path, "--synthetic", "40", "--validation-split", "0.25")
    result = _evaluate("--run", run, "--json")
    assert result.exit_code == 0, result.output
    last = read_history(run / "history.csv")[-1]
    assert json.loads(result.stdout)["loss"] == pytest.approx(last["val_loss"], rel=1e-6)


@pytest.mark.skipif(not __import__("kspec.plot").plot.available(), reason="matplotlib is not installed")
def test_evaluate_run_writes_the_report(tmp_path, split_run):
    run, data = split_run
    result = _evaluate("--run", run, "--report", tmp_path / "rep", "--json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["metrics"] == json.loads(result.stdout)
    import keras

    model = keras.saving.load_model(run / "model.keras")
    with np.load(data) as arrays:
        said = model.predict(arrays["x"][35:], verbose=0).argmax(axis=1)
        true = arrays["cls"][35:]
    confusion = np.zeros((3, 3), dtype=int)
    np.add.at(confusion, (true, said), 1)
    assert saved["outputs"]["cls"]["confusion"] == confusion.tolist()
    assert saved["outputs"]["cls"]["accuracy"] == pytest.approx(saved["metrics"]["accuracy"], rel=1e-6)
    assert (tmp_path / "rep" / "cls-confusion.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


CHANGED = ("{data}: error: the data file changed since the run was trained (its SHA-256 differs), so its held-out "
           "rows are not the ones the run held out\n  hint: restore the file as it was, or evaluate on data of your "
           "own with --weights and --data\n")


def test_a_changed_data_file_is_refused_before_tensorflow_is_imported(tmp_path):
    data = _data(tmp_path / "d.npz")
    run = _train(tmp_path, "--data", str(data), "--validation-split", "0.3")
    _data(data, seed=5)  # the same name and shape, other rows
    script = ("import sys; from kspec.cli import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as exit:\n"
              "    print('exit', exit.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, "evaluate", "--run", str(run)], capture_output=True,
                          text=True, timeout=120)
    assert done.stdout == "exit 1 False False\n"
    assert done.stderr == CHANGED.format(data=data)


def test_a_run_that_held_out_nothing_says_how_to_get_rows(tmp_path):
    run = _train(tmp_path, "--data", str(_data(tmp_path / "d.npz")))
    result = _evaluate("--run", run)
    assert result.exit_code == 1
    assert result.stderr == (
        f"{run}: error: the run held out no validation rows, so there is nothing unseen to evaluate it on\n"
        "  hint: train with --validation-split F or --val-data FILE, or evaluate on data of your own: "
        f"kspec evaluate SPEC --weights {run / 'model.keras'} --data FILE\n")


@pytest.mark.parametrize("args, message", [
    (["--run", "r", "--weights", "m.keras"], "--run evaluates the run's own model on its held-out rows; "
                                             "leave out --weights and --data, or leave out --run"),
    (["spec.yaml", "--data", "d.npz"], "give SPEC --weights MODEL.keras --data FILE, or --run RUN_DIR"),
])
def test_evaluate_usage_errors(tmp_path, args, message):
    result = _evaluate(*args)
    assert result.exit_code == 2
    assert result.stderr.endswith(f"Error: {message}\n")


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    result = _evaluate("--run", tmp_path)
    assert result.exit_code == 1
    assert result.stderr == (f"{tmp_path}: error: not a kspec run folder (no run.json)\n  hint: --run takes the "
                             "folder a `kspec train` wrote (its --out, or runs/NAME-TIMESTAMP)\n")


def _copy_run(run, tmp_path):
    import shutil

    return Path(shutil.copytree(run, tmp_path / "copy"))


def test_an_unfinished_run_is_refused_with_how_to_finish_it(split_run, tmp_path):
    run = _copy_run(split_run[0], tmp_path)
    (run / "model.keras").unlink()
    result = _evaluate("--run", run)
    assert result.exit_code == 1
    assert result.stderr == (f"{run / 'model.keras'}: error: the run has no final model: it has not finished\n"
                             f"  hint: finish it with: kspec train {run / 'spec.yaml'} --resume {run}\n")


def test_an_edited_validation_record_is_refused(split_run, tmp_path):
    run = _copy_run(split_run[0], tmp_path)
    record = json.loads((run / "validation.json").read_text())
    (run / "validation.json").write_text(json.dumps({**record, "rows": [40, 30]}))
    result = _evaluate("--run", run)
    assert result.exit_code == 1
    assert result.stderr == (f"{run / 'validation.json'}: error: the validation record was edited or damaged: "
                             "'rows' must be [START, STOP] with 0 <= START < STOP\n"
                             "  hint: restore the run folder's files as kspec wrote them\n")


def test_a_spec_other_than_the_runs_is_refused(split_run, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace("units: 8", "units: 9"))
    result = _evaluate(other, "--run", split_run[0])
    assert result.exit_code == 1
    ran = split_run[0] / "spec.yaml"
    assert result.stderr == (f"{other}: error: the spec differs from the one the run trained ({ran})\n"
                             f"  hint: leave out SPEC (and --set): --run evaluates with {ran}\n")


def test_a_streamed_run_is_evaluated_on_the_rows_its_stream_held_out(tmp_path):
    # 47 rows: Keras's split of arrays in memory holds out 15 (from row 32), kspec's stream 14 (from row 33)
    run = _train(tmp_path, "--data", str(_data(tmp_path / "d.npz", rows=47)), "--validation-split", "0.3", "--stream")
    assert json.loads((run / "validation.json").read_text())["rows"] == [33, 47]
    result = _evaluate("--run", run, "--json")
    assert result.exit_code == 0, result.output
    last = read_history(run / "history.csv")[-1]
    assert json.loads(result.stdout)["loss"] == pytest.approx(last["val_loss"], rel=1e-6)


@pytest.mark.skipif(not __import__("kspec.plot").plot.available(), reason="matplotlib is not installed")
def test_a_report_on_given_data_has_regression_errors_and_a_scatter_plot(tmp_path):
    import keras

    spec = tmp_path / "reg.yaml"
    spec.write_text(SPEC.replace("units: 3, activation: softmax", "units: 1")
                    .replace("sparse_categorical_crossentropy", "mse").replace("metrics: [accuracy]", "metrics: [mae]"))
    assert CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "m.keras")]).exit_code == 0
    data = tmp_path / "d.npz"
    x = np.random.default_rng(2).normal(size=(20, 4)).astype("float32")
    np.savez(data, x=x, cls=x[:, :1] * 2.0)
    result = _evaluate(spec, "--weights", tmp_path / "m.keras", "--data", data, "--report", tmp_path / "rep", "--json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())["outputs"]["cls"]
    errors = keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0)[:, 0] - x[:, 0] * 2.0
    assert saved["kind"] == "regression" and saved["count"] == 20
    assert saved["mae"] == pytest.approx(np.abs(errors).mean(), rel=1e-5)
    assert saved["mae"] == pytest.approx(json.loads(result.stdout)["mae"], rel=1e-5)  # Keras's own metric agrees
    assert saved["rmse"] == pytest.approx(np.sqrt((errors ** 2).mean()), rel=1e-5)
    assert (tmp_path / "rep" / "cls-scatter.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
