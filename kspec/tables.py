"""Tables: CSV and Parquet files whose columns fill a spec's inputs and outputs, read with pyarrow.

A column named after an input fills it when the input holds one value a row
(shape [] or [1]); an input with more values lists its columns in the spec
(`columns: [a, b, ...]`) or takes the columns NAME_0, NAME_1, ... An output
takes the column of its name (a class id for a sparse loss, a value for one
unit) or NAME_0, NAME_1, ... (the columns `kspec predict` writes).

Everything a table's schema can tell is checked first, before a value is read:
the file's format, and a column for every input and output. Values are then
checked as they are turned into arrays: a missing cell (refused with its
column, row and count, unless the input says what fills it with `fill:`), and
text in a column that feeds numbers (refused with its column, row and value).
kspec.data then checks the arrays as it checks an .npz's, casts included.

A table is read whole when it is small, and otherwise one row group at a
time (`TableColumn`): memory then holds a few row groups of the columns the
spec reads, and batches are shuffled within row groups, the row groups in a
new order every epoch (kspec.feed). A CSV file cannot be read from the
middle: a large one is first copied, a block at a time, into a temporary
Parquet file, which is then read the same way.

pyarrow is an optional dependency (the `data` extra): kspec's arrays need
nothing beyond NumPy, and pyarrow is a large wheel.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .arrays import StoredArray, memory_bytes
from .errors import DataError, did_you_mean, fail
from .spec.model import ModelDef

TABLE_SUFFIXES = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}
SPARSE = "sparse"  # kspec.data's name for class-id labels (not imported: data imports this module)
CSV_EXPANSION = 8  # bytes in memory per byte of CSV text, at most, counted before reading


def is_table(path: Path) -> bool:
    return path.suffix.lower() in TABLE_SUFFIXES


def _pyarrow(where: str) -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.compute  # noqa: F401
        import pyarrow.csv  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise fail(DataError, where, "reading CSV and Parquet tables needs pyarrow, which is not installed",
                   "pip install 'kspec[data]'") from None
    return pyarrow


@dataclass(frozen=True)
class Plan:
    """Which columns fill one input or output, and the shape of a row once they are stacked."""

    name: str
    kind: str  # "input" or "output"
    columns: tuple[str, ...]
    row_shape: tuple[int, ...]
    fill: Any = None
    text: bool = False  # a string input


# ----------------------------------------------------------------- the schema
def column_names(path: Path) -> list[str]:
    """The table's column names, read from its header or footer only."""
    pa = _pyarrow(str(path))
    where = str(path)
    if TABLE_SUFFIXES[path.suffix.lower()] == "Parquet":
        return list(_parquet_file(path).schema_arrow.names)
    try:
        reader = pa.csv.open_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _csv_error(where, exc) from None
    with reader:
        return list(reader.schema.names)


def _csv_error(where: str, exc: Exception) -> DataError:
    if "Empty CSV file" in str(exc):
        return fail(DataError, where, "the CSV file is empty", "write a header line of column names, then a row "
                    "per sample")
    return fail(DataError, where, f"cannot read the CSV file: {exc}", "write it with one header line of column "
                "names and a comma-separated row per sample")


def _parquet_file(path: Path) -> Any:
    pa = _pyarrow(str(path))
    try:
        return pa.parquet.ParquetFile(path, pre_buffer=False)  # reads a column chunk at a time: less memory
    except (pa.ArrowException, OSError) as exc:
        raise fail(DataError, str(path), f"not a Parquet file, or a corrupt or truncated one ({exc})",
                   "write it again, e.g. with pyarrow.parquet.write_table or pandas.DataFrame.to_parquet") from None


def plans(spec: ModelDef, names: list[str], where: str, kinds: dict[str, str] | None,
          output_shapes: dict[str, tuple[Any, ...]] | None, need_targets: bool) -> list[Plan]:
    """The columns of each input (and output, with `need_targets`), refusing a column the table lacks.

    Without `output_shapes` (before a model is built), an output's NAME_i columns are all those present.
    """
    present = set(names)
    found = []
    for inp in spec.inputs:
        size = math.prod(d or 0 for d in inp.shape)
        if inp.columns is not None:
            columns, row_shape = inp.columns, tuple(inp.shape)
            _require(columns, present, names, inp.name, "input", where)
        elif inp.name in present and size == 1:
            columns, row_shape = (inp.name,), tuple(inp.shape)
        elif inp.name in present:
            raise fail(DataError, where, f"column '{inp.name}' holds one value a row, and input '{inp.name}' "
                       f"has shape {list(inp.shape)}", f"list the input's columns in the spec, e.g. 'columns: "
                       f"[{', '.join(names[:2])}]', or name them {inp.name}_0, {inp.name}_1, ...")
        else:
            columns = _numbered(inp.name, present, size if size > 1 else None)
            if not columns:
                _require((inp.name,), present, names, inp.name, "input", where)
            row_shape = tuple(inp.shape) if size == len(columns) else (len(columns),)
        found.append(Plan(inp.name, "input", tuple(columns), row_shape, inp.fill, inp.dtype == "string"))
    if need_targets:
        for name in spec.output_names:
            shape = output_shapes.get(name) if output_shapes else None
            units = shape[-1] if shape and isinstance(shape[-1], int) else None
            sparse = kinds is not None and kinds.get(name) == SPARSE
            if name in present:
                columns, row_shape = (name,), (() if sparse or units is None else (1,))
            else:
                columns = _numbered(name, present, units)
                if not columns:
                    _require((name,), present, names, name, "output", where)
                row_shape = (len(columns),)
            found.append(Plan(name, "output", tuple(columns), row_shape))
    return found


def _numbered(name: str, present: set[str], count: int | None) -> list[str]:
    """NAME_0, NAME_1, ...: `count` of them if all are there, else as many as are there in a row."""
    if count is not None:
        wanted = [f"{name}_{i}" for i in range(count)]
        return wanted if all(c in present for c in wanted) else []
    columns: list[str] = []
    while f"{name}_{len(columns)}" in present:
        columns.append(f"{name}_{len(columns)}")
    return columns


def _require(columns: tuple[str, ...], present: set[str], names: list[str], name: str, kind: str,
             where: str) -> None:
    for column in columns:
        if column not in present:
            listed = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            how = ("list its columns in the spec with 'columns:'" if kind == "input"
                   else f"name the label column '{name}', or {name}_0, {name}_1, ... for several")
            raise fail(DataError, where, f"no column '{column}' for {kind} '{name}'{did_you_mean(column, names)}",
                       f"the table's columns: {listed}; {how}")


def check_columns(path: Path, spec: ModelDef, need_targets: bool = True) -> None:
    """The file's format and a column for every input (and output): read from the header, before Keras."""
    plans(spec, column_names(path), str(path), None, None, need_targets)


# ----------------------------------------------------------------- values
def to_array(table: Any, plan: Plan, where: str, first_row: int, missing: dict[str, int] | None = None) -> np.ndarray:
    """The plan's columns of a pyarrow table (rows from `first_row` of the file) stacked into one array.

    `missing` gives each column's count of missing cells in the whole file, when known.
    """
    pa = _pyarrow(where)
    parts = []
    for name in plan.columns:
        column = table.column(name)
        if column.null_count:
            column = _filled(pa, column, plan, name, where, first_row, (missing or {}).get(name))
        parts.append(_values(pa, column, plan, name, where, first_row))
    rows = table.num_rows
    if not parts:
        return np.zeros((rows,) + plan.row_shape, dtype="float32")
    stacked = parts[0].reshape(rows, 1) if len(parts) == 1 else np.stack(parts, axis=1)
    return stacked.reshape((rows,) + plan.row_shape)


def _filled(pa: Any, column: Any, plan: Plan, name: str, where: str, first_row: int, count: int | None) -> Any:
    if plan.fill is not None:
        if plan.text or pa.types.is_string(column.type):  # text in a numeric column is refused after
            return pa.compute.fill_null(column.cast(pa.string()), str(plan.fill))
        return pa.compute.fill_null(column.cast(pa.float64()), float(plan.fill))
    row = first_row + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
    total = count if count else column.null_count
    hint = (f"fill them in the file, or give input '{plan.name}' a value for them in the spec ('fill: 0')"
            if plan.kind == "input" else "fill or drop those rows: a missing label cannot be guessed")
    raise fail(DataError, where, f"column '{name}' has {total:,} missing value{'s' if total != 1 else ''} "
               f"(first in row {row})", hint)


def _values(pa: Any, column: Any, plan: Plan, name: str, where: str, first_row: int) -> np.ndarray:
    kind = column.type
    if plan.text:
        return np.asarray(column.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=str)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = column.to_pylist()
        for row, value in enumerate(values):
            try:
                float(value)
            except (TypeError, ValueError):
                raise fail(DataError, where, f"column '{name}' holds text where {plan.kind} '{plan.name}' "
                           f"expects numbers: row {first_row + row} is {value!r}",
                           "fix or drop that row" + (f", or declare input '{plan.name}' 'dtype: string'"
                                                     if plan.kind == "input" else "")) from None
        return np.asarray(values, dtype="float64")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise fail(DataError, where, f"column '{name}' holds values of type {kind}, not numbers",
                   "store numbers (or strings, for a 'dtype: string' input)")
    return column.to_numpy(zero_copy_only=False)


# ------------------------------------------------------------------ reading
def read_table(path: Path, spec: ModelDef, kinds: dict[str, str], output_shapes: dict[str, tuple[Any, ...]],
               need_targets: bool, stream: bool | None, stream_bytes: int) -> dict[str, Any]:
    """Arrays by input and output name from a CSV or Parquet table; a large Parquet file is streamed."""
    where = str(path)
    pa = _pyarrow(where)
    parquet = TABLE_SUFFIXES[path.suffix.lower()] == "Parquet"
    names = column_names(path)
    found = plans(spec, names, where, kinds, output_shapes, need_targets)
    wanted = sorted({c for plan in found for c in plan.columns})
    if not parquet:
        size = os.stat(path).st_size
        if stream or (stream is None and size > stream_bytes) or size * CSV_EXPANSION > memory_bytes() // 2:
            path, parquet = _csv_as_parquet(path, wanted), True  # streamed from a copy in row groups
    if parquet:
        meta = _parquet_file(path).metadata
        missing = _null_counts(meta, wanted)
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if meta.num_rows == 0:
            raise _no_rows(where)
        if stream or (stream is None and size > stream_bytes) or path != Path(where):
            return {plan.name: _column(path, plan, meta, missing, where) for plan in found}
        if size > memory_bytes() // 2:
            raise fail(DataError, where, f"the table takes {size:,} bytes in memory, more than half of this "
                       "machine's", "train with --stream, and kspec reads it one row group at a time")
        try:
            table = pa.parquet.read_table(path, columns=wanted)
        except (pa.ArrowException, OSError) as exc:
            raise fail(DataError, where, f"cannot read the Parquet file (corrupt or truncated): {exc}") from None
    else:
        missing = {}
        try:
            table = pa.csv.read_csv(path, convert_options=_csv_options(pa, wanted))
        except (pa.ArrowInvalid, OSError) as exc:
            raise _csv_error(where, exc) from None
    if table.num_rows == 0:
        raise _no_rows(where)
    return {plan.name: to_array(table, plan, where, 0, missing) for plan in found}


def _csv_options(pa: Any, columns: list[str]) -> Any:
    # An empty cell is a missing value in a text column too, not an empty word.
    return pa.csv.ConvertOptions(include_columns=columns, strings_can_be_null=True)


def _csv_as_parquet(path: Path, columns: list[str]) -> Path:
    """The CSV's columns copied, a block at a time, into a temporary Parquet file (removed at exit).

    A CSV file cannot be read from the middle; its Parquet copy is read a row
    group at a time like any large Parquet file. Each column's type is
    guessed from the file's first block, as pyarrow does.
    """
    where = str(path)
    pa = _pyarrow(where)
    handle, name = tempfile.mkstemp(prefix="kspec-", suffix=".parquet")
    os.close(handle)
    copy = Path(name)
    atexit.register(copy.unlink, missing_ok=True)
    try:
        with pa.csv.open_csv(path, convert_options=_csv_options(pa, columns)) as reader:
            with pa.parquet.ParquetWriter(copy, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
    except (pa.ArrowInvalid, OSError) as exc:
        copy.unlink(missing_ok=True)
        raise fail(DataError, where, f"cannot read the CSV file: {exc}", "a column's type is guessed from its "
                   "first rows; make every value of a numeric column a number, or give the data as Parquet") from None
    return copy


def _no_rows(where: str) -> DataError:
    return fail(DataError, where, "the table has no rows, only column names", "add a row per sample")


def _null_counts(meta: Any, columns: list[str]) -> dict[str, int]:
    """Missing cells per column, from the footer's statistics (0 where a writer left them out)."""
    counts: dict[str, int] = {}
    index = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    for group in range(meta.num_row_groups):
        for name in columns:
            stats = meta.row_group(group).column(index[name]).statistics
            if stats is not None and stats.has_null_count:
                counts[name] = counts.get(name, 0) + stats.null_count
    return counts


def _column(path: Path, plan: Plan, meta: Any, missing: dict[str, int], where: str) -> TableColumn:
    schema = meta.schema.to_arrow_schema()
    if plan.text:
        stored = np.dtype(str)
    else:
        types = [schema.field(name).type for name in plan.columns]
        stored = np.result_type(*[_numpy_type(kind) for kind in types]) if types else np.dtype("float32")
    return TableColumn(path, 0, stored, (meta.num_rows,) + plan.row_shape, stamp=_stamp(path), key=plan.name,
                       plan=plan, missing=tuple(missing.items()), group_rows=meta.row_group(0).num_rows
                       if meta.num_row_groups else 1, where=where)


def _numpy_type(kind: Any) -> np.dtype:
    """The NumPy dtype a numeric column reads as; float64 for text, which is refused, with its row, when read."""
    try:
        dtype = np.dtype(kind.to_pandas_dtype())
    except (NotImplementedError, TypeError):
        return np.dtype("float64")
    return dtype if dtype.kind in "iufb" else np.dtype("float64")


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


@dataclass(frozen=True)
class TableColumn(StoredArray):
    """An input's or output's columns of a Parquet file, read a few row groups at a time.

    `offset` is the file row of this array's first row; `group_rows` the
    size of the file's row groups, which kspec.feed shuffles batches within.
    """

    plan: Plan | None = None
    missing: tuple[tuple[str, int], ...] = ()
    group_rows: int = 1
    where: str = ""  # the file messages name: the CSV file, for a Parquet copy of one

    @property
    def nbytes(self) -> int:
        return self.size * max(self.stored_dtype.itemsize, 8)

    @property
    def chunk_rows(self) -> int:
        """Rows a check reads at a time (kspec.arrays.chunks): a row group."""
        return self.group_rows

    def window(self, start: int, stop: int) -> TableColumn:
        start, stop = max(0, min(start, len(self))), max(0, min(stop, len(self)))
        return replace(self, offset=self.offset + start, shape=(stop - start,) + self.shape[1:])

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), max(max(0, start), min(len(self), stop))
        assert self.plan is not None
        if os.path.exists(self.path) and self.stamp is not None and _stamp(self.path) != self.stamp:
            raise self._changed("changed")
        table = _GROUPS.rows(self.path, self.plan.columns, self.offset + start, self.offset + stop)
        data = to_array(table, self.plan, self.where or str(self.path), self.offset + start, dict(self.missing))
        return data.astype(self.cast, copy=False) if self.cast is not None else data


class _RowGroups:
    """The last few row groups read, so that consecutive batches read each from the file once."""

    KEEP = 4  # row groups of column sets: a batch may straddle two groups, and reads inputs and labels

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[Any, Any] = {}
        self.groups: dict[Any, Any] = {}

    def rows(self, path: Path, columns: tuple[str, ...], start: int, stop: int) -> Any:
        pa = _pyarrow(str(path))
        with self.lock:
            handle, offsets = self._file(path)
            parts = []
            for group in range(len(offsets) - 1):
                low, high = offsets[group], offsets[group + 1]
                if high <= start or low >= stop:
                    continue
                table = self._group(path, handle, group, columns)
                parts.append(table.slice(max(start, low) - low, min(stop, high) - max(start, low)))
            if not parts:
                return handle.schema_arrow.empty_table().select(list(columns))
            return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def _file(self, path: Path) -> tuple[Any, list[int]]:
        key = (str(path), _stamp(path))
        if key not in self.files:
            self.files.clear()
            self.groups.clear()
            handle = _parquet_file(path)
            offsets = [0]
            for group in range(handle.metadata.num_row_groups):
                offsets.append(offsets[-1] + handle.metadata.row_group(group).num_rows)
            self.files[key] = (handle, offsets)
        return self.files[key]

    def _group(self, path: Path, handle: Any, group: int, columns: tuple[str, ...]) -> Any:
        key = (group, columns)
        if key not in self.groups:
            while len(self.groups) >= self.KEEP:
                self.groups.pop(next(iter(self.groups)))
            try:
                self.groups[key] = handle.read_row_group(group, columns=list(columns))
            except Exception as exc:  # pyarrow's errors of a damaged file
                raise fail(DataError, str(path), f"cannot read row group {group} of the Parquet file "
                           f"(corrupt or truncated): {exc}") from None
        return self.groups[key]


_GROUPS = _RowGroups()


def count_rows(path: Path) -> int:
    """The table's rows (for a run's record of held-out rows): from the footer, or by reading a CSV."""
    if TABLE_SUFFIXES[path.suffix.lower()] == "Parquet":
        return int(_parquet_file(path).metadata.num_rows)
    pa = _pyarrow(str(path))
    try:
        return pa.csv.read_csv(path).num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise _csv_error(str(path), exc) from None


def block_rows(arrays: list[Any]) -> int | None:
    """The row-group size of streamed table columns (batches are shuffled within groups), else None."""
    for array in arrays:
        if isinstance(array, TableColumn):
            return array.group_rows
    return None


def read_columns(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Whole columns of a table, as they are (for `kspec predict --keep-columns`)."""
    where = str(path)
    pa = _pyarrow(where)
    present = column_names(path)
    for name in names:
        if name not in present:
            raise fail(DataError, where, f"no column '{name}' to keep{did_you_mean(name, present)}",
                       f"the table's columns: {', '.join(present[:8])}")
    try:
        if TABLE_SUFFIXES[path.suffix.lower()] == "Parquet":
            table = pa.parquet.read_table(path, columns=list(names))
        else:
            table = pa.csv.read_csv(path, convert_options=pa.csv.ConvertOptions(include_columns=list(names)))
    except (pa.ArrowException, OSError) as exc:
        raise fail(DataError, where, f"cannot read the table (corrupt or truncated): {exc}") from None
    found = {}
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        found[name] = values.astype(str) if values.dtype == object else values
    return found


@contextlib.contextmanager
def parquet_writer(path: Path) -> Iterator[Callable[[dict[str, np.ndarray]], None]]:
    """A function that appends named columns (one batch of rows) to a new Parquet file at `path`."""
    pa = _pyarrow(str(path))
    writer = None

    def write(columns: dict[str, np.ndarray]) -> None:
        nonlocal writer
        table = pa.table(columns)
        if writer is None:
            writer = pa.parquet.ParquetWriter(path, table.schema)
        writer.write_table(table)

    try:
        yield write
    finally:
        if writer is not None:
            writer.close()
