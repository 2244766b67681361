"""`kspec predict`: a spec's model with trained weights, its outputs written batch by batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .build import DEFAULT_MAX_PARAMS, load_trained
from .data import load_npz
from .files import NpzWriter
from .run_errors import model_errors
from .spec.model import ModelDef


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
