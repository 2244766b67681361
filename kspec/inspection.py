"""`kspec inspect`: every call of every layer, and the output of any one call.

Keras 3 dropped `get_output_at(i)` and `get_input_shape_at(i)`: a shared
layer's `.output` silently returns its first call's tensor. The compiler
keeps every call's tensor by (layer, node), so this module can list the
calls with their shapes and compute what any one call outputs for real data.

A layer inside a sub-model is named `MODEL/LAYER`; `--node K` then selects
the K-th call of the sub-model, and the output is computed in two steps: the
model up to that call's inputs, then the sub-model up to the inner layer.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .build import Built, deep_graphs
from .data import Dataset
from .errors import KspecError, RunError, did_you_mean, fail
from .run_errors import model_errors
from .spec.calls import call_inputs, node_indices
from .spec.model import Ref


@dataclass(frozen=True)
class InspectRequest:
    """What `kspec inspect` computes (a layer's call, a tensor, every call, or nothing: the table) and on what.

    No defaults here: the command line's options are the one place they are set.
    """

    layer: str | None
    node: int
    tensor: str | None
    every: bool
    data: Path | None
    synthetic_n: int | None
    weights: Path | None  # trained weights; else a fresh initialisation from `seed`
    seed: int
    batch_size: int

    def chosen(self) -> list[str]:
        """The options that ask for outputs: at most one may be given."""
        asked = (("--layer", self.layer), ("--tensor", self.tensor), ("--all", self.every))
        return [flag for flag, value in asked if value]

    def usage_problem(self) -> str | None:
        """Why these options cannot go together, or None."""
        chosen = self.chosen()
        if len(chosen) > 1:
            return f"give one of --layer, --tensor and --all, not {' and '.join(chosen)}"
        if chosen and (self.data is None) == (self.synthetic_n is None):
            return "give exactly one of --data FILE.npz and --synthetic N"
        return None


@dataclass
class Call:
    """One call of a layer: one row of the inspect table."""

    layer: str
    node: int
    class_name: str
    inputs: list[str]  # tensor names; keyword inputs as "query=q"
    input_shapes: list[tuple[Any, ...]]
    output_shapes: list[tuple[Any, ...]]
    params: int
    constants: dict[str, Any] = field(default_factory=dict)  # the edge's `call`, e.g. training=True

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "node": self.node, "class": self.class_name, "inputs": self.inputs,
                "call": self.constants, "input_shapes": [list(s) for s in self.input_shapes],
                "output_shapes": [list(s) for s in self.output_shapes], "params": self.params}

    def arguments(self) -> list[str]:
        """Its inputs, then its constants as Python writes them: `x`, `query=q`, `use_causal_mask=True`."""
        return self.inputs + [f"{key}={value!r}" for key, value in self.constants.items()]


def _shapes(value: Any) -> list[tuple[Any, ...]]:
    if isinstance(value, (list, tuple)):
        return [tuple(item.shape) for item in value]
    if isinstance(value, dict):
        return [tuple(item.shape) for item in value.values()]
    return [tuple(value.shape)]


def calls(built: Built) -> list[Call]:
    """Every call in the model, in file order (shared layers once per call)."""
    spec = built.spec
    nodes = node_indices(spec)
    rows = []
    for index, edge in enumerate(spec.edges):
        inputs = call_inputs(spec, index)
        if isinstance(inputs, dict):
            names = [f"{key}={ref.name}" for key, value in inputs.items()
                     for ref in ([value] if isinstance(value, Ref) else value)]
            refs = [ref for value in inputs.values() for ref in ([value] if isinstance(value, Ref) else value)]
        else:
            refs = [inputs] if isinstance(inputs, Ref) else list(inputs or ())
            names = [ref.name for ref in refs]
        layer_names = edge.layer_names() or [edge.target.name]  # type: ignore[union-attr]
        for position, layer_name in enumerate(layer_names):
            if position > 0:  # a repeated layer takes the previous one's output
                refs, names = [Ref(layer_names[position - 1], edge.loc)], [layer_names[position - 1]]
            node = nodes.get(index, 0)
            layer = built.layers[layer_name]
            rows.append(Call(
                layer=layer_name, node=node, class_name=type(layer).__name__, inputs=names,
                input_shapes=[shape for ref in refs for shape in _shapes(built.tensors[ref.name])],
                output_shapes=_shapes(built.calls[(layer_name, node)]), params=layer.count_params(),
                constants={key: constant.value for key, constant in edge.constants.items()}))
    return rows


def shape_text(shape: tuple[Any, ...]) -> str:
    """A shape as Keras prints it: `(None, 8)`, `(None,)`."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def format_table(rows: list[Call]) -> str:
    """The calls as an aligned text table."""
    header = ["layer", "node", "class", "inputs", "input shapes", "output shapes", "params"]
    cells = [[row.layer, str(row.node), row.class_name, ", ".join(row.arguments()),
              ", ".join(map(shape_text, row.input_shapes)), ", ".join(map(shape_text, row.output_shapes)),
              f"{row.params:,}"] for row in rows]
    widths = [max(len(line[i]) for line in [header] + cells) for i in range(len(header))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip()
             for line in [header] + cells]
    return "\n".join(lines)


# --------------------------------------------------------------------- targets
@dataclass
class Target:
    """What to compute: a key for the output file, and how to get there."""

    key: str
    outer: Any  # KerasTensor(s) in the top model: the target, or the sub-model call's inputs
    inner: Any = None  # for MODEL/LAYER: a keras.Model from the sub-model's inputs to the inner tensor


def _known_layers(built: Built) -> list[str]:
    names = sorted({layer for layer, _ in built.calls})
    for model_name, sub in built.submodels.items():
        names += [f"{model_name}/{layer}" for layer in sorted(sub.layers)]
    return names


def resolve_layer(built: Built, name: str, node: int) -> Target:
    """The output of call `node` of layer `name` (or MODEL/LAYER)."""
    keras = _keras()
    if "/" in name:
        model_name, inner_name = name.split("/", 1)
        if model_name not in built.submodels:
            raise _unknown("sub-model", model_name, sorted(built.submodels))
        sub = built.submodels[model_name]
        if "/" in inner_name:
            raise fail(RunError, "--layer", f"'{name}' goes more than one sub-model deep",
                       "inspect layers one level down: MODEL/LAYER")
        if inner_name not in sub.layers:
            raise _unknown(f"layer of sub-model '{model_name}'", inner_name, sorted(sub.layers))
        count = _call_count(built, model_name)
        _check_node(model_name, node, count)
        outer_inputs = _call_input_tensors(built, model_name, node)
        inner_output = _layer_output(sub, inner_name)
        with deep_graphs(sub.spec):
            inner = keras.Model(sub.model.inputs, inner_output)
        return Target(f"{name}:{node}", outer_inputs, inner)
    if name not in built.layers or not any(layer == name for layer, _ in built.calls):
        raise _unknown("layer", name, _known_layers(built))
    _check_node(name, node, _call_count(built, name))
    return _single(Target(f"{name}:{node}", built.calls[(name, node)]), built)


def resolve_tensor(built: Built, name: str) -> Target:
    if name not in built.tensors:
        raise _unknown("tensor", name, sorted(built.tensors))
    return _single(Target(name, built.tensors[name]), built)


def all_targets(built: Built) -> list[Target]:
    """Every call's output; a call with several outputs gives KEY.0, KEY.1, ..."""
    targets = []
    for (layer, node), tensor in built.calls.items():
        if isinstance(tensor, (list, tuple)):
            targets += [Target(f"{layer}:{node}.{i}", item) for i, item in enumerate(tensor)]
        else:
            targets.append(Target(f"{layer}:{node}", tensor))
    return targets


def _single(target: Target, built: Built) -> Target:
    if isinstance(target.outer, (list, tuple)):
        names = [name for name, tensor in built.tensors.items()
                 if any(tensor is item for item in target.outer)]
        raise fail(RunError, "--layer", f"'{target.key}' returns {len(target.outer)} tensors",
                   "inspect one with --tensor NAME" + (f": {', '.join(names)}" if names else
                                                     "; name them with 'outputs:' on the edge"))
    return target


def _layer_output(sub: Built, layer_name: str) -> Any:
    if sub.model.__class__.__name__ == "Sequential":
        return sub.layers[layer_name].output
    return sub.calls[(layer_name, 0)]


def _call_count(built: Built, name: str) -> int:
    return sum(1 for layer, _ in built.calls if layer == name)


def _check_node(name: str, node: int, count: int) -> None:
    if not 0 <= node < count:
        nodes = ", ".join(str(i) for i in range(count))
        raise fail(RunError, "--node", f"layer '{name}' has {count} call(s), so no node {node}",
                   f"its nodes: {nodes}")


def _call_input_tensors(built: Built, model_name: str, node: int) -> Any:
    """The tensors the `node`-th call of a sub-model was called on."""
    spec = built.spec
    nodes = node_indices(spec)
    for index, edge in enumerate(spec.edges):
        if edge.target is not None and edge.target.name == model_name and nodes[index] == node:
            inputs = call_inputs(spec, index)
            if isinstance(inputs, Ref):
                return built.tensors[inputs.name]
            if isinstance(inputs, dict):
                return {key: built.tensors[value.name] for key, value in inputs.items()}  # type: ignore[union-attr]
            return [built.tensors[ref.name] for ref in inputs or ()]
    raise AssertionError(f"no call {node} of {model_name}")


def _unknown(what: str, name: str, available: list[str]) -> KspecError:
    return fail(RunError, "--layer" if what != "tensor" else "--tensor",
                f"unknown {what} '{name}'{did_you_mean(name, available)}",
                f"available: {', '.join(available)}")


def _keras() -> Any:
    from .build import import_keras

    return import_keras()


# ------------------------------------------------------------------- compute
@dataclass
class Stats:
    """Running statistics of an array seen batch by batch."""

    shape: tuple[int, ...] = ()
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    zeros: int = 0
    low: float = np.inf
    high: float = -np.inf

    def add(self, values: np.ndarray) -> None:
        data = values.astype("float64", copy=False)
        self.count += data.size
        self.total += float(data.sum())
        self.squares += float(np.square(data).sum())
        self.zeros += int((data == 0).sum())
        if data.size:
            self.low = min(self.low, float(data.min()))
            self.high = max(self.high, float(data.max()))

    def summary(self) -> dict[str, Any]:
        mean = self.total / self.count if self.count else float("nan")
        variance = max(self.squares / self.count - mean * mean, 0.0) if self.count else float("nan")
        return {"shape": list(self.shape), "min": self.low, "max": self.high, "mean": mean,
                "std": variance ** 0.5, "zero_fraction": self.zeros / self.count if self.count else float("nan")}


def compute(built: Built, targets: list[Target], dataset: Dataset, output: Path | None,
            batch_size: int = 32) -> dict[str, dict[str, Any]]:
    """Run the data through the model batch by batch; write each target's output under its key.

    Outputs are written into memory-mapped .npy files and zipped into the .npz
    at the end, so memory holds one batch, not N samples.
    """
    keras = _keras()
    spec = built.spec
    with deep_graphs(spec):
        probe = keras.Model(built.model.inputs, [target.outer for target in targets])
    n = len(dataset)
    stats = {target.key: Stats() for target in targets}
    with tempfile.TemporaryDirectory(dir=output.parent if output else None) as scratch, \
            model_errors(spec, "computing layer outputs"):
        arrays: dict[str, np.ndarray] = {}
        for start in range(0, n, batch_size):
            batch = dataset.take(slice(start, start + batch_size))
            results = probe.predict_on_batch(batch.x(spec))
            if len(targets) == 1:
                results = [results]
            for target, result in zip(targets, results):
                values = np.asarray(target.inner.predict_on_batch(result) if target.inner is not None else result)
                if target.key not in arrays:
                    shape = (n,) + values.shape[1:]
                    stats[target.key].shape = shape
                    arrays[target.key] = (np.lib.format.open_memmap(
                        os.path.join(scratch, f"{len(arrays)}.npy"), mode="w+", dtype=values.dtype, shape=shape)
                        if output else np.empty(0))
                if output:
                    arrays[target.key][start:start + len(values)] = values
                stats[target.key].add(values)
        if output:
            _zip_npy(arrays, output)
    return {key: value.summary() for key, value in stats.items()}


def _zip_npy(arrays: dict[str, np.ndarray], output: Path) -> None:
    """Write memory-mapped .npy arrays into an .npz, atomically, without loading them."""
    from .files import atomic_path

    with atomic_path(output) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for key, array in arrays.items():
                array.flush()
                archive.write(array.filename, arcname=f"{key}.npy")


def iter_stats_lines(results: dict[str, dict[str, Any]]) -> Iterator[str]:
    for key, s in results.items():
        yield (f"{key}: shape {tuple(s['shape'])}, min {s['min']:.4g}, max {s['max']:.4g}, mean {s['mean']:.4g}, "
               f"std {s['std']:.4g}, zeros {100 * s['zero_fraction']:.1f}%")
