"""The 'inputs' of a model: each input's name, shape, dtype and options -> InputDef."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..errors import Diagnostic, Location, did_you_mean
from .keys import DTYPES, key_names
from .load import YNode, YScalar, YSeq, to_python, type_name
from .model import InputDef

if TYPE_CHECKING:
    from .parse import Parser

INPUT_KEYS = key_names("input")  # declared in keys.py


def parse_inputs(parser: Parser, node: YNode | None) -> tuple[InputDef, ...]:
    if node is None:
        return ()
    mapping = parser.expect_map(node, "'inputs'", "map each input's name to its shape, e.g. 'x: {shape: [784]}'")
    if mapping is None:
        return ()
    inputs = []
    for name, key_node, body in mapping.items():
        parsed = None
        if parser.check_name(name, key_node.loc, "input"):
            parsed = parse_input(parser, name, key_node.loc, body)
        # An input that failed to parse still defines its name (its error is reported).
        inputs.append(parsed or InputDef(name, key_node.loc, ()))
    return tuple(inputs)


def parse_input(parser: Parser, name: str, loc: Location, body: YNode) -> InputDef | None:
    if isinstance(body, YSeq):  # shorthand: `x: [784]`
        shape = parse_shape(parser, body, name)
        return None if shape is None else InputDef(name, loc, shape)
    mapping = parser.expect_map(body, f"input '{name}'", "write 'NAME: {shape: [784]}' or 'NAME: [784]'")
    if mapping is None:
        return None
    parser.unknown_keys(mapping, INPUT_KEYS, f"input '{name}'")
    shape_node = mapping.get("shape")
    if shape_node is None:
        parser.error(mapping.loc, f"input '{name}' has no 'shape'", "give its shape without the batch size, e.g. 'shape: [784]'")
        return None
    shape = parse_shape(parser, shape_node, name)
    dtype = None
    dtype_node = mapping.get("dtype")
    if dtype_node is not None:
        value = dtype_node.value if isinstance(dtype_node, YScalar) else None
        if not isinstance(value, str) or value not in DTYPES:
            shown = value if isinstance(value, str) else type_name(dtype_node)
            parser.error(dtype_node.loc, f"unknown dtype '{shown}' for input '{name}'"
                         + (did_you_mean(value, DTYPES) if isinstance(value, str) else ""),
                         f"use one of: {', '.join(DTYPES)}")
        else:
            dtype = value
    options = {}
    for key in ("batch_size", "sparse", "ragged"):
        option = mapping.get(key)
        if option is None:
            continue
        value = to_python(option)
        wanted = int if key == "batch_size" else bool
        if not isinstance(value, wanted) or (key == "batch_size" and (isinstance(value, bool) or value < 1)):
            parser.error(option.loc, f"'{key}' of input '{name}' must be "
                         + ("a positive integer" if key == "batch_size" else "true or false")
                         + f", got {type_name(option)}")
        else:
            options[key] = value
    if shape is None:
        return None
    columns = _parse_columns(parser, mapping.get("columns"), name)
    fill = _parse_fill(parser, mapping.get("fill"), name)
    locs = {key: node.loc for key in ("columns", "fill") if (node := mapping.get(key)) is not None}
    return InputDef(name, loc, shape, dtype, options, columns, fill, locs)


def _parse_columns(parser: Parser, node: YNode | None, name: str) -> tuple[str, ...] | None:
    """`columns: [a, b]`: the table columns that fill the input (their count is checked by check_table_keys)."""
    if node is None:
        return None
    value = to_python(node)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        parser.error(node.loc, f"'columns' of input '{name}' must be a list of column names, got {type_name(node)}",
                     "e.g. 'columns: [mean_radius, mean_texture]'")
        return None
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        parser.error(node.loc, f"'columns' of input '{name}' names column '{repeated[0]}' twice",
                     "list each column once")
        return None
    return tuple(value)


def _parse_fill(parser: Parser, node: YNode | None, name: str) -> object:
    """`fill: VALUE`: what a missing table cell of the input becomes (its kind is checked by check_table_keys)."""
    if node is None:
        return None
    value = to_python(node)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        parser.error(node.loc, f"'fill' of input '{name}' must be a number or a string, got {type_name(node)}",
                     "the value put in the input's missing table cells, e.g. 'fill: 0'")
        return None
    return value


def check_table_keys(inp: InputDef) -> Iterator[Diagnostic]:
    """An input's `columns` are as many as its shape holds, and its `fill` is a string just for a string input."""
    if inp.columns is not None:
        size: int | None = 1
        for dim in inp.shape:
            size = size * dim if dim is not None and size is not None else None
        if size != len(inp.columns):
            held = "a varying number of values" if size is None else size
            yield Diagnostic(inp.table_locs["columns"], f"input '{inp.name}' lists {len(inp.columns)} columns but "
                             f"its shape {list(inp.shape)} holds {held}",
                             f"list one column per value, or give it 'shape: [{len(inp.columns)}]'")
    if inp.fill is not None and isinstance(inp.fill, str) != (inp.dtype == "string"):
        wanted = "a string" if inp.dtype == "string" else "a number"
        yield Diagnostic(inp.table_locs["fill"], f"'fill' of input '{inp.name}' must be {wanted}, as its dtype "
                         f"is {inp.dtype or 'float32'}", "the value put in its missing table cells, e.g. 'fill: "
                         + ("unknown'" if inp.dtype == "string" else "0'"))


def parse_shape(parser: Parser, node: YNode, name: str) -> tuple[int | None, ...] | None:
    if not isinstance(node, YSeq):
        parser.error(node.loc, f"shape of input '{name}' must be a list, got {type_name(node)}",
                     "e.g. 'shape: [784]' or 'shape: [null, 128]' (no batch size)")
        return None
    dims: list[int | None] = []
    for item in node.items:
        value = item.value if isinstance(item, YScalar) else item
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            dims.append(value)
        else:
            parser.error(item.loc, f"shape of input '{name}' has an invalid dimension: {type_name(item)}",
                         "each dimension is a positive integer, or null for any size")
            return None
    return tuple(dims)
