"""A spec that validates and builds, but that Keras cannot run, is a located error in every command.

RandomInvert builds on a vector (Keras checks an image's rank only when it
runs), so each command that runs the model meets Keras's error: train (while
labelling synthetic data, and while fitting on given data), check, inspect,
evaluate and predict. Each must exit 1 with the layer's line, no traceback,
and nothing written.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from kspec.cli import main

SPEC = "inputs: {x: [4]}\nedges:\n  h: {RandomInvert: {}}\n  y: {Dense: {units: 1}}\noutputs: [y]\nloss: mse\n"


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "invert.yaml").write_text(SPEC, encoding="utf-8")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((6, 4), dtype="float32"), y=rng.random((6, 1), dtype="float32"))
    runner = CliRunner()
    assert runner.invoke(main, ["build", str(tmp_path / "invert.yaml"), "-o", str(tmp_path / "model.keras")]
                         ).exit_code == 0
    (tmp_path / "out").mkdir()
    return tmp_path


COMMANDS = {
    "train synthetic": (["train", "{spec}", "--synthetic", "8", "--out", "{out}/run", "-q"],
                        "labelling synthetic data with a copy of the model"),
    "train data": (["train", "{spec}", "--data", "{data}", "--out", "{out}/run", "-q"], "training"),
    "check": (["check", "{spec}", "--junit", "{out}/junit.xml"], "predicting and training two steps on synthetic data"),
    "inspect": (["inspect", "{spec}", "--all", "--synthetic", "2", "-o", "{out}/dump.npz"],
                "computing layer outputs"),
    "evaluate": (["evaluate", "{spec}", "--weights", "{model}", "--data", "{data}"], "evaluating"),
    "predict": (["predict", "{spec}", "--weights", "{model}", "--data", "{data}", "-o", "{out}/p.npz"],
                "predicting"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_keras_failing_to_run_a_valid_spec_is_located(workspace, command):
    args, doing = COMMANDS[command]
    spec = workspace / "invert.yaml"
    paths = {"spec": spec, "data": workspace / "data.npz", "model": workspace / "model.keras",
             "out": workspace / "out"}
    result = CliRunner().invoke(main, [arg.format(**paths) for arg in args])
    assert result.exit_code == 1, result.output
    assert f"{spec}:3:3: error: Keras failed while {doing}: Exception encountered when calling " \
           "RandomInvert.call()." in result.output
    assert "Traceback" not in result.output
    written = sorted(path.name for path in (workspace / "out").iterdir())
    # train with data fails inside fit, after its run folder exists: it records the failure there.
    assert written == (["junit.xml"] if command == "check" else ["run"] if command == "train data" else [])
