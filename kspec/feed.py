"""Feeding a dataset to Keras: arrays in memory as they are, stored arrays batch by batch.

Arrays in memory go straight to `model.fit`, whose own input pipeline
prefetches them. Arrays stored in a file (data larger than memory) go through
a `keras.utils.PyDataset` that reads each batch from the file on worker
threads, so a few batches are in memory at a time.

Reader threads take CPU time from training's own threads, so there are few:
one per two cores, at most four (on 2 cores, one reader trains faster than
two: see BENCHMARKS.md).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .data import Dataset
from .spec.model import ModelDef

READERS = max(1, min(4, (os.cpu_count() or 2) // 2))


def batch_stream(keras: Any, spec: ModelDef, dataset: Dataset, batch_size: int, shuffle: bool = False,
                 seed: int = 0, targets: bool = True) -> Any:
    """A PyDataset of (x, y) batches read from the dataset's files.

    Shuffling reorders whole batches every epoch: reads stay contiguous,
    which is what keeps a large file fast. The rows inside a batch keep
    their order, which changes nothing: a batch's gradient is a mean over
    its rows.
    """

    class BatchStream(keras.utils.PyDataset):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(workers=READERS, use_multiprocessing=False, max_queue_size=8)
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(self))
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(dataset) / batch_size)

        def __getitem__(self, index: int) -> Any:
            start = int(self.order[index]) * batch_size
            batch = dataset.take(slice(start, start + batch_size))
            x = batch.x(spec)
            return (x, batch.y(spec)) if targets else (x,)

        def on_epoch_end(self) -> None:
            if shuffle:
                self.rng.shuffle(self.order)

    return BatchStream()

