"""kspec inspect: the call table, and outputs of single calls computed for real."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

from kspec.cli import main


def inspect(*args: str):
    return CliRunner().invoke(main, ["inspect", *args])


def test_shape_table_of_shared_conv():
    result = inspect(str(SPECS / "shared_conv.yaml"))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "layer  node  class   inputs  input shapes       output shapes       params\n"
        "conv   0     Conv2D  a       (None, 32, 32, 3)  (None, 32, 32, 16)  448\n"
        "conv   1     Conv2D  b       (None, 64, 64, 3)  (None, 64, 64, 16)  448\n")


def test_table_as_json_lists_repeats_and_keyword_calls(write_spec):
    spec = write_spec("inputs: {q: [3, 4]}\nedges:\n"
                      "  att: {MultiHeadAttention: {num_heads: 1, key_dim: 2}, in: {query: q, value: q}}\n"
                      "  d: {Dense: {units: 5}, repeat: 2}\noutputs: [d]\n")
    rows = json.loads(inspect(str(spec), "--json").stdout)
    assert [(r["layer"], r["node"], r["class"], r["inputs"]) for r in rows] == [
        ("att", 0, "MultiHeadAttention", ["query=q", "value=q"]),
        ("d_1", 0, "Dense", ["att"]),
        ("d_2", 0, "Dense", ["d_1"]),
    ]
    assert rows[2]["output_shapes"] == [[None, 3, 5]]


def _dump(tmp_path, spec, *args):
    out = tmp_path / "dump.npz"
    result = inspect(str(SPECS / spec), *args, "-o", str(out))
    assert result.exit_code == 0, result.output
    with np.load(out) as archive:
        return {key: archive[key] for key in archive.files}, result.stdout


def _inputs(tmp_path, **arrays):
    path = tmp_path / "inputs.npz"
    np.savez(path, **arrays)
    return path


def test_node_outputs_of_a_shared_lstm(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 140, 256), dtype="float32"), rng.random((5, 140, 256), dtype="float32")
    data = _inputs(tmp_path, a=a, b=b)
    weights = tmp_path / "model.keras"
    assert CliRunner().invoke(main, ["build", str(SPECS / "shared_nodes.yaml"), "-o", str(weights)]).exit_code == 0
    node1, stdout = _dump(tmp_path, "shared_nodes.yaml", "--layer", "lstm", "--node", "1", "--data", str(data),
                          "--weights", str(weights))
    assert list(node1) == ["lstm:1"]
    assert stdout.startswith("lstm:1: shape (5, 32), min ")
    node0, _ = _dump(tmp_path, "shared_nodes.yaml", "--layer", "lstm", "--data", str(data),
                     "--weights", str(weights))
    # The same layer, with the same weights, applied directly to each input.
    lstm = keras.saving.load_model(weights).get_layer("lstm")
    np.testing.assert_allclose(node1["lstm:1"], keras.ops.convert_to_numpy(lstm(b)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(node0["lstm:0"], keras.ops.convert_to_numpy(lstm(a)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(node0["lstm:0"], node1["lstm:1"])


def test_sub_model_calls_and_inner_layers(tmp_path):
    rng = np.random.default_rng(1)
    digit_a, digit_b = rng.random((4, 27, 27, 1), dtype="float32"), rng.random((4, 27, 27, 1), dtype="float32")
    data = _inputs(tmp_path, digit_a=digit_a, digit_b=digit_b)
    weights = tmp_path / "model.keras"
    assert CliRunner().invoke(main, ["build", str(SPECS / "shared_vision.yaml"), "-o", str(weights)]).exit_code == 0
    vision = keras.saving.load_model(weights).get_layer("vision_model")

    outer, _ = _dump(tmp_path, "shared_vision.yaml", "--layer", "vision_model", "--node", "1", "--data", str(data),
                     "--weights", str(weights))
    np.testing.assert_allclose(outer["vision_model:1"], vision.predict(digit_b, verbose=0), rtol=1e-5, atol=1e-6)

    inner, _ = _dump(tmp_path, "shared_vision.yaml", "--layer", "vision_model/conv_1", "--node", "1",
                     "--data", str(data), "--weights", str(weights))
    prefix = keras.Model(vision.inputs, vision.get_layer("conv_1").output)
    np.testing.assert_allclose(inner["vision_model/conv_1:1"], prefix.predict(digit_b, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(inner["vision_model/conv_1:1"], prefix.predict(digit_a, verbose=0))


def test_sequential_sub_model_inner_layer(tmp_path, write_spec):
    spec = write_spec("models:\n  enc:\n    inputs: {v: [4]}\n    sequential:\n"
                      "      - Dense: {units: 3, activation: relu}\n      - Dense: {units: 2}\n"
                      "inputs: {x: [4]}\nedges:\n  y: {layer: enc}\noutputs: [y]\n")
    out = tmp_path / "o.npz"
    result = CliRunner().invoke(main, ["inspect", str(spec), "--layer", "enc/dense", "--synthetic", "6",
                                       "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"]["enc/dense:0"]["shape"] == [6, 3]


def test_all_outputs_in_one_pass_batch_by_batch(tmp_path):
    dump, stdout = _dump(tmp_path, "mlp.yaml", "--all", "--synthetic", "10", "--batch-size", "3", "--seed", "4")
    assert sorted(dump) == ["hidden_1:0", "hidden_2:0", "predictions:0"]
    assert dump["predictions:0"].shape == (10, 10)
    np.testing.assert_allclose(dump["predictions:0"].sum(axis=1), 1.0, rtol=1e-5)
    # relu outputs: some exact zeros, reported as a fraction
    zeros = float((dump["hidden_1:0"] == 0).mean())
    assert f"zeros {100 * zeros:.1f}%" in stdout.splitlines()[0]


def test_tensor_by_name_and_trained_run(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(SPECS / "digits_cnn.yaml"), "--data",
                                       str(ROOT / "data" / "digits.npz"), "--epochs", "1", "--out", str(run), "-q"])
    assert result.exit_code == 0, result.output
    dump, stdout = _dump(tmp_path, "digits_cnn.yaml", "--tensor", "hidden", "--data", str(ROOT / "data" / "digits.npz"),
                         "--weights", str(run / "model.keras"), "--batch-size", "500")
    model = keras.saving.load_model(run / "model.keras")
    with np.load(ROOT / "data" / "digits.npz") as data:
        expected = keras.Model(model.inputs, model.get_layer("hidden").output).predict(data["image"], verbose=0)
    np.testing.assert_allclose(dump["hidden"], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--layer", "lstm", "--node", "2"], "--node: error: layer 'lstm' has 2 call(s), so no node 2\n"
                                         "  hint: its nodes: 0, 1\n"),
    (["--layer", "lsmt"], "--layer: error: unknown layer 'lsmt'; did you mean 'lstm'?\n  hint: available: lstm\n"),
    (["--tensor", "encoded_c"], "--tensor: error: unknown tensor 'encoded_c'; did you mean 'encoded_b'?\n"
                                "  hint: available: a, b, encoded_a, encoded_b\n"),
])
def test_inspect_errors(args, message):
    result = inspect(str(SPECS / "shared_nodes.yaml"), *args, "--synthetic", "2")
    assert result.exit_code == 1
    assert result.stderr == message


def test_inspect_data_that_does_not_fit(tmp_path):
    data = _inputs(tmp_path, a=np.zeros((2, 140, 256), "float32"), b=np.zeros((2, 140, 255), "float32"))
    result = inspect(str(SPECS / "shared_nodes.yaml"), "--layer", "lstm", "--data", str(data))
    assert result.exit_code == 1
    assert result.stderr == (f"{data}: error: array 'b' has shape (2, 140, 255); input 'b' expects (N, 140, 256)\n"
                             "  hint: the first axis counts samples\n")


def test_inspect_usage_errors():
    spec = str(SPECS / "shared_nodes.yaml")
    assert inspect(spec, "--layer", "lstm").exit_code == 2  # no data
    assert inspect(spec, "--layer", "lstm", "--tensor", "a", "--synthetic", "2").exit_code == 2
