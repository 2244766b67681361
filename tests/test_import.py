"""Keras model -> spec -> model: `kspec.importer` keeps structure, names and outputs.

Each round trip writes the imported spec to a file, reads and builds it as
`kspec build` would, and compares the rebuilt model with the original:
layer classes, every layer's config (names included), each layer's calls
(which tensors, of which layers, feed each call, in node order), parameter
count, output names and shapes; then, with the original's weights copied in
by layer name, the outputs on the same random inputs.
"""

from __future__ import annotations

import inspect
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import yaml
from conftest import SPECS
from keras import layers, ops
from seed_models import SEED_MODELS

from kspec.build import build
from kspec.errors import RunError
from kspec.importer import from_model, import_file
from kspec.spec import read_spec


# ------------------------------------------------------------------ helpers
def _plain(value: Any) -> Any:
    """A config as JSON has it: tuples are lists (as in a .keras file and in YAML)."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v)))


def rebuild(text: str, tmp_path: Path) -> Any:
    """Build an imported spec as `kspec build` does."""
    path = tmp_path / "imported.yaml"
    path.write_text(text, encoding="utf-8")
    spec, _ = read_spec(path)
    return build(spec).model


def all_layers(model: Any, prefix: str = "") -> dict[str, Any]:
    """Every layer by path (`sub_model/layer`), sub-models opened."""
    found = {}
    for layer in model.layers:
        found[prefix + layer.name] = layer
        if isinstance(layer, keras.Model):
            found.update(all_layers(layer, f"{prefix}{layer.name}/"))
    return found


def _is_operation(entry: dict[str, Any]) -> bool:
    return not str(entry.get("module", "")).startswith("keras.layers") and entry["class_name"] not in (
        "Functional", "Sequential")


def connections(model: Any) -> dict[str, list[dict[str, Any]]]:
    """Each layer's calls in node order: what feeds each call argument.

    Read from Keras's own serialization of the graph (node indices relative
    to the model), with arguments bound to the layer's call signature, so
    `mha(q, v)` and `mha(query=q, value=v)` are the same call. Operations
    Keras adds by itself (a mask's `not_equal`) are named by class, as their
    names are counters.
    """
    config = model.get_config()
    entries = {entry["name"]: entry for entry in config["layers"]}

    def label(name: str) -> str:
        return f"op:{entries[name]['class_name']}" if _is_operation(entries[name]) else name

    def describe(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            history = value["config"]["keras_history"]
            return [label(history[0]), history[1], history[2], _plain(value["config"]["shape"])]
        if isinstance(value, (list, tuple)):
            return [describe(item) for item in value]
        if isinstance(value, dict):
            return {key: describe(item) for key, item in value.items()}
        return value

    result = {}
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer" or _is_operation(entry):
            continue
        signature = inspect.signature(model.get_layer(entry["name"]).call)
        calls = []
        for node in entry["inbound_nodes"]:
            bound = signature.bind(*node["args"], **node["kwargs"]).arguments
            calls.append({key: describe(value) for key, value in bound.items()})
        result[entry["name"]] = calls
    return result


def _model_config(model: Any) -> dict[str, Any]:
    """A sub-model's own config: its layers are compared one by one."""
    config = _plain(model.get_config())
    if not isinstance(model, keras.Sequential):
        config.pop("layers")
    return config


def assert_same_structure(original: Any, rebuilt: Any) -> None:
    ours, theirs = all_layers(rebuilt), all_layers(original)
    assert sorted(ours) == sorted(theirs)
    for path, layer in theirs.items():
        assert type(ours[path]) is type(layer), path
        if isinstance(layer, keras.Model):
            assert _model_config(ours[path]) == _model_config(layer), path
        else:
            assert _plain(ours[path].get_config()) == _plain(layer.get_config()), path
    models = [("", original, rebuilt)] + [(p, m, ours[p]) for p, m in theirs.items()
                                          if isinstance(m, keras.Model) and not isinstance(m, keras.Sequential)]
    for path, model, other in models:
        if not isinstance(model, keras.Sequential):
            assert connections(other) == connections(model), path or "top level"
    assert rebuilt.name == original.name
    assert rebuilt.count_params() == original.count_params()
    assert _plain(rebuilt.get_config()["input_layers"]) == _plain(original.get_config()["input_layers"])
    assert _plain(rebuilt.get_config()["output_layers"]) == _plain(original.get_config()["output_layers"])
    assert [t.dtype for t in rebuilt.inputs] == [t.dtype for t in original.inputs]
    assert list(rebuilt.output_names) == list(original.output_names)
    assert [tuple(t.shape) for t in rebuilt.outputs] == [tuple(t.shape) for t in original.outputs]


def copy_weights(original: Any, rebuilt: Any) -> None:
    """The original's weights, into the rebuilt model layer by layer, by name."""
    theirs = all_layers(original)
    for path, layer in all_layers(rebuilt).items():
        if not isinstance(layer, (keras.Model, layers.InputLayer)):
            layer.set_weights(theirs[path].get_weights())


def random_inputs(model: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [2] + [d if d is not None else 6 for d in tensor.shape[1:]]
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 10, size=shape).astype(tensor.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(tensor.dtype))
    return arrays


def assert_same_outputs(original: Any, rebuilt: Any) -> None:
    copy_weights(original, rebuilt)
    inputs = random_inputs(original)
    inputs = inputs if len(inputs) > 1 else inputs[0]
    expected = keras.tree.flatten(original(inputs, training=False))
    got = keras.tree.flatten(rebuilt(inputs, training=False))
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs),
                                   rtol=1e-6, atol=1e-6)


def assert_round_trip(original: Any, tmp_path: Path) -> str:
    text = from_model(original)
    rebuilt = rebuild(text, tmp_path)
    assert_same_structure(original, rebuilt)
    assert_same_outputs(original, rebuilt)
    return text


def refusal(model: Any) -> str:
    with pytest.raises(RunError) as info:
        from_model(model)
    return str(info.value)


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("stem", sorted(SEED_MODELS))
def test_seed_models_round_trip(stem, tmp_path):
    make_model, shared = SEED_MODELS[stem]
    text = assert_round_trip(make_model(), tmp_path)
    spec = yaml.safe_load(text)
    for name in shared:  # a shared layer or sub-model is declared once and called by name
        assert name in spec.get("layers", {}) or name in spec.get("models", {})


REFERENCE = Path(__file__).resolve().parent / "import_reference"


@pytest.mark.parametrize("stem", sorted(SEED_MODELS) + ["zoo"])
def test_imported_text_is_unchanged(stem):
    """The text written for each seed model (and the zoo below), byte for byte as pinned in import_reference/."""
    model = _zoo() if stem == "zoo" else SEED_MODELS[stem][0]()
    # The zoo's frozen Sequential names its own input: Keras counts such names per process.
    text = re.sub(r"\binput_layer_\d+\b", "input_layer", from_model(model))
    assert text == (REFERENCE / f"{stem}.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("stem", ["digits_cnn", "digit_pairs"])
def test_digit_models_round_trip(stem, tmp_path):
    spec, _ = read_spec(SPECS / f"{stem}.yaml")
    original = build(spec).model
    assert_round_trip(original, tmp_path)


APPLICATIONS = {
    "ResNet50": (32, 32, 3),
    "MobileNetV2": (32, 32, 3),
    "DenseNet121": (32, 32, 3),
    "InceptionV3": (75, 75, 3),
    "EfficientNetB0": (32, 32, 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_applications_round_trip(name, tmp_path):
    factory = getattr(keras.applications, name)
    original = factory(weights=None, input_shape=APPLICATIONS[name], classes=10)
    assert_round_trip(original, tmp_path)


def test_model_names_a_spec_cannot_hold_need_a_name_of_their_own(tmp_path):
    inputs = keras.Input((3,), name="x")
    original = keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs), name="two\nlines")
    assert refusal(original) == (
        "two\nlines: error: model 'two\nlines' has a name a spec cannot use\n"
        "  hint: a model name is one line of text without '/'; give the spec a name of its own (the `name` "
        "argument of from_model and import_file, or kspec import --name)")
    rebuilt = rebuild(from_model(original, name="two_lines"), tmp_path)
    assert rebuilt.name == "two_lines"


def _zoo() -> keras.Model:
    """Many constructs in one model: masks, multi-output layers, keyword calls, wrappers, sub-models."""
    ids = keras.Input((7,), dtype="int32", name="ids")
    seq = keras.Input((7, 6), name="seq")
    embedded = layers.Embedding(20, 6, mask_zero=True, name="embedded")(ids)  # its mask is an operation
    encoded, state_h, state_c = layers.LSTM(5, return_state=True, return_sequences=True, name="encoder")(embedded)
    attended = layers.MultiHeadAttention(2, 3, name="attention")(encoded, encoded)  # positional query, value
    bidirectional = layers.Bidirectional(layers.GRU(4, name="gru"), name="bidirectional")(seq)
    timed = layers.TimeDistributed(layers.Dense(3, name="inner_dense"), name="timed")(seq)
    dense = layers.Dense(
        4, kernel_initializer=keras.initializers.HeNormal(seed=3),
        bias_initializer=keras.initializers.Constant(0.1),
        kernel_regularizer=keras.regularizers.L2(1e-4), kernel_constraint="non_neg",
        name="regularized")
    frozen_norm = layers.LayerNormalization(epsilon=1e-5, trainable=False, name="frozen_norm")
    wide = layers.Dense(8, dtype="float64", name="wide")(layers.Flatten(name="flat")(timed))

    inner_in = keras.Input((5,), name="inner_in")
    inner = keras.Model(inner_in, layers.Dense(3, name="d")(inner_in), name="inner")
    tower_in = keras.Input((5,), name="tower_in")
    tower = keras.Model(tower_in, inner(layers.Dense(5, name="pre")(tower_in)), name="tower")
    frozen = keras.Sequential([layers.Dense(4, name="custom_name"), layers.Dense(4, name="dense")], name="frozen")
    frozen.trainable = False

    pooled = layers.GlobalAveragePooling1D(name="pooled")(attended)
    merged = layers.Concatenate(name="merged")([pooled, state_h, state_c, dense(bidirectional)])
    towered_a, towered_b = tower(state_h), tower(state_c)
    out = layers.Concatenate(name="out")([frozen_norm(merged), frozen(merged), towered_a, towered_b,
                                          layers.Activation("relu", name="cast")(wide)])
    return keras.Model([ids, seq], [out, dense(bidirectional)], name="zoo")


def test_many_constructs_round_trip(tmp_path):
    text = assert_round_trip(_zoo(), tmp_path)
    spec = yaml.safe_load(text)
    edges = spec["edges"]
    assert edges["encoder"]["outputs"] == ["encoder_0", "encoder_1", "encoder_2"]
    assert edges["attention"]["in"] == {"query": "encoder_0", "value": "encoder_0"}
    assert "regularized" in spec["layers"] and edges["regularized_1"] == {"layer": "regularized",
                                                                           "in": "bidirectional"}
    assert spec["models"]["frozen"]["trainable"] is False
    assert spec["models"]["frozen"]["sequential"] == [{"Dense": {"units": 4, "name": "custom_name"}},
                                                      {"Dense": {"units": 4}}]
    assert "not_equal" not in text  # the mask Keras computes by itself is not written


def test_sequential_model_round_trips_as_a_chain(tmp_path):
    original = keras.Sequential([keras.Input((6,), name="features"), layers.Dense(4, activation="relu"),
                                 layers.Dropout(0.5), layers.Dense(2)], name="chain")
    text = from_model(original)
    rebuilt = rebuild(text, tmp_path)
    assert [type(layer) for layer in rebuilt.layers[1:]] == [type(layer) for layer in original.layers]
    for ours, theirs in zip(rebuilt.layers[1:], original.layers):
        assert _plain(ours.get_config()) == _plain(theirs.get_config())
    assert rebuilt.count_params() == original.count_params()
    assert_same_outputs(original, rebuilt)


def test_shared_layer_calls_keep_node_order(tmp_path):
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = layers.Dense(4, name="shared")
    second = shared(b)  # node 0 is the call on b
    first = shared(layers.Dense(4, name="pre")(a))  # node 1 reads a layer made after node 0
    again = shared(first)  # node 2 reads node 1
    original = keras.Model([a, b], [again, second], name="order")
    text = assert_round_trip(original, tmp_path)
    calls = [name for name, edge in yaml.safe_load(text)["edges"].items() if edge.get("layer") == "shared"]
    assert calls == ["shared_0", "shared_1", "shared_2"]


def test_file_round_trip_carries_compile_settings(tmp_path):
    make_model, _ = SEED_MODELS["multi_io"]
    original = make_model()
    original.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-3),
                     loss={"main_output": "binary_crossentropy", "aux_output": "binary_crossentropy"},
                     loss_weights={"main_output": 1.0, "aux_output": 0.2},
                     metrics={"main_output": ["accuracy"], "aux_output": [keras.metrics.AUC(num_thresholds=50)]})
    path = tmp_path / "multi_io.keras"
    original.save(path)
    spec = yaml.safe_load(import_file(path))
    assert spec["optimizer"] == {"Adam": {"learning_rate": 0.002}}
    assert spec["loss"] == {"main_output": "binary_crossentropy", "aux_output": "binary_crossentropy"}
    assert spec["loss_weights"] == {"main_output": 1.0, "aux_output": 0.2}
    assert spec["metrics"] == {"main_output": ["accuracy"], "aux_output": [{"AUC": {"num_thresholds": 50}}]}


def _without_automatic_names(config: dict[str, Any]) -> dict[str, Any]:
    """Optimizer and metric names are counters (adam, adam_1, ...) unless given."""
    text = json.dumps(_plain(config))
    return json.loads(re.sub(r'"name": "(\w+?)(_\d+)?"', r'"name": "\1"', text))


def test_compile_settings_rebuild_to_the_same_compile_config(tmp_path):
    make_model, _ = SEED_MODELS["multi_io"]
    original = make_model()
    original.compile(optimizer=keras.optimizers.RMSprop(learning_rate=5e-4, momentum=0.5),
                     loss=["binary_crossentropy", keras.losses.BinaryCrossentropy(from_logits=True)],
                     loss_weights=[1.0, 0.2],
                     metrics=[["accuracy"], ["mae", keras.metrics.AUC(name="auc")]])
    text = from_model(original)
    assert "optimizer: {RMSprop: {learning_rate: 0.0005, momentum: 0.5}}" in text
    rebuilt = rebuild(text, tmp_path)
    assert _without_automatic_names(rebuilt.get_compile_config()) == \
        _without_automatic_names(original.get_compile_config())


def test_string_compile_settings_stay_names(tmp_path):
    original = SEED_MODELS["mlp"][0]()
    original.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    text = from_model(original)
    assert text.endswith("optimizer: rmsprop\nloss: categorical_crossentropy\nmetrics: [accuracy]\n")
    rebuilt = rebuild(text, tmp_path)
    assert _without_automatic_names(rebuilt.get_compile_config()) == \
        _without_automatic_names(original.get_compile_config())


def test_an_uncompiled_model_has_no_compile_settings():
    spec = yaml.safe_load(from_model(SEED_MODELS["mlp"][0]()))
    assert not {"optimizer", "loss", "loss_weights", "metrics"} & set(spec)


def test_mixed_precision_layers_keep_their_policy(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        x = keras.Input((3,), name="x")
        original = keras.Model(x, layers.Dense(2, name="half")(x), name="mixed")
    finally:
        keras.config.set_dtype_policy("float32")
    text = assert_round_trip(original, tmp_path)
    assert yaml.safe_load(text)["edges"]["half"] == {"Dense": {"units": 2, "dtype": "mixed_float16"}}


# ------------------------------------------------------------ readability
def test_default_arguments_are_left_out():
    spec = yaml.safe_load(from_model(SEED_MODELS["mlp"][0]()))
    assert spec["edges"] == {
        "hidden": {"Dense": {"units": 64, "activation": "relu"}, "repeat": 2},  # hidden_1, hidden_2
        "predictions": {"Dense": {"units": 10, "activation": "softmax"}},
    }


def test_arguments_that_follow_from_others_are_left_out():
    x = keras.Input((8, 8, 3), name="x")
    y = layers.MaxPooling2D(pool_size=3, name="pool")(x)  # strides default to pool_size
    spec = yaml.safe_load(from_model(keras.Model(x, y, name="pooling")))
    assert spec["edges"]["pool"] == {"MaxPooling2D": {"pool_size": [3, 3]}}


def test_multi_io_spec_reads_like_the_hand_written_one():
    assert from_model(SEED_MODELS["multi_io"][0]()) == """\
name: multi_io

inputs:
  main_input: {shape: [100], dtype: int32}
  aux_input: {shape: [5]}

edges:
  embedded: {Embedding: {input_dim: 10000, output_dim: 512}, in: main_input}
  lstm_out: {LSTM: {units: 32}}
  merged: {Concatenate: {}, in: [lstm_out, aux_input]}
  deep: {Dense: {units: 64, activation: relu}, repeat: 3}
  main_output: {Dense: {units: 1, activation: sigmoid}}
  aux_output: {Dense: {units: 1, activation: sigmoid}, in: lstm_out}

outputs: [main_output, aux_output]
"""


# --------------------------------------------------------------- refusals
@keras.saving.register_keras_serializable(package="kspec_tests")
class Scale(layers.Layer):
    """A custom layer: registered with Keras, but not a class of keras.layers."""

    def call(self, inputs):
        return inputs * 2.0


def _arithmetic():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    return keras.Model([a, b], layers.Dense(2, name="out")(ops.maximum(a, b)), name="arithmetic")


def _activation():
    x = keras.Input((3,), name="x")
    return keras.Model(x, ops.tanh(layers.Dense(2, name="dense")(x)), name="activation")


@pytest.mark.parametrize("make, op_class, hint", [
    (_arithmetic, "Maximum", "use the layer keras.layers.Maximum instead"),
    (_activation, "Tanh", "do it with a layer from keras.layers instead"),
], ids=["tensor arithmetic", "keras.ops call"])
def test_keras_ops_are_refused_by_name(make, op_class, hint):
    model = make()
    op = next(op for op in model.operations if type(op).__name__ == op_class)  # named add, add_1, ...
    assert refusal(model) == (
        f"{model.name}: error: '{op.name}' is a keras.ops operation ({op_class}), not a layer: Keras records one "
        "for tensor arithmetic such as x + y, or a keras.ops call on a model's tensors; a spec has no form for it\n"
        f"  hint: {hint}")


def test_arithmetic_becomes_the_layers_that_compute_it(tmp_path):
    """x + y, x * 0.5, 1 - x, ...: each keras.ops call becomes Add, Subtract, Multiply or Rescaling, named as it."""
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    x = layers.Dense(3, name="dense")(a)
    y = (1.0 - ((x + b) * 0.5 - 2.0)) / 4.0
    original = keras.Model([a, b], layers.Dense(2, name="out")(y * x), name="arithmetic")
    names = [op.name for op in original.operations if type(op).__module__ == "keras.src.ops.numpy"]
    assert len(names) == 6  # add, multiply, subtract, subtract, true_divide, multiply

    ra, rb = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    rx = layers.Dense(3, name="dense")(ra)
    ry = layers.Add(name=names[0])([rx, rb])
    ry = layers.Rescaling(0.5, name=names[1])(ry)
    ry = layers.Rescaling(1.0, -2.0, name=names[2])(ry)
    ry = layers.Rescaling(-1.0, 1.0, name=names[3])(ry)
    ry = layers.Rescaling(0.25, name=names[4])(ry)
    ry = layers.Multiply(name=names[5])([ry, rx])
    reference = keras.Model([ra, rb], layers.Dense(2, name="out")(ry), name="arithmetic")

    rebuilt = rebuild(from_model(original), tmp_path)
    assert_same_structure(reference, rebuilt)
    for name in ("dense", "out"):  # the stand-ins have no weights
        rebuilt.get_layer(name).set_weights(original.get_layer(name).get_weights())
    inputs = random_inputs(original)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rebuilt(inputs)),
                               keras.ops.convert_to_numpy(original(inputs)), rtol=1e-6, atol=1e-6)


def test_inception_resnet_scale_layer_becomes_add_and_rescaling(tmp_path):
    """InceptionResNetV2's CustomScaleLayer (a + b * scale) is not a keras.layers class; Add and Rescaling are."""
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x = keras.Input((4,), name="x")
    branch = layers.Dense(4, name="branch")(x)
    original = keras.Model(x, CustomScaleLayer(0.17, name="block1")([x, branch]), name="scaled")

    rx = keras.Input((4,), name="x")
    rbranch = layers.Dense(4, name="branch")(rx)
    scaled = layers.Add(name="block1")([rx, layers.Rescaling(0.17, name="block1_scale")(rbranch)])
    reference = keras.Model(rx, scaled, name="scaled")

    rebuilt = rebuild(from_model(original), tmp_path)
    assert_same_structure(reference, rebuilt)
    rebuilt.get_layer("branch").set_weights(original.get_layer("branch").get_weights())
    inputs = random_inputs(original)[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(rebuilt(inputs)),
                               keras.ops.convert_to_numpy(original(inputs)), rtol=1e-6, atol=1e-6)


def test_lambda_layers_are_refused():
    x = keras.Input((3,), name="x")
    model = keras.Model(x, layers.Lambda(lambda t: t * 2, name="double")(x), name="with_lambda")
    assert refusal(model) == (
        "with_lambda: error: layer 'double' is a Lambda layer: it runs Python code, which a spec cannot carry\n"
        "  hint: rewrite it with layers from keras.layers")


def test_custom_layers_are_refused_inside_sub_models_too():
    x = keras.Input((3,), name="x")
    inner = keras.Sequential([keras.Input((3,)), Scale(name="scale")], name="inner")
    model = keras.Model(x, inner(x), name="with_custom")
    assert refusal(model) == (
        f"with_custom: error: layer 'inner/scale' is of class '{Scale.__module__}.Scale', which is not a class "
        "of keras.layers; a spec names keras.layers classes only\n"
        "  hint: rewrite it with layers from keras.layers")


def test_a_layer_shared_across_models_is_refused():
    shared = layers.Dense(3, name="shared")
    inner_in = keras.Input((3,), name="inner_in")
    inner = keras.Model(inner_in, shared(inner_in), name="inner")
    x = keras.Input((3,), name="x")
    model = keras.Model(x, shared(inner(x)), name="leaky")
    assert refusal(model) == (
        "leaky: error: layer 'shared' is used both in model 'inner' and in model 'the top level'; a spec "
        "shares a layer only within one model\n"
        "  hint: share the whole sub-model instead, or give each model its own layer")


def test_unwritable_config_values_are_refused():
    x = keras.Input((3,), name="x")
    model = keras.Model(x, layers.Dense(2, activation=lambda t: t, name="odd")(x), name="odd_activation")
    with pytest.warns(UserWarning, match="lambda"):  # Keras's own warning, as it serializes the lambda
        message = refusal(model)
    assert re.fullmatch(
        r"odd_activation: error: argument 'activation' of layer 'odd' is a dict \(\{'value': .*\.\.\.\), "
        r"not the name of one of Keras's activations, which is all a spec can write\n"
        r"  hint: use a Keras activation, or an Activation layer", message)


def test_dict_outputs_and_frozen_models_are_refused():
    x = keras.Input((3,), name="x")
    assert refusal(keras.Model(x, {"y": layers.Dense(2, name="y")(x)}, name="named_outputs")) == (
        "named_outputs: error: model 'named_outputs' returns a dict of outputs; a spec's outputs are a list\n"
        "  hint: build the model with a list of outputs")
    frozen = keras.Model(x, layers.Dense(2, name="z")(x), name="frozen")
    frozen.trainable = False
    assert refusal(frozen) == (
        "frozen: error: model 'frozen' is frozen (trainable=False); a spec's top-level model cannot be frozen\n"
        "  hint: freeze a sub-model instead ('trainable: false'), or import the model before freezing it")


# ---------------------------------------------------------- .keras files
def test_import_file_reads_a_saved_model(tmp_path):
    original = SEED_MODELS["shared_vision"][0]()
    path = tmp_path / "model.keras"
    original.save(path)
    rebuilt = rebuild(import_file(path), tmp_path)
    assert_same_structure(original, rebuilt)
    assert_same_outputs(original, rebuilt)


def test_missing_and_corrupt_files_are_run_errors(tmp_path):
    with pytest.raises(RunError) as info:
        import_file(tmp_path / "absent.keras")
    assert str(info.value) == (f"{tmp_path / 'absent.keras'}: error: no such file: '{tmp_path / 'absent.keras'}'\n"
                               "  hint: give a model saved with model.save('NAME.keras')")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip file")
    with pytest.raises(RunError) as info:
        import_file(corrupt)
    assert str(info.value) == (f"{corrupt}: error: '{corrupt}' is not a .keras file (not a zip archive, or cut "
                               "short)\n  hint: copy the file again if a copy was interrupted, or give a model "
                               "saved with model.save('NAME.keras')")


def test_files_that_need_unsafe_loading_are_refused(tmp_path):
    x = keras.Input((3,), name="x")
    path = tmp_path / "lambda.keras"
    keras.Model(x, layers.Lambda(lambda t: t * 2, name="double")(x)).save(path)
    with pytest.raises(RunError) as info:
        import_file(path)
    assert str(info.value) == (
        f"{path}: error: '{path}' holds Python code (a Lambda layer or a lambda function), which Keras loads "
        "only with safe_mode off\n"
        "  hint: kspec never runs code from a file, and a spec cannot carry code; rewrite that part with "
        "layers from keras.layers")


def test_files_with_unknown_classes_are_refused(tmp_path):
    x = keras.Input((3,), name="x")
    path = tmp_path / "custom.keras"
    keras.Model(x, Scale(name="scale")(x)).save(path)
    with zipfile.ZipFile(path) as archive:  # as if saved by a program that registered another class
        files = {name: archive.read(name) for name in archive.namelist()}
    files["config.json"] = files["config.json"].replace(b"kspec_tests>Scale", b"elsewhere>Scale")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(RunError) as info:
        import_file(path)
    assert str(info.value).startswith(f"{path}: error: '{path}' uses the class ")
    assert "a spec names only classes of keras.layers" in str(info.value)


def test_cli_import_round_trip(tmp_path):
    from click.testing import CliRunner

    from kspec.cli import main

    runner = CliRunner()
    saved = tmp_path / "model.keras"
    assert runner.invoke(main, ["build", str(SPECS / "shared_vision.yaml"), "-o", str(saved)]).exit_code == 0
    spec = tmp_path / "imported.yaml"
    result = runner.invoke(main, ["import", str(saved), "-o", str(spec)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {spec}\n"
    result = runner.invoke(main, ["build", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] == 53_057
    printed = runner.invoke(main, ["import", str(saved)])
    assert printed.stdout == spec.read_text()
    missing = runner.invoke(main, ["import", str(tmp_path / "none.keras")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output


def test_from_model_is_exported():
    import kspec

    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs), name="tiny")
    assert kspec.from_model(model).startswith("name: tiny\n")
