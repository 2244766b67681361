"""Writing files so that a crash never leaves a half-written one, and nothing
the user owns is overwritten.

Everything kspec writes goes to a fresh temporary file in the same folder
first and is then renamed over the target, which the operating system does
atomically. Before any work, `check_output` refuses a target that is one of
the command's own inputs, a link, a device, a FIFO, a folder, or an existing
file of another kind: a rename never writes through a link, but it would
still replace what the user pointed at.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .errors import RunError, fail
from .filekind import FOLDER, not_a_file

# What an existing file must start with to be replaced by a file of its kind.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_MAGIC = {".npz": _ZIP_MAGIC, ".keras": _ZIP_MAGIC, ".png": (b"\x89PNG\r\n\x1a\n",)}
# Exports (kspec.export): ONNX is a protobuf whose first field is ir_version (tag 0x08); a .tflite is a
# FlatBuffer whose identifier "TFL3" follows its 4-byte root offset.
_MAGIC_AT = {".onnx": (0, b"\x08"), ".tflite": (4, b"TFL3")}
# Text kinds, and how such a file begins (after white space); YAML and CSV may begin with anything.
_TEXT_STARTS: dict[str, tuple[bytes, ...]] = {
    ".xml": (b"<",), ".svg": (b"<",), ".json": (b"{", b"["), ".yaml": (b"",), ".yml": (b"",), ".csv": (b"",),
    ".dot": (b"digraph", b"graph", b"strict", b"//", b"/*", b"#"),
}
_SNIFF_BYTES = 65536


def check_output(path: Path, inputs: Mapping[str, Path | str | None] = {}, folder: bool = False,
                 kind: str | None = None) -> None:
    """Refuse an output path whose writing would lose something the user owns.

    Args:
        path: where the command will write (a file, or a run folder when `folder`).
        inputs: the command's inputs by description ("the data (--data)"): the
            output may not be any of them (same file, by any path or hard link).
        folder: the output is a folder (train's --out), not a file.
        kind: the suffix whose files it writes (default: the path's own),
            e.g. ".xml" for a JUnit report named without one.
    """
    for described, given in inputs.items():
        if given is not None and _same_file(path, Path(given)):
            raise fail(RunError, str(path), f"the output is {described} itself; writing it would replace it",
                       "choose another output path")
    parent = path.parent if str(path.parent) else Path(".")
    if not folder and not parent.is_dir():
        raise fail(RunError, str(path), f"its folder '{parent}' does not exist",
                   "create it first, or choose another path")
    if not folder and not os.access(parent, os.W_OK | os.X_OK):
        raise fail(RunError, str(path), f"its folder '{parent}' is not writable", "choose another path")
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise fail(RunError, str(path), f"cannot use this output path: {exc.strerror or exc}",
                   "choose another output path") from None
    _refuse_what_is_there(path, info, folder, kind or path.suffix.lower())


def _refuse_what_is_there(path: Path, info: os.stat_result, folder: bool, kind: str) -> None:
    """Refuse an existing path that is not a folder (for `folder`) or a file of `kind` kspec may replace."""
    what = not_a_file(info.st_mode)  # from lstat: a link is one
    if what not in (None, FOLDER):
        raise fail(RunError, str(path), f"the output path is {what}; kspec never writes through or replaces one",
                   "choose a path that does not exist yet, or an ordinary file kspec wrote")
    if folder:
        if what != FOLDER:
            raise fail(RunError, str(path), "the output folder is an existing file", "choose another --out")
        return
    if what == FOLDER:
        raise fail(RunError, str(path), "the output path is a folder; a file goes here",
                   "name a file inside it, or another path")
    if info.st_size and not _looks_like(path, kind):
        raise fail(RunError, str(path), f"the output path is an existing file that is not a {kind} file; "
                   "kspec replaces only files of the kind it writes", "move it away, or choose another path")


def _same_file(output: Path, given: Path) -> bool:
    try:
        return os.path.samefile(output, given)
    except OSError:  # either does not exist (yet): compare where they lead
        try:
            return output.resolve() == given.resolve()
        except (OSError, RuntimeError):  # a link loop: refused as a link by the checks that follow
            return False


def _looks_like(path: Path, suffix: str) -> bool:
    """Whether an existing file holds what kspec writes under this suffix."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    if suffix in _MAGIC:
        return head.startswith(_MAGIC[suffix])
    if suffix in _MAGIC_AT:
        offset, magic = _MAGIC_AT[suffix]
        return head[offset:offset + len(magic)] == magic
    if suffix in _TEXT_STARTS:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not only a character cut at the end of the sniffed bytes
                return False
        start = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # a byte-order mark, then white space
        return b"\x00" not in head and start.startswith(_TEXT_STARTS[suffix])
    return False


@lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (other threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # briefly restrictive, never permissive
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a new temporary path beside `path`; rename it over `path` on success.

    The temporary file is created fresh (never an existing name, so never a
    planted link), and the rename is refused if `path` has meanwhile become
    something other than a plain file.
    """
    parent = path.parent if str(path.parent) else Path(".")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=parent)
    except OSError as exc:
        raise fail(RunError, str(path), f"cannot write file: {exc.strerror or exc}",
                   "check the folder exists, is writable and has free space") from None
    os.close(handle)
    temporary = Path(name)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # as an ordinary new file, not mkstemp's 0600
        yield temporary
        _refuse_special(path)
        os.replace(temporary, path)
    except OSError as exc:
        raise fail(RunError, str(path), f"cannot write file: {exc.strerror or exc}",
                   "check the folder exists, is writable and has free space") from None
    finally:
        if temporary.exists():
            temporary.unlink()


def _refuse_special(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    kind = not_a_file(mode)
    if kind is not None:
        raise fail(RunError, str(path), f"the output path became {kind} while kspec was working; "
                   "it was left as it is", "choose another output path")


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model to `path` through a temporary file and a rename."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # Saved without its variables, a compiled model warns on every load.
        optimizer.build(model.trainable_variables)
    with atomic_path(path) as temporary:
        model.save(temporary)


class NpzWriter:
    """Write an .npz one batch at a time, so memory holds a batch, not every row.

    Each array goes to its own .npy file in a scratch folder beside the
    target, written as its batches come; `finish` stores them, uncompressed,
    into the target through a rename. If anything fails first, the scratch
    folder goes and the target is left as it was.
    """

    def __init__(self, path: Path, rows: int):
        self.path = path
        self.rows = rows
        parent = path.parent if str(path.parent) else Path(".")
        try:
            self.scratch = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".tmp", dir=parent))
        except OSError as exc:
            raise fail(RunError, str(path), f"cannot write file: {exc.strerror or exc}",
                       "check the folder exists, is writable and has free space") from None
        self.members: dict[str, _Member] = {}

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        for member in self.members.values():
            member.handle.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def append(self, name: str, values: np.ndarray) -> None:
        """Add the next rows of array `name` (the first call fixes its dtype and row shape)."""
        member = self.members.get(name) or self._start(name, values)
        values = np.ascontiguousarray(values, dtype=member.dtype)
        if values.shape[1:] != member.row_shape or member.written + len(values) > self.rows:
            raise fail(RunError, str(self.path), f"output '{name}' gave rows of shape {values.shape[1:]} "
                       f"after rows of shape {member.row_shape}", "give the output a fixed shape in the spec")
        self._write(member.handle, values.data)
        member.written += len(values)

    def _start(self, name: str, values: np.ndarray) -> _Member:
        shape = (self.rows, *values.shape[1:])
        size = values.dtype.itemsize * int(np.prod(shape, dtype=np.float64))
        self._check_space(name, size)
        handle = open(self.scratch / f"{len(self.members)}.npy", "wb")
        header = {"descr": np.lib.format.dtype_to_descr(values.dtype), "fortran_order": False, "shape": shape}
        try:
            np.lib.format.write_array_header_1_0(handle, header)
        except ValueError:  # a header too long for format 1.0
            np.lib.format.write_array_header_2_0(handle, header)
        member = self.members[name] = _Member(handle, values.dtype, tuple(values.shape[1:]), size)
        return member

    def _check_space(self, name: str, size: int) -> None:
        needed = 2 * (size + sum(m.size for m in self.members.values()))  # the scratch files and the .npz
        free = shutil.disk_usage(self.scratch).free
        if needed > free:
            raise fail(RunError, str(self.path), f"not enough disk space: the predictions (output '{name}' "
                       f"included) need about {needed / 1e6:,.0f} MB while written, and {free / 1e6:,.0f} MB "
                       "are free", "free some space, predict fewer rows, or write elsewhere")

    def _write(self, handle: Any, data: Any) -> None:
        try:
            handle.write(data)
        except OSError as exc:
            raise fail(RunError, str(self.path), f"cannot write file: {exc.strerror or exc}",
                       "check the folder is writable and has free space") from None

    def finish(self) -> dict[str, tuple[int, ...]]:
        """Store every array into the target; returns their shapes."""
        for name, member in self.members.items():
            member.handle.close()
            if member.written != self.rows:
                raise fail(RunError, str(self.path), f"output '{name}' has {member.written} rows, not {self.rows}")
        with atomic_path(self.path) as temporary:
            with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, member in self.members.items():
                    archive.write(member.handle.name, arcname=f"{name}.npy")
        return {name: (self.rows, *member.row_shape) for name, member in self.members.items()}


class _Member:
    """One array of an NpzWriter: its open .npy file and what has been written."""

    def __init__(self, handle: Any, dtype: np.dtype, row_shape: tuple[int, ...], size: int):
        self.handle = handle
        self.dtype = dtype
        self.row_shape = row_shape
        self.size = size  # bytes, once every row is written
        self.written = 0
