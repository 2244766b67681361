"""The spec language: load YAML with locations, parse it into typed objects, check it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

from ..errors import Diagnostic, SpecError
from .semantics import check_model
from .load import gc_paused, parse_text, to_python
from .model import ModelDef
from .overrides import apply_overrides
from .parse import parse


def validate(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ModelDef | None, list[Diagnostic]]:
    """Parse and check one spec; return the model and every diagnostic, sorted.

    The model is None when the file could not be parsed at all. Diagnostics
    include warnings; the spec is valid when none of them is an error.
    """
    with gc_paused():
        model, diagnostics = parse(path, overrides)
        if model is not None:
            # Semantic checks run even after structural errors, so one pass shows all.
            diagnostics += list(check_model(model))
    return model, sorted(set(diagnostics), key=lambda d: (d.location, d.message))


def read_spec(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ModelDef, list[Diagnostic]]:
    """A valid spec and its warnings, or SpecError with every error in it."""
    model, diagnostics = validate(path, overrides)
    if model is None or any(d.is_error for d in diagnostics):
        raise SpecError([d for d in diagnostics if d.is_error])
    return model, diagnostics


def spec_text(path: str | Path, overrides: Sequence[str] = ()) -> str:
    """The spec as run: the file's text, or, after overrides, the changed spec as YAML."""
    text = Path(path).read_text(encoding="utf-8")
    if not overrides:
        return text
    tree = apply_overrides(parse_text(text, str(path)), overrides)
    header = f"# {path} with " + " ".join(f"--set {item}" for item in overrides) + "\n"
    return header + yaml.safe_dump(to_python(tree), sort_keys=False, allow_unicode=True,
                                   default_flow_style=None)


__all__ = ["ModelDef", "read_spec", "spec_text", "validate"]
