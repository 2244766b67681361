"""`kspec evaluate` and `kspec predict`: a spec's model with trained weights, on data.

Also where a failure inside Keras's fit, evaluate or predict (after the spec
was checked and built) becomes a located error: `model_errors` points at the
layer Keras's message names, else at the model.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .build import DEFAULT_MAX_PARAMS, Built, build, graph_location, load_weights, run_message, stack_location
from .data import load_npz
from .errors import KspecError, Location, SpecError, fail
from .files import NpzWriter
from .spec.model import ModelDef

MAX_MESSAGE = 600  # characters of Keras's message shown (TensorFlow's can run to pages)


def load_trained(spec: ModelDef, weights: Path, max_params: int = DEFAULT_MAX_PARAMS) -> Built:
    """Build the spec and load trained weights (e.g. a run's model.keras) into it."""
    built = build(spec, max_params=max_params)
    load_weights(built.model, weights, Location(str(weights)))
    return built


def evaluate(spec: ModelDef, weights: Path, data: Path, batch_size: int = 32,
             verbose: Any = "auto", max_params: int = DEFAULT_MAX_PARAMS) -> dict[str, float]:
    """Every loss and metric of the trained model on the data."""
    built = load_trained(spec, weights, max_params)
    dataset = load_npz(data, spec, built.output_shapes())
    with model_errors(spec, "evaluating"):
        if dataset.streamed:  # larger than memory: read batch by batch
            from .backend import import_keras
            from .feed import batch_stream, reading

            feed = batch_stream(import_keras(), spec, dataset, batch_size)
            with reading(feed):  # a data file that changed: its own error
                results = built.model.evaluate(feed, verbose=verbose, return_dict=True)
        else:
            results = built.model.evaluate(dataset.x(spec), dataset.y(spec), batch_size=batch_size,
                                           verbose=verbose, return_dict=True)
    return {name: float(value) for name, value in results.items()}


def predict(spec: ModelDef, weights: Path, data: Path, output: Path, batch_size: int = 32,
            max_params: int = DEFAULT_MAX_PARAMS) -> dict[str, tuple[int, ...]]:
    """Write each output's predictions under its output name; returns their shapes.

    Data is read and predictions are written one batch at a time (see
    files.NpzWriter), so memory holds a few batches whatever the data's size.
    """
    built = load_trained(spec, weights, max_params)
    dataset = load_npz(data, spec, built.output_shapes(), need_targets=False, stream=True)
    rows = len(dataset)
    names = spec.output_names
    with NpzWriter(output, rows) as writer:
        for start in range(0, rows, batch_size):
            batch = dataset.take(slice(start, start + batch_size))
            with model_errors(spec, "predicting"):
                outputs = built.model.predict_on_batch(batch.x(spec))
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for name, values in zip(names, outputs):
                writer.append(name, np.asarray(values))
        return writer.finish()


@contextmanager
def model_errors(spec: ModelDef, doing: str) -> Iterator[None]:
    """Report an exception from Keras's fit, evaluate or predict as a located error.

    The location is the spec's layer or sub-model whose name Keras's message
    quotes (the longest such name), else the model itself.
    """
    try:
        yield
    except (KspecError, KeyboardInterrupt):
        raise
    except Exception as exc:  # ValueError, TypeError, TensorFlow's errors, ...
        message = run_message(exc)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + " ..."
        where = graph_location(spec, str(exc)) or blamed_layer(spec, message)
        if where == spec.loc:  # the message names no layer: the innermost one being called, if any
            where = stack_location(spec, exc.__traceback__) or where
        raise fail(SpecError, where, f"Keras failed while {doing}: {message}",
                   "the spec and the data passed every check, but Keras could not run them; "
                   "this is the place in the spec that Keras's message names") from None


def blamed_layer(spec: ModelDef, message: str) -> Location:
    """Where the spec defines the layer or sub-model that `message` names, else the model."""
    places = dict(_named_places(spec))
    for name in sorted(places, key=len, reverse=True):
        if re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w-])", message):
            return places[name]
    return spec.loc


def _named_places(spec: ModelDef) -> Iterator[tuple[str, Location]]:
    """Every Keras layer name the spec gives, with where it is written, sub-models included."""
    for name, model in spec.models.items():
        yield from _named_places(model)
        yield name, model.loc
    for name, layer in spec.layers.items():
        yield name, layer.where
    for name, layer in spec.sequence:
        yield name, layer.loc
    for edge in spec.edges:
        for name in edge.layer_names():
            yield name, edge.loc
