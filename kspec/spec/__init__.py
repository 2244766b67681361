"""The spec language: load YAML with locations, parse it into typed objects, check it."""

from __future__ import annotations

from pathlib import Path

from ..errors import Diagnostic, SpecError
from .check import check_model
from .model import ModelDef
from .parse import parse


def validate(path: str | Path) -> tuple[ModelDef | None, list[Diagnostic]]:
    """Parse and check one spec; return the model and every diagnostic, sorted.

    The model is None when the file could not be parsed at all. Diagnostics
    include warnings; the spec is valid when none of them is an error.
    """
    model, diagnostics = parse(path)
    if model is not None:
        # Semantic checks run even after structural errors, so one pass shows all.
        diagnostics += list(check_model(model))
    return model, sorted(set(diagnostics), key=lambda d: (d.location, d.message))


def read_spec(path: str | Path) -> tuple[ModelDef, list[Diagnostic]]:
    """A valid spec and its warnings, or SpecError with every error in it."""
    model, diagnostics = validate(path)
    if model is None or any(d.is_error for d in diagnostics):
        raise SpecError([d for d in diagnostics if d.is_error])
    return model, diagnostics


__all__ = ["ModelDef", "read_spec", "validate"]
