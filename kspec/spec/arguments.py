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
module, wrapped layers and RNN cells a layer class, an optimizer's
`learning_rate` a number or a schedule of keras.optimizers.schedules, and the
`dtype` of a layer with trainable weights must be a float. A `{Class: {args}}`
anywhere else in a layer's arguments must name a class kspec can build; each
class is checked where it sits, at any depth (a layer inside a wrapper is
checked as a layer by semantics.py, which calls back here).
"""

from __future__ import annotations

from typing import Any, Iterator

from .. import catalogue as catalogue_module
from ..errors import Diagnostic, did_you_mean
from .load import YMap, YNode, YScalar, YSeq, maps_within, to_python
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
_ARTICLES = {"initializers": "an initializer", "regularizers": "a regularizer", "constraints": "a constraint",
             "layers": "a layer"}
# Arguments that take a layer class, or a list of them (an RNN's cells, a Pipeline's layers).
LAYER_ARGS = ("layer", "backward_layer", "cell", "cells", "layers")
# The catalogue groups whose classes the builder turns `{Class: {args}}` into.
_BUILT_GROUPS = ("layers", "initializers", "regularizers", "constraints")


def check_layer_arguments(layer: LayerDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """The value of each known argument of a layer is of the kind the argument takes."""
    info = catalogue["layers"].get(layer.class_name)
    if info is None:
        return
    for arg, (_, node) in layer.arg_nodes.items():
        if arg not in info["args"] or arg in info["deprecated"]:
            continue  # reported by the caller
        owner, group = layer.class_name, _object_group(arg)
        kind = info.get("kinds", {}).get(arg)
        if arg in _ACTIVATION_ARGS:
            yield from _check_activation(node, arg, owner)
        elif group is not None:
            yield from _check_object(node, arg, owner, catalogue[group], group, catalogue)
        elif arg in LAYER_ARGS:
            yield from _check_classes_within(node, arg, owner, catalogue, "layers")
        elif arg == "dtype":
            yield from _check_dtype(node, owner, info)
        elif kind in (None, "None"):
            yield from _check_classes_within(node, arg, owner, catalogue, None)
        else:
            yield from _check_kind(node, arg, owner, kind)


def takes_layer_classes(arg: str) -> bool:
    """Whether a `{LayerClass: {...}}` in this argument is a layer to check as one (not a wrong kind)."""
    return arg not in _ACTIVATION_ARGS and _object_group(arg) is None


def check_class_arguments(args_node: YMap, owner: str, kinds: dict[str, str]) -> Iterator[Diagnostic]:
    """The arguments of `{Class: {args}}` in an optimizer, loss or metric setting."""
    for arg, _, node in args_node.items():
        if arg == "learning_rate" and isinstance(node, YMap):  # an optimizer's schedule
            yield from _check_schedule(node, owner, catalogue_module.load()["schedules"])
        else:
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


def _check_object(node: YNode, arg: str, owner: str, known: dict[str, Any], group: str,
                  catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
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
        if class_name not in known["classes"]:
            yield _unknown_class(class_name, key_node, arg, owner, catalogue, group)
        else:
            yield from _check_class_arguments(class_name, key_node, args_node, known, what, arg)
        return
    yield Diagnostic(node.loc, f"argument '{arg}' of {owner} takes the name of {_ARTICLES[group]} or "
                     f"{{Class: {{arguments}}}}, not {_describe(to_python(node))}",
                     f"e.g. '{arg}: {example}', or a class of keras.{group} with its arguments")


# ------------------------------------------------------- classes within
def _class_entry(mapping: YMap) -> tuple[str, YScalar] | None:
    """(class, key) of a `{ClassName: {args}}` mapping (as the builder reads one), else None."""
    if len(mapping.entries) != 1:
        return None
    class_name, key_node, args_node = next(mapping.items())
    if class_name[:1].isupper() and (isinstance(args_node, YMap) or _is_null(args_node)):
        return class_name, key_node
    return None


def _check_classes_within(node: YNode, arg: str, owner: str, catalogue: dict[str, Any],
                          group: str | None) -> Iterator[Diagnostic]:
    """Each `{Class: {...}}` in an argument, in lists too, names a class of `group` (None: any the builder makes).

    Its own arguments are checked where it is checked as a class: a layer by
    semantics.check_layer, an initializer by its layer's argument check.
    """
    for mapping in maps_within(node, lambda m: _class_entry(m) is None):
        entry = _class_entry(mapping)
        if entry is None:
            continue
        class_name, key_node = entry
        found = _groups_of(class_name, catalogue)
        if (group in found) if group is not None else found:
            continue
        yield _unknown_class(class_name, key_node, arg, owner, catalogue, group)


def _groups_of(class_name: str, catalogue: dict[str, Any]) -> list[str]:
    """The catalogue groups with a class of this name (a refused layer is a layer: refused elsewhere)."""
    found = [group for group in _BUILT_GROUPS[1:] if class_name in catalogue[group]["classes"]]
    if class_name in catalogue["layers"] or class_name in catalogue_module.REFUSED_LAYERS:
        found.insert(0, "layers")
    return found


def _unknown_class(class_name: str, key_node: YScalar, arg: str, owner: str, catalogue: dict[str, Any],
                   group: str | None) -> Diagnostic:
    """A class that is not of the group the argument takes: of another group, or of none."""
    found = _groups_of(class_name, catalogue)
    if group is not None and found:
        return Diagnostic(key_node.loc, f"argument '{arg}' of {owner} takes {_ARTICLES[group]}, not the "
                          f"{found[0][:-1]} class '{class_name}'", f"use a class of keras.{group}")
    if group is not None:
        names = list(catalogue[group]) if group == "layers" else list(catalogue[group]["classes"])
        return Diagnostic(key_node.loc, f"unknown {group[:-1]} class '{class_name}' in argument '{arg}' of "
                          f"{owner}{did_you_mean(class_name, names)}", f"use a class of keras.{group}")
    names = list(catalogue["layers"]) + [name for g in _BUILT_GROUPS[1:] for name in catalogue[g]["classes"]]
    return Diagnostic(key_node.loc, f"unknown class '{class_name}' in argument '{arg}' of {owner}"
                      f"{did_you_mean(class_name, names)}", "a {Class: {arguments}} value names a class of "
                      "keras.layers, keras.initializers, keras.regularizers or keras.constraints")


def _check_schedule(node: YMap, owner: str, schedules: dict[str, Any]) -> Iterator[Diagnostic]:
    """An optimizer's learning rate as {Schedule: {args}} of keras.optimizers.schedules."""
    classes = schedules["classes"]
    if len(node.entries) != 1:
        yield Diagnostic(node.loc, f"argument 'learning_rate' of {owner} takes a number or one schedule "
                         f"{{Class: {{arguments}}}}, not {_describe(to_python(node))}",
                         f"e.g. 'learning_rate: 0.001', or a schedule: {', '.join(classes)}")
        return
    class_name, key_node, args_node = next(node.items())
    if class_name not in classes:
        yield Diagnostic(key_node.loc, f"unknown learning-rate schedule '{class_name}' in argument 'learning_rate' "
                         f"of {owner}{did_you_mean(class_name, classes)}",
                         f"schedules (keras.optimizers.schedules): {', '.join(classes)}")
        return
    yield from _check_class_arguments(class_name, key_node, args_node, schedules, "schedule", "learning_rate")


def _check_class_arguments(class_name: str, key_node: YScalar, args_node: YNode, known: dict[str, Any],
                           what: str, arg: str) -> Iterator[Diagnostic]:
    """The arguments of a known `{Class: {args}}`: a mapping (or null) of accepted names, none missing."""
    given: list[str] = []
    if isinstance(args_node, YMap):
        given = [name for name, _, _ in args_node.items()]
        yield from _check_known_arguments(args_node, class_name, known["classes"][class_name],
                                          known.get("kinds", {}).get(class_name, {}))
    elif not _is_null(args_node):
        yield Diagnostic(args_node.loc, f"arguments of {what} {class_name} must be a mapping",
                         f"e.g. '{arg}: {{{class_name}: {{}}}}'")
        return
    yield from missing_arguments(class_name, key_node, given, known, what)


def missing_arguments(class_name: str, key_node: YScalar, given: list[str], known: dict[str, Any],
                      what: str) -> Iterator[Diagnostic]:
    """The arguments a class of a catalogue group requires that are not given (nor misspelled: reported)."""
    misspelled = [name for name in given if name not in known["classes"][class_name]]
    for required in known.get("required", {}).get(class_name, []):
        if required not in given and not any(did_you_mean(name, [required]) for name in misspelled):
            yield Diagnostic(key_node.loc, f"{what} {class_name} requires argument '{required}'",
                             f"add '{required}: ...' to its arguments")


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
