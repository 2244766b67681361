"""Training data: the user's .npz files, checked against the spec, or synthetic data.

An .npz holds one array per input and per output, keyed by the spec's names
(`x` and `y` also work for a model with one input and one output). Every
array is checked before any step is trained: its header before anything is
allocated (kspec.arrays), then keys, shapes, dtypes, integer ids inside the
Embedding they feed, equal lengths, at least one row, finite values, and
values that survive the cast to the input's dtype (`checked_cast`, the one
place data is cast: nothing wraps, overflows to infinity or turns into True).

Synthetic data follows the spec, and its labels come from a *teacher*: a
second, randomly initialised copy of the model. The task is then learnable by
the model itself, so a working training loop visibly lowers the loss.
"""

from __future__ import annotations

import math
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .arrays import StoredArray, chunks, memory_bytes, read_npy_folder, read_npz_arrays
from .errors import DataError, did_you_mean, fail
from .spec.compile_settings import LIST, MAPPING, form
from .spec.calls import call_inputs
from .spec.model import CallInputs, Edge, LayerDef, ModelDef, Ref
from .weights import PREFIX as WEIGHTS
from .weights import check_rows, split_weights

BINARY, CATEGORICAL, SPARSE, REGRESSION = "binary", "categorical", "sparse", "regression"


@dataclass
class Dataset:
    """Arrays by input and output name, all of the same length."""

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    source: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # sample weights by output (kspec.weights)

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def x(self, spec: ModelDef) -> Any:
        """Inputs the way the model takes them: one array, or a list in input order."""
        arrays = [for_keras(self.inputs[inp.name]) for inp in spec.inputs]
        return arrays[0] if len(arrays) == 1 else arrays

    def y(self, spec: ModelDef) -> Any:
        arrays = [self.targets[ref.name] for ref in spec.outputs]
        return arrays[0] if len(arrays) == 1 else arrays

    def take(self, rows: slice) -> Dataset:
        """Some rows, in memory (read from the file for stored arrays)."""
        start, stop, _ = rows.indices(len(self))
        self.check_batch(stop - start)
        return Dataset({k: v[rows] for k, v in self.inputs.items()},
                       {k: v[rows] for k, v in self.targets.items()}, self.source,
                       {k: v[rows] for k, v in self.weights.items()})

    def check_batch(self, rows: int) -> None:
        """Refuse batches of stored data too large to hold a few of in memory (readers queue up to 8)."""
        if not self.streamed:
            return  # in memory already: a batch is at most a copy of it
        rows = min(rows, len(self))
        need = rows * sum(_row_bytes(a) for a in [*self.inputs.values(), *self.targets.values()])
        if need > memory_bytes() // 16:
            raise fail(DataError, self.source, f"a batch of {rows:,} rows of this data takes {need:,} bytes; "
                       f"several are read ahead, more than half of this machine's memory ({memory_bytes():,} bytes)",
                       "give a smaller --batch-size")

    def window(self, start: int, stop: int) -> Dataset:
        """Rows start..stop, without reading stored arrays (a view of their file)."""
        def part(array: Any) -> Any:
            return array.window(start, stop) if isinstance(array, StoredArray) else array[start:stop]

        return Dataset({k: part(v) for k, v in self.inputs.items()},
                       {k: part(v) for k, v in self.targets.items()}, self.source,
                       {k: v[start:stop] for k, v in self.weights.items()})

    @property
    def streamed(self) -> bool:
        """Whether the arrays are read from their file batch by batch."""
        return any(isinstance(a, StoredArray) for a in [*self.inputs.values(), *self.targets.values()])


def for_keras(array: Any) -> Any:
    """An array as Keras takes it: strings as a TensorFlow string tensor (Keras refuses NumPy's), the rest as is."""
    if isinstance(array, np.ndarray) and array.dtype.kind in "US":
        import tensorflow as tf  # only string data gets here: string inputs need TensorFlow anyway

        return tf.constant(array)
    return array


def _row_bytes(array: Any) -> int:
    """Bytes of one row as read (the larger of its stored and its cast dtype)."""
    stored = array.stored_dtype if isinstance(array, StoredArray) else array.dtype
    return math.prod(array.shape[1:]) * max(stored.itemsize, array.dtype.itemsize)


# ------------------------------------------------------------ what the spec wants
def _loss_name(loss: Any) -> str:
    if isinstance(loss, dict) and len(loss) == 1:
        loss = next(iter(loss))
    return str(loss).lower().replace("_", "")


def target_kind(loss: Any) -> str:
    """What labels a loss wants: 0/1, one-hot, class ids, or real values."""
    name = _loss_name(loss)
    if "sparsecategorical" in name:
        return SPARSE
    if "categorical" in name or name in ("crossentropy", "ce", "cce", "kld", "kldivergence"):
        return CATEGORICAL
    if "binary" in name or name in ("bce", "hinge", "squaredhinge"):
        return BINARY
    return REGRESSION


def output_kinds(spec: ModelDef) -> dict[str, str]:
    """The label kind of each output, from the spec's loss setting."""
    names = spec.output_names
    loss = spec.compile.loss.value if spec.compile and spec.compile.loss else None
    kind = form(loss, names)
    if kind == MAPPING:
        return {name: target_kind(loss.get(name)) for name in names}
    if kind == LIST:
        return {name: target_kind(item) for name, item in zip(names, loss)}
    return {name: target_kind(loss) for name in names}


def embedding_ranges(spec: ModelDef) -> dict[str, int]:
    """Input name -> the smallest input_dim of an Embedding its ids reach.

    An input reaches an Embedding called directly on it, or one inside a
    sub-model (functional or sequential, nested to any depth) that it is given
    to as that sub-model's input.
    """
    input_names = {inp.name for inp in spec.inputs}
    ranges: dict[str, int] = {}
    for index, edge in enumerate(spec.edges):
        for name, limit in _ids_limits(spec, edge, call_inputs(spec, index)):
            if name in input_names:
                ranges[name] = min(limit, ranges.get(name, limit))
    return ranges


def _ids_limits(spec: ModelDef, edge: Edge, called_on: CallInputs) -> Iterator[tuple[str, int]]:
    """(tensor name, input_dim) for each tensor this call feeds to an Embedding."""
    sub = spec.models.get(edge.target.name) if edge.target else None
    if sub is not None:
        limits = _submodel_limits(sub)
        if isinstance(called_on, dict):
            pairs = [(value, limits.get(key)) for key, value in called_on.items()]
        else:
            refs = called_on if isinstance(called_on, tuple) else (called_on,)
            pairs = list(zip(refs, limits.values())) if sub.inputs else [(refs[0], limits.get(""))]
        for ref, limit in pairs:
            if isinstance(ref, Ref) and limit is not None:
                yield ref.name, limit
        return
    layer = edge.layer or (spec.layers.get(edge.target.name) if edge.target else None)
    limit = _embedding_limit(layer)
    if limit is not None and isinstance(called_on, Ref):
        yield called_on.name, limit


def _submodel_limits(sub: ModelDef) -> dict[str, int | None]:
    """A sub-model's input name ("" for a sequential one without inputs) -> its ids' limit."""
    if sub.kind == "sequential":
        first = _embedding_limit(sub.sequence[0][1]) if sub.sequence else None
        return {(sub.inputs[0].name if sub.inputs else ""): first}
    inner = embedding_ranges(sub)
    return {inp.name: inner.get(inp.name) for inp in sub.inputs}


def _embedding_limit(layer: LayerDef | None) -> int | None:
    if layer is None or layer.class_name != "Embedding":
        return None
    input_dim = layer.args.get("input_dim")
    if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
        return None  # validate or Keras reports it
    return input_dim


# ------------------------------------------------------------------- reading
# Data files larger than this are read batch by batch from the file, not loaded.
STREAM_BYTES = 512 * 2**20


def read_npz(path: Path, stream: bool | None = None) -> dict[str, Any]:
    """The arrays of an .npz file (or a folder of .npy files), refusing pickled objects and broken files.

    With `stream` (or, when None, for data over STREAM_BYTES), arrays that can
    be read in place come back as StoredArrays, read a few rows at a time.
    Every header is checked before anything is allocated (kspec.arrays).
    """
    name = str(path)
    check_npz_file(path)
    if path.is_dir():
        return _read_npy_folder(path, stream)
    try:
        return read_npz_arrays(path, stream, STREAM_BYTES)
    except (OSError, zipfile.BadZipFile, EOFError, struct.error, RuntimeError, NotImplementedError,
            ValueError) as exc:  # zipfile's own refusals: encrypted, unknown compression, bad CRC
        raise fail(DataError, name, f"cannot read the .npz file (corrupt or truncated): {exc}") from None


def check_npz_file(path: Path) -> None:
    """Refuse a path that is not there, not a regular file or folder, or not a zip archive (what an .npz is)."""
    name = str(path)
    if not path.exists():
        raise fail(DataError, name, "data file not found", "check the path")
    if path.is_dir():
        return
    if not path.is_file():  # a FIFO would block, a device never ends
        raise fail(DataError, name, "is not a regular file", "give an .npz file, or a folder of KEY.npy files")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as handle:
            starts_like_zip = handle.read(4) == b"PK\x03\x04"
        if starts_like_zip:
            raise fail(DataError, name, "the .npz file is truncated or corrupt",
                       "write it again; an interrupted copy or download leaves it cut short")
        raise fail(DataError, name, "not an .npz file",
                   "save the arrays with numpy.savez(FILE, input_name=array, ...)")


def _read_npy_folder(path: Path, stream: bool | None) -> dict[str, Any]:
    """A folder of KEY.npy files, one per input and output."""
    if not any(path.glob("*.npy")):
        raise fail(DataError, str(path), "is a directory, not an .npz file",
                   "give an .npz file, a folder of KEY.npy files, or a folder of class folders of images")
    try:
        return read_npy_folder(path, stream, STREAM_BYTES)
    except OSError as exc:
        raise fail(DataError, str(path), f"cannot read a .npy file: {exc}") from None


def _shape_text(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join("N" if i == 0 else ("any" if d is None else str(d))
                           for i, d in enumerate(shape)) + ("," if len(shape) == 1 else "") + ")"


def _fits(actual: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(actual) == len(expected) and all(e is None or a == e for a, e in zip(actual, expected))


def check_keys(keys: list[str], spec: ModelDef, source: str, need_targets: bool = True) -> dict[str, str]:
    """The aliases the keys use ('x' and 'y'), refusing a key the spec does not name and a missing input or output.

    Needs only the keys: an .npz's member names are checked before Keras is imported.
    """
    input_names = [inp.name for inp in spec.inputs]
    output_names = spec.output_names
    keys = [key for key in keys if key != WEIGHTS and not key.startswith(WEIGHTS + "_")]  # kspec.weights checks them
    aliases: dict[str, str] = {}
    if len(input_names) == 1 and "x" in keys and input_names[0] not in keys:
        aliases["x"] = input_names[0]
    if len(output_names) == 1 and "y" in keys and output_names[0] not in keys:
        aliases["y"] = output_names[0]
    named = [aliases.get(key, key) for key in keys]
    wanted = input_names + (output_names if need_targets else [])
    for key in named:
        if key not in input_names + output_names:
            original = next(k for k, v in aliases.items() if v == key) if key in aliases.values() else key
            raise fail(DataError, source, f"unexpected array '{original}'{did_you_mean(original, wanted)}",
                       f"the spec's inputs: {', '.join(input_names)}; outputs: {', '.join(output_names)}")
    for key in wanted:
        if key not in named:
            kind = "input" if key in input_names else "output"
            raise fail(DataError, source, f"no array for {kind} '{key}'",
                       f"store it under the key '{key}'" + (" (or 'x')" if kind == "input" and len(input_names) == 1
                                                           else " (or 'y')" if len(output_names) == 1 else ""))
    return aliases


def check_arrays(arrays: dict[str, np.ndarray], spec: ModelDef, output_shapes: dict[str, tuple[Any, ...]],
                 source: str, need_targets: bool = True) -> Dataset:
    """Match arrays to the spec's inputs and outputs and check every one."""
    output_names = spec.output_names
    aliases = check_keys(list(arrays), spec, source, need_targets)
    arrays, weights = split_weights(arrays, output_names, source)
    named = {aliases.get(key, key): value for key, value in arrays.items()}

    lengths = {key: len(value) if value.ndim else 0 for key, value in named.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{key}: {n}" for key, n in lengths.items())
        raise fail(DataError, source, f"arrays have different lengths ({listed})",
                   "every array holds one row per sample")
    if not any(lengths.values()):
        raise fail(DataError, source, f"the arrays hold no samples ({', '.join(named)}: 0 rows)",
                   "store at least one row per array")

    ranges = embedding_ranges(spec)
    inputs = {inp.name: _check_input(named[inp.name], inp, ranges.get(inp.name), source) for inp in spec.inputs}
    targets = {}
    if need_targets:
        kinds = output_kinds(spec)
        for name in output_names:
            targets[name] = _check_target(named[name], name, output_shapes[name], kinds[name], source)
    check_rows(weights, len(next(iter(named.values()))), source)
    return Dataset(inputs, targets, source, weights)


def _check_input(array: Any, inp: Any, ids_limit: int | None, source: str) -> Any:
    """The input's array, checked and cast to the input's dtype."""
    expected = (None,) + tuple(inp.shape)
    if not _fits(array.shape, expected):
        raise fail(DataError, source, f"array '{inp.name}' has shape {array.shape}; input '{inp.name}' "
                   f"expects {_shape_text(expected)}", "the first axis counts samples")
    dtype = _numpy_dtype(inp.dtype)
    if dtype is None:  # a string input: Keras takes the strings as they are
        if array.dtype.kind not in "US":
            raise fail(DataError, source, f"array '{inp.name}' has dtype {array.dtype}; input '{inp.name}' "
                       "has dtype string in the spec and expects strings",
                       "store the values as a NumPy string array, e.g. numpy.array(values, dtype=str) "
                       "(never dtype=object), or declare the input's dtype as a number")
        return array
    if array.dtype.kind in "US":
        raise fail(DataError, source, f"array '{inp.name}' has dtype {array.dtype}; input '{inp.name}' "
                   f"expects numbers ({dtype})",
                   "store numbers, or declare the input 'dtype: string' in the spec and turn the strings into "
                   "numbers in the model (e.g. with StringLookup)")
    if dtype.kind in "iu" and not np.issubdtype(array.dtype, np.integer):
        raise fail(DataError, source, f"array '{inp.name}' has dtype {array.dtype}; input '{inp.name}' "
                   f"expects integers ({dtype})", "store it as an integer array")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise fail(DataError, source, f"array '{inp.name}' has dtype {array.dtype}; input '{inp.name}' "
                   f"expects numbers ({dtype})")
    values = scan(array, inp.name, source, whole=dtype.kind == "b",
                  bounds=array.dtype != dtype or ids_limit is not None)
    if ids_limit is not None and values.low is not None and (values.low < 0 or values.high >= ids_limit):
        raise fail(DataError, source, f"array '{inp.name}' holds ids from {values.low} to {values.high}, "
                   f"outside the Embedding's input_dim {ids_limit}", f"ids must lie in [0, {ids_limit - 1}]")
    return checked_cast(array, dtype, values, inp.name, source)


def _numpy_dtype(name: str | None) -> np.dtype | None:
    """The NumPy dtype an input's data is cast to (None: strings, kept as they are)."""
    if name == "string":
        return None
    # NumPy has no bfloat16: the data goes in as float32, whose range bfloat16 shares, and Keras casts it.
    return np.dtype("float32" if name in (None, "bfloat16") else name)


@dataclass(frozen=True)
class Values:
    """What one pass over an array found: its smallest and largest value, and whether all are whole."""

    low: Any
    high: Any
    whole: bool


def scan(array: Any, name: str, source: str, whole: bool = False, bounds: bool = True) -> Values:
    """Smallest and largest value, a chunk at a time (one read of a stored file); NaN or infinity refused.

    With `whole`, also finds whether every value is a whole number. Without
    `bounds` (nothing to cast, no ids to check), skips the smallest and largest.
    """
    low = high = None
    all_whole = True
    row = 0
    floating = np.issubdtype(array.dtype, np.floating)
    for chunk in chunks(array):
        if floating:
            finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
            if not finite.all():
                bad = row + int(np.flatnonzero(~finite)[0])
                raise fail(DataError, source, f"array '{name}' holds NaN or infinity (first in row {bad})",
                           "clean or drop those rows before training")
            if whole:
                all_whole = all_whole and bool(np.all(np.floor(chunk) == chunk))
        if bounds and chunk.size:
            low = chunk.min().item() if low is None else min(low, chunk.min().item())
            high = chunk.max().item() if high is None else max(high, chunk.max().item())
        row += len(chunk)
    return Values(low, high, all_whole)


def checked_cast(array: Any, dtype: np.dtype, values: Values, name: str, source: str,
                 row_shape: tuple[int, ...] | None = None) -> Any:
    """`array` as `dtype`, refusing values the cast would change without a word.

    NumPy wraps integers that do not fit (2**31 becomes -2**31 in int32),
    turns floats beyond a type's range into infinity and any non-zero into
    True: every cast of data kspec makes goes through here, after `scan`.
    """
    if values.low is not None and array.dtype != dtype:
        fits = _holds(dtype, values)
        if not fits:
            raise fail(DataError, source, f"array '{name}' holds values from {values.low} to {values.high}, "
                       f"which {dtype} cannot hold: {_range_text(dtype)}; the cast would change them",
                       _cast_hint(dtype))
    if isinstance(array, StoredArray):
        return array.view(dtype, row_shape)  # converted per read, from the values checked here
    array = array.astype(dtype, copy=False)
    return array if row_shape is None else array.reshape((len(array),) + row_shape)


def _holds(dtype: np.dtype, values: Values) -> bool:
    if dtype.kind == "b":
        return values.low >= 0 and values.high <= 1 and values.whole
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return bool(info.min <= values.low and values.high <= info.max)


def _range_text(dtype: np.dtype) -> str:
    if dtype.kind == "b":
        return "only 0 and 1"
    if dtype.kind in "iu":
        return f"{np.iinfo(dtype).min} to {np.iinfo(dtype).max}"
    return f"{float(np.finfo(dtype).min):g} to {float(np.finfo(dtype).max):g}"


def _cast_hint(dtype: np.dtype) -> str:
    if dtype.kind in "iu":
        return "store ids that fit, or give the input a wider dtype in the spec (e.g. dtype: int64)"
    if dtype.kind == "b":
        return "store 0/1 or True/False values"
    return "scale the values into range, or give the input a wider dtype in the spec (e.g. dtype: float32)"


def _check_target(array: np.ndarray, name: str, output_shape: tuple[Any, ...], kind: str,
                  source: str) -> np.ndarray:
    classes = output_shape[-1]
    if kind == SPARSE:
        expected_shapes = [output_shape[:-1], output_shape[:-1] + (1,)]
        if not any(_fits(array.shape, shape) for shape in expected_shapes):
            raise fail(DataError, source, f"array '{name}' has shape {array.shape}; output '{name}' with a "
                       f"sparse categorical loss expects class ids of shape {_shape_text(output_shape[:-1])}")
        if not np.issubdtype(array.dtype, np.integer):
            raise fail(DataError, source, f"array '{name}' has dtype {array.dtype}; a sparse categorical loss "
                       "expects integer class ids")
        values = scan(array, name, source)
        if values.low is not None and (values.low < 0 or values.high >= classes):
            raise fail(DataError, source, f"array '{name}' holds class ids from {values.low} to {values.high}; "
                       f"output '{name}' has {classes} classes", f"ids must lie in [0, {classes - 1}]")
        return array
    expected = tuple(output_shape)
    if not _fits(array.shape, expected) and not (expected[1:] == (1,) and _fits(array.shape, expected[:1])):
        raise fail(DataError, source, f"array '{name}' has shape {array.shape}; output '{name}' "
                   f"expects {_shape_text(expected)}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise fail(DataError, source, f"array '{name}' has dtype {array.dtype}; output '{name}' expects numbers")
    values = scan(array, name, source, bounds=array.dtype != np.float32)
    return checked_cast(array, np.dtype("float32"), values, name, source, tuple(expected[1:]))


def check_training_data(dataset: Dataset, validation: Dataset | None, batch_size: int,
                        validation_split: float | None) -> None:
    """What training will ask of its data, checked before a run folder is made."""
    if validation is None and validation_split:
        check_split(len(dataset), validation_split, dataset.source)
    for data in (dataset, validation):
        if data is not None:
            data.check_batch(batch_size)


def check_split(rows: int, fraction: float, source: str) -> None:
    """Refuse a validation split that leaves no rows to validate on (Keras takes the last int(rows * fraction))."""
    held_out = int(rows * fraction)
    if held_out == 0:
        raise fail(DataError, source, f"a validation split of {fraction:g} holds out no rows of {rows:,}",
                   f"give a split of at least {1 / rows:.3g}, more data, or no split")


def load_npz(path: str | Path, spec: ModelDef, output_shapes: dict[str, tuple[Any, ...]],
             need_targets: bool = True, stream: bool | None = None) -> Dataset:
    """Read a data file and check it against the spec: an .npz, a folder of .npy files, a CSV or Parquet
    table (kspec.tables) or a folder of class folders of images (kspec.image_folders)."""
    from . import image_folders, tables

    path = Path(path)
    check_data_path(path, spec, need_targets)
    if tables.is_table(path):
        arrays = tables.read_table(path, spec, output_kinds(spec), output_shapes, need_targets, stream, STREAM_BYTES)
    elif image_folders.is_image_folder(path):
        arrays = image_folders.read_image_folder(path, spec, output_kinds(spec), output_shapes, need_targets)
    else:
        arrays = read_npz(path, stream)
    return check_arrays(arrays, spec, output_shapes, str(path), need_targets)


def check_data_path(path: Path, spec: ModelDef, need_targets: bool = True) -> None:
    """What a data path's name, kind and header can tell, checked before Keras is imported.

    A table's columns and an image folder's classes are checked against the
    spec; an .npz is checked to be a zip archive (its arrays are checked
    against the built model's outputs, once it is built).
    """
    from . import image_folders, tables

    if not path.exists():
        raise fail(DataError, str(path), "data file not found", "check the path")
    if tables.is_table(path):
        if not path.is_file():
            raise fail(DataError, str(path), "is not a regular file", "give a CSV or Parquet file")
        tables.check_columns(path, spec, need_targets)
    elif image_folders.is_image_folder(path):
        image_folders.check_folder(path, spec, need_targets)
    else:
        check_npz_file(path)
        keys = _npz_keys(path)
        if keys:
            check_keys(keys, spec, str(path), need_targets)


def _npz_keys(path: Path) -> list[str] | None:
    """The array names of an .npz (its members NAME.npy) or a folder of NAME.npy files, from names alone.

    None when the names are not plain NAME.npy: reading the file reports that, with the member's name.
    """
    if path.is_dir():
        return [file.stem for file in path.glob("*.npy")] or None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if not names or not all(name.endswith(".npy") and not set("/\\") & set(name) for name in names):
        return None
    return [name[: -len(".npy")] for name in names]


def count_rows(path: Path) -> int:
    """The rows (samples) of a data file, reading as little of it as its format allows."""
    from . import image_folders, tables

    if tables.is_table(path):
        return tables.count_rows(path)
    if image_folders.is_image_folder(path):
        return image_folders.count_images(path)
    return len(next(iter(read_npz(path, stream=True).values())))  # headers only


# ----------------------------------------------------------------- synthetic
def synthetic_inputs(spec: ModelDef, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs that fit the spec: dtypes, shapes, ids inside their Embedding."""
    ranges = embedding_ranges(spec)
    shapes = {inp.name: (n,) + tuple(8 if d is None else d for d in inp.shape) for inp in spec.inputs}
    _refuse_oversized(spec, shapes)
    inputs = {}
    for inp in spec.inputs:
        shape = shapes[inp.name]
        dtype = _numpy_dtype(inp.dtype)
        if dtype is None:
            inputs[inp.name] = synthetic_strings(spec, inp.name, shape, rng)
        elif dtype.kind in "iu":
            inputs[inp.name] = rng.integers(0, ranges.get(inp.name, 10), size=shape).astype(dtype)
        elif dtype.kind == "b":
            inputs[inp.name] = rng.random(shape) < 0.5
        else:
            inputs[inp.name] = rng.random(shape, dtype="float32").astype(dtype)
    return inputs


# Words for a string input whose first layer has no vocabulary: short, and few, so that a lookup adapted
# to them sees each word often.
SYNTHETIC_WORDS = tuple(f"w{i}" for i in range(16))
MAX_SYNTHETIC_WORDS = 8  # words in a synthetic text, for a TextVectorization to split


def synthetic_strings(spec: ModelDef, name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Strings for a string input: words of the vocabulary of the first layer called on it, if it has one.

    Values for a TextVectorization are texts of a few words; any other layer gets one word a value.
    """
    layer = _first_layer_on(spec, name)
    vocabulary = layer.args.get("vocabulary") if layer is not None else None
    words = [str(word) for word in vocabulary] if isinstance(vocabulary, list) and vocabulary else None
    words = np.array(words or SYNTHETIC_WORDS)
    if layer is None or layer.class_name != "TextVectorization":
        return words[rng.integers(0, len(words), size=shape)]
    count = int(np.prod(shape))
    lengths = rng.integers(1, MAX_SYNTHETIC_WORDS + 1, size=count)
    texts = [" ".join(words[rng.integers(0, len(words), size=n)]) for n in lengths]
    return np.array(texts, dtype=str).reshape(shape)


def _first_layer_on(spec: ModelDef, name: str) -> LayerDef | None:
    """The layer (inline or declared) of the first edge called on tensor `name` alone."""
    for index, edge in enumerate(spec.edges):
        called_on = call_inputs(spec, index)
        if isinstance(called_on, Ref) and called_on.name == name:
            return edge.layer or (spec.layers.get(edge.target.name) if edge.target else None)
    return None


def _refuse_oversized(spec: ModelDef, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse synthetic inputs that would not fit in memory, before any is made.

    Counted at 8 bytes a value: NumPy draws random integers as int64 first.
    """
    sizes = {name: math.prod(shape) * 8 for name, shape in shapes.items()}
    limit = memory_bytes() // 2
    if sum(sizes.values()) > limit:
        largest = max(sizes, key=sizes.__getitem__)
        where = next(inp.loc for inp in spec.inputs if inp.name == largest)
        raise fail(DataError, where, f"synthetic data of shape {shapes[largest]} for input '{largest}' would take "
                   f"{sum(sizes.values()):,} bytes with the other inputs, more than half of this machine's memory "
                   f"({limit * 2:,} bytes)", "use fewer samples or a smaller input shape")


def labels_from_teacher(outputs: dict[str, np.ndarray], kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """Turn a teacher model's outputs into labels that fit each output's loss."""
    labels = {}
    for name, values in outputs.items():
        kind = kinds[name]
        if kind == CATEGORICAL and values.shape[-1] == 1:
            kind = BINARY  # one unit: 'crossentropy' means binary there
        if kind == BINARY:
            # Thresholding at the median gives balanced 0/1 labels.
            labels[name] = (values > np.median(values, axis=0)).astype("float32")
        elif kind in (CATEGORICAL, SPARSE):
            ids = values.argmax(axis=-1)
            labels[name] = ids if kind == SPARSE else np.eye(values.shape[-1], dtype="float32")[ids]
        else:
            labels[name] = values.astype("float32")
    return labels


def synthetic(spec: ModelDef, n: int, seed: int, teacher: Callable[[Dataset], list[np.ndarray]]) -> Dataset:
    """`n` samples of spec-shaped inputs, labelled by `teacher` (a copy of the model, given the inputs)."""
    rng = np.random.default_rng(seed)
    inputs = synthetic_inputs(spec, n, rng)
    dataset = Dataset(inputs, {}, f"synthetic data ({n} samples, seed {seed})")
    outputs = teacher(dataset)
    named = dict(zip(spec.output_names, outputs))
    dataset.targets = labels_from_teacher(named, output_kinds(spec))
    return dataset
