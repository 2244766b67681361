"""Per-row sample weights from a data file: `sample_weight`, or `sample_weight_OUTPUT` per output.

A data file may weight its rows for every output at once (an array named
`sample_weight`) or output by output (`sample_weight_OUTPUT`); an output
without one weighs each row 1. Each is one non-negative, finite number per
row. Keras's fit takes them as `sample_weight`; they are checked here, before
any training, with the file's name in every message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError, did_you_mean, fail

PREFIX = "sample_weight"


def split_weights(arrays: dict[str, Any], outputs: list[str], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data's other arrays, and its sample weights by output ('' for one array for every output)."""
    weights = {key: value for key, value in arrays.items() if key == PREFIX or key.startswith(PREFIX + "_")}
    rest = {key: value for key, value in arrays.items() if key not in weights}
    named: dict[str, Any] = {}
    for key, value in weights.items():
        output = key[len(PREFIX) + 1:]
        if output and output not in outputs:
            raise fail(DataError, source, f"'{key}' weighs an output the spec does not have"
                       f"{did_you_mean(output, outputs)}",
                       f"name it sample_weight (every output) or sample_weight_OUTPUT for one of: {', '.join(outputs)}")
        named[output] = value
    if "" in named and len(named) > 1:
        raise fail(DataError, source, "the data has both 'sample_weight' and per-output sample weights",
                   "give one 'sample_weight' array for every output, or one 'sample_weight_OUTPUT' per output")
    return rest, {output: _checked(value, PREFIX + (f"_{output}" if output else ""), source)
                  for output, value in named.items()}


def _checked(array: Any, name: str, source: str) -> np.ndarray:
    if hasattr(array, "rows") and array.ndim == 1:  # stored in the file: one number a row, small to read whole
        array = array.rows(0, len(array))
    if isinstance(array, np.ndarray) and array.dtype.kind in "fiu" and array.ndim == 1:
        values = np.asarray(array, dtype=np.float32)
        if np.all(np.isfinite(values)) and not np.any(values < 0):
            return values
        raise fail(DataError, source, f"'{name}' holds a negative, NaN or infinite weight",
                   "every row's weight must be a finite number from 0")
    shape = getattr(array, "shape", "?")
    dtype = getattr(array, "dtype", type(array).__name__)
    raise fail(DataError, source, f"'{name}' must hold one number per row (shape (rows,)), "
               f"got shape {tuple(shape) if shape != '?' else shape} of {dtype}",
               "store one weight per row as a 1-D float array")


def check_rows(weights: dict[str, np.ndarray], rows: int, source: str) -> None:
    """Refuse weights whose length is not the data's."""
    for output, values in weights.items():
        if len(values) != rows:
            name = PREFIX + (f"_{output}" if output else "")
            raise fail(DataError, source, f"'{name}' has {len(values):,} rows; the data has {rows:,}",
                       "give one weight per row of the data")


def for_fit(weights: dict[str, np.ndarray], outputs: list[str], rows: int) -> Any:
    """Keras's `sample_weight`: None, one array, or one per output (1 where an output has none)."""
    if not weights:
        return None
    if "" in weights or len(outputs) == 1:
        return next(iter(weights.values()))
    return [weights.get(output, np.ones(rows, dtype=np.float32)) for output in outputs]


def refuse_streamed_weights(dataset: Any, validation: Any) -> None:
    """Sample weights are passed to fit with arrays in memory; a streamed run cannot take them yet."""
    datasets = [d for d in (dataset, validation) if d is not None]
    if not any(d.streamed for d in datasets):
        return
    for weighted in (d for d in datasets if d.weights):
        raise fail(DataError, weighted.source, "sample weights are used only with the data in memory, "
                   "and this run reads its data batch by batch",
                   "train with --no-stream, or leave the sample_weight arrays out of the data")
