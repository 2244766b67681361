"""`kspec graph`: the model as a Graphviz picture, under the spec's names.

A shared layer (or a sub-model called several times) is one node, as it is
one Keras object; each edge into or out of it says which call (node index) it
belongs to, so the picture shows sharing instead of hiding it. Sub-models are
one box, or, expanded, a cluster holding their own graph, drawn the same way.

The DOT text is built from the spec and the built model only, in spec order,
so the same spec always gives the same text.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import Built
from .errors import RunError, fail
from .files import atomic_path, write_text
from .inspection import calls, shape_text
from .spec.calls import node_indices

_HEADER = [
    "  graph [rankdir=TB, fontname=Helvetica, fontsize=11];",
    '  node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", fontname=Helvetica, fontsize=11];',
    "  edge [fontname=Helvetica, fontsize=9];",
]
_INPUT_STYLE = 'shape=invhouse, style=filled, fillcolor="#cfe2ff"'
_OUTPUT_STYLE = 'shape=house, style=filled, fillcolor="#ffdcb8"'
_SHARED_STYLE = 'style="rounded,filled,bold", fillcolor="#fff2a8"'  # one object, several calls
_MODEL_STYLE = 'shape=box3d, style=filled, fillcolor="#e4d9f7"'
_CLUSTER_STYLE = 'style="rounded,dashed"; color="#7b61b5"'

_FORMATS = {".svg": "svg", ".png": "png"}  # suffixes Graphviz renders; .dot is written as text
_DOT_TIMEOUT_S = 120
_INSTALL_HINT = ("install Graphviz (e.g. apt-get install graphviz, or brew install graphviz), "
                 "or write a .dot file")


# ------------------------------------------------------------------ DOT text
def to_dot(built: Built, expand: bool = False) -> str:
    """Graphviz DOT text of a built model: inputs, layers, sub-models, outputs.

    Edges carry the shapes of the tensors they stand for; an edge into or out
    of a layer called several times starts with the call's node index. With
    `expand`, each sub-model is a cluster holding its own layers.
    """
    picture = _ModelPicture(built, prefix="", expand=expand)
    lines = [f"digraph {_quote(built.spec.name)} {{", *_HEADER, *picture.lines("  "), "}"]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A DOT string literal; a newline becomes DOT's centred line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _shapes(value: Any) -> str:
    """The shape of a tensor, or the shapes of a list of them."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return ", ".join(_shapes(item) for item in value)
    return shape_text(tuple(value.shape))


def _node(node_id: str, label: str, style: str | None = None) -> str:
    return f"{_quote(node_id)} [label={_quote(label)}" + (f", {style}" if style else "") + "];"


def _edge(source: str, target: str, label: str | None) -> str:
    return f"{_quote(source)} -> {_quote(target)}" + (f" [label={_quote(label)}]" if label else "") + ";"


def _call_label(name: str, class_name: str, count: int) -> str:
    return f"{name}\n{class_name}" + (f"\n{count} calls" if count > 1 else "")


@dataclass(frozen=True)
class _Source:
    """Where a tensor leaves from in the picture."""

    node_id: str
    name: str  # the producer's name: an edge names its tensor only when that differs
    value: Any  # the KerasTensor (or list of them) the edge stands for
    node: int | None  # the call that made it, when its producer is called more than once


@dataclass(frozen=True)
class _Port:
    """A DOT node where a sub-model's tensors enter or leave (a layer is one port)."""

    name: str
    node_id: str


class _ModelPicture:
    """The nodes and edges of one model; `prefix` keeps a sub-model's names apart."""

    def __init__(self, built: Built, prefix: str, expand: bool):
        self.built = built
        self.prefix = prefix
        self.rows = calls(built)  # empty for a sequential model, which has no edges
        self.counts = Counter(row.layer for row in self.rows)
        self.children = {name: _ModelPicture(sub, f"{prefix}{name}/", expand)
                         for name, sub in built.submodels.items() if expand}
        self.sources = self._sources() if built.spec.kind != "sequential" else {}

    def _id(self, name: str) -> str:
        return self.prefix + name

    # -------------------------------------------------------------- ports
    def entries(self) -> list[_Port]:
        """Where a call of this model feeds its tensors, in input order."""
        spec = self.built.spec
        if spec.inputs:
            return [_Port(inp.name, self._id(f"input:{inp.name}")) for inp in spec.inputs]
        first = spec.sequence[0][0]  # a sequential model without inputs starts at its first layer
        return [_Port(first, self._id(first))]

    def exits(self) -> list[_Port]:
        """Where this model's outputs leave from, in output order."""
        spec = self.built.spec
        if spec.kind == "sequential":  # a checked sequential model has at least one layer
            last = spec.sequence[-1][0]
            return [_Port(last, self._id(last))]
        return [_Port(ref.name, self._id(f"output:{ref.name}")) for ref in spec.outputs]

    def _ports(self, layer: str, side: str) -> list[_Port]:
        if layer in self.children:
            child = self.children[layer]
            return child.entries() if side == "in" else child.exits()
        return [_Port(layer, self._id(layer))]

    # ------------------------------------------------------------ sources
    def _sources(self) -> dict[str, list[_Source]]:
        """Tensor name -> where it leaves from (several places for an expanded model's outputs)."""
        built, spec = self.built, self.built.spec
        found = {inp.name: [_Source(self._id(f"input:{inp.name}"), inp.name, built.tensors[inp.name], None)]
                 for inp in spec.inputs}
        nodes = node_indices(spec)
        for index, edge in enumerate(spec.edges):
            if edge.layer is not None:
                names = edge.layer_names()  # NAME, or NAME_1 ... NAME_N for repeat
                for name in names[:-1]:
                    found[name] = [_Source(self._id(name), name, built.tensors[name], None)]
                producer, node = names[-1], None
            else:
                assert edge.target is not None
                producer = edge.target.name
                node = nodes[index] if self.counts[producer] > 1 else None
            exits = self._ports(producer, "out")
            result = built.tensors[edge.name]
            parts = list(result) if len(exits) > 1 else [result]
            found[edge.name] = [_Source(port.node_id, port.name, part, node) for port, part in zip(exits, parts)]
            for position, ref in enumerate(edge.outputs):  # the named outputs of a multi-output call
                port = exits[position] if len(exits) > 1 else exits[0]
                found[ref.name] = [_Source(port.node_id, port.name, built.tensors[ref.name], node)]
        return found

    # -------------------------------------------------------------- lines
    def lines(self, indent: str) -> list[str]:
        if self.built.spec.kind == "sequential":
            return self._sequential_lines(indent)
        return self._functional_lines(indent)

    def _functional_lines(self, indent: str) -> list[str]:
        spec = self.built.spec
        lines = [indent + _node(self._id(f"input:{inp.name}"), f"{inp.name}\nInput", _INPUT_STYLE)
                 for inp in spec.inputs]
        for layer in dict.fromkeys(row.layer for row in self.rows):  # in first-call order
            lines += self._layer_lines(layer, indent)
        lines += [indent + _node(self._id(f"output:{ref.name}"), f"{ref.name}\nOutput", _OUTPUT_STYLE)
                  for ref in spec.outputs]
        for row in self.rows:
            lines += [indent + line for line in self._call_edges(row.layer, row.node, row.inputs, row.constants)]
        for ref in spec.outputs:
            lines += [indent + _edge(source.node_id, self._id(f"output:{ref.name}"), _edge_label(source))
                      for source in self.sources[ref.name]]
        return lines

    def _layer_lines(self, layer: str, indent: str) -> list[str]:
        keras_layer = self.built.layers[layer]
        label = _call_label(layer, type(keras_layer).__name__, self.counts[layer])
        if layer in self.children:
            return [f"{indent}subgraph {_quote('cluster_' + self._id(layer))} {{",
                    f"{indent}  label={_quote(label)};",
                    f"{indent}  {_CLUSTER_STYLE};",
                    *self.children[layer].lines(indent + "  "),
                    f"{indent}}}"]
        if layer in self.built.submodels:
            style = _MODEL_STYLE + (", penwidth=2" if self.counts[layer] > 1 else "")
        else:
            style = _SHARED_STYLE if self.counts[layer] > 1 else None
        return [indent + _node(self._id(layer), label, style)]

    def _call_edges(self, layer: str, node: int, inputs: list[str], constants: dict[str, Any]) -> list[str]:
        """One edge per tensor a call takes; keyword tensors ("query=q") keep their keyword.

        The call's constants (`use_causal_mask=True`) are written under the first edge's label.
        """
        extra = "".join(f"\n{key}={value!r}" for key, value in constants.items())
        entries = self._ports(layer, "in")
        by_name = {port.name: port for port in entries}
        into = node if self.counts[layer] > 1 else None
        lines, position = [], 0
        for text in inputs:
            keyword, _, tensor = text.rpartition("=")
            for source in self.sources[tensor]:
                port = by_name.get(keyword) or entries[min(position, len(entries) - 1)]
                position += 1
                label = _edge_label(source, tensor=tensor, into=into, keyword=keyword)
                lines.append(_edge(source.node_id, port.node_id, label + (extra if not lines else "")))
        return lines

    def _sequential_lines(self, indent: str) -> list[str]:
        """A sequential model: its input, if declared, then its layers in a chain."""
        built, spec = self.built, self.built.spec
        chain: list[tuple[str, Any]] = []  # (DOT node id, the tensor leaving it)
        lines = []
        if spec.inputs:
            name = spec.inputs[0].name
            lines.append(indent + _node(self._id(f"input:{name}"), f"{name}\nInput", _INPUT_STYLE))
            chain.append((self._id(f"input:{name}"), built.model.inputs[0]))
        for name, _ in spec.sequence:
            layer = built.layers[name]
            lines.append(indent + _node(self._id(name), f"{name}\n{type(layer).__name__}"))
            chain.append((self._id(name), _first_output(layer)))
        for (source, value), (target, _) in zip(chain, chain[1:]):
            lines.append(indent + _edge(source, target, _shapes(value) if value is not None else None))
        return lines


def _first_output(layer: Any) -> Any:
    """The output of a layer's first call (the sequential model's own graph), if it has one."""
    try:
        return layer.output
    except (AttributeError, ValueError):  # never called: no shape to show
        return None


def _edge_label(source: _Source, tensor: str | None = None, into: int | None = None, keyword: str = "") -> str:
    """The tensor's name (when the producer's name is not it), call node indices, and its shape.

    `into` is the node index of the call the edge feeds, when that layer is called more than once.
    """
    named = f"{tensor}\n" if tensor is not None and tensor != source.name else ""
    if source.node is not None and into is not None:
        calls_text = f"node {source.node} -> node {into}: "
    elif source.node is not None or into is not None:
        calls_text = f"node {source.node if source.node is not None else into}: "
    else:
        calls_text = ""
    return named + calls_text + (f"{keyword}=" if keyword else "") + _shapes(source.value)


# ------------------------------------------------------------------- writing
def write_picture(dot_text: str, path: Path) -> None:
    """Write DOT text to `path`: .dot as text, .svg or .png rendered by Graphviz's `dot`.

    The file appears whole or not at all: it is written beside the target
    under a temporary name and renamed over it.
    """
    dot = graphviz_for(path)
    if dot is None:
        write_text(path, dot_text)
        return
    with atomic_path(path) as temporary:
        _run_dot(dot, _FORMATS[path.suffix.lower()], dot_text, temporary, path)


def graphviz_for(path: Path) -> str | None:
    """The `dot` program a picture file needs (None for .dot text); a RunError when it cannot be drawn.

    Needs no model, so the command calls it before building one.
    """
    suffix = path.suffix.lower()
    if suffix == ".dot":
        return None
    if suffix not in _FORMATS:
        raise fail(RunError, str(path), f"cannot write a picture as '{path.suffix or path.name}'",
                   "name the file .dot (Graphviz text), .svg or .png (drawn by Graphviz)")
    dot = shutil.which("dot")
    if dot is None:
        raise fail(RunError, str(path), f"cannot draw {suffix}: Graphviz's 'dot' program is not installed",
                   _INSTALL_HINT)
    return dot


def _run_dot(dot: str, fmt: str, dot_text: str, output: Path, path: Path) -> None:
    """Render with `dot`; any failure is a RunError about `path` (not the temporary name)."""
    try:
        result = subprocess.run([dot, f"-T{fmt}", "-o", str(output)], input=dot_text, text=True,
                                capture_output=True, timeout=_DOT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise fail(RunError, str(path), f"Graphviz's 'dot' did not finish within {_DOT_TIMEOUT_S} seconds",
                   "write a .dot file and render it yourself") from None
    except OSError as exc:  # found by shutil.which but cannot be started
        raise fail(RunError, str(path), f"cannot run Graphviz's 'dot' ({dot}): {exc.strerror or exc}",
                   _INSTALL_HINT) from None
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise fail(RunError, str(path), f"Graphviz's 'dot' failed: {message}",
                   "write a .dot file to see the text it was given")
