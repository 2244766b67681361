"""Taking a sub-model out of a whole model: its weights from a trained file, or the sub-model itself.

`weights: {file: RUN/model.keras, model: encoder}` copies the weights of the
sub-model `encoder` inside a trained .keras file into a sub-model of a spec;
`--model encoder` (build, summary, predict) makes a command work on one
sub-model of the spec alone.

How the weights are read: the file passes kspec.modelfile's checks, then
Keras loads it with `safe_mode=True` and without its compile state, and the
layers are matched by name. Reading model.weights.h5 from the zip directly
would avoid building the model, but Keras 3 files its weights by class name
and creation order (`layers/lstm_1/cell/vars/0`), not by layer name, so
matching by name would mean re-deriving Keras's private layout; loading
the checked file in safe mode runs no code from it (Lambda layers, custom
classes and foreign graphs were refused by the checks already).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

from .errors import Location, RunError, SpecError, did_you_mean, fail
from .modelfile import check_model_file
from .spec.model import ModelDef

__all__ = ["copy_submodel_weights", "file_submodels", "pick_submodel", "submodel_def"]

_MODEL_CLASSES = ("Functional", "Sequential", "Model")
_MAX_PROBLEMS = 3  # a report of a wholly different model stays short


# ------------------------------------------------------------- --model NAME
def submodel_def(spec: ModelDef, name: str, for_data: bool = False) -> ModelDef:
    """The sub-model of a spec that `--model` names ('outer/inner' for a nested one).

    `for_data`: it will be fed data by its input names and its outputs
    written by theirs, which a sequential sub-model does not name.
    """
    model = spec
    for part in name.split("/"):
        if part not in model.models:
            known = list(_paths(spec))
            if not known:
                raise fail(RunError, spec.file, f"the spec has no sub-models, so none named '{name}'",
                           "declare the model under 'models:' to address it alone")
            raise fail(RunError, spec.file, f"the spec has no sub-model '{name}'{did_you_mean(name, known)}",
                       f"its sub-models: {', '.join(known)} (OUTER/INNER names one inside another)")
        model = model.models[part]
    if for_data and model.kind == "sequential":
        raise fail(RunError, model.loc, f"sub-model '{name}' is sequential, so its output has no name to write "
                   "predictions under", "declare it as a functional model (inputs, edges, outputs) to use it alone")
    return model


def _paths(spec: ModelDef, prefix: str = "") -> Iterator[str]:
    for name, model in spec.models.items():
        yield prefix + name
        yield from _paths(model, f"{prefix}{name}/")


def pick_submodel(built: Any, name: str) -> Any:
    """The Built of the sub-model `name` inside a Built whole model (checked by submodel_def first)."""
    for part in name.split("/"):
        built = built.submodels[part]
    return built


# --------------------------------------------- weights: {file: ..., model: ...}
def file_submodels(config: Any) -> list[str]:
    """Names of the models nested inside a saved model's config, outermost first."""
    found: list[str] = []
    stack = [layer for layer in _layers(config)]
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, dict) and layer.get("class_name") in _MODEL_CLASSES:
            name = (layer.get("config") or {}).get("name") or layer.get("name")
            if isinstance(name, str):
                found.append(name)
            stack.extend(_layers(layer))
    return found


def _layers(serialized: Any) -> list[Any]:
    config = serialized.get("config") if isinstance(serialized, dict) else None
    layers = config.get("layers") if isinstance(config, dict) else None
    return layers if isinstance(layers, list) else []


def copy_submodel_weights(keras: Any, model: Any, path: str | Path, name: str, loc: Location) -> None:
    """Give `model` the weights of the sub-model `name` inside the trained .keras file at `path`.

    Every layer with weights is matched by name, at every depth, and its
    weights by shape; any difference is reported at `loc` (the spec's
    `weights:` line) before a single weight is set.
    """
    checked = check_model_file(path, loc)
    names = file_submodels(checked.config)
    if name not in names:
        listed = ", ".join(dict.fromkeys(names)) or "none"
        raise fail(RunError, loc, f"'{path}' holds no sub-model '{name}'{did_you_mean(name, names)}",
                   f"its sub-models: {listed}; name one of them in 'model', or give the file of a trained model "
                   "that contains it")
    from .build import deep_recursion, keras_errors

    with keras_errors(loc, f"the model in '{path}'", "give a model saved with model.save('NAME.keras')"):
        with warnings.catch_warnings(), deep_recursion(checked.layer_count()):
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            whole = keras.saving.load_model(path, safe_mode=True, compile=False)
    source = _find_model(keras, whole, name)
    pairs: list[tuple[Any, Any]] = []
    problems = list(_match(keras, model, source, "", pairs))
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        listed = "; ".join(problems[:_MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise fail(SpecError, loc, f"sub-model '{name}' in '{path}' does not match sub-model '{model.name}' "
                   f"of the spec: {listed}",
                   f"the spec's sub-model needs the layers of '{name}', with the same names and weight shapes: "
                   "declare it as the spec that was trained declares it (include that file)")
    for target, origin in pairs:
        target.set_weights(origin.get_weights())


def _find_model(keras: Any, whole: Any, name: str) -> Any:
    """The first model named `name` inside `whole`, outermost first (as file_submodels lists them)."""
    queue = [layer for layer in whole.layers]
    while queue:
        layer = queue.pop(0)
        if isinstance(layer, keras.Model):
            if layer.name == name:
                return layer
            queue.extend(layer.layers)
    raise AssertionError(f"{name} listed in the config but not loaded")  # file_submodels found it


def _match(keras: Any, target: Any, source: Any, prefix: str, pairs: list[tuple[Any, Any]]) -> Iterator[str]:
    """What differs between two models' layers with weights; pairs of matching layers are collected."""
    mine = {layer.name: layer for layer in target.layers if layer.weights}
    theirs = {layer.name: layer for layer in source.layers if layer.weights}
    for layer_name, layer in mine.items():
        other = theirs.get(layer_name)
        shown = prefix + layer_name
        if other is None:
            yield f"the file has no layer '{shown}' (layers with weights there: {', '.join(theirs) or 'none'})"
        elif isinstance(layer, keras.Model) and isinstance(other, keras.Model):
            yield from _match(keras, layer, other, shown + "/", pairs)
        elif _shapes(layer) != _shapes(other):
            yield f"layer '{shown}' has weights of shapes {_shapes(layer)} here but {_shapes(other)} in the file"
        else:
            pairs.append((layer, other))
    for layer_name in theirs:
        if layer_name not in mine:
            yield f"the file's layer '{prefix}{layer_name}' is not in the spec"


def _shapes(layer: Any) -> str:
    return ", ".join(str(tuple(weight.shape)) for weight in layer.weights)
