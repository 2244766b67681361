"""`kspec train`: build a spec, train it, and leave a run folder behind; or resume one.

`train` takes the run's TrainOptions (kspec.train_options), resolves them into
the RunSettings that run.json records (kspec.run_settings), refuses what cannot
work before anything is written, then trains from the run's last finished epoch
to its last. What the run folder holds, and in which order its files are
written, is in kspec.run_folder; the data comes from kspec.run_data, the
callbacks from kspec.callbacks, and signals are caught by kspec.signals.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from . import __version__, adapt, held_out, plot
from .backend import Cluster, import_keras, stderr_silenced
from .build import build, check_activation_memory, deep_graphs, keras_errors, load_weights
from .callbacks import best_weights, check_monitors, run_callbacks, spec_callbacks, why_stopped
from .checkpointing import DEFAULT_INTERVAL, Checkpointer
from .data import Dataset
from .distributed import fingerprint, shared_seed, use_data_parallel
from .errors import Diagnostic, Interrupted, KspecError, Location, RunError, fail
from .feed import reading
from .files import save_model
from .run_errors import model_errors
from .run_data import batch_streams, run_data
from .run_folder import DAMAGED_HINT, RunFolder
from .precision import dtype_policy
from .weights import for_fit, refuse_streamed_weights
from .run_settings import RunSettings
from .signals import StopFlag
from .spec.model import ModelDef
from .train_options import TrainOptions

DEFAULT_EPOCHS = 1
DEFAULT_BATCH_SIZE = 32


@dataclass
class TrainResult:
    """What a call of `train` did: its run folder, the epochs it trained, and the history."""

    run_dir: Path
    epochs_run: int
    epochs_completed: int
    history: list[dict[str, float]]
    seconds: float
    fingerprint: str | None = None  # of the final weights, in a distributed run


@dataclass(frozen=True)
class _Call:
    """How one call of `train` reports and stops: not a setting of the run, and not recorded."""

    verbose: Any
    progress: Callable[[str], None]
    cluster: Cluster | None
    stop: StopFlag
    extra: tuple[Any, ...] = ()  # a caller's own Keras callbacks (kspec tune's pruning), run after the spec's


@dataclass
class _Run:
    """A run ready to train: its folder and settings, the model, the history so far, and the data."""

    folder: RunFolder
    settings: RunSettings
    model: Any
    history: list[dict[str, float]]
    dataset: Dataset
    validation: Dataset | None


def train(spec: ModelDef, spec_text: str, options: TrainOptions | None = None, *, verbose: Any = "auto",
          progress: Callable[[str], None] = print, cluster: Cluster | None = None, stop: StopFlag | None = None,
          callbacks: tuple[Any, ...] = (), **fields: Any) -> TrainResult:
    """Train a checked spec and write its run folder. See the module docstring.

    `options` may also be given field by field as keywords (`synthetic_n=64,
    epochs=2`), which replace those of `options`. With a `cluster` (already
    joined), trains data-parallel over all its processes; see
    kspec.distributed. `checkpoint_interval` is in seconds (default: a new
    run's 60, a resumed run's own); see kspec.checkpointing. `callbacks` are
    Keras callbacks of the caller's, called after kspec's and the spec's.
    """
    options = replace(options or TrainOptions(), **fields)
    if stop is None:  # called as a library: handle signals for the length of the call
        with StopFlag() as flag:
            return _train(spec, spec_text, options, _Call(verbose, progress, cluster, flag, tuple(callbacks)))
    call = _Call(verbose, progress, cluster, stop, tuple(callbacks))
    if cluster is None or cluster.is_chief:
        return _train(spec, spec_text, options, call)
    # Other processes save too (saving is collective), into a scratch folder that is then removed.
    scratch = Path(tempfile.mkdtemp(prefix="kspec-process-"))
    try:
        resume = _copy_run(options.resume, scratch) if options.resume is not None else None
        return _train(spec, spec_text, replace(options, resume=resume, out=scratch / "run"), call)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _copy_run(run: Path, scratch: Path) -> Path:
    """A private copy of a run folder, for a process that resumes it without writing to it."""
    copy = scratch / "run"
    shutil.copytree(run, copy)
    return copy


def _new_settings(spec: ModelDef, options: TrainOptions, cluster: Cluster | None) -> RunSettings:
    """A new run's settings: the options given, else the spec's, else kspec's defaults."""
    if options.data is None and options.synthetic_n is None:
        raise fail(RunError, spec.file, "no training data", "give --data FILE.npz or --synthetic N")
    seed = options.seed
    if seed is None:
        seed = secrets.randbelow(2**31)
        if cluster is not None:
            seed = shared_seed(seed)
    split = options.validation_split
    return RunSettings(
        spec=spec.file, seed=seed,
        epochs=options.epochs or spec.training.epochs or DEFAULT_EPOCHS,
        batch_size=options.batch_size or spec.training.batch_size or DEFAULT_BATCH_SIZE,
        data=str(options.data) if options.data else None, synthetic=options.synthetic_n,
        validation_split=split if split is not None else spec.training.validation_split,
        val_data=str(options.val_data) if options.val_data else None,
        weights=str(options.weights) if options.weights else None, strategy=options.strategy,
        shuffle=options.shuffle, stream=options.stream, processes=cluster.num_processes if cluster else 1,
        checkpoint_interval=DEFAULT_INTERVAL if options.checkpoint_interval is None else options.checkpoint_interval)


def _resumed_settings(folder: RunFolder, spec_text: str, options: TrainOptions) -> RunSettings:
    """A resumed run's own settings, with the epochs and checkpoint interval it may change."""
    settings = folder.settings()
    if (folder.path / "spec.yaml").read_text(encoding="utf-8") != spec_text:
        raise fail(RunError, str(folder.path / "spec.yaml"), "the spec differs from the one this run started with",
                   "resume with the same spec, or start a new run")
    if options.epochs is not None:
        settings.epochs = options.epochs
    if options.checkpoint_interval is not None:
        settings.checkpoint_interval = options.checkpoint_interval
    if settings.status == "stopped" and options.epochs is None:  # a callback's decision stands unless overruled
        raise fail(RunError, str(folder.path), f"the run was stopped early: {settings.stopped}",
                   f"its model.keras is the run's result; to train it on anyway, resume with --epochs N "
                   f"(it stopped at epoch {settings.epochs_completed} of {settings.epochs})")
    return settings


def check_resume(spec_text: str, options: TrainOptions) -> None:
    """What a --resume folder's own files refuse (a finished run, another spec), before Keras is imported.

    A run is finished only when its newest whole checkpoint is its last
    epoch's; with that one damaged, resuming retrains from an older one.
    """
    if options.resume is None:
        return
    folder = RunFolder.open(options.resume)
    settings = _resumed_settings(folder, spec_text, options)
    latest = folder.latest_checkpoint()
    if latest is not None and min(latest[0], settings.epochs_completed) >= settings.epochs:
        raise _finished(folder.path, settings.epochs)


def _finished(path: Path, epochs: int) -> KspecError:
    return fail(RunError, str(path), f"the run already finished its {epochs} epochs",
                "give a larger --epochs to train it further")


def _train(spec: ModelDef, spec_text: str, options: TrainOptions, call: _Call) -> TrainResult:
    folder = RunFolder.open(options.resume) if options.resume is not None else None
    if folder is not None:
        settings = _resumed_settings(folder, spec_text, options)
    else:
        settings = _new_settings(spec, options, call.cluster)
        RunFolder.choose(options.out, spec.name)  # refuse a used --out before any work
    check_monitors(spec, bool(settings.validation_split) or settings.val_data is not None)
    keras = import_keras()
    call.stop.check(spec)
    settings.versions = {"kspec": __version__, "keras": keras.__version__, "backend": keras.backend.backend()}
    seed_everything(keras, settings.seed)
    if call.cluster is not None:
        use_data_parallel(keras)
    # Keras's dtype policy is global: set for this run only (kspec.precision).
    with strategy_scope(keras, settings.strategy, call.progress), dtype_policy(keras, spec.training.mixed_precision):
        run = _prepare(keras, spec, spec_text, options, settings, folder, call)
    if settings.epochs_completed >= settings.epochs:
        raise _finished(run.folder.path, settings.epochs)
    if folder is not None:  # only now, past every refusal, is the run's record changed
        for path in folder.damaged:
            call.progress(f"skipped the damaged checkpoint {path}")
        folder.write_history(run.history)  # without the rows past the checkpoint
        settings.status, settings.error, settings.stopped = "running", None, None
        folder.save_settings(settings)
    try:
        with dtype_policy(keras, spec.training.mixed_precision):
            return _fit(keras, spec, run, call)
    except Interrupted:
        raise
    except Exception as exc:  # a located error, or a fault of kspec's own: either way, the run failed
        run.folder.record_failure(settings, exc)
        raise


def _prepare(keras: Any, spec: ModelDef, spec_text: str, options: TrainOptions, settings: RunSettings,
             folder: RunFolder | None, call: _Call) -> _Run:
    """Build the model and read the data; then restore the run being resumed, or create the new run's folder."""
    built = build(spec, max_params=options.max_params)
    # After the build, so that a spec Keras rejects is told its located error first.
    if spec.compile is None or spec.compile.loss is None:
        raise fail(RunError, spec.file, "the spec has no 'loss', so it cannot be trained",
                   "add e.g. 'loss: binary_crossentropy' (and an 'optimizer') to the spec")
    # A batch that cannot fit is refused before any data is made (Keras takes at most N rows a batch).
    check_activation_memory(built, min(settings.batch_size, settings.synthetic or settings.batch_size))
    call.stop.check(spec)
    dataset, validation = run_data(spec, settings, built.output_shapes(), call.cluster)
    refuse_streamed_weights(dataset, validation)  # before the run folder is made
    call.stop.check(spec)
    if folder is not None:
        model, history = _restore(keras, spec, folder, settings)  # adapted already: its state is in the checkpoint
        folder.check_same_model(adapt.like_restored(built, model, options.max_params).model, model)
    else:
        # Layers marked `adapt: true` are fitted to the training rows, never the held-out ones (kspec.adapt).
        built = adapt.adapt(keras, built, adapt.training_rows(dataset, validation, settings.validation_split),
                            settings.batch_size, options.max_params, call.progress, call.cluster is not None)
        model, history = built.model, []
        if settings.weights is not None:
            load_weights(model, settings.weights, Location(settings.weights))
        folder = RunFolder.create(RunFolder.choose(options.out, spec.name), spec_text, settings, model)
        if call.cluster is None:  # which rows are held out, for `kspec evaluate --run` (a process's share is not)
            held_out.record(folder.path, settings, dataset)
    return _Run(folder, settings, model, history, dataset, validation)


def _fit(keras: Any, spec: ModelDef, run: _Run, call: _Call) -> TrainResult:
    """Train from the run's last finished epoch to its last, and complete the run folder."""
    folder, settings, model, history = run.folder, run.settings, run.model, run.history
    start_epoch = settings.epochs_completed
    # Re-seed by epoch, so a resumed run draws the same shuffles as a fresh one would.
    keras.utils.set_random_seed((settings.seed + start_epoch) % 2**32)  # NumPy's seeds stop below 2**32

    def checkpoint(model: Any, epoch: int) -> None:
        try:
            folder.save_checkpoint(model, epoch)
        except RunError:  # e.g. a full disk: take the rows back, so history matches the checkpoints
            folder.truncate_history(history, settings.epochs_completed)
            raise
        settings.epochs_completed = epoch
        folder.save_settings(settings)

    # A distributed run saves collectively, so its processes must agree on when: every epoch.
    interval = 0.0 if call.cluster is not None else settings.checkpoint_interval
    own = spec_callbacks(keras, spec)  # after kspec's: each epoch is recorded before they act on it
    restores = any(getattr(callback, "restore_best_weights", False) for callback in own)
    checkpointer = Checkpointer(checkpoint, settings.epochs, interval, changed_after=restores)
    started = time.monotonic()
    # Signals were caught from the start; the callbacks act on them after each batch.
    callbacks = run_callbacks(keras, folder, history, call.stop, call.progress, checkpointer) + own + list(call.extra)
    with model_errors(spec, "training"):
        _fit_model(keras, spec, run, call.verbose, callbacks)
    seconds = time.monotonic() - started
    checkpointer.flush(model)  # the last epoch, or the last finished one of a run stopped early
    kept = best_weights(keras, own)
    if kept is not None:  # the checkpoints hold each epoch's own weights; model.keras the best epoch's
        model.set_weights(kept)
    stopped = why_stopped(keras, own, settings.epochs_completed) if model.stop_training else None
    if history and plot.available():  # an optional extra; training never needs it
        plot.plot(history, folder.path / "curves.png", title=folder.path.name)
    # A signal that came after the last epoch finished stops nothing: the run completes.
    if call.stop.signal is not None and settings.epochs_completed < settings.epochs:
        settings.status = "interrupted"
        folder.save_settings(settings)
        raise Interrupted([Diagnostic(
            Location(str(folder.path)),
            f"training interrupted; the run folder holds {settings.epochs_completed} finished epoch(s)",
            f"resume with: kspec train {spec.file} --resume {folder.path}")])
    settings.status, settings.stopped = ("stopped", stopped) if stopped and call.stop.signal is None else ("completed", None)
    if settings.stopped:
        call.progress(settings.stopped)
    save_model(model, folder.path / "model.keras")
    folder.save_settings(settings)
    return TrainResult(folder.path, settings.epochs_completed - start_epoch, settings.epochs_completed,
                       history, seconds, fingerprint(model) if call.cluster else None)


def _fit_model(keras: Any, spec: ModelDef, run: _Run, verbose: Any, callbacks: list[Any]) -> None:
    """Keras's fit, on arrays in memory or on batch streams read from the data's files."""
    settings, dataset, validation = run.settings, run.dataset, run.validation
    weighted = {"class_weight": spec.training.class_weight} if spec.training.class_weight is not None else {}
    if dataset.streamed or (validation is not None and validation.streamed):
        train_feed, validation_feed = batch_streams(keras, spec, dataset, validation, settings)
        with reading(train_feed, validation_feed):  # a data file that changed: its own error
            run.model.fit(train_feed, validation_data=validation_feed, epochs=settings.epochs,
                          initial_epoch=settings.epochs_completed, shuffle=False, verbose=verbose,
                          callbacks=callbacks, **weighted)  # the feed shuffles; Keras would again
    else:
        run.model.fit(
            dataset.x(spec), dataset.y(spec),
            batch_size=settings.batch_size, epochs=settings.epochs, initial_epoch=settings.epochs_completed,
            validation_split=(settings.validation_split or 0.0) if validation is None else 0.0,
            validation_data=(validation.x(spec), validation.y(spec),
                             for_fit(validation.weights, spec.output_names, len(validation))) if validation else None,
            shuffle=settings.shuffle, verbose=verbose, callbacks=callbacks,
            sample_weight=for_fit(dataset.weights, spec.output_names, len(dataset)), **weighted,
        )


def _restore(keras: Any, spec: ModelDef, folder: RunFolder,
             settings: RunSettings) -> tuple[Any, list[dict[str, float]]]:
    """The newest checkpoint (with optimizer state) and the history up to it."""
    latest = folder.latest_checkpoint()
    if latest is None and folder.damaged:
        raise fail(RunError, str(folder.damaged[0]), "the checkpoint is damaged (cut short or edited), "
                   "and the run has no older whole one to resume from", DAMAGED_HINT)
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
