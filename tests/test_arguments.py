"""Argument kinds: what validate refuses (pinned in tests/specs/invalid/argument_*) and what it must let through."""

from __future__ import annotations

import pytest

from kspec import catalogue
from kspec.spec import validate


def errors(write_spec, edge: str, extra: str = "") -> list[str]:
    path = write_spec(f"inputs: {{x: [6, 4]}}\nedges:\n  y: {edge}\noutputs: [y]\n{extra}")
    return [d.message for d in validate(path)[1] if d.is_error]


def test_the_catalogue_knows_kinds_from_defaults_and_docstrings():
    layers = catalogue.load()["layers"]
    assert layers["Dense"]["kinds"]["use_bias"] == "bool"  # default True
    assert layers["Dense"]["kinds"]["units"] == "int"  # required: "units: Positive integer, ..."
    assert layers["Dropout"]["kinds"]["rate"] == "float"  # required: "rate: Float between 0 and 1."
    assert layers["Conv2D"]["kinds"]["strides"] == "tuple"  # default (1, 1)
    assert "kernel_size" not in layers["Conv2D"]["kinds"]  # "int or tuple/list of 2 integer": no one kind
    assert catalogue.load()["optimizers"]["kinds"]["Adam"]["learning_rate"] == "float"


@pytest.mark.parametrize("edge", [
    "{Dropout: {rate: 0}}",  # an integer where a float goes
    "{Dense: {units: 2, use_bias: null}}",  # null: Keras's own default for many
    "{Conv1D: {filters: 2, kernel_size: [3], strides: [1]}}",  # lists where Keras takes per-axis values
    "{MaxPooling1D: {pool_size: 2, strides: null}}",
    "{LSTM: {units: 2, use_cudnn: false}}",  # a str-kind argument that also takes a flag
    "{Dense: {units: 2, kernel_initializer: {RandomNormal: {stddev: 1}}, kernel_regularizer: {L2: {l2: 0.01}}}}",
    "{Dense: {units: 2, kernel_constraint: max_norm, bias_regularizer: l2, activation: null}}",
    "{Dense: {units: 2, dtype: float64}}",
    "{Rescaling: {scale: [0.5, 0.5, 0.5, 0.5]}}",  # a per-channel list where the doc says Float
    "{TimeDistributed: {layer: {Dense: {units: 2, use_bias: false}}}}",
    "{RNN: {cell: [{LSTMCell: {units: 2}}, {GRUCell: {units: 3, kernel_initializer: {Orthogonal: {}}}}]}}",
    "{Bidirectional: {layer: {LSTM: {units: 2, return_sequences: true}}, "
    "backward_layer: {LSTM: {units: 2, return_sequences: true, go_backwards: true}}}}",
])
def test_values_keras_takes_pass(write_spec, edge):
    assert errors(write_spec, edge) == []


def test_class_arguments_of_compile_settings_are_checked(write_spec):
    extra = "optimizer: {SGD: {momentum: 0, nesterov: true}}\nloss: {Huber: {delta: 2}}\n"
    assert errors(write_spec, "{Dense: {units: 1}}", extra) == []
    extra = ("optimizer: {SGD: {nesterov: 1}}\nloss: {BinaryCrossentropy: {label_smoothing: lots}}\n"
             "metrics: [{Precision: {thresholds: 0.5}}]\n")
    assert errors(write_spec, "{Dense: {units: 1}}", extra) == [
        "argument 'nesterov' of optimizer SGD takes true or false, not the number 1",
        "argument 'label_smoothing' of loss BinaryCrossentropy takes a number, not the string 'lots'"]


def test_an_integer_dtype_is_refused_only_where_there_are_weights(write_spec):
    assert errors(write_spec, "{Activation: {activation: relu, dtype: int32}}") == []
    assert errors(write_spec, "{Embedding: {input_dim: 4, output_dim: 2, dtype: int32}}") == [
        "Embedding has trainable weights, which cannot have dtype 'int32'; gradients need a float dtype"]


def test_nested_classes_are_checked_where_they_sit(write_spec):
    """A class of no kind kspec builds, in an argument with no known kind; a schedule where a number goes."""
    assert errors(write_spec, "{Pipeline: {layers: [{Rescaling: {scale: 2}}, {Normalizaton: {}}]}}") == [
        "unknown layer class 'Normalizaton' in argument 'layers' of Pipeline; did you mean 'Normalization'?"]
    assert errors(write_spec, "{Dense: {units: 2, bias_constraint: {L2: {}}}}") == [
        "argument 'bias_constraint' of Dense takes a constraint, not the regularizer class 'L2'"]
    assert errors(write_spec, "{Dense: {units: 2, dtype: {FloatPolicy: {}}}}") == []  # dtype: Keras's to judge
    assert errors(write_spec, "{StringLookup: {vocabulary: {Foo: {}}}}") == [
        "unknown class 'Foo' in argument 'vocabulary' of StringLookup"]
    schedule = "optimizer: {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.1, decay_steps: 9}}}}\n"
    assert errors(write_spec, "{Dense: {units: 1}}", schedule + "loss: mse\n") == []
