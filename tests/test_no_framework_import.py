"""Mistakes that need no model are told before Keras (and TensorFlow's long import) is loaded.

Each command runs in a fresh process through a wrapper that, whatever the
exit, prints which frameworks ended up in sys.modules.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ROOT

from kspec.cli import main

SPEC = "inputs: {x: [4]}\nedges:\n  y: {Dense: {units: 2}}\noutputs: [y]\nloss: mse\n"
WRAPPER = ("import sys\nfrom kspec.cli import main\n"
           "try:\n    main(sys.argv[1:], prog_name='kspec')\n"
           "finally:\n"
           "    print('frameworks:', sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules),"
           " file=sys.stderr)\n")


def _kspec(*args, env=None):
    """Exit code and stderr of `kspec ARGS` in a fresh process; fails if a framework was imported."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    *message, imported = done.stderr.splitlines(keepends=True)
    assert imported == "frameworks: []\n", done.stderr
    return done.returncode, "".join(message)


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(SPEC)
    return path


def test_a_finished_run_is_refused(tmp_path, spec):
    run = tmp_path / "run"
    trained = CliRunner().invoke(main, ["train", str(spec), "--synthetic", "8", "--epochs", "1", "--out", str(run),
                                        "--seed", "0", "-q"])
    assert trained.exit_code == 0, trained.output
    assert _kspec("train", spec, "--resume", run) == (
        1, f"{run}: error: the run already finished its 1 epochs\n  hint: give a larger --epochs to train it further\n")


NOT_NPZ = "error: not an .npz file\n  hint: save the arrays with numpy.savez(FILE, input_name=array, ...)\n"


@pytest.mark.parametrize("name, content", [("d.txt", b"1,2,3\n"), ("d.npz", b"not a zip file")])
def test_a_data_file_of_another_format_is_refused(tmp_path, spec, name, content):
    data = tmp_path / name
    data.write_bytes(content)
    assert _kspec("train", spec, "--data", data) == (1, f"{data}: {NOT_NPZ}")


def test_an_npz_without_the_outputs_is_refused(tmp_path, spec):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((8, 4), "float32"))
    assert _kspec("train", spec, "--data", data) == (
        1, f"{data}: error: no array for output 'y'\n  hint: store it under the key 'y' (or 'y')\n")


def test_a_picture_without_graphviz_is_refused(tmp_path, spec):
    empty = tmp_path / "bin"
    empty.mkdir()
    picture = tmp_path / "m.svg"
    assert _kspec("graph", spec, "-o", picture, env={"PATH": str(empty), "PYTHONPATH": str(ROOT)}) == (
        1, f"{picture}: error: cannot draw .svg: Graphviz's 'dot' program is not installed\n"
           "  hint: install Graphviz (e.g. apt-get install graphviz, or brew install graphviz), or write a .dot file\n")
    assert not picture.exists()
