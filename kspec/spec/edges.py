"""A model's 'edges' (one layer call each: its layer, 'in', 'call', 'repeat', 'outputs') and its 'outputs' -> Edge, Ref."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import Location, did_you_mean
from .keys import MAX_REPEAT, key_names
from .layer_defs import make_layer_def, parse_adapt
from .load import YMap, YNode, YScalar, YSeq, type_name
from .model import CallInputs, Constant, Edge, LayerDef, Ref

if TYPE_CHECKING:
    from .parse import Parser

EDGE_KEYS = key_names("edge")  # declared in keys.py; any other key of an edge names its layer class


def parse_edges(parser: Parser, node: YNode | None) -> tuple[Edge, ...]:
    if node is None:
        return ()
    mapping = parser.expect_map(node, "'edges'", "map each tensor's name to the call that makes it")
    if mapping is None:
        return ()
    edges = []
    for name, key_node, body in mapping.items():
        edge = None
        if parser.check_name(name, key_node.loc, "tensor"):
            edge = parse_edge(parser, name, key_node.loc, body)
        if edge is None:  # keep the name defined, so later uses don't cascade into errors
            edge = Edge(name=name, loc=key_node.loc, layer=None, target=None, inputs=None,
                        inputs_loc=key_node.loc, broken=True)
        edges.append(edge)
    return tuple(edges)


def parse_edge(parser: Parser, name: str, loc: Location, body: YNode) -> Edge | None:
    mapping = parser.expect_map(body, f"edge '{name}'",
                                "e.g. '{Dense: {units: 64}, in: x}' or '{layer: shared_lstm, in: x}'")
    if mapping is None:
        return None
    class_keys = [key for key in mapping.entries if key not in EDGE_KEYS]
    target_node = mapping.get("layer")
    layer: LayerDef | None = None
    target: Ref | None = None
    if target_node is not None:
        if class_keys:
            parser.error(mapping.key_loc(class_keys[0]),
                         f"edge '{name}' has both 'layer' and the layer class '{class_keys[0]}'",
                         "call a declared layer with 'layer: NAME', or define one inline, not both")
            return None
        if "adapt" in mapping.entries:
            parser.error(mapping.key_loc("adapt"), f"edge '{name}' adapts the declared layer it calls",
                         "write 'adapt: true' beside the layer's class under 'layers:'")
        if name_of(target_node) is not None:
            target = Ref(name_of(target_node), target_node.loc)
        else:
            parser.error(target_node.loc, f"'layer' of edge '{name}' must be a layer or model name, got {type_name(target_node)}")
            return None
    elif not class_keys:
        parser.error(mapping.loc, f"edge '{name}' calls no layer",
                     "add a layer class (e.g. 'Dense: {units: 64}') or 'layer: NAME'")
        return None
    elif len(class_keys) > 1:
        parser.error(mapping.key_loc(class_keys[1]),
                     f"edge '{name}' names several layer classes ({', '.join(class_keys)})"
                     + did_you_mean(class_keys[1], EDGE_KEYS),
                     f"an edge calls one layer; its other keys are {', '.join(EDGE_KEYS)}")
        return None
    else:
        key = class_keys[0]
        layer = make_layer_def(parser, key, mapping.key_loc(key), mapping.entries[key][1], f"edge '{name}'")
        if layer is None:
            return None
        if "name" in layer.args:
            parser.error(layer.arg_nodes["name"][0], f"edge '{name}' sets 'name' in its layer's arguments",
                         "an inline layer is named after its edge; rename the edge instead")
            return None
        layer = replace(layer, adapt=parse_adapt(parser, mapping.get("adapt"), f"edge '{name}'"))
    in_node = mapping.get("in")
    inputs = parse_call_inputs(parser, in_node, name) if in_node is not None else None
    constants = parse_constants(parser, mapping.get("call"), name, inputs)
    repeat = parse_repeat(parser, mapping.get("repeat"), name, layer is not None)
    outputs = parse_output_names(parser, mapping.get("outputs"), name)
    if repeat > 1 and outputs:
        parser.error(mapping.key_loc("outputs"), f"edge '{name}' repeats a layer and names its outputs",
                     "a repeated layer must have one output")
    if repeat > 1 and isinstance(inputs, dict):
        parser.error(mapping.key_loc("repeat"), f"edge '{name}' repeats a layer called with keyword tensors",
                     "each repeated layer is called on the previous one's output alone; drop 'repeat'")
    return Edge(name=name, loc=loc, layer=layer, target=target, inputs=inputs,
                inputs_loc=in_node.loc if in_node is not None else loc,
                repeat=repeat, outputs=outputs, constants=constants)


def parse_call_inputs(parser: Parser, node: YNode, edge: str) -> CallInputs:
    if isinstance(node, YMap):
        keywords: dict[str, Ref | tuple[Ref, ...]] = {}
        for key, _, value in node.items():
            parsed = parse_call_inputs(parser, value, edge)
            if isinstance(parsed, dict):
                parser.error(value.loc, f"keyword input '{key}' of edge '{edge}' must be a tensor name or a list")
            elif parsed is not None:
                keywords[key] = parsed
        return keywords
    if isinstance(node, YSeq):
        return _refs(parser, node, f"inputs of edge '{edge}' must be tensor names")
    if name_of(node) is not None:
        return Ref(name_of(node), node.loc)
    parser.error(node.loc, f"'in' of edge '{edge}' must be a tensor name, a list or a mapping, got {type_name(node)}")
    return None


def parse_constants(parser: Parser, node: YNode | None, edge: str, inputs: CallInputs) -> dict[str, Constant]:
    """`call`: the call's non-tensor arguments by keyword. A string here is a string, never a tensor's name."""
    if node is None:
        return {}
    if not isinstance(node, YMap):
        parser.error(node.loc, f"'call' of edge '{edge}' must be a mapping of keyword to value, got {type_name(node)}",
                     "e.g. 'call: {training: true}'; tensors go in 'in'")
        return {}
    constants = {}
    for key, key_node, value in node.items():
        if isinstance(inputs, dict) and key in inputs:
            parser.error(key_node.loc, f"edge '{edge}' gives '{key}' both in 'in' and in 'call'",
                         "a tensor goes in 'in', any other value in 'call'; keep one")
        elif isinstance(value, YScalar):
            constants[key] = Constant(value.value, value.loc, key_node.loc)
        else:
            parser.error(value.loc, f"call argument '{key}' of edge '{edge}' must be true, false, a number, "
                         f"a string or null, got {type_name(value)}",
                         f"to pass tensors, name them in 'in' by keyword: 'in: {{{key}: TENSOR}}'")
    return constants


def parse_repeat(parser: Parser, node: YNode | None, edge: str, inline: bool) -> int:
    if node is None:
        return 1
    value = node.value if isinstance(node, YScalar) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        parser.error(node.loc, f"'repeat' of edge '{edge}' must be a positive integer, got {type_name(node)}")
        return 1
    if not inline:
        parser.error(node.loc, f"edge '{edge}' repeats a declared layer",
                     "'repeat' makes N new layers from an inline class; a declared layer is one layer")
        return 1
    if value > MAX_REPEAT:
        parser.error(node.loc, f"'repeat' of edge '{edge}' is {value}; at most {MAX_REPEAT} is allowed",
                     "a chain that long cannot be built; split it or use fewer layers")
        return 1
    return value


def parse_output_names(parser: Parser, node: YNode | None, edge: str) -> tuple[Ref, ...]:
    if node is None:
        return ()
    if not isinstance(node, YSeq) or not node.items:
        parser.error(node.loc, f"'outputs' of edge '{edge}' must be a list of names, got {type_name(node)}",
                     "name each output of a multi-output layer, e.g. 'outputs: [seq, state_h, state_c]'")
        return ()
    refs = []
    for item in node.items:
        if isinstance(item, YScalar) and isinstance(item.value, str):
            if parser.check_name(item.value, item.loc, "tensor"):
                refs.append(Ref(item.value, item.loc))
        else:
            parser.error(item.loc, f"'outputs' of edge '{edge}' must hold names, got {type_name(item)}")
    return tuple(refs)


def parse_outputs(parser: Parser, node: YNode | None) -> tuple[Ref, ...]:
    if node is None:
        return ()
    if name_of(node) is not None:
        return (Ref(name_of(node), node.loc),)
    if isinstance(node, YSeq) and node.items:
        return _refs(parser, node, "'outputs' must hold tensor names")
    parser.error(node.loc, f"'outputs' must be a tensor name or a non-empty list of names, got {type_name(node)}")
    return ()


def name_of(node: YNode) -> str | None:
    """A name written as a plain scalar: strings, and words YAML 1.1 reads as booleans (`on`, `no`)."""
    if isinstance(node, YScalar) and isinstance(node.value, (str, bool)) and node.text:
        return node.text if isinstance(node.value, bool) else node.value
    return None


def _refs(parser: Parser, node: YSeq, wrong: str) -> tuple[Ref, ...]:
    """The tensor names a list holds; each item that is no name is reported (`wrong`, then what it is) and left out."""
    refs = []
    for item in node.items:
        name = name_of(item)
        if name is not None:
            refs.append(Ref(name, item.loc))
        else:
            parser.error(item.loc, f"{wrong}, got {type_name(item)}")
    return tuple(refs)
