"""Every invalid spec in tests/specs/invalid gives exactly its expected message.

NAME.yaml sits beside NAME.expected, which holds the whole report: each
diagnostic as `kspec` prints it (location, message, source line, caret,
hint). Specs that pass validation are built, so errors that only Keras can
find are pinned too. Files under included/ are helpers that cases include.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kspec.errors import KspecError
from kspec.spec import validate

INVALID = Path(__file__).parent / "specs" / "invalid"
CASES = sorted(path.stem for path in INVALID.glob("*.yaml"))


def report(name: str) -> str:
    """What kspec reports for a spec: its errors, or the error building it."""
    _, diagnostics = validate(f"{name}.yaml")
    errors = [d for d in diagnostics if d.is_error]
    if not errors:
        from kspec.build import build
        from kspec.spec import read_spec

        try:
            build(read_spec(f"{name}.yaml")[0])
        except KspecError as exc:
            errors = exc.diagnostics
    return "\n".join(d.format() for d in errors) + "\n"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_invalid_spec_message(name, monkeypatch):
    monkeypatch.chdir(INVALID)
    expected = (INVALID / f"{name}.expected").read_text(encoding="utf-8")
    assert report(name) == expected


if __name__ == "__main__":
    # Write the .expected files of new cases (review each before committing).
    os.chdir(INVALID)
    for case in CASES:
        target = INVALID / f"{case}.expected"
        if not target.exists():
            target.write_text(report(case), encoding="utf-8")
            print(f"wrote {target.name}")
