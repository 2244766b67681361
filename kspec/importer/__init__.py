"""Keras model -> spec text: `kspec import` and `kspec.from_model`.

The model's own call graph is read (each layer's calls that belong to the
model, its node order, what each call was given), never its Python source:

- a layer called once becomes an inline edge named after the layer, so layer
  names survive the round trip; a layer called several times is declared
  under `layers:` and called with `layer: NAME`, once per node, in node order;
- nested functional and Sequential models become sub-models under `models:`;
- constructor arguments that equal what Keras would choose anyway are left
  out (found by constructing the class with fewer arguments and comparing
  configs), so the spec reads like one a person would write.

Arithmetic that keras.layers compute exactly (`x + y`, `x * 0.5`) is read as
those layers (standins.py). What the spec language cannot say (a Lambda
layer, a class outside keras.layers, another keras.ops operation, a call
argument YAML cannot carry, a config value with no YAML form) is refused
with a located RunError naming the layer; nothing is dropped silently.

The pipeline, one module a step:

    load_model.py   a .keras file, checked by kspec.modelfile, loaded in safe mode
    model_writer.py model, sub-models, Sequential lists -> a spec dict
    standins.py     keras.ops arithmetic -> the keras.layers computing the same
    call_graph.py   one graph's calls, what each was given, in file order
    naming.py       edge and tensor names, `in:` references, repeats
    block_runs.py   runs of units alike -> calls of one block
    layer_args.py   layer configs -> spec arguments, defaults left out
    compiled.py     optimizer, loss, loss_weights, metrics
    values.py       comparing and showing config values
    render.py       the spec dict -> YAML text
    context.py      Keras, the catalogue and the error location one import shares
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import catalogue
from ..backend import import_keras
from .context import Context
from .load_model import load_model_file
from .model_writer import ModelWriter
from .render import render

__all__ = ["from_model", "import_file"]


def from_model(model: Any, name: str | None = None) -> str:
    """The spec text of a Keras functional or Sequential model.

    `name` names the spec instead of the model's own name (Keras allows
    names, such as 'mobilenetv2_1.00_224', that a spec does not). Raises
    RunError, located at the model's name, for anything the spec language
    cannot express.
    """
    return _spec_text(import_keras(), str(getattr(model, "name", "model")), model, name)


def import_file(path: Path, name: str | None = None) -> str:
    """The spec text of the model in a .keras file, loaded with Keras's safe mode."""
    keras = import_keras()
    path = Path(path)
    model = load_model_file(keras, path)
    return _spec_text(keras, str(path), model, name)


def _spec_text(keras: Any, source: str, model: Any, name: str | None) -> str:
    """The spec text of `model`; refusals are located at `source`."""
    context = Context(keras, catalogue.load(), source)
    return render(ModelWriter(context).spec(model, name))
