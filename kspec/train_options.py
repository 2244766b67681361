"""What a training run is asked for: one object from the command line (or a caller) to kspec.train.

TrainOptions holds the values as given, unresolved: None means "the spec's
value, else kspec's default" (or, on --resume, the run's own), resolved when
the run starts into the RunSettings that run.json records. The combinations
that cannot go together are checked here, in one place, worded as the command
line's options, for `kspec train` (and any command that trains) to refuse as
misuse. DistributedOptions holds the options that place this process in a
multi-process run. `flag_overrides` turns the flags that stand for spec keys
(--mixed-precision, --early-stopping-patience) into the `--set` assignments
they mean, so that the run's spec.yaml records them like any other override.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .backend import Cluster
from .build import DEFAULT_MAX_PARAMS
from .spec.model import TrainingDef

Options = TypeVar("Options", "TrainOptions", "DistributedOptions")


@dataclass(frozen=True)
class TrainOptions:
    """A training run's options, each None (or its default) where not given."""

    data: Path | None = None  # an .npz file or a folder of KEY.npy files
    synthetic_n: int | None = None  # train on this many synthetic samples instead
    epochs: int | None = None
    batch_size: int | None = None
    validation_split: float | None = None
    val_data: Path | None = None
    out: Path | None = None  # the run folder (default: runs/NAME-TIMESTAMP)
    seed: int | None = None  # default: random, recorded
    weights: Path | None = None  # a .keras file to start from
    resume: Path | None = None  # the run folder to continue, with its own settings
    strategy: str | None = None
    shuffle: bool = True
    stream: bool | None = None  # read the data batch by batch (None: when it is large)
    checkpoint_interval: float | None = None  # seconds (default: a new run's 60, a resumed run's own)
    max_params: int = DEFAULT_MAX_PARAMS

    def usage_problem(self) -> str | None:
        """The options given that cannot go together, as a command-line error; None when they can."""
        if self.resume is not None:
            given = [name for name, value in (
                ("--data", self.data), ("--synthetic", self.synthetic_n), ("--out", self.out), ("--seed", self.seed),
                ("--weights", self.weights), ("--batch-size", self.batch_size),
                ("--validation-split", self.validation_split), ("--val-data", self.val_data),
                ("--strategy", self.strategy)) if value is not None]
            if given:
                return f"--resume repeats the run's own settings; drop {', '.join(given)}"
        elif (self.data is None) == (self.synthetic_n is None):
            return "give exactly one of --data FILE.npz and --synthetic N"
        if self.validation_split is not None and self.val_data is not None:
            return "give --validation-split or --val-data, not both"
        return None


@dataclass(frozen=True)
class DistributedOptions:
    """--distributed, and where this process finds the others (else JAX's environment variables)."""

    distributed: bool = False
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def cluster(self) -> Cluster | None:
        """This process's place in the run, checked; None for a run of one process."""
        if not self.distributed:
            return None
        return Cluster.from_options(self.coordinator, self.num_processes, self.process_id)


def from_values(kind: type[Options], values: Mapping[str, Any]) -> Options:
    """Options of `kind` from a command's values: those named as its fields (the rest are another's)."""
    return kind(**{field.name: values[field.name] for field in fields(kind) if field.name in values})


def unclaimed(values: Mapping[str, Any], *kinds: type) -> list[str]:
    """The command's values that no field of `kinds` takes: an option added without its field."""
    claimed = {field.name for kind in kinds for field in fields(kind)}
    return sorted(set(values) - claimed)


def flag_overrides(training: TrainingDef, mixed_precision: str | None, patience: int | None) -> list[str]:
    """The `--set PATH=VALUE` assignments that --mixed-precision and --early-stopping-patience stand for.

    Raises ValueError, worded for the command line, for --early-stopping-patience
    on a spec with no EarlyStopping callback.
    """
    assignments = []
    if mixed_precision is not None:
        assignments.append(f"training.mixed_precision={mixed_precision}")
    if patience is not None:
        found = [index for index, callback in enumerate(training.callbacks) if callback.class_name == "EarlyStopping"]
        if not found:
            raise ValueError("--early-stopping-patience sets the patience of the spec's EarlyStopping, and the spec "
                             "has none; add '- EarlyStopping: {monitor: val_loss, patience: 3}' under "
                             "training.callbacks")
        assignments.append(f"training.callbacks.{found[0]}.patience={patience}")
    return assignments
