"""Data files checked against the spec (exact messages), and synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import SPECS

from kspec import arrays as arrays_module
from kspec.data import (BINARY, CATEGORICAL, REGRESSION, SPARSE, check_arrays, embedding_ranges,
                        labels_from_teacher, load_npz, output_kinds, read_npz, synthetic_inputs)
from kspec.errors import DataError
from kspec.spec import read_spec

MULTI_IO = read_spec(SPECS / "multi_io.yaml")[0]
MULTI_IO_OUTPUTS = {"main_output": (None, 1), "aux_output": (None, 1)}
DIGITS = read_spec(SPECS / "digits_cnn.yaml")[0]
DIGITS_OUTPUTS = {"digit": (None, 10)}


def multi_io_arrays(n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "main_input": rng.integers(0, 10000, size=(n, 100)),
        "aux_input": rng.random((n, 5), dtype="float32"),
        "main_output": rng.integers(0, 2, size=(n, 1)).astype("float32"),
        "aux_output": rng.integers(0, 2, size=(n,)).astype("float32"),
    }


def message(arrays, spec=MULTI_IO, shapes=MULTI_IO_OUTPUTS, need_targets=True):
    with pytest.raises(DataError) as info:
        check_arrays(arrays, spec, shapes, "d.npz", need_targets)
    [diagnostic] = info.value.diagnostics
    return diagnostic.format()


def test_valid_arrays_pass_and_are_ordered_for_keras():
    dataset = check_arrays(multi_io_arrays(), MULTI_IO, MULTI_IO_OUTPUTS, "d.npz")
    x, y = dataset.x(MULTI_IO), dataset.y(MULTI_IO)
    assert [a.shape for a in x] == [(6, 100), (6, 5)]
    assert x[0].dtype == np.int32
    assert [a.shape for a in y] == [(6, 1), (6, 1)]  # (n,) labels reshaped to the output


def test_x_and_y_work_for_one_input_and_one_output():
    arrays = {"x": np.zeros((3, 8, 8, 1), "float32"), "y": np.array([1, 2, 3])}
    dataset = check_arrays(arrays, DIGITS, DIGITS_OUTPUTS, "d.npz")
    assert list(dataset.inputs) == ["image"] and list(dataset.targets) == ["digit"]


def test_missing_key():
    arrays = multi_io_arrays()
    del arrays["aux_input"]
    assert message(arrays) == ("d.npz: error: no array for input 'aux_input'\n"
                               "  hint: store it under the key 'aux_input'")


def test_extra_key_with_suggestion():
    arrays = multi_io_arrays()
    arrays["aux_inpt"] = arrays.pop("aux_input")
    assert message(arrays) == (
        "d.npz: error: unexpected array 'aux_inpt'; did you mean 'aux_input'?\n"
        "  hint: the spec's inputs: main_input, aux_input; outputs: main_output, aux_output")


def test_wrong_shape():
    arrays = multi_io_arrays()
    arrays["aux_input"] = arrays["aux_input"][:, :4]
    assert message(arrays) == (
        "d.npz: error: array 'aux_input' has shape (6, 4); input 'aux_input' expects (N, 5)\n"
        "  hint: the first axis counts samples")


def test_floats_for_an_integer_input():
    arrays = multi_io_arrays()
    arrays["main_input"] = arrays["main_input"].astype("float32")
    assert message(arrays) == (
        "d.npz: error: array 'main_input' has dtype float32; input 'main_input' expects integers (int32)\n"
        "  hint: store it as an integer array")


def test_ids_outside_the_embedding():
    arrays = multi_io_arrays()
    arrays["main_input"][0, 0] = 0
    arrays["main_input"][2, 7] = 10000
    assert message(arrays) == (
        "d.npz: error: array 'main_input' holds ids from 0 to 10000, outside the Embedding's input_dim 10000\n"
        "  hint: ids must lie in [0, 9999]")


def test_different_lengths():
    arrays = multi_io_arrays()
    arrays["aux_output"] = arrays["aux_output"][:4]
    assert message(arrays) == (
        "d.npz: error: arrays have different lengths (main_input: 6, aux_input: 6, main_output: 6, "
        "aux_output: 4)\n  hint: every array holds one row per sample")


def test_nan_in_an_input():
    arrays = multi_io_arrays()
    arrays["aux_input"][3, 1] = np.nan
    assert message(arrays) == ("d.npz: error: array 'aux_input' holds NaN or infinity (first in row 3)\n"
                               "  hint: clean or drop those rows before training")


def test_infinity_in_a_target():
    arrays = multi_io_arrays()
    arrays["main_output"][5] = np.inf
    assert message(arrays) == ("d.npz: error: array 'main_output' holds NaN or infinity (first in row 5)\n"
                               "  hint: clean or drop those rows before training")


def test_class_ids_out_of_range():
    arrays = {"image": np.zeros((3, 8, 8, 1), "float32"), "digit": np.array([1, 10, 3])}
    assert message(arrays, DIGITS, DIGITS_OUTPUTS) == (
        "d.npz: error: array 'digit' holds class ids from 1 to 10; output 'digit' has 10 classes\n"
        "  hint: ids must lie in [0, 9]")


def test_targets_are_not_needed_for_prediction():
    arrays = {"image": np.zeros((3, 8, 8, 1), "float32")}
    dataset = check_arrays(arrays, DIGITS, DIGITS_OUTPUTS, "d.npz", need_targets=False)
    assert dataset.targets == {}


def test_not_an_npz(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("image,digit\n1,2\n")
    with pytest.raises(DataError) as info:
        load_npz(path, DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].format() == (
        f"{path}: error: not an .npz file\n"
        "  hint: save the arrays with numpy.savez(FILE, input_name=array, ...)")


def test_truncated_npz(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, image=np.zeros((50, 8, 8, 1), "float32"), digit=np.zeros(50, "int64"))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError) as info:
        load_npz(path, DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].format() == (
        f"{path}: error: the .npz file is truncated or corrupt\n"
        "  hint: write it again; an interrupted copy or download leaves it cut short")


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, image=np.array([{"a": 1}], dtype=object), digit=np.zeros(1, "int64"))
    with pytest.raises(DataError) as info:
        load_npz(path, DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].message == "array 'image' holds Python objects, which kspec does not load"


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as info:
        load_npz(tmp_path / "none.npz", DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].format() == f"{tmp_path / 'none.npz'}: error: data file not found\n" \
                                                 "  hint: check the path"


def test_output_kinds_follow_the_losses():
    assert output_kinds(MULTI_IO) == {"main_output": BINARY, "aux_output": BINARY}
    assert output_kinds(DIGITS) == {"digit": SPARSE}
    assert output_kinds(read_spec(SPECS / "mlp.yaml")[0]) == {"predictions": CATEGORICAL}
    assert output_kinds(read_spec(SPECS / "residual.yaml")[0]) == {"z": REGRESSION}


def test_synthetic_inputs_fit_the_spec():
    inputs = synthetic_inputs(MULTI_IO, 50, np.random.default_rng(0))
    assert inputs["main_input"].dtype == np.int32 and inputs["main_input"].shape == (50, 100)
    assert 0 <= inputs["main_input"].min() and inputs["main_input"].max() < 10000
    assert inputs["aux_input"].dtype == np.float32 and inputs["aux_input"].shape == (50, 5)


def test_teacher_labels_fit_each_loss():
    outputs = {"b": np.linspace(0, 1, 10)[:, None], "c": np.eye(3)[[0, 1, 2, 2, 1, 0, 0, 1, 2, 0]] + 0.1,
               "s": np.eye(3)[[2] * 10], "r": np.ones((10, 2))}
    labels = labels_from_teacher(outputs, {"b": BINARY, "c": CATEGORICAL, "s": SPARSE, "r": REGRESSION})
    assert set(np.unique(labels["b"])) == {0.0, 1.0} and labels["b"].sum() == 5  # balanced
    assert labels["c"].shape == (10, 3) and (labels["c"].sum(axis=1) == 1).all()
    assert labels["s"].tolist() == [2] * 10
    assert labels["r"].dtype == np.float32


NESTED_IDS = """\
inputs:
  a: {shape: [5], dtype: int32}
  b: {shape: [5], dtype: int32}
  c: {shape: [5], dtype: int32}
models:
  outer:
    inputs: {p: {shape: [5], dtype: int32}, q: {shape: [5], dtype: int32}}
    models:
      seq:
        sequential:
          - Embedding: {input_dim: 2, output_dim: 2}
      inner:
        inputs: {t: {shape: [5], dtype: int32}}
        edges:
          e: {Embedding: {input_dim: 4, output_dim: 2}, in: t}
        outputs: [e]
    edges:
      u: {layer: seq, in: p}
      v: {layer: inner, in: q}
      w: {Concatenate: {}, in: [u, v]}
    outputs: [w]
edges:
  h: {layer: outer, in: {q: a, p: b}}
  k: {layer: outer, in: [a, c]}
  y: {Concatenate: {}, in: [h, k]}
outputs: [y]
loss: mse
"""


def test_ids_stay_inside_embeddings_in_sub_models(write_spec):
    spec = read_spec(write_spec(NESTED_IDS))[0]
    # a reaches inner's Embedding (4) by name and seq's (2) by position; b reaches seq's; c inner's.
    assert embedding_ranges(spec) == {"a": 2, "b": 2, "c": 4}
    inputs = synthetic_inputs(spec, 200, np.random.default_rng(0))
    assert [(inputs[name].min(), inputs[name].max()) for name in "abc"] == [(0, 1), (0, 1), (0, 3)]


def test_data_ids_outside_an_embedding_in_a_sub_model_are_refused(write_spec):
    spec = read_spec(write_spec(NESTED_IDS))[0]
    arrays = {name: np.zeros((3, 5), dtype="int32") for name in "abc"}
    arrays["b"][2, 4] = 3
    assert message(arrays, spec, {}, need_targets=False).splitlines()[0] == (
        "d.npz: error: array 'b' holds ids from 0 to 3, outside the Embedding's input_dim 2")


def test_synthetic_inputs_larger_than_memory_are_refused_before_any_is_made(write_spec):
    spec = read_spec(write_spec("inputs: {x: [100000, 100000]}\nedges:\n  y: {GlobalAveragePooling1D: {}}\n"
                                "outputs: [y]\n"))[0]
    with pytest.raises(DataError) as info:
        synthetic_inputs(spec, 8, np.random.default_rng(0))
    [diagnostic] = info.value.diagnostics
    assert (diagnostic.location.line, diagnostic.location.column) == (1, 10)
    assert diagnostic.message.startswith("synthetic data of shape (8, 100000, 100000) for input 'x' would take "
                                         "640,000,000,000 bytes")


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
@pytest.mark.parametrize("stream", [True, False])
def test_fortran_ordered_arrays_read_as_saved(tmp_path, save, stream):
    # np.save keeps a Fortran-ordered array's own byte order; kspec reads it back in full, never by offset.
    image = np.asfortranarray(np.arange(6 * 64, dtype="float32").reshape(6, 8, 8, 1))
    path = tmp_path / "data.npz"
    save(path, image=image, digit=np.arange(6))
    arrays = read_npz(path, stream=stream)
    assert isinstance(arrays["image"], np.ndarray)
    np.testing.assert_array_equal(arrays["image"], image)
    np.testing.assert_array_equal(np.asarray(arrays["digit"][0:6]), np.arange(6))


def test_ids_that_fit_are_cast_and_kept(tmp_path):
    # int64 ids inside int32's range (and the Embedding's) pass, cast to the input's int32.
    arrays = multi_io_arrays()
    arrays["main_input"][0, 0] = 9999
    dataset = check_arrays(arrays, MULTI_IO, MULTI_IO_OUTPUTS, "d.npz")
    assert dataset.inputs["main_input"].dtype == np.int32
    np.testing.assert_array_equal(dataset.inputs["main_input"], arrays["main_input"])


def test_compressed_arrays_larger_than_memory_are_refused_before_loading(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    np.savez_compressed(path, image=np.zeros((6000, 8, 8, 1), "float32"), digit=np.zeros(6000, "int64"))
    monkeypatch.setattr(arrays_module, "memory_bytes", lambda: 2 * 2**20)  # a 2 MiB machine: 1 MiB may be loaded
    with pytest.raises(DataError) as info:
        load_npz(path, DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].format() == (
        f"{path}: error: arrays 'image' (6000, 8, 8, 1), 'digit' (6000,) would take 1,584,000 bytes in memory, "
        "more than half of this machine's 2,097,152\n"
        "  hint: store them uncompressed (numpy.savez) in C order, and kspec reads them batch by batch")


def test_a_folder_names_the_npy_file_whose_header_lies(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "digit.npy", np.arange(6))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 8, -8, 1), }"
    text = header + " " * (-(10 + len(header) + 1) % 64) + "\n"
    (folder / "image.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode())
    with pytest.raises(DataError) as info:
        load_npz(folder, DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].format() == (
        f"{folder / 'image.npy'}: error: array 'image' has a header that promises shape (6, 8, -8, 1); a shape is "
        "a tuple of counts, none negative\n  hint: the file is damaged or was not written by numpy; write it again")


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_folder_refuses_npy_entries_that_are_not_plain_files(tmp_path, kind):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "digit.npy", np.arange(6))
    outside = tmp_path / "outside.npy"
    np.save(outside, np.zeros((6, 8, 8, 1), "float32"))
    if kind == "fifo":
        os.mkfifo(folder / "image.npy")  # opening it would wait for a writer forever
    else:
        (folder / "image.npy").symlink_to(outside)
    with pytest.raises(DataError) as info:
        load_npz(folder, DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].format() == (
        f"{folder / 'image.npy'}: error: is not a regular file\n  hint: give a folder of plain KEY.npy files")


def test_a_device_given_as_data_is_refused_unread():
    with pytest.raises(DataError) as info:
        load_npz(Path("/dev/zero"), DIGITS, DIGITS_OUTPUTS)
    assert info.value.diagnostics[0].message == "is not a regular file"


def test_string_inputs_take_strings(tmp_path):
    text = (SPECS / "digits_cnn.yaml").read_text().replace("image: {shape: [8, 8, 1]}",
                                                            "image: {shape: [8, 8, 1], dtype: string}")
    (tmp_path / "strings.yaml").write_text(text)
    spec = read_spec(tmp_path / "strings.yaml")[0]
    with pytest.raises(DataError) as info:
        check_arrays({"image": np.zeros((2, 8, 8, 1), "float32")}, spec, DIGITS_OUTPUTS, "d.npz", False)
    assert info.value.diagnostics[0].message == ("array 'image' has dtype float32; input 'image' has dtype string "
                                                 "in the spec and expects strings")
    strings = np.full((2, 8, 8, 1), "a")
    assert check_arrays({"image": strings}, spec, DIGITS_OUTPUTS, "d.npz", False).inputs["image"] is strings


def test_synthetic_inputs_for_every_input_dtype(write_spec):
    spec = read_spec(write_spec("inputs:\n  b: {shape: [2], dtype: bfloat16}\n  u: {shape: [2], dtype: uint8}\n"
                                "  f: {shape: [2], dtype: float16}\n  t: {shape: [2], dtype: bool}\n"
                                "edges:\n  y: {Concatenate: {}, in: [b, u, f, t]}\noutputs: [y]\n"))[0]
    inputs = synthetic_inputs(spec, 4, np.random.default_rng(0))
    # NumPy has no bfloat16: float32, which Keras casts.
    assert {name: str(array.dtype) for name, array in inputs.items()} == {
        "b": "float32", "u": "uint8", "f": "float16", "t": "bool"}


def test_synthetic_inputs_for_a_string_input_come_from_its_lookup(write_spec):
    # More in tests/test_string_inputs.py.
    spec = read_spec(write_spec("inputs:\n  s: {shape: [1], dtype: string}\nedges:\n"
                                "  y: {StringLookup: {vocabulary: [a]}}\noutputs: [y]\n"))[0]
    strings = synthetic_inputs(spec, 4, np.random.default_rng(0))["s"]
    assert strings.tolist() == [["a"]] * 4
