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

What the spec language cannot say (a Lambda layer, a class outside
keras.layers, a keras.ops operation, a non-tensor call argument, a config
value with no YAML form) is refused with a located RunError naming the layer;
nothing is dropped silently.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import yaml

from . import catalogue as catalogue_module
from .build import deep_recursion, import_keras, keras_message
from .errors import KspecError, RunError, fail
from .modelfile import check_model_file
from .spec.load import FLOAT_RESOLVER
from .spec.parse import DTYPES, MODEL_NAME_PATTERN, NAME_PATTERN, _snake_case

__all__ = ["from_model", "import_file"]

# A one-line edge longer than this is written as a block, one key a line.
LINE_WIDTH = 100
# Compile-config entries kspec cannot write, with the value that means "unset".
_COMPILE_DEFAULTS = {"weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1}
# keras.ops operations that have a layer doing the same, for the refusal's hint.
_OP_LAYERS = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply", "Concatenate": "Concatenate",
              "Maximum": "Maximum", "Minimum": "Minimum", "Dot": "Dot", "Reshape": "Reshape",
              "Transpose": "Permute", "Relu": "ReLU", "Softmax": "Softmax", "Average": "Average"}
_MISSING = object()
_ACTIVATION_ARGS = ("activation", "recurrent_activation")


# ------------------------------------------------------------------ public API
def from_model(model: Any, name: str | None = None) -> str:
    """The spec text of a Keras functional or Sequential model.

    `name` names the spec instead of the model's own name (Keras allows
    names, such as 'mobilenetv2_1.00_224', that a spec does not). Raises
    RunError, located at the model's name, for anything the spec language
    cannot express.
    """
    return _Importer(import_keras(), str(getattr(model, "name", "model"))).spec_text(model, name)


def import_file(path: Path, name: str | None = None) -> str:
    """The spec text of the model in a .keras file, loaded with Keras's safe mode."""
    keras = import_keras()
    path = Path(path)
    model = _load(keras, path)
    return _Importer(keras, str(path)).spec_text(model, name)


def _load(keras: Any, path: Path) -> Any:
    """Load a .keras file without running code from it; failures are RunErrors at the path.

    The file is checked (zip members, sizes, every class in its config)
    before Keras reads any of it; Keras's safe mode stays on besides.
    """
    checked = check_model_file(path)
    try:
        with warnings.catch_warnings(), deep_recursion(checked.layer_count()):
            # an untrained optimizer's state is not the model's
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zipfile errors, ...
        message = keras_message(exc)
        if "safe_mode" in message:  # a Lambda, a lambda, a TFSMLayer, a vocabulary file, a torch module, ...
            said = message.split(". ")[0].rstrip(".")[:200]  # Keras's first sentence names what it refused
            raise fail(RunError, str(path),
                       f"the model holds what Keras loads only with safe_mode off: \"{said}\"",
                       "kspec never runs code or reads files a model file names, and a spec cannot carry "
                       "code; rewrite that part with layers from keras.layers") from None
        match = re.search(r"[Cc]ould not (?:locate|deserialize) class '?([\w.]+)'?", message)
        if match:
            raise fail(RunError, str(path),
                       f"the model uses the class '{match.group(1)}', which is not part of Keras",
                       "a spec names only classes of keras.layers; custom classes cannot be "
                       "imported") from None
        raise fail(RunError, str(path), f"cannot load the model: {message}",
                   "give a model saved with model.save('NAME.keras')") from None


# --------------------------------------------------------------- graph reading
@dataclass
class _Call:
    """One call of a layer (or sub-model, or operation) inside one model."""

    op: Any
    node: Any
    absolute: int  # the node's index among all of `op`'s calls (as in KerasTensor histories)
    index: int  # its index among this model's calls of `op`: the spec's node index
    inputs: Any = None  # the spec's `in`: None, a KerasTensor, a list of them, or a dict
    deps: list[tuple[int, int]] = field(default_factory=list)  # keys of the calls it reads
    name: str = ""
    output_names: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[int, int]:
        return id(self.op), self.absolute


def _kept_nodes(graph: Any) -> Iterator[tuple[Any, Any, int, int]]:
    """(operation, node, absolute node index, node index within the model) of every call in `graph`.

    A layer may also have calls outside this model (or, for a functional
    model, its own node 0); Keras keeps the model's own in `graph._nodes`.
    """
    from keras.src.ops.function import make_node_key

    for op in graph.operations:
        count = 0
        for absolute, node in enumerate(op._inbound_nodes):
            if make_node_key(op, absolute) in graph._nodes:
                yield op, node, absolute, count
                count += 1


def _tensors(value: Any) -> list[Any]:
    """The KerasTensors in a nested argument value."""
    from keras import KerasTensor

    if isinstance(value, KerasTensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


# ------------------------------------------------------------------- importer
class _Importer:
    """Turns one model (and its sub-models) into a spec; `source` locates errors."""

    def __init__(self, keras: Any, source: str):
        self.keras = keras
        self.source = source
        self.catalogue = catalogue_module.load()
        self.owners: dict[int, str] = {}  # id(layer) -> the model path it belongs to
        self.fresh_configs: dict[tuple[type, str], dict[str, Any]] = {}

    def refuse(self, message: str, hint: str | None = None) -> KspecError:
        return fail(RunError, self.source, message, hint)

    # ------------------------------------------------------------------ model
    def spec_text(self, model: Any, name: str | None = None) -> str:
        keras = self.keras
        if not isinstance(model, keras.Model):
            raise self.refuse(f"expected a Keras model, got {type(model).__name__}")
        self.check_model_class(model, model.name)
        if not MODEL_NAME_PATTERN.fullmatch(name or model.name):
            raise self.refuse(f"model '{name or model.name}' has a name a spec cannot use",
                              "a model name is one line of text without '/'; give the spec a name of its "
                              "own (the `name` argument of from_model and import_file, or kspec import --name)")
        if not model.trainable:
            raise self.refuse(f"model '{model.name}' is frozen (trainable=False); a spec's top-level model "
                              "cannot be frozen", "freeze a sub-model instead ('trainable: false'), or "
                              "import the model before freezing it")
        graph = self.graph_of(model, "")
        if isinstance(graph._outputs_struct, dict):
            raise self.refuse(f"model '{model.name}' returns a dict of outputs; a spec's outputs are a list",
                              "build the model with a list of outputs")
        spec: dict[str, Any] = {"name": name or model.name}
        with _default_dtype_policy(keras):
            spec.update(self.functional(graph, "", frozen=False))
            keras_outputs = [tensor._keras_history[0].name for tensor in graph.outputs]  # Keras's output names
            spec.update(self.compile_settings(model, keras_outputs, spec["outputs"]))
        return _render(spec)

    def graph_of(self, model: Any, path: str) -> Any:
        """The functional graph of a model (a built Sequential keeps one inside)."""
        if isinstance(model, self.keras.Sequential):
            graph = getattr(model, "_functional", None)
            if graph is None:
                raise self.refuse(f"Sequential model '{path or model.name}' has no input shape",
                                  "build it first: give it a keras.Input, or call it on data")
            return graph
        return model

    def check_model_class(self, model: Any, path: str) -> None:
        from keras.src.models.functional import Functional

        if type(model) not in (Functional, self.keras.Sequential):
            cls = type(model)
            raise self.refuse(f"model '{path}' is of class '{cls.__module__}.{cls.__qualname__}', a subclass of "
                              "keras.Model; a spec describes functional and Sequential models only",
                              "build the model with keras.Model(inputs, outputs) or keras.Sequential")

    def check_name(self, name: str, what: str, path: str) -> None:
        if not NAME_PATTERN.fullmatch(name):
            raise self.refuse(f"{what} '{path}' has a name a spec cannot use",
                              "spec names start with a letter or '_' and hold only letters, digits and "
                              "'_'; rename it in Keras before importing")

    def own(self, layer: Any, model_path: str, path: str) -> None:
        """A layer belongs to one model: a spec cannot share it between two."""
        owner = self.owners.setdefault(id(layer), model_path)
        if owner != model_path:
            raise self.refuse(f"layer '{path}' is used both in model '{owner or 'the top level'}' and in model "
                              f"'{model_path or 'the top level'}'; a spec shares a layer only within one model",
                              "share the whole sub-model instead, or give each model its own layer")

    # ------------------------------------------------------------- functional
    def functional(self, graph: Any, path: str, frozen: bool) -> dict[str, Any]:
        """inputs, layers, models, edges and outputs of one functional graph."""
        prefix = f"{path}/" if path else ""
        inputs: dict[str, Any] = {}
        for tensor in graph.inputs:
            layer = tensor._keras_history[0]
            self.check_name(layer.name, "input", prefix + layer.name)
            inputs[layer.name] = self.input_spec(layer, prefix + layer.name)
        calls: dict[tuple[int, int], _Call] = {}
        by_op: dict[int, list[_Call]] = {}
        for op, node, absolute, index in _kept_nodes(graph):
            if isinstance(op, self.keras.layers.InputLayer):
                continue
            call = _Call(op, node, absolute, index)
            calls[call.key] = call
            by_op.setdefault(id(op), []).append(call)
        counts = {op_id: len(op_calls) for op_id, op_calls in by_op.items()}
        for call in calls.values():
            if isinstance(call.op, self.keras.layers.Layer):  # an operation is refused once reached
                self.read_call_inputs(call, prefix)
            if call.index > 0:  # node k comes after node k-1 in file order
                call.deps.insert(0, by_op[id(call.op)][call.index - 1].key)
        order = self.order(graph, calls, prefix)
        self.name_tensors(order, inputs, counts)
        tensor_names = self.tensor_names(graph, order)

        layers: dict[str, Any] = {}
        models: dict[str, Any] = {}
        edges: dict[str, Any] = {}
        above = next(iter(inputs)) if len(inputs) == 1 else None  # the first edge's default input
        for call in order:
            op = call.op
            where = prefix + op.name
            self.check_name(op.name, "sub-model" if isinstance(op, self.keras.Model) else "layer", where)
            self.own(op, path, where)
            if isinstance(op, self.keras.Model):
                if op.name not in models:
                    models[op.name] = self.submodel(op, where)
                edge: dict[str, Any] = {"layer": op.name}
            elif counts[id(op)] > 1:
                if op.name not in layers:
                    layers[op.name] = self.layer_def(op, where, frozen)
                edge = {"layer": op.name}
            else:
                edge = dict(self.layer_def(op, where, frozen))
            written = _refs(call.inputs, tensor_names)
            if written is not None and written != above:
                edge["in"] = written
            if call.output_names:
                edge["outputs"] = call.output_names
            edges[call.name] = edge
            above = call.name
        outputs = [tensor_names[_tensor_key(t)] for t in graph.outputs]
        if len(set(outputs)) < len(outputs):
            raise self.refuse(f"model '{path or graph.name}' lists the same tensor twice among its outputs; "
                              "a spec lists each output once", "return each tensor once")
        edges = _with_repeats(edges, set(inputs) | set(layers) | set(models) | set(tensor_names.values()))
        result: dict[str, Any] = {"inputs": inputs}
        if layers:
            result["layers"] = layers
        if models:
            result["models"] = models
        result["edges"] = edges
        result["outputs"] = outputs
        return result

    def read_call_inputs(self, call: _Call, prefix: str) -> None:
        """What a call was given, as the spec's `in`, and the calls it depends on.

        Keras also records arguments it fills in itself (a mask carried by
        the input tensor, `training` from the call's signature, `mask=None`);
        the rebuilt model records them again, so they are left out.
        """
        op, where = call.op, prefix + call.op.name
        arguments = call.node.arguments
        try:
            signature = inspect.signature(op.call)
            bound = signature.bind(*arguments.args, **arguments.kwargs).arguments
        except (TypeError, ValueError):
            raise self.refuse(f"call {call.index} of '{where}' passes arguments that do not fit its call "
                              "signature") from None
        params = signature.parameters
        tensor_args: dict[str, Any] = {}
        for name, value in bound.items():
            if not _tensors(value):
                if self.is_default_argument(name, value, params):
                    continue
                raise self.refuse(f"call {call.index} of '{where}' passes {name}={value!r}; a spec calls a layer "
                                  "on tensors only ('in:'), and cannot pass other arguments",
                                  "call the layer without that argument before importing")
            if self.is_implicit_mask(name, value, bound):
                continue
            tensor_args[name] = value
        call.inputs = self.spec_inputs(call, where, tensor_args, list(params))
        for tensor in _tensors(call.inputs):
            producer = tensor._keras_history[0]
            if not isinstance(producer, self.keras.layers.InputLayer):
                call.deps.append(_tensor_key(tensor)[:2])

    def is_default_argument(self, name: str, value: Any, params: Any) -> bool:
        """A non-tensor argument the rebuilt call gets anyway: its signature's default."""
        param = params.get(name)
        if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            return False
        return param.default is not inspect.Parameter.empty and _same(value, param.default)

    def is_implicit_mask(self, name: str, value: Any, bound: dict[str, Any]) -> bool:
        """`mask` (or `X_mask`) that is the mask Keras attached to the tensor it masks."""
        if name == "mask":
            masked = next(iter(bound.values()))
        elif name.endswith("_mask") and name[:-5] in bound:
            masked = bound[name[:-5]]
        else:
            return False
        from keras.src.backend import get_keras_mask

        masks, tensors = _tensors(value), _tensors(masked)
        return len(masks) == len(tensors) and all(m is get_keras_mask(t) for m, t in zip(masks, tensors))

    def spec_inputs(self, call: _Call, where: str, tensor_args: dict[str, Any], params: list[str]) -> Any:
        """The call's tensors in a form `in:` can write: one, a flat list, or a mapping."""
        is_model = isinstance(call.op, self.keras.Model)
        if not tensor_args:
            raise self.refuse(f"call {call.index} of '{where}' is given no tensor; a spec calls layers on tensors")
        for name, value in tensor_args.items():
            flat = isinstance(value, (list, tuple)) and all(_is_tensor(v) for v in value)
            by_name = isinstance(value, dict) and is_model and all(_is_tensor(v) for v in value.values())
            if not (_is_tensor(value) or flat or by_name) or (by_name and len(tensor_args) > 1):
                raise self.refuse(f"call {call.index} of '{where}' passes '{name}' as a nested structure of "
                                  "tensors, which a spec cannot write",
                                  "'in:' takes a tensor, a list of tensors, or tensors by keyword")
        first = params[0] if params else None
        if len(tensor_args) == 1 and first in tensor_args:
            return tensor_args[first]  # the usual call: layer(x) or layer([a, b])
        if is_model:
            raise self.refuse(f"call {call.index} of sub-model '{where}' passes tensors as "
                              f"{', '.join(tensor_args)}; a spec calls a sub-model on its inputs only")
        return dict(tensor_args)  # keyword tensors, e.g. MultiHeadAttention's query and value

    def order(self, graph: Any, calls: dict[tuple[int, int], _Call], prefix: str) -> list[_Call]:
        """Calls in a file order: each after what it reads, each shared layer's nodes in node order.

        A depth-first walk from the outputs, in output order, writes a chain
        of layers one after the other, as a person would.
        """
        done: set[tuple[int, int]] = set()
        order: list[_Call] = []
        stack: list[tuple[tuple[int, int], bool]] = []
        for tensor in reversed(graph.outputs):
            key = _tensor_key(tensor)[:2]
            if key in calls:
                stack.append((key, False))
        while stack:
            key, expanded = stack.pop()
            if key in done:
                continue
            if expanded:
                done.add(key)
                order.append(calls[key])
                continue
            stack.append((key, True))
            stack.extend((dep, False) for dep in reversed(calls[key].deps) if dep not in done)
        for call in order:
            if not isinstance(call.op, self.keras.layers.Layer):
                raise self.refuse(*self.operation_refusal(call.op, prefix))
        for key, call in calls.items():  # only the implicit mask computations are not reached
            if key not in done and isinstance(call.op, self.keras.layers.Layer):
                raise self.refuse(f"call {call.index} of '{prefix}{call.op.name}' is not reached from the "
                                  "model's outputs through its inputs")
        return order

    def operation_refusal(self, op: Any, prefix: str) -> tuple[str, str]:
        cls = type(op).__name__
        layer = _OP_LAYERS.get(cls)
        hint = (f"use the layer keras.layers.{layer} instead" if layer
                else "do it with a layer from keras.layers instead")
        return (f"'{prefix}{op.name}' is a keras.ops operation ({cls}), not a layer: Keras records one for "
                "tensor arithmetic such as x + y, or a keras.ops call on a model's tensors; a spec has no "
                "form for it", hint)

    def name_tensors(self, order: list[_Call], inputs: dict[str, Any], counts: dict[int, int]) -> None:
        """Edge names: a layer's own name for its only call, NAME_K for call K of a shared one."""
        taken = set(inputs) | {call.op.name for call in order}

        def unique(base: str) -> str:
            name, n = base, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            return name

        for call in order:
            alone = counts[id(call.op)] == 1 and not isinstance(call.op, self.keras.Model)
            call.name = call.op.name if alone else unique(f"{call.op.name}_{call.index}")
            if len(call.node.outputs) > 1:
                call.output_names = [unique(f"{call.name}_{i}") for i in range(len(call.node.outputs))]

    def tensor_names(self, graph: Any, order: list[_Call]) -> dict[tuple[int, int, int], str]:
        """(operation, node, tensor index) -> the spec's tensor name."""
        names = {_tensor_key(t): t._keras_history[0].name for t in graph.inputs}
        for call in order:
            op_id, node = call.key
            for i, _ in enumerate(call.node.outputs):
                names[(op_id, node, i)] = call.output_names[i] if call.output_names else call.name
        return names

    # ------------------------------------------------------------- sub-models
    def submodel(self, model: Any, path: str) -> dict[str, Any]:
        self.check_model_class(model, path)
        self.check_name(model.name, "sub-model", path)
        frozen = not model.trainable
        if isinstance(model, self.keras.Sequential):
            spec = self.sequential(model, path, frozen)
        else:
            if isinstance(model._outputs_struct, dict):
                raise self.refuse(f"sub-model '{path}' returns a dict of outputs; a spec's outputs are a list",
                                  "build the sub-model with a list of outputs")
            spec = self.functional(model, path, frozen)
        if frozen:
            spec["trainable"] = False
        return spec

    def sequential(self, model: Any, path: str, frozen: bool) -> dict[str, Any]:
        """`inputs` (when the model was given one) and the `sequential` list.

        A layer's `name` is written only where kspec would name it otherwise
        (kspec counts Keras's style of names, conv2d, conv2d_1, ..., within
        the model).
        """
        spec: dict[str, Any] = {}
        first = model.get_config()["layers"][:1]
        if first and first[0]["class_name"] == "InputLayer":
            input_layer = model._layers[0]
            self.check_name(input_layer.name, "input", f"{path}/{input_layer.name}")
            spec["inputs"] = {input_layer.name: self.input_spec(input_layer, f"{path}/{input_layer.name}")}
        items: list[Any] = []
        counts: dict[str, int] = {}
        for layer in model.layers:
            where = f"{path}/{layer.name}"
            self.own(layer, path, where)
            if isinstance(layer, self.keras.Model):
                raise self.refuse(f"'{where}' is a model inside Sequential model '{path}'; a spec's sequential "
                                  "list holds layers only", "make the outer model functional")
            class_name, args = next(iter(self.layer_def(layer, where, frozen).items()))
            base = _snake_case(class_name)
            automatic = base if counts.get(base, 0) == 0 else f"{base}_{counts[base]}"
            if layer.name == automatic:
                counts[base] = counts.get(base, 0) + 1
            else:
                args = {**args, "name": layer.name}
            items.append({class_name: args} if args else class_name)
        spec["sequential"] = items
        return spec

    def input_spec(self, layer: Any, where: str) -> dict[str, Any]:
        config = layer.get_config()
        shape = list(config["batch_shape"])
        spec: dict[str, Any] = {"shape": shape[1:]}
        dtype = config.get("dtype") or "float32"
        if dtype != "float32":
            if dtype not in DTYPES:
                raise self.refuse(f"input '{where}' has dtype '{dtype}', which a spec cannot declare",
                                  f"a spec's input dtypes: {', '.join(DTYPES)}")
            spec["dtype"] = dtype
        if shape[0] is not None:
            spec["batch_size"] = shape[0]
        for option in ("sparse", "ragged"):
            if config.get(option):
                spec[option] = True
        if config.get("optional"):
            raise self.refuse(f"input '{where}' is optional, which a spec cannot declare")
        return spec

    # ----------------------------------------------------------------- layers
    def layer_def(self, layer: Any, where: str, frozen: bool) -> dict[str, Any]:
        """`{ClassName: {arguments}}` of a layer, its defaults left out."""
        self.check_layer_class(layer, where)
        class_name = type(layer).__name__
        try:
            config = layer.get_config()
        except Exception as exc:  # e.g. a lambda's source that cannot be found
            raise self.refuse(f"layer '{where}' ({class_name}) cannot give its config: "
                              f"{keras_message(exc)}") from None
        args = self.explicit_args(type(layer), config, keep_name=False)
        if frozen and args.get("trainable") is False:
            del args["trainable"]  # the sub-model's `trainable: false` freezes it
        return {class_name: self.layer_args(class_name, args, where)}

    def check_layer_class(self, layer: Any, where: str) -> None:
        cls = type(layer)
        if isinstance(layer, self.keras.layers.Lambda):
            raise self.refuse(f"layer '{where}' is a Lambda layer: it runs Python code, which a spec cannot carry",
                              "rewrite it with layers from keras.layers")
        if getattr(self.keras.layers, cls.__name__, None) is not cls:
            raise self.refuse(f"layer '{where}' is of class '{cls.__module__}.{cls.__qualname__}', which is not "
                              "a class of keras.layers; a spec names keras.layers classes only",
                              "rewrite it with layers from keras.layers")
        refused = catalogue_module.REFUSED_LAYERS.get(cls.__name__)
        if refused or cls.__name__ not in self.catalogue["layers"]:
            raise self.refuse(f"layer '{where}' is a {cls.__name__}, which a spec cannot name",
                              refused or "regenerate kspec's catalogue for this Keras (python -m kspec.catalogue)")

    def layer_args(self, class_name: str, args: dict[str, Any], where: str) -> dict[str, Any]:
        """Arguments in the spec's form, each one a constructor argument kspec accepts."""
        info = self.catalogue["layers"][class_name]
        written = {}
        for key, value in args.items():
            if key not in info["args"] or key in info["deprecated"]:
                raise self.refuse(f"layer '{where}' ({class_name}) has '{key}' in its config, which is not an "
                                  f"argument a spec can give {class_name}")
            if key in _ACTIVATION_ARGS and value is not None and value not in self.catalogue["activations"]:
                raise self.refuse(f"argument '{key}' of layer '{where}' is {_shown(value)}, not the name of one "
                                  "of Keras's activations, which is all a spec can write",
                                  "use a Keras activation, or an Activation layer")
            written[key] = self.value(value, f"argument '{key}' of layer '{where}'")
        return written

    def explicit_args(self, cls: type, config: dict[str, Any], keep_name: bool) -> dict[str, Any]:
        """The config entries that must be given for `cls` to build this config.

        Starting from the required arguments, the first entry (in config
        order) that a layer built from the kept entries gets wrong is added,
        until none is wrong: an argument whose default follows from another
        (MaxPooling2D's strides from pool_size) is then left out.
        """
        required = self.catalogue["layers"].get(cls.__name__, {}).get("required", [])
        kept = {key: config[key] for key in required if key in config}
        if keep_name and "name" in config:
            kept["name"] = config["name"]
        for _ in range(len(config) + 1):
            fresh = self.fresh_config(cls, kept)
            if fresh is None:  # Keras cannot build it from fewer arguments: write them all
                return {key: value for key, value in config.items() if keep_name or key != "name"}
            wrong = [key for key, value in config.items()
                     if key != "name" and key not in kept and not _same(fresh.get(key, _MISSING), value)]
            if not wrong:
                break
            kept[wrong[0]] = config[wrong[0]]
        # In config order, but the arguments every layer has (Keras lists them first) last.
        last = [key for key in ("trainable", "dtype", "name") if key in kept]
        ordered = [key for key in config if key in kept and key not in last] + last
        return {key: config[key] for key in ordered}

    def fresh_config(self, cls: type, kept: dict[str, Any]) -> dict[str, Any] | None:
        """The config of a `cls` made from `kept` alone, or None when Keras cannot make one.

        from_config reads nested objects as Keras serialized them; some
        classes' from_config wants every key (Rescaling's offset), so the
        constructor is tried too.
        """
        key = (cls, json.dumps(kept, sort_keys=True, default=repr))
        if key not in self.fresh_configs:
            self.fresh_configs[key] = None  # type: ignore[assignment]
            for make in (cls.from_config, lambda config: cls(**config)):
                try:
                    self.fresh_configs[key] = make(json.loads(json.dumps(kept, default=_jsonable))).get_config()
                    break
                except Exception:  # an argument that needs another
                    continue
        return self.fresh_configs[key]

    # ----------------------------------------------------------------- values
    def value(self, value: Any, what: str) -> Any:
        """A config value in the spec's YAML form."""
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return self.value(value.tolist(), what)
        if isinstance(value, (list, tuple)):
            return [self.value(item, what) for item in value]
        if isinstance(value, dict):
            if "class_name" in value and "config" in value:
                return self.keras_object(value, what)
            if all(isinstance(key, str) for key in value):
                return {key: self.value(item, what) for key, item in value.items()}
        raise self.refuse(f"{what} is {_shown(value)}, which a spec cannot write")

    def keras_object(self, serialized: dict[str, Any], what: str) -> Any:
        """A serialized Keras object as `{ClassName: {args}}`, or the name Keras also accepts."""
        keras = self.keras
        class_name, config = serialized["class_name"], serialized["config"]
        module = serialized.get("module") or ""
        if serialized.get("registered_name") not in (None, class_name):
            raise self.refuse(f"{what} is the custom object '{serialized['registered_name']}', which a spec "
                              "cannot write", "use a class from Keras instead")
        if class_name in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config, dict):
            return config["name"]
        if class_name == "function":
            raise self.refuse(f"{what} is the Python function '{config}', which a spec cannot carry")
        if module == "keras.layers" and class_name in self.catalogue["layers"]:
            refused = catalogue_module.REFUSED_LAYERS.get(class_name)
            if refused:
                raise self.refuse(f"{what} is a {class_name} layer, which a spec cannot carry", refused)
            cls = getattr(keras.layers, class_name)
            args = self.explicit_args(cls, config, keep_name=True)  # a wrapped layer keeps its name
            return {class_name: self.layer_args(class_name, args, f"{what}: {class_name}")}
        for kind in ("initializers", "regularizers", "constraints"):
            cls = getattr(getattr(keras, kind), class_name, None)
            if module == f"keras.{kind}" and isinstance(cls, type) and isinstance(config, dict):
                return self.object_form(getattr(keras, kind), cls, config, what)
        raise self.refuse(f"{what} is a '{class_name}' object from '{module}', which a spec cannot write")

    def object_form(self, module: Any, cls: type, config: dict[str, Any], what: str) -> Any:
        """`{ClassName: {non-default args}}`, or its name when it has none and Keras takes the name."""
        try:
            fresh = cls().get_config()
        except Exception:
            fresh = {}
        args = {key: self.value(value, what) for key, value in config.items()
                if not _same(fresh.get(key, _MISSING), value)}
        if not args:
            name = _snake_case(cls.__name__)
            try:
                if type(module.get(name)) is cls:
                    return name
            except Exception:
                pass
        return {cls.__name__: args}

    # --------------------------------------------------------------- compile
    def compile_settings(self, model: Any, keras_outputs: list[str], outputs: list[str]) -> dict[str, Any]:
        """optimizer, loss, loss_weights and metrics, when the model was compiled."""
        config = model.get_compile_config() if getattr(model, "compiled", False) else None
        if not config:
            return {}
        for key, unset in _COMPILE_DEFAULTS.items():
            if key in config and not _same(config[key], unset) and config[key] not in ([], {}):
                raise self.refuse(f"model '{model.name}' is compiled with {key}={config[key]!r}, which a spec "
                                  "cannot carry", "a spec's compile settings are optimizer, loss, loss_weights "
                                  "and metrics")
        # jit_compile is left to Keras: it is how to run the model, not what it is.
        settings: dict[str, Any] = {}
        if config.get("optimizer") is not None:
            settings["optimizer"] = self.compile_object(config["optimizer"], self.keras.optimizers, "optimizer")
        for key, module in (("loss", self.keras.losses), ("loss_weights", None), ("metrics", self.keras.metrics)):
            value = config.get(key)
            if value is None:
                continue
            settings[key] = self.per_output(value, key, module, keras_outputs, outputs)
        return settings

    def per_output(self, value: Any, key: str, module: Any, keras_outputs: list[str],
                   outputs: list[str]) -> Any:
        """A setting by output name (Keras's output names -> the spec's), in a list, or one for all."""
        def convert(item: Any) -> Any:
            if item is None:  # no loss (or metric) for that output
                return None
            if module is None:
                return float(item)
            if isinstance(item, (list, tuple)):
                return [convert(i) for i in item]
            return self.compile_object(item, module, key)

        if isinstance(value, dict) and not ("class_name" in value and "config" in value):
            if len(set(keras_outputs)) < len(keras_outputs):
                raise self.refuse(f"the {key} are given by output name, but outputs share the name(s) "
                                  f"{', '.join(sorted({n for n in keras_outputs if keras_outputs.count(n) > 1}))}",
                                  "compile with a list in output order")
            spec_name = dict(zip(keras_outputs, outputs))
            unknown = [name for name in value if name not in spec_name]
            if unknown:
                raise self.refuse(f"the {key} name output '{unknown[0]}', which the model does not have")
            return {spec_name[name]: convert(item) for name, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        if key == "metrics":
            return [convert(value)]
        return convert(value)

    def compile_object(self, value: Any, module: Any, what: str) -> Any:
        """An optimizer, loss or metric: its name, or `{ClassName: {non-default args}}`."""
        known = self.catalogue[{"optimizer": "optimizers", "loss": "losses", "metrics": "metrics"}[what]]
        if isinstance(value, str):
            if value not in known["strings"] and value not in known["classes"]:
                raise self.refuse(f"the {what} '{value}' is not one Keras knows by name, which a spec needs",
                                  "use a Keras optimizer, loss or metric")
            return value
        if not (isinstance(value, dict) and "class_name" in value):
            raise self.refuse(f"the {what} is {_shown(value)}, which a spec cannot write")
        class_name, config = value["class_name"], value.get("config")
        if class_name == "function" and isinstance(config, str):
            if not str(value.get("module", "")).startswith("keras") or config not in known["strings"]:
                raise self.refuse(f"the {what} is the Python function '{config}', which a spec cannot carry",
                                  "use a Keras loss or metric")
            return config  # a Keras loss or metric function, known by name
        cls = getattr(module, class_name, None)
        if value.get("registered_name") not in (None, class_name) or not isinstance(cls, type):
            raise self.refuse(f"the {what} is the custom class '{value.get('registered_name') or class_name}', "
                              "which a spec cannot name", "use a class Keras provides")
        try:
            fresh = cls().get_config()
        except Exception:
            fresh = {}
        args = {}
        for key, item in (config or {}).items():
            default = fresh.get(key, _MISSING)
            if key == "name" and isinstance(item, str) and isinstance(default, str) \
                    and re.sub(r"_\d+$", "", item) == re.sub(r"_\d+$", "", default):
                continue  # Keras's automatic name (adam, auc_1, ...)
            if _same(default, item):
                continue
            if isinstance(item, dict) and "class_name" in item:
                raise self.refuse(f"the {what}'s '{key}' is a {item['class_name']} object, which a spec "
                                  "cannot write", "give it a plain number")
            if what == "optimizer" and isinstance(item, float):
                item = _shortest_float32(item)
            args[key] = self.value(item, f"'{key}' of the {what}")
        if not args and what == "optimizer":  # compile() turns a name into the same object
            for name in (class_name.lower(), _snake_case(class_name)):
                if name in self.catalogue["optimizers"]["strings"]:
                    return name
        return {class_name: args}  # a loss or metric object stays an object, as in the compile config


# ------------------------------------------------------------------ helpers
@contextmanager
def _default_dtype_policy(keras: Any) -> Iterator[None]:
    """Compare with layers made as `kspec build` makes them: under the float32 policy.

    A model built under mixed_float16 then keeps its layers' policy in the
    spec, instead of it being taken for the default.
    """
    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)


def _tensor_key(tensor: Any) -> tuple[int, int, int]:
    op, node_index, tensor_index = tensor._keras_history
    return id(op), node_index, tensor_index


def _is_tensor(value: Any) -> bool:
    from keras import KerasTensor

    return isinstance(value, KerasTensor)


def _refs(inputs: Any, names: dict[tuple[int, int, int], str]) -> Any:
    """The spec's `in` for a call's tensors: a name, a list of names, or names by keyword."""
    if inputs is None:
        return None
    if _is_tensor(inputs):
        return names[_tensor_key(inputs)]
    if isinstance(inputs, dict):
        return {key: _refs(value, names) for key, value in inputs.items()}
    return [_refs(item, names) for item in inputs]


def _with_repeats(edges: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """Chains NAME_1 .. NAME_N of identical inline layers, written as one edge with `repeat: N`.

    Only where that changes nothing: the layers are called one on the
    other, NAME itself is no other name, and the repeat makes the same
    layer names and tensors (NAME_1 ... are tensors of a repeat too).
    """
    names = list(edges)
    result: dict[str, Any] = {}
    i = 0
    while i < len(names):
        match = re.fullmatch(r"(.+)_1", names[i])
        run = 1
        if match and match.group(1) not in used and NAME_PATTERN.fullmatch(match.group(1)):
            base, first = match.group(1), edges[names[i]]
            while i + run < len(names):
                name, edge = names[i + run], edges[names[i + run]]
                if name != f"{base}_{run + 1}" or set(edge) != set(first) - {"in"} \
                        or _layer_part(edge) != _layer_part(first) or "outputs" in first or "layer" in first:
                    break
                run += 1
        if run > 1:
            edge = {**_layer_part(edges[names[i]]), **{k: v for k, v in edges[names[i]].items() if k == "in"},
                    "repeat": run}
            result[match.group(1)] = edge  # type: ignore[union-attr]
        else:
            result[names[i]] = edges[names[i]]
        i += run
    return result


def _layer_part(edge: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in edge.items() if key not in ("in", "outputs", "repeat")}


def _same(a: Any, b: Any) -> bool:
    """Config values equal once tuples and lists are alike (YAML has only lists)."""
    if a is _MISSING or b is _MISSING:
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _shortest_float32(value: float) -> float:
    """0.0020000000949949026 -> 0.002 when that is the same float32 (Keras keeps rates as float32)."""
    if float(np.float32(value)) != value:
        return value
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def _shown(value: Any) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text[:60] + '...' if len(text) > 60 else text})"


# ------------------------------------------------------------------- writing
class _Dumper(yaml.SafeDumper):
    """Flow YAML that kspec reads back as written: never aliases, `1e3` strings quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# kspec reads `1e-3` as a float, so such strings need quotes.
_Dumper.add_implicit_resolver(*FLOAT_RESOLVER)


def _flow(value: Any) -> str:
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=False,
                     width=1 << 30, allow_unicode=True).strip()
    return text[:-3].rstrip() if text.endswith("\n...") else text


def _render(spec: dict[str, Any]) -> str:
    """The spec as text: sections as blocks, each input, layer and edge on one line."""
    lines = _render_model(spec, 0, top=True)
    return "\n".join(lines).rstrip() + "\n"


def _render_model(spec: dict[str, Any], indent: int, top: bool) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, value in spec.items():
        if key == "models":
            lines.append(f"{pad}models:")
            for name, sub in value.items():
                lines.append(f"{pad}  {_flow(name)}:")
                lines += _render_model(sub, indent + 2, top=False)
        elif key in ("inputs", "layers", "edges"):
            lines.append(f"{pad}{key}:")
            for name, entry in value.items():
                lines += _entry(name, entry, indent + 1)
        elif key == "sequential":
            lines.append(f"{pad}sequential:")
            for item in value:  # `- Conv2D: {...}`, or `- Flatten` for a class without arguments
                lines += _wrapped(f"{pad}  - ", item, f"{pad}      ") if isinstance(item, str) else \
                    _wrapped(f"{pad}  - {_flow(next(iter(item)))}: ", next(iter(item.values())), f"{pad}      ")
        else:
            lines.append(f"{pad}{key}: {_flow(value)}")
        if top and key not in ("optimizer", "loss", "loss_weights"):  # compile settings stay together
            lines.append("")
    return lines


def _entry(name: str, entry: Any, indent: int) -> list[str]:
    """`name: {...}` on one line, or, when too long, one line per key, long mappings wrapped."""
    pad = "  " * indent
    line = f"{pad}{_flow(name)}: {_flow(entry)}"
    if len(line) <= LINE_WIDTH or not isinstance(entry, dict):
        return [line]
    lines = [f"{pad}{_flow(name)}:"]
    for key, value in entry.items():
        lines += _wrapped(f"{pad}  {_flow(key)}: ", value, f"{pad}    ")
    return lines


def _wrapped(start: str, value: Any, pad: str, close: str = "") -> list[str]:
    """`start`, a flow value and `close`, wrapped between the value's entries onto lines indented by `pad`."""
    line = start + _flow(value) + close
    if len(line) <= LINE_WIDTH or not isinstance(value, dict) or not value:
        return [line]
    if len(value) == 1:  # {Conv2D: {...}}: wrap the class's arguments
        ((key, inner),) = value.items()
        if isinstance(inner, dict) and inner:
            return _wrapped(f"{start}{{{_flow(key)}: ", inner, pad, "}" + close)
        return [line]
    parts = [f"{_flow(key)}: {_flow(item)}" for key, item in value.items()]
    lines, current = [], start + "{" + parts[0]
    for part in parts[1:]:
        if len(current) + len(part) + 2 > LINE_WIDTH:
            lines.append(current + ",")
            current = pad + part
        else:
            current += ", " + part
    return lines + [current + "}" + close]
