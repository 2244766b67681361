"""Writing files so that a crash never leaves a half-written one.

Everything kspec writes goes to a temporary name in the same folder first and
is then renamed over the target, which the operating system does atomically.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import RunError, fail


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` on success."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise fail(RunError, str(path), f"cannot write file: {exc.strerror or exc}",
                   "check the folder exists, is writable and has free space") from None
    finally:
        if temporary.exists():
            temporary.unlink()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model to `path` through a temporary file and a rename."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # Saved without its variables, a compiled model warns on every load.
        optimizer.build(model.trainable_variables)
    with atomic_path(path) as temporary:
        model.save(temporary)
