"""Naming what the spec writes: edges, their output tensors, `in:` references and repeats.

A layer called once gives its edge its own name, so layer names survive the
round trip; call K of a shared layer (or of a sub-model) is NAME_K, and a
call with several outputs names each (NAME_0, NAME_1, ...). A chain of
identical inline layers NAME_1 .. NAME_N is written back as one edge with
`repeat: N`.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec.parse import NAME_PATTERN
from .call_graph import Call, is_tensor, tensor_key

__all__ = ["name_calls", "references", "tensor_names", "with_repeats"]


def name_calls(order: list[Call], inputs: dict[str, Any], counts: dict[int, int], keras: Any) -> None:
    """Edge names: a layer's own name for its only call, NAME_K for call K of a shared one."""
    taken = set(inputs) | {call.op.name for call in order}

    def unique(base: str) -> str:
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        return name

    for call in order:
        alone = counts[id(call.op)] == 1 and not isinstance(call.op, keras.Model)
        call.name = call.op.name if alone else unique(f"{call.op.name}_{call.index}")
        if len(call.node.outputs) > 1:
            call.output_names = [unique(f"{call.name}_{i}") for i in range(len(call.node.outputs))]


def tensor_names(graph: Any, order: list[Call]) -> dict[tuple[int, int, int], str]:
    """(operation, node, tensor index) -> the spec's tensor name."""
    names = {tensor_key(t): t._keras_history[0].name for t in graph.inputs}
    for call in order:
        op_id, node = call.key
        for i, _ in enumerate(call.node.outputs):
            names[(op_id, node, i)] = call.output_names[i] if call.output_names else call.name
    return names


def references(inputs: Any, names: dict[tuple[int, int, int], str]) -> Any:
    """The spec's `in` for a call's tensors: a name, a list of names, or names by keyword."""
    if inputs is None:
        return None
    if is_tensor(inputs):
        return names[tensor_key(inputs)]
    if isinstance(inputs, dict):
        return {key: references(value, names) for key, value in inputs.items()}
    return [references(item, names) for item in inputs]


def with_repeats(edges: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """Chains NAME_1 .. NAME_N of identical inline layers, written as one edge with `repeat: N`.

    Only where that changes nothing: the layers are called one on the
    other, NAME itself is no other name, and the repeat makes the same
    layer names and tensors (NAME_1 ... are tensors of a repeat too).
    """
    names = list(edges)
    result: dict[str, Any] = {}
    i = 0
    while i < len(names):
        match = re.fullmatch(r"(.+)_1", names[i])
        run = 1
        if match and match.group(1) not in used and NAME_PATTERN.fullmatch(match.group(1)):
            base, first = match.group(1), edges[names[i]]
            while i + run < len(names):
                name, edge = names[i + run], edges[names[i + run]]
                if name != f"{base}_{run + 1}" or set(edge) != set(first) - {"in"} \
                        or _layer_part(edge) != _layer_part(first) or "outputs" in first or "layer" in first:
                    break
                run += 1
        if run > 1:
            edge = {**_layer_part(edges[names[i]]), **{k: v for k, v in edges[names[i]].items() if k == "in"},
                    "repeat": run}
            result[match.group(1)] = edge  # type: ignore[union-attr]
        else:
            result[names[i]] = edges[names[i]]
        i += run
    return result


def _layer_part(edge: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in edge.items() if key not in ("in", "outputs", "repeat")}
