"""Runs of identical blocks in an imported graph, written as one block called with `repeat`.

kspec names the layers of a call `C` repeated N times `C_1_E` ... `C_N_E`
(spec/blocks.py). A graph whose consecutive edges are named that way, where
every unit k holds the same edges E (same layer classes and arguments, wired
the same way inside the unit) and takes one tensor from outside (unit 1 any
tensor, unit k the last edge of unit k-1), is exactly what

    blocks: {C: {inputs: x, edges: {E...}, outputs: LAST}}
    edges:  {C: {block: C, in: INPUT, repeat: N}}

builds, layer names included; so it is written that way. Anything else (a
shared layer or a sub-model inside a unit, a layer with several outputs, a
unit reaching into another unit) is left as plain edges.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec.keys import NAME_PATTERN

__all__ = ["with_blocks"]

_UNIT = re.compile(r"(.+)_1_([A-Za-z_][A-Za-z0-9_]*)")


def with_blocks(edges: dict[str, Any], used: set[str], above: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """`edges` with each run of identical units replaced by a call; and the blocks the calls name.

    `used` holds every name the model defines (inputs, layers, sub-models,
    tensors); `above` is the tensor the first edge takes when it has no `in`.
    """
    names = list(edges)
    result: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    i = 0
    while i < len(names):
        found = _run_at(edges, names, i, used | set(blocks), result, above)
        if found is None:
            result[names[i]] = edges[names[i]]
            above = names[i]
            i += 1
            continue
        call, block, count, length = found
        blocks[call] = block
        source = _source(edges[names[i]], above)
        result[call] = {"block": call, **({"in": source} if source != above else {}), "repeat": count}
        above = names[i + count * length - 1]
        i += count * length
    return result, blocks


def _run_at(edges: dict[str, Any], names: list[str], i: int, used: set[str], before: dict[str, Any],
            above: str | None) -> tuple[str, dict[str, Any], int, int] | None:
    """(call name, block, repetitions, edges per unit) of a run starting at names[i], or None."""
    match = _UNIT.fullmatch(names[i])
    if match is None:
        return None
    call = match.group(1)
    if not NAME_PATTERN.fullmatch(call):
        return None
    first = _unit(names, i, call, 1)
    if not first:
        return None
    source = _source(edges[names[i]], above)
    if source is None:
        return None
    block = _localized(edges, first, call, 1, source)
    if block is None:
        return None
    count = 1
    while True:
        k = count + 1
        unit = _unit(names, i + count * len(first), call, k)
        if len(unit) != len(first) or [n.split(f"{call}_{k}_", 1)[1] for n in unit] != \
                [n.split(f"{call}_1_", 1)[1] for n in first]:
            break
        previous_last = names[i + count * len(first) - 1]
        if _localized(edges, unit, call, k, _source(edges[unit[0]], previous_last)) != block \
                or _source(edges[unit[0]], previous_last) != previous_last:
            break
        count += 1
    # The call's name and C_1 ... C_N name tensors after expansion: they must be free.
    aliases = {call, *(f"{call}_{k}" for k in range(1, count + 1))}
    if count < 2 or aliases & (used | set(edges) | set(before)):
        return None
    return call, block, count, len(first)


def _unit(names: list[str], start: int, call: str, k: int) -> list[str]:
    """The consecutive names from `start` that belong to unit k of `call`."""
    prefix = f"{call}_{k}_"
    unit = []
    for name in names[start:]:
        if not name.startswith(prefix) or not NAME_PATTERN.fullmatch(name[len(prefix):]):
            break
        unit.append(name)
    return unit


def _source(edge: dict[str, Any], above: str | None) -> str | None:
    """The one tensor a unit's first edge is called on."""
    written = edge.get("in", above)
    return written if isinstance(written, str) else None


def _localized(edges: dict[str, Any], unit: list[str], call: str, k: int, source: str | None) -> dict[str, Any] | None:
    """The unit as a block: its edges renamed E, its one outside tensor the input `x`; None if it is no block."""
    if source is None:
        return None
    prefix = f"{call}_{k}_"
    local = {name: name[len(prefix):] for name in unit}
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
