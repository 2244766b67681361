"""Comparing and showing Keras config values, for the importer's other modules.

A config read back from Keras holds tuples, numpy scalars and arrays where
the spec's YAML holds lists and plain numbers; these helpers compare the two
alike and show a value in a refusal.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

# A config key that is absent (None would be a value).
MISSING = object()


def same(a: Any, b: Any) -> bool:
    """Config values equal once tuples and lists are alike (YAML has only lists)."""
    if a is MISSING or b is MISSING:
        return a is b
    return _plain(a) == _plain(b)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def jsonable(value: Any) -> Any:
    """json.dumps's `default`: numpy arrays and scalars as lists and numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def default_config(cls: type) -> dict[str, Any]:
    """The config of a `cls` made with no arguments; empty when it needs some."""
    try:
        return cls().get_config()
    except Exception:
        return {}


def from_config_takes(cls: type, config: dict[str, Any]) -> bool:
    """Whether Keras can make a `cls` from this config, as it will from the spec's arguments."""
    try:
        cls.from_config(json.loads(json.dumps(config, default=jsonable)))  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def shortest_float32(value: float) -> float:
    """0.0020000000949949026 -> 0.002 when that is the same float32 (Keras keeps rates as float32)."""
    if float(np.float32(value)) != value:
        return value
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def shown(value: Any) -> str:
    """A value as a refusal names it: its type and the start of its repr."""
    text = repr(value)
    return f"a {type(value).__name__} ({text[:60] + '...' if len(text) > 60 else text})"
