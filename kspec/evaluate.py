"""`kspec evaluate`: a spec's model with trained weights, scored on data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .build import DEFAULT_MAX_PARAMS, load_trained
from .data import load_npz
from .run_errors import model_errors
from .spec.model import ModelDef


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
