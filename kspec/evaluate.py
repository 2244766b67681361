"""`kspec evaluate`: a spec's model with trained weights, scored on data, or a run's model on its held-out rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import held_out
from .build import DEFAULT_MAX_PARAMS, Built, load_trained
from .data import Dataset, load_npz
from .errors import RunError, fail
from .run_errors import model_errors
from .spec.model import ModelDef


def evaluate(spec: ModelDef, weights: Path, data: Path, batch_size: int = 32,
             verbose: Any = "auto", max_params: int = DEFAULT_MAX_PARAMS,
             report: Path | None = None) -> dict[str, float]:
    """Every loss and metric of the trained model on the data; with `report`, a report written there."""
    built = load_trained(spec, weights, max_params)
    dataset = load_npz(data, spec, built.output_shapes())
    return score(spec, built, dataset, batch_size, verbose, report)


def run_parts(run_dir: Path) -> tuple[held_out.HeldOut, Path]:
    """A run's validation record and final model, checked before any framework is imported."""
    record = held_out.read_record(run_dir)
    if record.kind == "none":
        raise held_out.no_rows_error(run_dir)
    model = run_dir / "model.keras"
    if not model.is_file():
        raise fail(RunError, str(model), "the run has no final model: it has not finished",
                   f"finish it with: kspec train {run_dir / 'spec.yaml'} --resume {run_dir}")
    if record.data is not None:
        held_out.check_unchanged(record, run_dir)
    return record, model


def evaluate_run(spec: ModelDef, run_dir: Path, parts: tuple[held_out.HeldOut, Path] | None = None,
                 batch_size: int = 32, verbose: Any = "auto", max_params: int = DEFAULT_MAX_PARAMS,
                 report: Path | None = None) -> dict[str, float]:
    """The run's model scored on exactly the rows its training held out (kspec.held_out).

    `parts` are run_parts(run_dir), when the caller has checked them already.
    """
    record, model = parts or run_parts(run_dir)
    if record.kind == "synthetic":
        built, dataset = _synthetic_rows(spec, run_dir, record, model, max_params)
    else:
        built = load_trained(spec, model, max_params)
        dataset = load_npz(record.data, spec, built.output_shapes())  # type: ignore[arg-type]
        if len(dataset) < record.rows[1]:
            raise fail(RunError, str(record.data), f"the data has {len(dataset):,} rows, fewer than the "
                       f"{record.rows[1]:,} the run recorded", "restore the file as it was")
    rows = dataset.window(*record.rows)
    rows.source = f"{dataset.source}, rows {record.rows[0]} to {record.rows[1] - 1}"
    return score(spec, built, rows, batch_size, verbose, report)


def _synthetic_rows(spec: ModelDef, run_dir: Path, record: held_out.HeldOut, model: Path,
                    max_params: int) -> tuple[Built, Dataset]:
    """Make a synthetic run's data again as training made it: seed, build the model, then its teacher."""
    from .backend import import_keras
    from .run_data import run_data
    from .run_folder import RunFolder
    from .train import seed_everything

    settings = RunFolder.open(run_dir).settings()
    seed_everything(import_keras(), settings.seed)
    built = load_trained(spec, model, max_params)  # built as training built it: its draws come first
    dataset, _ = run_data(spec, settings, built.output_shapes())
    rows = dataset.window(*record.rows)
    if held_out.arrays_sha256({**rows.inputs, **rows.targets}) != record.sha256:
        raise fail(RunError, str(run_dir / held_out.RECORD), "the synthetic validation rows came out different "
                   "from the run's (their SHA-256 differs), e.g. under another Keras version or backend",
                   "evaluate on data of your own with --weights and --data")
    return built, dataset


def score(spec: ModelDef, built: Built, dataset: Dataset, batch_size: int, verbose: Any,
          report: Path | None) -> dict[str, float]:
    """Keras's evaluate on the dataset (batch by batch when stored); with `report`, the report too."""
    with model_errors(spec, "evaluating"):
        if dataset.streamed:  # larger than memory: read batch by batch
            from .backend import import_keras
            from .feed import batch_stream, reading

            feed = batch_stream(import_keras(), spec, dataset, batch_size)
            with reading(feed):  # a data file that changed: its own error
                results = built.model.evaluate(feed, verbose=verbose, return_dict=True)
        else:
            results = built.model.evaluate(dataset.x(spec), dataset.y(spec), batch_size=batch_size,
                                           verbose=verbose, return_dict=True)
    metrics = {name: float(value) for name, value in results.items()}
    if report is not None:
        _report(spec, built, dataset, batch_size, metrics, report)
    return metrics


def _report(spec: ModelDef, built: Built, dataset: Dataset, batch_size: int, metrics: dict[str, float],
            folder: Path) -> None:
    """Tally every output's predictions against its targets, a batch at a time, and write the report."""
    from .report import tallies_for, write_report

    tallies = tallies_for(spec, built)
    for start in range(0, len(dataset), batch_size):
        batch = dataset.take(slice(start, start + batch_size))
        with model_errors(spec, "predicting for the report"):
            outputs = built.model.predict_on_batch(batch.x(spec))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for tally, values in zip(tallies, outputs):
            tally.add(batch.targets[tally.name], np.asarray(values))
    write_report(folder, metrics, tallies, dataset.source)
