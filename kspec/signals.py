"""Ctrl-C and SIGTERM during a training run: noted, and acted on only where stopping is safe."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

from .errors import Diagnostic, Interrupted, Location

if TYPE_CHECKING:
    from .spec.model import ModelDef


class StopFlag:
    """Set by SIGINT/SIGTERM, and acted on at safe points: between the steps of
    setting a run up, and at the end of a training batch. A second signal stops
    at once (every file is still whole, being written through a rename)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def check(self, spec: ModelDef) -> None:
        """Stop here if a signal came while the run was being set up."""
        if self.signal is not None:
            raise Interrupted([Diagnostic(Location(spec.file), "interrupted before training started; "
                                          "no run folder was written")])
