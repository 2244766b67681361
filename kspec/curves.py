"""Training curves: every loss and metric per epoch, training and validation.

Needs matplotlib, an optional extra (`pip install kspec[plot]`): `kspec train`
draws curves.png when it is installed, and `kspec plot RUN_DIR` redraws it
from history.csv.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path

from .errors import RunError, fail
from .files import atomic_path


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        raise fail(RunError, str(path), "no history.csv here", "give the folder of a `kspec train` run")
    with open(path, encoding="utf-8", newline="") as handle:
        try:
            return [{key: float(value) for key, value in row.items() if value not in ("", None)}
                    for row in csv.DictReader(handle)]
        except ValueError as exc:
            raise fail(RunError, str(path), f"history.csv holds a value that is not a number: {exc}") from None


def plot(history: list[dict[str, float]], output: Path, title: str = "") -> None:
    """One panel per loss or metric, with its validation curve beside the training one."""
    if not available():
        raise fail(RunError, str(output), "matplotlib is not installed, so curves cannot be drawn",
                   "install the plot extra: pip install 'kspec[plot]'")
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    names = sorted({key for row in history for key in row if key != "epoch" and not key.startswith("val_")},
                   key=lambda name: (name != "loss", name))
    columns = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    epochs = [int(row["epoch"]) for row in history]
    for axis, name in zip(axes.flat, names):
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
            if points:
                axis.plot(*zip(*points), marker="o", markersize=3, label=label)
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(names):]:
        axis.set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(output) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def plot_run(run_dir: Path) -> Path:
    """Redraw RUN_DIR/curves.png from RUN_DIR/history.csv."""
    history = read_history(run_dir / "history.csv")
    if not history:
        raise fail(RunError, str(run_dir / "history.csv"), "the history has no finished epoch yet")
    output = run_dir / "curves.png"
    plot(history, output, title=run_dir.name)
    return output
