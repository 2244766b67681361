"""`dtype: string` inputs end to end: string arrays in .npz files, synthetic strings, and their checks.

Trained models are compared with the same model written by hand in Keras
(same lookup layer and vocabulary, the trained Dense weights copied over).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kspec.cli import main
from kspec.data import SYNTHETIC_WORDS, check_arrays, synthetic_inputs
from kspec.errors import DataError
from kspec.evaluate import evaluate
from kspec.predict import predict
from kspec.spec import read_spec
from kspec.train import train

SPEC = """\
inputs:
  colour: {shape: [1], dtype: string}
  size: {shape: [2]}
edges:
  colour_hot: {StringLookup: {vocabulary: [red, green, blue], output_mode: one_hot}, in: colour}
  both: {Concatenate: {}, in: [colour_hot, size]}
  y: {Dense: {units: 1, activation: sigmoid}}
outputs: y
loss: binary_crossentropy
optimizer: adam
"""
TEXT_SPEC = """\
inputs:
  review: {shape: [1], dtype: string}
  note: {shape: [2], dtype: string}
edges:
  tokens: {TextVectorization: {vocabulary: [good, bad, film], output_sequence_length: 4}, in: review}
  vectors: {Embedding: {input_dim: 6, output_dim: 2}}
  pooled: {GlobalAveragePooling1D: {}}
  y: {Dense: {units: 1}}
outputs: y
loss: mse
"""


def _spec(tmp_path: Path, text: str = SPEC) -> tuple[Path, object]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    spec, diagnostics = read_spec(path)
    assert not [d for d in diagnostics if d.is_error]
    return path, spec


def _spec_in_memory(text: str) -> tuple[Path, object]:
    """A spec read from a file that is then removed: for what needs the spec only."""
    with tempfile.TemporaryDirectory() as folder:
        return _spec(Path(folder), text)


def _arrays(kind: str) -> dict[str, np.ndarray]:
    colours = np.array([["red"], ["green"], ["blue"], ["pink"]] * 3)  # pink is out of the vocabulary
    return {"colour": colours.astype("S") if kind == "bytes" else colours,
            "size": np.linspace(0, 1, 24, dtype="float32").reshape(12, 2),
            "y": (np.arange(12) % 2).astype("float32").reshape(12, 1)}


def _reference(dense: keras.layers.Layer) -> keras.Model:
    colour = keras.Input((1,), dtype="string")
    size = keras.Input((2,))
    hot = keras.layers.StringLookup(vocabulary=["red", "green", "blue"], output_mode="one_hot")(colour)
    y = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model([colour, size], y(keras.layers.Concatenate()([hot, size])))
    y.set_weights(dense.get_weights())
    return model


@pytest.mark.parametrize("kind", ["unicode", "bytes"])
def test_string_arrays_train_evaluate_and_predict_like_keras(tmp_path, kind):
    path, spec = _spec(tmp_path)
    arrays = _arrays(kind)
    np.savez(tmp_path / "data.npz", **arrays)
    result = train(spec, SPEC, data=tmp_path / "data.npz", epochs=1, batch_size=4, seed=0, out=tmp_path / "run",
                   progress=lambda text: None, verbose=0)
    model = keras.saving.load_model(result.run_dir / "model.keras")
    reference = _reference(model.get_layer("y"))
    x = [keras.ops.convert_to_tensor(arrays["colour"]), arrays["size"]]
    expected = reference.predict(x, verbose=0)
    predict(spec, result.run_dir / "model.keras", tmp_path / "data.npz", tmp_path / "out.npz", batch_size=5)
    with np.load(tmp_path / "out.npz") as predicted:
        np.testing.assert_allclose(predicted["y"], expected, rtol=1e-5, atol=1e-6)
    scores = evaluate(spec, result.run_dir / "model.keras", tmp_path / "data.npz", verbose=0)
    expected_loss = keras.losses.binary_crossentropy(arrays["y"], expected).numpy().mean()
    assert scores["loss"] == pytest.approx(float(expected_loss), rel=1e-4)


def test_synthetic_strings_come_from_the_first_layers_vocabulary():
    _, spec = _spec_in_memory(SPEC)
    inputs = synthetic_inputs(spec, 50, np.random.default_rng(0))
    assert inputs["colour"].shape == (50, 1) and inputs["colour"].dtype.kind == "U"
    assert set(inputs["colour"].ravel()) == {"red", "green", "blue"}


def test_synthetic_texts_for_a_text_vectorization_and_words_otherwise():
    _, spec = _spec_in_memory(TEXT_SPEC)
    inputs = synthetic_inputs(spec, 30, np.random.default_rng(0))
    words = {word for text in inputs["review"].ravel() for word in text.split(" ")}
    assert words == {"good", "bad", "film"}
    assert max(len(text.split(" ")) for text in inputs["review"].ravel()) > 1
    assert inputs["note"].shape == (30, 2)
    assert set(inputs["note"].ravel()) <= set(SYNTHETIC_WORDS)  # no layer on it: kspec's own short words


def test_train_and_inspect_on_synthetic_strings(tmp_path):
    path, _ = _spec(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(path), "--synthetic", "8", "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["inspect", str(path), "--synthetic", "4", "--layer", "colour_hot"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("colour_hot:0: shape (4, 4), min 0, max 1")


def test_numbers_for_a_string_input_and_strings_for_a_numeric_one_are_refused():
    _, spec = _spec_in_memory(SPEC)
    arrays = _arrays("unicode")
    with pytest.raises(DataError) as info:
        check_arrays({**arrays, "colour": np.zeros((12, 1))}, spec, {"y": (None, 1)}, "data.npz")
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.message == ("array 'colour' has dtype float64; input 'colour' has dtype string in the spec "
                                  "and expects strings")
    assert diagnostic.hint == ("store the values as a NumPy string array, e.g. numpy.array(values, dtype=str) "
                               "(never dtype=object), or declare the input's dtype as a number")
    with pytest.raises(DataError) as info:
        check_arrays({**arrays, "size": np.full((12, 2), "big")}, spec, {"y": (None, 1)}, "data.npz")
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.message == "array 'size' has dtype <U3; input 'size' expects numbers (float32)"
    assert diagnostic.hint == ("store numbers, or declare the input 'dtype: string' in the spec and turn the "
                               "strings into numbers in the model (e.g. with StringLookup)")
