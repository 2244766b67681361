"""The call graph a spec describes: what each edge is called on, and node indices.

A declared layer is one Keras layer; each edge that calls it is one node of
it, numbered in file order (the order Python would call it in).
"""

from __future__ import annotations

from .model import CallInputs, ModelDef, Ref


def call_inputs(model: ModelDef, index: int) -> CallInputs:
    """What edge `index` is called on; an edge without `in` takes the tensor above.

    The tensor above is the previous edge's output, or, for the first edge,
    the model's only input. Returns None when there is no such tensor.
    """
    edge = model.edges[index]
    if edge.inputs is not None:
        return edge.inputs
    if index > 0:
        previous = model.edges[index - 1]
        return Ref(previous.name, edge.loc)
    if len(model.inputs) == 1:
        return Ref(model.inputs[0].name, edge.loc)
    return None


def node_indices(model: ModelDef) -> dict[int, int]:
    """Edge index -> node index of the declared layer or sub-model it calls."""
    counts: dict[str, int] = {}
    result: dict[int, int] = {}
    for index, edge in enumerate(model.edges):
        if edge.target is None:
            continue
        node = counts.get(edge.target.name, 0)
        counts[edge.target.name] = node + 1
        result[index] = node
    return result

