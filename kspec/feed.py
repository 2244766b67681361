"""Feeding a dataset to Keras: arrays in memory as they are, stored arrays batch by batch.

Arrays in memory go straight to `model.fit`, whose own input pipeline
prefetches them. Arrays stored in a file (data larger than memory) go through
a `keras.utils.PyDataset` that reads each batch from the file ahead of the
training step, so a few batches are in memory at a time.

Who reads ahead depends on the backend. With TensorFlow, Keras wraps the
dataset in tf.data, which prefetches on its own thread; adding Keras's reader
threads on top turns that off and, on 2 cores, trained slower (BENCHMARKS.md).
With JAX and torch, Keras's reader threads are the only way to read ahead.

A file that changes or shrinks while it is read fails the batch with a
DataError naming it (kspec.arrays). tf.data turns any exception of a batch
into an error of its own, so the stream keeps its failure and `reading`
raises it again, as itself, from the call that trained on the stream.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Iterator

import numpy as np

from .data import Dataset
from .errors import DataError
from .spec.model import ModelDef
from .tables import block_rows

# Keras's reader threads, for backends without tf.data: one per two cores, 2 to 4.
READERS = max(2, min(4, (os.cpu_count() or 2) // 2))


def batch_stream(keras: Any, spec: ModelDef, dataset: Dataset, batch_size: int, shuffle: bool = False,
                 seed: int = 0) -> Any:
    """A PyDataset of (x, y) batches read from the dataset's files.

    Shuffling reorders whole batches every epoch: reads stay contiguous,
    which is what keeps a large file fast. The rows inside a batch keep
    their order, which changes nothing: a batch's gradient is a mean over
    its rows.
    """

    dataset.check_batch(batch_size)  # here, before Keras reads a batch on a thread of its own

    class BatchStream(keras.utils.PyDataset):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            workers = 1 if keras.backend.backend() == "tensorflow" else READERS  # 1: no threads of Keras's own
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
            self.rng = np.random.default_rng(seed)
            self.failure: DataError | None = None
            self.order = np.arange(len(self))
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(dataset) / batch_size)

        def __getitem__(self, index: int) -> Any:
            start = int(self.order[index]) * batch_size
            try:
                batch = dataset.take(slice(start, start + batch_size))
            except DataError as exc:
                self.failure = exc
                raise
            x, y = batch.x(spec), batch.y(spec)
            # Tuples: with a string input, Keras cannot type a list that mixes a TensorFlow tensor and arrays,
            # and tf.data cannot type a list of several outputs' labels.
            return (tuple(x) if isinstance(x, list) else x), (tuple(y) if isinstance(y, list) else y)

        def on_epoch_end(self) -> None:
            if shuffle:
                self.order = shuffled(len(self), batch_size, block_rows([*dataset.inputs.values()]), self.rng)

    return BatchStream()


def shuffled(batches: int, batch_size: int, block: int | None, rng: np.random.Generator) -> np.ndarray:
    """Batch indices in a random order; with `block` (a Parquet file's row-group size), grouped by block.

    The blocks come in a random order and the batches inside each in a random
    order, so each row group is read from the file once an epoch.
    """
    if not block:
        return rng.permutation(batches)
    groups: dict[int, list[int]] = {}
    for index in range(batches):
        groups.setdefault(index * batch_size // block, []).append(index)
    ordered = [groups[key] for key in rng.permutation(list(groups))]
    return np.array([i for group in ordered for i in rng.permutation(group)], dtype=int)


@contextlib.contextmanager
def reading(*streams: Any) -> Iterator[None]:
    """Raise a stream's own DataError from the fit or evaluate that read it (None streams are skipped)."""
    try:
        yield
    except Exception:
        for stream in streams:
            if stream is not None and stream.failure is not None:
                raise stream.failure from None
        raise
