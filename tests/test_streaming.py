"""Data larger than memory: stored arrays read batch by batch, with memory that does not grow with the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT, SPECS

from kspec.arrays import StoredArray
from kspec import data as kspec_data
from kspec.cli import main
from kspec.data import read_npz
from kspec.errors import DataError


def test_uncompressed_members_are_read_in_place(tmp_path):
    path = tmp_path / "d.npz"
    image = np.arange(2 * 8 * 8, dtype="float32").reshape(2, 8, 8, 1)
    np.savez(path, image=image, digit=np.array([3, 4]))
    arrays = read_npz(path, stream=True)
    assert isinstance(arrays["image"], StoredArray) and arrays["image"].shape == (2, 8, 8, 1)
    np.testing.assert_array_equal(arrays["image"][0:2], image)
    np.testing.assert_array_equal(arrays["image"].window(1, 2)[0:1], image[1:2])
    compressed = tmp_path / "c.npz"
    np.savez_compressed(compressed, image=image)
    loaded = read_npz(compressed, stream=True)["image"]
    assert isinstance(loaded, np.ndarray)  # compressed members are loaded instead
    np.testing.assert_array_equal(loaded, image)


def _train_mlp(tmp_path: Path, mode: str, *extra: str) -> np.ndarray:
    run = tmp_path / f"{mode.strip('-')}{len(extra)}"
    result = CliRunner().invoke(main, ["train", str(SPECS / "mlp.yaml"), "--data", str(tmp_path / "data.npz"),
                                       "--batch-size", "64", "--no-shuffle", "--seed", "1", "--validation-split",
                                       "0.2", "--out", str(run), "-q", mode, *extra])
    assert result.exit_code == 0, result.output
    return np.loadtxt(run / "history.csv", delimiter=",", skiprows=1, ndmin=2)


def test_streamed_batches_hold_the_same_data_as_in_memory(tmp_path):
    # With a learning rate of 0 the model stays as initialised, so an epoch's losses and
    # accuracies measure exactly the data each path fed it.
    _mlp_data(tmp_path / "data.npz", 600)
    frozen = ("--set", "optimizer={SGD: {learning_rate: 0.0}}")
    streamed, in_memory = _train_mlp(tmp_path, "--stream", *frozen), _train_mlp(tmp_path, "--no-stream", *frozen)
    np.testing.assert_allclose(streamed, in_memory, rtol=1e-5)


def test_streamed_training_learns(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.random((600, 784), dtype="float32")
    labels = np.eye(10, dtype="float32")[(inputs[:, :10].argmax(axis=1))]  # a learnable rule
    np.savez(tmp_path / "data.npz", inputs=inputs, predictions=labels)
    history = _train_mlp(tmp_path, "--stream", "--epochs", "6")
    assert history[-1, 2] < 0.95 * history[0, 2]  # the training loss column falls


def test_a_folder_of_npy_files_is_data(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    with np.load(ROOT / "data" / "digits.npz") as archive:
        for key in archive.files:
            np.save(folder / f"{key}.npy", archive[key][:200])
    result = CliRunner().invoke(main, ["train", str(SPECS / "digits_cnn.yaml"), "--data", str(folder), "--epochs", "1",
                                       "--out", str(tmp_path / "run"), "-q", "--stream"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_a_cut_short_npy_file_is_refused_before_training(tmp_path, stream):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "inputs.npy", np.zeros((100, 784), dtype="float32"))
    np.save(folder / "predictions.npy", np.eye(10, dtype="float32")[np.zeros(100, dtype=int)])
    whole = (folder / "inputs.npy").read_bytes()
    (folder / "inputs.npy").write_bytes(whole[: len(whole) // 2])
    result = CliRunner().invoke(main, ["train", str(SPECS / "mlp.yaml"), "--data", str(folder), "--out",
                                       str(tmp_path / "run"), "-q", stream])
    assert result.exit_code == 1, result.output
    assert result.output == (f"{folder / 'inputs.npy'}: error: array 'inputs' promises 313,600 bytes of data "
                             "(shape (100, 784), float32) but the file holds 156,736\n"
                             "  hint: the file is truncated or damaged; write it again\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, how", [("shrink", "shrank"), ("rewrite", "changed")])
def test_a_stored_array_refuses_a_file_changed_after_it_was_checked(tmp_path, change, how):
    path = tmp_path / "d.npz"
    np.savez(path, image=np.zeros((4, 3), "float32"))
    stored = read_npz(path, stream=True)["image"]
    assert stored[0:4].shape == (4, 3)  # unchanged: read as usual
    if change == "shrink":
        path.write_bytes(path.read_bytes()[:-40])
    else:
        np.savez(path, image=np.ones((4, 3), "float32"))  # same size, new content
        os.utime(path, ns=(0, 1))  # a modification time of its own, whatever the clock's resolution
    with pytest.raises(DataError) as info:
        stored[0:4]
    assert str(info.value) == (f"{path}: error: the file {how} while kspec was reading array 'image' from it\n"
                               "  hint: leave data files alone while kspec uses them, then run the command again")


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_data_that_shrinks_during_training_stops_with_the_file_named(tmp_path, monkeypatch, command):
    # The file is cut short after a few batches were read: the next batch finds out inside
    # Keras's fit or evaluate (on tf.data's thread, which wraps errors in its own), and the
    # command stops with the file's own error.
    data = tmp_path / "data.npz"
    _mlp_data(data, 64)
    real_take, batches_read = kspec_data.Dataset.take, []

    def take_then_shrink(self, rows):
        batches_read.append(rows)
        if len(batches_read) == 5:  # past the batches Keras reads up front to learn their shapes
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        return real_take(self, rows)

    monkeypatch.setattr(kspec_data.Dataset, "take", take_then_shrink)
    monkeypatch.setattr(kspec_data, "STREAM_BYTES", 0)  # evaluate streams only large files
    weights = tmp_path / "mlp.keras"
    assert CliRunner().invoke(main, ["build", str(SPECS / "mlp.yaml"), "-o", str(weights)]).exit_code == 0
    args = {"train": ["train", str(SPECS / "mlp.yaml"), "--out", str(tmp_path / "run"), "-q", "--no-shuffle"],
            "evaluate": ["evaluate", str(SPECS / "mlp.yaml"), "--weights", str(weights)]}[command]
    result = CliRunner().invoke(main, [*args, "--data", str(data), "--batch-size", "4"])
    assert result.exit_code == 1, result.output
    assert len(batches_read) >= 5
    assert result.stderr.splitlines()[0] == f"{data}: error: the file shrank while kspec was reading array " \
        "'inputs' from it"  # a batch's inputs are read first
    assert "Traceback" not in result.output
    if command == "train":  # the run folder records why it stopped
        settings = json.loads((tmp_path / "run" / "run.json").read_text())
        assert settings["status"] == "failed" and "the file shrank" in settings["error"]


@pytest.mark.parametrize("command, batch_bytes", [("train", "203,264"), ("predict", "200,704")])  # predict: no labels
def test_a_batch_of_stored_data_too_large_for_memory_is_refused_before_it_is_read(tmp_path, monkeypatch, command,
                                                                                  batch_bytes):
    # Streamed data exists because it does not fit in memory: a batch as large as the file would undo that.
    data = tmp_path / "data.npz"
    _mlp_data(data, 100)
    monkeypatch.setattr(kspec_data, "memory_bytes", lambda: 16 * 100_000)  # a batch may take 100,000 bytes
    weights = tmp_path / "mlp.keras"
    assert CliRunner().invoke(main, ["build", str(SPECS / "mlp.yaml"), "-o", str(weights)]).exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    args = {"train": ["train", str(SPECS / "mlp.yaml"), "--out", str(out / "run"), "-q", "--stream"],
            "predict": ["predict", str(SPECS / "mlp.yaml"), "--weights", str(weights), "-o", str(out / "p.npz")]}
    result = CliRunner().invoke(main, [*args[command], "--data", str(data), "--batch-size", "64"])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == (
        f"{data}: error: a batch of 64 rows of this data takes {batch_bytes} bytes; several are read ahead, more than "
        "half of this machine's memory (1,600,000 bytes)")
    assert "Traceback" not in result.output
    assert list(out.iterdir()) == []
    smaller = CliRunner().invoke(main, [*args[command], "--data", str(data), "--batch-size", "16"])
    assert smaller.exit_code == 0, smaller.output


def _peak_memory(args: list[str]) -> int:
    """Peak resident memory (KiB) of a kspec command run in its own process."""
    code = ("import resource, runpy, sys\n"
            f"sys.argv = ['kspec', *{args!r}]\n"
            "try:\n    runpy.run_module('kspec', run_name='__main__')\n"
            "except SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def _mlp_data(path: Path, rows: int) -> int:
    rng = np.random.default_rng(0)
    np.savez(path, inputs=rng.random((rows, 784), dtype="float32"),
             predictions=np.eye(10, dtype="float32")[rng.integers(0, 10, rows)])
    return path.stat().st_size


@pytest.mark.slow
def test_memory_does_not_grow_with_the_file(tmp_path):
    small, large = tmp_path / "small.npz", tmp_path / "large.npz"
    small_bytes, large_bytes = _mlp_data(small, 10_000), _mlp_data(large, 80_000)  # about 32 MB and 254 MB
    weights = tmp_path / "mlp.keras"
    assert CliRunner().invoke(main, ["build", str(SPECS / "mlp.yaml"), "-o", str(weights)]).exit_code == 0
    for command in (["train", str(SPECS / "mlp.yaml"), "--epochs", "1", "--batch-size", "256", "--stream", "-q"],
                    ["predict", str(SPECS / "mlp.yaml"), "--weights", str(weights), "--batch-size", "256"]):
        peaks = []
        for data in (small, large):
            extra = ["--out", str(tmp_path / f"run-{data.stem}")] if command[0] == "train" else \
                ["-o", str(tmp_path / f"pred-{data.stem}.npz")]
            peaks.append(_peak_memory([*command, "--data", str(data), *extra]))
        grown = (peaks[1] - peaks[0]) * 1024
        # 222 MB more data; the process may grow by the predictions it keeps (3 MB), not by the data.
        assert grown < 0.25 * (large_bytes - small_bytes), (command[0], peaks)
