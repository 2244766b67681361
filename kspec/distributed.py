"""Data-parallel training over several processes, on Keras's distribution API (JAX backend).

Every process runs the same `kspec train --distributed` command. They join
through JAX's distributed runtime (backend.Cluster.join), and Keras's
DataParallel replicates the model over the devices of all processes. Each
process feeds its own disjoint slice of the data, so the global batch is the
per-process batch times the number of processes. Process 0 alone keeps the
run folder; the others write theirs to a scratch folder that is removed,
since saving a model is a collective step every process must take part in.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .backend import Cluster
from .data import Dataset
from .errors import DataError, fail


def use_data_parallel(keras: Any) -> None:
    """Replicate variables over every device of every process; each process brings its own batches."""
    import jax

    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False))


@contextmanager
def off_the_distribution(keras: Any) -> Iterator[None]:
    """Build and run models on this process's own devices only, then restore the distribution.

    A model built under DataParallel spans every process's devices, so this
    process cannot read its outputs back; synthetic data's teacher is built
    and run here instead, on host arrays, identically on every process.
    """
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def shard(dataset: Dataset, cluster: Cluster) -> Dataset:
    """This process's rows of a dataset that every process read in full.

    Every process must hold the same number of rows: a file of another length
    on one host is refused on all of them before training.
    """
    from jax.experimental import multihost_utils

    lengths = np.asarray(multihost_utils.process_allgather(np.array([len(dataset)], dtype=np.int64))).ravel()
    if len(set(lengths.tolist())) > 1:
        listed = ", ".join(f"process {i}: {n}" for i, n in enumerate(lengths.tolist()))
        raise fail(DataError, dataset.source, f"the data has different lengths on different hosts ({listed})",
                   "give every process the same data file")
    per_process = len(dataset) // cluster.num_processes
    start = cluster.process_id * per_process
    return dataset.window(start, start + per_process)


def shared_seed(seed: int) -> int:
    """Process 0's seed, on every process: all processes must start from the same weights."""
    from jax.experimental import multihost_utils

    return int(np.asarray(multihost_utils.broadcast_one_to_all(np.array(seed, dtype=np.int64))))


def fingerprint(model: Any) -> str:
    """A short digest of all weights, to see that every process ended with the same model."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]
