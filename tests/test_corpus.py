"""Every invalid spec, through every command that reads a spec.

For each fixture in tests/specs/invalid and each of validate, build, summary,
train and inspect: exit code 1, the fixture's pinned message (the first
line of its .expected file) on stderr, no traceback, and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kspec.cli import main

INVALID = Path(__file__).parent / "specs" / "invalid"
CASES = sorted(path.stem for path in INVALID.glob("*.yaml"))


def _commands(name: str, out: Path) -> dict[str, list[str]]:
    spec = f"{name}.yaml"
    return {
        "validate": ["validate", spec],
        "build": ["build", spec, "-o", str(out / "model.keras")],
        "summary": ["summary", spec],
        "train": ["train", spec, "--synthetic", "4", "--epochs", "1", "--out", str(out / "run"), "-q"],
        "inspect": ["inspect", spec, "--all", "--synthetic", "2", "-o", str(out / "dump.npz")],
    }


def _only_keras_finds_it(name: str) -> bool:
    """Fixtures that validate cleanly and fail only when built (Keras's errors, the size limit)."""
    return name.startswith(("keras_", "build_"))


@pytest.mark.parametrize("name", CASES)
def test_every_command_refuses_every_invalid_spec(name, tmp_path, monkeypatch):
    monkeypatch.chdir(INVALID)
    out = tmp_path / "out"
    out.mkdir()
    first_line = (INVALID / f"{name}.expected").read_text(encoding="utf-8").splitlines()[0]
    runner = CliRunner()
    for command, args in _commands(name, out).items():
        if command == "validate" and _only_keras_finds_it(name):
            continue  # valid until Keras builds it
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (command, result.output)
        assert first_line in result.stderr.splitlines(), (command, result.stderr)
        assert "Traceback" not in result.output, command
        assert result.exception is None or isinstance(result.exception, SystemExit), (command, result.exception)
        assert list(out.iterdir()) == [], (command, list(out.iterdir()))


def test_check_reports_every_invalid_spec_and_keeps_going(monkeypatch):
    monkeypatch.chdir(INVALID)
    result = CliRunner().invoke(main, ["check", *(f"{name}.yaml" for name in CASES)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == f"{len(CASES)} spec(s): 0 passed, {len(CASES)} failed"
    for name in CASES:
        first_line = (INVALID / f"{name}.expected").read_text(encoding="utf-8").splitlines()[0]
        assert f"    {first_line}" in result.stdout.splitlines(), name
