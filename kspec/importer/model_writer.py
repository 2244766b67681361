"""Models -> spec dicts: the top-level model, its functional graphs, sub-models and Sequential lists.

Walks a model and its sub-models, checks what a spec can hold at model level
(classes, names, a layer owned by one model, frozen and dict-output models),
and puts the pieces together: inputs from the input layers, edges from the
calls that call_graph.py reads and naming.py names (runs of identical units
written as blocks by block_runs.py), layer arguments from
layer_args.py, compile settings from compiled.py. The result is a plain dict
in spec order, which render.py writes as text.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..spec.keys import DTYPES, MODEL_NAME_PATTERN, NAME_PATTERN, snake_case
from .layer_args import ArgumentWriter
from .block_runs import with_blocks
from .call_graph import GraphReader, tensor_key
from .compiled import CompileWriter
from .context import Context
from .naming import name_calls, references, tensor_names, with_repeats
from .standins import with_standins

__all__ = ["ModelWriter"]


class ModelWriter:
    """Turns one model (and its sub-models) into a spec dict."""

    def __init__(self, context: Context):
        self.keras = context.keras
        self.refuse = context.refuse
        self.reader = GraphReader(context)
        self.arguments = ArgumentWriter(context)
        self.compiled = CompileWriter(context, self.arguments)
        self.owners: dict[int, str] = {}  # id(layer) -> the model path it belongs to

    # ------------------------------------------------------------------ model
    def spec(self, model: Any, name: str | None = None) -> dict[str, Any]:
        """The spec of a top-level model; `name` replaces the model's name."""
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
            spec.update(self.compiled.settings(model, keras_outputs, spec["outputs"]))
        return spec

    def graph_of(self, model: Any, path: str) -> Any:
        """The functional graph of a model (a built Sequential keeps one inside), with stand-ins (standins.py)."""
        if isinstance(model, self.keras.Sequential):
            graph = getattr(model, "_functional", None)
            if graph is None:
                raise self.refuse(f"Sequential model '{path or model.name}' has no input shape",
                                  "build it first: give it a keras.Input, or call it on data")
            return graph
        return with_standins(self.keras, model)

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
        order, counts = self.reader.read(graph, prefix)
        name_calls(order, inputs, counts, self.keras)
        names = tensor_names(graph, order)

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
                    layers[op.name] = self.arguments.layer_def(op, where, frozen)
                edge = {"layer": op.name}
            else:
                edge = dict(self.arguments.layer_def(op, where, frozen))
                inner = getattr(op, "layer", None)
                if isinstance(inner, self.keras.Model) and inner.name not in models:  # wrapped by name
                    self.check_name(inner.name, "sub-model", prefix + inner.name)
                    models[inner.name] = self.submodel(inner, prefix + inner.name)
            written = references(call.inputs, names)
            if written is not None and written != above:
                edge["in"] = written
            if call.constants:
                edge["call"] = call.constants
            if call.output_names:
                edge["outputs"] = call.output_names
            edges[call.name] = edge
            above = call.name
        outputs = [names[tensor_key(t)] for t in graph.outputs]
        if len(set(outputs)) < len(outputs):
            raise self.refuse(f"model '{path or graph.name}' lists the same tensor twice among its outputs; "
                              "a spec lists each output once", "return each tensor once")
        used = set(inputs) | set(layers) | set(models) | set(names.values())
        edges = with_repeats(edges, used)
        edges, blocks = with_blocks(edges, used, next(iter(inputs)) if len(inputs) == 1 else None)
        result: dict[str, Any] = {"inputs": inputs}
        if layers:
            result["layers"] = layers
        if models:
            result["models"] = models
        if blocks:
            result["blocks"] = blocks
        result["edges"] = edges
        result["outputs"] = outputs
        return result

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
            class_name, args = next(iter(self.arguments.layer_def(layer, where, frozen).items()))
            base = snake_case(class_name)
            automatic = base if counts.get(base, 0) == 0 else f"{base}_{counts[base]}"
            if layer.name == automatic:
                counts[base] = counts.get(base, 0) + 1
            else:
                args = {**args, "name": layer.name}
            items.append({class_name: args} if args else class_name)
        spec["sequential"] = items
        return spec

    def input_spec(self, layer: Any, where: str) -> dict[str, Any]:
        """An input's shape, and its dtype, batch size, sparse and ragged where not the default."""
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
