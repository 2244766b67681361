"""Blocks: named, parameterised sub-graphs under `blocks:`, expanded into ordinary edges as the spec is read.

    blocks:
      unit:
        params: [filters]
        inputs: x
        edges:
          conv: {Conv2D: {filters: $filters, kernel_size: 3, padding: same}, in: x}
          sum: {Add: {}, in: [x, conv]}
        outputs: sum
    edges:
      stage: {block: unit, with: {filters: 3}, repeat: 2}

A call is an edge with `block:`. Each call makes new layers, named after the
call and the block's own edge: `stage_1_conv`, `stage_1_sum`, `stage_2_conv`,
... (`stage_conv` when the call is not repeated); being always joined to a
call's name, a block's own names may start with a digit. `$NAME` stands for a
parameter in a block edge's values (its layer's arguments, `call`, a nested
call's `with`). The call's name, `stage_1` ... `stage_N` and the names under a
call's `outputs` stand for the block's outputs; every later use of them is
rewritten to the tensor they stand for, so that build, graph, inspect and
import see only ordinary edges.

The expanded edges keep the locations of the block's text, each carrying the
calls it was expanded for (Location.via): an error inside a block is shown at
the block's line and noted at the call's. A block's own mistakes (its keys,
names it uses, parameters it does not declare) are reported once, where it is
declared; a call's (unknown block, parameters, inputs, recursion, size) at
the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import Diagnostic, Location, did_you_mean
from .edges import parse_edges
from .keys import CALL, MAX_BLOCK_VALUES, MAX_REPEAT, NAME_PATTERN, key_names, keys_in
from .load import YMap, YNode, YScalar, YSeq, type_name
from .model import CallInputs, Edge, InputDef, Ref

if TYPE_CHECKING:
    from .parse import Parser

BLOCK_KEYS = key_names("block")  # declared in keys.py
CALL_KEYS = tuple(key.name for key in keys_in(CALL))
# An edge's keys whose values name tensors, layers or blocks, or count: never parameters.
_STRUCTURAL = ("in", "layer", "block", "repeat", "outputs")
PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# A block's own tensors are always joined to a call's name (CALL_NAME), so
# they may start with a digit, as Keras names ResNet's layers (conv2_block1_1_conv).
LOCAL_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class Block:
    name: str
    loc: Location  # where its name is written
    params: tuple[str, ...]
    defaults: dict[str, YNode]
    inputs: tuple[Ref, ...]
    edges: YMap
    outputs: tuple[Ref, ...]
    broken: bool = False  # its mistakes are reported; its calls are checked but expand to nothing
    known: bool = True  # its params, inputs and outputs could be read, so calls can be checked
    called: bool = False


class Problems:
    """Mistakes in what blocks and calls name (blocks, parameters, tensors, counts).

    Found as the spec is read, but reported with the semantic checks (the
    model carries them): the parser's own diagnostics are the structural ones,
    which the JSON Schema finds too.
    """

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def error(self, loc: Location, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(loc, message, hint))

    def warning(self, loc: Location, message: str, hint: str) -> None:
        self.diagnostics.append(Diagnostic(loc, message, hint, severity="warning"))


# ------------------------------------------------------------------ blocks
def parse_blocks(parser: Parser, node: YNode | None, problems: Problems) -> dict[str, Block]:
    """The blocks a model declares, each checked once on its own."""
    blocks: dict[str, Block] = {}
    if node is None or (isinstance(node, YScalar) and node.value is None):
        return blocks
    mapping = parser.expect_map(node, "'blocks'", "map each block's name to its inputs, edges and outputs")
    if mapping is None:
        return blocks
    for name, key_node, body in mapping.items():
        if parser.check_name(name, key_node.loc, "block"):
            body_map = parser.expect_map(body, f"block '{name}'", "give it 'inputs', 'edges' and 'outputs'")
            block = _parse_block(parser, problems, name, key_node.loc, body_map) if body_map is not None else None
            blocks[name] = block or Block(name, key_node.loc, (), {}, (), YMap(key_node.loc), (), broken=True,
                                          known=False)
    for block in blocks.values():
        if not block.broken:
            block.broken = not _check_calls_within(problems, block, blocks)
    return blocks


def _parse_block(parser: Parser, problems: Problems, name: str, loc: Location, body: YMap) -> Block:
    before = len(parser.diagnostics), len(problems.diagnostics)
    parser.unknown_keys(body, BLOCK_KEYS, f"block '{name}'")
    for key in ("inputs", "edges", "outputs"):
        if key not in body.entries:
            parser.error(body.loc, f"block '{name}' has no '{key}'", "a block needs 'inputs', 'edges' and 'outputs'")
    params = [ref.name for ref in _names(parser, problems, body.get("params"), f"'params' of block '{name}'",
                                         single=False)]
    defaults: dict[str, YNode] = {}
    defaults_node = body.get("defaults")
    if defaults_node is not None and parser.expect_map(defaults_node, f"'defaults' of block '{name}'") is not None:
        assert isinstance(defaults_node, YMap)
        for key, key_node, value in defaults_node.items():
            if key in params:
                defaults[key] = value
            else:
                problems.error(key_node.loc, f"default for '{key}', which block '{name}' does not declare"
                             + did_you_mean(key, params), f"declare it: 'params: [{', '.join((*params, key))}]'")
    inputs = _names(parser, problems, body.get("inputs"), f"'inputs' of block '{name}'", single=True)
    outputs = _names(parser, problems, body.get("outputs"), f"'outputs' of block '{name}'", single=True, local=True)
    edges = body.get("edges")
    if edges is not None and parser.expect_map(edges, f"'edges' of block '{name}'",
                                               "map each tensor's name to the call that makes it") is None:
        edges = None
    block = Block(name, loc, tuple(params), defaults, tuple(inputs), edges or YMap(loc), tuple(outputs))
    if edges is not None:
        _check_body(parser, problems, block)
    block.broken = any(d.is_error for d in parser.diagnostics[before[0]:] + problems.diagnostics[before[1]:])
    return block


def _names(parser: Parser, problems: Problems, node: YNode | None, what: str, single: bool,
           local: bool = False) -> list[Ref]:
    """A list of names (or, where `single`, one name) -> Refs; mistakes reported. `local`: a block's own tensors."""
    if node is None:
        return []
    if single and isinstance(node, YScalar) and isinstance(node.value, str):
        items: list[YNode] = [node]
    elif isinstance(node, YSeq) and (node.items or not single):
        items = node.items
    else:
        parser.error(node.loc, f"{what} must be {'a name or ' if single else ''}a list of names, got {type_name(node)}")
        return []
    refs: list[Ref] = []
    for item in items:
        if not (isinstance(item, YScalar) and isinstance(item.value, str)):
            parser.error(item.loc, f"{what} must hold names, got {type_name(item)}")
        elif any(ref.name == item.value for ref in refs):
            problems.error(item.loc, f"{what} names '{item.value}' twice")
        elif (local and LOCAL_NAME.fullmatch(item.value)) or \
                parser.check_name(item.value, item.loc, "tensor" if single else "parameter"):
            refs.append(Ref(item.value, item.loc))
    return refs


def _check_body(parser: Parser, problems: Problems, block: Block) -> None:
    """A block's edges on their own: their structure, the names they use, the parameters they use."""
    params = block.params
    defined = {ref.name for ref in block.inputs}
    used: set[str] = set()
    edges: list[tuple[list[Ref], YNode]] = []
    for name, key_node, body in block.edges.items():
        if is_call(body):
            assert isinstance(body, YMap)
            _check_call_keys(parser, name, body)
            defined |= {name, *(f"{name}_{k}" for k in range(1, _literal_repeat(body) + 1))}
            defined |= {ref.name for ref in _names(parser, problems, body.get("outputs"),
                                                   f"'outputs' of edge '{name}'", False)}
            in_node = body.get("in")
            refs = list(_scalars(in_node)) if in_node is not None else []
            edges.append(([Ref(s.value, s.loc) for s in refs if isinstance(s.value, str)], body))
        else:
            # A name starting with a digit is checked as it will be used, joined to a name.
            joined = name if NAME_PATTERN.fullmatch(name) or not LOCAL_NAME.fullmatch(name) else f"{block.name}_{name}"
            (edge,) = parse_edges(parser, YMap(key_node.loc, {joined: (key_node, body)}))
            defined |= {name + ref.name[len(joined):] if ref.name.startswith(joined) else ref.name
                        for ref in edge.tensor_names()}
            edges.append((list(_refs(edge.inputs)), body))
    for refs, body in edges:
        for ref in refs:
            if ref.name not in defined:
                problems.error(ref.loc, f"unknown tensor '{ref.name}' in block '{block.name}'"
                             + did_you_mean(ref.name, defined),
                             "a block's edges use its inputs and its own tensors; add it to the block's 'inputs'")
        for scalar in _parameter_uses(body):
            match = PARAMETER.fullmatch(scalar.value)
            assert match is not None
            used.add(match.group(1))
            if match.group(1) not in params:
                problems.error(scalar.loc, f"parameter '{scalar.value}' is not declared by block '{block.name}'"
                             + did_you_mean(match.group(1), params),
                             f"add '{match.group(1)}' to the block's 'params'")
    for ref in block.outputs:
        if ref.name not in defined:
            problems.error(ref.loc, f"output '{ref.name}' of block '{block.name}' is not one of its tensors"
                         + did_you_mean(ref.name, defined))
    for name in params:
        if name not in used:
            problems.warning(block.loc, f"parameter '{name}' of block '{block.name}' is never used",
                           f"use it as '${name}' in the block's edges, or remove it from 'params'")


def _check_calls_within(problems: Problems, block: Block, blocks: dict[str, Block]) -> bool:
    """A block's calls name declared blocks, none of which calls it back; False after an error."""
    ok = True
    for _, _, body in block.edges.items():
        target = body.get("block") if is_call(body) else None  # type: ignore[union-attr]
        if not isinstance(target, YScalar) or not isinstance(target.value, str):
            continue
        if target.value not in blocks:
            problems.error(target.loc, f"unknown block '{target.value}'" + did_you_mean(target.value, blocks),
                         f"declare it under 'blocks:'; the blocks are: {', '.join(blocks) or 'none'}")
            ok = False
        else:
            cycle = _cycle(blocks, target.value, (block.name,))
            if cycle:
                problems.error(target.loc, f"block '{block.name}' calls itself: {' -> '.join(cycle)}",
                             "a block cannot call itself, directly or through other blocks")
                ok = False
    return ok


def _cycle(blocks: dict[str, Block], name: str, path: tuple[str, ...],
           explored: set[str] | None = None) -> tuple[str, ...]:
    """The chain of calls from path[0] back to itself through `name`, or ().

    `explored` holds blocks already searched without reaching path[0]: each is searched once, so
    blocks that call each other several times per level cost linear, not exponential, time.
    """
    explored = set() if explored is None else explored
    if name == path[0]:
        return path + (name,)
    if name in path or name in explored or name not in blocks:
        return ()
    for _, _, body in blocks[name].edges.items():
        target = body.get("block") if is_call(body) else None  # type: ignore[union-attr]
        if isinstance(target, YScalar) and isinstance(target.value, str):
            found = _cycle(blocks, target.value, path + (name,), explored)
            if found:
                return found
    explored.add(name)
    return ()


# ------------------------------------------------------------------- calls
def is_call(body: YNode) -> bool:
    return isinstance(body, YMap) and "block" in body.entries


def _check_call_keys(parser: Parser, name: str, body: YMap) -> None:
    parser.unknown_keys(body, CALL_KEYS, f"edge '{name}', which calls a block")


def _literal_repeat(body: YMap) -> int:
    """How many times a call repeats, as far as its text says (mistakes are reported at expansion)."""
    repeat, with_node = body.get("repeat"), body.get("with")
    if isinstance(repeat, YScalar) and isinstance(repeat.value, int) and not isinstance(repeat.value, bool):
        return min(max(repeat.value, 1), MAX_REPEAT)
    return min(max(len(with_node.items), 1), MAX_REPEAT) if isinstance(with_node, YSeq) else 1


class Expander:
    """Expands the block calls of one model's edges; counts the values made, to bound them."""

    def __init__(self, parser: Parser, blocks: dict[str, Block], problems: Problems):
        self.parser = parser
        self.problems = problems
        self.blocks = blocks
        self.values = 0
        self.too_large = False
        self.alias_locs: dict[str, Location] = {}  # a name a top-level call defines -> the call's line

    def model_edges(self, node: YNode | None, inputs: tuple[InputDef, ...]) -> tuple[tuple[Edge, ...], dict[str, Ref]]:
        """A model's edges with every block call expanded; and what each call's names stand for."""
        if node is None:
            return (), {}
        mapping = self.parser.expect_map(node, "'edges'", "map each tensor's name to the call that makes it")
        if mapping is None:
            return (), {}
        scope: dict[str, str] = {}
        first = inputs[0].name if len(inputs) == 1 else None
        edges = self.edges(mapping, scope, "", first, top=True)
        for block in self.blocks.values():
            if not block.called and not block.broken:
                self.problems.warning(block.loc, f"block '{block.name}' is never called",
                                    f"call it from an edge with 'block: {block.name}', or remove it")
        defined = {ref.name for edge in edges for ref in edge.tensor_names()} | {i.name for i in inputs}
        for name, target in scope.items():
            if name in defined and name != target:
                self.problems.error(self.alias_locs[name], f"'{name}' names the output of a block call and "
                                  "another tensor", "rename the edge or the call")
        return tuple(edges), {name: Ref(target, self.alias_locs[name]) for name, target in scope.items()}

    def edges(self, mapping: YMap, scope: dict[str, str], prefix: str, above: str | None, top: bool) -> list[Edge]:
        """Edges of a model (top) or of one expansion of a block (named PREFIX_NAME), in order.

        `scope` maps the names written here to the tensors they stand for
        (a block's inputs, a call's outputs, a block's own tensors); `above` is
        the tensor the first edge takes when it names none.
        """
        result: list[Edge] = []
        after_call = False
        for name, key_node, body in mapping.items():
            full = f"{prefix}_{name}" if prefix else name
            if is_call(body):
                assert isinstance(body, YMap)
                made, names = self.call(full, name, key_node, body, scope, above, top)
                result += made
                for local, target in names.items():
                    scope[local] = target
                    if top:
                        self.alias_locs[local] = key_node.loc
                above = names.get(name, above)
                after_call = True
                continue
            if isinstance(body, YMap) and "with" in body.entries:
                self.parser.error(body.key_loc("with"), f"edge '{name}' gives 'with' but calls no block",
                                  "'with' gives a block's parameters; add 'block: NAME' or remove it")
            (edge,) = parse_edges(self.parser, YMap(key_node.loc, {full: (key_node, body)}))
            edge = replace(edge, inputs=_renamed(edge.inputs, scope))
            # The tensor above a block's edge, or above an edge after a call, is not the edge written above it.
            if edge.inputs is None and above is not None and (not top or after_call):
                edge = replace(edge, inputs=Ref(above, edge.loc))
            after_call = False
            if prefix:
                edge = replace(edge, outputs=tuple(Ref(f"{prefix}_{ref.name}", ref.loc) for ref in edge.outputs))
                for local in [name, *(f"{name}_{k}" for k in range(1, edge.repeat + 1) if edge.repeat > 1)]:
                    scope[local] = f"{prefix}_{local}"
                for ref in edge.outputs:
                    scope[ref.name.removeprefix(f"{prefix}_")] = ref.name
            result.append(edge)
            above = full
        return result

    def call(self, full: str, name: str, key_node: YScalar, body: YMap, scope: dict[str, str],
             above: str | None, top: bool) -> tuple[list[Edge], dict[str, str]]:
        """The edges one call expands to, and the names it defines (its own, NAME_K, its outputs)."""
        parser = self.parser
        if top:  # a call inside a block was checked with its block
            _check_call_keys(parser, name, body)
        broken = [Edge(name=full, loc=key_node.loc, layer=None, target=None, inputs=None,
                       inputs_loc=key_node.loc, broken=True)], {}
        target = body.get("block")
        if not (isinstance(target, YScalar) and isinstance(target.value, str)):
            assert target is not None
            parser.error(target.loc, f"'block' of edge '{name}' must be a block name, got {type_name(target)}")
            return broken
        block = self.blocks.get(target.value)
        if block is None:
            if top:
                self.problems.error(target.loc, f"unknown block '{target.value}'" + did_you_mean(target.value, self.blocks),
                             f"declare it under 'blocks:'; the blocks are: {', '.join(self.blocks) or 'none'}")
            return broken
        block.called = True
        if not block.known:
            return broken
        inputs = self.call_inputs(name, body, block, scope, above)
        repeat = self.repeat(name, body, block)
        if repeat == 0:
            return broken
        params = self.params(name, key_node, body, block, repeat)
        outputs = _names(parser, self.problems, body.get("outputs"), f"'outputs' of edge '{name}'", single=False)
        if outputs and len(outputs) != len(block.outputs):
            self.problems.error(body.key_loc("outputs"), f"edge '{name}' names {len(outputs)} outputs; block "
                         f"'{block.name}' has {len(block.outputs)} ({', '.join(r.name for r in block.outputs)})")
            return broken
        if repeat > 1 and (outputs or len(block.outputs) > 1):
            self.problems.error(body.key_loc("repeat"), f"edge '{name}' repeats block '{block.name}', which has "
                         f"{len(block.outputs)} outputs" if len(block.outputs) > 1 else
                         f"edge '{name}' repeats a block and names its outputs",
                         "a repeated block has one output, which the next call takes as its first input")
            return broken
        if inputs is None or params is None or block.broken:
            return broken
        if not self.fits(repeat * self.size(block), key_node.loc, f"edge '{name}'"):
            return broken
        via = (replace(key_node.loc, via=()),) + key_node.loc.via
        edges: list[Edge] = []
        names: dict[str, str] = {}
        for k in range(1, repeat + 1):
            prefix = full if repeat == 1 else f"{full}_{k}"
            made, results = self.expand(block, prefix, inputs, params[k - 1], via)
            if made is None:
                return broken
            edges += made
            if repeat > 1:
                names[f"{name}_{k}"] = results[0]
            inputs = [results[0], *inputs[1:]]
        names[name] = results[0]
        names.update({ref.name: result for ref, result in zip(outputs, results)})
        return edges, names

    def call_inputs(self, name: str, body: YMap, block: Block, scope: dict[str, str],
                    above: str | None) -> list[str] | None:
        """The tensors a call gives the block's inputs, in order; None after an error."""
        node = body.get("in")
        wanted = ", ".join(ref.name for ref in block.inputs)
        if node is None:
            if len(block.inputs) == 1 and above is not None:
                return [above]
            self.problems.error(body.loc, f"edge '{name}' gives block '{block.name}' no inputs",
                              f"name them in order with 'in': the block takes {wanted}")
            return None
        refs = list(_scalars(node)) if isinstance(node, (YScalar, YSeq)) else None
        if refs is None or any(not isinstance(s.value, str) for s in refs):
            self.problems.error(node.loc, f"'in' of edge '{name}' must be a tensor name or a list of them, "
                              f"got {type_name(node)}", f"block '{block.name}' takes {wanted}, in that order")
            return None
        if len(refs) != len(block.inputs):
            self.problems.error(node.loc, f"edge '{name}' gives block '{block.name}' {len(refs)} input(s); it takes "
                              f"{len(block.inputs)} ({wanted})", "give one tensor for each, in that order")
            return None
        return [scope.get(s.value, s.value) for s in refs]

    def repeat(self, name: str, body: YMap, block: Block) -> int:
        node = body.get("repeat")
        if node is None:
            with_node = body.get("with")
            if isinstance(with_node, YSeq) and len(with_node.items) > MAX_REPEAT:  # a list's length is the repeat
                self.parser.error(with_node.loc, f"'with' of edge '{name}' lists {len(with_node.items)} calls; "
                                  f"at most {MAX_REPEAT} is allowed",
                                  "a chain that long cannot be built; split it or use fewer blocks")
                return 0  # nothing to expand, and no second complaint about the list's length
            return _literal_repeat(body)
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.parser.error(node.loc, f"'repeat' of edge '{name}' must be a positive integer, got {type_name(node)}")
            return 1
        if value > MAX_REPEAT:
            self.parser.error(node.loc, f"'repeat' of edge '{name}' is {value}; at most {MAX_REPEAT} is allowed",
                              "a chain that long cannot be built; split it or use fewer blocks")
            return 1
        return value

    def params(self, name: str, key_node: YScalar, body: YMap, block: Block,
               repeat: int) -> list[dict[str, YNode]] | None:
        """Each repetition's parameter values (given, else the block's defaults); None after an error."""
        node = body.get("with")
        if node is None:
            given: list[YNode] = [YMap(key_node.loc)] * repeat
        elif isinstance(node, YSeq):
            given = node.items
            if len(given) != repeat:
                self.problems.error(node.loc, f"'with' of edge '{name}' gives {len(given)} sets of parameters for "
                                  f"{repeat} calls", "give one mapping per repetition, or one mapping for all")
                return None
        else:
            given = [node] * repeat
        result = []
        ok = True
        for item in given:
            if not isinstance(item, YMap):
                self.parser.error(item.loc, f"'with' of edge '{name}' must map parameter names to values, "
                                  f"got {type_name(item)}", f"block '{block.name}' takes: "
                                  f"{', '.join(block.params) or 'no parameters'}")
                ok = False
                continue
            values = dict(block.defaults)
            for key, param_node, value in item.items():
                if key in block.params:
                    values[key] = value
                else:
                    self.problems.error(param_node.loc, f"block '{block.name}' has no parameter '{key}'"
                                      + did_you_mean(key, block.params),
                                      f"its parameters are: {', '.join(block.params) or 'none'}")
                    ok = False
            missing = [p for p in block.params if p not in values]
            if missing:
                self.problems.error(item.loc if node is not None else key_node.loc,
                                  f"edge '{name}' does not give block '{block.name}' its parameter(s) "
                                  f"{', '.join(missing)}", f"add them: 'with: {{{missing[0]}: ...}}'")
                ok = False
            result.append(values)
        return result if ok else None

    def expand(self, block: Block, prefix: str, inputs: list[str], params: dict[str, YNode],
               via: tuple[Location, ...]) -> tuple[list[Edge] | None, list[str]]:
        """One call of a block: its edges named PREFIX_NAME, and the tensors its outputs are."""
        copied = self.copy(block.edges, params, via, substitute=False)
        if copied is None:
            return None, []
        assert isinstance(copied, YMap)
        scope = {ref.name: tensor for ref, tensor in zip(block.inputs, inputs)}
        edges = self.edges(copied, scope, prefix, inputs[0] if len(inputs) == 1 else None, top=False)
        return edges, [scope.get(ref.name, ref.name) for ref in block.outputs]

    def size(self, block: Block) -> int:
        """The values one call of a block copies, its calls' included (blocks that call themselves are broken).

        Each block is counted once and remembered: blocks calling each other twice per level would
        otherwise be recounted 2**depth times before the bound is checked.
        """
        sizes = self.__dict__.setdefault("_sizes", {})
        if id(block) in sizes:
            return sizes[id(block)]
        total = _count(block.edges)
        for _, _, body in block.edges.items():
            target = body.get("block") if is_call(body) else None  # type: ignore[union-attr]
            if isinstance(target, YScalar) and target.value in self.blocks:
                total += _literal_repeat(body) * self.size(self.blocks[target.value])  # type: ignore[arg-type]
        sizes[id(block)] = total
        return total

    def fits(self, values: int, loc: Location, what: str) -> bool:
        """Whether `values` more copied values stay within the bound; reported at `loc` (once) if not."""
        if self.values + values <= MAX_BLOCK_VALUES:
            return True
        if not self.too_large:
            self.too_large = True
            self.problems.error(loc, f"{what} expands to {self.values + values:,} YAML values with the block calls "
                                f"before it; block calls may expand to at most {MAX_BLOCK_VALUES:,}, as many as "
                                "a spec file may hold", "call fewer or smaller blocks, or repeat them less")
        return False

    def copy(self, node: YNode, params: dict[str, YNode], via: tuple[Location, ...],
             substitute: bool, depth: int = 0) -> YNode | None:
        """A copy of a block's text located at `via`, `$NAME` replaced by its value; None past the bound."""
        if not self.fits(1, via[-1] if via else node.loc, "a block call"):  # size() counted ahead; this is the bound
            return None
        self.values += 1
        loc = replace(node.loc, via=via)
        if isinstance(node, YScalar):
            match = PARAMETER.fullmatch(node.value) if substitute and isinstance(node.value, str) else None
            if match and match.group(1) in params:
                value = params[match.group(1)]  # written at the call (or as a default): it keeps its place
                return self.copy(value, {}, value.loc.via, substitute=False)
            return YScalar(loc, node.value, node.text)
        children: list[Any] = []
        if isinstance(node, YSeq):
            for item in node.items:
                children.append(self.copy(item, params, via, substitute, depth + 1))
            return None if None in children else YSeq(loc, children)
        assert isinstance(node, YMap)
        copied = YMap(loc)
        for key, key_node, value in node.items():
            # In a block's edges (depth 1), the keys naming tensors, blocks or counts stay as written.
            inner = substitute or (depth == 1 and key not in _STRUCTURAL)
            new_value = self.copy(value, params, via, inner, depth + 1)
            if new_value is None:
                return None
            copied.entries[key] = (YScalar(replace(key_node.loc, via=via), key_node.value, key_node.text), new_value)
        return copied


def _count(node: YNode) -> int:
    """The values in a YAML tree, mappings' keys included."""
    if isinstance(node, YSeq):
        return 1 + sum(_count(item) for item in node.items)
    if isinstance(node, YMap):
        return 1 + sum(1 + _count(value) for _, _, value in node.items())
    return 1


def _scalars(node: YNode) -> list[YScalar]:
    if isinstance(node, YScalar):
        return [node]
    if isinstance(node, YSeq):
        return [item for item in node.items if isinstance(item, YScalar)]
    if isinstance(node, YMap):
        return [s for _, _, value in node.items() for s in _scalars(value)]
    return []


def _parameter_uses(body: YNode) -> list[YScalar]:
    """The `$NAME` strings in an edge's values that may hold parameters."""
    if not isinstance(body, YMap):
        return []
    found: list[YScalar] = []
    stack = [value for key, _, value in body.items() if key not in _STRUCTURAL]
    while stack:
        node = stack.pop()
        if isinstance(node, YScalar):
            if isinstance(node.value, str) and PARAMETER.fullmatch(node.value):
                found.append(node)
        elif isinstance(node, YSeq):
            stack.extend(node.items)
        elif isinstance(node, YMap):
            stack.extend(value for _, _, value in node.items())
    return sorted(found, key=lambda s: s.loc)


def _refs(inputs: CallInputs) -> list[Ref]:
    if isinstance(inputs, Ref):
        return [inputs]
    if isinstance(inputs, tuple):
        return [r for item in inputs for r in _refs(item)]
    if isinstance(inputs, dict):
        return [r for value in inputs.values() for r in _refs(value)]
    return []


def _renamed(inputs: Any, scope: dict[str, str]) -> Any:
    """`inputs` with each name that stands for another tensor replaced by it (other values kept)."""
    if isinstance(inputs, Ref):
        return Ref(scope[inputs.name], inputs.loc) if inputs.name in scope else inputs
    if isinstance(inputs, tuple):
        return tuple(_renamed(item, scope) for item in inputs)
    if isinstance(inputs, dict):
        return {key: _renamed(value, scope) for key, value in inputs.items()}
    return inputs


def renamed_outputs(outputs: tuple[Ref, ...], aliases: dict[str, Ref]) -> tuple[Ref, ...]:
    """A model's outputs, where they name a block call's output, as the tensor it is."""
    return tuple(Ref(aliases[ref.name].name, ref.loc) if ref.name in aliases else ref for ref in outputs)
