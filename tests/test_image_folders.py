"""Folders of class folders of images (kspec.image_folders): pixels, labels, order, training.

Tiny PNGs are written with Pillow; the arrays read back are compared with the
pixels written. Bad folders are in tests/test_data_corpus.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kspec.cli import main
from kspec.data import load_npz
from kspec.spec import read_spec

SPEC = """\
name: pictures
inputs:
  image: {shape: [8, 8, 3]}
edges:
  flat: {Flatten: {}}
  kind: {Dense: {units: 3, activation: softmax}}
outputs: [kind]
loss: LOSS
optimizer: adam
metrics: [accuracy]
"""
CLASSES = ("cat", "dog", "owl")


def _spec(tmp_path: Path, loss: str = "sparse_categorical_crossentropy") -> Path:
    path = tmp_path / "pictures.yaml"
    path.write_text(SPEC.replace("LOSS", loss))
    return path


def _folder(root: Path, per_class: int = 4, size: int = 8) -> dict[tuple[int, int], np.ndarray]:
    """Images whose pixels say their class and number; returns (class id, number) -> the RGB pixels."""
    written = {}
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for k in range(per_class):
            pixels = np.zeros((size, size, 3), dtype=np.uint8)
            pixels[..., 0], pixels[..., 1] = label * 50, k * 10
            pixels[..., 2] = np.arange(size * size).reshape(size, size)
            Image.fromarray(pixels).save(root / name / f"{k}.png")
            written[(label, k)] = pixels
    (root / "cat" / "notes.txt").write_text("not an image: skipped")
    return written


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_images_and_labels_are_the_pixels_and_classes_written(tmp_path, loss):
    written = _folder(tmp_path / "train")
    spec, _ = read_spec(_spec(tmp_path, loss))
    dataset = load_npz(tmp_path / "train", spec, {"kind": (None, 3)})
    images, labels = dataset.inputs["image"], dataset.targets["kind"]
    assert images.shape == (12, 8, 8, 3) and images.dtype == np.float32
    ids = labels if loss.startswith("sparse") else labels.argmax(axis=1)
    if not loss.startswith("sparse"):
        assert labels.shape == (12, 3) and set(labels.sum(axis=1)) == {1.0}
    seen = set()
    for image, label in zip(images, ids):
        key = (int(label), int(image[0, 0, 1]) // 10)
        np.testing.assert_array_equal(image, written[key].astype("float32"))  # its class's folder, unchanged
        seen.add(key)
    assert len(seen) == 12
    assert ids.tolist() != sorted(ids.tolist())  # shuffled once, so that a split's last rows hold every class
    again = load_npz(tmp_path / "train", spec, {"kind": (None, 3)})
    np.testing.assert_array_equal(again.inputs["image"], images)  # the same order every time


def test_images_are_resized_to_the_input(tmp_path):
    _folder(tmp_path / "train", per_class=2, size=16)
    spec, _ = read_spec(_spec(tmp_path))
    images = load_npz(tmp_path / "train", spec, {"kind": (None, 3)}).inputs["image"]
    assert images.shape == (6, 8, 8, 3)
    assert 0 <= images.min() and images.max() <= 255


def test_trains_on_an_image_folder_with_a_split_and_with_a_validation_folder(tmp_path):
    _folder(tmp_path / "train")
    _folder(tmp_path / "val", per_class=2)
    spec = str(_spec(tmp_path))
    for extra in (["--validation-split", "0.25"], ["--val-data", str(tmp_path / "val")]):
        out = tmp_path / f"run{len(extra[1])}"
        result = CliRunner().invoke(main, ["train", spec, "--data", str(tmp_path / "train"), "--epochs", "1",
                                           "--batch-size", "4", "--out", str(out), "-q", *extra])
        assert result.exit_code == 0, result.output
        assert "val_accuracy" in result.output
    result = CliRunner().invoke(main, ["evaluate", "--run", str(out)])
    assert result.exit_code == 0, result.output


def test_a_folder_of_npy_files_is_still_arrays(tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "image.npy", np.zeros((2, 8, 8, 3), "float32"))
    np.save(folder / "kind.npy", np.array([0, 2]))
    (folder / "cat").mkdir()  # a stray subfolder does not make it an image folder
    spec, _ = read_spec(_spec(tmp_path))
    assert len(load_npz(folder, spec, {"kind": (None, 3)})) == 2
