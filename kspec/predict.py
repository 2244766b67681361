"""`kspec predict`: a spec's model with trained weights, its outputs written batch by batch.

The output's suffix chooses the format. An .npz holds one array per output,
under the output's name. A .csv holds one column per output value, named
after the output: `out` for one value a row, `out_0` to `out_K` for a vector;
an output with more than one axis a row has no columns that fit, and is
refused before anything is predicted. With `labels`, each class output also
gets its predicted class (`out_label`: the argmax, or 0/1 for a yes/no output).
A .parquet file holds the same columns as a .csv (pyarrow writes it). With
`keep`, columns of an input table (an id, say) come first, copied row by row.
Either file is written through a temporary file and a rename (kspec.files).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .build import DEFAULT_MAX_PARAMS, Built, load_trained
from .data import BINARY, CATEGORICAL, SPARSE, load_npz, output_kinds
from .errors import RunError, fail
from .files import NpzWriter, atomic_path
from .run_errors import model_errors
from .spec.model import ModelDef
from .submodel_weights import pick_submodel, submodel_def


def predict(spec: ModelDef, weights: Path, data: Path, output: Path, batch_size: int = 32,
            max_params: int = DEFAULT_MAX_PARAMS, progress: bool = False,
            labels: bool = False, model: str | None = None, keep: tuple[str, ...] = ()) -> dict[str, tuple[int, ...]]:
    """Write each output's predictions under its output name; returns their shapes.

    Data is read and predictions are written one batch at a time (see
    files.NpzWriter), so memory holds a few batches whatever the data's size.
    `progress` draws Keras's progress bar on stderr. `model` names a
    sub-model to run alone, with the whole model's trained weights.
    """
    if model is not None:
        submodel_def(spec, model, for_data=True)  # an unknown name is refused before building
    built = load_trained(spec, weights, max_params)
    if model is not None:
        built = pick_submodel(built, model)
        spec = built.spec
    labelled = class_outputs(spec, built) if labels else {}
    if labels and not labelled:
        raise fail(RunError, spec.file, "--labels adds the predicted class of class outputs, and this model has "
                   "none (no output has a crossentropy or hinge loss)", "leave out --labels")
    as_csv = output.suffix.lower() == ".csv"
    as_table = as_csv or output.suffix.lower() in (".parquet", ".pq")
    if as_table:
        columns = csv_columns(spec, built)  # refused before any row is predicted
    kept = kept_columns(data, keep, output if as_table else None)
    dataset = load_npz(data, spec, built.output_shapes(), need_targets=False, stream=True)
    batches = _batches(spec, built, dataset, batch_size, labelled, progress)
    if kept:
        batches = _with_kept(batches, kept)
    if as_csv:
        return _write_csv(output, columns, labelled, batches, list(kept))
    if as_table:
        return _write_parquet(output, columns, batches, list(kept))
    with NpzWriter(output, len(dataset)) as writer:
        for named in batches:
            for name, values in named.items():
                writer.append(name, values)
        return writer.finish()


def _batches(spec: ModelDef, built: Built, dataset: Any, batch_size: int, labelled: dict[str, float | None],
             progress: bool) -> Iterator[dict[str, np.ndarray]]:
    """Each batch's outputs by name, with `NAME_label` for the outputs in `labelled`."""
    rows = len(dataset)
    bar = None
    if progress:
        from .backend import import_keras

        bar = import_keras().utils.Progbar(-(-rows // batch_size))
    for step, start in enumerate(range(0, rows, batch_size), 1):
        batch = dataset.take(slice(start, start + batch_size))
        with model_errors(spec, "predicting"):
            outputs = built.model.predict_on_batch(batch.x(spec))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        named = {name: np.asarray(values) for name, values in zip(spec.output_names, outputs)}
        for name, threshold in labelled.items():
            named[f"{name}_label"] = predicted_class(named[name], threshold)
        if bar is not None:
            with contextlib.redirect_stdout(sys.stderr):  # stdout keeps only the result line
                bar.update(step)
        yield named


def class_outputs(spec: ModelDef, built: Built) -> dict[str, float | None]:
    """The outputs with one class a row: None for an argmax over classes, else a yes/no threshold."""
    from .report import threshold_of

    found: dict[str, float | None] = {}
    for name, kind in output_kinds(spec).items():
        units = _row_shape(built, name)
        if kind in (CATEGORICAL, SPARSE) and units not in ((), (1,)):
            found[name] = None
        elif kind in (BINARY, CATEGORICAL) and units in ((), (1,)):  # one unit: yes or no
            found[name] = threshold_of(built, name)
    return found


def predicted_class(values: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is None:
        return values.argmax(axis=-1).astype(np.int64)
    return (values.reshape(len(values)) > threshold).astype(np.int64)


def _row_shape(built: Built, name: str) -> tuple[Any, ...]:
    return tuple(built.output_shapes()[name][1:])


def csv_columns(spec: ModelDef, built: Built) -> dict[str, list[str]]:
    """Each output's CSV column names; an output that is not one value or one vector a row is refused."""
    columns = {}
    for name in spec.output_names:
        shape = _row_shape(built, name)
        if shape in ((), (1,)):
            columns[name] = [name]
        elif len(shape) == 1 and shape[0] is not None:
            columns[name] = [f"{name}_{k}" for k in range(shape[0])]
        else:
            text = "(" + ", ".join("any" if d is None else str(d) for d in shape) + ")"
            raise fail(RunError, spec.file, f"output '{name}' gives values of shape {text} a row, which do not "
                       "fit in CSV columns (one value, or one vector, a row)", "write an .npz file with -o FILE.npz")
    return columns


def _write_csv(output: Path, columns: dict[str, list[str]], labelled: dict[str, Any],
               batches: Iterator[dict[str, np.ndarray]], kept: list[str]) -> dict[str, tuple[int, ...]]:
    """One CSV row per data row; floats with the digits that read back as the same float32 (or float64)."""
    header = kept + [column for name in columns for column in columns[name]] + [f"{name}_label" for name in labelled]
    shapes: dict[str, tuple[int, ...]] = {}
    with atomic_path(output) as temporary, open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(_quoted(np.array(header))) + "\n")
        for named in batches:
            texts = []
            for name, values in named.items():
                if name not in kept:
                    shapes[name] = (shapes.get(name, (0,))[0] + len(values), *values.shape[1:])
                values = values.reshape(len(values), -1)
                texts.extend(_texts(values[:, k]) for k in range(values.shape[1]))
            handle.write("".join(",".join(row) + "\n" for row in zip(*texts)))
    return shapes


def _texts(values: np.ndarray) -> Any:
    if values.dtype.kind in "US":
        return _quoted(values.astype(str))
    if values.dtype.kind in "iub":
        return np.char.mod("%d", values)
    return np.char.mod("%.17g" if values.dtype.itemsize > 4 else "%.9g", values)


def _quoted(values: np.ndarray) -> list[str]:
    """Text as a CSV cell: quoted, quotes doubled, when it holds a comma, a quote or a line break."""
    return [f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in ',"\r\n') else v for v in values.tolist()]


def _write_parquet(output: Path, columns: dict[str, list[str]], batches: Iterator[dict[str, np.ndarray]],
                   kept: list[str]) -> dict[str, tuple[int, ...]]:
    """The CSV's columns in a Parquet file, a row group per few batches."""
    from .tables import parquet_writer

    shapes: dict[str, tuple[int, ...]] = {}
    with atomic_path(output) as temporary, parquet_writer(temporary) as write:
        for named in batches:
            cells: dict[str, np.ndarray] = {}
            for name, values in named.items():
                if name not in kept:
                    shapes[name] = (shapes.get(name, (0,))[0] + len(values), *values.shape[1:])
                flat = values.reshape(len(values), -1)
                names = columns.get(name, [name])
                cells.update({column: flat[:, k] for k, column in enumerate(names)})
            write(cells)
    return shapes


def kept_columns(data: Path, keep: tuple[str, ...], output: Path | None) -> dict[str, np.ndarray]:
    """The input table's columns that `--keep-columns` copies into a CSV or Parquet output, read whole."""
    if not keep:
        return {}
    from .tables import is_table, read_columns

    if output is None:
        raise fail(RunError, "--keep-columns", "copies columns into a .csv or .parquet output, not an .npz",
                   "write -o FILE.csv or -o FILE.parquet")
    if not is_table(data):
        raise fail(RunError, "--keep-columns", f"copies columns of a CSV or Parquet input, and {data} is not one",
                   "leave out --keep-columns")
    return read_columns(data, keep)


def _with_kept(batches: Iterator[dict[str, np.ndarray]], kept: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    row = 0
    for named in batches:
        rows = len(next(iter(named.values())))
        yield {**{name: values[row:row + rows] for name, values in kept.items()}, **named}
        row += rows
