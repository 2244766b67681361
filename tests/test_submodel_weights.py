"""Taking a sub-model out of a trained model: `weights: {file, model}` and `--model NAME`.

specs/seq2seq.yaml is trained briefly. Its encoder and decoder are then taken
out three ways (`kspec build --model --weights`, `kspec predict --model`, and
a spec whose sub-models load `weights: {file: model.keras, model: NAME}`),
and each must be the same sub-model as inside the trained model: the same
layer classes and parameters as keras.io's seq2seq written by hand here, and
the same outputs once the hand-written model has the trained weights.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import SPECS

from kspec.cli import main

RNG = np.random.default_rng(0)
ROWS, STEPS = 5, 3


def _keras():
    from kspec.backend import import_keras

    return import_keras()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The run folder's model.keras, after one short epoch of kspec train."""
    out = tmp_path_factory.mktemp("seq2seq") / "run"
    result = CliRunner().invoke(main, ["train", str(SPECS / "seq2seq.yaml"), "--synthetic", "16", "--epochs", "1",
                                       "--seed", "0", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out / "model.keras"


def _reference(keras):
    """keras.io's character-level seq2seq, by hand, with specs/seq2seq.yaml's sizes and names."""
    tokens = keras.Input((None, 8), name="encoder_tokens")
    _, h, c = keras.layers.LSTM(16, return_state=True, name="encoder_lstm")(tokens)
    encoder = keras.Model(tokens, [h, c], name="encoder")
    decoder_tokens = keras.Input((None, 10), name="decoder_tokens")
    state_h, state_c = keras.Input((16,), name="state_h"), keras.Input((16,), name="state_c")
    sequence, decoder_h, decoder_c = keras.layers.LSTM(16, return_sequences=True, return_state=True,
                                                       name="decoder_lstm")(decoder_tokens,
                                                                            initial_state=[state_h, state_c])
    probs = keras.layers.Dense(10, activation="softmax", name="decoder_probs")(sequence)
    decoder = keras.Model([decoder_tokens, state_h, state_c], [probs, decoder_h, decoder_c], name="decoder")
    encoder_inputs = keras.Input((None, 8), name="encoder_inputs")
    decoder_inputs = keras.Input((None, 10), name="decoder_inputs")
    start_h, start_c = encoder(encoder_inputs)
    next_chars, _, _ = decoder([decoder_inputs, start_h, start_c])
    return keras.Model([encoder_inputs, decoder_inputs], next_chars, name="seq2seq")


@pytest.fixture(scope="module")
def reference(trained):
    """The hand-written model with the trained weights, and the trained file loaded as Keras saved it."""
    keras = _keras()
    model = _reference(keras)
    model.load_weights(trained)
    return model, keras.saving.load_model(trained, safe_mode=True, compile=False)


def _data() -> dict[str, np.ndarray]:
    return {"encoder_tokens": RNG.random((ROWS, STEPS, 8), dtype=np.float32),
            "decoder_tokens": RNG.random((ROWS, STEPS, 10), dtype=np.float32),
            "state_h": RNG.random((ROWS, 16), dtype=np.float32),
            "state_c": RNG.random((ROWS, 16), dtype=np.float32)}


def _outputs(model, inputs) -> list[np.ndarray]:
    result = model.predict_on_batch(inputs)
    return [np.asarray(x) for x in (result if isinstance(result, (list, tuple)) else [result])]


def _same_model(mine, theirs) -> None:
    """Same layer classes, names, weight shapes and parameter count (Keras's layer order is not compared)."""
    def layout(model):
        return sorted((type(layer).__name__, layer.name, [tuple(w.shape) for w in layer.weights])
                      for layer in model.layers)

    assert layout(mine) == layout(theirs)
    assert mine.count_params() == theirs.count_params()


def _close(mine: list[np.ndarray], *others: list[np.ndarray]) -> None:
    for other in others:
        assert len(mine) == len(other)
        for a, b in zip(mine, other):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # trains the spec for an epoch first
def test_build_model_writes_the_trained_encoder_alone(trained, reference, tmp_path):
    out = tmp_path / "encoder.keras"
    result = CliRunner().invoke(main, ["build", str(SPECS / "seq2seq.yaml"), "--model", "encoder",
                                       "--weights", str(trained), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"encoder: encoder_tokens (None, None, 8) -> encoder_h (None, 16), encoder_c (None, 16); "
                             f"1,600 parameters; saved to {out}\n")
    encoder = _keras().saving.load_model(out, safe_mode=True)
    hand, saved = reference[0].get_layer("encoder"), reference[1].get_layer("encoder")
    _same_model(encoder, hand)
    tokens = _data()["encoder_tokens"]
    _close(_outputs(encoder, tokens), _outputs(hand, tokens), _outputs(saved, tokens))


@pytest.mark.slow  # trains the spec for an epoch first
def test_predict_model_runs_the_trained_decoder_alone(trained, reference, tmp_path):
    data = {key: value for key, value in _data().items() if key != "encoder_tokens"}
    np.savez(tmp_path / "step.npz", **data)
    out = tmp_path / "step_out.npz"
    result = CliRunner().invoke(main, ["predict", str(SPECS / "seq2seq.yaml"), "--model", "decoder",
                                       "--weights", str(trained), "--data", str(tmp_path / "step.npz"),
                                       "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    with np.load(out) as written:
        assert sorted(written.files) == ["decoder_c", "decoder_h", "decoder_probs"]
        mine = [written[name] for name in ("decoder_probs", "decoder_h", "decoder_c")]
    inputs = [data["decoder_tokens"], data["state_h"], data["state_c"]]
    hand, saved = reference[0].get_layer("decoder"), reference[1].get_layer("decoder")
    _close(mine, _outputs(hand, inputs), _outputs(saved, inputs))


@pytest.mark.slow  # trains the spec for an epoch first
def test_weights_mapping_takes_each_submodel_out_of_the_trained_file(trained, reference, tmp_path):
    """An inference spec: the same sub-models, each loading its weights from the trained whole model."""
    from kspec.build import build
    from kspec.spec import read_spec

    shutil.copy(trained, tmp_path / "trained.keras")
    spec = yaml.safe_load((SPECS / "seq2seq.yaml").read_text(encoding="utf-8"))
    for name in ("encoder", "decoder"):
        spec["models"][name]["weights"] = {"file": "trained.keras", "model": name}
    spec["outputs"] = ["next_chars", "final_h", "final_c"]  # a decoding step needs the states too
    (tmp_path / "inference.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    built = build(read_spec(tmp_path / "inference.yaml")[0])
    data = _data()
    for name, inputs in (("encoder", data["encoder_tokens"]),
                         ("decoder", [data["decoder_tokens"], data["state_h"], data["state_c"]])):
        mine = built.submodels[name].model
        hand, saved = reference[0].get_layer(name), reference[1].get_layer(name)
        _same_model(mine, hand)
        _close(_outputs(mine, inputs), _outputs(hand, inputs), _outputs(saved, inputs))
    whole = [data["encoder_tokens"], data["decoder_tokens"]]
    _close(_outputs(built.model, whole)[:1], _outputs(reference[0], whole))


def test_an_unknown_submodel_is_refused_with_the_spec_s_submodels(tmp_path):
    result = CliRunner().invoke(main, ["predict", str(SPECS / "seq2seq.yaml"), "--model", "decodr",
                                       "--weights", "model.keras", "--data", "data.npz", "-o",
                                       str(tmp_path / "out.npz")])
    assert result.exit_code == 1
    assert result.stderr == (f"{SPECS / 'seq2seq.yaml'}: error: the spec has no sub-model 'decodr'; did you mean "
                             "'decoder'?\n  hint: its sub-models: encoder, decoder (OUTER/INNER names one inside "
                             "another)\n")


def test_a_spec_without_submodels_says_so():
    result = CliRunner().invoke(main, ["summary", str(SPECS / "mlp.yaml"), "--model", "encoder"])
    assert result.exit_code == 1
    assert result.stderr == (f"{SPECS / 'mlp.yaml'}: error: the spec has no sub-models, so none named 'encoder'\n"
                             "  hint: declare the model under 'models:' to address it alone\n")


def test_a_sequential_submodel_cannot_be_predicted_alone(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "inputs: {x: [4]}\n"
        "models:\n"
        "  stack: {inputs: {features: [4]}, sequential: [{Dense: {units: 2}}]}\n"
        "edges:\n"
        "  y: {layer: stack, in: x}\n"
        "outputs: [y]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "spec.yaml"), "--model", "stack",
                                       "--weights", "model.keras", "--data", "data.npz", "-o",
                                       str(tmp_path / "out.npz")])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (f"{tmp_path / 'spec.yaml'}:3:3: error: sub-model 'stack' is "
                                             "sequential, so its output has no name to write predictions under")


def test_summary_model_shows_the_submodel_alone():
    result = CliRunner().invoke(main, ["summary", str(SPECS / "seq2seq.yaml"), "--model", "decoder"])
    assert result.exit_code == 0, result.output
    assert 'Model: "decoder"' in result.stdout
    assert "decoder_probs" in result.stdout and "encoder_lstm" not in result.stdout


def test_the_file_s_submodels_are_found_at_every_depth_outermost_first():
    from kspec.submodel_weights import file_submodels

    def model(cls, name, *layers):
        return {"class_name": cls, "config": {"name": name, "layers": list(layers)}}

    dense = {"class_name": "Dense", "config": {"name": "dense"}}
    config = model("Functional", "whole", model("Functional", "outer", model("Sequential", "inner", dense)),
                   model("Functional", "side", dense), dense)
    assert file_submodels(config) == ["outer", "side", "inner"]
