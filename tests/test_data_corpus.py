"""Every invalid data file, through every command that reads data.

train, evaluate, predict and inspect each refuse each file with exit code 1,
the pinned message, no traceback, and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SPECS

from kspec.cli import main

DIGITS = str(SPECS / "digits_cnn.yaml")
MULTI_IO = str(SPECS / "multi_io.yaml")


def _images(n=6):
    return np.random.default_rng(0).random((n, 8, 8, 1), dtype="float32")


def _labels(n=6):
    return np.arange(n) % 10


def _npz(**arrays):
    def write(path: Path) -> None:
        np.savez(path, **arrays)
    return write


def _bytes(data: bytes):
    def write(path: Path) -> None:
        path.write_bytes(data)
    return write


def _truncated(path: Path) -> None:
    np.savez(path, image=_images(50), digit=_labels(50))
    path.write_bytes(path.read_bytes()[:-300])


def _pickled(path: Path) -> None:
    np.savez(path, image=np.array([{"x": 1}] * 6, dtype=object), digit=_labels())


def _folder(path: Path) -> None:
    path.mkdir()


def _nan(path: Path) -> None:
    images = _images()
    images[4, 2, 2, 0] = np.nan
    np.savez(path, image=images, digit=_labels())


def _inf(path: Path) -> None:
    images = _images()
    images[1, 0, 0, 0] = -np.inf
    np.savez(path, image=images, digit=_labels())


def _multi_io(main_input):
    def write(path: Path) -> None:
        np.savez(path, main_input=main_input, aux_input=np.zeros((2, 5), "float32"),
                 main_output=np.zeros((2, 1), "float32"), aux_output=np.zeros((2, 1), "float32"))
    return write


ALL = ("train", "evaluate", "predict", "inspect")
TARGETS = ("train", "evaluate")  # prediction and inspection need no labels

# name -> (spec, writer, commands that read it, message without the file name)
CASES = {
    "missing_input": (DIGITS, _npz(digit=_labels()), ALL, "error: no array for input 'image'"),
    "missing_target": (DIGITS, _npz(image=_images()), TARGETS, "error: no array for output 'digit'"),
    "misspelled_key": (DIGITS, _npz(imgae=_images(), digit=_labels()), ALL,
                       "error: unexpected array 'imgae'; did you mean 'image'?"),
    "wrong_shape": (DIGITS, _npz(image=_images()[..., 0], digit=_labels()), ALL,
                    "error: array 'image' has shape (6, 8, 8); input 'image' expects (N, 8, 8, 1)"),
    "strings": (DIGITS, _npz(image=np.full((6, 8, 8, 1), "x"), digit=_labels()), ALL,
                "error: array 'image' has dtype <U1; input 'image' expects numbers (float32)"),
    "class_out_of_range": (DIGITS, _npz(image=_images(), digit=_labels() + 5), TARGETS,
                           "error: array 'digit' holds class ids from 5 to 10; output 'digit' has 10 classes"),
    "float_labels": (DIGITS, _npz(image=_images(), digit=_labels().astype("float32")), TARGETS,
                     "error: array 'digit' has dtype float32; a sparse categorical loss expects integer class ids"),
    "nan": (DIGITS, _nan, ALL, "error: array 'image' holds NaN or infinity (first in row 4)"),
    "infinity": (DIGITS, _inf, ALL, "error: array 'image' holds NaN or infinity (first in row 1)"),
    "different_lengths": (DIGITS, _npz(image=_images(6), digit=_labels(5)), TARGETS,
                          "error: arrays have different lengths (image: 6, digit: 5)"),
    "not_npz": (DIGITS, _bytes(b"image,digit\n0.1,3\n"), ALL, "error: not an .npz file"),
    "empty_file": (DIGITS, _bytes(b""), ALL, "error: not an .npz file"),
    "truncated": (DIGITS, _truncated, ALL, "error: the .npz file is truncated or corrupt"),
    "pickled": (DIGITS, _pickled, ALL, "error: array 'image' holds Python objects, which kspec does not load"),
    "folder": (DIGITS, _folder, ALL, "error: is a directory, not an .npz file"),
    "embedding_range": (MULTI_IO, _multi_io(np.full((2, 100), 10000)), ALL,
                        "error: array 'main_input' holds ids from 10000 to 10000, outside the Embedding's "
                        "input_dim 10000"),
    "float_ids": (MULTI_IO, _multi_io(np.zeros((2, 100), "float32")), ALL,
                  "error: array 'main_input' has dtype float32; input 'main_input' expects integers (int32)"),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    for spec in (DIGITS, MULTI_IO):
        result = CliRunner().invoke(main, ["build", spec, "-o", str(folder / f"{Path(spec).stem}.keras")])
        assert result.exit_code == 0, result.output
    return folder


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 15


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_command_refuses_bad_data(name, tmp_path, weights):
    spec, write, commands, message = CASES[name]
    data = tmp_path / "data.npz"
    write(data)
    out = tmp_path / "out"
    out.mkdir()
    model = str(weights / f"{Path(spec).stem}.keras")
    invocations = {
        "train": ["train", spec, "--data", str(data), "--out", str(out / "run"), "-q"],
        "evaluate": ["evaluate", spec, "--weights", model, "--data", str(data)],
        "predict": ["predict", spec, "--weights", model, "--data", str(data), "-o", str(out / "p.npz")],
        "inspect": ["inspect", spec, "--all", "--data", str(data), "-o", str(out / "d.npz")],
    }
    for command in commands:
        result = CliRunner().invoke(main, invocations[command])
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.splitlines()[0] == f"{data}: {message}", command
        assert "Traceback" not in result.output
        assert list(out.iterdir()) == [], command


def test_pickle_is_never_loaded(tmp_path, weights):
    # A pickled payload that would run code if unpickled: kspec refuses the file without loading it.
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    data = tmp_path / "evil.npz"
    np.savez(data, image=np.array([Payload()], dtype=object), digit=np.zeros(1, "int64"))
    assert not marker.exists()  # saving pickles, it does not run the payload
    result = CliRunner().invoke(main, ["predict", DIGITS, "--weights", str(weights / "digits_cnn.keras"),
                                       "--data", str(data), "-o", str(tmp_path / "p.npz")])
    assert result.exit_code == 1
    assert not marker.exists()
