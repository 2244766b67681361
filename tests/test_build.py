"""Each seed spec builds to exactly the model the seed writes by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import SPECS
from seed_models import SEED_MODELS

from kspec.build import build
from kspec.errors import Location, SpecError
from kspec.spec import read_spec


def _build(path):
    model_def, _ = read_spec(path)
    return build(model_def)


def _layer_summary(model):
    return [(layer.name, type(layer).__name__) for layer in model.layers]


def _comparable_config(layer):
    config = layer.get_config()
    config.pop("name", None)
    return config


@pytest.mark.parametrize("stem", sorted(SEED_MODELS))
def test_seed_spec_builds_the_hand_written_model(stem):
    make_expected, shared = SEED_MODELS[stem]
    expected = make_expected()
    built = _build(SPECS / f"{stem}.yaml")
    model = built.model

    assert model.name == expected.name
    assert model.count_params() == expected.count_params()
    assert _layer_summary(model) == _layer_summary(expected)
    for ours, theirs in zip(model.layers, expected.layers):
        assert _comparable_config(ours) == _comparable_config(theirs), ours.name
    assert [tuple(t.shape) for t in model.outputs] == [tuple(t.shape) for t in expected.outputs]
    assert [t.dtype for t in model.inputs] == [t.dtype for t in expected.inputs]
    for name, calls in shared.items():
        layer = model.get_layer(name)
        # One Keras object, called once per edge that names it, in file order.
        assert len(layer._inbound_nodes) == len(expected.get_layer(name)._inbound_nodes) == calls
        for node in range(calls):
            assert built.calls[(name, node)]._keras_history[0] is layer


def test_shared_layer_nodes_follow_file_order():
    built = _build(SPECS / "shared_conv.yaml")
    conv = built.model.get_layer("conv")
    # node 0 is the call on `a` (32x32), node 1 the call on `b` (64x64)
    assert tuple(conv._inbound_nodes[0].input_tensors[0].shape) == (None, 32, 32, 3)
    assert tuple(conv._inbound_nodes[1].input_tensors[0].shape) == (None, 64, 64, 3)
    assert built.calls[("conv", 1)] is built.tensors["conved_b"]


def test_shared_weights_give_equal_outputs_on_equal_inputs():
    model = _build(SPECS / "shared_nodes.yaml").model
    data = np.random.default_rng(0).random((2, 140, 256)).astype("float32")
    encoded_a, encoded_b = model.predict([data, data], verbose=0)
    np.testing.assert_allclose(encoded_a, encoded_b, rtol=1e-6)


def test_compile_settings_reach_keras():
    model = _build(SPECS / "multi_io.yaml").model
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert model.compiled
    # loss_weights given by output name arrive in output order
    config = model.get_compile_config()
    assert config["loss_weights"] == [1.0, 0.2]
    assert config["loss"] == ["binary_crossentropy", "binary_crossentropy"]


def test_submodel_weights_are_loaded_from_a_keras_file(tmp_path, write_spec):
    encoder = tmp_path / "encoder.yaml"
    encoder.write_text(
        "inputs: {x: [4]}\nedges:\n  h: {Dense: {units: 3}}\noutputs: [h]\n", encoding="utf-8")
    trained = _build(encoder).model
    trained.get_layer("h").set_weights([np.full((4, 3), 0.5, "float32"), np.ones(3, "float32")])
    trained.save(tmp_path / "encoder.keras")
    path = write_spec(
        "models:\n"
        "  encoder: {include: encoder.yaml, weights: encoder.keras, trainable: false}\n"
        "inputs: {a: [4], b: [4]}\n"
        "edges:\n"
        "  ea: {layer: encoder, in: a}\n"
        "  eb: {layer: encoder, in: b}\n"
        "  s: {Add: {}, in: [ea, eb]}\n"
        "outputs: [s]\n")
    built = _build(path)
    sub = built.model.get_layer("encoder")
    np.testing.assert_array_equal(sub.get_layer("h").get_weights()[0], np.full((4, 3), 0.5))
    assert sub.trainable is False
    assert built.model.count_params() == 15
    out = built.model.predict([np.ones((1, 4)), np.ones((1, 4))], verbose=0)
    np.testing.assert_allclose(out, np.full((1, 3), 6.0))


def test_keyword_tensor_inputs_and_multiple_outputs(write_spec):
    path = write_spec(
        "inputs:\n  q: [6, 8]\n  v: [5, 8]\n"
        "edges:\n"
        "  attended: {MultiHeadAttention: {num_heads: 2, key_dim: 4}, in: {query: q, value: v, key: v}}\n"
        "  encoder: {LSTM: {units: 3, return_state: true}, outputs: [seq, state_h, state_c]}\n"
        "  joined: {Concatenate: {}, in: [state_h, state_c]}\n"
        "outputs: [seq, joined]\n")
    built = _build(path)
    assert tuple(built.tensors["attended"].shape) == (None, 6, 8)
    assert [tuple(t.shape) for t in built.model.outputs] == [(None, 3), (None, 6)]
    assert built.tensors["state_h"] is built.tensors["encoder"][1]


def test_sequential_submodel_with_nested_layer_argument(write_spec):
    path = write_spec(
        "models:\n"
        "  encoder:\n"
        "    inputs: {tokens: [7, 4]}\n"
        "    sequential:\n"
        "      - Bidirectional: {layer: {LSTM: {units: 3}}}\n"
        "      - Dense: {units: 2, kernel_initializer: {Constant: {value: 0.5}}}\n"
        "inputs: {x: [7, 4]}\n"
        "edges:\n  y: {layer: encoder}\n"
        "outputs: [y]\n")
    model = _build(path).model
    encoder = model.get_layer("encoder")
    assert [layer.name for layer in encoder.layers] == ["bidirectional", "dense"]
    np.testing.assert_array_equal(encoder.get_layer("dense").get_weights()[0], np.full((6, 2), 0.5))


def test_keras_errors_are_reported_at_the_edge(write_spec):
    path = write_spec(
        "inputs:\n  a: [4]\n  b: [5]\n"
        "edges:\n"
        "  s: {Add: {}, in: [a, b]}\n"
        "outputs: [s]\n")
    with pytest.raises(SpecError) as info:
        _build(path)
    [diagnostic] = info.value.diagnostics
    assert (diagnostic.location.line, diagnostic.location.column) == (5, 3)
    assert diagnostic.message == ("Keras rejected the call of Add 's': Inputs have incompatible shapes. "
                                  "Received shapes (4,) and (5,)")


def test_documented_features_build_together(write_spec):
    path = write_spec(
        "models:\n"
        "  pair:\n"
        "    inputs: {left: [4], right: [4]}\n"
        "    edges:\n"
        "      joined: {Concatenate: {}, in: [left, right]}\n"
        "    outputs: [joined]\n"
        "  head:\n"
        "    sequential:\n"
        "      - Dense: {units: 3, kernel_regularizer: {L2: {l2: 0.001}}}\n"
        "      - Dense: {units: 2, name: logits}\n"
        "inputs:\n"
        "  a: [4]\n"
        "  b: [4]\n"
        "  steps: {shape: [null, 4]}\n"
        "edges:\n"
        "  by_name: {layer: pair, in: {right: b, left: a}}\n"
        "  by_order: {layer: pair, in: [b, a]}\n"
        "  scored: {layer: head, in: by_name}\n"
        "  per_step: {TimeDistributed: {layer: {Dense: {units: 2}}}, in: steps}\n"
        "  flat: {Flatten: null, in: scored}\n"
        "outputs: [flat, by_order, per_step]\n"
        "optimizer: {Adam: {learning_rate: 1e-3}}\n"
        "loss: [mse, mse, mse]\n")
    built = _build(path)
    model = built.model
    ones, twos = np.ones((1, 4), "float32"), np.full((1, 4), 2.0, "float32")
    flat, by_order, per_step = model.predict([ones, twos, np.ones((1, 3, 4), "float32")], verbose=0)
    # keyword inputs go to the sub-model's inputs by name; a list goes in order
    np.testing.assert_array_equal(built.submodels["pair"].model.predict({"left": ones, "right": twos}, verbose=0),
                                  np.concatenate([ones, twos], axis=1))
    np.testing.assert_array_equal(by_order, np.concatenate([twos, ones], axis=1))
    assert per_step.shape == (1, 3, 2) and flat.shape == (1, 2)
    head = model.get_layer("head")
    assert [layer.name for layer in head.layers] == ["dense", "logits"]
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)


@pytest.mark.parametrize("settings, loss, weights", [
    ("loss: binary_crossentropy\nloss_weights: [1.0, 0.2]\n",
     ["binary_crossentropy", "binary_crossentropy"], [1.0, 0.2]),
    ("loss: {a: mse}\nloss_weights: {b: 0.5}\n", ["mse", None], [1.0, 0.5]),
    ("loss: [mse, mae]\nloss_weights: 2\nmetrics: {b: mae}\n", ["mse", "mae"], [2.0, 2.0]),
])
def test_per_output_compile_settings_train(write_spec, settings, loss, weights):
    path = write_spec("inputs: {x: [4]}\nedges:\n  a: {Dense: {units: 1, activation: sigmoid}}\n"
                      "  b: {Dense: {units: 1, activation: sigmoid}, in: x}\noutputs: [a, b]\noptimizer: sgd\n"
                      + settings)
    model = _build(path).model
    config = model.get_compile_config()
    assert (config["loss"], config["loss_weights"]) == (loss, weights)
    history = model.fit(np.ones((4, 4)), [np.ones((4, 1)), np.zeros((4, 1))], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
def test_a_chain_deeper_than_pythons_recursion_limit_builds_and_reloads(tmp_path):
    # keras.Model(...) and load_model walk the graph one frame or more per layer:
    # 1,000 layers overflow Python's default limit unless kspec raises it.
    import sys

    import keras

    from kspec.build import deep_graphs
    from kspec.files import save_model

    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\ninputs:\n  x: {shape: [2]}\nedges:\n  d: {Dense: {units: 2}, repeat: 1000}\n"
                    "outputs: [d_1000]\nloss: mse\noptimizer: sgd\n", encoding="utf-8")
    spec, _ = read_spec(path)
    limit = sys.getrecursionlimit()
    model = build(spec).model
    assert len(model.layers) == 1001
    assert sys.getrecursionlimit() == limit  # raised only while building
    save_model(model, tmp_path / "deep.keras")
    with pytest.raises(RecursionError):  # what kspec saves the user from
        keras.saving.load_model(tmp_path / "deep.keras")
    with deep_graphs(spec):
        loaded = keras.saving.load_model(tmp_path / "deep.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]

    from kspec.importer import import_file  # `kspec import` loads the file the same way

    imported = import_file(tmp_path / "deep.keras")
    assert "d: {Dense: {units: 2}, repeat: 1000}" in imported  # the importer finds the repeat again


GRAPH_ERROR = """Graph execution error:

Detected at node ids_model_1/enc_1/embedding_1/GatherV2 defined at (most recent call last):
  File "<stdin>", line 10, in <module>

indices[0,0] = 5 is not in [0, 3)
\t [[{{node ids_model_1/enc_1/embedding_1/GatherV2}}]] [Op:__inference_one_step_on_data_distributed_177]"""


def test_a_graph_error_is_located_at_the_layer_its_node_path_names(write_spec):
    from kspec.build import graph_location, run_message

    spec = read_spec(write_spec("""\
name: ids_model
inputs: {ids: {shape: [5], dtype: int32}}
models:
  enc:
    sequential:
      - Dense: {units: 2}
      - Embedding: {input_dim: 3, output_dim: 4}
edges:
  embedding: {layer: enc, in: ids}
outputs: [embedding]
"""))[0]
    # The sequential's Embedding (line 7), not the top-level edge that shares its name.
    assert graph_location(spec, GRAPH_ERROR) == Location(spec.file, 7, 9)
    assert run_message(Exception(GRAPH_ERROR)) == "indices[0,0] = 5 is not in [0, 3)"
    assert graph_location(spec, "Unknown variable: <Variable path=enc/dense/kernel>") == Location(spec.file, 6, 9)
    assert graph_location(spec, "no path here") is None


def test_layer_outputs_larger_than_memory_are_refused_before_the_model_runs(write_spec):
    from kspec.build import check_activation_memory

    path = write_spec("inputs: {x: [4]}\nedges:\n  r: {RepeatVector: {n: 1000000000}}\n"
                      "  y: {GlobalAveragePooling1D: {}}\noutputs: [y]\n")
    built = build(read_spec(path)[0])  # no weights: the parameter limit lets it through
    with pytest.raises(SpecError) as info:
        check_activation_memory(built, 8)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.location == Location(str(path), 3, 3)
    assert diagnostic.message.startswith("one batch of 8 would fill 128,000,000,256 bytes with layer outputs")
    assert diagnostic.message.endswith("the largest is 'r' with 128,000,000,000 bytes")
    check_activation_memory(_build(SPECS / "mlp.yaml"), 8)  # an ordinary model passes


def test_train_refuses_such_a_model_and_leaves_nothing_behind(write_spec, tmp_path):
    from click.testing import CliRunner

    from kspec.cli import main

    path = write_spec("inputs: {x: [4]}\nedges:\n  r: {RepeatVector: {n: 1000000000}}\n"
                      "  y: {GlobalAveragePooling1D: {}}\noutputs: [y]\nloss: mse\n")
    result = CliRunner().invoke(main, ["train", str(path), "--synthetic", "8", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"{path}:3:3: error: one batch of 8 would fill 128,000,000,256 bytes")
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_layer_outputs_inside_sub_models_count_too(write_spec):
    from kspec.build import check_activation_memory

    path = write_spec("inputs: {x: [4]}\nmodels:\n  big:\n    sequential:\n"
                      "      - RepeatVector: {n: 1000000000}\n      - GlobalAveragePooling1D: {}\n"
                      "edges:\n  h: {layer: big, in: x}\n  k: {layer: big, in: x}\noutputs: [h, k]\n")
    with pytest.raises(SpecError) as info:
        check_activation_memory(build(read_spec(path)[0]), 8)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.location == Location(str(path), 8, 3)  # the first call: both are as large
    assert diagnostic.message.startswith("one batch of 8 would fill 256,000,000,640 bytes with layer outputs")


def test_keras_messages_lose_their_terminal_styling():
    from kspec.build import keras_message, run_message

    error = ValueError("Exception encountered when calling Add.call().\n\n\x1b[1mValue passed\x1b[0m\n")
    assert keras_message(error) == "Exception encountered when calling Add.call(). Value passed"
    assert run_message(error) == "Exception encountered when calling Add.call(). Value passed"
