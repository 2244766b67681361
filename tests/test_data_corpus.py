"""Every invalid data file, through every command that reads data.

train, evaluate, predict and inspect each refuse each file with exit code 1,
the pinned message, no traceback, and nothing written. Files that lie (a
header that promises what the file does not hold, members that are not
arrays, values a cast would change) are crafted byte by byte.
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
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


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _lying_npy(header: str, payload: bytes) -> bytes:
    """A .npy file with this header text (a dict literal, as numpy writes it) before `payload`."""
    text = header + " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + payload


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED):
    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", compression) as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, which one case writes on purpose
            for name, data in members.items():
                archive.writestr(name.split("#")[0], data)  # "#2" tells two members of one name apart
    return write


def _digits_with_image(image: bytes, name: str = "image.npy", compression: int = zipfile.ZIP_STORED):
    return _zip({name: image, "digit.npy": _npy_bytes(_labels())}, compression)


def _zip_size_lies(path: Path) -> None:
    # The last member's header and the zip's directory both promise 1,000 images; the file holds 6.
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 8, 8, 1), }"
    image = _lying_npy(header, _images().tobytes())
    _zip({"digit.npy": _npy_bytes(_labels()), "image.npy": image})(path)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)  # the second directory entry: image.npy
    promised = len(image) - len(_images().tobytes()) + 1000 * 256
    struct.pack_into("<LL", data, entry + 20, promised, promised)  # its compressed and uncompressed sizes
    path.write_bytes(bytes(data))


def _image_header(shape: str) -> bytes:
    return _lying_npy(f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}", _images().tobytes())


TYPED = "typed"  # a spec with an int32, a uint8, a float16, a bool and a string input, written by the fixture below
TYPED_SPEC = """\
name: typed
inputs:
  ids: {shape: [2], dtype: int32}
  small: {shape: [2], dtype: uint8}
  half: {shape: [2], dtype: float16}
  flag: {shape: [2], dtype: bool}
  word: {shape: [1], dtype: string}
edges:
  a: {Dense: {units: 1}, in: ids}
  b: {Dense: {units: 1}, in: small}
  c: {Dense: {units: 1}, in: half}
  d: {Dense: {units: 1}, in: flag}
  word_ids: {StringLookup: {vocabulary: [cat, dog], output_mode: one_hot}, in: word}
  e: {Dense: {units: 1}, in: word_ids}
  out:
    Add: {}
    in: [a, b, c, d, e]
outputs: [out]
loss: mse
optimizer: sgd
"""


def _typed(**bad):
    arrays = {"ids": np.zeros((6, 2), "int64"), "small": np.zeros((6, 2), "int64"),
              "half": np.zeros((6, 2), "float32"), "flag": np.zeros((6, 2), bool), "word": np.full((6, 1), "cat"),
              "out": np.zeros((6, 1))}
    return _npz(**{**arrays, **bad})


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
    # Headers that lie: refused before anything is allocated.
    "negative_shape": (DIGITS, _digits_with_image(_image_header("(-1, 8, 8, 1)")), ALL,
                       "error: array 'image' has a header that promises shape (-1, 8, 8, 1); a shape is a tuple "
                       "of counts, none negative"),
    "enormous_shape": (DIGITS, _digits_with_image(_image_header("(1099511627776, 8, 8, 1)")), ALL,
                       "error: array 'image' promises 281,474,976,710,656 bytes of data (shape (1099511627776, "
                       "8, 8, 1), float32) but the file holds 1,536"),
    "enormous_compressed": (DIGITS, _digits_with_image(_image_header("(1099511627776, 8, 8, 1)"),
                                                       compression=zipfile.ZIP_DEFLATED), ALL,
                            "error: array 'image' promises 281,474,976,710,656 bytes of data (shape "
                            "(1099511627776, 8, 8, 1), float32) but the file holds 1,536"),
    "zip_sizes_lie_too": (DIGITS, _zip_size_lies, ALL,
                          "error: array 'image' promises 256,000 bytes of data (shape (1000, 8, 8, 1), float32) but "
                          "the file holds 1,668"),
    "not_a_header": (DIGITS, _digits_with_image(b"\x93NUMPY\x01\x00\x06\x00hello\n"), ALL,
                     "error: array 'image' has no valid .npy header (magic string, version, then a dict of "
                     "descr, fortran_order and shape)"),
    "scalar": (DIGITS, _npz(image=np.float32(1.0), digit=_labels()), ALL,
               "error: array 'image' is a single value (shape ()), not one row per sample"),
    "zero_rows": (DIGITS, _npz(image=_images(0), digit=_labels(0)), ALL,
                  "error: the arrays hold no samples (image, digit: 0 rows)"),
    "structured": (DIGITS, _npz(image=np.zeros(6, dtype=[("a", "<f4")]), digit=_labels()), ALL,
                   "error: array 'image' has dtype [('a', '<f4')]: records of a structured dtype, not plain numbers"),
    "complex": (DIGITS, _npz(image=_images().astype("complex64"), digit=_labels()), ALL,
                "error: array 'image' has dtype complex64: complex numbers, not plain numbers"),
    "array_in_each_value": (DIGITS, _digits_with_image(_lying_npy(
        "{'descr': ('<f4', (8, 8, 1)), 'fortran_order': False, 'shape': (6,), }", _images().tobytes())), ALL,
                            "error: array 'image' has dtype ('<f4', (8, 8, 1)): an array inside each value, "
                            "not plain numbers"),
    # Members that are not arrays.
    "member_without_npy": (DIGITS, _digits_with_image(_npy_bytes(_images()), name="image"), ALL,
                           "error: member 'image' is not a .npy array"),
    "member_up_a_folder": (DIGITS, _digits_with_image(_npy_bytes(_images()), name="../image.npy"), ALL,
                           "error: member '../image.npy' has a path in its name, not an array name"),
    "member_in_a_folder": (DIGITS, _digits_with_image(_npy_bytes(_images()), name="a/image.npy"), ALL,
                           "error: member 'a/image.npy' has a path in its name, not an array name"),
    "member_twice": (DIGITS, _zip({"image.npy": _npy_bytes(_images()), "image.npy#2": _npy_bytes(_images()),
                                   "digit.npy": _npy_bytes(_labels())}), ALL,
                     "error: holds two members named 'image.npy'"),
    # Values a cast to the input's dtype would change without a word.
    "ids_wrap_in_int32": (TYPED, _typed(ids=np.full((6, 2), 2**31 + 5, "int64")), ALL,
                          "error: array 'ids' holds values from 2147483653 to 2147483653, which int32 cannot hold: "
                          "-2147483648 to 2147483647; the cast would change them"),
    "negative_into_unsigned": (TYPED, _typed(small=np.full((6, 2), -1, "int64")), ALL,
                               "error: array 'small' holds values from -1 to -1, which uint8 cannot hold: 0 to 255; "
                               "the cast would change them"),
    "beyond_float16": (TYPED, _typed(half=np.full((6, 2), 1e5, "float32")), ALL,
                       "error: array 'half' holds values from 100000.0 to 100000.0, which float16 cannot hold: "
                       "-65504 to 65504; the cast would change them"),
    "fraction_into_bool": (TYPED, _typed(flag=np.full((6, 2), 0.5)), ALL,
                           "error: array 'flag' holds values from 0.5 to 0.5, which bool cannot hold: only 0 and 1; "
                           "the cast would change them"),
    "numbers_for_strings": (TYPED, _typed(word=np.zeros((6, 1), "float32")), ALL,
                            "error: array 'word' has dtype float32; input 'word' has dtype string in the spec and "
                            "expects strings"),
    "objects_for_strings": (TYPED, _typed(word=np.array([["cat"]] * 6, dtype=object)), ALL,
                            "error: array 'word' holds Python objects, which kspec does not load"),
    "target_beyond_float32": (TYPED, _typed(out=np.full((6, 1), 1e300)), TARGETS,
                              "error: array 'out' holds values from 1e+300 to 1e+300, which float32 cannot hold: "
                              "-3.40282e+38 to 3.40282e+38; the cast would change them"),
}


TABLE = "table"  # a spec fed by table columns: two through 'columns:', a string column, a class label
TABLE_SPEC = """\
name: table
inputs:
  x: {shape: [2], columns: [a, b]}
  word: {shape: [1], dtype: string}
edges:
  ids: {StringLookup: {vocabulary: [cat, dog], output_mode: one_hot}, in: word}
  both: {Concatenate: {}, in: [x, ids]}
  y: {Dense: {units: 3, activation: softmax}}
outputs: [y]
loss: sparse_categorical_crossentropy
optimizer: sgd
"""
TABLE_ROWS = "a,b,word,y\n1,2,cat,0\n3,4,dog,1\n5,6,cat,2\n"


def _csv(text: str):
    return _bytes(text.encode())


def _parquet(**columns):
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), path)
    return write


def _png(path: Path, size: int = 8) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.arange(size * size, dtype=np.uint8).reshape(size, size)).save(path)


def _image_folder(**classes):
    """A folder of class folders: each class name -> its image files ('bad' ones hold garbage)."""
    def write(path: Path) -> None:
        path.mkdir()
        for name, files in classes.items():
            (path / name).mkdir()
            for file in files:
                if file.startswith("bad"):
                    (path / name / file).write_bytes(b"not a picture")
                else:
                    _png(path / name / file)
    return write


# name -> (spec, file name, writer, commands that read it, what the first line of stderr says after the path)
FILE_CASES = {
    "table_missing_column": (TABLE, "data.csv", _csv("a,word,y\n1,cat,0\n"), ALL,
                             ": error: no column 'b' for input 'x'"),
    "table_missing_label": (TABLE, "data.csv", _csv("a,b,word\n1,2,cat\n"), TARGETS,
                            ": error: no column 'y' for output 'y'"),
    "table_text_in_numbers": (TABLE, "data.csv", _csv(TABLE_ROWS + "7,oops,dog,0\n"), ALL,
                              ": error: column 'b' holds text where input 'x' expects numbers: row 3 is 'oops'"),
    "table_missing_values": (TABLE, "data.csv", _csv("a,b,word,y\n1,2,cat,0\n,4,dog,1\n,6,cat,2\n"), ALL,
                             ": error: column 'a' has 2 missing values (first in row 1)"),
    "table_missing_label_value": (TABLE, "data.csv", _csv("a,b,word,y\n1,2,cat,\n3,4,dog,1\n"), TARGETS,
                                  ": error: column 'y' has 1 missing value (first in row 0)"),
    "table_class_out_of_range": (TABLE, "data.csv", _csv(TABLE_ROWS + "7,8,dog,5\n"), TARGETS,
                                 ": error: array 'y' holds class ids from 0 to 5; output 'y' has 3 classes"),
    "table_empty_csv": (TABLE, "data.csv", _csv(""), ALL, ": error: the CSV file is empty"),
    "table_header_only": (TABLE, "data.csv", _csv("a,b,word,y\n"), ALL,
                          ": error: the table has no rows, only column names"),
    "table_not_parquet": (TABLE, "data.parquet", _csv(TABLE_ROWS), ALL,
                          ": error: not a Parquet file, or a corrupt or truncated one (Parquet magic bytes not found "
                          "in footer. Either the file is corrupted or this is not a parquet file.)"),
    "parquet_text_in_numbers": (TABLE, "data.parquet", _parquet(a=[1.0, 2.0], b=["3", "x"], word=["cat", "dog"],
                                                                y=[0, 1]), ALL,
                                ": error: column 'b' holds text where input 'x' expects numbers: row 1 is 'x'"),
    "images_one_class": (DIGITS, "images", _image_folder(cat=["1.png"]), TARGETS,
                         ": error: the image folder holds one class ('cat'); a classifier needs two or more"),
    "images_empty_class": (DIGITS, "images", _image_folder(cat=["1.png"], dog=[]), ALL,
                           "/dog: error: the class folder holds no images"),
    "images_corrupt": (DIGITS, "images", _image_folder(cat=["1.png"], dog=["bad.png"]), ALL,
                       "/dog/bad.png: error: cannot read the image: it is corrupt, cut short, or not an image"),
    "images_wrong_class_count": (DIGITS, "images", _image_folder(cat=["1.png"], dog=["2.png"]), TARGETS,
                                 ": error: the image folder holds 2 classes, and output 'digit' has 10 units"),
    "images_for_a_table_spec": (TABLE, "images", _image_folder(cat=["1.png"], dog=["2.png"]), ALL,
                                ": error: an image folder feeds a spec with one image input of shape [height, "
                                "width, channels] (channels 1, 3 or 4)"),
}


@pytest.fixture(scope="module")
def table_spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("specs") / "table.yaml"
    path.write_text(TABLE_SPEC)
    return str(path)


@pytest.fixture(scope="module")
def typed_spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("specs") / "typed.yaml"
    path.write_text(TYPED_SPEC)
    return str(path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, typed_spec, table_spec):
    folder = tmp_path_factory.mktemp("weights")
    for spec in (DIGITS, MULTI_IO, typed_spec, table_spec):
        result = CliRunner().invoke(main, ["build", spec, "-o", str(folder / f"{Path(spec).stem}.keras")])
        assert result.exit_code == 0, result.output
    return folder


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_command_refuses_bad_data(name, tmp_path, weights, typed_spec):
    spec, write, commands, message = CASES[name]
    spec = typed_spec if spec == TYPED else spec
    _refused(spec, tmp_path / "data.npz", write, commands, ": " + message, tmp_path, weights)


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_every_command_refuses_bad_tables_and_image_folders(name, tmp_path, weights, table_spec):
    spec, file_name, write, commands, message = FILE_CASES[name]
    _refused(table_spec if spec == TABLE else spec, tmp_path / file_name, write, commands, message, tmp_path, weights)


def _refused(spec, data, write, commands, message, tmp_path, weights):
    """Each command exits 1 with `message` after the data's path as stderr's first line, writing nothing."""
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
        assert result.stderr.splitlines()[0] == f"{data}{message}", command
        assert "Traceback" not in result.output
        assert list(out.iterdir()) == [], command


@pytest.mark.parametrize("container", ["npz", "folder"])
def test_pickle_is_never_loaded(tmp_path, weights, container):
    # A pickled payload that would run code if unpickled: kspec refuses the file without loading it.
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    payload = np.array([Payload()], dtype=object)
    if container == "npz":
        data = tmp_path / "evil.npz"
        np.savez(data, image=payload, digit=np.zeros(1, "int64"))
    else:
        data = tmp_path / "evil"
        data.mkdir()
        np.save(data / "image.npy", payload, allow_pickle=True)
        np.save(data / "digit.npy", np.zeros(1, "int64"))
    assert not marker.exists()  # saving pickles, it does not run the payload
    for command in (["predict", DIGITS, "--weights", str(weights / "digits_cnn.keras"), "-o", str(tmp_path / "p.npz")],
                    ["train", DIGITS, "--out", str(tmp_path / "run"), "-q"]):
        result = CliRunner().invoke(main, [*command, "--data", str(data)])
        assert result.exit_code == 1, result.output
        assert "array 'image' holds Python objects, which kspec does not load" in result.stderr.splitlines()[0]
        assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil" if container == "folder" else "evil.npz"]


def _compressed_bomb(path: Path) -> None:
    """An .npz whose deflated 'image' member holds ~300 MB of zeros in ~300 KB, its header honest."""
    rows = 1_200_000  # 307,200,000 bytes of float32 images
    zeros = memoryview(bytes(2**20))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("image.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (rows, 8, 8, 1)})
            left = rows * 256
            while left:
                member.write(zeros[:min(left, len(zeros))])
                left -= min(left, len(zeros))
        archive.writestr("digit.npy", _npy_bytes(_labels(rows)))


def test_a_compressed_member_that_inflates_like_a_bomb_is_refused_uninflated(tmp_path, weights):
    import tracemalloc

    from kspec.arrays import read_npz_arrays
    from kspec.errors import DataError

    data = tmp_path / "bomb.npz"
    _compressed_bomb(data)
    with zipfile.ZipFile(data) as archive:
        image = archive.getinfo("image.npy")
    assert image.file_size > 300e6 and image.compress_size < 1e6 and data.stat().st_size < 2e6
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            read_npz_arrays(data, stream=None, stream_bytes=2**30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # refused by its sizes, never inflated (numpy's allocations are traced too)
    message = (f"{data}: error: member 'image.npy' inflates from {image.compress_size:,} to {image.file_size:,} "
               "bytes, more than 100 times: a decompression bomb, not arrays numpy compressed")
    assert info.value.diagnostics[0].format().splitlines()[0] == message
    out = tmp_path / "out"
    out.mkdir()
    model = str(weights / "digits_cnn.keras")
    for args in (["train", DIGITS, "--data", str(data), "--out", str(out / "run"), "-q"],
                 ["evaluate", DIGITS, "--weights", model, "--data", str(data)],
                 ["predict", DIGITS, "--weights", model, "--data", str(data), "-o", str(out / "p.npz")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.splitlines()[0] == message, args
        assert "Traceback" not in result.output
        assert list(out.iterdir()) == [], args
