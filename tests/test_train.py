"""Training: every seed spec on synthetic data, run folders, resume, seeds, interrupts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

from kspec.cli import main
from kspec.errors import RunError
from kspec.spec import read_spec
from kspec.train import train

SPEC_FILES = sorted(SPECS.glob("*.yaml"))


def _train(path: Path, out: Path, **options):
    spec, _ = read_spec(path)
    options.setdefault("verbose", 0)
    return train(spec, path.read_text(encoding="utf-8"), out=out, progress=lambda text: None, **options)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_every_spec_trains_on_synthetic_data(path, tmp_path):
    result = _train(path, tmp_path / "run", synthetic_n=4, batch_size=2, epochs=1, seed=0)
    assert result.epochs_completed == 1
    assert np.isfinite(result.history[0]["loss"])
    assert (tmp_path / "run" / "model.keras").is_file()


def test_loss_falls_on_the_learnable_synthetic_task(tmp_path):
    result = _train(SPECS / "multi_io.yaml", tmp_path / "run", synthetic_n=512, epochs=3, seed=1)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.95 * losses[0], losses


def test_run_folder_contents(tmp_path):
    run = tmp_path / "run"
    _train(SPECS / "mlp.yaml", run, synthetic_n=64, epochs=4, batch_size=16, seed=3, validation_split=0.25,
           checkpoint_interval=0)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "curves.png", "history.csv", "logs",
                                                    "model.keras", "run.json", "spec.yaml", "validation.json"]
    # every epoch was checkpointed (interval 0), and the last three are kept
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-0002.keras", "epoch-0003.keras", "epoch-0004.keras"]
    header, *rows = (run / "history.csv").read_text().splitlines()
    assert header == "epoch,accuracy,loss,val_accuracy,val_loss"
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3", "4"]
    assert (run / "spec.yaml").read_text() == (SPECS / "mlp.yaml").read_text()
    assert any((run / "logs" / "train").iterdir())  # TensorBoard event file
    settings = __import__("json").loads((run / "run.json").read_text())
    assert (settings["seed"], settings["status"], settings["epochs_completed"]) == (3, "completed", 4)
    model = keras.saving.load_model(run / "model.keras")
    assert model.name == "mlp" and model.count_params() == 55_050


def test_same_seed_same_history(tmp_path):
    for name in ("a", "b"):
        _train(SPECS / "shared_lstm.yaml", tmp_path / name, synthetic_n=32, epochs=2, batch_size=8, seed=42)
    first = (tmp_path / "a" / "history.csv").read_text()
    assert first == (tmp_path / "b" / "history.csv").read_text()
    other = _train(SPECS / "shared_lstm.yaml", tmp_path / "c", synthetic_n=32, epochs=2, batch_size=8, seed=43)
    assert (tmp_path / "c" / "history.csv").read_text() != first, other.history


def test_seed_is_recorded_when_none_is_given(tmp_path):
    _train(SPECS / "mlp.yaml", tmp_path / "run", synthetic_n=8, epochs=1)
    settings = __import__("json").loads((tmp_path / "run" / "run.json").read_text())
    assert isinstance(settings["seed"], int)


def test_resume_continues_the_epoch_count(tmp_path):
    run = tmp_path / "run"
    _train(SPECS / "mlp.yaml", run, synthetic_n=32, epochs=2, batch_size=8, seed=5)
    result = _train(SPECS / "mlp.yaml", None, resume=run, epochs=4)
    assert (result.epochs_run, result.epochs_completed) == (2, 4)
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3", "4"]


def test_resume_of_a_finished_run_needs_more_epochs(tmp_path):
    run = tmp_path / "run"
    _train(SPECS / "mlp.yaml", run, synthetic_n=8, epochs=1, seed=5)
    with pytest.raises(RunError) as info:
        _train(SPECS / "mlp.yaml", None, resume=run)
    assert info.value.diagnostics[0].message == "the run already finished its 1 epochs"


def test_resume_refuses_a_changed_spec(tmp_path, write_spec):
    run = tmp_path / "run"
    _train(SPECS / "mlp.yaml", run, synthetic_n=8, epochs=1, seed=5)
    changed = write_spec((SPECS / "mlp.yaml").read_text().replace("units: 64", "units: 32"), "mlp.yaml")
    with pytest.raises(RunError) as info:
        _train(changed, None, resume=run, epochs=2)
    assert info.value.diagnostics[0].message == "the spec differs from the one this run started with"


def test_out_folder_that_holds_files_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(RunError) as info:
        _train(SPECS / "mlp.yaml", tmp_path / "run", synthetic_n=8)
    assert info.value.diagnostics[0].message == "output folder already exists and is not empty"
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_spec_without_loss_cannot_train(tmp_path, write_spec):
    spec = write_spec("inputs: {x: [4]}\nedges:\n  y: {Dense: {units: 2}}\noutputs: [y]\n")
    with pytest.raises(RunError) as info:
        _train(spec, tmp_path / "run", synthetic_n=8)
    assert info.value.diagnostics[0].format() == (
        f"{spec}: error: the spec has no 'loss', so it cannot be trained\n"
        "  hint: add e.g. 'loss: binary_crossentropy' (and an 'optimizer') to the spec")


def test_weights_start_from_a_trained_model(tmp_path):
    first = tmp_path / "first"
    _train(SPECS / "mlp.yaml", first, synthetic_n=32, epochs=1, seed=5)
    trained = keras.saving.load_model(first / "model.keras").get_layer("predictions").get_weights()[0]
    _train(SPECS / "mlp.yaml", tmp_path / "second", synthetic_n=32, epochs=1, seed=6,
           weights=first / "model.keras")
    checkpoint = keras.saving.load_model(tmp_path / "second" / "checkpoints" / "epoch-0001.keras")
    after = checkpoint.get_layer("predictions").get_weights()[0]
    # trained further from the loaded weights: close to them, not to a fresh initialisation
    assert np.abs(after - trained).mean() < 0.05 * np.abs(trained).mean()


def test_cli_train_evaluate_predict(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", str(SPECS / "digits_cnn.yaml"), "--data", str(ROOT / "data" / "digits.npz"),
                                  "--epochs", "2", "--out", str(run), "--seed", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("digits_cnn: trained 2 epoch(s) (to epoch 2) in ")
    assert result.stdout.rstrip().endswith(f"run folder {run}")

    result = runner.invoke(main, ["evaluate", str(SPECS / "digits_cnn.yaml"), "--weights", str(run / "model.keras"),
                                  "--data", str(ROOT / "data" / "digits.npz"), "--json"])
    assert result.exit_code == 0, result.output
    scores = __import__("json").loads(result.stdout)
    assert sorted(scores) == ["accuracy", "loss"] and scores["accuracy"] > 0.5

    out = tmp_path / "pred.npz"
    result = runner.invoke(main, ["predict", str(SPECS / "digits_cnn.yaml"), "--weights", str(run / "model.keras"),
                                  "--data", str(ROOT / "data" / "digits.npz"), "-o", str(out), "--batch-size", "100"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {out}: digit (1797, 10)\n"
    with np.load(out) as predictions:
        probabilities = predictions["digit"]
    model = keras.saving.load_model(run / "model.keras")
    with np.load(ROOT / "data" / "digits.npz") as data:
        expected = model.predict(data["image"], verbose=0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_cli_usage_errors(tmp_path):
    runner = CliRunner()
    spec = str(SPECS / "mlp.yaml")
    assert runner.invoke(main, ["train", spec]).exit_code == 2
    assert runner.invoke(main, ["train", spec, "--data", "a.npz", "--synthetic", "3"]).exit_code == 2
    result = runner.invoke(main, ["train", spec, "--resume", str(tmp_path), "--seed", "1"])
    assert result.exit_code == 2 and "drop --seed" in result.output


def test_cli_data_error_is_reported_before_training(tmp_path):
    data = tmp_path / "bad.npz"
    np.savez(data, image=np.zeros((10, 8, 8), "float32"), digit=np.zeros(10, "int64"))
    result = CliRunner().invoke(main, ["train", str(SPECS / "digits_cnn.yaml"), "--data", str(data),
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.stderr == (f"{data}: error: array 'image' has shape (10, 8, 8); input 'image' expects "
                             "(N, 8, 8, 1)\n  hint: the first axis counts samples\n")
    assert not (tmp_path / "run").exists()
    assert "Traceback" not in result.output


def _kspec(*args: str) -> list[str]:
    return [sys.executable, "-m", "kspec", *args]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_keeps_a_consistent_run_and_resume_finishes(tmp_path, signum):
    run = tmp_path / "run"
    spec = str(SPECS / "shared_lstm.yaml")
    process = subprocess.Popen(_kspec("train", spec, "--synthetic", "256", "--epochs", "50", "--batch-size", "8",
                                      "--out", str(run), "--seed", "0", "-q"),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "history.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)  # epoch 1 is finished (and held in memory, not yet checkpointed)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "training interrupted; the run folder holds" in stderr
    assert f"hint: resume with: kspec train {spec} --resume {run}" in stderr
    assert "Traceback" not in stderr

    checkpoints = sorted((run / "checkpoints").glob("epoch-*.keras"))
    last_epoch = int(checkpoints[-1].stem.split("-")[1])
    assert keras.saving.load_model(checkpoints[-1]).name == "shared_lstm"
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert 1 <= len(rows) == last_epoch < 50
    settings = __import__("json").loads((run / "run.json").read_text())
    assert (settings["status"], settings["epochs_completed"]) == ("interrupted", last_epoch)

    finish = subprocess.run(_kspec("train", spec, "--resume", str(run), "--epochs", str(last_epoch + 1), "-q"),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(1, last_epoch + 2))
    assert (run / "model.keras").is_file()


def _check_consistent(run: Path) -> int:
    """Every model file loads, and history and settings stop where the newest checkpoint does."""
    checkpoints = sorted((run / "checkpoints").glob("epoch-*.keras"))
    assert checkpoints, "a run folder always holds a checkpoint"
    for path in checkpoints + [p for p in [run / "model.keras"] if p.exists()]:
        keras.saving.load_model(path)
    last_epoch = int(checkpoints[-1].stem.split("-")[1])
    history = run / "history.csv"
    rows = history.read_text().splitlines()[1:] if history.exists() else []
    assert [int(row.split(",")[0]) for row in rows] == list(range(1, last_epoch + 1))
    settings = __import__("json").loads((run / "run.json").read_text())
    assert settings["epochs_completed"] == last_epoch
    assert not list(run.parent.glob(f".{run.name}.*")), "no staging folder is left behind"
    return last_epoch


@pytest.mark.slow
def test_interrupts_at_random_moments_never_lose_a_run(tmp_path):
    """20 trials: SIGINT or SIGTERM at a random moment, from start-up to the last epoch."""
    import random

    rng = random.Random(20261126)
    spec = str(SPECS / "mlp.yaml")
    for trial in range(20):
        run = tmp_path / f"run{trial}"
        signum = rng.choice([signal.SIGINT, signal.SIGTERM])
        delay = rng.uniform(0.0, 9.0)
        process = subprocess.Popen(_kspec("train", spec, "--synthetic", "2048", "--epochs", "30", "--batch-size", "16",
                                          "--out", str(run), "--seed", str(trial), "-q"),
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(delay)
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=180)
        finally:
            process.kill()
        context = f"trial {trial}: {signal.Signals(signum).name} after {delay:.1f}s"
        assert process.returncode in (0, 130), (context, process.returncode, stderr)
        assert "Traceback" not in stderr, (context, stderr)
        if not run.exists():
            continue  # stopped before the run folder appeared: nothing to lose
        last_epoch = _check_consistent(run)
        if process.returncode == 0:
            continue
        finish = subprocess.run(_kspec("train", spec, "--resume", str(run), "--epochs", str(last_epoch + 1), "-q"),
                                cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert finish.returncode == 0, (context, finish.stderr)
        assert _check_consistent(run) == last_epoch + 1, context
        assert (run / "model.keras").is_file(), context


def test_mirrored_strategy_on_two_cpu_devices(tmp_path):
    result = subprocess.run(
        _kspec("train", str(SPECS / "shared_lstm.yaml"), "--synthetic", "32", "--epochs", "1", "--batch-size", "8",
               "--strategy", "mirrored", "--cpu-devices", "2", "--out", str(tmp_path / "run"), "-q"),
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr
    assert "training with MirroredStrategy on 2 device(s): /device:CPU:0, /device:CPU:1" in result.stderr
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_digits_cnn_reaches_95_percent(tmp_path):
    result = _train(SPECS / "digits_cnn.yaml", tmp_path / "run", data=ROOT / "data" / "digits.npz",
                    validation_split=0.2, seed=0)
    assert result.history[-1]["val_accuracy"] >= 0.95, result.history[-1]


@pytest.mark.slow
def test_digit_pairs_reaches_90_percent(tmp_path):
    result = _train(SPECS / "digit_pairs.yaml", tmp_path / "run", data=ROOT / "data" / "digit_pairs_train.npz",
                    val_data=ROOT / "data" / "digit_pairs_val.npz", seed=0)
    assert result.history[-1]["val_accuracy"] >= 0.90, result.history[-1]


def test_unwritable_output_folder_is_refused_before_training(tmp_path, monkeypatch):
    # Permissions do not bind root (CI), so the permission check itself is made to say no.
    monkeypatch.setattr("kspec.run_folder.os.access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(RunError) as info:
        _train(SPECS / "mlp.yaml", tmp_path / "run", synthetic_n=8)
    assert info.value.diagnostics[0].message == f"cannot create the run folder: '{tmp_path}' is not writable"
    assert list(tmp_path.iterdir()) == []


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch):
    import shutil as shutil_module

    from kspec import run_folder

    real = shutil_module.disk_usage
    monkeypatch.setattr(run_folder.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=1000))
    with pytest.raises(RunError) as info:
        _train(SPECS / "mlp.yaml", tmp_path / "run", synthetic_n=8)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.message.startswith("not enough disk space: the run needs about ")
    assert diagnostic.message.endswith(" MB for its checkpoints and has 0 MB free")
    assert list(tmp_path.iterdir()) == []  # no run folder, no staging folder


def test_disk_full_during_training_keeps_the_run_consistent(tmp_path, monkeypatch):
    import errno

    from kspec import files

    real = files.save_model
    calls = []

    def failing_save(model, path):
        calls.append(path.name)
        if path.name == "epoch-0002.keras":
            with files.atomic_path(path):  # the disk fills while the checkpoint is written
                raise OSError(errno.ENOSPC, "No space left on device")
        real(model, path)

    monkeypatch.setattr("kspec.run_folder.save_model", failing_save)
    run = tmp_path / "run"
    with pytest.raises(RunError) as info:
        _train(SPECS / "mlp.yaml", run, synthetic_n=32, epochs=4, batch_size=8, seed=1, checkpoint_interval=0)
    assert info.value.diagnostics[0].message == "cannot write file: No space left on device"
    monkeypatch.undo()
    assert _check_consistent(run) == 1


def test_tensorboard_logs_every_epoch(tmp_path):
    import tensorflow as tf

    run = tmp_path / "run"
    _train(SPECS / "mlp.yaml", run, synthetic_n=32, epochs=3, batch_size=8, seed=0, validation_split=0.25)
    for split in ("train", "validation"):
        [events] = (run / "logs" / split).glob("events.*")
        steps = [event.step for event in tf.compat.v1.train.summary_iterator(str(events))
                 for value in event.summary.value if value.tag == "epoch_loss"]
        assert steps == [0, 1, 2], split


class _CountingSummaries:
    """tf.summary, recording the tag of every scalar a callback hands it."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.real, self.tags = tf.summary, []

    def scalar(self, name, *args, **kwargs):
        self.tags.append(name)
        return self.real.scalar(name, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("kind", ["kspec", "keras"])
def test_tensorboard_does_no_per_batch_work(tmp_path, kind):
    # Keras's own callback turns every batch's logs into (unrecorded) summaries; kspec's does not.
    from kspec.callbacks import epoch_tensorboard

    callback = (epoch_tensorboard(keras) if kind == "kspec" else keras.callbacks.TensorBoard)(str(tmp_path))
    callback._summary_module = summaries = _CountingSummaries()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((16, 3)), np.ones((16, 2)), batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    per_batch = [tag for tag in summaries.tags if tag.startswith("batch_")]
    assert [tag for tag in summaries.tags if tag == "epoch_loss"] == ["epoch_loss"] * 2
    assert (per_batch == []) == (kind == "kspec"), per_batch


def test_kspec_callbacks_leave_batch_callbacks_asynchronous(tmp_path, monkeypatch):
    # On backends that allow it (JAX, torch), Keras runs batch callbacks on a thread unless one of them
    # needs them in step; kspec's never do. (TensorFlow's backend always runs them in step.)
    from keras.src import backend

    from kspec.callbacks import run_callbacks
    from kspec.run_folder import RunFolder
    from kspec.signals import StopFlag

    monkeypatch.setattr(backend, "IS_THREAD_SAFE", True)
    callbacks = run_callbacks(keras, RunFolder(tmp_path), [], StopFlag(), print, None)
    assert keras.callbacks.CallbackList(callbacks)._async_train is True
    assert keras.callbacks.CallbackList([*callbacks, keras.callbacks.TensorBoard(str(tmp_path))])._async_train is False


@pytest.mark.parametrize("args, message", [
    (["--resume", "run", "--synthetic", "8", "--seed", "1"], "--resume repeats the run's own settings; drop "
                                                              "--synthetic, --seed"),
    ([], "give exactly one of --data FILE.npz and --synthetic N"),
    (["--data", "d.npz", "--synthetic", "8"], "give exactly one of --data FILE.npz and --synthetic N"),
    (["--synthetic", "8", "--validation-split", "0.5", "--val-data", "v.npz"],
     "give --validation-split or --val-data, not both"),
])
def test_options_that_cannot_go_together_are_misuse(args, message, tmp_path, monkeypatch):
    # TrainOptions.usage_problem checks them, before anything is read or written.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", str(SPECS / "mlp.yaml"), *args])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == f"Error: {message}"
    assert list(tmp_path.iterdir()) == []


def test_train_takes_its_options_as_one_object_or_as_keywords(tmp_path):
    from kspec.train_options import TrainOptions

    spec, _ = read_spec(SPECS / "mlp.yaml")
    text = (SPECS / "mlp.yaml").read_text(encoding="utf-8")
    options = TrainOptions(synthetic_n=8, epochs=1, batch_size=4, seed=2, out=tmp_path / "a")
    first = train(spec, text, options, verbose=0, progress=lambda text: None)
    second = train(spec, text, options, out=tmp_path / "b", verbose=0, progress=lambda text: None)
    assert (first.run_dir, second.run_dir) == (tmp_path / "a", tmp_path / "b")
    assert first.history == second.history  # the same seed and data: the keyword replaced only --out
