"""Keras operations, and helper layers of keras.applications, as the keras.layers that compute the same.

A functional model may hold calls a spec cannot name: keras.ops arithmetic
that Keras records for `a + b` or `x * 0.5` (MobileNetV3's hard sigmoid,
ConvNeXt's residual sums), and a layer class of keras.applications' own
modules (InceptionResNetV2's CustomScaleLayer). Each one below is replaced by
keras.layers that compute the same, named after it, before the graph is read:

    a + b, a - b, a * b (tensors of one shape)  ->  Add, Subtract, Multiply
    x + c, x - c, c - x, x * c, c * x, x / c    ->  Rescaling(scale, offset)   (c a Python number)
    CustomScaleLayer(scale)([a, b])             ->  Add([a, Rescaling(scale)(b)])

All are exact except x / c, which becomes x * (1 / c) (float rounding). The
stand-ins hold no weights, so the weights of a .keras file still load into
the model built from the spec. Anything else is left for the reader to refuse.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["with_standins"]

_MERGES = {"Add": "Add", "Subtract": "Subtract", "Multiply": "Multiply"}
_SCALED = ("Add", "Subtract", "Multiply", "TrueDivide")
_APPLICATION_LAYERS = ("keras.src.applications.inception_resnet_v2.CustomScaleLayer",)


def with_standins(keras: Any, graph: Any) -> Any:
    """`graph` itself, or a functional model of its own layers with each replaceable call replaced."""
    if not any(_standin(keras, node) is not None for node in _nodes(graph)):
        return graph
    replaced = {id(node.operation): _standin(keras, node) for node in _nodes(graph)}
    inputs = [_new_input(keras, tensor) for tensor in graph.inputs]

    def operation(op: Any) -> Any:
        return replaced.get(id(op)) or op

    outputs = graph._run_through_graph(inputs, operation_fn=operation)
    from keras import tree

    return keras.Model(tree.pack_sequence_as(graph._inputs_struct, inputs), outputs, name=graph.name)


def _nodes(graph: Any) -> list[Any]:
    return [node for nodes in graph._nodes_by_depth.values() for node in nodes if node.operation is not None]


def _new_input(keras: Any, tensor: Any) -> Any:
    """A new input like `tensor`'s (same name, shape and dtype): the rewritten graph starts there."""
    layer = tensor._keras_history[0]
    return keras.layers.InputLayer.from_config(layer.get_config()).output


def _standin(keras: Any, node: Any) -> Callable[..., Any] | None:
    """What computes `node`'s call with keras.layers, or None when it is not replaced."""
    op = node.operation
    cls = type(op)
    if f"{cls.__module__}.{cls.__qualname__}" in _APPLICATION_LAYERS:  # a + b * scale
        scale = op.get_config()["scale"]
        return lambda inputs: keras.layers.Add(name=op.name)(
            [inputs[0], keras.layers.Rescaling(scale, name=f"{op.name}_scale")(inputs[1])])
    if isinstance(op, keras.layers.Layer) or cls.__module__ != "keras.src.ops.numpy" or node.arguments.kwargs:
        return None
    args = node.arguments.args
    if len(args) != 2:
        return None
    first, second = (_is_tensor(keras, arg) for arg in args)
    name = cls.__name__
    if first and second and name in _MERGES and tuple(args[0].shape) == tuple(args[1].shape):
        merge = getattr(keras.layers, _MERGES[name])
        return lambda a, b: merge(name=op.name)([a, b])
    if first == second or name not in _SCALED or not _is_number(args[1] if first else args[0]):
        return None
    scale, offset = _rescaling(name, float(args[1] if first else args[0]), constant_first=second)
    if scale is None:
        return None
    return lambda a, b: keras.layers.Rescaling(scale, offset, name=op.name)(a if first else b)


def _rescaling(name: str, constant: float, constant_first: bool) -> tuple[float | None, float]:
    """(scale, offset) such that x * scale + offset is the operation with `constant`."""
    if name == "Add":
        return 1.0, constant
    if name == "Subtract":
        return (-1.0, constant) if constant_first else (1.0, -constant)
    if name == "Multiply":
        return constant, 0.0
    if constant_first or constant == 0:  # c / x is not a rescaling
        return None, 0.0
    return 1.0 / constant, 0.0


def _is_tensor(keras: Any, value: Any) -> bool:
    return isinstance(value, keras.KerasTensor)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
