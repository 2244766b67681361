"""Crafted .keras files and spec paths: nothing in them runs, loads or is read.

Each .keras file below is made with zipfile from a real saved model, then
given to every command that loads one (`import`, `--weights` of evaluate,
predict, inspect and train, a spec's `weights:`, `--resume`). Each must end
in exit code 1, a message naming the file, no traceback, no output file, and
no marker file written by its payload. Spec-side cases that need files made
at test time (FIFOs, a SavedModel a TFSMLayer would run) are here too; the
rest are fixtures in tests/specs/invalid.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from click.testing import CliRunner

from kspec.cli import main
from kspec.modelfile import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_MEMBERS, check_model_file

SPEC = """\
inputs: {x: [4]}
edges:
  y: {Dense: {units: 2}}
outputs: [y]
loss: mse
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The members of a real .keras file of the model SPEC describes."""
    folder = tmp_path_factory.mktemp("saved")
    (folder / "spec.yaml").write_text(SPEC)
    result = CliRunner().invoke(main, ["build", str(folder / "spec.yaml"), "-o", str(folder / "model.keras")])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(folder / "model.keras") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _with_config(saved: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    config = json.loads(saved["config.json"])
    change(config)
    return {**saved, "config.json": json.dumps(config).encode()}


def _dense(config: dict[str, Any]) -> dict[str, Any]:
    """The Dense layer's entry in a saved functional model's config."""
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")


def _marker_lambda(marker: Path) -> dict[str, Any]:
    """A serialized Lambda layer whose function would write `marker` if Keras ran it."""
    import keras

    target = str(marker)
    layer = keras.layers.Lambda(lambda t: (open(target, "w").write("ran"), t)[1], name="payload")  # noqa: SIM115
    return json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))


# Each crafted file: (name, how to make it from the saved members and the marker path, what the message says).
def _cases() -> list[tuple[str, Callable[[dict[str, bytes], Path], bytes | dict[str, bytes]], str]]:
    def foreign_class(config: dict[str, Any]) -> None:
        _dense(config).update(module="os", class_name="system")

    def function_by_path(config: dict[str, Any]) -> None:
        _dense(config)["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system",
                                                   "registered_name": "function"}

    def keras_function_elsewhere(config: dict[str, Any]) -> None:
        _dense(config)["config"]["activation"] = {"module": "keras.src.utils.file_utils", "class_name": "function",
                                                   "config": "get_file", "registered_name": "function"}

    def custom_registered(config: dict[str, Any]) -> None:
        _dense(config)["registered_name"] = "evil>Dense"

    def tfsm(config: dict[str, Any]) -> None:
        _dense(config).update(class_name="TFSMLayer", config={"filepath": "saved_model", "name": "y"})

    def safe_mode(config: dict[str, Any]) -> None:
        _dense(config)["config"]["safe_mode"] = False

    def url(config: dict[str, Any]) -> None:
        _dense(config)["config"]["kernel_initializer"] = {"module": "keras.initializers", "class_name": "Constant",
                                                          "config": {"value": "gs://bucket/weights"}}

    def lookup_file(config: dict[str, Any]) -> None:
        _dense(config).update(class_name="StringLookup", config={"vocabulary": "/etc/passwd", "name": "y"})

    def lambda_layer(saved: dict[str, bytes], marker: Path) -> dict[str, bytes]:
        return _with_config(saved, lambda config: _dense(config).update(_marker_lambda(marker)))

    def lambda_in_bidirectional(saved: dict[str, bytes], marker: Path) -> dict[str, bytes]:
        def change(config: dict[str, Any]) -> None:
            _dense(config).update(class_name="Bidirectional", module="keras.layers",
                                  config={"name": "y", "layer": _marker_lambda(marker)})
        return _with_config(saved, change)

    def lambda_activation(saved: dict[str, bytes], marker: Path) -> dict[str, bytes]:
        def change(config: dict[str, Any]) -> None:
            _dense(config)["config"]["activation"] = _marker_lambda(marker)["config"]["function"]
        return _with_config(saved, change)

    def config(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes], Path], dict[str, bytes]]:
        return lambda saved, marker: _with_config(saved, change)

    def deep_json(saved: dict[str, bytes], marker: Path) -> dict[str, bytes]:
        depth = 100_000
        return {**saved, "config.json": b"[" * depth + b"]" * depth}

    def config_bomb(saved: dict[str, bytes], marker: Path) -> dict[str, bytes]:
        return {**saved, "config.json": b" " * (MAX_CONFIG_BYTES + 1)}

    def weights_bomb(saved: dict[str, bytes], marker: Path) -> dict[str, bytes]:
        return {**saved, "model.weights.h5": bytes(32 * 2**20)}

    def weights_elsewhere(saved: dict[str, bytes], marker: Path, link: bool) -> dict[str, bytes]:
        import h5py

        secret = marker.parent / "secret.bin"
        secret.write_bytes(b"secret!!")
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as weights:
            if link:
                weights["layers"] = h5py.ExternalLink(str(secret), "/")
            else:
                weights.create_dataset("layers/y/vars/0", shape=(8,), dtype="u1", external=[(str(secret), 0, 8)])
        return {**saved, "model.weights.h5": buffer.getvalue()}

    return [
        ("weights_external_link.keras", lambda saved, marker: weights_elsewhere(saved, marker, link=True),
         "has a model.weights.h5 that links 'layers' to the file"),
        ("weights_external_storage.keras", lambda saved, marker: weights_elsewhere(saved, marker, link=False),
         "has a model.weights.h5 that stores 'layers/y/vars/0' in"),
        ("weights_not_hdf5.keras", lambda saved, marker: {**saved, "model.weights.h5": b"not hdf5"},
         "has a model.weights.h5 that is not a readable HDF5 file"),
        ("not_a_zip.keras", lambda saved, marker: b"name: not a model\n", "is not a .keras file (not a zip archive"),
        ("truncated.keras", lambda saved, marker: _zip_bytes(saved)[:-200], "is not a .keras file (not a zip archive"),
        ("empty.keras", lambda saved, marker: b"", "is not a .keras file (not a zip archive"),
        ("traversal.keras", lambda saved, marker: {**saved, "../escape.txt": b"x"}, "holds a file with an unsafe path ('../escape.txt')"),
        ("absolute.keras", lambda saved, marker: {**saved, "/tmp/escape.txt": b"x"}, "holds a file with an unsafe path ('/tmp/escape.txt')"),
        ("many_members.keras", lambda saved, marker: {**saved, **{f"assets/{i}": b"" for i in range(MAX_MEMBERS)}},
         f"holds {MAX_MEMBERS + 3:,} files"),
        ("config_bomb.keras", config_bomb, "has a config.json of"),
        ("weights_bomb.keras", weights_bomb, "holds 'model.weights.h5', which inflates from"),
        ("many_small_bombs.keras", lambda saved, marker: {**saved, **{f"assets/{i}": bytes(2**20) for i in range(20)}},
         "inflates from"),
        ("deep_json.keras", deep_json, f"has a config.json nested more than {MAX_CONFIG_DEPTH} levels deep"),
        ("foreign_class.keras", config(foreign_class), "uses the class 'os.system', which is not part of Keras"),
        ("function_by_path.keras", config(function_by_path), "names the function 'system' from 'os'"),
        ("keras_function_elsewhere.keras", config(keras_function_elsewhere),
         "names the function 'get_file' from 'keras.src.utils.file_utils'"),
        ("custom_registered.keras", config(custom_registered), "uses the class 'evil>Dense'"),
        ("tfsm_layer.keras", config(tfsm), "holds a TFSMLayer layer"),
        ("safe_mode.keras", config(safe_mode), "sets Keras's 'safe_mode'"),
        ("url.keras", config(url), "names the URL 'gs://bucket/weights'"),
        ("lookup_file.keras", config(lookup_file), "has a StringLookup whose vocabulary is the file '/etc/passwd'"),
        ("lambda_layer.keras", lambda_layer, "holds Python code"),
        ("lambda_in_bidirectional.keras", lambda_in_bidirectional, "holds Python code"),
        ("lambda_activation.keras", lambda_activation, "holds Python code"),
    ]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


CASES = _cases()


def _make(case: tuple[Any, ...], saved: dict[str, bytes], folder: Path) -> tuple[Path, Path]:
    """The crafted file in `folder`, and the marker its payload would write."""
    name, make, _ = case
    marker = folder / "marker"
    made = make(saved, marker)
    path = folder / name
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        # Deflated, so bombs are small on disk; Keras itself stores members uncompressed.
        _write(path, made, zipfile.ZIP_DEFLATED)
    return path, marker


def _assert_refused(result: Any, path: Path, message: str, marker: Path, leftovers: list[Path]) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"'{path}' {message}" in result.stderr, result.stderr
    assert not marker.exists()
    for leftover in leftovers:
        assert not leftover.exists(), leftover


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_import_refuses_the_crafted_file(case, saved, tmp_path):
    path, marker = _make(case, saved, tmp_path)
    output = tmp_path / "imported.yaml"
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(output)])
    _assert_refused(result, path, case[2], marker, [output])


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_weights_option_refuses_the_crafted_file(case, saved, tmp_path):
    """--weights of evaluate (the same load_weights serves predict, inspect and train)."""
    path, marker = _make(case, saved, tmp_path)
    spec, data = _spec_and_data(tmp_path)
    result = CliRunner().invoke(main, ["evaluate", str(spec), "--weights", str(path), "--data", str(data)])
    _assert_refused(result, path, case[2], marker, [])


# A few files through every other command that loads one.
SOME = [case for case in CASES if case[0] in ("truncated.keras", "traversal.keras", "lambda_in_bidirectional.keras")]


@pytest.mark.parametrize("case", SOME, ids=[case[0] for case in SOME])
def test_every_loading_command_refuses_the_crafted_file(case, saved, tmp_path):
    path, marker = _make(case, saved, tmp_path)
    spec, data = _spec_and_data(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    runner = CliRunner()
    commands = {
        "predict": ["predict", str(spec), "--weights", str(path), "--data", str(data), "-o", str(out / "p.npz")],
        "inspect": ["inspect", str(spec), "--all", "--synthetic", "2", "--weights", str(path),
                    "-o", str(out / "dump.npz")],
        "train": ["train", str(spec), "--synthetic", "4", "--epochs", "1", "--weights", str(path),
                  "--out", str(out / "run"), "-q"],
    }
    for command, args in commands.items():
        result = runner.invoke(main, args)
        _assert_refused(result, path, case[2], marker, [])
        assert list(out.iterdir()) == [], command
    # A spec's `weights:` names the file relative to the spec; the message is located at that line.
    (tmp_path / "uses_weights.yaml").write_text(
        f"models:\n  enc:\n    inputs: {{a: [4]}}\n    edges: {{b: {{Dense: {{units: 2}}}}}}\n    outputs: [b]\n"
        f"    weights: {path.name}\ninputs: {{x: [4]}}\nedges:\n  y: {{layer: enc, in: x}}\noutputs: [y]\nloss: mse\n")
    for args in (["build", str(tmp_path / "uses_weights.yaml")], ["check", str(tmp_path / "uses_weights.yaml")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert f"uses_weights.yaml:6:14: error: '{path}' {case[2]}" in result.output, result.output
        assert not marker.exists()


# A checkpoint cut short is a damaged one, which resume passes over for an older whole one (train.py);
# these are whole zips, so they reach the checks.
WHOLE = [case for case in CASES if case[0] in ("traversal.keras", "foreign_class.keras",
                                               "lambda_in_bidirectional.keras")]


@pytest.mark.parametrize("case", WHOLE, ids=[case[0] for case in WHOLE])
def test_resume_refuses_a_crafted_checkpoint(case, saved, tmp_path):
    spec, _ = _spec_and_data(tmp_path)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(spec), "--synthetic", "4", "--epochs", "1", "--out", str(run), "-q"])
    assert result.exit_code == 0, result.output
    checkpoint = sorted((run / "checkpoints").glob("epoch-*.keras"))[-1]  # the newest, which resume loads
    crafted, marker = _make(case, saved, tmp_path)
    checkpoint.write_bytes(crafted.read_bytes())
    result = runner.invoke(main, ["train", str(spec), "--resume", str(run), "--epochs", "2", "-q"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert str(checkpoint) in result.stderr, result.stderr
    assert not marker.exists()


def _spec_and_data(folder: Path) -> tuple[Path, Path]:
    spec = folder / "spec.yaml"
    spec.write_text(SPEC)
    data = folder / "data.npz"
    np.savez(data, x=np.zeros((4, 4), "float32"), y=np.zeros((4, 2), "float32"))
    return spec, data


def test_the_real_file_passes_the_checks(saved, tmp_path):
    """The checks refuse the crafted files, not every file: Keras's own passes, config parsed."""
    path = _write(tmp_path / "model.keras", saved)
    checked = check_model_file(path)
    assert checked.config["class_name"] == "Functional"
    assert checked.layer_count() >= 2


def test_a_fifo_or_device_is_not_opened_as_a_model_file(tmp_path):
    fifo = tmp_path / "model.keras"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        result = CliRunner().invoke(main, ["import", str(path)])
        assert result.exit_code == 1
        assert f"'{path}' is not a regular file (a device, FIFO or socket)" in result.stderr
        assert "Traceback" not in result.output


# ---------------------------------------------------------------- spec paths
def test_a_spec_that_is_a_fifo_or_dev_zero_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        result = CliRunner().invoke(main, ["validate", str(path)])
        assert result.exit_code == 1
        assert result.stderr.splitlines()[0] == (f"{path}: error: is not a regular file (a device, FIFO or "
                                                 "socket), not a spec file")


def test_an_include_or_vocabulary_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "encoder.yaml")
    os.mkfifo(tmp_path / "vocabulary.txt")
    spec = tmp_path / "spec.yaml"
    spec.write_text("models:\n  enc: {include: encoder.yaml}\ninputs: {x: [4], w: {shape: [1], dtype: string}}\n"
                    "edges:\n  y: {layer: enc, in: x}\n  ids: {StringLookup: {vocabulary: vocabulary.txt}, in: w}\n"
                    "outputs: [y, ids]\n")
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert f"{spec}:2:18: error: included spec 'encoder.yaml' is not a regular file (a device, FIFO or socket)" \
        in lines
    assert f"{spec}:6:36: error: vocabulary file 'vocabulary.txt' is not a regular file (a device, FIFO or " \
        "socket)" in lines


def test_an_include_outside_the_folder_never_shows_its_content(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    (tmp_path / "project").mkdir()
    spec = tmp_path / "project" / "spec.yaml"
    spec.write_text("models:\n  enc: {include: ../secret.yaml}\ninputs: {x: [4]}\n"
                    "edges:\n  y: {layer: enc, in: x}\noutputs: [y]\n")
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert f"{spec}:2:18: error: included spec '../secret.yaml' is outside the spec's folder" in result.stderr
    assert "hunter2" not in result.output


def test_an_included_file_is_read_once_however_often_it_is_included(tmp_path, monkeypatch):
    from kspec.spec import load

    (tmp_path / "encoder.yaml").write_text("inputs: {a: [4]}\nedges:\n  b: {Dense: {units: 4}}\noutputs: [b]\n")
    (tmp_path / "spec.yaml").write_text(
        "models:\n" + "".join(f"  e{i}: {{include: encoder.yaml}}\n" for i in range(5))
        + "inputs: {x: [4]}\nedges:\n" + "".join(f"  y{i}: {{layer: e{i}}}\n" for i in range(5))
        + "outputs: [y4]\n")
    reads: list[str] = []
    real = load.read_text
    monkeypatch.setattr(load, "read_text", lambda path: reads.append(Path(path).name) or real(path))
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 0, result.output
    assert sorted(reads) == ["encoder.yaml", "spec.yaml"]


def test_a_vocabulary_file_in_the_folder_is_read_from_there_whatever_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "vocabulary.txt").write_text("cat\ndog\n")
    spec = tmp_path / "specs" / "spec.yaml"
    spec.write_text("inputs: {w: {shape: [1], dtype: string}}\n"
                    "edges:\n  ids: {StringLookup: {vocabulary: vocabulary.txt, output_mode: int}}\noutputs: [ids]\n")
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    from kspec.build import build
    from kspec.spec import read_spec

    built = build(read_spec(spec)[0], compile=False)
    assert built.model.get_layer("ids").get_vocabulary() == ["[UNK]", "cat", "dog"]


TFSM_SPEC = """\
inputs: {x: [4]}
edges:
  y: {Pipeline: {layers: [{Rescaling: {scale: 1.0}}, {TFSMLayer: {filepath: saved_model, call_endpoint: serve}}]}}
outputs: [y]
loss: mse
"""


def test_a_savedmodel_nested_in_a_spec_is_never_loaded_or_run(tmp_path, monkeypatch):
    """The issue's worst case: validate said ok, then `kspec check` ran a SavedModel that wrote a file."""
    import tensorflow as tf

    marker = tmp_path / "marker"

    class Payload(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x: Any) -> Any:
            with tf.control_dependencies([tf.io.write_file(str(marker), "ran")]):
                return tf.identity(x)

    tf.saved_model.save(Payload(), str(tmp_path / "saved_model"))
    layer = __import__("keras").layers.TFSMLayer(str(tmp_path / "saved_model"), call_endpoint="serve")
    layer(np.zeros((1, 4), "float32"))
    assert marker.exists()  # the payload is real: run, it writes its marker
    marker.unlink()

    (tmp_path / "spec.yaml").write_text(TFSM_SPEC)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["validate", "spec.yaml"], ["build", "spec.yaml"], ["check", "spec.yaml"],
                 ["train", "spec.yaml", "--synthetic", "4", "--epochs", "1", "--out", "run", "-q"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "spec.yaml:3:55: error: layer class 'TFSMLayer' is not allowed in a spec" in result.output, args
        assert "Traceback" not in result.output
        assert not marker.exists(), args
    assert not (tmp_path / "run").exists()


def test_the_builder_refuses_a_nested_refused_layer_even_unvalidated(tmp_path):
    """The builder runs the same check as validate, for specs built from Python without validating."""
    from kspec.build import build
    from kspec.errors import SpecError
    from kspec.spec.parse import parse

    (tmp_path / "spec.yaml").write_text(TFSM_SPEC)
    model, diagnostics = parse(tmp_path / "spec.yaml")  # structure only: no check_model
    assert model is not None and not any(d.is_error for d in diagnostics)
    with pytest.raises(SpecError) as info:
        build(model)
    assert info.value.diagnostics[0].message == "layer class 'TFSMLayer' is not allowed in a spec"


def test_an_oversized_spec_or_include_is_refused_before_it_is_read(tmp_path):
    from kspec.spec.paths import MAX_SPEC_BYTES

    for name in ("huge.yaml", "encoder.yaml"):
        with open(tmp_path / name, "wb") as handle:
            handle.truncate(MAX_SPEC_BYTES + 1)  # sparse: no time or disk spent
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "huge.yaml")])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (f"{tmp_path / 'huge.yaml'}: error: spec file is "
                                             f"{MAX_SPEC_BYTES + 1:,} bytes, more than the {MAX_SPEC_BYTES:,} allowed")
    spec = tmp_path / "spec.yaml"
    spec.write_text("models:\n  enc: {include: encoder.yaml}\ninputs: {x: [4]}\n"
                    "edges:\n  y: {layer: enc, in: x}\noutputs: [y]\n")
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert (f"{spec}:2:18: error: included spec 'encoder.yaml' is {MAX_SPEC_BYTES + 1:,} bytes, more than the "
            f"{MAX_SPEC_BYTES:,} allowed") in result.stderr.splitlines()


# ------------------------------------------------------------ named not .keras
def test_an_hdf5_model_with_a_keras_zip_appended_is_refused_by_its_name(saved, tmp_path):
    """A polyglot: Keras picks its loader by the name, so 'poly.h5' would load as legacy HDF5, past the zip checks."""
    import h5py
    import keras

    marker = tmp_path / "marker"
    target = str(marker)
    inputs = keras.Input((4,))
    hidden = keras.layers.Lambda(lambda t: (open(target, "w").write("ran"), t)[1])(inputs)  # noqa: SIM115
    model = keras.Model(inputs, keras.layers.Dense(2, name="y")(hidden))
    path = tmp_path / "poly.h5"
    model.save(path)  # the legacy HDF5 format, config and all
    marker.unlink()  # written while the model was traced, not by kspec
    with open(path, "ab") as handle:
        handle.write(_zip_bytes(saved))  # a harmless .keras file, which zipfile finds from the end
    assert zipfile.is_zipfile(path) and h5py.is_hdf5(path)
    spec, data = _spec_and_data(tmp_path)
    output = tmp_path / "imported.yaml"
    message = "is not named NAME.keras; Keras chooses how to load a file by its name"
    for args in (["import", str(path), "-o", str(output)],
                 ["evaluate", str(spec), "--weights", str(path), "--data", str(data)],
                 ["predict", str(spec), "--weights", str(path), "--data", str(data), "-o", str(tmp_path / "p.npz")]):
        result = CliRunner().invoke(main, args)
        _assert_refused(result, path, message, marker, [output, tmp_path / "p.npz"])


def test_a_safe_mode_refusal_quotes_what_keras_refused(saved, tmp_path, monkeypatch):
    """Past kspec's own checks (switched off here), Keras's safe-mode refusal is reported as Keras worded it."""
    from kspec.importer import load_model
    from kspec.modelfile import CheckedModelFile

    path, marker = _make(next(case for case in CASES if case[0] == "tfsm_layer.keras"), saved, tmp_path)
    monkeypatch.setattr(load_model, "check_model_file", lambda path: CheckedModelFile(Path(path), None))
    output = tmp_path / "imported.yaml"
    result = CliRunner().invoke(main, ["import", str(path), "-o", str(output)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not output.exists() and not marker.exists()
    assert (f"{path}: error: the model holds what Keras loads only with safe_mode off: \"Requested the "
            "deserialization of a `TFSMLayer`, which loads an external SavedModel\"") in result.stderr
    assert "Lambda" not in result.stderr


def test_check_of_a_spec_that_is_a_fifo_says_so_without_opening_it(tmp_path, monkeypatch):
    import signal

    def hung(*_: Any) -> None:
        raise TimeoutError("kspec check opened the FIFO and waited for a writer")

    os.mkfifo(tmp_path / "f.yaml")
    monkeypatch.chdir(tmp_path)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)  # never hangs the suite: opening a FIFO would wait forever
    try:
        result = CliRunner().invoke(main, ["check", "f.yaml"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 1, result.output
    assert "f.yaml: error: is not a regular file (a device, FIFO or socket), not a spec file" in result.output
    assert "no such file" not in result.output
    assert "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["f.yaml"]
