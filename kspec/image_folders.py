"""Image folders: a folder of class subfolders (train/cat/*.png, train/dog/*.png), as Keras's
`image_dataset_from_directory` reads it, for a spec with one image input and one class output.

Classes are the subfolders' names in sorted order (class id 0 is the first),
as Keras numbers them. Each image is decoded with Pillow, converted to the
input's channels (1: grey, 3: RGB, 4: RGBA), resized to its height and width,
and kept as float32 values 0 to 255, as Keras gives them. Labels take the
output's form: class ids for a sparse loss, one-hot rows for a categorical
one, 0/1 for a binary one.

The rows are shuffled once, with a fixed seed, so that a validation split
(the last rows) holds every class and the same rows on every run. The images
are loaded whole, refused before any is decoded when they would not fit in
memory; a folder with a corrupt image, one class or an empty class is
refused, naming the file or folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .arrays import memory_bytes
from .errors import DataError, fail
from .spec.model import ModelDef

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MODES = {1: "L", 3: "RGB", 4: "RGBA"}
MAX_PIXELS = 2**26  # a larger image is a decompression bomb, refused before it is decoded
SHUFFLE_SEED = 0


def is_image_folder(path: Path) -> bool:
    """A folder with class subfolders and no .npy files (a folder of .npy files is arrays)."""
    return path.is_dir() and not any(path.glob("*.npy")) and any(_class_folders(path))


def _class_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not p.is_symlink())


def image_shape(spec: ModelDef, where: str) -> tuple[int, int, int]:
    """The (height, width, channels) of the spec's one image input, refusing a spec an image folder cannot feed."""
    shape = spec.inputs[0].shape if len(spec.inputs) == 1 else ()
    if (len(shape) != 3 or not all(isinstance(d, int) for d in shape) or shape[2] not in MODES
            or spec.inputs[0].dtype == "string"):
        raise fail(DataError, where, "an image folder feeds a spec with one image input of shape [height, width, "
                   "channels] (channels 1, 3 or 4)", "give the spec such an input, or store the data as an .npz")
    return shape  # type: ignore[return-value]


def check_folder(path: Path, spec: ModelDef, need_targets: bool = True) -> list[tuple[Path, list[Path]]]:
    """Each class folder with its images, refusing a spec or a folder that cannot train (before Keras)."""
    where = str(path)
    image_shape(spec, where)
    if need_targets and len(spec.output_names) != 1:
        raise fail(DataError, where, f"an image folder labels one output, and the spec has "
                   f"{len(spec.output_names)}", "give the spec one class output, or store the data as an .npz")
    classes = [(folder, _images(folder)) for folder in _class_folders(path)]
    for folder, images in classes:
        if not images:
            raise fail(DataError, str(folder), "the class folder holds no images",
                       f"add {', '.join(IMAGE_SUFFIXES)} files, or remove the folder")
    if need_targets and len(classes) < 2:
        raise fail(DataError, where, f"the image folder holds one class ('{classes[0][0].name}'); a classifier "
                   "needs two or more", "add a subfolder of images for each class")
    return classes


def read_image_folder(path: Path, spec: ModelDef, kinds: dict[str, str], output_shapes: dict[str, tuple[Any, ...]],
                      need_targets: bool) -> dict[str, np.ndarray]:
    """The images (by the input's name) and their labels (by the output's name, in its loss's form)."""
    classes = check_folder(path, spec, need_targets)
    height, width, channels = image_shape(spec, str(path))
    files = [(file, label) for label, (_, images) in enumerate(classes) for file in images]
    need = len(files) * height * width * channels * 4
    if need > memory_bytes() // 2:
        raise fail(DataError, str(path), f"{len(files):,} images of {height}x{width}x{channels} take {need:,} "
                   "bytes in memory, more than half of this machine's", "use fewer or smaller images")
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(files))
    images = np.empty((len(files), height, width, channels), dtype="float32")
    for row, index in enumerate(order):
        images[row] = _decode(files[index][0], height, width, channels)
    arrays = {spec.inputs[0].name: images}
    if need_targets:
        name = spec.output_names[0]
        ids = np.array([files[index][1] for index in order], dtype="int64")
        arrays[name] = _labels(ids, len(classes), kinds[name], output_shapes[name], str(path), name)
    return arrays


def _decode(file: Path, height: int, width: int, channels: int) -> np.ndarray:
    from PIL import Image  # Pillow comes with the data extra

    try:
        with Image.open(file) as image:
            if image.width * image.height > MAX_PIXELS:
                raise fail(DataError, str(file), f"the image is {image.width}x{image.height} pixels, more than "
                           f"{MAX_PIXELS:,}", "resize it, or remove it")
            image.load()
            picture = image.convert(MODES[channels]).resize((width, height), Image.Resampling.BILINEAR)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # Pillow's message repeats the path
        raise fail(DataError, str(file), "cannot read the image: it is corrupt, cut short, or not an image",
                   "replace or remove the file") from None
    return np.asarray(picture, dtype="float32").reshape(height, width, channels)


def _labels(ids: np.ndarray, classes: int, kind: str, output_shape: tuple[Any, ...], where: str,
            name: str) -> np.ndarray:
    units = output_shape[-1]
    if kind == "binary" or (units == 1 and classes == 2):
        if classes != 2:
            raise fail(DataError, where, f"the image folder holds {classes} classes, and output '{name}' takes "
                       "two (one unit, 0 or 1)", "give the output one unit per class and a categorical loss")
        return ids.astype("float32").reshape(-1, 1)
    if units != classes:
        raise fail(DataError, where, f"the image folder holds {classes} classes, and output '{name}' has "
                   f"{units} units", f"give the output {classes} units, one per class folder")
    if kind == "sparse":
        return ids
    return np.eye(classes, dtype="float32")[ids]


def count_images(path: Path) -> int:
    return sum(len(_images(folder)) for folder in _class_folders(path))

