"""A JSON Schema (draft 2020-12) of the spec language, for editors.

Editors that speak the YAML language server complete and check spec keys,
layer classes and their arguments against it. It is generated from the same
catalogue of the installed Keras that `kspec validate` uses, and a test holds
it and the checker to each other on every shipped spec and every invalid-spec
fixture: whatever the schema refuses, kspec refuses, and every structural
error kspec finds, the schema finds too.
"""

from __future__ import annotations

from typing import Any

from . import catalogue as catalogue_module
from .spec.parse import DTYPES, MAX_COUNT, MAX_REPEAT, NAME_PATTERN

NAME = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"}
PATH = {"type": "string", "minLength": 1}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _names_to(value: dict[str, Any]) -> dict[str, Any]:
    """A mapping from spec names to `value`."""
    return {"type": "object", "propertyNames": _ref("name"), "additionalProperties": value}


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
    """An edge calls a declared layer (`layer:`) or exactly one inline class."""
    common = {"in": _ref("call_inputs"), "outputs": {"type": "array", "minItems": 1, "items": _ref("name")}}
    repeat = {"type": "integer", "minimum": 1, "maximum": MAX_REPEAT}
    # A repeated layer has one output and is called on one tensor, not on keywords.
    repeated = {
        "if": {"required": ["repeat"], "properties": {"repeat": {"minimum": 2}}},
        "then": {"not": {"anyOf": [{"required": ["outputs"]},
                                   {"required": ["in"], "properties": {"in": {"type": "object"}}}]}},
    }
    branches: list[dict[str, Any]] = [{
        "type": "object", "required": ["layer"],
        "properties": {"layer": _ref("name"), **common}, "additionalProperties": False,
    }]
    for name in classes:
        branches.append({
            "type": "object", "required": [name],
            "properties": {name: {"anyOf": [{"type": "null"}, _ref(f"args_without_name/{name}")]},
                           "repeat": repeat, **common},
            "additionalProperties": False, **repeated,
        })
    return branches


def schema() -> dict[str, Any]:
    """The schema, generated from the catalogue of the installed Keras."""
    catalogue = catalogue_module.load()
    classes = _layer_classes(catalogue)
    arguments = {name: _arguments(name, catalogue["layers"][name]) for name in classes}
    model_keys = {
        "description": {"type": "string"},
        "inputs": _names_to(_ref("input")),
        "layers": {"anyOf": [{"type": "null"}, _names_to(_ref("layer_without_name"))]},
        "models": {"anyOf": [{"type": "null"}, _names_to(_ref("sub_model"))]},
        "edges": _names_to(_ref("edge")),
        "outputs": {"anyOf": [_ref("name"), {"type": "array", "minItems": 1, "items": _ref("name")}]},
    }
    sub_model_extra = {"weights": PATH, "trainable": {"type": "boolean"}}
    number = {"type": "number"}
    one_or_classes = {"anyOf": [{"type": "string"}, {"type": "object", "minProperties": 1, "maxProperties": 1}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kspec model spec",
        "description": "A Keras functional model declared in YAML; see docs/spec.md.",
        "type": "object",
        "required": ["inputs", "edges", "outputs"],
        "properties": {
            "name": _ref("name"),
            **model_keys,
            "optimizer": one_or_classes,
            "loss": {"type": ["string", "array", "object"]},
            "loss_weights": {"anyOf": [number, {"type": "array", "items": number},
                                       {"type": "object", "additionalProperties": number}]},
            "metrics": {"type": ["array", "object"]},
            "training": {
                "type": "object",
                "properties": {"epochs": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
                               "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
                               "validation_split": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
        "$defs": {
            "name": NAME,
            "shape": {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}},
            "input": {"anyOf": [_ref("shape"), {
                "type": "object", "required": ["shape"],
                "properties": {"shape": _ref("shape"), "dtype": {"enum": list(DTYPES)},
                               "batch_size": {"type": "integer", "minimum": 1},
                               "sparse": {"type": "boolean"}, "ragged": {"type": "boolean"}},
                "additionalProperties": False,
            }]},
            "call_inputs": {"anyOf": [
                _ref("name"), {"type": "array", "items": _ref("name")},
                {"type": "object", "additionalProperties": {"anyOf": [
                    _ref("name"), {"type": "array", "items": _ref("name")}]}},
            ]},
            "layer": {"anyOf": [
                {"enum": classes},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": {name: {"anyOf": [{"type": "null"}, _ref(f"args/{name}")]} for name in classes},
                 "additionalProperties": False},
            ]},
            # Declared and inline layers are named by their key, not by a `name` argument.
            "layer_without_name": {"anyOf": [
                {"enum": classes},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": {name: {"anyOf": [{"type": "null"}, _ref(f"args_without_name/{name}")]}
                                for name in classes},
                 "additionalProperties": False},
            ]},
            "args": arguments,
            "args_without_name": {name: {"allOf": [_ref(f"args/{name}")], "not": {"required": ["name"]}}
                                  for name in classes},
            "edge": {"oneOf": _edge_branches(classes)},
            "sub_model": {"oneOf": [
                {"type": "object", "required": ["include"],
                 "properties": {"include": PATH, "description": {"type": "string"}, **sub_model_extra},
                 "additionalProperties": False},
                {"type": "object", "required": ["sequential"],
                 "properties": {"sequential": {"type": "array", "minItems": 1, "items": _ref("layer")},
                                "inputs": {**_names_to(_ref("input")), "maxProperties": 1},
                                "description": {"type": "string"}, **sub_model_extra},
                 "additionalProperties": False},
                {"type": "object", "required": ["inputs", "edges", "outputs"],
                 "properties": {**model_keys, **sub_model_extra}, "additionalProperties": False},
            ]},
        },
    }

