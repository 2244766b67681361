"""What the user owns is never overwritten or lost (issue 20, section 3).

A corpus of hostile and careless cases, each pinned: the exit code, a message
that names the file, no traceback, the user's files byte-for-byte unchanged,
and nothing left behind.

    output paths     -o/--out/--junit that are an input, a link, a FIFO, a
                     device, a folder or a file of another kind
    run folders      refused resumes change nothing; checkpoints past 9,999;
                     edited or cut-short run.json, history.csv, checkpoints
    Keras failures   inside fit, evaluate and predict: located, recorded
    predictions      written batch by batch, in bounded memory
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from kspec.cli import main

TINY = """\
name: tiny
inputs:
  x: [4]
edges:
  hidden: {Dense: {units: 5, activation: relu}}
  y: {Dense: {units: 3, activation: softmax}}
outputs: [y]
loss: categorical_crossentropy
"""


def invoke(*args: object):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry below `folder`: a file's bytes, a link's target, a folder or FIFO's kind."""
    entries: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        key = str(path.relative_to(folder))
        if stat.S_ISLNK(mode):
            entries[key] = "link to " + os.readlink(path)
        elif stat.S_ISREG(mode):
            entries[key] = path.read_bytes()
        else:
            entries[key] = "folder" if stat.S_ISDIR(mode) else "special"
    return entries


def assert_refused(result, code: int, *named: object) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for name in named:
        assert str(name) in result.output, result.output


@pytest.fixture
def workspace(tmp_path):
    """A spec, a data file and a weights-like file, as a user's folder holds them."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((6, 4), dtype=np.float32),
             y=np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)])
    (tmp_path / "w.keras").write_bytes(b"PK\x05\x06" + bytes(18))  # never read: refused before
    return tmp_path


# ------------------------------------------------------------------- output paths
def _predict(ws: Path, output: object, data: object = None):
    return invoke("predict", ws / "tiny.yaml", "--weights", ws / "w.keras", "--data", data or ws / "d.npz",
                  "-o", output)


def test_predict_onto_its_own_data_is_refused(workspace):
    before = snapshot(workspace)
    result = _predict(workspace, workspace / "d.npz")
    assert_refused(result, 2, workspace / "d.npz", "the output is the --data file itself")
    assert snapshot(workspace) == before


def test_predict_onto_its_data_by_another_path_is_refused(workspace):
    os.link(workspace / "d.npz", workspace / "hard.npz")
    (workspace / "sub").mkdir()
    before = snapshot(workspace)
    for other in (workspace / "hard.npz", workspace / "sub" / ".." / "d.npz"):
        assert_refused(_predict(workspace, other), 2, other, "the output is the --data file itself")
    assert snapshot(workspace) == before


def test_inspect_onto_its_own_data_is_refused(workspace):
    before = snapshot(workspace)
    result = invoke("inspect", workspace / "tiny.yaml", "--all", "--data", workspace / "d.npz",
                    "-o", workspace / "d.npz")
    assert_refused(result, 2, workspace / "d.npz", "the --data file itself")
    assert snapshot(workspace) == before


def test_output_onto_the_weights_or_the_spec_is_refused(workspace):
    shutil.copy(workspace / "w.keras", workspace / "w.npz")
    shutil.copy(workspace / "tiny.yaml", workspace / "tiny.dot")
    before = snapshot(workspace)
    result = invoke("predict", workspace / "tiny.yaml", "--weights", workspace / "w.npz", "--data",
                    workspace / "d.npz", "-o", workspace / "w.npz")
    assert_refused(result, 2, workspace / "w.npz", "the output is the --weights file itself")
    result = invoke("graph", workspace / "tiny.dot", "-o", workspace / "tiny.dot")
    assert_refused(result, 2, workspace / "tiny.dot", "the output is the spec itself")
    assert snapshot(workspace) == before


def test_build_onto_a_sub_models_weights_is_refused(workspace):
    from kspec.build import build
    from kspec.files import save_model
    from kspec.spec import read_spec

    (workspace / "encoder.yaml").write_text("inputs: {x: [4]}\nedges:\n  h: {Dense: {units: 3}}\noutputs: [h]\n")
    save_model(build(read_spec(workspace / "encoder.yaml")[0], compile=False).model, workspace / "encoder.keras")
    (workspace / "outer.yaml").write_text(
        "models:\n  encoder: {include: encoder.yaml, weights: encoder.keras}\n"
        "inputs: {a: [4]}\nedges:\n  e: {layer: encoder, in: a}\noutputs: [e]\n")
    before = snapshot(workspace)
    result = invoke("build", workspace / "outer.yaml", "-o", workspace / "encoder.keras")
    assert_refused(result, 2, workspace / "encoder.keras", "the weights file of sub-model 'encoder' itself")
    assert snapshot(workspace) == before


def test_output_through_a_symlink_is_refused(workspace):
    elsewhere = workspace / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    (workspace / "to_file.npz").symlink_to(elsewhere / "precious.npz")
    (workspace / "dangling.keras").symlink_to(elsewhere / "new.keras")
    (workspace / "loop.npz").symlink_to(workspace / "loop.npz")
    before = snapshot(workspace)
    assert_refused(_predict(workspace, workspace / "to_file.npz"), 2, workspace / "to_file.npz",
                   "is a symbolic link")
    assert_refused(invoke("build", workspace / "tiny.yaml", "-o", workspace / "dangling.keras"), 2,
                   workspace / "dangling.keras", "is a symbolic link")
    assert_refused(_predict(workspace, workspace / "loop.npz"), 2, workspace / "loop.npz", "is a symbolic link")
    assert snapshot(workspace) == before  # the link's target was not created either


def test_output_onto_a_fifo_is_refused_without_blocking(workspace):
    os.mkfifo(workspace / "pipe.npz")
    before = snapshot(workspace)
    assert_refused(_predict(workspace, workspace / "pipe.npz"), 2, workspace / "pipe.npz", "is a FIFO")
    assert snapshot(workspace) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device node needs root")
def test_output_onto_a_device_is_refused(workspace):
    os.mknod(workspace / "null.json", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert_refused(invoke("schema", "-o", workspace / "null.json"), 2, workspace / "null.json", "is a device")
    assert stat.S_ISCHR((workspace / "null.json").lstat().st_mode)


def test_schema_onto_dev_null_is_refused():
    result = invoke("schema", "-o", "/dev/null")
    assert_refused(result, 2, "/dev/null", "is a device")


@pytest.mark.parametrize("command, name, content", [
    ("predict", "notes.npz", b"my notes, not an npz\n"),
    ("graph", "photo.png", b"GIF89a not a png"),
    ("graph", "drawing.svg", b"\x00\x01binary\xff"),
    ("schema", "report.json", b"\x89PNG\r\n\x1a\n...."),
    ("schema", "notes.json", b"my notes\n"),
    ("check", "notes.txt", b"my notes, not a JUnit report\n"),
    ("graph", "notes.dot", b"my notes\n"),
], ids=["text-as-npz", "gif-as-png", "binary-as-svg", "png-as-json", "notes-as-json", "notes-as-junit",
        "notes-as-dot"])
def test_an_existing_file_of_another_kind_is_refused(workspace, command, name, content):
    target = workspace / name
    target.write_bytes(content)
    before = snapshot(workspace)
    if command == "predict":
        result = _predict(workspace, target)
    elif command == "graph":
        result = invoke("graph", workspace / "tiny.yaml", "-o", target)
    elif command == "check":
        result = invoke("check", workspace / "tiny.yaml", "--junit", target)
    else:
        result = invoke("schema", "-o", target)
    assert_refused(result, 2, target, "is an existing file that is not a")
    assert snapshot(workspace) == before


@pytest.mark.parametrize("name, content", [
    ("old.json", b'\xef\xbb\xbf  {"a": 1}'), ("old.xml", b'<?xml version="1.0"?><testsuites/>'),
    ("old.dot", b"digraph g {}\n"), ("old.yaml", b"anything: at all\n"), ("old.npz", b"PK\x05\x06" + bytes(18)),
])
def test_an_existing_file_of_the_same_kind_may_be_replaced(tmp_path, name, content):
    from kspec.files import check_output

    (tmp_path / name).write_bytes(content)
    check_output(tmp_path / name)  # raises if refused


def test_a_folder_where_a_file_goes_is_refused(workspace):
    (workspace / "out.npz").mkdir()
    before = snapshot(workspace)
    assert_refused(_predict(workspace, workspace / "out.npz"), 2, workspace / "out.npz")
    assert snapshot(workspace) == before


def test_junit_report_onto_a_spec_is_refused(workspace):
    before = snapshot(workspace)
    result = invoke("check", workspace / "tiny.yaml", "--junit", workspace / "tiny.yaml")
    assert_refused(result, 2, workspace / "tiny.yaml", "the output is the spec")
    assert snapshot(workspace) == before


def test_import_onto_its_model_file_by_a_link_is_refused(workspace):
    (workspace / "model.yaml").symlink_to(workspace / "w.keras")
    before = snapshot(workspace)
    result = invoke("import", workspace / "model.yaml", "-o", workspace / "model.yaml")
    assert_refused(result, 2, workspace / "model.yaml", "the model file itself")
    assert snapshot(workspace) == before


@pytest.mark.parametrize("kind", ["symlink", "fifo", "file"])
def test_train_out_that_is_not_a_new_folder_is_refused(workspace, kind):
    out = workspace / "run"
    if kind == "symlink":
        (workspace / "empty").mkdir()
        out.symlink_to(workspace / "empty")
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        out.write_text("mine")
    before = snapshot(workspace)
    result = invoke("train", workspace / "tiny.yaml", "--data", workspace / "d.npz", "--out", out, "-q")
    assert_refused(result, 2, out)
    assert snapshot(workspace) == before


def test_train_out_onto_its_data_folder_is_refused(workspace):
    data = workspace / "data"
    data.mkdir()
    before = snapshot(workspace)
    result = invoke("train", workspace / "tiny.yaml", "--data", data, "--out", data, "-q")
    assert_refused(result, 2, data, "the --data path itself")
    assert snapshot(workspace) == before


def test_plot_never_writes_through_a_linked_picture(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text("epoch,loss\n1,0.5\n")
    (tmp_path / "mine.png").write_bytes(b"\x89PNG\r\n\x1a\nmine")
    (run / "curves.png").symlink_to(tmp_path / "mine.png")
    before = snapshot(tmp_path)
    result = invoke("plot", run)
    assert_refused(result, 1, run / "curves.png", "is a symbolic link")
    assert snapshot(tmp_path) == before


def test_an_output_in_an_unwritable_folder_is_refused_before_any_work(workspace, monkeypatch):
    # Permissions do not bind root (CI), so the permission check itself is made to say no.
    monkeypatch.setattr("kspec.files.os.access", lambda path, mode: Path(path) != workspace)
    before = snapshot(workspace)
    assert_refused(_predict(workspace, workspace / "p.npz"), 2, workspace / "p.npz",
                   f"its folder '{workspace}' is not writable")
    assert snapshot(workspace) == before


def test_a_file_kspec_wrote_is_replaced_atomically(workspace):
    from kspec.files import check_output, write_text

    target = workspace / "report.xml"
    write_text(target, "<a/>")
    check_output(target, kind=".xml")  # its own earlier output may be replaced
    write_text(target, "<b/>")
    assert target.read_text() == "<b/>"
    assert sorted(p.name for p in workspace.iterdir()) == ["d.npz", "report.xml", "tiny.yaml", "w.keras"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -------------------------------------------------------------------- run folders
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished 3-epoch run of the tiny spec, checkpointed every epoch (copied by each test)."""
    folder = tmp_path_factory.mktemp("trained")
    spec = folder / "tiny.yaml"
    spec.write_text(TINY)
    result = invoke("train", spec, "--synthetic", "8", "--epochs", "3", "--batch-size", "4", "--seed", "1",
                    "--checkpoint-interval", "0", "--out", folder / "run", "-q")
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def run_copy(trained_run, tmp_path):
    shutil.copytree(trained_run, tmp_path, dirs_exist_ok=True)
    return tmp_path / "tiny.yaml", tmp_path / "run"


def _resume(spec: Path, run: Path, epochs: int):
    return invoke("train", spec, "--resume", run, "--epochs", epochs, "-q")


def test_a_refused_resume_changes_nothing(run_copy):
    spec, run = run_copy
    before = snapshot(run)
    result = _resume(spec, run, 3)  # it already finished its 3 epochs
    assert_refused(result, 1, run, "the run already finished its 3 epochs")
    assert snapshot(run) == before


@pytest.mark.parametrize("edit, complaint", [
    (lambda s: {**s, "seed": "abc"}, "'seed' is \"abc\", which is not a int"),
    (lambda s: {**s, "epochs": -2}, "'epochs' is -2, below 1"),
    (lambda s: {**s, "status": "pwned"}, "'status' is \"pwned\""),
    (lambda s: {**s, "extra": 1}, "unknown field 'extra'"),
    (lambda s: [s], "it does not hold an object"),
    (lambda s: {k: v for k, v in s.items() if k != "seed"}, "the field 'seed' is missing"),
], ids=["seed-text", "negative-epochs", "status", "unknown-field", "not-object", "missing-seed"])
def test_edited_run_settings_are_refused(run_copy, edit, complaint):
    spec, run = run_copy
    (run / "run.json").write_text(json.dumps(edit(json.loads((run / "run.json").read_text()))))
    before = snapshot(run)
    result = _resume(spec, run, 5)
    assert_refused(result, 1, run / "run.json", complaint)
    assert snapshot(run) == before


def test_cut_short_run_settings_are_refused(run_copy):
    spec, run = run_copy
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    before = snapshot(run)
    assert_refused(_resume(spec, run, 5), 1, run / "run.json", "cannot read run settings")
    assert snapshot(run) == before


def test_history_missing_rows_before_the_checkpoint_is_refused(run_copy):
    spec, run = run_copy
    lines = (run / "history.csv").read_text().splitlines(keepends=True)
    (run / "history.csv").write_text("".join(lines[:2]))  # header and epoch 1; the checkpoint is epoch 3
    before = snapshot(run)
    result = _resume(spec, run, 5)
    assert_refused(result, 1, run / "history.csv", "the history has 1 row(s) up to the checkpoint of epoch 3")
    assert snapshot(run) == before


def test_a_cut_short_checkpoint_falls_back_to_the_newest_whole_one(run_copy):
    spec, run = run_copy
    newest = run / "checkpoints" / "epoch-0003.keras"
    newest.write_bytes(newest.read_bytes()[:1000])
    result = _resume(spec, run, 4)
    assert result.exit_code == 0, result.output
    assert f"skipped the damaged checkpoint {newest}" in result.output
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3", "4"]  # epoch 3 trained again, then 4
    settings = json.loads((run / "run.json").read_text())
    assert (settings["status"], settings["epochs_completed"]) == ("completed", 4)


def test_every_checkpoint_damaged_is_refused_with_the_newest_named(run_copy):
    spec, run = run_copy
    for path in (run / "checkpoints").iterdir():
        path.write_bytes(b"edited")
    before = snapshot(run)
    result = _resume(spec, run, 5)
    assert_refused(result, 1, run / "checkpoints" / "epoch-0003.keras", "the checkpoint is damaged")
    assert snapshot(run) == before


def test_a_checkpoint_of_another_model_is_refused(run_copy):
    from kspec.build import build
    from kspec.files import save_model
    from kspec.spec import read_spec

    spec, run = run_copy
    other = spec.with_name("other.yaml")
    other.write_text(TINY.replace("units: 5", "units: 6"))
    newest = run / "checkpoints" / "epoch-0003.keras"
    save_model(build(read_spec(other)[0]).model, newest)
    before = snapshot(run)
    result = _resume(spec, run, 5)
    assert_refused(result, 1, f"{newest}: error: the checkpoint does not hold this spec's model")
    assert snapshot(run) == before


def test_checkpoints_past_9999_sort_and_are_kept_by_number(tmp_path, monkeypatch):
    from kspec import run_folder

    monkeypatch.setattr(run_folder, "save_model", lambda model, path: path.write_bytes(b"checkpoint"))
    monkeypatch.setattr(run_folder, "_whole_keras_file", lambda path: True)
    folder = run_folder.RunFolder(tmp_path)
    folder.checkpoints.mkdir()
    for epoch in (9_998, 9_999, 10_000, 10_001):
        folder.save_checkpoint(None, epoch)
    assert sorted(p.name for p in folder.checkpoints.iterdir()) == [
        "epoch-10000.keras", "epoch-10001.keras", "epoch-9999.keras"]
    assert folder.latest_checkpoint() == (10_001, folder.checkpoints / "epoch-10001.keras")


HISTORY = "epoch,loss,val_loss\n1,0.9,0.95\n2,0.8,0.85\n3,0.7,0.75\n"


@pytest.mark.parametrize("text, line, complaint", [
    (HISTORY.replace("0.8,", "abc,"), 3, "the value 'abc' in column 'loss' is not a number"),
    (HISTORY.replace("2,0.8,0.85", "2,0.8"), 3, "the row has 2 value(s) for 3 column(s)"),
    (HISTORY.replace("2,0.8,0.85", "2,0.8,0.85,1"), 3, "the row has 4 value(s) for 3 column(s)"),
    (HISTORY.replace("\n3,", "\n5,"), 4, "the row is numbered epoch '5', where epoch 3 comes next"),
    (HISTORY.replace("\n2,", "\n,"), 3, "the row is numbered epoch '', where epoch 2 comes next"),
    (HISTORY.replace("epoch,", "loss,", 1), 1, "the history's first line must name its columns"),
    (HISTORY[:40], 3, "the last row is cut short (the file does not end with a line end)"),
], ids=["not-a-number", "short-row", "long-row", "epoch-gap", "no-epoch", "header", "cut-short"])
def test_plot_of_a_damaged_history_is_a_located_error(tmp_path, text, line, complaint):
    (tmp_path / "history.csv").write_text(text)
    before = snapshot(tmp_path)
    result = invoke("plot", tmp_path)
    assert_refused(result, 1, f"{tmp_path / 'history.csv'}:{line}:1: error: {complaint}")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content", [b"epoch,loss\n1,\x000.5\n", b"\xff\xfe\x00garbage"], ids=["nul", "binary"])
def test_plot_of_a_binary_history_is_refused(tmp_path, content):
    (tmp_path / "history.csv").write_bytes(content)
    result = invoke("plot", tmp_path)
    assert_refused(result, 1, tmp_path / "history.csv", "the history is not a CSV file kspec wrote")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]


# ----------------------------------------------------------------- Keras failures
def _keras_fails(monkeypatch, method: str) -> None:
    """Make Keras fail inside `method` with a message that names the spec's layer 'hidden'."""
    import keras

    def failing(*args, **kwargs):
        raise ValueError("Exception encountered when calling Dense.call().\n\n"
                         "Could not run layer 'hidden':   out of\nluck")

    monkeypatch.setattr(keras.Model, method, failing)


def test_a_failure_inside_fit_is_located_and_recorded(workspace, monkeypatch):
    _keras_fails(monkeypatch, "fit")
    run = workspace / "run"
    result = invoke("train", workspace / "tiny.yaml", "--data", workspace / "d.npz", "--out", run, "-q")
    message = ("error: Keras failed while training: Exception encountered when calling Dense.call(). "
               "Could not run layer 'hidden': out of luck")
    assert_refused(result, 1, f"{workspace / 'tiny.yaml'}:5:3: {message}")
    settings = json.loads((run / "run.json").read_text())
    assert settings["status"] == "failed"
    assert message in settings["error"]

    monkeypatch.undo()  # Keras works again: the failed run resumes from its epoch-0 checkpoint
    result = invoke("train", workspace / "tiny.yaml", "--resume", run, "-q")
    assert result.exit_code == 0, result.output
    settings = json.loads((run / "run.json").read_text())
    assert (settings["status"], settings["error"], settings["epochs_completed"]) == ("completed", None, 1)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_failure_inside_evaluate_or_predict_is_located_and_writes_nothing(workspace, monkeypatch, command):
    from kspec.build import build
    from kspec.files import save_model
    from kspec.spec import read_spec

    save_model(build(read_spec(workspace / "tiny.yaml")[0]).model, workspace / "w.keras")
    _keras_fails(monkeypatch, "evaluate" if command == "evaluate" else "predict_on_batch")
    before = snapshot(workspace)
    args = [command, workspace / "tiny.yaml", "--weights", workspace / "w.keras", "--data", workspace / "d.npz"]
    result = invoke(*args, *(["-o", workspace / "p.npz"] if command == "predict" else []))
    doing = "evaluating" if command == "evaluate" else "predicting"
    assert_refused(result, 1, f"{workspace / 'tiny.yaml'}:5:3: error: Keras failed while {doing}: ")
    assert snapshot(workspace) == before


# ------------------------------------------------------------------- predictions
WIDE = """\
name: wide
inputs:
  x: [4]
edges:
  y: {Dense: {units: 20000}}
outputs: [y]
"""

MEASURE = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    import numpy as np
    from kspec.build import build
    from kspec.files import save_model
    from kspec.predict import predict
    from kspec.spec import read_spec

    folder = Path(sys.argv[1])
    spec, _ = read_spec(folder / "wide.yaml")
    save_model(build(spec).model, folder / "w.keras")
    np.savez(folder / "small.npz", x=np.ones((64, 4), np.float32))
    np.savez(folder / "big.npz", x=np.ones((int(sys.argv[2]), 4), np.float32))
    predict(spec, folder / "w.keras", folder / "small.npz", folder / "small_out.npz")  # warm up Keras
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    predict(spec, folder / "w.keras", folder / "big.npz", folder / "big_out.npz", batch_size=32)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) * 1024)
""")


def test_npz_writer_refuses_to_fill_the_disk_and_leaves_nothing(tmp_path, monkeypatch):
    from kspec import files
    from kspec.errors import RunError

    real = shutil.disk_usage
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: real(path)._replace(free=10_000))
    with pytest.raises(RunError) as info, files.NpzWriter(tmp_path / "p.npz", rows=1000) as writer:
        writer.append("y", np.zeros((10, 100), np.float32))  # 1000 rows of 400 bytes: 0.8 MB to write
    assert info.value.diagnostics[0].message.startswith("not enough disk space: the predictions (output 'y' ")
    assert list(tmp_path.iterdir()) == []


def test_npz_writer_refuses_rows_that_change_shape(tmp_path):
    from kspec.errors import RunError
    from kspec.files import NpzWriter

    with pytest.raises(RunError) as info, NpzWriter(tmp_path / "p.npz", rows=4) as writer:
        writer.append("y", np.zeros((2, 3)))
        writer.append("y", np.zeros((2, 5)))
    assert info.value.diagnostics[0].message == "output 'y' gave rows of shape (5,) after rows of shape (3,)"
    assert list(tmp_path.iterdir()) == []


def test_npz_writer_output_reads_back(tmp_path):
    from kspec.files import NpzWriter

    with NpzWriter(tmp_path / "p.npz", rows=5) as writer:
        for start in (0, 2, 4):
            writer.append("a", np.arange(start, min(start + 2, 5), dtype=np.int16))
            writer.append("b.c", np.full((min(2, 5 - start), 2, 2), start, np.float64))
        assert writer.finish() == {"a": (5,), "b.c": (5, 2, 2)}
    with np.load(tmp_path / "p.npz") as saved:
        np.testing.assert_array_equal(saved["a"], np.arange(5, dtype=np.int16))
        assert saved["b.c"].dtype == np.float64 and saved["b.c"][4, 1, 1] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


@pytest.mark.slow
def test_predict_writes_batch_by_batch_in_bounded_memory(tmp_path):
    (tmp_path / "wide.yaml").write_text(WIDE)
    rows = 2000
    output_bytes = rows * 20000 * 4  # 160 MB of float32 predictions
    measured = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path), str(rows)], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
    assert measured.returncode == 0, measured.stderr
    growth = int(measured.stdout.split()[-1])
    assert growth < output_bytes / 8, f"peak memory grew by {growth / 1e6:.0f} MB for {output_bytes / 1e6:.0f} MB"
    with np.load(tmp_path / "big_out.npz", mmap_mode=None) as predictions:
        assert predictions["y"].shape == (rows, 20000)
        assert np.allclose(predictions["y"][0], predictions["y"][-1])  # every row's input is the same
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "big.npz", "big_out.npz", "small.npz", "small_out.npz", "w.keras", "wide.yaml"]
