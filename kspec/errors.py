"""Located diagnostics and the errors that carry them.

Every problem kspec finds in a user's spec (or, later, data) is a `Diagnostic`
pinned to a `Location`. Library code raises `KspecError`; the CLI catches it in
one place and prints its diagnostics, never a traceback.

    KspecError                 base of every user-facing error
    ├── SpecError              one or more diagnostics about spec files
    ├── DataError              a data file that does not fit the spec
    ├── RunError               a run folder, weights file or option that cannot be used
    └── Interrupted            training stopped by SIGINT/SIGTERM (exit code 130)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence


@dataclass(frozen=True, order=True)
class Location:
    """A place in a file. `line` and `column` are 1-based; 0 means unknown."""

    file: str
    line: int = 0
    column: int = 0
    # Where a block's text is used: the block calls that expanded it, innermost
    # first. An error inside a block is shown at the block's line and noted at each call.
    via: tuple[Location, ...] = ()

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, what happened and what was expected, and a hint."""

    location: Location
    message: str
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self, with_source: bool = True) -> str:
        """The message as a compiler prints it, with the source line and a caret."""
        lines = [f"{self.location}: {self.severity}: {shorten(self.message, MAX_MESSAGE)}"]
        if with_source:
            lines += quoted(self.location)
        if self.hint:
            lines.append(f"  hint: {shorten(self.hint, MAX_MESSAGE)}")
        for call in self.location.via:
            lines.append(f"  note: in the block called at {call}")
            if with_source:
                lines += quoted(call)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            **({"via": [str(call) for call in self.location.via]} if self.location.via else {}),
        }


# A message, a hint and a quoted source line each fit on a screen, however long
# the line of the file or the value the message echoes.
MAX_MESSAGE = 600
SOURCE_WIDTH = 100


def quoted(location: Location) -> list[str]:
    """The source line a location points at, with a caret under its column; [] when unavailable."""
    source_line = read_source_line(location)
    if source_line is None:
        return []
    number = str(location.line)
    shown, caret = source_window(source_line, location.column)
    return [f" {number} | {shown}", f" {' ' * len(number)} | {' ' * caret}^"]


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source_window(line: str, column: int) -> tuple[str, int]:
    """The part of `line` around 1-based `column`, and the caret's offset in it."""
    caret = max(column - 1, 0)
    if len(line) <= SOURCE_WIDTH:
        return line, caret
    start = max(0, min(caret - SOURCE_WIDTH // 2, len(line) - SOURCE_WIDTH))
    shown = line[start:start + SOURCE_WIDTH]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + SOURCE_WIDTH < len(line) else ""
    return prefix + shown + suffix, caret - start + len(prefix)


class KspecError(Exception):
    """Base of every error that is the user's to fix."""

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=lambda d: d.location)
        super().__init__("\n".join(d.format(with_source=False) for d in self.diagnostics))


class SpecError(KspecError):
    """A spec file that cannot be loaded, checked or built."""


class DataError(KspecError):
    """A data file that cannot be read or does not fit the spec."""


class RunError(KspecError):
    """A run folder, weights file or training option that cannot be used."""


class Interrupted(KspecError):
    """Training was stopped by a signal after its last finished epoch was saved."""


def fail(error: type[KspecError], where: str | Location, message: str, hint: str | None = None) -> KspecError:
    """One located diagnostic wrapped in `error`, ready to raise."""
    location = where if isinstance(where, Location) else Location(str(where))
    return error([Diagnostic(location, message, hint)])


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" for the closest candidate, or ""."""
    pool = sorted(set(candidates))
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            matches = [lowered[name.lower()]]
    return f"; did you mean '{matches[0]}'?" if matches else ""


@lru_cache(maxsize=64)
def _file_lines(path: str) -> tuple[str, ...] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return tuple(handle.read().splitlines())
    except (OSError, UnicodeDecodeError):
        return None


def read_source_line(location: Location) -> str | None:
    """The text of the line a location points at, or None when unavailable."""
    if location.line <= 0:
        return None
    lines = _file_lines(location.file)
    if lines is None or location.line > len(lines):
        return None
    return lines[location.line - 1].rstrip()
