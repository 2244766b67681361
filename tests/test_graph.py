"""The model as a Graphviz picture: shared layers once, each call's edges labelled."""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache

import pytest
from conftest import SPECS

from kspec import graph
from kspec.build import build
from kspec.errors import RunError
from kspec.graph import to_dot, write_picture
from kspec.spec import read_spec

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


@lru_cache(maxsize=None)
def _built(path):
    model_def, _ = read_spec(path)
    return build(model_def, compile=False)


def _dot(stem, expand=False):
    return to_dot(_built(SPECS / f"{stem}.yaml"), expand=expand)


def _lines(text):
    return [line.strip() for line in text.splitlines()]


def _cluster(text, name):
    """The lines inside `subgraph "cluster_NAME" { ... }` (clusters are indented blocks)."""
    lines = text.splitlines()
    start = lines.index(f'  subgraph "cluster_{name}" {{')
    end = lines.index("  }", start)
    return [line.strip() for line in lines[start + 1:end]]


def test_shared_conv_is_one_node_with_a_labelled_edge_per_call():
    assert _dot("shared_conv") == (
        'digraph "shared_conv" {\n'
        "  graph [rankdir=TB, fontname=Helvetica, fontsize=11];\n"
        '  node [shape=box, style="rounded,filled", fillcolor="#f2f2f2", fontname=Helvetica, fontsize=11];\n'
        "  edge [fontname=Helvetica, fontsize=9];\n"
        '  "input:a" [label="a\\nInput", shape=invhouse, style=filled, fillcolor="#cfe2ff"];\n'
        '  "input:b" [label="b\\nInput", shape=invhouse, style=filled, fillcolor="#cfe2ff"];\n'
        '  "conv" [label="conv\\nConv2D\\n2 calls", style="rounded,filled,bold", fillcolor="#fff2a8"];\n'
        '  "output:conved_a" [label="conved_a\\nOutput", shape=house, style=filled, fillcolor="#ffdcb8"];\n'
        '  "output:conved_b" [label="conved_b\\nOutput", shape=house, style=filled, fillcolor="#ffdcb8"];\n'
        '  "input:a" -> "conv" [label="node 0: (None, 32, 32, 3)"];\n'
        '  "input:b" -> "conv" [label="node 1: (None, 64, 64, 3)"];\n'
        '  "conv" -> "output:conved_a" [label="node 0: (None, 32, 32, 16)"];\n'
        '  "conv" -> "output:conved_b" [label="node 1: (None, 64, 64, 16)"];\n'
        "}\n")


def test_shared_lstm_shows_both_calls_and_names_their_tensors():
    lines = _lines(_dot("shared_lstm"))
    assert [line for line in lines if line.startswith('"shared_lstm" [')] == [
        '"shared_lstm" [label="shared_lstm\\nLSTM\\n2 calls", style="rounded,filled,bold", fillcolor="#fff2a8"];']
    edges = [line for line in lines if "->" in line and "shared_lstm" in line]
    assert edges == [
        '"input:tweet_a" -> "shared_lstm" [label="node 0: (None, 140, 256)"];',
        '"input:tweet_b" -> "shared_lstm" [label="node 1: (None, 140, 256)"];',
        '"shared_lstm" -> "merged_vector" [label="encoded_a\\nnode 0: (None, 64)"];',
        '"shared_lstm" -> "merged_vector" [label="encoded_b\\nnode 1: (None, 64)"];',
    ]
    # A layer called once is plain: class on its label, no node index on its edges.
    assert '"merged_vector" [label="merged_vector\\nConcatenate"];' in lines
    assert '"merged_vector" -> "predictions" [label="(None, 128)"];' in lines


def test_shared_sub_model_is_one_collapsed_box():
    lines = _lines(_dot("shared_vision"))
    assert [line for line in lines if line.startswith('"vision_model" [')] == [
        '"vision_model" [label="vision_model\\nFunctional\\n2 calls", shape=box3d, style=filled, '
        'fillcolor="#e4d9f7", penwidth=2];']
    assert [line for line in lines if "->" in line and "vision_model" in line] == [
        '"input:digit_a" -> "vision_model" [label="node 0: (None, 27, 27, 1)"];',
        '"input:digit_b" -> "vision_model" [label="node 1: (None, 27, 27, 1)"];',
        '"vision_model" -> "concatenated" [label="out_a\\nnode 0: (None, 7744)"];',
        '"vision_model" -> "concatenated" [label="out_b\\nnode 1: (None, 7744)"];',
    ]
    assert not any("conv_1" in line or "subgraph" in line for line in lines)


def test_expand_draws_the_sub_model_as_a_cluster_of_its_own_layers():
    text = _dot("shared_vision", expand=True)
    inside = _cluster(text, "vision_model")
    assert inside[:2] == ['label="vision_model\\nFunctional\\n2 calls";', 'style="rounded,dashed"; color="#7b61b5";']
    assert [line.split(" [")[0] for line in inside if "->" not in line][2:] == [
        '"vision_model/input:digit_input"', '"vision_model/conv_1"', '"vision_model/conv_2"',
        '"vision_model/pool"', '"vision_model/out"', '"vision_model/output:out"']
    assert '"vision_model/conv_1" -> "vision_model/conv_2" [label="(None, 25, 25, 64)"];' in inside
    # The outer calls enter and leave through the cluster's own input and output.
    outside = [line for line in _lines(text) if line not in inside]
    assert [line for line in outside if "->" in line and "vision_model" in line] == [
        '"input:digit_a" -> "vision_model/input:digit_input" [label="node 0: (None, 27, 27, 1)"];',
        '"input:digit_b" -> "vision_model/input:digit_input" [label="node 1: (None, 27, 27, 1)"];',
        '"vision_model/output:out" -> "concatenated" [label="out_a\\nnode 0: (None, 7744)"];',
        '"vision_model/output:out" -> "concatenated" [label="out_b\\nnode 1: (None, 7744)"];',
    ]
    assert not any(line.startswith('"vision_model" [') for line in outside)
    # The outer Dense `out` and the sub-model's Flatten `out` stay two nodes.
    assert '"out" [label="out\\nDense"];' in outside
    assert '"vision_model/out" [label="out\\nFlatten"];' in inside


def test_expand_draws_a_sequential_sub_model_as_a_chain():
    text = _dot("vqa", expand=True)
    inside = _cluster(text, "vision_model")
    assert inside[0] == 'label="vision_model\\nSequential";'
    assert inside[-1] == '"vision_model/max_pooling2d_2" -> "vision_model/flatten" [label="(None, 25, 25, 256)"];'
    lines = _lines(text)
    assert '"input:image_input" -> "vision_model/input:image" [label="(None, 224, 224, 3)"];' in lines
    assert '"vision_model/flatten" -> "merged" [label="encoded_image\\n(None, 160000)"];' in lines


def test_chained_calls_keywords_repeats_and_named_outputs(write_spec):
    spec = write_spec(
        "inputs: {x: [4], q: [3, 4]}\n"
        "layers:\n  shared: {Dense: {units: 4}}\n"
        "edges:\n"
        "  first: {layer: shared, in: x}\n"
        "  second: {layer: shared, in: first}\n"
        "  deep: {Dense: {units: 2}, repeat: 2}\n"
        "  enc: {LSTM: {units: 5, return_state: true}, in: q, outputs: [seq, h, c]}\n"
        "  states: {Concatenate: {}, in: [h, c]}\n"
        "  att: {MultiHeadAttention: {num_heads: 1, key_dim: 2}, in: {query: q, value: q}}\n"
        "outputs: [deep, states, att]\n")
    lines = _lines(to_dot(_built(spec)))
    assert [line for line in lines if "->" in line] == [
        '"input:x" -> "shared" [label="node 0: (None, 4)"];',
        '"shared" -> "shared" [label="first\\nnode 0 -> node 1: (None, 4)"];',
        '"shared" -> "deep_1" [label="second\\nnode 1: (None, 4)"];',
        '"deep_1" -> "deep_2" [label="(None, 2)"];',
        '"input:q" -> "enc" [label="(None, 3, 4)"];',
        '"enc" -> "states" [label="h\\n(None, 5)"];',
        '"enc" -> "states" [label="c\\n(None, 5)"];',
        '"input:q" -> "att" [label="query=(None, 3, 4)"];',
        '"input:q" -> "att" [label="value=(None, 3, 4)"];',
        '"deep_2" -> "output:deep" [label="(None, 2)"];',
        '"states" -> "output:states" [label="(None, 10)"];',
        '"att" -> "output:att" [label="(None, 3, 4)"];',
    ]


def test_text_is_the_same_for_every_build():
    model_def, _ = read_spec(SPECS / "vqa.yaml")
    first = to_dot(build(model_def, compile=False), expand=True)
    assert to_dot(build(model_def, compile=False), expand=True) == first


def test_quotes_and_backslashes_are_escaped():
    assert graph._quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


# ------------------------------------------------------------------ writing
def test_dot_file_is_the_text(tmp_path):
    path = tmp_path / "model.dot"
    path.write_text("old", encoding="utf-8")
    write_picture(_dot("shared_conv"), path)
    assert path.read_text(encoding="utf-8") == _dot("shared_conv")
    assert [p.name for p in tmp_path.iterdir()] == ["model.dot"]  # no temporary file left


@needs_dot
def test_svg_is_rendered_by_graphviz(tmp_path):
    path = tmp_path / "model.svg"
    write_picture(_dot("shared_conv"), path)
    svg = path.read_text(encoding="utf-8")
    assert "<svg" in svg
    assert svg.count("<title>conv</title>") == 1
    assert "node 1: (None, 64, 64, 3)" in svg
    assert [p.name for p in tmp_path.iterdir()] == ["model.svg"]


@needs_dot
def test_png_is_rendered_by_graphviz(tmp_path):
    path = tmp_path / "model.png"
    write_picture(_dot("shared_lstm"), path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
@pytest.mark.parametrize("stem", sorted(path.stem for path in SPECS.glob("*.yaml")))
def test_every_spec_renders_collapsed_and_expanded(tmp_path, stem):
    for expand in (False, True):
        write_picture(_dot(stem, expand), tmp_path / "model.svg")  # dot refuses invalid DOT


def _error(text, path):
    with pytest.raises(RunError) as info:
        write_picture(text, path)
    [diagnostic] = info.value.diagnostics
    return diagnostic


def test_missing_dot_says_to_install_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    path = tmp_path / "model.svg"
    diagnostic = _error(_dot("shared_conv"), path)
    assert str(diagnostic.location) == str(path)
    assert diagnostic.message == "cannot draw .svg: Graphviz's 'dot' program is not installed"
    assert diagnostic.hint == ("install Graphviz (e.g. apt-get install graphviz, or brew install graphviz), "
                               "or write a .dot file")
    assert not path.exists()


def test_unknown_suffix_lists_the_ones_that_work(tmp_path):
    diagnostic = _error(_dot("shared_conv"), tmp_path / "model.jpg")
    assert diagnostic.message == "cannot write a picture as '.jpg'"
    assert diagnostic.hint == "name the file .dot (Graphviz text), .svg or .png (drawn by Graphviz)"
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_failing_dot_reports_its_stderr_and_writes_nothing(tmp_path):
    path = tmp_path / "model.svg"
    diagnostic = _error("digraph {", path)
    assert diagnostic.message.startswith("Graphviz's 'dot' failed: Error: <stdin>: syntax error")
    assert list(tmp_path.iterdir()) == []


def test_dot_that_hangs_is_stopped(tmp_path, monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    text = _dot("shared_conv")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(subprocess, "run", hang)
    diagnostic = _error(text, tmp_path / "model.png")
    assert diagnostic.message == "Graphviz's 'dot' did not finish within 120 seconds"
    assert list(tmp_path.iterdir()) == []


def test_cli_graph_writes_dot_and_refuses_other_suffixes(tmp_path):
    from click.testing import CliRunner

    from kspec.cli import main

    target = tmp_path / "model.dot"
    result = CliRunner().invoke(main, ["graph", str(SPECS / "shared_conv.yaml"), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {target}\n"
    assert '  "input:b" -> "conv" [label="node 1: (None, 64, 64, 3)"];' in target.read_text().splitlines()
    result = CliRunner().invoke(main, ["graph", str(SPECS / "shared_conv.yaml"), "-o", str(tmp_path / "m.jpg")])
    assert result.exit_code == 2
    assert not (tmp_path / "m.jpg").exists()
