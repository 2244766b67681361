"""What the installed Keras offers, for checking specs without importing Keras.

`catalogue.json` lists every layer class of `keras.layers` with the arguments
its constructor accepts and those it requires, the kind of value each argument
takes (see `KINDS`), the arguments its `call` accepts, the classes that can be
adapted to data (`adapt`), and the names (and
classes, with their arguments' kinds) that optimizers, losses, metrics,
activations, initializers, regularizers and constraints can be given by,
and the callbacks' classes with their arguments. It is generated from the installed Keras by
`python -m kspec.catalogue`; a test regenerates it and compares, so it cannot
silently drift from the Keras that builds the models.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")

# Layers a spec may not name, at any depth, and that no .keras file kspec
# loads may hold: those that run code or load a foreign graph or file (the
# policy in docs/spec.md), and two that are not layers one calls on tensors.
REFUSED_LAYERS = {
    "Lambda": "a Lambda layer runs arbitrary Python code, which a spec may not carry",
    "Layer": "'Layer' is the abstract base class; name a concrete layer",
    "InputLayer": "declare model inputs under 'inputs:' instead",
    "TFSMLayer": "TFSMLayer wraps a TensorFlow SavedModel, which a spec cannot load",
    "JaxLayer": "JaxLayer wraps Python functions, which a spec may not carry",
    "FlaxLayer": "FlaxLayer wraps a Python Flax module, which a spec may not carry",
    "TorchModuleWrapper": "TorchModuleWrapper wraps a pickled PyTorch module, which a spec may not carry",
}


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    """The committed catalogue (no Keras import)."""
    with open(CATALOGUE_PATH, encoding="utf-8") as handle:
        return json.load(handle)


# ----------------------------------------------------------------- generation
# Everything below imports Keras and runs only when the catalogue is generated.

_POPPED = re.compile(r"kwargs\.pop\(\s*[\"'](\w+)[\"']")


# The kind of an argument's default value, which is the kind of value it takes:
# bool, int, float, str, None (anything: no check), tuple (a list or tuple).
KINDS = ("bool", "int", "float", "str", "None", "tuple")


def _default_kind(value: Any) -> str | None:
    if value is None:
        return "None"
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("tuple", (tuple, list))):
        if isinstance(value, types):
            return kind
    return None  # e.g. a callable default: no kind to check against


# How Keras's docstrings begin the description of a required argument of one
# kind ("units: Positive integer, ...", "rate: Float between 0 and 1."); a
# description that goes on "or tuple ..." matches none of them.
_DOCUMENTED_KINDS = (
    ("int", re.compile(r"(?:positive )?(?:int|integer)[,.]", re.IGNORECASE)),
    ("float", re.compile(r"float(?: between [\w. ]+)?[,.]", re.IGNORECASE)),
    ("bool", re.compile(r"(?:bool|boolean)[,.]", re.IGNORECASE)),
    ("tuple", re.compile(r"tuple of integers[,.]", re.IGNORECASE)),
)


def _documented_kind(cls: type, name: str) -> str | None:
    """The kind a required argument takes, as the class's docstring describes it."""
    found = re.search(rf"^\s*{re.escape(name)}:\s*(.*)$", inspect.getdoc(cls) or "", re.MULTILINE)
    if found is None:
        return None
    return next((kind for kind, pattern in _DOCUMENTED_KINDS if pattern.match(found.group(1))), None)


def _argument_kinds(cls: type) -> dict[str, str]:
    """Argument -> kind, for the arguments of a constructor whose kind is known."""
    kinds: dict[str, str] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        try:
            params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in kinds:
                continue
            kind = _documented_kind(klass, param.name) if param.default is param.empty \
                else _default_kind(param.default)
            if kind is not None:
                kinds[param.name] = kind
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return kinds


def _accepted_arguments(cls: type, base: type) -> tuple[list[str], list[str], list[str]]:
    """(accepted, required, deprecated) constructor arguments of a layer class.

    Follows **kwargs up the class hierarchy to Keras's base Layer, whose own
    extra keywords (input_shape, input_dim) are accepted too. Arguments that a
    constructor pops from **kwargs (Keras's way of deprecating them) count as
    accepted but deprecated.
    """
    accepted: list[str] = []
    required: list[str] = []
    deprecated: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        init = vars(klass)["__init__"]
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        try:
            source = inspect.getsource(init)
        except (OSError, TypeError):
            source = ""
        for name in _POPPED.findall(source):
            if name not in accepted and name not in deprecated:
                deprecated.append(name)
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name not in accepted:
                accepted.append(param.name)
                if param.default is param.empty and klass is cls:
                    required.append(param.name)
        has_var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
        if klass is base or not has_var_keyword:
            break
    # input_shape / input_dim are popped by the base Layer; keep them accepted.
    deprecated = [name for name in deprecated if name not in accepted]
    for name in ("input_shape", "input_dim"):
        if name in deprecated:
            deprecated.remove(name)
            accepted.append(name)
    return accepted, required, deprecated


def _call_arguments(cls: type) -> dict[str, Any]:
    """The keywords a layer's call takes, and the kind of those with a constant default (a spec's `call:`)."""
    params = list(inspect.signature(cls.call).parameters.values())[1:]
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    kinds = {p.name: _default_kind(p.default) for p in named if p.default is not p.empty}
    return {
        "params": [p.name for p in named],
        "kinds": {name: kind for name, kind in kinds.items() if kind not in (None, "None")},
        "var_keyword": any(p.kind is p.VAR_KEYWORD for p in params),
    }


# Short names Keras's get() also accepts; kept only where it does.
_ALIASES = ("mse", "mae", "mape", "msle", "kld", "logcosh", "bce", "cce")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _identifiers(module: Any, get: Any, base: type | None) -> dict[str, Any]:
    """Strings and classes a Keras `get()` accepts, e.g. 'adam' or 'Adam'."""
    candidates: set[str] = set(_ALIASES)
    classes: dict[str, list[str]] = {}
    kinds: dict[str, dict[str, str]] = {}
    required: dict[str, list[str]] = {}
    for name in sorted(dir(module)):
        if name.startswith("_") or name in ("get", "serialize", "deserialize"):
            continue
        obj = getattr(module, name)
        if not inspect.isclass(obj):
            if name.islower() and callable(obj):
                candidates.add(name)
            continue
        candidates.update((name.lower(), _snake(name)))
        if base is None or not issubclass(obj, base) or obj is base:
            continue
        try:
            params = list(inspect.signature(obj.__init__).parameters.values())[1:]
        except (TypeError, ValueError):
            params = []
        classes[name] = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        needed = [p.name for p in params if p.name in classes[name] and p.default is p.empty]
        needed += [arg for arg in _read_by_from_config(obj) if arg in classes[name] and arg not in needed]
        if needed:
            required[name] = needed
        kinds[name] = {arg: kind for arg, kind in _argument_kinds(obj).items() if arg in classes[name]}
    strings = []
    for name in sorted(candidates):
        try:
            get(name)
        except ImportError:
            pass  # a real name whose object needs an optional package (e.g. 'stft' needs scipy)
        except Exception:
            continue
        strings.append(name)
    return {"strings": strings, "classes": classes, "kinds": kinds, "required": required}


def _read_by_from_config(cls: type) -> list[str]:
    """Arguments that from_config reads even though the constructor has a default (Constant's value).

    kspec hands initializers, regularizers and constraints to Keras in
    serialized form, so these must be written in a spec.
    """
    try:
        cls.from_config({})  # type: ignore[attr-defined]
    except KeyError as exc:
        return [str(exc.args[0])] if exc.args else []
    except Exception:
        pass
    return []


def _no_name(name: str) -> None:
    raise ValueError(name)  # keras.callbacks and schedules have no get(): none is named by a string


def generate() -> dict[str, Any]:
    """Build the catalogue from the installed Keras."""
    import keras

    layers: dict[str, Any] = {}
    for name in sorted(dir(keras.layers)):
        obj = getattr(keras.layers, name)
        if not (inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)):
            continue
        accepted, required, deprecated = _accepted_arguments(obj, keras.layers.Layer)
        layers[name] = {
            "args": accepted,
            "required": required,
            "deprecated": deprecated,
            "kinds": {arg: kind for arg, kind in _argument_kinds(obj).items() if arg in accepted},
            "call": _call_arguments(obj),
        }
    # compile() turns these names into the accuracy / cross-entropy that fits each output.
    metrics = _identifiers(keras.metrics, keras.metrics.get, keras.metrics.Metric)
    metrics["strings"] = sorted(set(metrics["strings"]) | {"accuracy", "acc"})
    losses = _identifiers(keras.losses, keras.losses.get, keras.losses.Loss)
    losses["strings"] = sorted(set(losses["strings"]) | {"crossentropy", "ce"})
    return {
        "keras_version": keras.__version__,
        "layers": layers,
        # Preprocessing layers a spec may mark `adapt: true` (fitted to the training data).
        "adaptable": sorted(name for name in layers if callable(getattr(getattr(keras.layers, name), "adapt", None))),
        "optimizers": _identifiers(keras.optimizers, keras.optimizers.get,
                                   keras.optimizers.Optimizer),
        "losses": losses,
        "metrics": metrics,
        "activations": _identifiers(keras.activations, keras.activations.get, None)["strings"],
        "initializers": _identifiers(keras.initializers, keras.initializers.get, keras.initializers.Initializer),
        "regularizers": _identifiers(keras.regularizers, keras.regularizers.get, keras.regularizers.Regularizer),
        "constraints": _identifiers(keras.constraints, keras.constraints.get, keras.constraints.Constraint),
        # An optimizer's learning_rate may be one of these: {ExponentialDecay: {...}}.
        "schedules": _identifiers(keras.optimizers.schedules, _no_name,
                                  keras.optimizers.schedules.LearningRateSchedule),
        # Callbacks are named by class only; which of them a spec may use is kspec's choice (spec/callbacks.py).
        "callbacks": {key: value for key, value in _identifiers(
            keras.callbacks, _no_name, keras.callbacks.Callback).items() if key != "strings"},
    }


def dumps(catalogue: dict[str, Any]) -> str:
    return json.dumps(catalogue, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = dumps(generate())
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        sys.exit(0 if CATALOGUE_PATH.read_text(encoding="utf-8") == text else 1)
    CATALOGUE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {CATALOGUE_PATH}")
