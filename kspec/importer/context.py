"""What every part of one import shares: Keras, kspec's catalogue, and where errors point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import KspecError, RunError, fail


@dataclass(frozen=True)
class Context:
    """One import's Keras module, catalogue of what a spec can name, and error location.

    `source` is the .keras file's path, or the model's name for from_model:
    every refusal is located there.
    """

    keras: Any
    catalogue: dict[str, Any]
    source: str

    def refuse(self, message: str, hint: str | None = None) -> KspecError:
        """The RunError to raise for what the spec language cannot say."""
        return fail(RunError, self.source, message, hint)
