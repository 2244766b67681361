"""Training curves: every loss and metric per epoch, training and validation.

Needs matplotlib, an optional extra (`pip install kspec[plot]`): `kspec train`
draws curves.png when it is installed, and `kspec plot RUN_DIR` redraws it
from history.csv.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from pathlib import Path
from typing import Iterator

from .errors import Location, RunError, fail
from .files import atomic_path, check_output


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


MAX_HISTORY_BYTES = 64 * 2**20  # a million epochs' rows; anything larger was not written by kspec


def read_history(path: Path) -> list[dict[str, float]]:
    """A run's history.csv: one row per finished epoch, numbered 1, 2, 3, ...

    The file is checked as it is read, since an edited or cut-short history
    must not be drawn or resumed from: a problem is reported at its line.
    """
    if not path.is_file():
        raise fail(RunError, str(path), "no history.csv here", "give the folder of a `kspec train` run")
    if path.stat().st_size > MAX_HISTORY_BYTES:
        raise fail(RunError, str(path), f"the history is larger than {MAX_HISTORY_BYTES // 2**20} MB; "
                   "kspec does not write one that large", _DAMAGED_HINT)
    try:
        text = path.read_text(encoding="utf-8")
        if "\x00" in text:
            raise fail(RunError, str(path), "the history is not a CSV file kspec wrote: it holds a NUL byte",
                       _DAMAGED_HINT)
        if text and not text.endswith("\n"):  # kspec ends every row with one: the file was cut short
            raise fail(RunError, Location(str(path), text.count("\n") + 1, 1),
                       "the last row is cut short (the file does not end with a line end)", _DAMAGED_HINT)
        return _parse_history(csv.reader(io.StringIO(text, newline="")), path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise fail(RunError, str(path), f"the history is not a CSV file kspec wrote: {exc}", _DAMAGED_HINT) from None


_DAMAGED_HINT = "the file was edited or damaged; restore it, or start the run again"


def _parse_history(reader: Iterator[list[str]], path: Path) -> list[dict[str, float]]:
    header = next(reader, None)
    if not header or header[0] != "epoch" or len(set(header)) != len(header) or "" in header:
        raise fail(RunError, Location(str(path), 1, 1), "the history's first line must name its columns, "
                   "'epoch' first, each once", _DAMAGED_HINT)
    rows = []
    for fields in reader:
        where = Location(str(path), getattr(reader, "line_num", 0), 1)
        if len(fields) != len(header):
            raise fail(RunError, where, f"the row has {len(fields)} value(s) for {len(header)} column(s)",
                       _DAMAGED_HINT)
        row = {key: _number(value, key, where) for key, value in zip(header, fields) if value != ""}
        if row.get("epoch") != len(rows) + 1:
            raise fail(RunError, where, f"the row is numbered epoch {fields[0]!r:.40}, where epoch "
                       f"{len(rows) + 1} comes next", _DAMAGED_HINT)
        rows.append(row)
    return rows


def _number(text: str, column: str, where: Location) -> float:
    try:
        return float(text)
    except ValueError:
        raise fail(RunError, where, f"the value {text!r:.40} in column '{column:.40}' is not a number",
                   _DAMAGED_HINT) from None


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
    check_output(output)  # never through a link, nor over a file that is not a picture
    plot(history, output, title=run_dir.name)
    return output
