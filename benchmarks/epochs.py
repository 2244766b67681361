"""Timing training epochs from inside `model.fit`, whoever calls it.

kspec's `train` calls `model.fit` itself, so the timer is slipped in by
wrapping `keras.Model.fit` for the duration of a run: it is appended last to
the callbacks, so an epoch's time includes every other callback's work at
the end of the epoch (kspec's history row and checkpoint, TensorBoard). The
timer has no per-batch hooks, so it leaves Keras's asynchronous batch
dispatch as it would be without it.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator


def epoch_timer() -> Any:
    """A Keras callback that records each epoch's seconds in `.seconds`."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


@contextmanager
def timed_fit(timer: Any) -> Iterator[None]:
    """Append `timer` to the callbacks of every `keras.Model.fit` call inside the block."""
    import keras

    original = keras.Model.fit
    own = "fit" in vars(keras.Model)  # else fit is inherited from the backend's trainer

    def fit(self: Any, *args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        return original(self, *args, callbacks=[*(callbacks or []), timer], **kwargs)

    keras.Model.fit = fit
    try:
        yield
    finally:
        if own:
            keras.Model.fit = original
        else:
            del keras.Model.fit


def steady_seconds(epoch_seconds: list[float]) -> float:
    """Seconds per epoch once traced: the first epoch (tracing, warm-up) is left out."""
    if len(epoch_seconds) < 2:
        raise ValueError(f"need at least 2 epochs to leave out the first, got {len(epoch_seconds)}")
    return statistics.median(epoch_seconds[1:])
