"""A JSON Schema (draft 2020-12) of the spec language, for editors.

Editors that speak the YAML language server complete and check spec keys,
layer classes and their arguments against it. Its structure (which keys go
where, and their values) is generated from the key declarations in
spec/keys.py that the parser checks against too; layer classes and their
arguments come from the same catalogue of the installed Keras that
`kspec validate` uses. A test holds
it and the checker to each other on every shipped spec and every invalid-spec
fixture: whatever the schema refuses, kspec refuses, and every structural
error kspec finds, the schema finds too.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from . import catalogue as catalogue_module
from .spec.keys import BLOCK, CALL, DECLARED, INLINE, INPUT, LAYER, PLACES, SPEC, TRAINING, VALUE_TYPES, keys_in, ref


def _object(form: str) -> dict[str, Any]:
    """A mapping in one form (SPEC, INPUT, ...): its declared keys and no others."""
    keys = keys_in(form)
    required = [key.name for key in keys if form in key.required]
    return {
        "type": "object",
        **({"required": required} if required else {}),
        # Copies: a caller may change the schema it gets, never the declarations.
        "properties": {key.name: deepcopy({**key.schema, **key.narrowed.get(form, {})}) for key in keys},
        "additionalProperties": False,
    }


def _layer_classes(catalogue: dict[str, Any]) -> list[str]:
    return sorted(name for name in catalogue["layers"] if name not in catalogue_module.REFUSED_LAYERS)


def _arguments(name: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"Arguments of keras.layers.{name}",
        "properties": {arg: {} for arg in info["args"] + info["deprecated"]},
        "required": info["required"],
        "additionalProperties": False,
    }


def _edge_branches(classes: list[str]) -> list[dict[str, Any]]:
    """An edge calls a declared layer (`layer:`), a block (`block:`) or exactly one inline class."""
    # A repeated layer has one output and is called on one tensor, not on keywords.
    repeated = {
        "if": {"required": ["repeat"], "properties": {"repeat": {"minimum": 2}}},
        "then": {"not": {"anyOf": [{"required": ["outputs"]},
                                   {"required": ["in"], "properties": {"in": {"type": "object"}}}]}},
    }
    inline = _object(INLINE)
    branches = [_object(DECLARED), _object(CALL)]
    for name in classes:
        branches.append({
            **inline,
            "required": [name, *inline.get("required", [])],
            "properties": {name: {"anyOf": [{"type": "null"}, ref(f"args_without_name/{name}")]},
                           **inline["properties"]},
            **repeated,
        })
    return branches


def _declared_layer(classes: list[str]) -> dict[str, Any]:
    """A layer under `layers:`: its class alone, or exactly one class beside the keys of LAYER (adapt)."""
    keys = _object(LAYER)
    return {"anyOf": [ref("layer_without_name"), {
        **keys,
        "properties": {**{name: {"anyOf": [{"type": "null"}, ref(f"args_without_name/{name}")]} for name in classes},
                       **keys["properties"]},
        "oneOf": [{"required": [name]} for name in classes],
    }]}


def schema() -> dict[str, Any]:
    """The schema, generated from the spec's keys and the catalogue of the installed Keras."""
    catalogue = catalogue_module.load()
    classes = _layer_classes(catalogue)
    arguments = {name: _arguments(name, catalogue["layers"][name]) for name in classes}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kspec model spec",
        "description": "A Keras functional model declared in YAML; see docs/spec.md.",
        **_object(SPEC),
        "$defs": {
            **deepcopy(VALUE_TYPES),
            "input": {"anyOf": [ref("shape"), _object(INPUT)]},
            "training": _object(TRAINING),
            "layer": {"anyOf": [
                {"enum": classes},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": {name: {"anyOf": [{"type": "null"}, ref(f"args/{name}")]} for name in classes},
                 "additionalProperties": False},
            ]},
            # Declared and inline layers are named by their key, not by a `name` argument.
            "layer_without_name": {"anyOf": [
                {"enum": classes},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": {name: {"anyOf": [{"type": "null"}, ref(f"args_without_name/{name}")]}
                                for name in classes},
                 "additionalProperties": False},
            ]},
            "declared_layer": _declared_layer(classes),
            "args": arguments,
            "args_without_name": {name: {"allOf": [ref(f"args/{name}")], "not": {"required": ["name"]}}
                                  for name in classes},
            "edge": {"oneOf": _edge_branches(classes)},
            "block": _object(BLOCK),
            "sub_model": {"oneOf": [_object(form) for form in PLACES["sub-model"]]},
        },
    }
