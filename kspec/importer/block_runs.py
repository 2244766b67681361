"""Runs of identical units in an imported graph, written as calls of one block.

A unit is a run of consecutive edges whose names share a prefix ending in a
number, `P_E...` with P = STEM K (Keras's ResNet50: `conv2_block2_1_conv`
... `conv2_block2_out`, P = conv2_block2). Units P = STEM K, STEM K+1, ...
that follow each other and hold the same edges E (same layer classes, wired
the same way inside the unit, with the same arguments but for at most
MAX_PARAMS, which become the block's parameters), each taking one tensor from
outside (the first unit any tensor, each next unit the last edge of the one
before), are what calls of one block build, layer names included
(spec/blocks.py names a call's layers CALL_E):

    blocks: {conv2_block: {inputs: x, edges: {1_conv: ..., out: ...}, outputs: out}}
    edges:
      conv2_block2: {block: conv2_block}
      conv2_block3: {block: conv2_block}

When the units are numbered from 1 with STEM ending in '_' (kspec's own
naming, `stage_1_conv`, `stage_2_conv`), one call with `repeat` says the same.
Anything else (a shared layer or a sub-model inside a unit, a layer with
several outputs, a unit reaching into another unit) stays as plain edges.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from ..spec.keys import NAME_PATTERN

__all__ = ["with_blocks"]

# STEM K: K a number without leading zeros (conv2_block2), or a letter after a
# digit (EfficientNet's block2b, block2c).
_NUMBERED = re.compile(r"(.*[^0-9])([1-9][0-9]*)|(.*[0-9])([a-y])")
# A unit's own names: joined to a call's name, so they may start with a digit, but
# hold a letter (YAML would read `1_0` as a number).
_LOCAL = re.compile(r"[A-Za-z0-9_]*[A-Za-z][A-Za-z0-9_]*")


@dataclass
class _Run:
    stem: str
    first: int | str  # the number (or letter) of the first unit
    count: int
    length: int  # edges per unit
    block: dict[str, Any]
    values: list[dict[str, Any]]  # each unit's parameters (empty when the units are identical)
    source: str  # the tensor the first unit takes


def with_blocks(edges: dict[str, Any], used: set[str], above: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """`edges` with each run of identical units replaced by calls of a block; and the blocks.

    `used` holds every name the model defines (inputs, layers, sub-models,
    tensors); `above` is the tensor the first edge takes when it has no `in`.
    """
    names = list(edges)
    taken = used | set(edges)
    result: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    i = 0
    while i < len(names):
        run = _run_at(edges, names, i, above, taken)
        if run is None:
            result[names[i]] = edges[names[i]]
            above = names[i]
            i += 1
            continue
        name = _block_name(run, blocks)
        calls = [_nth(run.stem, run.first, n) for n in range(run.count)]
        blocks[name] = run.block
        first_in = {"in": run.source} if run.source != above else {}
        given = [{"with": values} if values else {} for values in run.values]
        if _repeatable(run, taken):
            with_list = {"with": run.values} if run.values[0] else {}
            result[run.stem[:-1]] = {"block": name, **first_in, **with_list, "repeat": run.count}
        else:
            for n, call in enumerate(calls):
                result[call] = {"block": name, **(first_in if n == 0 else {}), **given[n]}
        i += run.count * run.length
        above = names[i - 1]
    return result, blocks


def _repeatable(run: _Run, taken: set[str]) -> bool:
    """Whether `STEM: {repeat: N}` makes these names: units 1 ... N of a stem ending in '_' (CALL_K_E)."""
    call = run.stem[:-1]
    return run.stem.endswith("_") and run.first == 1 and bool(NAME_PATTERN.fullmatch(call)) \
        and call not in taken


def _block_name(run: _Run, blocks: dict[str, Any]) -> str:
    """The stem (`conv2_block`), or, when another run took it, the first unit's name (`block_7`)."""
    for name in (run.stem.rstrip("_"), f"{run.stem}{run.first}"):
        if NAME_PATTERN.fullmatch(name) and name not in blocks:
            return name
    name, n = "block", 2
    while name in blocks:
        name, n = f"block_{n}", n + 1
    return name


def _run_at(edges: dict[str, Any], names: list[str], i: int, above: str | None, taken: set[str]) -> _Run | None:
    """The run of two or more units alike starting at names[i] (the largest units first), or None."""
    name = names[i]
    for cut in [m.start() for m in re.finditer("_", name)]:
        match = _NUMBERED.fullmatch(name[:cut])
        if match is None:
            continue
        stem, first = (match.group(1), int(match.group(2))) if match.group(1) else match.group(3, 4)
        unit = _unit(names, i, f"{stem}{first}")
        source = _source(edges[name], above)
        block = _localized(edges, unit, f"{stem}{first}", source)
        if block is None:
            continue
        units = [block]
        while True:
            start = i + len(units) * len(unit)
            prefix = _nth(stem, first, len(units))
            following = _unit(names, start, prefix)
            previous_last = names[start - 1]
            if [n[len(prefix):] for n in following] != [n[len(f"{stem}{first}"):] for n in unit] \
                    or _source(edges[following[0]], previous_last) != previous_last:
                break
            other = _localized(edges, following, prefix, previous_last)
            if other is None or _parameters([u["edges"] for u in units] + [other["edges"]]) is None:
                break
            units.append(other)
        # The calls' names become names of tensors (their outputs): they must be free.
        calls = {_nth(stem, first, n) for n in range(len(units))}
        if len(units) >= 2 and not calls & taken:
            return _Run(stem, first, len(units), len(unit), *_parameterised(units), source)  # type: ignore[arg-type]
    return None


# Units that differ in more arguments than this are left as edges: the calls would
# read worse than the layers they stand for.
MAX_PARAMS = 3


def _parameters(trees: list[dict[str, Any]]) -> list[list[tuple]] | None:
    """The layer arguments in which units' edges differ, grouped into parameters (arguments whose values
    go together across the units make one); None when they differ elsewhere or in too many."""
    paths = _differing_paths(trees, ())
    if paths is None or any(len(path) < 3 or path[1] in _NOT_ARGUMENTS for path in paths):
        return None
    groups: dict[tuple[str, ...], list[tuple]] = {}  # the values across units -> the paths that hold them
    for path in paths:
        groups.setdefault(tuple(repr(_get(tree, path)) for tree in trees), []).append(path)
    return list(groups.values()) if len(groups) <= MAX_PARAMS else None


# An edge's keys besides its layer class: a difference there is one of structure.
_NOT_ARGUMENTS = ("in", "repeat", "outputs", "block", "layer", "call", "adapt")


def _differing_paths(trees: list[Any], path: tuple) -> list[tuple] | None:
    """Where the trees' values differ (a differing mapping key or list length: None)."""
    first = trees[0]
    if all(tree == first for tree in trees):
        return []
    if all(isinstance(tree, dict) for tree in trees):
        if any(list(tree) != list(first) for tree in trees):
            return None
        found: list[tuple] = []
        for key in first:
            inner = _differing_paths([tree[key] for tree in trees], path + (key,))
            if inner is None:
                return None
            found += inner
        return found
    if any(isinstance(tree, dict) for tree in trees):
        return None
    return [path]  # scalars or lists: the whole value is a parameter


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _parameterised(units: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One block for units that differ in a few arguments, each `$NAME` in it; and each unit's values."""
    trees = [unit["edges"] for unit in units]
    block = deepcopy(units[0])
    values: list[dict[str, Any]] = [{} for _ in units]
    for paths in _parameters(trees) or []:
        key = paths[0][-1]
        base = key if isinstance(key, str) and NAME_PATTERN.fullmatch(key) else "value"
        name, n = base, 2
        while name in values[0]:
            name, n = f"{base}_{n}", n + 1
        for path in paths:
            _get(block["edges"], path[:-1])[path[-1]] = f"${name}"
        for unit_values, tree in zip(values, trees):
            unit_values[name] = _get(tree, paths[0])
    if values[0]:
        block = {"params": list(values[0]), **block}
    return block, values


def _nth(stem: str, first: int | str, n: int) -> str:
    """The prefix of the unit n places after the first: conv2_block2 -> conv2_block3, block2b -> block2c."""
    if isinstance(first, int):
        return f"{stem}{first + n}"
    return f"{stem}{chr(ord(first) + n)}" if ord(first) + n <= ord("z") else f"{stem}_"  # `_`: no such unit


def _unit(names: list[str], start: int, prefix: str) -> list[str]:
    """The consecutive names from `start` of the form PREFIX_E."""
    unit = []
    for name in names[start:]:
        if not name.startswith(prefix + "_") or not _LOCAL.fullmatch(name[len(prefix) + 1:]):
            break
        unit.append(name)
    return unit


def _source(edge: dict[str, Any], above: str | None) -> str | None:
    """The one tensor a unit's first edge is called on."""
    written = edge.get("in", above)
    return written if isinstance(written, str) else None


def _localized(edges: dict[str, Any], unit: list[str], prefix: str, source: str | None) -> dict[str, Any] | None:
    """The unit as a block: its edges named E, its one outside tensor the input `x`; None if it is no block."""
    if source is None or not unit:
        return None
    local = {name: name[len(prefix) + 1:] for name in unit}
    for name in unit:  # the tensors a repeated layer makes: E_1 ... E_R
        repeat = edges[name].get("repeat", 1)
        local.update({f"{name}_{r}": f"{local[name]}_{r}" for r in range(1, repeat + 1)} if repeat > 1 else {})
    source_name = next(n for n in ("x", "x_in", "block_input") if n not in local.values())
    block_edges: dict[str, Any] = {}
    for name in unit:
        edge = edges[name]
        if "layer" in edge or "outputs" in edge or "block" in edge:
            return None
        renamed = dict(edge)
        if "in" in edge:
            renamed["in"] = _rename(edge["in"], local, source, source_name)
            if renamed["in"] is None:
                return None
        elif name == unit[0]:
            renamed["in"] = source_name
        block_edges[local[name]] = renamed
    return {"inputs": source_name, "edges": block_edges, "outputs": local[unit[-1]]}


def _rename(written: Any, local: dict[str, str], source: str, source_name: str) -> Any:
    """`in` with the unit's names made local and the outside tensor named as the block's input; None if
    it uses any other outside tensor."""
    if isinstance(written, str):
        if written in local:
            return local[written]
        return source_name if written == source else None
    if isinstance(written, list):
        items = [_rename(item, local, source, source_name) for item in written]
        return None if None in items else items
    if isinstance(written, dict):
        values = {key: _rename(value, local, source, source_name) for key, value in written.items()}
        return None if None in values.values() else values
    return None
