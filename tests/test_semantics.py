"""Semantic checks that are not errors, and the catalogue they rely on."""

from __future__ import annotations

import pytest

from kspec import catalogue
from kspec.spec import validate


def _diagnostics(write_spec, text):
    _, diagnostics = validate(write_spec(text))
    return [(d.severity, d.location.line, d.location.column, d.message) for d in diagnostics]


def test_deprecated_keras_argument_is_a_warning(write_spec):
    text = ("inputs: {x: {shape: [10], dtype: int32}}\n"
            "edges:\n  e: {Embedding: {input_dim: 50, output_dim: 4, input_length: 10}}\noutputs: [e]\n")
    assert _diagnostics(write_spec, text) == [
        ("warning", 3, 49, "argument 'input_length' of Embedding is deprecated in Keras "
                           f"{catalogue.load()['keras_version']} and ignored"),
    ]


def test_declared_but_unused_sub_model_is_a_warning(write_spec):
    text = ("models:\n  enc: {sequential: [Flatten]}\n"
            "inputs: {x: [4]}\nedges:\n  y: {Dense: {units: 2}}\noutputs: [y]\n")
    assert _diagnostics(write_spec, text) == [("warning", 2, 3, "'enc' is declared but never called")]


def test_implicit_input_is_the_tensor_above(write_spec):
    from kspec.spec import read_spec
    from kspec.spec.calls import call_inputs

    model, _ = read_spec(write_spec("inputs: {x: [4]}\nedges:\n  a: {Dense: {units: 3}}\n"
                                    "  b: {Dense: {units: 2}}\noutputs: [b]\n"))
    assert call_inputs(model, 0).name == "x"
    assert call_inputs(model, 1).name == "a"


def test_node_indices_follow_file_order(write_spec):
    from kspec.spec import read_spec
    from kspec.spec.calls import node_indices

    model, _ = read_spec(write_spec(
        "inputs: {a: [4], b: [4]}\nlayers:\n  d: {Dense: {units: 4}}\n"
        "edges:\n  db: {layer: d, in: b}\n  da: {layer: d, in: a}\n  dd: {layer: d, in: db}\n"
        "outputs: [da, dd]\n"))
    assert node_indices(model) == {0: 0, 1: 1, 2: 2}


@pytest.mark.parametrize("metrics", ["[accuracy]", "{a: [accuracy], b: mse}", "[[accuracy], [mse]]"])
def test_metric_forms_validate(write_spec, metrics):
    text = ("inputs: {x: [4]}\nedges:\n  a: {Dense: {units: 1}}\n  b: {Dense: {units: 1}, in: x}\n"
            f"outputs: [a, b]\nloss: mse\nmetrics: {metrics}\n")
    assert _diagnostics(write_spec, text) == []


def test_catalogue_matches_installed_keras():
    # Regenerate with `python -m kspec.catalogue` after upgrading Keras.
    assert catalogue.dumps(catalogue.generate()) == catalogue.CATALOGUE_PATH.read_text(encoding="utf-8")


def test_catalogue_knows_the_layers_the_seed_uses():
    layers = catalogue.load()["layers"]
    for name in ("Dense", "LSTM", "Embedding", "Conv2D", "MaxPooling2D", "Flatten", "Concatenate", "Add"):
        assert name in layers
    assert layers["Dense"]["required"] == ["units"]
    assert "query" in layers["MultiHeadAttention"]["call"]["params"]
