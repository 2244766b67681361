"""--backend: the same specs on JAX, and clear errors for backends that cannot be used."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, SPECS

from kspec.backend import select_backend
from kspec.errors import RunError


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the jax extra; .ci/run installs it")
def test_every_seed_spec_builds_and_trains_on_jax():
    result = subprocess.run([sys.executable, "-m", "kspec", "check", str(SPECS), "--backend", "jax", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow"})  # the flag wins over the variable
    report = json.loads(result.stdout)
    assert sorted(r["spec"] for r in report) == sorted(str(p) for p in SPECS.glob("*.yaml"))
    # Keras's string lookups run on tf.data only: specs with string inputs are refused by name on JAX.
    strings = {str(p) for p in SPECS.glob("*.yaml") if "dtype: string" in p.read_text()}
    assert strings, "no shipped spec has a string input any more: drop this branch"
    for r in report:
        if r["spec"] in strings:
            assert r["status"] == "failed", r
            assert "which Keras runs only on the TensorFlow backend, not on jax" in r["diagnostics"][0]["message"]
        else:
            assert r["status"] == "passed" and r["note"].startswith("loss "), r
    assert result.returncode == (1 if strings else 0), result.stdout + result.stderr


def test_backend_already_running_is_refused():
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    with pytest.raises(RunError) as info:
        select_backend(other)
    assert info.value.diagnostics[0].message == f"Keras is already running on {keras.backend.backend()}, not {other}"


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_missing_backend_names_its_extra():
    result = subprocess.run([sys.executable, "-m", "kspec", "build", str(SPECS / "mlp.yaml"), "--backend", "torch"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == ("--backend: error: the torch backend is not installed\n"
                             "  hint: install it with the extra: pip install 'kspec[torch]'\n")


def test_validate_needs_no_backend():
    result = subprocess.run([sys.executable, "-m", "kspec", "validate", str(SPECS / "mlp.yaml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "KERAS_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr
