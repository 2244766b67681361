"""Property test: a spec that validate calls ok never ends in a traceback.

Specs are generated from the catalogue: every layer class, with its required
arguments and a few optional ones, each value drawn from the argument's kind
(mostly fitting values, sometimes a wrong kind, an extreme number, a nested
`{Class: {args}}` object), called plainly, on a list, by keywords, inside a
functional or sequential sub-model, or wrapped in another layer; on small
inputs of every dtype (some sparse, ragged or of fixed batch size), with
drawn optimizers, losses and metrics and the odd very long name, or an
enormous dimension. Each spec goes through what `kspec check` does, in this
process: validate, build, predict and train two steps on synthetic data. The
outcome must be success or a KspecError whose every diagnostic points into
the spec file; any other exception fails the test.

CI runs 40 examples. For a long run, set the number of examples (and,
to see what happened to each, a file to log one line per example to):

    KSPEC_FUZZ_EXAMPLES=2000 KSPEC_FUZZ_LOG=fuzz.log python -m pytest -q tests/test_fuzz_specs.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kspec import catalogue
from kspec.errors import KspecError
from kspec.check import smoke_test
from kspec.spec import validate

CATALOGUE = catalogue.load()
LAYERS = sorted(name for name in CATALOGUE["layers"] if name not in catalogue.REFUSED_LAYERS)
EXAMPLES = int(os.environ.get("KSPEC_FUZZ_EXAMPLES", "40"))
LOG = os.environ.get("KSPEC_FUZZ_LOG")
# Arguments a spec gives elsewhere (the name) or that only make sense for Keras's own bookkeeping.
SKIPPED = {"name", "input_shape", "batch_input_shape", "batch_size", "weights", "input_dim"}
WRAPPERS = ("TimeDistributed", "Bidirectional")
MERGING = [name for name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
                              "Attention", "AdditiveAttention") if name in CATALOGUE["layers"]]
NESTED_LAYERS = [{"Dense": {"units": 2}}, {"LSTM": {"units": 2}}, {"SimpleRNNCell": {"units": 2}},
                 {"GRU": {"units": 2, "return_sequences": True}}, {"Conv1D": {"filters": 2, "kernel_size": 1}}]

small_ints = st.integers(1, 4)
fractions = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9])
# A required argument of no known kind: a count, a shape, or a layer (Bidirectional's, RNN's cell).
unknown_required = st.one_of(small_ints, st.lists(small_ints, min_size=1, max_size=3),
                             st.sampled_from([{"Dense": {"units": 2}}, {"LSTMCell": {"units": 2}}]))
hostile = st.one_of(st.sampled_from([-1, 0, 10**7, 2.5, "eight", "", [1, "a"], [], True, None]),
                    st.text(max_size=6), st.sampled_from(NESTED_LAYERS))


def _identifier(group: str) -> st.SearchStrategy[Any]:
    """A name from a catalogue group, or one of its classes with drawn arguments."""
    known = CATALOGUE[group]
    classes = sorted(known["classes"])
    return st.one_of(st.sampled_from(known["strings"]),
                     st.sampled_from(classes).flatmap(lambda name: st.fixed_dictionaries(
                         {name: _arguments(known["kinds"].get(name, {}), [], optional=2)})))


def _value(arg: str, kind: str | None, required: bool = False) -> st.SearchStrategy[Any]:
    """A value for one argument: one that fits its kind, mostly."""
    if arg in ("activation", "recurrent_activation"):
        fitting = st.sampled_from(CATALOGUE["activations"])
    elif arg.endswith("_initializer"):
        fitting = _identifier("initializers")
    elif arg.endswith("_regularizer"):
        fitting = st.one_of(st.none(), _identifier("regularizers"))
    elif arg.endswith("_constraint"):
        fitting = st.one_of(st.none(), _identifier("constraints"))
    elif arg in ("layer", "backward_layer", "cell"):
        fitting = st.sampled_from(NESTED_LAYERS)
    elif arg == "padding" and kind == "str":
        fitting = st.sampled_from(["valid", "same", "causal"])
    elif arg == "data_format":
        fitting = st.sampled_from(["channels_last", "channels_first", None])
    elif arg == "dtype":
        fitting = st.sampled_from(["float32", "float16", "bfloat16", "int32", "mixed_float16", "float64"])
    else:
        fitting = {
            "bool": st.booleans(),
            "int": small_ints,
            "float": fractions,
            "str": st.sampled_from(["valid", "auto", "same", "sum", "concat", "mean", "int"]),
            "tuple": st.one_of(small_ints, st.lists(small_ints, min_size=1, max_size=3)),
        }.get(kind or "", unknown_required if required else st.none())  # None: the usual default
    # One value in ten is of a wrong kind, extreme, or a layer where none goes.
    return st.integers(0, 9).flatmap(lambda roll: hostile if roll == 0 else fitting)


def _arguments(kinds: dict[str, str], required: list[str], optional: int) -> st.SearchStrategy[dict[str, Any]]:
    """The required arguments and up to `optional` others, each with a drawn value."""
    names = sorted(arg for arg in kinds if arg not in SKIPPED and arg not in required)
    chosen = st.lists(st.sampled_from(names), max_size=optional, unique=True) if names else st.just([])
    return chosen.flatmap(lambda extra: st.fixed_dictionaries(
        {arg: _value(arg, kinds.get(arg), arg in required) for arg in list(required) + extra}))


@st.composite
def layer_calls(draw: Any) -> dict[str, Any]:
    """{Class: {args}} for a drawn layer class."""
    name = draw(st.sampled_from(LAYERS))
    info = CATALOGUE["layers"][name]
    kinds = dict(info.get("kinds", {}))
    kinds.update({arg: kinds.get(arg) for arg in info["args"] if arg not in kinds})
    return {name: draw(_arguments(kinds, info["required"], optional=3))}


@st.composite
def specs(draw: Any) -> dict[str, Any]:
    layer = draw(layer_calls())
    class_name = next(iter(layer))
    call = CATALOGUE["layers"][class_name]["call"]["params"]
    rank = draw(st.integers(1, 4))
    shape = draw(st.lists(st.one_of(st.integers(1, 6), st.just(None), st.just(10**6)) if draw(st.booleans())
                          else st.integers(2, 6), min_size=rank, max_size=rank))
    dtype = draw(st.sampled_from(["float32", "float32", "float32", "int32", "bool", "float16", "bfloat16",
                                  "uint8", "string"]))
    options = draw(st.sampled_from([{}, {}, {}, {"batch_size": 4}, {"sparse": True}, {"ragged": True}]))
    edge_name = draw(st.sampled_from(["h", "h", "h" * 300]))
    form = draw(st.sampled_from(["plain", "plain", "list", "keywords", "sequential", "functional", "wrapped",
                                 "ids"]))
    spec: dict[str, Any] = {"name": "fuzz", "inputs": {"x": {"shape": shape, "dtype": dtype, **options}}}
    if form == "keywords" and "query" in call and "value" in call:
        edge = {**layer, "in": {"query": "x", "value": "x"}}
    elif form == "list":  # a merging layer on two tensors
        edge = {draw(st.sampled_from(MERGING)): {}, "in": ["x", "x"]}
    elif form == "wrapped":
        edge = {draw(st.sampled_from(WRAPPERS)): {"layer": layer}, "in": "x"}
    elif form in ("sequential", "functional", "ids"):
        sub_layers = [layer]
        if form == "ids":  # integer ids through an Embedding inside the sub-model
            spec["inputs"]["x"] = {"shape": shape, "dtype": "int32"}
            sub_layers.insert(0, {"Embedding": {"input_dim": draw(st.integers(1, 5)), "output_dim": 3}})
        if form == "functional":
            spec["models"] = {"sub": {"inputs": {"t": {"shape": shape, "dtype": dtype}},
                                      "edges": {"inner": {**layer, "in": "t"}}, "outputs": ["inner"]}}
        else:
            spec["models"] = {"sub": {"sequential": sub_layers}}
        edge = {"layer": "sub", "in": "x"}
    else:
        edge = {**layer, "in": "x"}
    spec["edges"] = {edge_name: edge, "flat": {"Flatten": {}}, "y": {"Dense": {"units": draw(small_ints)}}}
    spec["outputs"] = ["y"]
    spec["optimizer"] = draw(_identifier("optimizers"))
    spec["loss"] = draw(st.one_of(st.sampled_from(["mse", "mae", "binary_crossentropy", "huber"]),
                                  _identifier("losses")))
    if draw(st.booleans()):
        spec["metrics"] = [draw(st.one_of(st.sampled_from(["mae", "accuracy"]), _identifier("metrics")))]
    return spec


def outcome(path: Path) -> tuple[str, list[Any]]:
    """Where a spec stopped (validate, check or trained) and its errors."""
    _, diagnostics = validate(path)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        return "validate", errors
    try:
        smoke_test(path)
    except KspecError as exc:
        return "check", list(exc.diagnostics)
    finally:
        keras.backend.clear_session()
    return "trained", []


def _log(stage: str, errors: list[Any]) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as handle:
            handle.write(f"{stage}\t{errors[0].message[:200] if errors else ''}\n")


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(specs())
def test_a_generated_spec_trains_or_fails_with_a_located_error(tmp_path_factory, spec):
    path = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    stage, errors = outcome(path)
    _log(stage, errors)
    for diagnostic in errors:
        assert diagnostic.location.file == str(path) and diagnostic.location.line >= 1, diagnostic.format()
        assert diagnostic.message and "Traceback" not in diagnostic.message, diagnostic.format()
