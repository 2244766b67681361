"""`adapt: true`: layers fitted to the training rows by kspec train, compared with the same layers adapted in Keras.

Each test trains a tiny spec for one epoch and checks the adapted state and the
model's outputs against a model written by hand in Keras whose preprocessing
layers are adapted on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT

from kspec import adapt as adapt_module
from kspec.errors import DataError, RunError
from kspec.predict import predict
from kspec.spec import read_spec
from kspec.train import train

SPEC = """\
inputs:
  num: {shape: [3]}
  city: {shape: [1], dtype: string}
layers:
  norm: {Normalization: {axis: -1}, adapt: true}
edges:
  scaled: {layer: norm, in: num}
  doubled: {Rescaling: {scale: 2.0}, in: num}
  doubled_norm: {Normalization: {}, in: doubled, adapt: true}
  city_id: {StringLookup: {max_tokens: 6}, in: city, adapt: true}
  city_hot: {CategoryEncoding: {num_tokens: 6, output_mode: one_hot}, in: city_id}
  both: {Concatenate: {}, in: [scaled, doubled_norm, city_hot]}
  y: {Dense: {units: 1, activation: sigmoid}, in: both}
outputs: y
loss: binary_crossentropy
optimizer: adam
"""
ROWS, TRAINING = 20, 15  # a validation split of 0.25 holds out the last 5 rows


def _data(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {"num": (rng.random((ROWS, 3)) * 10 + 5).astype("float32"),
              "city": rng.choice(["paris", "oslo", "rome"], size=(ROWS, 1)),
              "y": rng.integers(0, 2, (ROWS, 1)).astype("float32")}
    arrays["city"][TRAINING:] = "lima"  # only in the held-out rows: never in the vocabulary
    arrays["num"][TRAINING:] += 1000.0  # held-out rows that would move the mean a long way
    np.savez(path, **arrays)
    return arrays


def _train(tmp_path: Path, text: str = SPEC, **options) -> tuple[Path, dict[str, np.ndarray]]:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(text)
    arrays = _data(tmp_path / "data.npz")
    spec, _ = read_spec(spec_path)
    defaults = dict(data=tmp_path / "data.npz", epochs=1, batch_size=4, seed=0, validation_split=0.25)
    result = train(spec, text, out=tmp_path / "run", progress=lambda text: None, **{**defaults, **options})
    return result.run_dir, arrays


def _reference(arrays: dict[str, np.ndarray]) -> keras.Model:
    """The spec written in Keras, its preprocessing adapted on the training rows."""
    rows = {name: array[:TRAINING] for name, array in arrays.items()}
    num = keras.Input((3,), name="num")
    city = keras.Input((1,), dtype="string", name="city")
    norm = keras.layers.Normalization(axis=-1, name="norm")
    norm.adapt(rows["num"])
    doubled_norm = keras.layers.Normalization(name="doubled_norm")
    doubled_norm.adapt(rows["num"] * 2.0)
    lookup = keras.layers.StringLookup(max_tokens=6, name="city_id")
    lookup.adapt(rows["city"])
    doubled = keras.layers.Rescaling(2.0, name="doubled")(num)
    hot = keras.layers.CategoryEncoding(num_tokens=6, output_mode="one_hot", name="city_hot")(lookup(city))
    both = keras.layers.Concatenate(name="both")([norm(num), doubled_norm(doubled), hot])
    return keras.Model([num, city], keras.layers.Dense(1, activation="sigmoid", name="y")(both))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("adapt")
    run, arrays = _train(tmp_path)
    return tmp_path, run, arrays


def test_state_is_adapted_on_the_training_rows_only(trained):
    _, run, arrays = trained
    model = keras.saving.load_model(run / "model.keras")
    reference = _reference(arrays)
    for name in ("norm", "doubled_norm"):
        config = model.get_layer(name).get_config()
        expected = reference.get_layer(name)
        np.testing.assert_allclose(config["mean"], expected.adapt_mean.numpy(), rtol=1e-5)
        np.testing.assert_allclose(config["variance"], expected.adapt_variance.numpy(), rtol=1e-4)
    vocabulary = model.get_layer("city_id").get_vocabulary(include_special_tokens=False)
    assert vocabulary == reference.get_layer("city_id").get_vocabulary(include_special_tokens=False)
    assert "lima" not in vocabulary


def test_the_trained_model_computes_what_the_keras_reference_does(trained):
    tmp_path, run, arrays = trained
    model = keras.saving.load_model(run / "model.keras")
    reference = _reference(arrays)
    reference.get_layer("y").set_weights(model.get_layer("y").get_weights())
    x = [arrays["num"], keras.ops.convert_to_tensor(arrays["city"])]
    expected = reference.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # kspec predict builds the spec with the state the file holds, then loads its weights.
    spec, _ = read_spec(tmp_path / "spec.yaml")
    predict(spec, run / "model.keras", tmp_path / "data.npz", tmp_path / "predicted.npz")
    with np.load(tmp_path / "predicted.npz") as predicted:
        np.testing.assert_allclose(predicted["y"], expected, rtol=1e-5, atol=1e-6)


def test_a_resumed_run_is_not_adapted_again(trained, monkeypatch):
    tmp_path, run, _ = trained

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run adapted its layers again")

    monkeypatch.setattr(adapt_module, "adapt", refuse)
    spec, _ = read_spec(tmp_path / "spec.yaml")
    before = keras.saving.load_model(run / "model.keras").get_layer("norm").get_config()["mean"]
    result = train(spec, SPEC, resume=run, epochs=2, progress=lambda text: None)
    assert result.epochs_completed == 2
    assert keras.saving.load_model(run / "model.keras").get_layer("norm").get_config()["mean"] == before


def test_streamed_data_is_adapted_batch_by_batch_to_the_same_state(tmp_path, trained):
    _, run, _ = trained
    streamed, _ = _train(tmp_path, stream=True, batch_size=3)
    expected, got = (keras.saving.load_model(path / "model.keras") for path in (run, streamed))
    for key in ("mean", "variance"):
        np.testing.assert_allclose(got.get_layer("norm").get_config()[key],
                                   expected.get_layer("norm").get_config()[key], rtol=1e-5)
    assert got.get_layer("city_id").get_vocabulary() == expected.get_layer("city_id").get_vocabulary()


def test_synthetic_rows_are_adapted_on(tmp_path):
    spec, _ = read_spec(_write(tmp_path))
    result = train(spec, SPEC, synthetic_n=16, epochs=1, batch_size=8, seed=0, out=tmp_path / "run",
                   progress=lambda text: None)
    vocabulary = keras.saving.load_model(result.run_dir / "model.keras").get_layer("city_id").get_vocabulary()
    assert set(vocabulary[1:]) <= {f"w{i}" for i in range(16)}  # kspec's synthetic words
    assert len(vocabulary) > 1


def test_a_model_file_without_the_state_is_refused(tmp_path):
    spec, _ = read_spec(_write(tmp_path))
    from kspec.build import build

    build(spec).model.save(tmp_path / "fresh.keras")  # built, never adapted
    with pytest.raises(DataError) as info:
        adapt_module.with_saved_state(spec, tmp_path / "fresh.keras")
    assert info.value.diagnostics[0].message == (
        "the file holds no adapted state for Normalization 'norm', which the spec marks 'adapt: true'")


def test_data_the_layer_refuses_is_a_located_error(tmp_path):
    text = SPEC.replace("city_id: {StringLookup: {max_tokens: 6}", "city_id: {IntegerLookup: {max_tokens: 6}")
    with pytest.raises((RunError, DataError)) as info:
        _train(tmp_path, text)
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.location.line == 10  # the IntegerLookup
    assert diagnostic.message.startswith("Keras could not adapt IntegerLookup 'city_id' to the training rows: ")


def test_the_shipped_structured_data_spec_adapts_on_its_training_rows(tmp_path):
    path = ROOT / "specs" / "structured_data.yaml"
    spec, _ = read_spec(path)
    data = ROOT / "data" / "patients.npz"
    result = train(spec, path.read_text(encoding="utf-8"), data=data, epochs=1, validation_split=0.2, seed=0,
                   out=tmp_path / "run", progress=lambda text: None, verbose=0)
    model = keras.saving.load_model(result.run_dir / "model.keras")
    with np.load(data) as arrays:
        rows = {name: arrays[name][:240] for name in ("numbers", "sex", "thal")}  # 300 rows, the last 60 held out
    thal = keras.layers.StringLookup(max_tokens=8)
    thal.adapt(rows["thal"])
    assert model.get_layer("thal_id").get_vocabulary() == thal.get_vocabulary()
    sex = keras.layers.IntegerLookup(output_mode="one_hot", max_tokens=4, pad_to_max_tokens=True)
    sex.adapt(rows["sex"])
    assert model.get_layer("sex_hot").get_vocabulary() == sex.get_vocabulary()
    np.testing.assert_allclose(model.get_layer("scale").get_config()["mean"], rows["numbers"].mean(axis=0),
                               rtol=1e-5)


def test_a_distributed_run_refuses_adapt_at_the_layer(tmp_path):
    # Each process would fit the layer to its own share of the rows, and the copies would disagree.
    spec, _ = read_spec(_write(tmp_path))
    from kspec.build import build
    from kspec.data import Dataset

    rows = Dataset({"num": np.zeros((4, 3), "float32"), "city": np.full((4, 1), "oslo")}, {}, "rows")
    with pytest.raises(RunError) as info:
        adapt_module.adapt(keras, build(spec), rows, 2, None, lambda text: None, distributed=True)
    diagnostic = info.value.diagnostics[0]
    assert (diagnostic.location.line, diagnostic.message) == (
        5, "'adapt: true' cannot be used in a distributed run: each process would fit the layer to its own share "
           "of the rows")


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path
