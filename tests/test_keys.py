"""The key declarations of kspec/spec/keys.py, and the parser, the schema and the docs that derive from them.

The cases are generated from the declarations: for every key in every form of
mapping it may appear in, a spec using it is accepted by both the parser and
the JSON Schema; the same spec with an unknown key beside it is refused by
both, at that key's line; and a key put in a form that does not allow it is
refused by both. docs/spec.md's key tables must be what the declarations
generate.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from jsonschema import Draft202012Validator

from kspec.schema import schema
from kspec.spec import keys as keys_module
from kspec.spec.keys import (BLOCK, CALL, DECLARED, FUNCTIONAL, INCLUDED, INLINE, INPUT, KEYS, LAYER, PLACES, SEQUENTIAL, SPEC,
                             TRAINING, Key, key_names, keys_in, render_docs, table)
from kspec.spec.parse import parse

VALIDATOR = Draft202012Validator(schema())
FORMS = [form for forms in PLACES.values() for form in forms]
UNKNOWN = "unknown_key"


def _base() -> dict[str, Any]:
    return {"inputs": {"x": [4]}, "edges": {"y": {"Dense": {"units": 2}}}, "outputs": ["y"]}


def _block() -> dict[str, Any]:
    """A block with one parameter, which has a default."""
    return {"params": ["units"], "defaults": {"units": 2}, "inputs": "a",
            "edges": {"d": {"Dense": {"units": "$units"}}}, "outputs": "d"}


def _spec_with(form: str, key: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A small valid spec whose mapping of `form` holds `key: value`; the spec and that mapping."""
    spec = _base()
    if form == SPEC:
        mapping = spec
    elif form in PLACES["sub-model"]:
        mapping = {FUNCTIONAL: _base(), SEQUENTIAL: {"sequential": ["Flatten"]},
                   INCLUDED: {"include": "encoder.yaml"}}[form]
        spec["edges"] = {"y": {"layer": "m"}}
        spec["models"] = {"m": mapping}
    elif form == INPUT:
        mapping = spec["inputs"]["x"] = {"shape": [4]}
    elif form in PLACES["edge"]:
        mapping = spec["edges"]["y"] = {DECLARED: {"layer": "dense"}, INLINE: {"Dense": {"units": 2}},
                                        CALL: {"block": "b"}}[form]
        if form == DECLARED:
            spec["layers"] = {"dense": {"Dense": {"units": 2}}}
        if form == CALL:
            spec["blocks"] = {"b": _block()}
    elif form == BLOCK:
        mapping = _block()
        spec["blocks"] = {"b": mapping}
        spec["edges"] = {"y": {"block": "b"}}
    elif form == LAYER:
        mapping = {"Dense": {"units": 2}}
        spec["layers"] = {"dense": mapping}
        spec["edges"]["y"] = {"layer": "dense"}
    else:
        assert form == TRAINING, f"a form this test does not know: {form}"
        mapping = spec["training"] = {}
    mapping[key] = copy.deepcopy(value)
    return spec, mapping


def _check(tmp_path: Path, spec: dict[str, Any]) -> tuple[list[Any], list[str], str]:
    """The parser's errors, the schema's errors and the spec's YAML text.

    The parser, not validate: what names refer to is semantics.py's business, not the keys'.
    """
    (tmp_path / "encoder.yaml").write_text(yaml.safe_dump(_base()))
    (tmp_path / "encoder.keras").write_bytes(b"")  # named only: validate does not read weights
    text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    _, diagnostics = parse(path)
    return [d for d in diagnostics if d.is_error], [e.message for e in VALIDATOR.iter_errors(spec)], text


def _cases() -> list[tuple[str, Key]]:
    return [(form, key) for key in KEYS for form in key.where]


@pytest.mark.parametrize("form, key", _cases(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_a_declared_key_is_accepted_by_parser_and_schema(tmp_path, form, key):
    spec, _ = _spec_with(form, key.name, key.example)
    errors, schema_errors, text = _check(tmp_path, spec)
    assert errors == [], f"the parser refuses {key.name} in {form}:\n{text}"
    assert schema_errors == [], f"the schema refuses {key.name} in {form}:\n{text}"


@pytest.mark.parametrize("form, key", _cases(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_an_unknown_key_beside_it_is_refused_by_both(tmp_path, form, key):
    spec, mapping = _spec_with(form, key.name, key.example)
    mapping[UNKNOWN] = 1
    errors, schema_errors, text = _check(tmp_path, spec)
    line = next(number for number, written in enumerate(text.splitlines(), 1)
                if written.strip().startswith(f"{UNKNOWN}:"))
    assert any(d.location.line == line for d in errors), f"the parser accepts {UNKNOWN} in {form}:\n{text}"
    assert schema_errors, f"the schema accepts {UNKNOWN} in {form}:\n{text}"


def _misplaced() -> list[tuple[str, Key]]:
    """Every form with each key that it does not allow (one declaration per name)."""
    by_name = {key.name: key for key in KEYS}
    return [(form, key) for form in FORMS for key in by_name.values()
            if key.name not in {allowed.name for allowed in keys_in(form)}]


@pytest.mark.parametrize("form, key", _misplaced(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_a_key_in_a_form_that_does_not_allow_it_is_refused_by_both(tmp_path, form, key):
    spec, _ = _spec_with(form, key.name, key.example)
    errors, schema_errors, text = _check(tmp_path, spec)
    assert errors, f"the parser accepts {key.name} in {form}:\n{text}"
    assert schema_errors, f"the schema accepts {key.name} in {form}:\n{text}"


def test_every_form_is_tested():
    # _spec_with must know every form, or the cases above skip a place's keys.
    assert sorted({form for form, _ in _cases()}) == sorted(FORMS)
    assert len(_misplaced()) > len(FORMS)


def test_hints_list_the_keys_in_their_pinned_order():
    # The invalid-spec fixtures pin these hints; a reordered declaration would change them all.
    assert key_names("spec") == ("name", "description", "inputs", "layers", "models", "blocks", "edges", "outputs",
                                 "optimizer", "loss", "loss_weights", "metrics", "training", "search",
                                 "objective")
    assert key_names("sub-model") == ("description", "inputs", "layers", "models", "blocks", "edges", "outputs",
                                      "sequential", "include", "weights", "trainable")
    assert key_names("edge") == ("in", "call", "block", "with", "layer", "repeat", "outputs", "adapt")


def test_required_keys_are_allowed_where_required():
    for key in KEYS:
        assert set(key.required) <= set(key.where), key.name
        assert set(key.narrowed) <= set(key.where), key.name
        assert set(key.where) <= set(FORMS), key.name


# ------------------------------------------------------------------- docs
DOCS = ROOT / "docs" / "spec.md"


def test_docs_tables_are_generated_from_the_declarations():
    text = DOCS.read_text(encoding="utf-8")
    assert render_docs(text) == text, "docs/spec.md's key tables are stale: run python -m kspec.spec.keys --write-docs"


def test_docs_have_a_table_for_every_place():
    text = DOCS.read_text(encoding="utf-8")
    for place in PLACES:
        assert f"<!-- keys:{place} -->\n\n{table(place)}\n<!-- /keys -->" in text, place


def test_a_table_lists_every_key_of_its_place():
    for place in PLACES:
        rows = table(place).splitlines()[2:]
        assert [row.split("`")[1] for row in rows] == [key.name for key in keys_in(*PLACES[place])]


def test_render_docs_rewrites_a_stale_table_and_refuses_an_unknown_place():
    stale = "intro\n<!-- keys:input -->\n| old |\n<!-- /keys -->\nend\n"
    assert render_docs(stale) == f"intro\n<!-- keys:input -->\n\n{table('input')}\n<!-- /keys -->\nend\n"
    with pytest.raises(ValueError, match="unknown place 'inputs'"):
        render_docs("<!-- keys:inputs -->\n<!-- /keys -->\n")


def test_write_docs_rewrites_a_stale_table(tmp_path, monkeypatch):
    copied = tmp_path / "spec.md"
    stale = DOCS.read_text(encoding="utf-8").replace("| `dtype` |", "| `dtyp` |")
    assert stale != DOCS.read_text(encoding="utf-8")
    copied.write_text(stale, encoding="utf-8")
    monkeypatch.setattr(keys_module, "DOCS", copied)
    keys_module.main(["--write-docs"])
    assert copied.read_text(encoding="utf-8") == DOCS.read_text(encoding="utf-8")


def test_keys_import_nothing_heavy():
    code = ("import sys, kspec.spec.keys\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch', 'jsonschema') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name, valid", [("mobilenetv2_1.00_224", True), ("resnet 50", True),
                                         ("a/b", False), ("two\nlines", False)])
def test_the_parser_and_the_schema_agree_on_model_names(tmp_path, monkeypatch, name, valid):
    # A model's name is freer than a layer's (Keras's applications use dots), in both places.
    spec = {"name": name, **_base()}
    monkeypatch.chdir(tmp_path)
    Path("named.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    _, diagnostics = parse("named.yaml")
    assert (not [d for d in diagnostics if d.is_error]) is valid
    assert VALIDATOR.is_valid(spec) is valid


def test_every_compile_key_declared_is_one_the_parser_keeps():
    # A compile key declared in keys.py but missing from CompileDef would pass the unknown-key check
    # and then be dropped by parse_compile without a word.
    from kspec.spec.keys import top_only_keys
    from kspec.spec.settings import COMPILE_KEYS

    compile_keys = {key.name for key in top_only_keys() if key.top_only.startswith("move compile settings")}
    assert compile_keys == set(COMPILE_KEYS)
