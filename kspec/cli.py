"""The `kspec` command line: parse arguments, call the library, print, exit.

Exit codes: 0 success, 1 invalid spec (or a failed run), 2 command-line
misuse (click's convention), 130 interrupted. Every KspecError is caught here,
in one place, and printed as located diagnostics; the user never sees a
traceback for their own mistake. Keras is imported only by commands that build.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from . import __version__
from .errors import Diagnostic, Interrupted, KspecError, Location

EXIT_INVALID = 1
EXIT_INTERRUPTED = 130


def _print_diagnostics(diagnostics: Iterable[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(diagnostic.format(), err=True)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's errors into printed diagnostics and exit codes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Interrupted as exc:
            _print_diagnostics(exc.diagnostics)
            sys.exit(EXIT_INTERRUPTED)
        except KspecError as exc:
            _print_diagnostics(exc.diagnostics)
            sys.exit(EXIT_INVALID)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _prepare(spec_path: Path, overrides: tuple[str, ...], backend: str | None) -> Any:
    """Fix the Keras backend, then read a valid spec (after --set overrides); warnings go to stderr."""
    from .backend import select_backend
    from .spec import read_spec

    select_backend(backend)
    model, warnings = read_spec(spec_path, overrides)
    _print_diagnostics(warnings)
    return model


def _check_data(model_def: Any, *paths: Path | None, need_targets: bool = True) -> None:
    """What the data paths' names, kinds and headers tell about them against the spec, before Keras loads."""
    from .data import check_data_path

    for path in paths:
        if path is not None:
            check_data_path(path, model_def, need_targets)


set_option = click.option(
    "--set", "overrides", multiple=True, metavar="PATH=VALUE",
    help="Change one value of the spec before it is checked, e.g. layers.lstm.units=128 (repeatable).")
max_params_option = click.option(
    "--max-params", type=click.IntRange(min=1), default=1_000_000_000, show_default=True,
    help="Refuse models with more parameters than this, before allocating them.")
trained_weights_option = click.option(
    "--weights", required=True, type=click.Path(path_type=Path, dir_okay=False),
    help="Trained .keras file (e.g. a run's model.keras).")
# Every seed the command line takes works everywhere it goes: NumPy's global seeding (which
# Keras's set_random_seed calls) takes 0 to 2**32 - 1; a resumed run's seeds wrap inside it.
SEEDS = click.IntRange(0, 2**32 - 1)
# TensorFlow counts a batch's rows, and epochs, in signed 32-bit integers (a spec's training: too).
COUNTS = click.IntRange(1, 2**31 - 1)
backend_option = click.option(
    "--backend", type=click.Choice(["tensorflow", "jax", "torch"]),
    help="Keras backend (default: KERAS_BACKEND, else tensorflow).")


submodel_option = click.option(
    "--model", "submodel", metavar="NAME",
    help="Work on this sub-model of the spec alone (OUTER/INNER for a nested one).")


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--set, --max-params and --backend: the options of every command that builds a model."""
    return set_option(max_params_option(backend_option(command)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kspec")
def main() -> None:
    """Declare Keras models as YAML specs: validate, build, train and use them."""


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
@handle_errors
def validate(specs: tuple[Path, ...], as_json: bool) -> None:
    """Check specs without building them (no TensorFlow import).

    Reports every problem in every spec, with its file, line and column.
    Exits 1 if any spec has an error.
    """
    from .spec import validate as validate_spec

    results = []
    for path in specs:
        _, diagnostics = validate_spec(path)
        results.append((path, diagnostics))
    invalid = [path for path, diags in results if any(d.is_error for d in diags)]
    if as_json:
        click.echo(json.dumps({
            "valid": not invalid,
            "specs": [{"file": str(path), "valid": path not in invalid,
                       "diagnostics": [d.to_dict() for d in diags]} for path, diags in results],
        }, indent=2))
    else:
        for path, diagnostics in results:
            _print_diagnostics(diagnostics)
            if path not in invalid:
                click.echo(f"{path}: ok")
        if len(specs) > 1 or invalid:
            errors = sum(d.is_error for _, diags in results for d in diags)
            click.echo(f"{len(specs)} spec(s): {len(specs) - len(invalid)} valid, {len(invalid)} invalid"
                       f" ({errors} error(s))", err=bool(invalid))
    sys.exit(EXIT_INVALID if invalid else 0)


def _check_output(path: Path | None, expected: str, inputs: dict[str, Any], kind: str | None = None,
                  option: str = "-o", folder: bool = False) -> None:
    """The check of every output path (-o, --out, --junit), before any work is done.

    Like click's own checks of a path, a refusal is command-line misuse
    (exit 2): a wrong suffix, or what files.check_output refuses (one of the
    command's `inputs`, a link, a device or FIFO, a folder where a file
    goes, an existing file of another kind, a folder that does not exist).
    """
    if path is None:
        return
    suffixes = [word for word in expected.replace(",", " ").split() if word.startswith(".")]
    if suffixes and path.suffix.lower() not in suffixes:
        raise click.BadParameter(f"'{path}' must end in {expected}", param_hint=f"'{option}'")
    from .files import check_output

    try:
        check_output(path, inputs, folder=folder, kind=kind)
    except KspecError as exc:
        [problem] = exc.diagnostics
        raise click.BadParameter(f"'{path}': {problem.message}; {problem.hint}", param_hint=f"'{option}'") from None


def _weights_files(model_def: Any) -> dict[str, str]:
    """The .keras files a spec's sub-models load weights from: a model written over one would replace them."""
    found, models = {}, [model_def]
    while models:
        model = models.pop()
        if model.weights is not None:
            found[f"the weights file of sub-model '{model.name}'"] = model.weights
        models.extend(model.models.values())
    return found


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the built model to this .keras file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False),
              help="Load the whole model's trained weights from this .keras file (e.g. a run's model.keras).")
@submodel_option
@model_options
@handle_errors
def build(spec: Path, output: Path | None, as_json: bool, weights: Path | None, submodel: str | None,
          overrides: tuple[str, ...], max_params: int, backend: str | None) -> None:
    """Build a spec into a Keras model; optionally save it as .keras.

    With --model NAME, the sub-model NAME alone is described and saved
    (with --weights, the weights it has in the trained whole model).
    """
    from .build import build as build_model, load_trained
    from .files import save_model
    from .submodel_weights import pick_submodel, submodel_def

    _check_output(output, ".keras (Keras's model format)", {"the spec": spec, "the --weights file": weights})
    model_def = _prepare(spec, overrides, backend)
    _check_output(output, ".keras (Keras's model format)", _weights_files(model_def))
    if submodel is not None:
        submodel_def(model_def, submodel)  # an unknown name is refused before building
    if weights is not None:
        built = load_trained(model_def, weights, max_params)
    else:
        built = build_model(model_def, max_params=max_params)
    if submodel is not None:
        built = pick_submodel(built, submodel)
        model_def = built.spec
    model = built.model
    if output is not None:
        save_model(model, output)
    params = model.count_params()
    if model_def.kind == "sequential":  # a sub-model: its tensors have Keras's names, not the spec's
        inputs = {t.name: t.shape for t in model.inputs}
        outputs = {t.name: t.shape for t in model.outputs}
    else:
        inputs = {inp.name: built.tensors[inp.name].shape for inp in model_def.inputs}
        outputs = {ref.name: built.tensors[ref.name].shape for ref in model_def.outputs}
    if as_json:
        click.echo(json.dumps({
            "name": model.name,
            "inputs": {name: list(shape) for name, shape in inputs.items()},
            "outputs": {name: list(shape) for name, shape in outputs.items()},
            "params": params,
            "output": str(output) if output else None,
        }, indent=2))
        return
    from .inspection import shape_text

    listed = [", ".join(f"{name} {shape_text(shape)}" for name, shape in ends.items()) for ends in (inputs, outputs)]
    saved = f"; saved to {output}" if output else ""
    click.echo(f"{model.name}: {listed[0]} -> {listed[1]}; {params:,} parameters{saved}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--expand", is_flag=True, help="Expand nested models' layers in the table.")
@submodel_option
@model_options
@handle_errors
def summary(spec: Path, expand: bool, submodel: str | None, overrides: tuple[str, ...], max_params: int,
            backend: str | None) -> None:
    """Print Keras's summary table of a spec's model (or, with --model, of one sub-model)."""
    from .build import build as build_model
    from .submodel_weights import pick_submodel, submodel_def

    model_def = _prepare(spec, overrides, backend)
    if submodel is not None:
        submodel_def(model_def, submodel)  # an unknown name is refused before building
    built = build_model(model_def, max_params=max_params)
    if submodel is not None:
        built = pick_submodel(built, submodel)
    built.model.summary(expand_nested=expand, print_fn=lambda text, **_: click.echo(text))


def _format_metrics(row: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4g}" for key, value in row.items() if key != "epoch")


def _not_nan(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value != value:  # NaN passes every range check
        raise click.BadParameter("must be a number, not nan")
    return value


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path),
              help="Train on this .npz, CSV or Parquet file, folder of KEY.npy files, or folder of class "
                   "folders of images.")
@click.option("--synthetic", "synthetic_n", type=click.IntRange(min=1), metavar="N",
              help="Train on N synthetic samples made to fit the spec.")
@click.option("--epochs", type=COUNTS, help="Epochs to train (default: the spec's, else 1).")
@click.option("--batch-size", type=COUNTS, help="Batch size (default: the spec's, else 32).")
@click.option("--validation-split", type=click.FloatRange(0, 1, max_open=True), callback=_not_nan,
              help="Hold out this fraction of the data (its last rows) for validation.")
@click.option("--val-data", type=click.Path(path_type=Path),
              help="Validate on data of the same kinds as --data.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Run folder (default: runs/NAME-TIMESTAMP).")
@click.option("--seed", type=SEEDS, help="Seed for reproducible runs (default: random, recorded).")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False),
              help="Start from the weights of this .keras file.")
@click.option("--resume", type=click.Path(path_type=Path, file_okay=False),
              help="Continue the run in this folder from its last checkpoint.")
@click.option("--strategy", type=click.Choice(["mirrored"]),
              help="Train on all local devices with tf.distribute.MirroredStrategy.")
@click.option("--cpu-devices", type=click.IntRange(2, 256), hidden=True,
              help="Split the CPU into N logical devices (to try --strategy without GPUs).")
@click.option("--checkpoint-interval", type=click.FloatRange(min=0), metavar="SECONDS", callback=_not_nan,
              help="Checkpoint an epoch only when this long has passed since the last checkpoint (default 60; "
                   "0: every epoch). The last epoch, and the last finished one when stopped, are always kept.")
@click.option("--shuffle/--no-shuffle", default=True, show_default=True, help="Shuffle the rows every epoch.")
@click.option("--stream/--no-stream", default=None,
              help="Read the data batch by batch from its file instead of loading it (default: above 512 MB).")
@click.option("--distributed", is_flag=True,
              help="Train data-parallel over several processes (JAX backend); run the same command on each.")
@click.option("--coordinator", metavar="HOST:PORT", help="Process 0's address (or JAX_COORDINATOR_ADDRESS).")
@click.option("--num-processes", type=int, help="How many processes (or JAX_NUM_PROCESSES).")
@click.option("--process-id", type=int, help="This process's number, 0 to N-1 (or JAX_PROCESS_ID).")
@click.option("--mixed-precision", type=click.Choice(["mixed_float16", "mixed_bfloat16"]),
              help="Train under this dtype policy (the spec's training.mixed_precision; recorded as a --set).")
@click.option("--early-stopping-patience", type=click.IntRange(min=0), metavar="EPOCHS",
              help="The patience of the spec's EarlyStopping callback (recorded as a --set).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@model_options
@handle_errors
def train(spec: Path, quiet: bool, cpu_devices: int | None, overrides: tuple[str, ...], backend: str | None,
          **values: Any) -> None:
    """Train a spec on data (.npz, CSV, Parquet, image folders) or synthetic data, leaving a run folder.

    The run folder holds the final model.keras, a copy of the spec,
    history.csv, the last checkpoints and TensorBoard logs.
    Ctrl-C stops after the current batch and keeps the last finished epoch;
    --resume continues from there.
    """
    from .train_options import DistributedOptions, TrainOptions, flag_overrides, from_values, unclaimed

    mixed_precision, patience = values.pop("mixed_precision"), values.pop("early_stopping_patience")
    # Every other option is a TrainOptions or DistributedOptions field, gathered and checked in one place.
    assert not unclaimed(values, TrainOptions, DistributedOptions), unclaimed(values, TrainOptions, DistributedOptions)
    options = from_values(TrainOptions, values)
    problem = options.usage_problem()
    if problem is not None:
        raise click.UsageError(problem)
    _check_output(options.out, "", {"the spec": spec, "the --data path": options.data,
                                    "the --val-data path": options.val_data, "the --weights file": options.weights},
                  option="--out", folder=True)

    from .signals import StopFlag
    from .train import check_resume, train as run_training

    stop = StopFlag().install()  # from here on, Ctrl-C and SIGTERM stop at the next safe point
    from .build import import_keras
    from .spec import spec_text

    cluster = from_values(DistributedOptions, values).cluster()
    if cluster is not None:
        from .backend import select_backend

        if select_backend(backend) != "jax":
            raise KspecError([Diagnostic(Location("--distributed"), "distributed training runs on the JAX backend",
                                         "add --backend jax (and pip install 'kspec[jax]')")])
        if options.strategy is not None:
            raise click.UsageError("--strategy is for one machine; --distributed replaces it")
    model_def = _prepare(spec, overrides, backend)
    if mixed_precision is not None or patience is not None:  # flags that stand for spec keys: as --set
        try:
            overrides += tuple(flag_overrides(model_def.training, mixed_precision, patience))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        model_def = _prepare(spec, overrides, backend)
    _check_data(model_def, options.data, options.val_data)
    check_resume(spec_text(spec, overrides), options)  # a finished run is told without importing Keras
    if options.resume is None:  # a val_ monitor with no validation data, told without importing Keras either
        from .callbacks import check_monitors

        split = options.validation_split if options.validation_split is not None else model_def.training.validation_split
        check_monitors(model_def, bool(split) or options.val_data is not None)
    if cluster is not None:
        cluster.join()  # before Keras first touches a device
    import_keras(cpu_devices)
    result = run_training(model_def, spec_text(spec, overrides), options, verbose=0 if quiet else "auto",
                          cluster=cluster, stop=stop, progress=lambda text: click.echo(text, err=True))
    first, last = (result.history[0], result.history[-1]) if result.history else ({}, {})
    change = f"loss {first.get('loss', float('nan')):.4g} -> {last.get('loss', float('nan')):.4g}"
    if cluster is not None and not cluster.is_chief:
        click.echo(f"process {cluster.process_id} of {cluster.num_processes}: trained {result.epochs_run} epoch(s); "
                   f"{change}; weights {result.fingerprint}")
        return
    where = f"; weights {result.fingerprint}" if result.fingerprint else ""
    click.echo(f"{model_def.name}: trained {result.epochs_run} epoch(s) (to epoch {result.epochs_completed}) "
               f"in {result.seconds:.1f}s; {change}; final {_format_metrics(last)}; run folder {result.run_dir}"
               + where)


@main.command()
@click.argument("spec", required=False, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Evaluate this run's model.keras on exactly the rows its training held out for validation.")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False),
              help="Trained .keras file (e.g. a run's model.keras).")
@click.option("--data", type=click.Path(path_type=Path),
              help=".npz, CSV or Parquet file (or folder of KEY.npy files, or of class folders of images) "
                   "with every input and output.")
@click.option("--report", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Also write a report to this folder: per-class precision, recall, F1 and a confusion matrix "
                   "for class outputs, error summaries and a scatter plot for the others.")
@click.option("--batch-size", type=COUNTS, default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@model_options
@handle_errors
def evaluate(spec: Path | None, run_dir: Path | None, weights: Path | None, data: Path | None, report: Path | None,
             batch_size: int, as_json: bool, overrides: tuple[str, ...], max_params: int,
             backend: str | None) -> None:
    """Print every loss and metric of a trained model on data.

    Either SPEC --weights MODEL.keras --data FILE, or --run RUN_DIR: the
    run's own model on the rows it held out (--validation-split's last rows,
    or its --val-data file), refused if that data changed since.
    """
    from . import evaluate as evaluation

    if run_dir is not None and (weights is not None or data is not None):
        raise click.UsageError("--run evaluates the run's own model on its held-out rows; "
                               "leave out --weights and --data, or leave out --run")
    if run_dir is None and (spec is None or weights is None or data is None):
        raise click.UsageError("give SPEC --weights MODEL.keras --data FILE, or --run RUN_DIR")
    _check_output(report, "", {"the spec": spec, "the --data path": data}, option="--report", folder=True)
    if report is not None:
        from .report import check_report_dir

        check_report_dir(report)
    verbose = 0 if as_json else "auto"
    if run_dir is None:
        assert spec is not None and weights is not None and data is not None
        model_def = _prepare(spec, overrides, backend)
        _check_data(model_def, data)
        results = evaluation.evaluate(model_def, weights, data, batch_size,
                                      verbose=verbose, max_params=max_params, report=report)
    else:
        parts = evaluation.run_parts(run_dir)  # before Keras: a changed data file is refused at once
        from .spec import spec_text

        ran = run_dir / "spec.yaml"
        if spec is not None and spec_text(spec, overrides) != ran.read_text(encoding="utf-8"):
            raise KspecError([Diagnostic(Location(str(spec)), f"the spec differs from the one the run trained ({ran})",
                                         f"leave out SPEC (and --set): --run evaluates with {ran}")])
        model_def = _prepare(spec if spec is not None else ran, overrides if spec is not None else (), backend)
        if not as_json:
            click.echo(f"held-out rows: {parts[0].describe()}")
        results = evaluation.evaluate_run(model_def, run_dir, parts, batch_size, verbose=verbose,
                                          max_params=max_params, report=report)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for name, value in results.items():
            click.echo(f"{name}: {value:.6g}")
        if report is not None:
            click.echo(f"wrote the report to {report}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@trained_weights_option
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help=".npz, CSV or Parquet file (or folder of KEY.npy files, or of class folders of images) "
                   "with every input.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Write predictions here: .npz (one array per output name), or .csv or .parquet (one column per "
                   "value).")
@click.option("--labels", is_flag=True, help="Add each class output's predicted class (NAME_label).")
@click.option("--keep-columns", "keep", metavar="A,B", default="",
              help="Copy these columns of a CSV or Parquet --data table into a .csv or .parquet output (e.g. an id).")
@click.option("--batch-size", type=COUNTS, default=32, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@submodel_option
@model_options
@handle_errors
def predict(spec: Path, weights: Path, data: Path, output: Path, labels: bool, keep: str, batch_size: int,
            quiet: bool, submodel: str | None, overrides: tuple[str, ...], max_params: int,
            backend: str | None) -> None:
    """Write a trained model's predictions for data to an .npz, .csv or .parquet file.

    With --model NAME, the sub-model NAME runs alone, with the weights it has
    in the trained whole model, on data keyed by its own input names.
    """
    from .predict import predict as run_prediction

    _check_output(output, ".npz, .csv or .parquet", {"the spec": spec, "the --weights file": weights,
                                                     "the --data file": data})
    model_def = _prepare(spec, overrides, backend)
    if submodel is None:  # a sub-model's inputs are checked once it is found, in the build
        _check_data(model_def, data, need_targets=False)
    shapes = run_prediction(model_def, weights, data, output, batch_size,
                            max_params=max_params, progress=not quiet, labels=labels, model=submodel,
                            keep=tuple(name for name in keep.split(",") if name))
    listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
    click.echo(f"wrote {output}: {listed}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--layer", help="Compute the output of this layer's call (MODEL/LAYER for one inside a sub-model).")
@click.option("--node", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which call of the layer (of the sub-model, for MODEL/LAYER).")
@click.option("--tensor", help="Compute this tensor (an input or edge name).")
@click.option("--all", "every", is_flag=True, help="Compute every call's output in one pass.")
@click.option("--data", type=click.Path(path_type=Path),
              help="Inputs from this .npz, CSV or Parquet file, or a folder of KEY.npy files or of class "
                   "folders of images.")
@click.option("--synthetic", "synthetic_n", type=click.IntRange(min=1), metavar="N",
              help="N synthetic inputs (as `kspec train --synthetic` makes them).")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False),
              help="Trained .keras file (default: a fresh initialisation).")
@click.option("--seed", type=SEEDS, default=0, show_default=True,
              help="Seed of the fresh initialisation and of synthetic data.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the outputs to this .npz file, under the printed keys.")
@click.option("--batch-size", type=COUNTS, default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
@model_options
@handle_errors
def inspect(spec: Path, output: Path | None, as_json: bool, overrides: tuple[str, ...], max_params: int,
            backend: str | None, **values: Any) -> None:
    """Show every layer call, or compute the output of one.

    Without --layer, --tensor or --all: a table of every call in the model,
    one row per node (a shared layer has one row per call), with input and
    output shapes. With one of them: computes that output on --data or
    --synthetic inputs and prints its shape, min, max, mean, std and the
    fraction of exact zeros.
    """
    from . import inspection
    from .build import build as build_model
    from .build import import_keras

    request = inspection.InspectRequest(**values)
    problem = request.usage_problem()
    if problem:
        raise click.UsageError(problem)
    _check_output(output, ".npz", {"the spec": spec, "the --weights file": request.weights,
                                   "the --data file": request.data})

    model_def = _prepare(spec, overrides, backend)
    _check_data(model_def, request.data, need_targets=False)
    keras = import_keras()
    keras.utils.set_random_seed(request.seed)
    if request.weights is not None:  # layers marked adapt: true take the state the trained file holds
        from .adapt import with_saved_state

        model_def = with_saved_state(model_def, request.weights, Location(str(request.weights)))
    built = build_model(model_def, max_params=max_params)
    if request.weights is None and request.chosen():  # a fresh model: layers marked adapt: true fit its inputs
        from .adapt import adapt

        built = adapt(keras, built, _inspect_data(model_def, built, request), request.batch_size, max_params,
                      lambda _: None)
    if not request.chosen():
        rows = inspection.calls(built)
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2) if as_json else inspection.format_table(rows))
        return
    if request.layer is not None:
        targets = [inspection.resolve_layer(built, request.layer, request.node)]
    elif request.tensor is not None:
        targets = [inspection.resolve_tensor(built, request.tensor)]
    else:
        targets = inspection.all_targets(built)
    if request.weights is not None:
        from .build import load_weights

        load_weights(built.model, request.weights, Location(str(request.weights)))
    dataset = _inspect_data(model_def, built, request)
    results = inspection.compute(built, targets, dataset, output, request.batch_size)
    if as_json:
        click.echo(json.dumps({"output": str(output) if output else None, "results": results}, indent=2))
        return
    for line in inspection.iter_stats_lines(results):
        click.echo(line)
    if output is not None:
        click.echo(f"wrote {output} ({', '.join(results)})")


def _inspect_data(model_def: Any, built: Any, request: Any) -> Any:
    import numpy as np

    from .data import Dataset, load_npz, synthetic_inputs

    if request.data is not None:  # read batch by batch
        return load_npz(request.data, model_def, built.output_shapes(), need_targets=False, stream=True)
    assert request.synthetic_n is not None
    inputs = synthetic_inputs(model_def, request.synthetic_n, np.random.default_rng(request.seed))
    return Dataset(inputs, {}, f"synthetic data ({request.synthetic_n} samples, seed {request.seed})")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="Write JUnit XML results here.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout.")
@model_options
@handle_errors
def check(paths: tuple[str, ...], junit: Path | None, as_json: bool, overrides: tuple[str, ...],
          max_params: int, backend: str | None) -> None:
    """Smoke-test specs: validate, build, train two steps, predict.

    PATHS are spec files, folders (every *.yaml below) or globs. Keras is
    imported once; each spec runs in a process forked from this one (on
    Linux), so its memory goes when it ends. A failing spec does not stop
    the others. Exits 1 if any spec fails.
    """
    from .check import check_isolated, collect, format_table, write_junit
    from .backend import select_backend

    select_backend(backend)
    files, problems = collect(paths)
    if problems:
        raise KspecError(problems)
    _check_output(junit, "", {f"the spec '{path}'": path for path in files}, kind=".xml", option="--junit")
    results = []
    for path in files:
        click.echo(f"checking {path} ...", err=True)
        result = check_isolated(path, overrides, max_params)
        results.append(result)
        if not as_json:
            click.echo(f"{'ok' if result.passed else 'FAILED'}  {path}", err=True)
    if junit is not None:
        write_junit(results, junit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        click.echo(format_table(results))
    sys.exit(EXIT_INVALID if any(not r.passed for r in results) else 0)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@handle_errors
def plot(run_dir: Path) -> None:
    """Redraw a run's training curves (curves.png) from its history.csv."""
    from .plot import plot_run

    click.echo(f"wrote {plot_run(run_dir)}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Picture file: .dot (Graphviz text), .svg or .png (drawn by Graphviz).")
@click.option("--expand", is_flag=True, help="Draw sub-models' layers inside them.")
@model_options
@handle_errors
def graph(spec: Path, output: Path, expand: bool, overrides: tuple[str, ...], max_params: int,
          backend: str | None) -> None:
    """Draw a picture of a spec's model; shared layers show each call's node."""
    from .build import build as build_model
    from .graph import graphviz_for, to_dot, write_picture

    _check_output(output, ".dot, .svg or .png", {"the spec": spec})
    model_def = _prepare(spec, overrides, backend)
    graphviz_for(output)  # a missing Graphviz is told before the build imports Keras
    built = build_model(model_def, compile=False, max_params=max_params)
    write_picture(to_dot(built, expand=expand), output)
    click.echo(f"wrote {output}")


@main.command(name="import")
@click.argument("model_file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the spec to this .yaml file (default: print it).")
@click.option("--name", help="The spec's model name, when the model's own cannot be used in a spec.")
@handle_errors
def import_model(model_file: Path, output: Path | None, name: str | None) -> None:
    """Write the spec of a Keras model saved as a .keras file.

    Shared layers become declared layers, nested models sub-models, and
    arguments equal to Keras's defaults are left out. Constructs a spec
    cannot express (Lambda layers, custom classes, raw keras.ops calls)
    are refused with the layer's name.
    """
    from .files import write_text
    from .importer import import_file

    _check_output(output, ".yaml or .yml", {"the model file": model_file})
    text = import_file(model_file, name)
    if output is None:
        click.echo(text, nl=False)
        return
    write_text(output, text)
    click.echo(f"wrote {output}")


@main.command(name="export")
@click.argument("spec", required=False, type=click.Path(path_type=Path))
@click.option("--run", "run_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Export this run's model.keras, built from its spec.yaml.")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False),
              help="Trained .keras file (e.g. a run's model.keras).")
@click.option("--format", "fmt", required=True, type=click.Choice(["saved_model", "onnx", "litert"]),
              help="saved_model (a folder), onnx (.onnx) or litert (.tflite).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Where to write the export.")
@click.option("--data", type=click.Path(path_type=Path),
              help="Check the export on the first rows of this data (default: synthetic rows).")
@click.option("--atol", type=click.FloatRange(min=0), callback=_not_nan,
              help="Largest difference from Keras's outputs allowed (default: by format and dtype).")
@model_options
@handle_errors
def export_model(spec: Path | None, run_dir: Path | None, weights: Path | None, fmt: str, output: Path,
                 data: Path | None, atol: float | None, overrides: tuple[str, ...], max_params: int,
                 backend: str | None) -> None:
    """Export a trained model for serving, checked against Keras.

    Either SPEC --weights MODEL.keras, or --run RUN_DIR. The export is loaded
    in its own runtime and its outputs compared with Keras's; above the
    tolerance it is not written (exit 1).
    """
    from . import export as exporting

    if run_dir is not None and (spec is not None or weights is not None):
        raise click.UsageError("--run exports the run's own spec.yaml and model.keras; "
                               "leave out SPEC and --weights, or leave out --run")
    if run_dir is None and (spec is None or weights is None):
        raise click.UsageError("give SPEC --weights MODEL.keras, or --run RUN_DIR")
    if run_dir is not None:
        spec, weights = run_dir / "spec.yaml", run_dir / "model.keras"
    assert spec is not None and weights is not None
    wrong = exporting.check_suffix(fmt, output)
    if wrong:
        raise click.BadParameter(f"'{output}': {wrong}", param_hint="'-o'")
    inputs = {"the spec": spec, "the --weights file": weights, "the --data file": data}
    if fmt == "saved_model":
        _check_output(output, "", inputs, folder=True)
        wrong = exporting.check_saved_model_target(output)
        if wrong:
            raise click.BadParameter(f"'{output}': {wrong}", param_hint="'-o'")
    else:
        _check_output(output, "", inputs)
    exporting.check_extras(fmt)  # before TensorFlow's import: a missing package is named at once
    model_def = _prepare(spec, overrides if run_dir is None else (), backend)
    result = exporting.export(model_def, weights, fmt, output, data, atol, max_params, say=click.echo)
    click.echo(f"wrote {result.path} ({fmt}): it agrees with Keras on {result.sample}, "
               f"run by {exporting.RUNTIMES[fmt]}")


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the schema to this file instead of printing it.")
@handle_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the spec language, for editors."""
    from .files import write_text
    from .schema import schema as make_schema

    _check_output(output, "", {}, kind=".json")
    text = json.dumps(make_schema(), indent=1) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        click.echo(f"wrote {output}")


@main.command()
@click.argument("spec", required=False, type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help="Train every trial on this data file or folder.")
@click.option("--synthetic", "synthetic_n", type=click.IntRange(min=1), metavar="N",
              help="Train every trial on N synthetic samples made to fit the spec.")
@click.option("--trials", type=COUNTS, help="Trials to run in this command (across its workers).")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", callback=_not_nan,
              help="Start no trial after this many seconds.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Study folder: the journal, a run folder per trial, best.yaml (default: studies/NAME).")
@click.option("--storage", metavar="URL",
              help="Optuna storage to share with other processes or hosts: postgresql://, mysql://, sqlite:// "
                   "or a journal file path (default: a journal file in the study folder).")
@click.option("--study", metavar="NAME", help="The study's name (default: the spec's model name).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Local worker processes sharing the study.")
@click.option("--seed", type=SEEDS, default=0, show_default=True,
              help="Every trial trains with this seed; the sampler's seed too.")
@click.option("--prune-after", type=click.IntRange(min=0), default=5, show_default=True, metavar="TRIALS",
              help="Trials to finish before the median pruner stops any.")
@click.option("--show", "show_dir", type=click.Path(path_type=Path, file_okay=False), metavar="STUDY_DIR",
              help="Only report a study: its table, best.yaml and pictures.")
@click.option("--worker-index", type=click.IntRange(min=0), hidden=True)
@model_options
@handle_errors
def tune(spec: Path | None, show_dir: Path | None, overrides: tuple[str, ...], backend: str | None,
         **values: Any) -> None:
    """Search the values a spec's `search:` names, training one run per trial (Optuna).

    Ends with a table of the trials, best.yaml (the spec with the best values
    written in) and pictures, in the study folder. Ctrl-C stops every worker
    after its current batch; running the command again continues the study.
    """
    from .tune import TuneOptions, import_optuna, load_study, tune as run_tune
    from .tune_report import report

    if show_dir is not None:
        if spec is not None:
            raise click.UsageError("--show STUDY_DIR reports a study; give it without a spec")
        study, _ = load_study(import_optuna(), show_dir, values["storage"])
        folder = show_dir
    else:
        if spec is None:
            raise click.UsageError("give a SPEC to tune, or --show STUDY_DIR")
        options = TuneOptions(**values)
        problem = options.usage_problem()
        if problem is not None:
            raise click.UsageError(problem)
        study, folder = run_tune(spec, overrides, options, backend, progress=lambda text: click.echo(text, err=True))
        if options.worker_index is not None:
            return  # the command that started this worker reports
    result = report(study, folder)
    click.echo(result.table)
    if result.best_yaml is not None:
        click.echo(f"best: {result.best_yaml} (its model: {result.best_model})")
    else:
        click.echo("no trial has completed yet, so there is no best.yaml")
    for picture in result.pictures:
        click.echo(f"wrote {picture}")


if __name__ == "__main__":
    main()
