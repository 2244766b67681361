"""Generated specs of any size, and the same models written by hand in Keras.

Two shapes:

- chain: N Dense layers, each called on the one above (the deepest graph);
- graph: blocks of three calls, `s = shared_k(h)`, `d = Dense(h)`,
  `h = Add([s, d])`, where a few declared layers are shared by every
  block: shared layers (many nodes each) and merges.

Every layer is small (8 units), so the figures are about the number of
layers, not about allocating weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

UNITS = 8
SHARED = 8  # declared layers in the graph shape, each called by every SHARED-th block
SHAPES = ("chain", "graph")


def chain_yaml(layers: int) -> str:
    lines = ["name: chain", "inputs:", f"  x: {{shape: [{UNITS}]}}", "edges:"]
    lines += [f"  d{i}: {{Dense: {{units: {UNITS}}}}}" for i in range(layers)]
    lines.append(f"outputs: [d{layers - 1}]")
    return "\n".join(lines) + "\n"


def graph_yaml(layers: int) -> str:
    blocks = max(1, layers // 3)
    lines = ["name: graph", "inputs:", f"  x: {{shape: [{UNITS}]}}", "layers:"]
    lines += [f"  shared_{k}: {{Dense: {{units: {UNITS}}}}}" for k in range(min(SHARED, blocks))]
    lines.append("edges:")
    previous = "x"
    for j in range(blocks):
        lines += [f"  s{j}: {{layer: shared_{j % SHARED}, in: {previous}}}",
                  f"  d{j}: {{Dense: {{units: {UNITS}}}, in: {previous}}}",
                  f"  h{j}: {{Add: {{}}, in: [s{j}, d{j}]}}"]
        previous = f"h{j}"
    lines.append(f"outputs: [{previous}]")
    return "\n".join(lines) + "\n"


def layer_calls(shape: str, layers: int) -> int:
    """How many layer calls the generated spec really has (the graph rounds down to whole blocks)."""
    return layers if shape == "chain" else 3 * max(1, layers // 3)


def write_spec(folder: Path, shape: str, layers: int) -> Path:
    path = folder / f"{shape}_{layers}.yaml"
    path.write_text(chain_yaml(layers) if shape == "chain" else graph_yaml(layers), encoding="utf-8")
    return path


def hand_written(shape: str, layers: int) -> Any:
    """The same model in plain Keras, as a user would write the loop."""
    import keras

    x = keras.Input(shape=(UNITS,), name="x")
    if shape == "chain":
        h = x
        for i in range(layers):
            h = keras.layers.Dense(UNITS, name=f"d{i}")(h)
        return keras.Model(x, h, name="chain")
    blocks = max(1, layers // 3)
    shared = [keras.layers.Dense(UNITS, name=f"shared_{k}") for k in range(min(SHARED, blocks))]
    h = x
    for j in range(blocks):
        s = shared[j % SHARED](h)
        d = keras.layers.Dense(UNITS, name=f"d{j}")(h)
        h = keras.layers.Add(name=f"h{j}")([s, d])
    return keras.Model(x, h, name="graph")
