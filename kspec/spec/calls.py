"""The call graph a spec describes: what each edge is called on, node indices, and its keywords' checks.

A declared layer is one Keras layer; each edge that calls it is one node of
it, numbered in file order (the order Python would call it in).
"""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import Diagnostic, Location, did_you_mean
from .model import CallInputs, Constant, Edge, LayerDef, ModelDef, Ref


def call_inputs(model: ModelDef, index: int) -> CallInputs:
    """What edge `index` is called on; an edge without `in` takes the tensor above.

    The tensor above is the previous edge's output, or, for the first edge,
    the model's only input. Returns None when there is no such tensor.
    """
    edge = model.edges[index]
    if edge.inputs is not None:
        return edge.inputs
    if index > 0:
        previous = model.edges[index - 1]
        return Ref(previous.name, edge.loc)
    if len(model.inputs) == 1:
        return Ref(model.inputs[0].name, edge.loc)
    return None


def node_indices(model: ModelDef) -> dict[int, int]:
    """Edge index -> node index of the declared layer or sub-model it calls."""
    counts: dict[str, int] = {}
    result: dict[int, int] = {}
    for index, edge in enumerate(model.edges):
        if edge.target is None:
            continue
        node = counts.get(edge.target.name, 0)
        counts[edge.target.name] = node + 1
        result[index] = node
    return result


# ------------------------------------------------------------------ checks
# What calling a sub-model takes besides its inputs (keras.Model.call's `training`).
_MODEL_CALL = {"params": ["inputs", "training"], "kinds": {"training": "bool"}, "var_keyword": False}
_EXPECTED = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
             "tuple": "a list"}
_EXAMPLES = {"bool": "true", "int": "2", "float": "0.5", "str": "'same'", "tuple": "[1, 2]"}


def check_call_keywords(model: ModelDef, edge: Edge, inputs: CallInputs,
                        catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """Keyword tensors (`in: {query: q}`) and constants (`call: {training: true}`) against the layer's call."""
    found = _call_signature(model, edge, catalogue)
    if found is None:
        return
    owner, call = found
    if isinstance(inputs, dict) and not call["var_keyword"] and call is not _MODEL_CALL:  # a sub-model's: its inputs
        for key in inputs:
            if key not in call["params"]:
                yield Diagnostic(edge.inputs_loc, f"{owner} is not called with a tensor '{key}'"
                                 f"{did_you_mean(key, call['params'])}",
                                 f"its call takes: {', '.join(call['params'])}")
    if not edge.constants:
        return
    tensors = {ref.name for e in model.edges for ref in e.tensor_names()} | {inp.name for inp in model.inputs}
    for key, constant in edge.constants.items():
        if key not in call["params"] and not call["var_keyword"]:
            yield Diagnostic(constant.key_loc, f"the call of {owner} takes no argument '{key}'"
                             f"{did_you_mean(key, call['params'])}",
                             f"its call takes: {', '.join(call['params'])}")
        elif not isinstance(inputs, dict) and call["params"] and key == call["params"][0]:
            yield Diagnostic(constant.key_loc, f"'{key}' of the call of {owner} is what 'in' gives it",
                             f"remove '{key}' from 'call'")
        else:
            yield from _check_constant(owner, key, constant, call["kinds"].get(key), tensors)


def _call_signature(model: ModelDef, edge: Edge, catalogue: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """Who is called (for messages) and the catalogue's entry for its call; None when unknown."""
    if edge.target is not None and edge.target.name in model.models:
        return f"sub-model '{edge.target.name}'", _MODEL_CALL
    layer = edge.layer
    if layer is None and edge.target is not None:
        layer = model.layers.get(edge.target.name)
    if layer is None or layer.class_name not in catalogue["layers"]:
        return None  # an unknown class or name is reported elsewhere
    return layer.class_name, catalogue["layers"][layer.class_name]["call"]


def _check_constant(owner: str, key: str, constant: Constant, kind: str | None,
                    tensors: set[str]) -> Iterator[Diagnostic]:
    value = constant.value
    if isinstance(value, str) and value in tensors and kind != "str":
        yield Diagnostic(constant.loc, f"'{value}' in 'call' is a string, not the tensor '{value}'",
                         f"give tensors in 'in' by keyword: 'in: {{{key}: {value}}}'")
    elif value is not None and kind is not None and not _is_kind(value, kind):
        yield Diagnostic(constant.loc, f"call argument '{key}' of {owner} must be {_EXPECTED[kind]}, "
                         f"got {_written(value)}", f"e.g. '{key}: {_EXAMPLES[kind]}'")


def _is_kind(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "bool"
    if isinstance(value, int):
        return kind in ("int", "float")
    if isinstance(value, float):
        return kind == "float"
    return kind == "str" and isinstance(value, str)


def _written(value: Any) -> str:
    """A constant as the spec wrote it, for messages."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f'the string "{value}"'


# ------------------------------------------------------------------ wrappers
# A wrapper's arguments that take a layer (Bidirectional, TimeDistributed): given
# a name, they wrap that declared layer or sub-model itself.
LAYER_ARGUMENTS = ("layer", "backward_layer")


def wrapped(layer: LayerDef) -> Iterator[tuple[str, Location]]:
    """The declared layers or sub-models a layer's arguments name: `{TimeDistributed: {layer: vision_model}}`."""
    for arg in LAYER_ARGUMENTS:
        value = layer.args.get(arg)
        if isinstance(value, str):
            yield value, layer.arg_nodes[arg][1].loc if arg in layer.arg_nodes else layer.loc


def wrappers(model: ModelDef) -> Iterator[tuple[str, LayerDef]]:
    """(layer name, layer) of every layer a model defines: declared, inline and sequential."""
    yield from model.layers.items()
    yield from ((edge.name, edge.layer) for edge in model.edges if edge.layer is not None)
    yield from model.sequence


def check_wrapped(model: ModelDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """Each name a wrapper gives is a layer or sub-model of the same model, and none wraps itself.

    Bidirectional's must be a recurrent layer: the classes whose call takes `sequences` first.
    """
    callables = list(model.layers) + list(model.models)
    for owner, layer in wrappers(model):
        for name, loc in wrapped(layer):
            if name not in callables:
                yield Diagnostic(loc, f"unknown layer or model '{name}' in {layer.class_name} '{owner}'"
                                 f"{did_you_mean(name, callables)}",
                                 "name a layer declared under 'layers:' or a sub-model under 'models:', "
                                 "or write the layer inline, e.g. '{LSTM: {units: 32}}'")
            elif _wraps(model, name, owner):
                through = f" through '{name}'" if name != owner else ""
                yield Diagnostic(loc, f"{layer.class_name} '{owner}' wraps itself{through}",
                                 "a wrapper wraps another layer; declare the wrapped layer apart")
            elif layer.class_name == "Bidirectional" and not _recurrent(model, name, catalogue):
                yield Diagnostic(loc, f"Bidirectional '{owner}' wraps '{name}', which is not a recurrent layer",
                                 "name a declared LSTM, GRU, SimpleRNN, RNN or ConvLSTM layer")


def _recurrent(model: ModelDef, name: str, catalogue: dict[str, Any]) -> bool:
    """Whether the declared layer `name` is recurrent; an unknown class is reported elsewhere."""
    layer = model.layers.get(name)
    if layer is None:
        return False  # a sub-model
    info = catalogue["layers"].get(layer.class_name)
    return info is None or (info["call"]["params"][:1] == ["sequences"] and layer.class_name != "Bidirectional")


def _wraps(model: ModelDef, start: str, target: str) -> bool:
    """Whether the declared layer `start` is, or wraps at any depth, the layer `target`."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name in seen or name not in model.layers:
            continue
        seen.add(name)
        todo.extend(inner for inner, _ in wrapped(model.layers[name]))
    return False
