"""The Keras callbacks of a training run: kspec's own (stop on a signal, record each epoch,
TensorBoard logs) and the spec's `training.callbacks` (EarlyStopping, ReduceLROnPlateau, TerminateOnNaN).

Keras is passed in rather than imported, so that this module costs nothing to
import before the backend is chosen.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .checkpointing import Checkpointer
from .errors import RunError, fail
from .run_folder import RunFolder
from .signals import StopFlag
from .spec.model import CallbackDef, ModelDef

_VALIDATION_HINT = ("give --validation-split FRACTION or --val-data FILE, or 'validation_split' under 'training:'; "
                    "or monitor a training metric such as 'loss'")


def run_callbacks(keras: Any, folder: RunFolder, history: list[dict[str, float]], stop: StopFlag,
                  progress: Callable[[str], None], checkpointer: Checkpointer) -> list[Any]:
    """The callbacks of one run: stop after a batch on a signal, record each epoch, log to TensorBoard."""
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

    return [StopOnSignal(), RecordEpoch(), epoch_tensorboard(keras)(log_dir=str(folder.path / "logs"))]


def epoch_tensorboard(keras: Any) -> Any:
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


def monitor(callback: CallbackDef) -> str | None:
    """What a callback watches: its `monitor`, else Keras's default; None for one that watches nothing."""
    if callback.class_name not in ("EarlyStopping", "ReduceLROnPlateau"):
        return None
    value = callback.args.get("monitor", "val_loss")  # both callbacks' default in Keras
    return value if isinstance(value, str) else None


def check_monitors(spec: ModelDef, validates: bool) -> None:
    """Refuse, before any work, a callback watching val_NAME in a run without validation data."""
    if validates:
        return
    for callback in spec.training.callbacks:
        watched = monitor(callback)
        if watched is not None and watched.startswith("val_"):
            given = "monitor" in callback.args
            raise fail(RunError, callback.arg_locs["monitor"] if given else callback.loc,
                       f"{callback.class_name} monitors '{watched}'{'' if given else ' (its default)'}, "
                       "but this run has no validation data", _VALIDATION_HINT)


def spec_callbacks(keras: Any, spec: ModelDef) -> list[Any]:
    """The spec's callbacks as Keras objects, in the spec's order; a value Keras refuses is located at its callback."""
    from .build import keras_errors

    made = []
    for callback in spec.training.callbacks:
        with keras_errors(callback.loc, callback.class_name, "fix the callback's arguments; Keras's message says "
                          "what it expected"):
            made.append(getattr(keras.callbacks, callback.class_name)(**callback.args))
    return made


def why_stopped(keras: Any, callbacks: list[Any], epochs_completed: int) -> str | None:
    """Why a spec's callback stopped training, in words with the epoch; None when none did."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and callback.stopped_epoch > 0:
            why = (f"EarlyStopping stopped the run after epoch {callback.stopped_epoch + 1}: {callback.monitor} "
                   f"did not improve on {float(callback.best):.6g} (epoch {callback.best_epoch + 1}) "
                   f"for {callback.patience} epoch(s)")
            if callback.restore_best_weights and callback.best_weights is not None:
                why += f"; model.keras holds epoch {callback.best_epoch + 1}'s weights (restore_best_weights)"
            return why
    if any(isinstance(callback, keras.callbacks.TerminateOnNaN) for callback in callbacks):
        return (f"TerminateOnNaN stopped the run in epoch {epochs_completed}: "
                "a batch's loss was NaN or infinite")
    return None


def best_weights(keras: Any, callbacks: list[Any]) -> list[Any] | None:
    """The weights an EarlyStopping with restore_best_weights kept, to save as model.keras; None otherwise."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and callback.restore_best_weights:
            return callback.best_weights
    return None
