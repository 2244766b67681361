"""--set PATH=VALUE on the commands that read a spec."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import SPECS

from kspec.cli import main
from kspec.errors import SpecError
from kspec.spec import read_spec, spec_text


def test_layer_argument_without_the_class_name():
    model, _ = read_spec(SPECS / "shared_lstm.yaml", ["layers.shared_lstm.units=128"])
    assert model.layers["shared_lstm"].args == {"units": 128}


def test_mapping_values_lists_and_new_arguments():
    model, _ = read_spec(SPECS / "multi_io.yaml", ["loss_weights.aux_output=0.5", "edges.deep.use_bias=false",
                                                   "inputs.aux_input.shape=[7]"])
    assert model.compile.loss_weights.value == {"main_output": 1.0, "aux_output": 0.5}
    assert model.edges[4].layer.args == {"units": 64, "activation": "relu", "use_bias": False}
    assert model.inputs[1].shape == (7,)


def test_explicit_class_path_and_list_index():
    model, _ = read_spec(SPECS / "inception.yaml", ["edges.tower_3a.MaxPooling2D.pool_size.0=2", "outputs.0=tower_1"])
    assert model.edges[4].layer.args["pool_size"] == [2, 3]
    assert model.output_names == ["tower_1"]


@pytest.mark.parametrize("assignment, message, hint", [
    ("layers.shared_lstn.units=1", "no 'shared_lstn' at 'layers.shared_lstn'; did you mean 'shared_lstm'?",
     "keys there: shared_lstm"),
    ("nothing", "expected PATH=VALUE", "e.g. --set layers.shared_lstm.units=128"),
    ("outputs.3=x", "'outputs.3': no item 3 in a list of 1", "use an index from 0 to 0"),
    ("name.first=x", "'name.first' goes inside a single value", "shorten the path"),
])
def test_bad_paths(assignment, message, hint):
    with pytest.raises(SpecError) as info:
        read_spec(SPECS / "shared_lstm.yaml", [assignment])
    [diagnostic] = info.value.diagnostics
    assert (str(diagnostic.location), diagnostic.message, diagnostic.hint) == (f"--set {assignment}", message, hint)


def test_overridden_value_is_checked_and_located_at_the_override():
    with pytest.raises(SpecError) as info:
        read_spec(SPECS / "shared_lstm.yaml", ["layers.shared_lstm.activation=rleu"])
    [diagnostic] = info.value.diagnostics
    assert str(diagnostic.location) == "--set layers.shared_lstm.activation=rleu"
    assert diagnostic.message == "unknown activation 'rleu' for LSTM; did you mean 'relu'?"


def test_spec_text_after_overrides():
    text = spec_text(SPECS / "residual.yaml", ["edges.y.padding=same"])
    assert text.splitlines()[0] == f"# {SPECS / 'residual.yaml'} with --set edges.y.padding=same"
    assert spec_text(SPECS / "residual.yaml") == (SPECS / "residual.yaml").read_text()


@pytest.mark.parametrize("command", [["build", "--json"], ["summary"], ["inspect", "--json"]])
def test_commands_take_set(command):
    result = CliRunner().invoke(main, [*command, str(SPECS / "shared_lstm.yaml"), "--set",
                                       "layers.shared_lstm.units=8"])
    assert result.exit_code == 0, result.output
    params = 4 * (256 * 8 + 8 * 8 + 8) + 17  # LSTM(8) on 256 features, then Dense(1) on 16
    if command[0] == "build":
        assert json.loads(result.stdout)["params"] == params
    elif command[0] == "summary":
        assert f"Total params: {params:,}" in result.stdout
    else:
        assert json.loads(result.stdout)[0]["params"] == 4 * (256 * 8 + 8 * 8 + 8)


def test_train_records_the_spec_after_overrides(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(SPECS / "mlp.yaml"), "--synthetic", "8", "--out", str(run),
                                       "-q", "--set", "edges.hidden.units=4"])
    assert result.exit_code == 0, result.output
    copy = (run / "spec.yaml").read_text()
    assert "--set edges.hidden.units=4" in copy.splitlines()[0]
    model, _ = read_spec(run / "spec.yaml")
    assert model.edges[0].layer.args["units"] == 4
