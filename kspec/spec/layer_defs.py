"""Layer classes with their arguments: shared 'layers', inline edge layers, sequential layers -> LayerDef."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import Location, did_you_mean
from .keys import key_names
from .load import YMap, YNode, YScalar, maps_within, to_python, type_name
from .model import LayerDef
from .paths import FILE_ARGUMENTS, MAX_ARGUMENT_FILE_BYTES

if TYPE_CHECKING:
    from .parse import Parser

LAYER_KEYS = key_names("layer")  # declared in keys.py; a declared layer's other key names its class


def parse_layers(parser: Parser, node: YNode | None) -> dict[str, LayerDef]:
    layers: dict[str, LayerDef] = {}
    if node is None:
        return layers
    if isinstance(node, YScalar) and node.value is None:
        return layers  # an empty section
    mapping = parser.expect_map(node, "'layers'", "map each shared layer's name to its class, e.g. 'lstm: {LSTM: {units: 32}}'")
    if mapping is None:
        return layers
    for name, key_node, body in mapping.items():
        if not parser.check_name(name, key_node.loc, "layer"):
            continue
        adapt_node = None
        if isinstance(body, YMap) and any(key in LAYER_KEYS for key in body.entries):
            body, adapt_node = _split_layer_keys(parser, name, body)
            if body is None:
                continue
        layer = parse_layer_def(parser, body, f"layer '{name}'")
        if layer is not None:
            layer = replace(layer, adapt=parse_adapt(parser, adapt_node, f"layer '{name}'"))
            if "name" in layer.args:
                parser.error(layer.arg_nodes["name"][0], f"layer '{name}' sets 'name' in its arguments",
                             "the key under 'layers:' is already the layer's name; remove 'name'")
            layers[name] = replace(layer, name_loc=key_node.loc)
    return layers


def _split_layer_keys(parser: Parser, name: str, body: YMap) -> tuple[YMap | None, YNode | None]:
    """`{Normalization: {...}, adapt: true}` -> the class mapping alone, and the 'adapt' node."""
    classes = {key: entry for key, entry in body.entries.items() if key not in LAYER_KEYS}
    if len(classes) != 1:
        where = body.key_loc(list(classes)[1]) if classes else body.loc
        parser.error(where, f"layer '{name}' must name one layer class beside "
                     + ", ".join(f"'{key}'" for key in LAYER_KEYS) + f", got {len(classes)}" + (f" ({', '.join(classes)})" if classes else "")
                     + (did_you_mean(list(classes)[1], LAYER_KEYS) if len(classes) > 1 else ""),
                     "e.g. '{Normalization: {axis: -1}, adapt: true}'")
        return None, None
    return YMap(body.loc, entries=classes), body.get("adapt")


def parse_adapt(parser: Parser, node: YNode | None, what: str) -> bool:
    """`adapt: true` on a declared or inline layer; whether its class can be adapted is semantics.py's check."""
    if node is None:
        return False
    if isinstance(node, YScalar) and isinstance(node.value, bool):
        return node.value
    parser.error(node.loc, f"'adapt' of {what} must be true or false, got {type_name(node)}",
                 "write 'adapt: true' to fit the layer to the training data")
    return False


def parse_layer_def(parser: Parser, node: YNode, what: str) -> LayerDef | None:
    """`Dense` or `{Dense: {units: 64}}` -> LayerDef."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return LayerDef(node.value, node.loc, {})
    if not isinstance(node, YMap) or len(node.entries) != 1:
        parser.error(node.loc, f"{what} must name one layer class with its arguments, got "
                     + (f"{len(node.entries)} keys" if isinstance(node, YMap) else type_name(node)),
                     "e.g. '{Dense: {units: 64, activation: relu}}'")
        return None
    class_name, key_node, args_node = next(node.items())
    return make_layer_def(parser, class_name, key_node.loc, args_node, what)


def make_layer_def(parser: Parser, class_name: str, loc: Location, args_node: YNode, what: str) -> LayerDef | None:
    if isinstance(args_node, YScalar) and args_node.value is None:
        return LayerDef(class_name, loc, {})
    if not isinstance(args_node, YMap):
        parser.error(args_node.loc,
                     f"arguments of {class_name} in {what} must be a mapping, got {type_name(args_node)}",
                     f"name each argument as Keras does, e.g. '{class_name}: {{units: 64}}'")
        return None
    resolve_file_arguments(parser, class_name, args_node)
    args = {key: to_python(value) for key, _, value in args_node.items()}
    arg_nodes = {key: (key_node.loc, value) for key, key_node, value in args_node.items()}
    return LayerDef(class_name, loc, args, arg_nodes)


def resolve_file_arguments(parser: Parser, class_name: str, args_node: YMap) -> None:
    """Arguments Keras reads as files (a vocabulary path), in this layer or nested at any depth.

    Each is checked like an include and replaced by its absolute path, so
    Keras reads the file the spec names, whatever the working directory.
    """
    layers = [(class_name, args_node)]
    for mapping in maps_within(args_node):
        if len(mapping.entries) == 1:
            nested_class, _, nested_args = next(mapping.items())
            if isinstance(nested_args, YMap):
                layers.append((nested_class, nested_args))
    for name, arguments in layers:
        for argument in FILE_ARGUMENTS.get(name, ()):
            value = arguments.get(argument)
            if isinstance(value, YScalar) and isinstance(value.value, str):
                path = parser.referenced_file(value, parser.file, argument, "give a list of values, or "
                                              "the path of a file in the spec's folder", MAX_ARGUMENT_FILE_BYTES)
                value.value = str(path) if path is not None else value.value
