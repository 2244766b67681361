"""When a training run writes its checkpoints.

Writing a checkpoint costs a fixed time per epoch (a 40 MB model takes about
0.2 s on a laptop disk), which is a large share of short epochs. So a run
checkpoints an epoch only when `interval` seconds have passed since the last
checkpoint, and always checkpoints its last epoch. The epochs in between are
kept as a copy of the weights on their device (a few milliseconds), and `flush`
writes the newest of them when a run stops early, so Ctrl-C still keeps the
last finished epoch. The last epoch is written by `flush` too, once training
has returned, beside the run's other final files. Only a crash or a second
Ctrl-C can lose the epochs since the last checkpoint; `--resume` then drops
their history rows.
"""

from __future__ import annotations

import time
from typing import Any, Callable

DEFAULT_INTERVAL = 60.0  # seconds


def _state(model: Any) -> list[Any]:
    """Every variable a checkpoint holds: the model's, and its optimizer's once built."""
    optimizer = getattr(model, "optimizer", None)
    extra = list(optimizer.variables) if optimizer is not None and optimizer.built else []
    return list(model.variables) + extra


class Checkpointer:
    """Decides, at the end of each epoch, whether to write a checkpoint now or hold the epoch in memory."""

    def __init__(self, save: Callable[[Any, int], None], last_epoch: int, interval: float,
                 clock: Callable[[], float] = time.monotonic, changed_after: bool = False):
        self.save = save  # writes a checkpoint of the model for a number of finished epochs
        # A callback may change the weights once training ends (EarlyStopping's restore_best_weights):
        # then the last epoch's are copied too, so that its checkpoint holds that epoch's own.
        self.last_epoch = last_epoch if not changed_after else float("inf")
        self.interval = interval
        self.clock = clock
        self.saved_at = clock()  # the run folder starts with a checkpoint
        self.held: tuple[int, list[Any] | None] | None = None  # an epoch to write, and its weights

    def epoch_end(self, model: Any, epoch: int) -> bool:
        """Checkpoint `epoch` (finished epochs) now, or hold it; True when it was written."""
        if epoch >= self.last_epoch:
            self.held = (epoch, None)  # nothing changes the weights after the last epoch: no copy
            return False
        if self.clock() - self.saved_at < self.interval:
            import keras  # already imported by training, with its backend chosen

            # A copy on the variables' device: a third of the time of copying them into NumPy.
            # The previous copy goes first, so at most one copy of the state is held.
            self.held = None
            self.held = (epoch, [keras.ops.copy(variable) for variable in _state(model)])
            return False
        self.held = None
        self.save(model, epoch)
        self.saved_at = self.clock()
        return True

    def flush(self, model: Any) -> int | None:
        """After training: checkpoint the held epoch, with its weights put back; the epoch, if any."""
        if self.held is None:
            return None
        epoch, values = self.held
        if values is not None:
            for variable, value in zip(_state(model), values, strict=True):
                variable.assign(value)
        self.held = None
        self.save(model, epoch)
        return epoch
