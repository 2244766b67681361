"""`kspec evaluate` and `kspec predict`: a spec's model with trained weights, on data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .build import DEFAULT_MAX_PARAMS, Built, build, load_weights
from .data import load_npz
from .errors import Location
from .files import save_npz
from .spec.model import ModelDef


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
    if dataset.streamed:  # larger than memory: read batch by batch
        from .backend import import_keras
        from .feed import batch_stream

        feed = batch_stream(import_keras(), spec, dataset, batch_size)
        results = built.model.evaluate(feed, verbose=verbose, return_dict=True)
    else:
        results = built.model.evaluate(dataset.x(spec), dataset.y(spec), batch_size=batch_size,
                                       verbose=verbose, return_dict=True)
    return {name: float(value) for name, value in results.items()}


def predict(spec: ModelDef, weights: Path, data: Path, output: Path, batch_size: int = 32,
            max_params: int = DEFAULT_MAX_PARAMS) -> dict[str, tuple[int, ...]]:
    """Write each output's predictions under its output name; returns their shapes.

    Batches are predicted one at a time into preallocated arrays, so the
    inputs are never copied as a whole.
    """
    built = load_trained(spec, weights, max_params)
    dataset = load_npz(data, spec, built.output_shapes(), need_targets=False, stream=True)
    n = len(dataset)
    names = spec.output_names
    results: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        batch = dataset.take(slice(start, start + batch_size))
        outputs = built.model.predict_on_batch(batch.x(spec))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for name, values in zip(names, outputs):
            values = np.asarray(values)
            if name not in results:
                results[name] = np.empty((n,) + values.shape[1:], dtype=values.dtype)
            results[name][start:start + len(values)] = values
    save_npz(output, results)
    return {name: array.shape for name, array in results.items()}
