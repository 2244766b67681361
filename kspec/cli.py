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
from .errors import Diagnostic, KspecError, Location, SpecError

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
        except KspecError as exc:
            _print_diagnostics(exc.diagnostics)
            sys.exit(EXIT_INVALID)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _read(spec_path: Path) -> Any:
    """A valid spec; its warnings go to stderr."""
    from .spec import read_spec

    model, warnings = read_spec(spec_path)
    _print_diagnostics(warnings)
    return model


def _shape(tensor: Any) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in tensor.shape) + \
        ("," if len(tensor.shape) == 1 else "") + ")"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kspec")
def main() -> None:
    """Declare Keras models as YAML specs: validate, build and summarize them."""


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


def _check_output_path(path: Path | None) -> None:
    if path is None:
        return
    if path.suffix != ".keras":
        raise click.BadParameter(f"'{path}' must end in .keras (Keras's model format)",
                                 param_hint="'-o'")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SpecError([Diagnostic(Location(str(path)), f"cannot write model: folder '{parent}' does not exist",
                                    "create it first, or choose another path")])


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the built model to this .keras file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@handle_errors
def build(spec: Path, output: Path | None, as_json: bool) -> None:
    """Build a spec into a Keras model; optionally save it as .keras."""
    from .build import build as build_model
    from .files import save_model

    _check_output_path(output)
    model_def = _read(spec)
    built = build_model(model_def)
    model = built.model
    if output is not None:
        save_model(model, output)
    params = model.count_params()
    if as_json:
        click.echo(json.dumps({
            "name": model.name,
            "inputs": {t.name: list(t.shape) for t in model.inputs},
            "outputs": {ref.name: list(built.tensors[ref.name].shape) for ref in model_def.outputs},
            "params": params,
            "output": str(output) if output else None,
        }, indent=2))
        return
    inputs = ", ".join(f"{inp.name} {_shape(built.tensors[inp.name])}" for inp in model_def.inputs)
    outputs = ", ".join(f"{ref.name} {_shape(built.tensors[ref.name])}" for ref in model_def.outputs)
    saved = f"; saved to {output}" if output else ""
    click.echo(f"{model.name}: {inputs} -> {outputs}; {params:,} parameters{saved}")


@main.command()
@click.argument("spec", type=click.Path(path_type=Path))
@click.option("--expand", is_flag=True, help="Expand nested models' layers in the table.")
@handle_errors
def summary(spec: Path, expand: bool) -> None:
    """Print Keras's summary table of a spec's model."""
    from .build import build as build_model

    built = build_model(_read(spec))
    built.model.summary(expand_nested=expand, print_fn=lambda text, **_: click.echo(text))


if __name__ == "__main__":
    main()
