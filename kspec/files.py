"""Writing files so that a crash never leaves a half-written one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import Diagnostic, Location, SpecError


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model to `path` through a temporary file and a rename."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # Saved without its variables, a compiled model warns on every load.
        optimizer.build(model.trainable_variables)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise SpecError([Diagnostic(Location(str(path)), f"cannot write model: {exc.strerror or exc}")]) from None
    finally:
        if temporary.exists():
            temporary.unlink()
