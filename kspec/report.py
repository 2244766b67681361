"""`kspec evaluate --report DIR`: what a model gets right and wrong, per output, as numbers and pictures.

A classification output (a crossentropy or hinge loss, from kspec.data's
output kinds) gets per-class precision, recall, F1 and support, and a
confusion matrix (rows: true class, columns: predicted class), in report.json
and drawn as OUTPUT-confusion.png. A binary output with several units is
multi-label: each unit is its own yes/no label with its own 2x2 matrix. A
regression output gets error summaries (MAE, RMSE, R^2, mean error, largest
error) and OUTPUT-scatter.png, predicted against true values.

The numbers are tallied batch by batch (`Tally.add`), so memory holds a
confusion matrix and a few running sums, not every prediction; the scatter
plot keeps the first MAX_POINTS values. Every file is written through a
temporary file and a rename (kspec.files).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .data import BINARY, CATEGORICAL, REGRESSION, SPARSE
from .errors import RunError, fail
from .files import atomic_path, check_output, write_text

MAX_POINTS = 5000  # values drawn in a scatter plot: enough to see the spread, quick to draw
PLOT_HINT = "install the plotting extra: pip install 'kspec[plot]'"
_PROBABILITIES = ("sigmoid", "softmax", "hard_sigmoid")  # else a binary output gives logits: threshold 0


class Tally:
    """One output's running counts: a confusion matrix, or sums of errors."""

    def __init__(self, name: str, kind: str, units: int, threshold: float = 0.5):
        self.name, self.kind, self.units, self.threshold = name, kind, units, threshold
        if kind == CATEGORICAL and units == 1:
            self.kind = BINARY  # one unit: 'crossentropy' means yes/no
        if self.kind == REGRESSION:
            self.sums = np.zeros(6)  # count, |e|, e^2, e, y, y^2
            self.largest = 0.0
            self.points: list[np.ndarray] = []
        elif self.kind == BINARY and units > 1:
            self.confusion = np.zeros((units, 2, 2), dtype=np.int64)  # per label: [[tn, fp], [fn, tp]]
        else:
            classes = 2 if self.kind == BINARY else units
            self.confusion = np.zeros((classes, classes), dtype=np.int64)

    @property
    def multi_label(self) -> bool:
        return self.kind == BINARY and self.units > 1

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        """Count one batch: its true targets and the model's outputs."""
        predicted = np.asarray(predicted, dtype=np.float64)
        truth = np.asarray(truth)
        if self.kind == REGRESSION:
            self._add_errors(truth.astype(np.float64).reshape(-1), predicted.reshape(-1))
        elif self.kind == SPARSE:
            self._count(truth.reshape(-1).astype(np.int64), predicted.reshape(-1, self.units).argmax(axis=1))
        elif self.kind == CATEGORICAL:
            self._count(truth.reshape(-1, self.units).argmax(axis=1), predicted.reshape(-1, self.units).argmax(axis=1))
        else:  # 0/1 (or -1/1 for hinge) labels, one per unit
            said = (predicted.reshape(-1, self.units) > self.threshold).astype(np.int64)
            true = (truth.reshape(-1, self.units) > 0.5).astype(np.int64)
            if self.multi_label:
                for unit in range(self.units):
                    np.add.at(self.confusion[unit], (true[:, unit], said[:, unit]), 1)
            else:
                self._count(true[:, 0], said[:, 0])

    def _count(self, true: np.ndarray, said: np.ndarray) -> None:
        classes = len(self.confusion)
        if true.size and (true.min() < 0 or true.max() >= classes):
            raise fail(RunError, self.name, f"output '{self.name}' has true class ids outside 0 to {classes - 1}",
                       "check the data's labels against the output's units")
        np.add.at(self.confusion, (true, said), 1)

    def _add_errors(self, true: np.ndarray, said: np.ndarray) -> None:
        error = said - true
        self.sums += [true.size, np.abs(error).sum(), (error ** 2).sum(), error.sum(), true.sum(), (true ** 2).sum()]
        if error.size:
            self.largest = max(self.largest, float(np.abs(error).max()))
        kept = sum(len(p) for p in self.points)
        if kept < MAX_POINTS:
            self.points.append(np.stack([true, said], axis=1)[:MAX_POINTS - kept])

    def summary(self) -> dict[str, Any]:
        """The output's numbers, as report.json holds them."""
        if self.kind == REGRESSION:
            return {"kind": "regression", **regression_summary(self.sums, self.largest)}
        if self.multi_label:
            labels = [per_class(matrix)["classes"]["1"] | {"confusion": matrix.tolist()}
                      for matrix in self.confusion]
            return {"kind": "multi-label", "threshold": self.threshold, "labels": labels}
        summary = {"kind": "classification", **per_class(self.confusion), "confusion": self.confusion.tolist()}
        return summary | ({"threshold": self.threshold} if self.kind == BINARY else {})


def per_class(confusion: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 and support of each class of a confusion matrix (rows true, columns predicted).

    A ratio with nothing to divide by (a class never predicted, or absent) is 0.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    total = int(support.sum())
    classes = {str(k): {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                        "support": int(support[k])} for k in range(len(confusion))}
    weights = support / total if total else np.zeros_like(hits)
    return {
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "classes": classes,
        "macro_avg": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "weighted_avg": {"precision": float(precision @ weights), "recall": float(recall @ weights),
                         "f1": float(f1 @ weights)},
        "support": total,
    }


def regression_summary(sums: np.ndarray, largest: float) -> dict[str, Any]:
    """MAE, RMSE, R^2, mean error and largest error from running sums (count, |e|, e^2, e, y, y^2)."""
    count, absolute, squared, signed, total, total_sq = (float(s) for s in sums)
    if count == 0:
        return {"count": 0}
    spread = total_sq - total * total / count  # sum of (y - mean y)^2
    return {
        "count": int(count),
        "mae": absolute / count,
        "rmse": math.sqrt(squared / count),
        "r2": 1.0 - squared / spread if spread > 0 else None,  # undefined for constant targets
        "mean_error": signed / count,
        "max_abs_error": largest,
    }


def threshold_of(built: Any, name: str) -> float:
    """Where a binary output's values say yes: 0.5 for probabilities (sigmoid), 0 for logits or hinge's -1..1."""
    layer = getattr(built.tensors[name], "_keras_history", (None,))[0]
    activation = getattr(layer, "activation", None)
    label = getattr(activation, "__name__", None)
    return 0.5 if label is None or label in _PROBABILITIES else 0.0


def check_report_dir(path: Path) -> None:
    """Refuse a report folder that cannot be written, and a missing matplotlib, before any work."""
    check_output(path, folder=True)
    if path.exists() and not path.is_dir():
        raise fail(RunError, str(path), "the report folder is an existing file", "choose another --report folder")
    from . import plot

    if not plot.available():
        raise fail(RunError, str(path), "the report's pictures need matplotlib, which is not installed", PLOT_HINT)


def write_report(path: Path, metrics: dict[str, float], tallies: list[Tally], source: str) -> list[Path]:
    """report.json and each output's picture in folder `path`; returns the files written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(RunError, str(path), f"cannot create the report folder: {exc.strerror or exc}",
                   "choose another --report folder") from None
    written = []
    for tally in tallies:
        picture = path / f"{tally.name}-{'scatter' if tally.kind == REGRESSION else 'confusion'}.png"
        if tally.multi_label:
            continue  # one matrix per label: the numbers are in report.json
        check_output(picture)
        with atomic_path(picture) as temporary:
            if tally.kind == REGRESSION:
                _draw_scatter(tally, temporary)
            else:
                _draw_confusion(tally, temporary)
        written.append(picture)
    report = {"data": source, "metrics": metrics, "outputs": {t.name: t.summary() for t in tallies}}
    check_output(path / "report.json")
    write_text(path / "report.json", json.dumps(report, indent=2) + "\n")
    return [path / "report.json", *written]


def _figure(size: tuple[float, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=size)


def _draw_confusion(tally: Tally, output: Path) -> None:
    confusion = tally.confusion
    classes = len(confusion)
    plt, figure = _figure((max(4.0, 0.5 * classes + 2), max(3.5, 0.5 * classes + 1.5)))
    try:
        axes = figure.add_subplot()
        image = axes.imshow(confusion, cmap="Blues")
        figure.colorbar(image, ax=axes)
        if classes <= 30:  # beyond that the counts are unreadable; the colours still show the pattern
            high = confusion.max() or 1
            for (true, said), count in np.ndenumerate(confusion):
                axes.text(said, true, str(count), ha="center", va="center", fontsize=8,
                          color="white" if count > high / 2 else "black")
            axes.set_xticks(range(classes))
            axes.set_yticks(range(classes))
        axes.set_xlabel("predicted class")
        axes.set_ylabel("true class")
        accuracy = np.trace(confusion) / max(1, confusion.sum())
        axes.set_title(f"{tally.name}: accuracy {accuracy:.3f} on {confusion.sum():,} rows")
        figure.tight_layout()
        figure.savefig(output, format="png", dpi=100)
    finally:
        plt.close(figure)


def _draw_scatter(tally: Tally, output: Path) -> None:
    points = np.concatenate(tally.points) if tally.points else np.zeros((0, 2))
    plt, figure = _figure((5.0, 5.0))
    try:
        axes = figure.add_subplot()
        axes.scatter(points[:, 0], points[:, 1], s=6, alpha=0.5)
        if len(points):
            low, high = float(points.min()), float(points.max())
            axes.plot([low, high], [low, high], color="grey", linewidth=1)  # where predicted equals true
        axes.set_xlabel("true value")
        axes.set_ylabel("predicted value")
        summary = regression_summary(tally.sums, tally.largest)
        axes.set_title(f"{tally.name}: MAE {summary.get('mae', float('nan')):.4g}, "
                       f"RMSE {summary.get('rmse', float('nan')):.4g}")
        figure.tight_layout()
        figure.savefig(output, format="png", dpi=100)
    finally:
        plt.close(figure)


def tallies_for(spec: Any, built: Any) -> list[Tally]:
    """A Tally for each of the spec's outputs, its kind from the loss and its threshold from the activation."""
    from .data import output_kinds

    kinds = output_kinds(spec)
    tallies = []
    for name in spec.output_names:
        shape = built.output_shapes()[name]
        units = int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1
        tallies.append(Tally(name, kinds[name], units, threshold_of(built, name)))
    return tallies
