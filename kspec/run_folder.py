"""A training run's folder: its files, how they are written, and the checks before they are trusted.

A run folder holds everything needed to continue or reuse a run:

    spec.yaml        the spec as run
    run.json         seed, data, batch size, epochs, versions, status (kspec.run_settings)
    validation.json  which rows were held out for validation, with the data's checksum (kspec.held_out)
    history.csv      one row per finished epoch: every loss and metric
    checkpoints/     epoch-NNNN.keras for the last checkpoints (optimizer state included)
    logs/            TensorBoard logs
    curves.png       every loss and metric per epoch (when matplotlib is installed)
    model.keras      the final model, once training has finished

The folder appears, through a rename, only once it holds an epoch-0
checkpoint. Each epoch then writes its history row first and, when one is due
(see kspec.checkpointing), its checkpoint second, each through a temporary
file and a rename. `--resume` continues from the newest checkpoint and drops
history rows past it, so whatever moment a run was stopped at, it resumes
consistently (kspec.train).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import plot
from .errors import KspecError, RunError, fail
from .files import check_output, save_model, write_text
from .run_settings import RunSettings, settings_problem

KEEP_CHECKPOINTS = 3
NAME_BYTES = 255  # the longest file name most file systems take (ext4, APFS, NTFS)
RUN_NAME_BYTES = NAME_BYTES - 16  # room for the name it is assembled under: .NAME.PID.tmp
DAMAGED_HINT = "restore the run folder's files as kspec wrote them, or start the run again"


class RunFolder:
    """One run's folder: run.json, history.csv and the checkpoints, each read back with a check."""

    def __init__(self, path: Path):
        self.path = path
        self.checkpoints = path / "checkpoints"
        self.damaged: list[Path] = []  # checkpoints found cut short or edited, newest first
        self.newest_whole: Path | None = None  # the checkpoint latest_checkpoint chose

    @staticmethod
    def choose(out: Path | None, spec_name: str) -> Path:
        """The run folder's path: --out (which must be new or empty), or runs/NAME-TIMESTAMP."""
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            spec_name = os.fsencode(spec_name)[:RUN_NAME_BYTES - 40].decode(errors="ignore")  # room for the stamp
            out = Path("runs") / f"{spec_name}-{stamp}"
            suffix = 1
            while out.exists():
                suffix += 1
                out = Path("runs") / f"{spec_name}-{stamp}-{suffix}"
        if len(os.fsencode(out.name)) > RUN_NAME_BYTES:
            raise fail(RunError, str(out), f"the run folder's name is {len(os.fsencode(out.name)):,} bytes long; "
                       f"it may take {RUN_NAME_BYTES} at most", "choose a shorter --out")
        check_output(out, folder=True)  # not a link, device or file
        if out.exists() and any(out.iterdir()):
            raise fail(RunError, str(out), "output folder already exists and is not empty",
                       f"continue that run with --resume {out}, or choose another --out")
        parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise fail(RunError, str(out), f"cannot create the run folder: '{parent}' is not writable",
                       "choose another --out")
        return out

    @classmethod
    def create(cls, out: Path, spec_text: str, settings: RunSettings, model: Any) -> RunFolder:
        """Write a resumable run folder: spec, settings and an epoch-0 checkpoint.

        It is assembled under a temporary name and renamed into place, so the
        folder either does not exist or can be resumed, whenever a run stops.
        """
        staging = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            (staging / "checkpoints").mkdir(parents=True)
            folder = cls(staging)
            write_text(staging / "spec.yaml", spec_text)
            folder.save_settings(settings)
            folder.save_checkpoint(model, 0)
            _check_space(staging, out)
            os.replace(staging, out)  # an empty --out folder is replaced too
        except OSError as exc:
            raise fail(RunError, str(out), f"cannot create the run folder: {exc.strerror or exc}",
                       "check that its parent folder exists, is writable and has space") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return cls(out)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        folder = cls(path)
        if not (path / "run.json").is_file():
            raise fail(RunError, str(path), "not a kspec run folder (no run.json)",
                       "--resume takes the folder a previous `kspec train` wrote")
        return folder

    def settings(self) -> RunSettings:
        path = self.path / "run.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(RunError, str(path), f"cannot read run settings: {exc}", DAMAGED_HINT) from None
        problem = settings_problem(data)
        if problem is not None:
            raise fail(RunError, str(path), f"the run settings were edited or damaged: {problem}", DAMAGED_HINT)
        return RunSettings(**data)

    def save_settings(self, settings: RunSettings) -> None:
        write_text(self.path / "run.json", json.dumps(asdict(settings), indent=2) + "\n")

    def checkpoint_files(self) -> list[tuple[int, Path]]:
        """Every checkpoint with its epoch, oldest first (by number: epoch-10000 comes after epoch-9999)."""
        return sorted((int(m.group(1)), p) for p in self.checkpoints.glob("epoch-*.keras")
                      if (m := re.fullmatch(r"epoch-(\d+)\.keras", p.name)))

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        """The newest checkpoint that is whole; damaged newer ones are listed in `self.damaged`."""
        self.damaged = []
        for epoch, path in reversed(self.checkpoint_files()):
            if _whole_keras_file(path):
                self.newest_whole = path
                return epoch, path
            self.damaged.append(path)
        return None

    def save_checkpoint(self, model: Any, epoch: int) -> None:
        save_model(model, self.checkpoints / f"epoch-{epoch:04d}.keras")
        for _, path in self.checkpoint_files()[:-KEEP_CHECKPOINTS]:
            path.unlink()

    def check_same_model(self, built: Any, restored: Any) -> None:
        """Refuse a checkpoint whose model is not the spec's: its config was edited, or it is another run's."""
        def shapes(model: Any) -> list[tuple[Any, ...]]:
            return [tuple(weight.shape) for weight in model.weights]

        if shapes(restored) != shapes(built):
            raise fail(RunError, str(self.newest_whole or self.checkpoints),
                       "the checkpoint does not hold this spec's model: its weights differ in number or shape",
                       DAMAGED_HINT)

    def read_history(self) -> list[dict[str, float]]:
        path = self.path / "history.csv"
        return plot.read_history(path) if path.exists() else []

    def history_until(self, epoch: int) -> list[dict[str, float]]:
        """The history's rows up to `epoch`, refused unless it has every one of them."""
        rows = [row for row in self.read_history() if row["epoch"] <= epoch]
        if len(rows) != epoch:
            raise fail(RunError, str(self.path / "history.csv"), f"the history has {len(rows)} row(s) up to the "
                       f"checkpoint of epoch {epoch}; it was edited or damaged", DAMAGED_HINT)
        return rows

    def write_history(self, rows: list[dict[str, float]]) -> None:
        columns = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: (int(value) if key == "epoch" else repr(float(value)))
                             for key, value in row.items()})
        write_text(self.path / "history.csv", buffer.getvalue())

    def truncate_history(self, history: list[dict[str, float]], epochs: int) -> None:
        """Drop the rows past the newest checkpoint after a checkpoint could not be written."""
        history[:] = [row for row in history if row["epoch"] <= epochs]
        with contextlib.suppress(RunError):
            self.write_history(history)

    def record_failure(self, settings: RunSettings, error: Exception) -> None:
        """Mark the run failed, with why, so run.json never says "running" for a run that stopped."""
        settings.status = "failed"
        settings.error = ("\n".join(d.format(with_source=False) for d in error.diagnostics)
                          if isinstance(error, KspecError) else f"{type(error).__name__}: {error}")
        with contextlib.suppress(KspecError):  # the run's own error is the one to report
            self.save_settings(settings)


def _whole_keras_file(path: Path) -> bool:
    """Whether a checkpoint is a readable zip with a model's config and weights (not cut short or edited)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return {"config.json", "model.weights.h5"} <= names


def _check_space(staging: Path, out: Path) -> None:
    """Refuse to start when the disk cannot hold the checkpoints a run keeps."""
    size = (staging / "checkpoints" / "epoch-0000.keras").stat().st_size
    needed = size * (KEEP_CHECKPOINTS + 2)  # the kept checkpoints, model.keras, one being written
    free = shutil.disk_usage(staging).free
    if free < needed:
        raise fail(RunError, str(out), f"not enough disk space: the run needs about {needed / 1e6:,.0f} MB "
                   f"for its checkpoints and has {free / 1e6:,.0f} MB free", "free some space, or choose another --out")
