"""Which rows a training run held out for validation, recorded so they can be found again.

A new run writes validation.json beside run.json, naming its validation rows:

    {"kind": "split", "data": PATH, "sha256": ..., "rows": [START, STOP]}   the last rows of --data
    {"kind": "file", "data": PATH, "sha256": ..., "rows": [0, N]}           a --val-data file
    {"kind": "synthetic", "samples": N, "seed": S, "rows": [START, STOP],
     "sha256": ...}                                                         --synthetic with a split
    {"kind": "none"}                                                        nothing was held out

Files are recorded by absolute path and a SHA-256 of their bytes (a folder of
.npy files: of its names and bytes), so `kspec evaluate --run` refuses a file
that changed since. Synthetic rows are made again from the run's seed, as
training made them, and their checksum says whether they came out the same.
Nothing here imports Keras: a run folder is checked before any framework starts.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunError, fail
from .files import write_text

RECORD = "validation.json"
KINDS = ("split", "file", "synthetic", "none")
_BLOCK = 1 << 20  # bytes hashed at a time: memory stays flat whatever the file's size


@dataclass(frozen=True)
class HeldOut:
    """A run's validation rows: where they come from and which they are."""

    kind: str
    rows: tuple[int, int] = (0, 0)
    data: str | None = None
    sha256: str | None = None
    samples: int | None = None
    seed: int | None = None

    def describe(self) -> str:
        count = f"{self.rows[1] - self.rows[0]:,} rows"
        if self.kind == "synthetic":
            return f"{count} of synthetic data ({self.samples} samples, seed {self.seed}), from row {self.rows[0]}"
        if self.kind == "split":
            return f"the last {count} of {self.data} (rows {self.rows[0]} to {self.rows[1] - 1})"
        return f"{count} of {self.data}" if self.kind == "file" else "none"

    def to_json(self) -> str:
        record: dict[str, Any] = {"kind": self.kind}
        if self.kind != "none":
            record["rows"] = list(self.rows)
        for name in ("data", "samples", "seed", "sha256"):
            if getattr(self, name) is not None:
                record[name] = getattr(self, name)
        return json.dumps(record, indent=2) + "\n"


def split_start(rows: int, fraction: float, streamed: bool) -> int:
    """The first validation row of a --validation-split, as the path that trained took it."""
    if streamed:  # kspec.run_data.batch_streams
        return rows - int(rows * fraction)
    return math.floor(rows * (1.0 - fraction))  # Keras's train_validation_split, for arrays in memory


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a data file, read a block at a time; of a folder's .npy files (or, for a folder of class
    folders of images, of every file under it), their names and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path]
    if path.is_dir():
        files = sorted(path.glob("*.npy")) or sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names, shapes, dtypes and values), for data made rather than read."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}\0".encode())
        digest.update(array.data)
    return digest.hexdigest()


def held_out_of(settings: Any, dataset: Any) -> HeldOut:
    """What a new run holds out, from its settings (kspec.run_settings) and its training data (kspec.data)."""
    if settings.val_data is not None:
        path = Path(settings.val_data).resolve()
        from .data import count_rows

        rows = count_rows(path)
        return HeldOut("file", (0, rows), str(path), file_sha256(path))
    if not settings.validation_split:
        return HeldOut("none")
    total = len(dataset)
    start = split_start(total, settings.validation_split, dataset.streamed)
    if settings.data is not None:
        path = Path(settings.data).resolve()
        return HeldOut("split", (start, total), str(path), file_sha256(path))
    rows = dataset.window(start, total)
    return HeldOut("synthetic", (start, total), sha256=arrays_sha256({**rows.inputs, **rows.targets}),
                   samples=settings.synthetic, seed=settings.seed)


def record(run_dir: Path, settings: Any, dataset: Any) -> None:
    """Write a new run's validation.json."""
    write_text(run_dir / RECORD, held_out_of(settings, dataset).to_json())


def read_record(run_dir: Path) -> HeldOut:
    """A run folder's validation.json, refused when missing, edited or damaged."""
    if not (run_dir / "run.json").is_file():
        raise fail(RunError, str(run_dir), "not a kspec run folder (no run.json)",
                   "--run takes the folder a `kspec train` wrote (its --out, or runs/NAME-TIMESTAMP)")
    path = run_dir / RECORD
    if not path.is_file():
        raise fail(RunError, str(path), "the run did not record its validation rows (no validation.json)",
                   "it was trained by an older kspec, or distributed; evaluate the model on data of your own: "
                   f"kspec evaluate SPEC --weights {run_dir / 'model.keras'} --data FILE")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise fail(RunError, str(path), f"cannot read the validation record: {exc}",
                   "restore the run folder's files as kspec wrote them") from None
    problem = _record_problem(data)
    if problem is not None:
        raise fail(RunError, str(path), f"the validation record was edited or damaged: {problem}",
                   "restore the run folder's files as kspec wrote them")
    rows = tuple(data.get("rows", (0, 0)))
    return HeldOut(data["kind"], (rows[0], rows[1]), data.get("data"), data.get("sha256"),
                   data.get("samples"), data.get("seed"))


def _record_problem(data: Any) -> str | None:
    """What is wrong with validation.json's content, or None."""
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        return f"'kind' must be one of {', '.join(KINDS)}"
    needed = {"split": ("data", "sha256"), "file": ("data", "sha256"), "synthetic": ("samples", "seed", "sha256"),
              "none": ()}[data["kind"]]
    for name in needed:
        if not isinstance(data.get(name), str if name in ("data", "sha256") else int):
            return f"'{name}' is missing or of the wrong type"
    if data["kind"] == "none":
        return None
    rows = data.get("rows")
    if (not isinstance(rows, list) or len(rows) != 2 or not all(type(r) is int for r in rows)
            or not 0 <= rows[0] < rows[1]):
        return "'rows' must be [START, STOP] with 0 <= START < STOP"
    return None


def check_unchanged(held_out: HeldOut, run_dir: Path) -> Path:
    """The recorded data file, refused when it is gone or its bytes changed since the run."""
    assert held_out.data is not None and held_out.sha256 is not None
    path = Path(held_out.data)
    if not path.exists():
        raise fail(RunError, str(path), "the run's validation data is gone",
                   f"put the file back where the run found it; {run_dir / RECORD} names it")
    if file_sha256(path) != held_out.sha256:
        raise fail(RunError, str(path), "the data file changed since the run was trained (its SHA-256 differs), "
                   "so its held-out rows are not the ones the run held out",
                   "restore the file as it was, or evaluate on data of your own with --weights and --data")
    return path


def no_rows_error(run_dir: Path) -> RunError:
    return fail(RunError, str(run_dir), "the run held out no validation rows, so there is nothing unseen to "
                "evaluate it on",
                "train with --validation-split F or --val-data FILE, or evaluate on data of your own: "
                f"kspec evaluate SPEC --weights {run_dir / 'model.keras'} --data FILE")
