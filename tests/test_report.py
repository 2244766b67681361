"""kspec/report.py: the numbers of `kspec evaluate --report`, checked by hand on small known examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kspec import plot, report
from kspec.data import BINARY, CATEGORICAL, REGRESSION, SPARSE
from kspec.errors import KspecError

# 3 classes; rows are true classes, columns predicted ones.
CONFUSION = [[5, 1, 0],
             [2, 3, 1],
             [0, 0, 4]]


def _rows_for(confusion):
    """True and predicted class ids that give this confusion matrix."""
    pairs = [(t, p) for (t, p), n in np.ndenumerate(np.array(confusion)) for _ in range(n)]
    return np.array([t for t, _ in pairs]), np.array([p for _, p in pairs])


def test_per_class_numbers_are_the_hand_computed_ones():
    numbers = report.per_class(np.array(CONFUSION))
    # class 0: 5 of 7 predicted 0 are right, 5 of 6 true 0 are found
    assert numbers["classes"]["0"] == pytest.approx({"precision": 5 / 7, "recall": 5 / 6,
                                                     "f1": 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6), "support": 6})
    assert numbers["classes"]["1"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 6,
                                                     "f1": 2 * 0.75 * 0.5 / 1.25, "support": 6})
    assert numbers["classes"]["2"] == pytest.approx({"precision": 4 / 5, "recall": 1.0,
                                                     "f1": 2 * 0.8 / 1.8, "support": 4})
    assert numbers["accuracy"] == pytest.approx(12 / 16)
    assert numbers["support"] == 16
    assert numbers["macro_avg"]["recall"] == pytest.approx((5 / 6 + 0.5 + 1) / 3)
    assert numbers["weighted_avg"]["precision"] == pytest.approx((6 * 5 / 7 + 6 * 0.75 + 4 * 0.8) / 16)


def test_a_class_never_predicted_or_absent_scores_zero_not_nan():
    numbers = report.per_class(np.array([[2, 0], [0, 0]]))
    assert numbers["classes"]["1"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


@pytest.mark.parametrize("kind", [SPARSE, CATEGORICAL])
def test_a_tally_counts_batches_into_the_confusion_matrix(kind):
    true, said = _rows_for(CONFUSION)
    scores = np.eye(3)[said] * 0.8 + 0.1  # probabilities whose argmax is the predicted class
    labels = true if kind == SPARSE else np.eye(3)[true]
    tally = report.Tally("out", kind, 3)
    for start in range(0, len(true), 5):  # in batches, as evaluate feeds it
        tally.add(labels[start:start + 5], scores[start:start + 5])
    summary = tally.summary()
    assert summary["confusion"] == CONFUSION
    assert summary["accuracy"] == pytest.approx(12 / 16)


def test_a_binary_output_is_thresholded_by_its_activation():
    probabilities = report.Tally("p", BINARY, 1, threshold=0.5)
    probabilities.add(np.array([[1], [0], [1], [0]]), np.array([[0.9], [0.2], [0.4], [0.6]]))
    assert probabilities.summary()["confusion"] == [[1, 1], [1, 1]]
    logits = report.Tally("l", BINARY, 1, threshold=0.0)
    logits.add(np.array([1, 0, 1, 0]), np.array([[0.3], [-2.0], [-0.1], [-0.5]]))
    assert logits.summary()["confusion"] == [[2, 0], [1, 1]]


def test_a_multi_label_output_has_a_matrix_per_label():
    tally = report.Tally("tags", BINARY, 2)
    tally.add(np.array([[1, 0], [1, 1], [0, 1]]), np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]))
    first, second = tally.summary()["labels"]
    assert first["confusion"] == [[0, 1], [1, 1]]  # [[tn, fp], [fn, tp]]
    assert second["confusion"] == [[1, 0], [1, 1]]
    assert second["recall"] == 0.5 and second["precision"] == 1.0 and second["support"] == 2


def test_regression_errors_are_the_hand_computed_ones():
    true = np.array([1.0, 2.0, 3.0, 4.0])
    said = np.array([1.5, 2.0, 2.0, 4.5])
    tally = report.Tally("value", REGRESSION, 1)
    tally.add(true[:2], said[:2])
    tally.add(true[2:].reshape(2, 1), said[2:].reshape(2, 1))
    summary = tally.summary()
    errors = said - true
    assert summary == pytest.approx({
        "kind": "regression", "count": 4, "mae": np.abs(errors).mean(), "rmse": np.sqrt((errors ** 2).mean()),
        "r2": 1 - (errors ** 2).sum() / ((true - true.mean()) ** 2).sum(), "mean_error": errors.mean(),
        "max_abs_error": 1.0})


@pytest.mark.skipif(not plot.available(), reason="matplotlib (the plot extra) is not installed")
def test_the_report_folder_holds_json_and_pictures(tmp_path):
    true, said = _rows_for(CONFUSION)
    classes = report.Tally("digit", SPARSE, 3)
    classes.add(true, np.eye(3)[said])
    values = report.Tally("value", REGRESSION, 1)
    values.add(np.arange(10.0), np.arange(10.0) + 0.5)
    written = report.write_report(tmp_path / "rep", {"loss": 0.25}, [classes, values], "data.npz")
    assert sorted(p.name for p in written) == ["digit-confusion.png", "report.json", "value-scatter.png"]
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["data"] == "data.npz" and saved["metrics"] == {"loss": 0.25}
    assert saved["outputs"]["digit"]["confusion"] == CONFUSION
    assert saved["outputs"]["value"]["mae"] == 0.5
    for name in ("digit-confusion.png", "value-scatter.png"):
        picture = (tmp_path / "rep" / name).read_bytes()
        assert picture.startswith(b"\x89PNG\r\n\x1a\n") and len(picture) > 5000
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted(p.name for p in written)  # no leftovers


def test_a_report_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(plot, "available", lambda: False)
    with pytest.raises(KspecError) as caught:
        report.check_report_dir(tmp_path / "rep")
    [problem] = caught.value.diagnostics
    assert problem.format() == (f"{tmp_path / 'rep'}: error: the report's pictures need matplotlib, which is not "
                                "installed\n  hint: install the plotting extra: pip install 'kspec[plot]'")
