"""The data a training run trains and validates on: loaded or synthetic, sharded, checked, or streamed.

kspec.data reads and makes datasets; this module decides which ones a run
uses from its settings, gives each process of a distributed run its share
(kspec.distributed), and turns data read from its file into batch streams
(kspec.feed).
"""

from __future__ import annotations

from typing import Any, Callable

from .adapt import adapt
from .backend import Cluster, import_keras
from .build import build
from .data import Dataset, check_training_data, load_npz, synthetic
from .distributed import off_the_distribution, shard
from .feed import batch_stream
from .run_errors import model_errors
from .run_settings import RunSettings
from .spec.model import ModelDef


def run_data(spec: ModelDef, settings: RunSettings, student_shapes: dict[str, tuple[Any, ...]],
             cluster: Cluster | None = None) -> tuple[Dataset, Dataset | None]:
    """The run's training and validation data (this process's share), checked against its batch size."""
    dataset = _make_data(spec, settings, student_shapes, cluster)
    validation = None
    if settings.val_data is not None:
        validation = load_npz(settings.val_data, spec, student_shapes, stream=settings.stream)
        validation = shard(validation, cluster) if cluster else validation
    check_training_data(dataset, validation, settings.batch_size, settings.validation_split)
    return dataset, validation


def _make_data(spec: ModelDef, settings: RunSettings, student_shapes: dict[str, tuple[Any, ...]],
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


def _teacher(spec: ModelDef) -> Callable[[Dataset], list[Any]]:
    """A second, freshly initialised copy of the model, whose outputs label synthetic data.

    Its layers marked `adapt: true` are adapted to the synthetic inputs it labels.
    """
    built = build(spec, compile=False)  # the same on every process: built from the same seed

    def predict(inputs: Dataset) -> list[Any]:
        teacher = adapt(import_keras(), built, inputs, 256, None, lambda _: None).model
        with model_errors(spec, "labelling synthetic data with a copy of the model"):
            outputs = teacher.predict(inputs.x(spec), batch_size=256, verbose=0)
        return outputs if isinstance(outputs, list) else [outputs]

    return predict


def batch_streams(keras: Any, spec: ModelDef, dataset: Dataset, validation: Dataset | None,
                  settings: RunSettings) -> tuple[Any, Any]:
    """Batch streams for data read from its file: training, and validation (its own, or the last rows)."""
    if validation is None and settings.validation_split:
        split = len(dataset) - int(len(dataset) * settings.validation_split)  # the last rows, as Keras takes them
        dataset, validation = dataset.window(0, split), dataset.window(split, len(dataset))
    train_feed = batch_stream(keras, spec, dataset, settings.batch_size, settings.shuffle,
                              settings.seed + settings.epochs_completed)
    validation_feed = batch_stream(keras, spec, validation, settings.batch_size) if validation else None
    return train_feed, validation_feed
