"""`kspec predict`: .csv as well as .npz, the --labels column, and the progress bar."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from kspec.cli import main

# A scalar regression output and a 3-class output: CSV columns value, cls_0..cls_2 (and cls_label).
SPEC = """\
name: two_heads
inputs:
  x: {shape: [4]}
edges:
  hidden: {Dense: {units: 8, activation: relu}}
  value: {Dense: {units: 1}, in: hidden}
  cls: {Dense: {units: 3, activation: softmax}, in: hidden}
outputs: [value, cls]
optimizer: adam
loss: {value: mse, cls: sparse_categorical_crossentropy}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The spec, a freshly built model of it, and 10 rows of inputs."""
    folder = tmp_path_factory.mktemp("predict")
    spec = folder / "two_heads.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(folder / "m.keras")])
    assert result.exit_code == 0, result.output
    np.savez(folder / "x.npz", x=np.random.default_rng(0).normal(size=(10, 4)).astype("float32"))
    return spec, folder / "m.keras", folder / "x.npz"


def _predict(model, output, *args):
    spec, weights, data = model
    return CliRunner().invoke(main, ["predict", str(spec), "--weights", str(weights), "--data", str(data),
                                     "-o", str(output), "--batch-size", "4", *args])


def test_csv_columns_and_values_are_the_npz_ones(model, tmp_path):
    assert _predict(model, tmp_path / "p.npz", "--labels", "-q").exit_code == 0
    result = _predict(model, tmp_path / "p.csv", "--labels", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {tmp_path / 'p.csv'}: value (10, 1), cls (10, 3), cls_label (10,)\n"
    with open(tmp_path / "p.csv", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == ["value", "cls_0", "cls_1", "cls_2", "cls_label"]
    table = np.array(rows)
    with np.load(tmp_path / "p.npz") as saved:
        assert sorted(saved.files) == ["cls", "cls_label", "value"]
        np.testing.assert_array_equal(table[:, 0].astype(np.float32), saved["value"][:, 0])  # exactly: no digit lost
        np.testing.assert_array_equal(table[:, 1:4].astype(np.float32), saved["cls"])
        np.testing.assert_array_equal(table[:, 4].astype(int), saved["cls"].argmax(axis=1))
        np.testing.assert_array_equal(saved["cls_label"], saved["cls"].argmax(axis=1))


def test_the_progress_bar_goes_to_stderr_unless_quiet(model, tmp_path):
    shown = _predict(model, tmp_path / "p.npz")
    assert shown.exit_code == 0, shown.output
    assert "3/3" in shown.stderr and shown.stdout.startswith("wrote ")  # 10 rows in batches of 4
    quiet = _predict(model, tmp_path / "q.npz", "-q")
    assert "3/3" not in quiet.stderr


def test_an_output_with_more_than_one_axis_a_row_is_refused_for_csv(tmp_path):
    spec = tmp_path / "seq.yaml"
    spec.write_text("name: seq\ninputs:\n  x: {shape: [5, 2]}\nedges:\n  y: {Dense: {units: 3}}\noutputs: [y]\n")
    assert CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "m.keras")]).exit_code == 0
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 5, 2), dtype="float32"))
    result = _predict((spec, tmp_path / "m.keras", tmp_path / "x.npz"), tmp_path / "p.csv")
    assert result.exit_code == 1
    assert result.stderr == (f"{spec}: error: output 'y' gives values of shape (5, 3) a row, which do not fit in "
                             "CSV columns (one value, or one vector, a row)\n"
                             "  hint: write an .npz file with -o FILE.npz\n")
    assert not (tmp_path / "p.csv").exists()


def test_labels_need_a_class_output(model, tmp_path):
    spec = tmp_path / "reg.yaml"
    spec.write_text(SPEC.replace("sparse_categorical_crossentropy", "mse"))
    result = _predict((spec, *model[1:]), tmp_path / "p.csv", "--labels")
    assert result.exit_code == 1
    assert result.stderr == (f"{spec}: error: --labels adds the predicted class of class outputs, and this model "
                             "has none (no output has a crossentropy or hinge loss)\n  hint: leave out --labels\n")


def test_another_suffix_is_a_usage_error(model, tmp_path):
    result = _predict(model, tmp_path / "p.txt")
    assert result.exit_code == 2
    assert result.stderr.endswith(f"Error: Invalid value for '-o': '{tmp_path / 'p.txt'}' must end in .npz, .csv or .parquet\n")
