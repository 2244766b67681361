"""Mixed precision: `training.mixed_precision` as Keras's global dtype policy, for one run.

Keras computes every layer built under a mixed policy in float16 (or
bfloat16) and keeps its weights in float32. Its guide recommends keeping the
model's outputs in float32, for a numerically stable loss; kspec does it by
building each layer that makes one of the spec's outputs with `dtype:
float32` (unless the spec gives that layer a dtype), rather than appending a
cast layer, so that the outputs keep their names (and the history its metric
names). This also avoids bfloat16 outputs, which JAX cannot hand back to NumPy
on some devices ("Unknown output type bfloat16").

The policy is global in Keras, so it is set for the length of a run and put
back after it, whatever happens.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .spec.model import ModelDef


@contextlib.contextmanager
def dtype_policy(keras: Any, policy: str | None) -> Iterator[None]:
    """Keras's global dtype policy set to `policy` (None: left as it is) inside the block."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_layers(keras: Any, spec: ModelDef) -> set[str]:
    """The names of the layers that make the spec's outputs, when a mixed policy is set; else none."""
    if not keras.config.dtype_policy().name.startswith("mixed"):
        return set()
    outputs = set(spec.output_names)
    names: set[str] = set()
    for edge in spec.edges:
        if edge.name not in outputs:
            continue
        if edge.layer is not None:
            names.add(edge.layer_names()[-1])  # the last copy of a repeated layer
        elif edge.target is not None and edge.target.name in spec.layers:
            names.add(edge.target.name)
        # An output made by a sub-model keeps its own last layer's dtype (docs/spec.md says so).
    return names
