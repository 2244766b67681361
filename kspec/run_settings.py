"""What a training run was started with, as recorded in its run.json.

RunSettings holds a run's resolved values (a seed is chosen, the spec's
defaults are filled in), so that `--resume` repeats the run exactly. A run.json
is the user's file to edit or damage: `settings_problem` refuses one whose
fields are unknown, of the wrong type or out of the ranges the command line
takes, before any of it is trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .checkpointing import DEFAULT_INTERVAL


@dataclass
class RunSettings:
    """What a run was started with; stored in run.json so --resume can repeat it."""

    spec: str
    seed: int
    epochs: int
    batch_size: int
    data: str | None = None
    synthetic: int | None = None
    validation_split: float | None = None
    val_data: str | None = None
    weights: str | None = None
    strategy: str | None = None
    shuffle: bool = True
    stream: bool | None = None  # read data batch by batch from the file (None: when it is large)
    processes: int = 1  # with --distributed: the batch size is per process
    checkpoint_interval: float = DEFAULT_INTERVAL  # seconds between checkpoints (the last epoch always has one)
    epochs_completed: int = 0
    status: str = "running"  # or "completed", "stopped" (by a callback), "interrupted", "failed"
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why a "failed" run stopped
    stopped: str | None = None  # why a "stopped" run's callback stopped it, and after which epoch


# What each run.json field must hold, to refuse an edited file before trusting it.
_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "spec": (str,), "seed": (int,), "epochs": (int,), "batch_size": (int,), "data": (str, type(None)),
    "synthetic": (int, type(None)), "validation_split": (float, int, type(None)), "val_data": (str, type(None)),
    "weights": (str, type(None)), "strategy": (str, type(None)), "shuffle": (bool,), "stream": (bool, type(None)),
    "processes": (int,), "checkpoint_interval": (float, int), "epochs_completed": (int,), "status": (str,),
    "versions": (dict,), "error": (str, type(None)), "stopped": (str, type(None)),
}
_STATUSES = ("running", "completed", "stopped", "interrupted", "failed")


def settings_problem(data: Any) -> str | None:
    """What is wrong with run.json's content, or None."""
    if not isinstance(data, dict):
        return "it does not hold an object"
    for name in data:
        if name not in _SETTING_TYPES:
            return f"unknown field '{name}'"
    for name in ("spec", "seed", "epochs", "batch_size"):
        if name not in data:
            return f"the field '{name}' is missing"
    for name, value in data.items():
        types = _SETTING_TYPES[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"'{name}' is {json.dumps(value)[:60]}, which is not a {' or '.join(t.__name__ for t in types)}"
    return _range_problem(data)


def _range_problem(data: dict[str, Any]) -> str | None:
    """What run.json holds out of range (its types already checked), or None."""
    low = {"seed": 0, "epochs": 1, "batch_size": 1, "epochs_completed": 0, "processes": 1, "synthetic": 1}
    for name, least in low.items():
        if isinstance(data.get(name), int) and data[name] < least:
            return f"'{name}' is {data[name]}, below {least}"
    high = {"seed": 2**32 - 1, "batch_size": 2**31 - 1, "epochs": 2**31 - 1}  # what the command line takes (kspec.cli)
    for name, most in high.items():
        if isinstance(data.get(name), int) and data[name] > most:
            return f"'{name}' is {data[name]}, above {most}"
    interval = data.get("checkpoint_interval", 0)
    split = data.get("validation_split") or 0
    if not 0 <= interval < float("inf") or not 0 <= split < 1:
        return "'checkpoint_interval' or 'validation_split' is out of range"
    if data.get("status", "running") not in _STATUSES:
        return f"'status' is {json.dumps(data['status'])[:60]}, not one of {', '.join(_STATUSES)}"
    if not all(isinstance(v, str) for v in data.get("versions", {}).values()):
        return "'versions' holds a value that is not text"
    return None
