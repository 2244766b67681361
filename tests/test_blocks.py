"""Blocks (`blocks:` and `block:` calls): what they build, how they are named, and their mistakes."""

from __future__ import annotations

import time

import keras
import numpy as np
import yaml
import pytest
from conftest import SPECS

from kspec import catalogue
from kspec.build import build
from kspec.spec import read_spec, validate


def _built(path):
    model_def, _ = read_spec(path)
    return build(model_def).model


def _same_weights_same_outputs(model, expected, shape):
    """Both models: same layer classes, names and configs; with the same weights, the same outputs."""
    assert [(layer.name, type(layer).__name__) for layer in model.layers] == \
        [(layer.name, type(layer).__name__) for layer in expected.layers]
    for ours, theirs in zip(model.layers, expected.layers):
        assert ours.get_config() == theirs.get_config(), ours.name
    expected.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), expected.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ resnet_blocks
def _unit(x, filters, name, down):
    """He et al.'s basic residual unit, written out as specs/resnet_blocks.yaml's blocks are."""
    layers = keras.layers
    strides = 2 if down else 1
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if down:
        shortcut = layers.Conv2D(filters, 1, strides=2, use_bias=False, name=f"{name}_shortcut")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
        y = layers.Add(name=f"{name}_add")([shortcut, y])
    else:
        y = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _resnet_blocks():
    layers = keras.layers
    image = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(image)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = _unit(x, 16, "conv2_1", down=False)
    x = _unit(x, 16, "conv2_2", down=False)
    x = _unit(x, 32, "conv3_1", down=True)
    x = _unit(x, 32, "conv3", down=False)
    x = _unit(x, 64, "conv4_1", down=True)
    x = _unit(x, 64, "conv4", down=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(image, out, name="resnet_blocks")


def test_resnet_blocks_builds_the_hand_written_resnet():
    _same_weights_same_outputs(_built(SPECS / "resnet_blocks.yaml"), _resnet_blocks(), (2, 32, 32, 3))


# ------------------------------------------------------------------- naming
MLP_BLOCKS = """\
inputs:
  x: {shape: [4]}
blocks:
  layer:
    params: [units]
    defaults: {activation: relu}
    inputs: a
    edges:
      dense: {Dense: {units: $units, activation: $activation}, in: a}
      drop: {Dropout: {rate: 0.1}}
    outputs: drop
edges:
  first: {Dense: {units: 8}}
  stack: {block: layer, with: [{units: 6}, {units: 5, activation: tanh}, {units: 4}]}
  head: {Dense: {units: 1}}
  skip: {Concatenate: {}, in: [stack_1, stack]}
outputs: [head, skip]
"""


def test_calls_name_layers_after_the_call_and_the_block_edge(write_spec):
    text = MLP_BLOCKS.replace("    params: [units]", "    params: [units, activation]")
    model = _built(write_spec(text))
    names = [layer.name for layer in model.layers]
    assert names == ["x", "first", "stack_1_dense", "stack_1_drop", "stack_2_dense", "stack_2_drop",
                     "stack_3_dense", "stack_3_drop", "head", "skip"]
    # Each repetition has its own parameters, the defaults filling in what a call leaves out.
    assert [model.get_layer(f"stack_{k}_dense").units for k in (1, 2, 3)] == [6, 5, 4]
    assert [model.get_layer(f"stack_{k}_dense").activation.__name__ for k in (1, 2, 3)] == ["relu", "tanh", "relu"]
    # `head` takes the call's output (the tensor above); `stack_1` and `stack` are repetitions' outputs.
    assert model.get_layer("head").input is model.get_layer("stack_3_drop").output
    skip_inputs = model.get_layer("skip").input
    assert skip_inputs[0] is model.get_layer("stack_1_drop").output
    assert skip_inputs[1] is model.get_layer("stack_3_drop").output


def _expected_pair_model():
    layers = keras.layers
    x = keras.Input((4,), name="x")
    c = keras.Input((4,), name="c")
    inner = layers.Dense(4, name="p_left_dense")(x)
    left = layers.Add(name="p_left_sum")([inner, c])
    right = layers.Dense(2, name="p_right")(c)
    out = layers.Concatenate(name="out")([left, right])
    return keras.Model([x, c], [out, right], name="spec")


def test_nested_calls_and_a_block_with_two_outputs(write_spec):
    path = write_spec("""\
inputs:
  x: {shape: [4]}
  c: {shape: [4]}
blocks:
  plus:
    params: [units]
    inputs: [a, b]
    edges:
      dense: {Dense: {units: $units}, in: a}
      sum: {Add: {}, in: [dense, b]}
    outputs: sum
  pair:
    params: [units]
    inputs: [a, b]
    edges:
      left: {block: plus, with: {units: $units}, in: [a, b]}
      right: {Dense: {units: 2}, in: b}
    outputs: [left, right]
edges:
  p: {block: pair, with: {units: 4}, in: [x, c], outputs: [l, r]}
  out: {Concatenate: {}, in: [l, r]}
outputs: [out, r]
""")
    _same_weights_same_outputs_pair(_built(path))


def _same_weights_same_outputs_pair(model):
    expected = _expected_pair_model()
    assert [(layer.name, type(layer).__name__) for layer in model.layers] == \
        [(layer.name, type(layer).__name__) for layer in expected.layers]
    expected.set_weights(model.get_weights())
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(2, 4)).astype("float32") for _ in range(2)]
    for ours, theirs in zip(model.predict(x, verbose=0), expected.predict(x, verbose=0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_a_block_may_call_a_declared_layer_of_the_model_shared_by_every_call(write_spec):
    model = _built(write_spec("""\
inputs:
  x: {shape: [4]}
layers:
  shared: {Dense: {units: 4}}
blocks:
  twice:
    inputs: a
    edges:
      s: {layer: shared, in: a}
      own: {Dense: {units: 4}}
    outputs: own
edges:
  t: {block: twice, repeat: 2}
outputs: [t]
"""))
    assert [layer.name for layer in model.layers] == ["x", "shared", "t_1_own", "t_2_own"]
    assert len(model.get_layer("shared")._inbound_nodes) == 2


# ------------------------------------------------------------------ mistakes
def _errors(path):
    _, diagnostics = validate(path)
    return [d.format(with_source=False) for d in diagnostics if d.is_error]


def test_a_mistake_a_call_reveals_is_shown_at_the_block_and_noted_at_each_call(write_spec):
    path = write_spec("""\
inputs:
  x: {shape: [4]}
blocks:
  b:
    inputs: a
    edges:
      d: {Dense: {unitz: 2}, in: a}
    outputs: d
edges:
  one: {block: b, repeat: 3}
  two: {block: b}
outputs: [two]
""")
    hint = "  hint: Dense takes: " + ", ".join(catalogue.load()["layers"]["Dense"]["args"])
    assert _errors(path) == [
        f"{path}:7:19: error: unknown argument 'unitz' for Dense; did you mean 'units'?\n{hint}\n"
        f"  note: in the block called at {path}:10:3",
        f"{path}:7:19: error: unknown argument 'unitz' for Dense; did you mean 'units'?\n{hint}\n"
        f"  note: in the block called at {path}:11:3",
    ]
    _, diagnostics = validate(path)
    assert [d.to_dict()["via"] for d in diagnostics if d.is_error] == [[f"{path}:10:3"], [f"{path}:11:3"]]


def test_an_expansion_past_the_bound_is_refused_quickly(write_spec):
    path = write_spec("""\
inputs:
  x: {shape: [4]}
blocks:
  wide:
    inputs: a
    edges:
      d1: {Dense: {units: 4, activation: relu, use_bias: true}, in: a}
      d2: {Dense: {units: 4, activation: relu, use_bias: true}}
      d3: {Dense: {units: 4, activation: relu, use_bias: true}}
    outputs: d3
  deep:
    inputs: a
    edges:
      w: {block: wide, repeat: 1000, in: a}
    outputs: w
edges:
  y: {block: deep, repeat: 1000}
outputs: [y]
""")
    start = time.perf_counter()
    errors = _errors(path)
    assert time.perf_counter() - start < 10
    assert errors == [
        f"{path}:17:3: error: edge 'y' expands to 33,009,000 YAML values with the block calls before it; "
        "block calls may expand to at most 200,000, as many as a spec file may hold\n"
        "  hint: call fewer or smaller blocks, or repeat them less"]


def test_a_call_with_no_tensor_above_must_give_its_inputs(write_spec):
    path = write_spec("""\
inputs: {x: [4], z: [4]}
blocks:
  b:
    inputs: a
    edges:
      d: {Dense: {units: 2}, in: a}
    outputs: d
edges:
  y: {block: b}
outputs: [y]
""")
    assert _errors(path) == [f"{path}:9:6: error: edge 'y' gives block 'b' no inputs\n"
                             "  hint: name them in order with 'in': the block takes a"]


# -------------------------------------------------------------------- import
def _resnet_named_for_blocks():
    """A small ResNet whose units are named as kspec names a repeated call's layers (STAGE_K_LAYER)."""
    layers = keras.layers
    image = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(image)
    for k in (1, 2, 3):
        x = _unit(x, 8, f"conv2_{k}", down=False)
    x = _unit(x, 16, "conv3_down", down=True)
    for k in (1, 2):
        x = _unit(x, 16, f"conv3_{k}", down=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(image, out, name="resnet")


def test_import_writes_runs_of_identical_units_as_a_repeated_block(tmp_path):
    from test_import import assert_round_trip

    text = assert_round_trip(_resnet_named_for_blocks(), tmp_path)  # same layers, names and outputs
    spec = yaml.safe_load(text)
    assert list(spec["blocks"]) == ["conv2", "conv3"]
    assert spec["blocks"]["conv2"]["inputs"] == "x"
    assert list(spec["blocks"]["conv2"]["edges"]) == ["conv1", "bn1", "relu1", "conv2", "bn2", "add", "out"]
    assert spec["blocks"]["conv2"]["outputs"] == "out"
    assert spec["edges"]["conv2"] == {"block": "conv2", "repeat": 3}
    assert spec["edges"]["conv3"] == {"block": "conv3", "repeat": 2}
    assert "conv3_down_conv1" in spec["edges"]  # a unit of its own kind stays as it was


@pytest.mark.slow
def test_an_imported_resnet50_reads_like_the_papers_table(tmp_path):
    from test_import import assert_round_trip

    text = assert_round_trip(keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10), tmp_path)
    spec = yaml.safe_load(text)
    assert list(spec["blocks"]) == ["conv2_block", "conv3_block", "conv4_block", "conv5_block"]
    # Each stage: its first unit (strided, with a projection shortcut) as edges, then one line per identity unit.
    calls = {stage: [name for name, edge in spec["edges"].items() if edge.get("block") == f"{stage}_block"]
             for stage in ("conv2", "conv3", "conv4", "conv5")}
    assert {stage: len(names) + 1 for stage, names in calls.items()} == {"conv2": 3, "conv3": 4, "conv4": 6, "conv5": 3}
    assert calls["conv3"] == ["conv3_block2", "conv3_block3", "conv3_block4"]
    assert list(spec["blocks"]["conv2_block"]["edges"])[:3] == ["1_conv", "1_bn", "1_relu"]


def test_import_makes_the_arguments_units_differ_in_parameters(tmp_path):
    from test_import import assert_round_trip

    layers = keras.layers
    image = keras.Input((8, 8, 3), name="image")
    x = image
    for k, filters in ((1, 4), (2, 8)):  # VGG's table: units alike but for their filters
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{k}_conv1")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{k}_conv2")(x)
        x = layers.MaxPooling2D(name=f"block{k}_pool")(x)
    out = layers.Dense(2, name="out")(layers.Flatten(name="flatten")(x))
    spec = yaml.safe_load(assert_round_trip(keras.Model(image, out, name="vgg"), tmp_path))
    assert spec["blocks"]["block"]["params"] == ["filters"]
    assert spec["blocks"]["block"]["edges"]["conv2"] == {"Conv2D": {"filters": "$filters", "kernel_size": [3, 3],
                                                                    "padding": "same", "activation": "relu"}}
    assert spec["edges"]["block1"] == {"block": "block", "with": {"filters": 4}}
    assert spec["edges"]["block2"] == {"block": "block", "with": {"filters": 8}}


def test_a_block_never_called_and_a_parameter_never_used_are_warned_about(write_spec):
    path = write_spec("""\
inputs:
  x: {shape: [4]}
blocks:
  used:
    params: [units, spare]
    defaults: {spare: 1}
    inputs: a
    edges:
      d: {Dense: {units: $units}, in: a}
    outputs: d
  unused:
    inputs: a
    edges:
      d: {Dense: {units: 2}, in: a}
    outputs: d
edges:
  y: {block: used, with: {units: 2}}
outputs: [y]
""")
    _, diagnostics = validate(path)
    assert [(d.severity, d.location.line, d.message) for d in diagnostics] == [
        ("warning", 4, "parameter 'spare' of block 'used' is never used"),
        ("warning", 11, "block 'unused' is never called"),
    ]


def test_a_build_error_inside_a_block_names_the_call(write_spec):
    from kspec.errors import SpecError

    path = write_spec("""\
inputs:
  x: {shape: [4]}
blocks:
  res:
    params: [units]
    inputs: a
    edges:
      d: {Dense: {units: $units}, in: a}
      sum: {Add: {}, in: [a, d]}
    outputs: sum
edges:
  ok: {block: res, with: {units: 4}}
  bad: {block: res, with: {units: 3}}
outputs: [bad]
""")
    with pytest.raises(SpecError) as info:
        _built(path)
    [diagnostic] = info.value.diagnostics
    assert (diagnostic.location.line, [call.line for call in diagnostic.location.via]) == (9, [13])
    assert diagnostic.message.startswith("Keras rejected the call of Add 'bad_sum'")


def test_blocks_calling_each_other_twice_per_level_are_refused_at_once(tmp_path):
    """40 levels of blocks, each calling the one below twice: 2**40 layers, from a 2 KB file.

    The cycle search and the size count visit each block once, so validate refuses it instead of hanging.
    """
    import subprocess
    import sys

    lines = ["inputs:\n  x: {shape: [4]}\nblocks:",
             "  b0:\n    inputs: [a]\n    edges:\n      d: {Dense: {units: 4}, in: a}\n    outputs: [d]"]
    for i in range(1, 40):
        lines.append(f"  b{i}:\n    inputs: [a]\n    edges:\n      p: {{block: b{i - 1}, in: a}}\n"
                     f"      q: {{block: b{i - 1}, in: p}}\n    outputs: [q]")
    lines.append("edges:\n  y: {block: b39, in: x}\noutputs: [y]\n")
    spec = tmp_path / "doubling.yaml"
    spec.write_text("\n".join(lines))
    result = subprocess.run([sys.executable, "-m", "kspec", "validate", str(spec)],
                            capture_output=True, text=True, timeout=120)  # a guard against a hang, not a speed test
    assert result.returncode == 1, result.stdout + result.stderr
    assert "block calls may expand to at most" in result.stdout + result.stderr


def test_a_with_list_longer_than_the_repeat_limit_is_refused_once(write_spec):
    """A `with:` list's length is the call's repeat, so it has repeat's limit, and says so once."""
    rows = "\n".join(["      - {u: 4}"] * 1001)
    path = write_spec(f"""\
inputs:
  x: {{shape: [4]}}
blocks:
  b:
    params: [u]
    inputs: [a]
    edges:
      d: {{Dense: {{units: $u}}, in: a}}
    outputs: [d]
edges:
  y:
    block: b
    in: x
    with:
{rows}
outputs: [y]
""")
    _, diagnostics = validate(path)
    assert [(d.location.line, d.message) for d in diagnostics if d.is_error] == [
        (15, "'with' of edge 'y' lists 1001 calls; at most 1000 is allowed")]
