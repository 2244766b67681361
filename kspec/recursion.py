"""How deep Python may recurse inside a block: the one place kspec changes the limit."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["recursion_allowance"]


@contextmanager
def recursion_allowance(levels: int, cap: int) -> Iterator[None]:
    """Python's recursion limit set to the current depth plus `levels` (at most `cap`), for the block.

    The limit is set, not only raised: a caller may have raised it for a deep
    graph, and a parser called in the block (json's, in C) must not follow it
    past what the C stack holds. A RecursionError past the allowance is the
    caller's to report.

    Args:
        levels: the frames the block may use below the caller.
        cap: the most frames it may use, whatever `levels` asks.
    """
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + min(levels, cap))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)
