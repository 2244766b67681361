"""Every file a spec names is resolved here, and only here.

A spec is untrusted input: its `include`, its `weights` and layer arguments
that Keras reads as files (a lookup layer's `vocabulary` given as a path) may
only name regular files inside the folder of the spec the user ran. Refused,
without reading the file (so no message can echo its content):

- URLs and other schemes (`gs://`, `http://`, ...): TensorFlow's file system
  would fetch them;
- paths that leave the spec's folder, by `..`, an absolute path or a symlink;
- symlink loops, devices, FIFOs and sockets (reading /dev/zero or a FIFO
  would never end), folders;
- files larger than the caller's bound.

The spec file itself is checked by `check_spec_file` before it is read.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import Diagnostic, Location, SpecError
from ..filekind import FOLDER, NOT_REGULAR, not_a_file

# Layer arguments Keras reads as a file when given a string (in a spec, or in a model file's config).
FILE_ARGUMENTS = {
    "StringLookup": ("vocabulary",),
    "IntegerLookup": ("vocabulary",),
    "TextVectorization": ("vocabulary",),
}
# A spec (or an included one) larger than this is refused before it is read.
MAX_SPEC_BYTES = 64 * 2**20
# A file a layer argument names (a vocabulary) larger than this is refused.
MAX_ARGUMENT_FILE_BYTES = 256 * 2**20

_WHAT = {"include": "included spec", "weights": "weights file", "vocabulary": "vocabulary file"}
_HINTS = {"include": "give the path of another spec file", "weights": "give the path of a .keras file"}


def _refuse(loc: Location, message: str, hint: str | None = None) -> SpecError:
    return SpecError([Diagnostic(loc, message, hint)])


def resolve_spec_path(value: str, loc: Location, naming_file: str | Path, root: Path, what: str,
                      max_bytes: int | None = None) -> Path:
    """The regular file inside `root` that a path written in a spec names.

    Args:
        value: the path as written, relative to the file that names it.
        loc: where it is written, for errors.
        naming_file: the spec file the path is written in.
        root: the folder of the spec the user ran (resolved); nothing outside it is read.
        what: the key naming the path ('include', 'weights', 'vocabulary').
        max_bytes: refuse larger files.
    Raises:
        SpecError located at `loc`.
    """
    described = _WHAT.get(what, f"'{what}' file")
    shown = value if len(value) <= 200 else value[:200] + "..."  # a message stays on a screen
    if "://" in value:
        raise _refuse(loc, f"{described} '{shown}' is a URL; a spec names local files only",
                      "download the file into the spec's folder and name it by its relative path")
    try:
        path = (Path(naming_file).parent / value).resolve()
    except RuntimeError:  # Python 3.11's resolve() on a symlink loop
        raise _refuse(loc, f"{described} '{shown}' is a symlink loop", "point the link at a file") from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, ...
        raise _refuse(loc, f"'{what}' is not a usable path: {getattr(exc, 'strerror', None) or exc}") from None
    if not path.is_relative_to(root):
        raise _refuse(loc, f"{described} '{shown}' is outside the spec's folder",
                      "a spec reads files only from its own folder and the folders below it; copy the file there")
    try:
        info = path.stat()  # stat, not open: opening a FIFO would wait for a writer
    except FileNotFoundError:
        raise _refuse(loc, f"{described} '{shown}' not found",
                      f"paths are relative to the spec file; looked for {display_path(path)}") from None
    except OSError as exc:  # e.g. ELOOP, a permission
        raise _refuse(loc, f"{described} '{shown}' cannot be read: {exc.strerror or exc}") from None
    kind = not_a_file(info.st_mode)
    if kind == FOLDER:
        raise _refuse(loc, f"'{what}' names a folder, not a file: '{shown}'", _HINTS.get(what))
    if kind is not None:
        raise _refuse(loc, f"{described} '{shown}' {NOT_REGULAR}", _HINTS.get(what))
    if max_bytes is not None and info.st_size > max_bytes:
        raise _refuse(loc, f"{described} '{shown}' is {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
    return path


def check_spec_file(path: Path) -> None:
    """Refuse a spec path that is not a regular file of bounded size, before it is opened."""
    loc = Location(str(path))
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _refuse(loc, "spec file not found", "check the path") from None
    except (OSError, ValueError) as exc:
        raise _refuse(loc, f"cannot read spec file: {getattr(exc, 'strerror', None) or exc}") from None
    kind = not_a_file(info.st_mode)
    if kind == FOLDER:
        raise _refuse(loc, "is a directory, not a spec file", "pass a .yaml file")
    if kind is not None:
        raise _refuse(loc, f"{NOT_REGULAR}, not a spec file", "pass a .yaml file")
    if info.st_size > MAX_SPEC_BYTES:
        raise _refuse(loc, f"spec file is {info.st_size:,} bytes, more than the {MAX_SPEC_BYTES:,} allowed",
                      "a spec is a short text file; is this the right file?")


def display_path(path: Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
