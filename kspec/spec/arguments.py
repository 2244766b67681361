"""The kinds of value layer, optimizer, loss, metric, initializer, regularizer
and constraint arguments take, checked without Keras.

The catalogue records each argument's kind: the kind of its default value
(`use_bias=True` takes a bool), or, for a required argument, the kind its
docstring names ("units: Positive integer"). A value of another kind is
refused here, at its own line, rather than by Keras at build time or, worse,
halfway through training. Only what Keras itself would refuse (or silently
misread, like `use_bias: 3`) is refused: an integer where a float goes, a
list of numbers where a number goes, and null are left to Keras.

Some arguments are known by their name instead: activations, initializers,
regularizers and constraints take a name or a `{Class: {args}}` of their own
module, and the `dtype` of a layer with trainable weights must be a float.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import Diagnostic, did_you_mean
from .load import YMap, YNode, YScalar, YSeq, to_python
from .model import LayerDef

_ACTIVATION_ARGS = ("activation", "recurrent_activation")
# Argument name ending -> the catalogue group its objects come from.
_OBJECT_ARGS = {"_initializer": "initializers", "_regularizer": "regularizers", "_constraint": "constraints"}
_NOT_FLOAT_DTYPES = ("int", "uint", "bool", "string", "str", "complex")
_EXPECTED = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "tuple": "an integer or a list of integers",
    "str": "a string",
}
_EXAMPLES = {"bool": "true", "int": "2", "float": "0.5", "tuple": "[2, 2]"}
_ARTICLES = {"initializers": "an initializer", "regularizers": "a regularizer", "constraints": "a constraint"}


def check_layer_arguments(layer: LayerDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """The value of each known argument of a layer is of the kind the argument takes."""
    info = catalogue["layers"].get(layer.class_name)
    if info is None:
        return
    for arg, (_, node) in layer.arg_nodes.items():
        if arg not in info["args"] or arg in info["deprecated"]:
            continue  # reported by the caller
        owner, group = layer.class_name, _object_group(arg)
        if arg in _ACTIVATION_ARGS:
            yield from _check_activation(node, arg, owner)
        elif group is not None:
            yield from _check_object(node, arg, owner, catalogue[group], group)
        elif arg == "dtype":
            yield from _check_dtype(node, owner, info)
        else:
            yield from _check_kind(node, arg, owner, info.get("kinds", {}).get(arg))


def check_class_arguments(args_node: YMap, owner: str, kinds: dict[str, str]) -> Iterator[Diagnostic]:
    """The arguments of `{Class: {args}}` in an optimizer, loss or metric setting."""
    for arg, _, node in args_node.items():
        yield from _check_kind(node, arg, owner, kinds.get(arg))


def _object_group(arg: str) -> str | None:
    return next((group for end, group in _OBJECT_ARGS.items() if arg.endswith(end)), None)


# ----------------------------------------------------------------- by kind
def _check_kind(node: YNode, arg: str, owner: str, kind: str | None) -> Iterator[Diagnostic]:
    if kind is None or kind == "None" or _is_null(node):
        return
    wrong = _wrong_value(node, kind)
    if wrong is not None:
        yield _refusal(wrong, arg, owner, kind, in_list=wrong is not node)


def _wrong_value(node: YNode, kind: str) -> YNode | None:
    """The node (itself, or an item inside a list) whose value `kind` cannot take."""
    if isinstance(node, YMap):
        return node
    if isinstance(node, YSeq):
        if kind in ("bool", "str"):
            return node
        # A list where a number goes is Keras's to judge (many take per-axis lists), but not its items.
        return next((bad for item in node.items if (bad := _wrong_value(item, "tuple")) is not None), None)
    value = node.value if isinstance(node, YScalar) else None
    if kind == "bool":
        return None if isinstance(value, bool) else node
    if kind == "str":  # a bool too: some take a flag or a mode ('use_cudnn: auto')
        return node if _is_number(value) else None
    return None if value is None or _is_number(value) else node


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def _refusal(node: YNode, arg: str, owner: str, kind: str, in_list: bool = False) -> Diagnostic:
    value = to_python(node)
    received = f"its list holds {_describe(value)}" if in_list else f"not {_describe(value)}"
    hint = f"e.g. '{arg}: {_EXAMPLES[kind]}'" if kind in _EXAMPLES else \
        f"Keras's documentation of {owner} lists the values '{arg}' takes"
    if isinstance(value, str) and kind in ("int", "float", "tuple") and _looks_numeric(value):
        hint = f"write the number without quotes: '{arg}: {value.strip()}'"
    elif kind == "bool":
        hint = f"write '{arg}: true' or '{arg}: false'"
    return Diagnostic(node.loc, f"argument '{arg}' of {owner} takes {_EXPECTED[kind]}, {received}", hint)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {_short(repr(value))}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"the list {_short(repr(value))}"
    if isinstance(value, dict) and len(value) == 1:
        return f"a mapping ({next(iter(value))}: ...)"
    return f"a mapping ({_short(repr(value))})"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ----------------------------------------------------------------- by name
def _check_activation(node: YNode, arg: str, owner: str) -> Iterator[Diagnostic]:
    """An activation is a name (checked in semantics.py) or null; a layer there would escape the model."""
    if isinstance(node, YScalar) and (node.value is None or isinstance(node.value, str)):
        return
    yield Diagnostic(node.loc, f"argument '{arg}' of {owner} takes the name of an activation function, "
                     f"not {_describe(to_python(node))}",
                     "e.g. 'activation: relu'; to apply a layer (such as LeakyReLU), give it its own edge")


def _check_object(node: YNode, arg: str, owner: str, known: dict[str, Any], group: str) -> Iterator[Diagnostic]:
    """An initializer, regularizer or constraint: null, a name, or {Class: {args}} of its module."""
    what = group[:-1]
    example = known["strings"][0] if known["strings"] else "null"
    if isinstance(node, YScalar) and isinstance(node.value, str) and group != "initializers":
        names = known["strings"] + list(known["classes"])  # initializer names are checked in semantics.py
        if node.value not in names:
            yield Diagnostic(node.loc, f"unknown {what} '{node.value}' for {owner}{did_you_mean(node.value, names)}",
                             f"{group}: {', '.join(known['strings'])}, or a class with its arguments")
        return
    if isinstance(node, YScalar) and (node.value is None or isinstance(node.value, str)):
        return
    if isinstance(node, YMap) and len(node.entries) == 1:
        class_name, key_node, args_node = next(node.items())
        classes = known["classes"]
        if class_name not in classes:
            yield Diagnostic(key_node.loc, f"unknown {what} class '{class_name}' in argument '{arg}' of {owner}"
                             f"{did_you_mean(class_name, classes)}", f"use a class of keras.{group}")
            return
        if isinstance(args_node, YMap):
            yield from _check_known_arguments(args_node, class_name, classes[class_name],
                                              known.get("kinds", {}).get(class_name, {}))
        elif not _is_null(args_node):
            yield Diagnostic(args_node.loc, f"arguments of {what} {class_name} must be a mapping",
                             f"e.g. '{arg}: {{{class_name}: {{}}}}'")
        return
    yield Diagnostic(node.loc, f"argument '{arg}' of {owner} takes the name of {_ARTICLES[group]} or "
                     f"{{Class: {{arguments}}}}, not {_describe(to_python(node))}",
                     f"e.g. '{arg}: {example}', or a class of keras.{group} with its arguments")


def _check_known_arguments(args_node: YMap, class_name: str, accepted: list[str],
                           kinds: dict[str, str]) -> Iterator[Diagnostic]:
    for arg, key_node, node in args_node.items():
        if arg not in accepted:
            yield Diagnostic(key_node.loc, f"unknown argument '{arg}' for {class_name}"
                             f"{did_you_mean(arg, accepted)}", f"{class_name} takes: {', '.join(accepted)}")
        else:
            yield from _check_kind(node, arg, class_name, kinds.get(arg))


def _check_dtype(node: YNode, owner: str, info: dict[str, Any]) -> Iterator[Diagnostic]:
    """A layer with trainable weights (it has an initializer) computes in floats: gradients need them."""
    value = node.value if isinstance(node, YScalar) else None
    if not isinstance(value, str):
        return
    has_weights = any(arg.endswith("_initializer") for arg in info["args"])
    if has_weights and value.lower().startswith(_NOT_FLOAT_DTYPES):
        yield Diagnostic(node.loc, f"{owner} has trainable weights, which cannot have dtype '{value}'; "
                         "gradients need a float dtype", "use float32 (the default), float16, bfloat16 or "
                         "float64; integer ids go to an input with 'dtype: int32'")
