"""Arrays read from .npy files and .npz archives, their headers checked before anything is allocated.

Every array kspec reads enters here. A header is untrusted: it may promise a
negative or enormous shape, a dtype that is not plain numbers or strings (objects,
which would be unpickled; structured records; complex numbers), or more bytes
than the file holds. Each is refused, naming the file and the array, before
memory is allocated or data is read. No pickle is ever loaded.

An uncompressed .npz member (what `numpy.savez` writes) and a .npy file keep
their array's bytes in one contiguous block, so rows can be read straight
from the file at an offset. A `StoredArray` does that: checking and training
then hold one chunk or batch in memory, never the whole array. Reads go
through the file rather than a memory map, so the pages read are not counted
in the process's resident memory. A stored array notices when its file
changes or shrinks after it was checked, and stops with the file's name.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from .errors import DataError, fail
from .modelfile import EXPANSION_FLOOR_BYTES, MAX_EXPANSION

CHUNK_BYTES = 64 * 2**20  # what one check reads at a time
# A .npy header (magic, version, length, dict) is never longer; numpy itself refuses dicts over 10,000 bytes.
MAX_HEADER_BYTES = 2**16 + 16
NPY_VERSIONS = ((1, 0), (2, 0), (3, 0))
REFUSED_KINDS = {"O": "Python objects, which kspec does not load",
                 "V": "records of a structured dtype",
                 "c": "complex numbers"}


def memory_bytes() -> int:
    """The machine's physical memory, the bound on what may be loaded whole."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return 8 * 2**30


@dataclass(frozen=True)
class Header:
    """A checked .npy header: the array's shape and dtype, and where its bytes start."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize  # Python ints: no overflow


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


@dataclass(frozen=True)
class StoredArray:
    """A C-ordered array at `offset` in `path`; rows come out cast to `cast` and shaped `row_shape`.

    `stamp` is the file's size and modification time when it was checked:
    a read from a file that no longer matches it is refused.
    """

    path: Path
    offset: int
    stored_dtype: np.dtype
    shape: tuple[int, ...]
    cast: np.dtype | None = None
    row_shape: tuple[int, ...] | None = None
    stamp: tuple[int, int] | None = None
    key: str = ""

    @property
    def dtype(self) -> np.dtype:
        return self.cast or self.stored_dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

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
        row_bytes = math.prod(self.shape[1:]) * self.stored_dtype.itemsize
        return replace(self, offset=self.offset + start * row_bytes, shape=(stop - start,) + self.shape[1:])

    def rows(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(len(self), stop)
        row_items = math.prod(self.shape[1:])
        count = max(stop - start, 0) * row_items
        with open(self.path, "rb") as handle:
            self._check_unchanged(handle)
            handle.seek(self.offset + start * row_items * self.stored_dtype.itemsize)
            data = np.fromfile(handle, dtype=self.stored_dtype, count=count)
        if data.size != count:
            raise self._changed("shrank")
        data = data.reshape((max(stop - start, 0),) + (self.row_shape or self.shape[1:]))
        return data.astype(self.cast, copy=False) if self.cast is not None else data

    def _check_unchanged(self, handle: BinaryIO) -> None:
        status = os.fstat(handle.fileno())
        if self.stamp is not None and (status.st_size, status.st_mtime_ns) != self.stamp:
            raise self._changed("shrank" if status.st_size < self.stamp[0] else "changed")

    def _changed(self, how: str) -> DataError:
        return fail(DataError, str(self.path), f"the file {how} while kspec was reading array '{self.key}' "
                    "from it", "leave data files alone while kspec uses them, then run the command again")

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
    # A table's column reads whole row groups (kspec.tables): a chunk of one group holds memory to one.
    step = getattr(array, "chunk_rows", None) or max(1, CHUNK_BYTES // row_bytes)
    for start in range(0, len(array), step):
        yield array.rows(start, start + step)


# ------------------------------------------------------------------ headers
def read_header(handle: BinaryIO, where: str, key: str, size: int) -> Header:
    """The checked header of the .npy array that starts at the handle's position and spans `size` bytes.

    Refuses, naming `where` and array `key`: a broken header, a dtype that is
    not plain values, a shape that is not a tuple of counts, a single value
    (shape ()), and a shape that needs more bytes than the file holds.
    """
    start = handle.tell()

    def refuse(message: str, hint: str | None = None) -> DataError:
        return fail(DataError, where, f"array '{key}' {message}", hint)

    bounded = _Bounded(handle, min(size, MAX_HEADER_BYTES))  # numpy reads the length a header claims
    try:
        version = np.lib.format.read_magic(bounded)
        if version not in NPY_VERSIONS:
            raise ValueError(f"unknown .npy format version {version}")
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read(bounded)
    except (ValueError, TypeError, SyntaxError, struct.error, EOFError, UnicodeDecodeError):
        raise refuse("has no valid .npy header (magic string, version, then a dict of descr, fortran_order "
                     "and shape)", "save the arrays with numpy.save or numpy.savez") from None
    if dtype.hasobject:
        raise refuse("holds Python objects, which kspec does not load",
                     "store numbers, or strings as a NumPy string array: numpy.array(values, dtype=str)")
    if dtype.kind in REFUSED_KINDS or dtype.subdtype is not None:
        what = "an array inside each value" if dtype.subdtype is not None else REFUSED_KINDS[dtype.kind]
        raise refuse(f"has dtype {dtype}: {what}, not plain numbers", "store each field as a numeric array of its own")
    if dtype.itemsize == 0:
        raise refuse(f"has dtype {dtype}, whose values hold no bytes", "store plain numeric arrays")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise refuse(f"has a header that promises shape {shape}; a shape is a tuple of counts, none negative",
                     "the file is damaged or was not written by numpy; write it again")
    if not shape:
        raise refuse("is a single value (shape ()), not one row per sample",
                     "store a value per sample, with the samples along the first axis")
    header = Header(tuple(shape), dtype, fortran_order, handle.tell())
    held = size - (header.offset - start)
    if header.nbytes > held:  # a cut-short file, or a header that lies: found now, not at a batch past the end
        raise refuse(f"promises {header.nbytes:,} bytes of data (shape {header.shape}, {dtype}) but the file "
                     f"holds {max(held, 0):,}", "the file is truncated or damaged; write it again")
    return header


class _Bounded:
    """A reader that gives at most `limit` bytes of `handle`, whatever length is asked for."""

    def __init__(self, handle: BinaryIO, limit: int):
        self.handle = handle
        self.left = limit

    def read(self, size: int | None = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.handle.read(size)
        self.left -= len(data)
        return data


def _read_whole(handle: BinaryIO, header: Header, where: str, key: str) -> np.ndarray:
    """The array behind a checked header, read from the handle's position into one allocation."""
    array = np.empty(math.prod(header.shape), dtype=header.dtype)
    view = memoryview(array).cast("B")
    filled = 0
    while filled < len(view):
        got = handle.readinto(view[filled:])  # type: ignore[attr-defined]
        if not got:
            raise fail(DataError, where, f"array '{key}' ends after {filled:,} of its {len(view):,} bytes",
                       "the file is truncated or damaged; write it again")
        filled += got
    return array.reshape(header.shape, order="F" if header.fortran_order else "C")


def _check_memory(where: str, headers: dict[str, Header]) -> None:
    """Refuse arrays that must be loaded whole but would not fit in memory."""
    total = sum(h.nbytes for h in headers.values())
    if total > memory_bytes() // 2:
        listed = ", ".join(f"'{key}' {h.shape}" for key, h in headers.items())
        raise fail(DataError, where, f"arrays {listed} would take {total:,} bytes in memory, more than half of "
                   f"this machine's {memory_bytes():,}",
                   "store them uncompressed (numpy.savez) in C order, and kspec reads them batch by batch")


# --------------------------------------------------------------------- files
def _member_key(info: zipfile.ZipInfo, where: str) -> str:
    name = info.filename
    if not name.endswith(".npy"):
        raise fail(DataError, where, f"member '{name}' is not a .npy array",
                   "an .npz holds only NAME.npy members, as numpy.savez writes them")
    key = name[: -len(".npy")]
    if not key or "/" in key or "\\" in key or key in (".", ".."):
        raise fail(DataError, where, f"member '{name}' has a path in its name, not an array name",
                   "an .npz holds only NAME.npy members, as numpy.savez writes them")
    return key


def _members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        key = _member_key(info, where)
        if key in members:
            raise fail(DataError, where, f"holds two members named '{info.filename}'",
                       "write the .npz again with numpy.savez; a zip tool appended a second copy")
        members[key] = info
    return members


def _check_inflation(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse a compressed member that inflates like a decompression bomb, before any of it is inflated.

    zipfile inflates a member to at most its declared size, and the header
    check bounds an array by it, so bounding the declared size bounds both.
    """
    size, stored = info.file_size, info.compress_size
    if size > EXPANSION_FLOOR_BYTES and size > MAX_EXPANSION * max(stored, 1):
        raise fail(DataError, where, f"member '{info.filename}' inflates from {stored:,} to {size:,} bytes, "
                   f"more than {MAX_EXPANSION} times: a decompression bomb, not arrays numpy compressed",
                   "store the arrays uncompressed (numpy.savez), and kspec reads them batch by batch")


def _data_start(raw: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where an uncompressed member's bytes start in the archive: after its local header."""
    raw.seek(info.header_offset)
    local = struct.unpack("<4s5H3L2H", raw.read(30))
    return info.header_offset + 30 + local[9] + local[10]  # after the name and extra fields


def read_npz_arrays(path: Path, stream: bool | None, stream_bytes: int) -> dict[str, Any]:
    """The arrays of an .npz, every header checked first.

    Uncompressed C-ordered members come back as StoredArrays when `stream`
    (or, when None, when they add up to more than `stream_bytes`); the
    others are loaded whole, if they fit in memory.
    """
    where = str(path)
    stamp = _stamp(path)
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        members = _members(archive, where)
        headers: dict[str, Header] = {}
        for key, info in members.items():
            if info.compress_type == zipfile.ZIP_STORED:
                start = _data_start(raw, info)
                raw.seek(start)
                held = min(info.file_size, stamp[0] - start)  # the zip's own sizes may lie too
                headers[key] = read_header(raw, where, key, held)
            else:
                _check_inflation(info, where)
                with archive.open(info) as member:
                    headers[key] = read_header(member, where, key, info.file_size)
        in_place = {key for key, h in headers.items()
                    if members[key].compress_type == zipfile.ZIP_STORED and not h.fortran_order}
        if stream is None:
            stream = sum(headers[key].nbytes for key in in_place) > stream_bytes
        streamed = in_place if stream else set()
        _check_memory(where, {key: h for key, h in headers.items() if key not in streamed})
        arrays: dict[str, Any] = {}
        for key, header in headers.items():
            if key in streamed:
                arrays[key] = StoredArray(path, header.offset, header.dtype, header.shape, stamp=stamp, key=key)
            elif members[key].compress_type == zipfile.ZIP_STORED:
                raw.seek(header.offset)
                arrays[key] = _read_whole(raw, header, where, key)
            else:
                with archive.open(members[key]) as member:
                    member.read(header.offset)  # the header, checked above
                    arrays[key] = _read_whole(member, header, where, key)
    return arrays


def read_npy_folder(folder: Path, stream: bool | None, stream_bytes: int) -> dict[str, Any]:
    """A folder of KEY.npy files, every header checked first; streamed as `read_npz_arrays` says."""
    headers: dict[str, tuple[Path, Header]] = {}
    for path in sorted(folder.glob("*.npy")):
        if path.is_symlink() or not path.is_file():  # a FIFO would block, a link may lead anywhere
            raise fail(DataError, str(path), "is not a regular file", "give a folder of plain KEY.npy files")
        with open(path, "rb") as handle:
            headers[path.stem] = (path, read_header(handle, str(path), path.stem, path.stat().st_size))
    in_place = {key for key, (_, h) in headers.items() if not h.fortran_order}
    if stream is None:
        stream = sum(headers[key][1].nbytes for key in in_place) > stream_bytes
    streamed = in_place if stream else set()
    _check_memory(str(folder), {key: h for key, (_, h) in headers.items() if key not in streamed})
    arrays: dict[str, Any] = {}
    for key, (path, header) in headers.items():
        if key in streamed:
            arrays[key] = StoredArray(path, header.offset, header.dtype, header.shape, stamp=_stamp(path), key=key)
        else:
            with open(path, "rb") as handle:
                handle.seek(header.offset)
                arrays[key] = _read_whole(handle, header, str(path), key)
    return arrays
