"""Reading a Keras call graph: each call of a layer in a model, what it was given, and a file order.

The importer's intermediate form is a list of `Call`s, one per node that
belongs to the model, each knowing its layer, its node index, its inputs in
the form the spec's `in:` writes, and the calls it reads. Everything a spec
cannot say about a call (a non-tensor argument other than a constant, a
keras.ops operation, a nested structure of tensors) is refused here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Iterator

from .context import Context
from .values import same

__all__ = ["Call", "GraphReader", "is_tensor", "tensor_key", "tensors"]

# keras.ops operations that have a layer doing the same, for the refusal's hint.
_OP_LAYERS = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply", "Concatenate": "Concatenate",
              "Maximum": "Maximum", "Minimum": "Minimum", "Dot": "Dot", "Reshape": "Reshape",
              "Transpose": "Permute", "Relu": "ReLU", "Softmax": "Softmax", "Average": "Average"}


@dataclass
class Call:
    """One call of a layer (or sub-model, or operation) inside one model."""

    op: Any
    node: Any
    absolute: int  # the node's index among all of `op`'s calls (as in KerasTensor histories)
    index: int  # its index among this model's calls of `op`: the spec's node index
    inputs: Any = None  # the spec's `in`: None, a KerasTensor, a list of them, or a dict
    deps: list[tuple[int, int]] = field(default_factory=list)  # keys of the calls it reads
    name: str = ""
    output_names: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)  # the spec's `call`, e.g. training=True

    @property
    def key(self) -> tuple[int, int]:
        return id(self.op), self.absolute


def tensor_key(tensor: Any) -> tuple[int, int, int]:
    """(id of the operation, node index, tensor index) of the call that made `tensor`."""
    op, node_index, tensor_index = tensor._keras_history
    return id(op), node_index, tensor_index


def is_tensor(value: Any) -> bool:
    from keras import KerasTensor

    return isinstance(value, KerasTensor)


def tensors(value: Any) -> list[Any]:
    """The KerasTensors in a nested argument value."""
    if is_tensor(value):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tensors(item)]
    return []


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


class GraphReader:
    """Reads one functional graph's calls into `Call`s, in the order a spec lists them."""

    def __init__(self, context: Context):
        self.keras = context.keras
        self.refuse = context.refuse

    def read(self, graph: Any, prefix: str) -> tuple[list[Call], dict[int, int]]:
        """The graph's calls in file order, and the number of calls of each operation (by id).

        `prefix` (the sub-model's path and '/') names layers in refusals.
        """
        calls: dict[tuple[int, int], Call] = {}
        by_op: dict[int, list[Call]] = {}
        for op, node, absolute, index in _kept_nodes(graph):
            if isinstance(op, self.keras.layers.InputLayer):
                continue
            call = Call(op, node, absolute, index)
            calls[call.key] = call
            by_op.setdefault(id(op), []).append(call)
        counts = {op_id: len(op_calls) for op_id, op_calls in by_op.items()}
        for call in calls.values():
            if isinstance(call.op, self.keras.layers.Layer):  # an operation is refused once reached
                self.read_call_inputs(call, prefix)
            if call.index > 0:  # node k comes after node k-1 in file order
                call.deps.insert(0, by_op[id(call.op)][call.index - 1].key)
        return self.order(graph, calls, prefix), counts

    def read_call_inputs(self, call: Call, prefix: str) -> None:
        """What a call was given, as the spec's `in`, and the calls it depends on.

        Keras also records arguments it fills in itself (a mask carried by
        the input tensor, `training` from the call's signature, `mask=None`);
        the rebuilt model records them again, so they are left out. Other
        constants (`use_causal_mask=True`) become the spec's `call`.
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
            if not tensors(value):
                if _is_default_argument(name, value, params):
                    continue
                if not _is_constant(value) or params[name].kind is params[name].VAR_KEYWORD:
                    raise self.refuse(f"call {call.index} of '{where}' passes {name}={value!r}; a spec passes "
                                      "tensors ('in:') and constants ('call:': true, false, a number, a string "
                                      "or null) only",
                                      "call the layer without that argument before importing")
                call.constants[name] = value
                continue
            if _is_implicit_mask(name, value, bound):
                continue
            tensor_args[name] = value
        call.inputs = self.spec_inputs(call, where, tensor_args, list(params))
        for tensor in tensors(call.inputs):
            producer = tensor._keras_history[0]
            if not isinstance(producer, self.keras.layers.InputLayer):
                call.deps.append(tensor_key(tensor)[:2])

    def spec_inputs(self, call: Call, where: str, tensor_args: dict[str, Any], params: list[str]) -> Any:
        """The call's tensors in a form `in:` can write: one, a flat list, or a mapping."""
        is_model = isinstance(call.op, self.keras.Model)
        if not tensor_args:
            raise self.refuse(f"call {call.index} of '{where}' is given no tensor; a spec calls layers on tensors")
        for name, value in tensor_args.items():
            flat = isinstance(value, (list, tuple)) and all(is_tensor(v) for v in value)
            by_name = isinstance(value, dict) and is_model and all(is_tensor(v) for v in value.values())
            if not (is_tensor(value) or flat or by_name) or (by_name and len(tensor_args) > 1):
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

    def order(self, graph: Any, calls: dict[tuple[int, int], Call], prefix: str) -> list[Call]:
        """Calls in a file order: each after what it reads, each shared layer's nodes in node order.

        A depth-first walk from the outputs, in output order, writes a chain
        of layers one after the other, as a person would.
        """
        done: set[tuple[int, int]] = set()
        order: list[Call] = []
        stack: list[tuple[tuple[int, int], bool]] = []
        for tensor in reversed(graph.outputs):
            key = tensor_key(tensor)[:2]
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
                raise self.refuse(*_operation_refusal(call.op, prefix))
        for key, call in calls.items():  # only the implicit mask computations are not reached
            if key not in done and isinstance(call.op, self.keras.layers.Layer):
                raise self.refuse(f"call {call.index} of '{prefix}{call.op.name}' is not reached from the "
                                  "model's outputs through its inputs")
        return order


def _is_default_argument(name: str, value: Any, params: Any) -> bool:
    """A non-tensor argument the rebuilt call gets anyway: its signature's default."""
    param = params.get(name)
    if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        return False
    return param.default is not inspect.Parameter.empty and same(value, param.default)


def _is_constant(value: Any) -> bool:
    """A value a spec's `call:` can write (a numpy scalar is not one: YAML would not read it back the same)."""
    return value is None or type(value) in (bool, int, float, str)


def _is_implicit_mask(name: str, value: Any, bound: dict[str, Any]) -> bool:
    """`mask` (or `X_mask`) that is the mask Keras attached to the tensor it masks."""
    if name == "mask":
        masked = next(iter(bound.values()))
    elif name.endswith("_mask") and name[:-5] in bound:
        masked = bound[name[:-5]]
    else:
        return False
    from keras.src.backend import get_keras_mask

    masks, masked_tensors = tensors(value), tensors(masked)
    return len(masks) == len(masked_tensors) and all(m is get_keras_mask(t) for m, t in zip(masks, masked_tensors))


def _operation_refusal(op: Any, prefix: str) -> tuple[str, str]:
    """The message and hint that refuse a keras.ops operation, naming a layer that does the same."""
    cls = type(op).__name__
    layer = _OP_LAYERS.get(cls)
    hint = (f"use the layer keras.layers.{layer} instead" if layer
            else "do it with a layer from keras.layers instead")
    return (f"'{prefix}{op.name}' is a keras.ops operation ({cls}), not a layer: Keras records one for "
            "tensor arithmetic such as x + y, or a keras.ops call on a model's tensors; a spec has no "
            "form for it", hint)
