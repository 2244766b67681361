"""training: callbacks, learning-rate schedules, class and sample weights, mixed precision.

Each run is compared with the same fit written by hand in Keras: the same
layers, seed and data give the same history.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kspec.cli import main
from kspec.errors import DataError, RunError
from kspec.spec import read_spec, spec_text
from kspec.train import train

SEED = 7
MODEL = """\
inputs: {x: {shape: [4]}}
edges:
  h: {Dense: {units: 8, activation: relu}, in: x}
  y: {Dense: {units: 2, activation: softmax}}
outputs: [y]
optimizer: OPTIMIZER
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training:
  batch_size: 16
"""


def _spec(tmp_path: Path, training: str = "", optimizer: str = "{SGD: {learning_rate: 0.1}}") -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(MODEL.replace("OPTIMIZER", optimizer) + training, encoding="utf-8")
    return path


def _data(tmp_path: Path, rows: int = 96, minority: float = 0.5, **extra: np.ndarray) -> tuple[Path, dict]:
    """Two overlapping classes in 4 features; `minority` is the share of class 1."""
    rng = np.random.default_rng(0)
    y = (rng.random(rows) < minority).astype("int64")
    x = (rng.normal(size=(rows, 4)) + y[:, None] * 1.0).astype("float32")
    arrays = {"x": x, "y": y, **extra}
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path, arrays


def _train(spec_path: Path, out: Path, **options):
    spec, _ = read_spec(spec_path)
    options.setdefault("verbose", 0)
    options.setdefault("seed", SEED)
    return train(spec, spec_path.read_text(encoding="utf-8"), out=out, progress=lambda text: None, **options)


def _reference(arrays: dict, optimizer, epochs: int, callbacks=(), validation_split=0.0, **fit_args):
    """The same model and fit, written in Keras."""
    keras.utils.set_random_seed(SEED)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu", name="h")(x)
    model = keras.Model(x, keras.layers.Dense(2, activation="softmax", name="y")(h))
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(SEED)
    history = model.fit(arrays["x"], arrays["y"], batch_size=16, epochs=epochs, validation_split=validation_split,
                        shuffle=True, verbose=0, callbacks=list(callbacks), **fit_args)
    return model, history.history


def _same_history(ours: list[dict], keras_history: dict) -> None:
    assert len(ours) == len(keras_history["loss"])
    for key, values in keras_history.items():
        if key == "learning_rate":
            continue
        np.testing.assert_allclose([row[key] for row in ours], values, rtol=1e-5, err_msg=key)


def _run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _weights(path: Path) -> list[np.ndarray]:
    return keras.saving.load_model(path).get_weights()


# ---------------------------------------------------------------- callbacks
EARLY = """\
  validation_split: 0.25
  epochs: 8
  callbacks:
    - EarlyStopping: {monitor: val_loss, patience: 1, min_delta: 10, restore_best_weights: true}
"""


@pytest.mark.parametrize("interval", [0, 60], ids=["every-epoch", "held-in-memory"])
def test_early_stopping_stops_restores_the_best_weights_and_records_why(tmp_path, interval):
    data, arrays = _data(tmp_path)
    run = tmp_path / "run"
    result = _train(_spec(tmp_path, EARLY), run, data=data, checkpoint_interval=interval)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10, restore_best_weights=True)
    reference, history = _reference(arrays, keras.optimizers.SGD(0.1), 8, [stopper], validation_split=0.25)
    # min_delta 10 is never met: the run stops after epoch 2, the first epoch being the best
    _same_history(result.history, history)
    assert result.epochs_completed == 2
    settings = _run_json(run)
    assert (settings["status"], settings["epochs_completed"]) == ("stopped", 2)
    assert settings["stopped"] == (
        f"EarlyStopping stopped the run after epoch 2: val_loss did not improve on {history['val_loss'][0]:.6g} "
        "(epoch 1) for 1 epoch(s); model.keras holds epoch 1's weights (restore_best_weights)")
    for ours, theirs in zip(_weights(run / "model.keras"), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # the checkpoint of epoch 2 holds epoch 2's own weights, as its history row and optimizer state do
    last = _weights(run / "checkpoints" / "epoch-0002.keras")
    assert not all(np.allclose(a, b) for a, b in zip(last, reference.get_weights()))


def test_resume_of_a_stopped_run_says_why_and_continues_only_when_asked(tmp_path):
    data, _ = _data(tmp_path)
    spec = _spec(tmp_path, EARLY)
    run = tmp_path / "run"
    _train(spec, run, data=data)
    with pytest.raises(RunError) as caught:
        _train(spec, None, resume=run, seed=None)
    diagnostic = caught.value.diagnostics[0]
    assert diagnostic.message == f"the run was stopped early: {_run_json(run)['stopped']}"
    assert diagnostic.hint == ("its model.keras is the run's result; to train it on anyway, resume with --epochs N "
                               "(it stopped at epoch 2 of 8)")
    result = _train(spec, None, resume=run, seed=None, epochs=3)  # asked for one epoch more: trained
    settings = _run_json(run)
    assert (result.epochs_completed, settings["status"], settings["stopped"]) == (3, "completed", None)


def test_a_val_monitor_without_validation_data_is_refused_before_training(tmp_path):
    data, _ = _data(tmp_path)
    spec = _spec(tmp_path, "  callbacks:\n    - ReduceLROnPlateau: {factor: 0.5}\n")
    with pytest.raises(RunError) as caught:
        _train(spec, tmp_path / "run", data=data)
    diagnostic = caught.value.diagnostics[0]
    assert (diagnostic.location.line, diagnostic.message) == (
        12, "ReduceLROnPlateau monitors 'val_loss' (its default), but this run has no validation data")
    assert diagnostic.hint == ("give --validation-split FRACTION or --val-data FILE, or 'validation_split' under "
                               "'training:'; or monitor a training metric such as 'loss'")
    assert not (tmp_path / "run").exists()


def test_the_command_refuses_a_val_monitor_before_importing_tensorflow(tmp_path):
    data, _ = _data(tmp_path)
    spec = _spec(tmp_path, "  callbacks:\n    - EarlyStopping: {patience: 2}\n")
    script = ("import sys\nfrom kspec.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exit:\n"
              "    print('tensorflow' in sys.modules, exit.code)\n")
    done = subprocess.run([sys.executable, "-c", script, "train", str(spec), "--data", str(data), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "1"], done.stderr
    assert "EarlyStopping monitors 'val_loss' (its default), but this run has no validation data" in done.stderr


def test_reduce_lr_on_plateau_lowers_the_rate_as_keras_does(tmp_path):
    data, arrays = _data(tmp_path)
    spec = _spec(tmp_path, "  epochs: 4\n  callbacks:\n"
                           "    - ReduceLROnPlateau: {monitor: loss, factor: 0.5, patience: 0, min_delta: 10}\n"
                           "    - TerminateOnNaN\n")
    result = _train(spec, tmp_path / "run", data=data)
    reducer = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10)
    reference, history = _reference(arrays, keras.optimizers.SGD(0.1), 4,
                                    [reducer, keras.callbacks.TerminateOnNaN()])
    _same_history(result.history, history)
    rate = float(keras.saving.load_model(tmp_path / "run" / "model.keras").optimizer.learning_rate)
    assert rate == pytest.approx(float(reference.optimizer.learning_rate)) == pytest.approx(0.1 * 0.5 ** 3)  # the first epoch sets the best
    assert _run_json(tmp_path / "run")["status"] == "completed"


def test_terminate_on_nan_stops_the_run_and_says_so(tmp_path):
    data, _ = _data(tmp_path)
    spec = _spec(tmp_path, "  epochs: 5\n  callbacks: [TerminateOnNaN]\n", optimizer="{SGD: {learning_rate: 1e30}}")
    result = _train(spec, tmp_path / "run", data=data)
    settings = _run_json(tmp_path / "run")
    assert (result.epochs_completed, settings["status"]) == (1, "stopped")
    assert settings["stopped"] == "TerminateOnNaN stopped the run in epoch 1: a batch's loss was NaN or infinite"


# ---------------------------------------------------------------- schedules
COSINE = "{Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.01, decay_steps: 40}}}}"


def test_a_cosine_schedule_trains_saves_and_resumes_at_its_step(tmp_path):
    data, arrays = _data(tmp_path)
    spec = _spec(tmp_path, "  epochs: 2\n", optimizer=COSINE)
    run = tmp_path / "run"
    result = _train(spec, run, data=data, checkpoint_interval=0)
    schedule = keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.01, decay_steps=40)
    _, history = _reference(arrays, keras.optimizers.Adam(learning_rate=schedule), 2)
    _same_history(result.history, history)
    steps = 96 // 16

    def rate_and_step(path: Path) -> tuple[float, int]:
        optimizer = keras.saving.load_model(path).optimizer
        return float(optimizer.learning_rate), int(optimizer.iterations)

    assert rate_and_step(run / "model.keras") == (pytest.approx(float(schedule(2 * steps))), 2 * steps)
    _train(spec, None, resume=run, seed=None, epochs=4)  # the optimizer's step is restored from the checkpoint
    assert rate_and_step(run / "model.keras") == (pytest.approx(float(schedule(4 * steps))), 4 * steps)
    assert rate_and_step(run / "checkpoints" / "epoch-0003.keras")[1] == 3 * steps


# ---------------------------------------------------------------- weights
def _recall(model_path: Path, arrays: dict) -> float:
    predicted = keras.saving.load_model(model_path).predict(arrays["x"], verbose=0).argmax(-1)
    return float((predicted[arrays["y"] == 1] == 1).mean())


def test_class_weights_raise_the_minority_recall(tmp_path):
    data, arrays = _data(tmp_path, rows=160, minority=0.15)
    plain = _train(_spec(tmp_path, "  epochs: 3\n"), tmp_path / "plain", data=data)
    weighted = _train(_spec(tmp_path, "  epochs: 3\n  class_weight: {0: 1.0, 1: 6.0}\n"), tmp_path / "weighted",
                      data=data)
    _, history = _reference(arrays, keras.optimizers.SGD(0.1), 3, class_weight={0: 1.0, 1: 6.0})
    _same_history(weighted.history, history)
    assert plain.history != weighted.history
    assert _recall(tmp_path / "weighted" / "model.keras", arrays) > _recall(tmp_path / "plain" / "model.keras", arrays)


def test_sample_weights_from_the_data_file_are_passed_to_fit(tmp_path):
    weights = np.linspace(0.0, 2.0, 96).astype("float32")
    data, arrays = _data(tmp_path, sample_weight=weights)
    result = _train(_spec(tmp_path, "  epochs: 2\n"), tmp_path / "run", data=data)
    _, history = _reference(arrays, keras.optimizers.SGD(0.1), 2, sample_weight=weights)
    _same_history(result.history, history)


def test_per_output_sample_weights_weigh_only_their_output(tmp_path):
    spec = tmp_path / "two.yaml"
    spec.write_text("inputs: {x: {shape: [4]}}\nedges:\n  a: {Dense: {units: 1}, in: x}\n  b: {Dense: {units: 1}, in: x}\n"
                    "outputs: [a, b]\noptimizer: {SGD: {learning_rate: 0.05}}\nloss: mse\n"
                    "training: {batch_size: 16, epochs: 2}\n", encoding="utf-8")
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(size=(64, 4)).astype("float32"), "a": rng.normal(size=(64, 1)).astype("float32"),
              "b": rng.normal(size=(64, 1)).astype("float32"), "sample_weight_b": np.linspace(0, 1, 64)}
    np.savez(tmp_path / "two.npz", **arrays)
    result = _train(spec, tmp_path / "run", data=tmp_path / "two.npz")
    keras.utils.set_random_seed(SEED)
    x = keras.Input((4,), name="x")
    model = keras.Model(x, [keras.layers.Dense(1, name="a")(x), keras.layers.Dense(1, name="b")(x)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    keras.utils.set_random_seed(SEED)
    history = model.fit(arrays["x"], [arrays["a"], arrays["b"]], batch_size=16, epochs=2, shuffle=True, verbose=0,
                        sample_weight=[np.ones(64), arrays["sample_weight_b"]]).history
    _same_history(result.history, history)


def test_sample_weights_are_refused_for_streamed_data(tmp_path):
    data, _ = _data(tmp_path, sample_weight=np.ones(96))
    with pytest.raises(DataError) as caught:
        _train(_spec(tmp_path), tmp_path / "run", data=data, stream=True)
    assert not (tmp_path / "run").exists()
    diagnostic = caught.value.diagnostics[0]
    assert (diagnostic.message, diagnostic.hint) == (
        "sample weights are used only with the data in memory, and this run reads its data batch by batch",
        "train with --no-stream, or leave the sample_weight arrays out of the data")


@pytest.mark.parametrize("extra, message", [
    ({"sample_weight": np.ones(95)}, "'sample_weight' has 95 rows; the data has 96"),
    ({"sample_weight": -np.ones(96)}, "'sample_weight' holds a negative, NaN or infinite weight"),
    ({"sample_weight": np.ones((96, 2))},
     "'sample_weight' must hold one number per row (shape (rows,)), got shape (96, 2) of float64"),
    ({"sample_weight_z": np.ones(96)}, "'sample_weight_z' weighs an output the spec does not have"),
])
def test_bad_sample_weights_are_refused_with_the_file(tmp_path, extra, message):
    data, _ = _data(tmp_path, **extra)
    with pytest.raises(DataError) as caught:
        _train(_spec(tmp_path), tmp_path / "run", data=data)
    assert caught.value.diagnostics[0].message == message
    assert str(caught.value.diagnostics[0].location.file) == str(data)


# ---------------------------------------------------------------- mixed precision
def test_mixed_float16_on_cpu_keeps_outputs_float32_and_resets_the_policy(tmp_path):
    data, arrays = _data(tmp_path)
    result = _train(_spec(tmp_path, "  epochs: 2\n  mixed_precision: mixed_float16\n"), tmp_path / "run", data=data)
    assert keras.config.dtype_policy().name == "float32"  # put back after the run
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(SEED)
        x = keras.Input((4,), name="x")
        h = keras.layers.Dense(8, activation="relu", name="h")(x)
        model = keras.Model(x, keras.layers.Dense(2, activation="softmax", name="y", dtype="float32")(h))
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
        keras.utils.set_random_seed(SEED)
        history = model.fit(arrays["x"], arrays["y"], batch_size=16, epochs=2, shuffle=True, verbose=0).history
        saved = keras.saving.load_model(tmp_path / "run" / "model.keras")  # its LossScaleOptimizer too
    finally:
        keras.config.set_dtype_policy("float32")
    _same_history(result.history, history)
    assert [layer.dtype_policy.name for layer in saved.layers[1:]] == ["mixed_float16", "float32"]


@pytest.mark.slow
def test_mixed_bfloat16_trains_and_predicts_on_jax(tmp_path):
    """The known JAX failure with bfloat16 outputs ("Unknown output type bfloat16") cannot arise: outputs are float32."""
    data, _ = _data(tmp_path)
    spec = _spec(tmp_path, "  epochs: 1\n")
    kspec = [sys.executable, "-m", "kspec"]
    trained = subprocess.run([*kspec, "train", str(spec), "--data", str(data), "--out", str(tmp_path / "run"), "-q",
                              "--backend", "jax", "--mixed-precision", "mixed_bfloat16"],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    predicted = subprocess.run([*kspec, "predict", str(spec), "--weights", str(tmp_path / "run" / "model.keras"),
                                "--data", str(data), "-o", str(tmp_path / "out.npz"), "--backend", "jax"],
                               capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr
    assert np.load(tmp_path / "out.npz")["y"].dtype == np.float32


# ---------------------------------------------------------------- flags
def test_flags_stand_for_the_spec_keys_and_are_recorded(tmp_path):
    data, _ = _data(tmp_path)
    spec = _spec(tmp_path, EARLY)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(spec), "--data", str(data), "--out", str(run), "-q", "--seed", "1",
                                       "--mixed-precision", "mixed_float16", "--early-stopping-patience", "0"])
    assert result.exit_code == 0, result.output
    recorded = (run / "spec.yaml").read_text()
    assert recorded.startswith(f"# {spec} with --set training.mixed_precision=mixed_float16 "
                               "--set training.callbacks.0.patience=0\n")
    assert "patience: 0" in recorded and "mixed_precision: mixed_float16" in recorded


def test_early_stopping_patience_needs_an_early_stopping_callback(tmp_path):
    data, _ = _data(tmp_path)
    result = CliRunner().invoke(main, ["train", str(_spec(tmp_path)), "--data", str(data), "--out",
                                       str(tmp_path / "run"), "--early-stopping-patience", "3"])
    assert result.exit_code == 2
    assert ("--early-stopping-patience sets the patience of the spec's EarlyStopping, and the spec has none; add "
            "'- EarlyStopping: {monitor: val_loss, patience: 3}' under training.callbacks") in result.output


def test_training_keys_survive_the_spec_written_back_after_set(tmp_path):
    spec = _spec(tmp_path, "  class_weight: {0: 1.0, 1: 3.0}\n  callbacks:\n    - TerminateOnNaN\n")
    written = tmp_path / "written.yaml"
    written.write_text(spec_text(spec, ["training.mixed_precision=mixed_float16"]), encoding="utf-8")
    model, _ = read_spec(written)  # the run's spec.yaml, which evaluate and --resume read again
    assert (model.training.class_weight, model.training.mixed_precision) == ({0: 1.0, 1: 3.0}, "mixed_float16")
    assert [callback.class_name for callback in model.training.callbacks] == ["TerminateOnNaN"]


def test_a_callback_value_keras_refuses_is_located_at_the_callback(tmp_path):
    """validate cannot know every value a callback refuses (a factor >= 1); Keras's refusal points at the callback."""
    spec = tmp_path / "cb.yaml"
    spec.write_text("""\
inputs:
  x: {shape: [4]}
edges:
  y: {Dense: {units: 1}}
outputs: [y]
optimizer: adam
loss: mse
training:
  callbacks:
    - ReduceLROnPlateau: {monitor: loss, factor: 2.0}
""")
    result = CliRunner().invoke(main, ["train", str(spec), "--synthetic", "16", "-q", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[0] == (
        f"{spec}:10:7: error: Keras rejected ReduceLROnPlateau: ReduceLROnPlateau does not support "
        "a factor >= 1.0. Received factor=2.0")
