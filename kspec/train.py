"""`kspec train`: build a spec, train it, and leave a run folder behind.

A run folder holds everything needed to continue or reuse a run:

    spec.yaml        the spec as run
    run.json         seed, data, batch size, epochs, versions, status
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
consistently.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__, plot
from .backend import Cluster, stderr_silenced
from .checkpointing import DEFAULT_INTERVAL, Checkpointer
from .build import (DEFAULT_MAX_PARAMS, build, check_activation_memory, deep_graphs, import_keras, keras_errors,
                    load_weights)
from .data import Dataset, check_training_data, load_npz, synthetic
from .distributed import fingerprint, off_the_distribution, shard, shared_seed, use_data_parallel
from .feed import batch_stream, reading
from .run_errors import model_errors
from .errors import Diagnostic, Interrupted, KspecError, Location, RunError, fail
from .files import check_output, save_model, write_text
from .spec.model import ModelDef

KEEP_CHECKPOINTS = 3
NAME_BYTES = 255  # the longest file name most file systems take (ext4, APFS, NTFS)
RUN_NAME_BYTES = NAME_BYTES - 16  # room for the name it is assembled under: .NAME.PID.tmp
DEFAULT_EPOCHS = 1
DEFAULT_BATCH_SIZE = 32


@dataclass
class RunSettings:
    """What a run was started with; stored in run.json so --resume can repeat it."""

    spec: str
    seed: int
    epochs: int
    batch_size: int
    data: str | None = None
    synthetic: int | None = None
    validation_split: float | None = None
    val_data: str | None = None
    weights: str | None = None
    strategy: str | None = None
    shuffle: bool = True
    stream: bool | None = None  # read data batch by batch from the file (None: when it is large)
    processes: int = 1  # with --distributed: the batch size is per process
    checkpoint_interval: float = DEFAULT_INTERVAL  # seconds between checkpoints (the last epoch always has one)
    epochs_completed: int = 0
    status: str = "running"  # or "completed", "interrupted", "failed"
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why a "failed" run stopped


# What each run.json field must hold, to refuse an edited file before trusting it.
_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "spec": (str,), "seed": (int,), "epochs": (int,), "batch_size": (int,), "data": (str, type(None)),
    "synthetic": (int, type(None)), "validation_split": (float, int, type(None)), "val_data": (str, type(None)),
    "weights": (str, type(None)), "strategy": (str, type(None)), "shuffle": (bool,), "stream": (bool, type(None)),
    "processes": (int,), "checkpoint_interval": (float, int), "epochs_completed": (int,), "status": (str,),
    "versions": (dict,), "error": (str, type(None)),
}
_STATUSES = ("running", "completed", "interrupted", "failed")


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    epochs_completed: int
    history: list[dict[str, float]]
    seconds: float
    fingerprint: str | None = None  # of the final weights, in a distributed run


# ----------------------------------------------------------------- run folder
class RunFolder:
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
            raise fail(RunError, str(path), f"cannot read run settings: {exc}", _DAMAGED_HINT) from None
        problem = _settings_problem(data)
        if problem is not None:
            raise fail(RunError, str(path), f"the run settings were edited or damaged: {problem}", _DAMAGED_HINT)
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

    def read_history(self) -> list[dict[str, float]]:
        path = self.path / "history.csv"
        return plot.read_history(path) if path.exists() else []

    def history_until(self, epoch: int) -> list[dict[str, float]]:
        """The history's rows up to `epoch`, refused unless it has every one of them."""
        rows = [row for row in self.read_history() if row["epoch"] <= epoch]
        if len(rows) != epoch:
            raise fail(RunError, str(self.path / "history.csv"), f"the history has {len(rows)} row(s) up to the "
                       f"checkpoint of epoch {epoch}; it was edited or damaged", _DAMAGED_HINT)
        return rows

    def record_failure(self, settings: RunSettings, error: Exception) -> None:
        """Mark the run failed, with why, so run.json never says "running" for a run that stopped."""
        settings.status = "failed"
        settings.error = ("\n".join(d.format(with_source=False) for d in error.diagnostics)
                          if isinstance(error, KspecError) else f"{type(error).__name__}: {error}")
        with contextlib.suppress(KspecError):  # the run's own error is the one to report
            self.save_settings(settings)

    def write_history(self, rows: list[dict[str, float]]) -> None:
        columns = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: (int(value) if key == "epoch" else repr(float(value)))
                             for key, value in row.items()})
        write_text(self.path / "history.csv", buffer.getvalue())


_DAMAGED_HINT = "restore the run folder's files as kspec wrote them, or start the run again"


def _settings_problem(data: Any) -> str | None:
    """What is wrong with run.json's content, or None."""
    if not isinstance(data, dict):
        return "it does not hold an object"
    for name in data:
        if name not in _SETTING_TYPES:
            return f"unknown field '{name}'"
    for name in ("spec", "seed", "epochs", "batch_size"):
        if name not in data:
            return f"the field '{name}' is missing"
    for name, value in data.items():
        types = _SETTING_TYPES[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"'{name}' is {json.dumps(value)[:60]}, which is not a {' or '.join(t.__name__ for t in types)}"
    low = {"seed": 0, "epochs": 1, "batch_size": 1, "epochs_completed": 0, "processes": 1, "synthetic": 1}
    for name, least in low.items():
        if isinstance(data.get(name), int) and data[name] < least:
            return f"'{name}' is {data[name]}, below {least}"
    high = {"seed": 2**32 - 1, "batch_size": 2**31 - 1, "epochs": 2**31 - 1}  # what the command line takes (kspec.cli)
    for name, most in high.items():
        if isinstance(data.get(name), int) and data[name] > most:
            return f"'{name}' is {data[name]}, above {most}"
    interval = data.get("checkpoint_interval", 0)
    split = data.get("validation_split") or 0
    if not 0 <= interval < float("inf") or not 0 <= split < 1:
        return "'checkpoint_interval' or 'validation_split' is out of range"
    if data.get("status", "running") not in _STATUSES:
        return f"'status' is {json.dumps(data['status'])[:60]}, not one of {', '.join(_STATUSES)}"
    if not all(isinstance(v, str) for v in data.get("versions", {}).values()):
        return "'versions' holds a value that is not text"
    return None


def _check_same_model(built: Any, restored: Any, folder: RunFolder) -> None:
    """Refuse a checkpoint whose model is not the spec's: its config was edited, or it is another run's."""
    def shapes(model: Any) -> list[tuple[Any, ...]]:
        return [tuple(weight.shape) for weight in model.weights]

    if shapes(restored) != shapes(built):
        raise fail(RunError, str(folder.newest_whole or folder.checkpoints),
                   "the checkpoint does not hold this spec's model: its weights differ in number or shape",
                   _DAMAGED_HINT)


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


# ---------------------------------------------------------------- callbacks
class StopFlag:
    """Set by SIGINT/SIGTERM, and acted on at safe points: between the steps of
    setting a run up, and at the end of a training batch. A second signal stops
    at once (every file is still whole, being written through a rename)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def check(self, spec: ModelDef) -> None:
        """Stop here if a signal came while the run was being set up."""
        if self.signal is not None:
            raise Interrupted([Diagnostic(Location(spec.file), "interrupted before training started; "
                                          "no run folder was written")])


def _callbacks(keras: Any, folder: RunFolder, history: list[dict[str, float]], stop: StopFlag,
               progress: Callable[[str], None], checkpointer: Checkpointer) -> list[Any]:
    class StopOnSignal(keras.callbacks.Callback):
        # Safe to run on Keras's callback threads (JAX and torch backends): it
        # only reads a flag. Without this, fit would wait for every batch's logs.
        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.noticed = threading.Lock()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if stop.signal is not None and self.noticed.acquire(blocking=False):  # once, whichever thread
                progress("stopping after this batch; the last finished epoch is kept")
                self.model.stop_training = True

    class RecordEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if stop.signal is not None:
                return  # an interrupted epoch is not recorded; resume repeats it
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            history.append(row)
            folder.write_history(history)
            checkpointer.epoch_end(self.model, epoch + 1)

    return [StopOnSignal(), RecordEpoch(), _epoch_tensorboard(keras)(log_dir=str(folder.path / "logs"))]


def _truncate_history(folder: RunFolder, history: list[dict[str, float]], epochs: int) -> None:
    """Drop the rows past the newest checkpoint after a checkpoint could not be written."""
    history[:] = [row for row in history if row["epoch"] <= epochs]
    with contextlib.suppress(RunError):
        folder.write_history(history)


def _epoch_tensorboard(keras: Any) -> Any:
    """Keras's TensorBoard callback, logging once per epoch with no per-batch work.

    With update_freq="epoch" (its default), Keras's callback still turns every
    batch's logs into summaries that are never recorded, a cost that shows in
    the profiles in BENCHMARKS.md, and on JAX and torch it stops fit from
    running batch callbacks on a thread.
    """
    class EpochTensorBoard(keras.callbacks.TensorBoard):  # type: ignore[misc, name-defined]
        async_safe = True  # its batch hook below does nothing

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            pass  # Keras's also writes the training graph here, which Keras 3 never has (BENCHMARKS.md)

    return EpochTensorBoard


# -------------------------------------------------------------------- seeding
def seed_everything(keras: Any, seed: int) -> None:
    """Seed Python, NumPy and Keras; make TensorFlow's ops deterministic."""
    with stderr_silenced():  # Keras seeds TensorFlow too when installed, whatever the backend: its start-up log
        keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def strategy_scope(keras: Any, strategy: str | None, progress: Callable[[str], None]) -> Any:
    """The scope to build the model in: a tf.distribute strategy's, or none."""
    if strategy is None:
        return contextlib.nullcontext()
    if keras.backend.backend() != "tensorflow":
        raise fail(RunError, "--strategy", f"--strategy {strategy} needs the TensorFlow backend, "
                   f"not {keras.backend.backend()}", "leave out --strategy, or set KERAS_BACKEND=tensorflow")
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]
    progress(f"training with MirroredStrategy on {len(devices)} device(s): {', '.join(devices)}")
    return tf.distribute.MirroredStrategy(devices=devices).scope()


# ---------------------------------------------------------------------- data
def make_data(spec: ModelDef, settings: RunSettings, student_shapes: dict[str, tuple[Any, ...]],
              cluster: Cluster | None = None) -> Dataset:
    """The training data; in a distributed run, this process's share of it."""
    if settings.data is not None:
        dataset = load_npz(settings.data, spec, student_shapes, stream=settings.stream)
        return shard(dataset, cluster) if cluster else dataset
    assert settings.synthetic is not None
    if cluster is None:
        return synthetic(spec, settings.synthetic, settings.seed, _teacher(spec))
    # Every process makes the same samples from the run's seed and takes its slice, as with --data. The
    # teacher stays off the distribution: its outputs must be read back on this process.
    with off_the_distribution(import_keras()):
        dataset = synthetic(spec, settings.synthetic, settings.seed, _teacher(spec))
    return shard(dataset, cluster)


def _teacher(spec: ModelDef) -> Callable[[Any], list[Any]]:
    """A second, freshly initialised copy of the model, whose outputs label synthetic data."""
    teacher = build(spec, compile=False).model  # the same on every process: built from the same seed

    def predict(x: Any) -> list[Any]:
        with model_errors(spec, "labelling synthetic data with a copy of the model"):
            outputs = teacher.predict(x, batch_size=256, verbose=0)
        return outputs if isinstance(outputs, list) else [outputs]

    return predict


# --------------------------------------------------------------------- train
def train(spec: ModelDef, spec_text: str, *, data: Path | None = None, synthetic_n: int | None = None,
          epochs: int | None = None, batch_size: int | None = None, validation_split: float | None = None,
          val_data: Path | None = None, out: Path | None = None, seed: int | None = None,
          weights: Path | None = None, resume: Path | None = None, strategy: str | None = None,
          verbose: Any = "auto", progress: Callable[[str], None] = print,
          max_params: int = DEFAULT_MAX_PARAMS, shuffle: bool = True,
          cluster: Cluster | None = None, stop: StopFlag | None = None, stream: bool | None = None,
          checkpoint_interval: float | None = None) -> TrainResult:
    """Train a checked spec and write its run folder. See the module docstring.

    With a `cluster` (already joined), trains data-parallel over all its
    processes; see kspec.distributed. `checkpoint_interval` is in seconds
    (default: a new run's 60, a resumed run's own); see kspec.checkpointing.
    """
    options = dict(data=data, synthetic_n=synthetic_n, epochs=epochs, batch_size=batch_size,
                   validation_split=validation_split, val_data=val_data, out=out, seed=seed, weights=weights,
                   resume=resume, strategy=strategy, verbose=verbose, progress=progress, max_params=max_params,
                   shuffle=shuffle, cluster=cluster, stream=stream, checkpoint_interval=checkpoint_interval)
    if stop is None:  # called as a library: handle signals for the length of the call
        with StopFlag() as flag:
            return _train(spec, spec_text, stop=flag, **options)
    if cluster is None or cluster.is_chief:
        return _train(spec, spec_text, stop=stop, **options)
    # Other processes save too (saving is collective), into a scratch folder that is then removed.
    scratch = Path(tempfile.mkdtemp(prefix="kspec-process-"))
    try:
        if resume is not None:
            options["resume"] = _copy_run(resume, scratch)
        options["out"] = scratch / "run"
        return _train(spec, spec_text, stop=stop, **options)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _copy_run(run: Path, scratch: Path) -> Path:
    """A private copy of a run folder, for a process that resumes it without writing to it."""
    copy = scratch / "run"
    shutil.copytree(run, copy)
    return copy


def _train(spec: ModelDef, spec_text: str, *, data: Path | None, synthetic_n: int | None, epochs: int | None,
           batch_size: int | None, validation_split: float | None, val_data: Path | None, out: Path | None,
           seed: int | None, weights: Path | None, resume: Path | None, strategy: str | None, verbose: Any,
           progress: Callable[[str], None], max_params: int, shuffle: bool,
           cluster: Cluster | None, stop: StopFlag, stream: bool | None,
           checkpoint_interval: float | None) -> TrainResult:
    if resume is not None:
        folder = RunFolder.open(resume)
        settings = folder.settings()
        if (folder.path / "spec.yaml").read_text(encoding="utf-8") != spec_text:
            raise fail(RunError, str(resume / "spec.yaml"), "the spec differs from the one this run started with",
                       "resume with the same spec, or start a new run")
        if epochs is not None:
            settings.epochs = epochs
        if checkpoint_interval is not None:
            settings.checkpoint_interval = checkpoint_interval
    else:
        if data is None and synthetic_n is None:
            raise fail(RunError, spec.file, "no training data", "give --data FILE.npz or --synthetic N")
        if seed is None:
            seed = secrets.randbelow(2**31)
            if cluster is not None:
                seed = shared_seed(seed)
        settings = RunSettings(
            spec=spec.file, seed=seed,
            epochs=epochs or spec.training.epochs or DEFAULT_EPOCHS,
            batch_size=batch_size or spec.training.batch_size or DEFAULT_BATCH_SIZE,
            data=str(data) if data else None, synthetic=synthetic_n,
            validation_split=validation_split if validation_split is not None else spec.training.validation_split,
            val_data=str(val_data) if val_data else None, weights=str(weights) if weights else None,
            strategy=strategy, shuffle=shuffle, stream=stream, processes=cluster.num_processes if cluster else 1,
            checkpoint_interval=DEFAULT_INTERVAL if checkpoint_interval is None else checkpoint_interval)
        folder = None

    if resume is None:
        RunFolder.choose(out, spec.name)  # refuse a used --out before any work
    keras = import_keras()
    stop.check(spec)
    settings.versions = {"kspec": __version__, "keras": keras.__version__, "backend": keras.backend.backend()}
    seed_everything(keras, settings.seed)
    if cluster is not None:
        use_data_parallel(keras)
    with strategy_scope(keras, settings.strategy, progress):
        built = build(spec, max_params=max_params)
        # After the build, so that a spec Keras rejects is told its located error first.
        if spec.compile is None or spec.compile.loss is None:
            raise fail(RunError, spec.file, "the spec has no 'loss', so it cannot be trained",
                       "add e.g. 'loss: binary_crossentropy' (and an 'optimizer') to the spec")
        # A batch that cannot fit is refused before any data is made (Keras takes at most N rows a batch).
        check_activation_memory(built, min(settings.batch_size, settings.synthetic or settings.batch_size))
        stop.check(spec)
        dataset = make_data(spec, settings, built.output_shapes(), cluster)
        validation = None
        if settings.val_data is not None:
            validation = load_npz(settings.val_data, spec, built.output_shapes(), stream=settings.stream)
            validation = shard(validation, cluster) if cluster else validation
        check_training_data(dataset, validation, settings.batch_size, settings.validation_split)
        model = built.model
        stop.check(spec)
        if resume is not None:
            assert folder is not None
            model, history = _restore(keras, spec, folder, settings)
            _check_same_model(built.model, model, folder)
        else:
            if settings.weights is not None:
                load_weights(model, settings.weights, Location(settings.weights))
            folder = RunFolder.create(RunFolder.choose(out, spec.name), spec_text, settings, model)
            history = []
    assert folder is not None
    start_epoch = settings.epochs_completed
    if start_epoch >= settings.epochs:
        raise fail(RunError, str(folder.path), f"the run already finished its {settings.epochs} epochs",
                   "give a larger --epochs to train it further")
    if resume is not None:  # only now, past every refusal, is the run's record changed
        for path in folder.damaged:
            progress(f"skipped the damaged checkpoint {path}")
        folder.write_history(history)  # without the rows past the checkpoint
        settings.status, settings.error = "running", None
        folder.save_settings(settings)
    try:
        return _run(keras, spec, folder, settings, dataset, validation, model, history, stop, verbose, progress,
                    cluster)
    except Interrupted:
        raise
    except Exception as exc:  # a located error, or a fault of kspec's own: either way, the run failed
        folder.record_failure(settings, exc)
        raise


def _run(keras: Any, spec: ModelDef, folder: RunFolder, settings: RunSettings, dataset: Dataset,
         validation: Dataset | None, model: Any, history: list[dict[str, float]], stop: StopFlag, verbose: Any,
         progress: Callable[[str], None], cluster: Cluster | None) -> TrainResult:
    """Train from the run's last finished epoch to its last, and complete the run folder."""
    start_epoch = settings.epochs_completed
    # Re-seed by epoch, so a resumed run draws the same shuffles as a fresh one would.
    keras.utils.set_random_seed((settings.seed + start_epoch) % 2**32)  # NumPy's seeds stop below 2**32

    def checkpoint(model: Any, epoch: int) -> None:
        try:
            folder.save_checkpoint(model, epoch)
        except RunError:  # e.g. a full disk: take the rows back, so history matches the checkpoints
            _truncate_history(folder, history, settings.epochs_completed)
            raise
        settings.epochs_completed = epoch
        folder.save_settings(settings)

    # A distributed run saves collectively, so its processes must agree on when: every epoch.
    interval = 0.0 if cluster is not None else settings.checkpoint_interval
    checkpointer = Checkpointer(checkpoint, settings.epochs, interval)
    started = time.monotonic()
    # Signals were caught from the start; the callbacks act on them after each batch.
    callbacks = _callbacks(keras, folder, history, stop, progress, checkpointer)
    with model_errors(spec, "training"):
        if dataset.streamed or (validation is not None and validation.streamed):
            train_feed, validation_feed = _streams(keras, spec, dataset, validation, settings)
            with reading(train_feed, validation_feed):  # a data file that changed: its own error
                model.fit(train_feed, validation_data=validation_feed, epochs=settings.epochs,
                          initial_epoch=start_epoch, shuffle=False, verbose=verbose,
                          callbacks=callbacks)  # the feed shuffles; Keras would again
        else:
            model.fit(
                dataset.x(spec), dataset.y(spec),
                batch_size=settings.batch_size, epochs=settings.epochs, initial_epoch=start_epoch,
                validation_split=(settings.validation_split or 0.0) if validation is None else 0.0,
                validation_data=(validation.x(spec), validation.y(spec)) if validation else None,
                shuffle=settings.shuffle, verbose=verbose, callbacks=callbacks,
            )
    seconds = time.monotonic() - started
    checkpointer.flush(model)  # the last epoch, or the last finished one of a run stopped early
    if history and plot.available():  # an optional extra; training never needs it
        plot.plot(history, folder.path / "curves.png", title=folder.path.name)
    # A signal that came after the last epoch finished stops nothing: the run completes.
    if stop.signal is not None and settings.epochs_completed < settings.epochs:
        settings.status = "interrupted"
        folder.save_settings(settings)
        raise Interrupted([Diagnostic(
            Location(str(folder.path)),
            f"training interrupted; the run folder holds {settings.epochs_completed} finished epoch(s)",
            f"resume with: kspec train {spec.file} --resume {folder.path}")])
    settings.status = "completed"
    save_model(model, folder.path / "model.keras")
    folder.save_settings(settings)
    return TrainResult(folder.path, settings.epochs_completed - start_epoch, settings.epochs_completed,
                       history, seconds, fingerprint(model) if cluster else None)


def _streams(keras: Any, spec: ModelDef, dataset: Dataset, validation: Dataset | None,
             settings: RunSettings) -> tuple[Any, Any]:
    """Batch streams for data read from its file: training, and validation (its own, or the last rows)."""
    if validation is None and settings.validation_split:
        split = len(dataset) - int(len(dataset) * settings.validation_split)  # the last rows, as Keras takes them
        dataset, validation = dataset.window(0, split), dataset.window(split, len(dataset))
    train_feed = batch_stream(keras, spec, dataset, settings.batch_size, settings.shuffle,
                              settings.seed + settings.epochs_completed)
    validation_feed = batch_stream(keras, spec, validation, settings.batch_size) if validation else None
    return train_feed, validation_feed


def _restore(keras: Any, spec: ModelDef, folder: RunFolder,
             settings: RunSettings) -> tuple[Any, list[dict[str, float]]]:
    """The newest checkpoint (with optimizer state) and the history up to it."""
    latest = folder.latest_checkpoint()
    if latest is None and folder.damaged:
        raise fail(RunError, str(folder.damaged[0]), "the checkpoint is damaged (cut short or edited), "
                   "and the run has no older whole one to resume from", _DAMAGED_HINT)
    if latest is None:
        raise fail(RunError, str(folder.path), "the run has no checkpoint to resume from",
                   "its checkpoints folder was emptied; start the run again")
    epoch, path = latest
    from .modelfile import check_model_file

    check_model_file(path)  # before Keras reads any of it
    with keras_errors(Location(str(path)), "the checkpoint"), deep_graphs(spec):
        model = keras.saving.load_model(path, safe_mode=True)  # never runs code from a file
    history = folder.history_until(epoch)
    settings.epochs_completed = epoch  # recorded once the run is sure to go on
    return model, history

