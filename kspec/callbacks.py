"""The Keras callbacks kspec adds to a training run: stop on a signal, record each epoch, TensorBoard logs.

Keras is passed in rather than imported, so that this module costs nothing to
import before the backend is chosen.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .checkpointing import Checkpointer
from .run_folder import RunFolder
from .signals import StopFlag


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
