"""Arrays read from their file a few rows at a time, for data larger than memory.

An uncompressed .npz member (what `numpy.savez` writes) and a .npy file keep
their array's bytes in one contiguous block, so rows can be read straight
from the file at an offset. A `StoredArray` does that: checking and training
then hold one chunk or batch in memory, never the whole array. Reads go
through the file rather than a memory map, so the pages read are not counted
in the process's resident memory.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

CHUNK_BYTES = 64 * 2**20  # what one check reads at a time


@dataclass(frozen=True)
class StoredArray:
    """A C-ordered array at `offset` in `path`; rows come out cast to `cast` and shaped `row_shape`."""

    path: Path
    offset: int
    stored_dtype: np.dtype
    shape: tuple[int, ...]
    cast: np.dtype | None = None
    row_shape: tuple[int, ...] | None = None

    @property
    def dtype(self) -> np.dtype:
        return self.cast or self.stored_dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.stored_dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def view(self, dtype: Any = None, row_shape: tuple[int, ...] | None = None) -> StoredArray:
        """The same bytes, read as another dtype and row shape (converted per read)."""
        return replace(self, cast=np.dtype(dtype) if dtype is not None else self.cast,
                       row_shape=row_shape if row_shape is not None else self.row_shape)

    def window(self, start: int, stop: int) -> StoredArray:
        """Rows start..stop as a stored array of their own (nothing is read)."""
        start, stop = max(0, min(start, len(self))), max(0, min(stop, len(self)))
        row_bytes = int(np.prod(self.shape[1:])) * self.stored_dtype.itemsize
        return replace(self, offset=self.offset + start * row_bytes, shape=(stop - start,) + self.shape[1:])

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(len(self), stop)
        row_items = int(np.prod(self.shape[1:]))
        count = max(stop - start, 0) * row_items
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * row_items * self.stored_dtype.itemsize)
            data = np.fromfile(handle, dtype=self.stored_dtype, count=count)
        data = data.reshape((max(stop - start, 0),) + (self.row_shape or self.shape[1:]))
        return data.astype(self.cast, copy=False) if self.cast is not None else data

    def __getitem__(self, item: Any) -> np.ndarray:
        if isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(len(self))
            return self.rows(start, stop)
        raise TypeError("a stored array is read by contiguous row slices")


def chunks(array: Any) -> Iterator[np.ndarray]:
    """An array (in memory or stored) as a sequence of row blocks."""
    if not isinstance(array, StoredArray):
        yield array
        return
    row_bytes = max(1, array.nbytes // max(len(array), 1))
    step = max(1, CHUNK_BYTES // row_bytes)
    for start in range(0, len(array), step):
        yield array.rows(start, start + step)


def _npy_header(handle: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _stored(handle: Any, path: Path, start: int, end: int) -> StoredArray | None:
    """The .npy array between `start` and `end` in the open file, if its bytes can be read in place."""
    handle.seek(start)
    shape, fortran_order, dtype = _npy_header(handle)
    offset = handle.tell()
    if fortran_order or dtype.hasobject or not shape:
        return None
    array = StoredArray(path, offset, dtype, tuple(shape))
    if offset + array.nbytes > end:  # a cut-short file: found here, not at the batch that runs past its end
        raise EOFError(f"'{path.name}' holds {max(end - offset, 0):,} of the {array.nbytes:,} bytes of "
                       "data its header promises")
    return array


def stored_npz_members(path: Path) -> dict[str, StoredArray | None]:
    """Each member of an .npz: a StoredArray when uncompressed (else None: load it the usual way)."""
    found: dict[str, StoredArray | None] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[: -len(".npy")]
            if info.compress_type != zipfile.ZIP_STORED:
                found[key] = None
                continue
            handle.seek(info.header_offset)
            header = struct.unpack("<4s5H3L2H", handle.read(30))
            start = info.header_offset + 30 + header[9] + header[10]  # after the name and extra fields
            found[key] = _stored(handle, path, start, start + info.file_size)
    return found


def stored_npy_folder(folder: Path) -> dict[str, StoredArray | None]:
    """A folder of KEY.npy files, each read in place."""
    found: dict[str, StoredArray | None] = {}
    for path in sorted(folder.glob("*.npy")):
        with open(path, "rb") as handle:
            found[path.stem] = _stored(handle, path, 0, path.stat().st_size)
    return found
