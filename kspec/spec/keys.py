"""Every key a spec may hold, declared once: where it goes, what it takes, what it means.

From these declarations come:

- the parser's allowed-key checks and their "allowed keys: ..." hints (parse.py);
- the structural part of the JSON Schema (schema.py; layer classes and their
  arguments come from the catalogue instead);
- the key tables of docs/spec.md, between `<!-- keys:PLACE -->` and
  `<!-- /keys -->` (`python -m kspec.spec.keys --write-docs` rewrites them).

What a key means (its checks beyond its type, what it builds) stays in the
parse function of its mapping (parse.py and the modules beside it: inputs.py,
edges.py, layer_defs.py, submodels.py, settings.py): adding a key is one
declaration here plus its semantics there. KEYS is in hint order: the pinned messages of
tests/specs/invalid list the allowed keys in this order.

This module is on `kspec validate`'s path: it imports nothing heavy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A model's own name may be any one line without '/' (Keras's applications
# have names such as mobilenetv2_1.00_224); it never becomes a Python name.
MODEL_NAME_PATTERN = re.compile(r"[^/\x00-\x1f]+")


def snake_case(name: str) -> str:
    """Keras's layer-name style, which default names follow: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "uint16", "uint32", "uint64", "bool", "string")
MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")  # Keras's mixed-precision dtype policies
# The Keras callbacks a spec may name (spec/fit_settings.py says why the others are refused).
ALLOWED_CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN")
MAX_COUNT = 2**31 - 1  # the largest batch size or epoch count (the command line's limit too)
# Larger repeats are refused: Keras cannot build such a deep chain anyway.
MAX_REPEAT = 1000
# The blocks a spec calls expand to at most this many YAML values in all (as
# many as a whole spec file may hold, see load.MAX_NODES): a block of many
# layers repeated 1,000 times, by a block repeated 1,000 times, is refused.
MAX_BLOCK_VALUES = 200_000

# Forms a mapping in a spec takes. The JSON Schema checks each form apart; the
# parser checks a place (PLACES) as a whole and leaves the forms to its methods.
SPEC = "spec"  # the top level of a spec file
FUNCTIONAL, SEQUENTIAL, INCLUDED = "functional", "sequential", "included"  # sub-models
INPUT = "input"
DECLARED, INLINE = "declared", "inline"  # edges: `layer: NAME`, or an inline layer class
CALL = "call"  # an edge that calls a block: `block: NAME`
BLOCK = "block"  # a block declared under `blocks:`
LAYER = "layer"  # a layer declared under `layers:`, beside its class
TRAINING = "training"

# Each place, as the parser and docs/spec.md name it, with its forms.
PLACES: dict[str, tuple[str, ...]] = {
    "spec": (SPEC,),
    "sub-model": (FUNCTIONAL, SEQUENTIAL, INCLUDED),
    "input": (INPUT,),
    "edge": (DECLARED, INLINE, CALL),
    "block": (BLOCK,),
    "layer": (LAYER,),
    "training": (TRAINING,),
}


def ref(name: str) -> dict[str, str]:
    """A JSON Schema reference to one of the schema's $defs."""
    return {"$ref": f"#/$defs/{name}"}


def names_to(value: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a mapping from spec names to `value`."""
    return {"type": "object", "propertyNames": ref("name"), "additionalProperties": value}


# Value types that keys share, referred to by ref(); schema.py puts them in its $defs.
VALUE_TYPES: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"},
    "model_name": {"type": "string", "pattern": f"^{MODEL_NAME_PATTERN.pattern}$"},
    "shape": {"type": "array", "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}},
    "call_inputs": {"anyOf": [
        ref("name"), {"type": "array", "items": ref("name")},
        {"type": "object", "additionalProperties": {"anyOf": [ref("name"), {"type": "array", "items": ref("name")}]}},
    ]},
    # A distribution of `search:` (kspec.spec.search reads it).
    "distribution": {"type": "object", "oneOf": [
        {"required": ["int"], "properties": {"int": {"type": "array", "minItems": 2, "maxItems": 2,
                                                     "items": {"type": "integer"}},
                                             "log": {"type": "boolean"}, "step": {"type": "integer", "minimum": 1}},
         "additionalProperties": False},
        {"required": ["float"], "properties": {"float": {"type": "array", "minItems": 2, "maxItems": 2,
                                                         "items": {"type": "number"}},
                                               "log": {"type": "boolean"}, "step": {"type": "number",
                                                                                    "exclusiveMinimum": 0}},
         "additionalProperties": False},
        {"required": ["choice"], "properties": {"choice": {"type": "array", "minItems": 1}},
         "additionalProperties": False},
    ]},
}
PATH = {"type": "string", "minLength": 1}
NAMES = {"type": "array", "minItems": 1, "items": ref("name")}
# `weights: {file: ..., model: ...}`: the weights of the sub-model named `model` inside a trained file
# (submodels.parse_weights takes its allowed keys from here).
WEIGHTS_FROM = {"type": "object", "properties": {"file": PATH, "model": ref("name")},
                "required": ["file", "model"], "additionalProperties": False}
BOOLEAN = {"type": "boolean"}
COUNT = {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}
_NUMBER = {"type": "number"}


@dataclass(frozen=True)
class Key:
    """One key of a spec mapping.

    Args:
        name: the key as written in a spec.
        where: the forms it may appear in (SPEC, FUNCTIONAL, ..., TRAINING).
        schema: the JSON Schema of its value; `ref(...)` names a shared type or
            one of the structures schema.py builds (input, edge, sub_model,
            training, and the catalogue's layer, layer_without_name and declared_layer).
        value: its value in words, for the docs.
        doc: what it is for, one line, for the docs.
        example: a valid value, used by the tests in the forms of `where`.
        required: the forms that must hold it.
        default: what leaving it out means, for the docs ("" when nothing).
        narrowed: further schema constraints in one form, by form.
        top_only: for a key only the top level may hold, the hint given when
            a sub-model holds it (such keys get their own message, not
            "unknown key").
    """

    name: str
    where: tuple[str, ...]
    schema: dict[str, Any]
    value: str
    doc: str
    example: Any
    required: tuple[str, ...] = ()
    default: str = ""
    narrowed: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_only: str = ""


_SUB_MODEL = PLACES["sub-model"]
_EDGE = PLACES["edge"]
_COMPILE = "move compile settings to the top of the spec"

KEYS: tuple[Key, ...] = (
    # The top level and sub-models.
    Key("name", (SPEC,), ref("model_name"),
        value="a name", doc="the model's name", example="mlp", default="the file's name"),
    Key("description", (SPEC, *_SUB_MODEL, BLOCK), {"type": "string"},
        value="text", doc="a free-text note; the compiler ignores it", example="a note"),
    Key("inputs", (SPEC, FUNCTIONAL, SEQUENTIAL), names_to(ref("input")),
        value="mapping: name to input", doc="the model's inputs, in order (a sequential sub-model has at most one)",
        example={"x": {"shape": [4]}}, required=(SPEC, FUNCTIONAL), narrowed={SEQUENTIAL: {"maxProperties": 1}}),
    Key("layers", (SPEC, FUNCTIONAL), {"anyOf": [{"type": "null"}, names_to(ref("declared_layer"))]},
        value="mapping: name to layer", doc="named layers that edges call (shared when called twice)",
        example={"dense": {"Dense": {"units": 2}}}),
    Key("models", (SPEC, FUNCTIONAL), {"anyOf": [{"type": "null"}, names_to(ref("sub_model"))]},
        value="mapping: name to sub-model", doc="sub-models: functional, sequential, or included from a file",
        example={"encoder": {"sequential": ["Flatten"]}}),
    Key("blocks", (SPEC, FUNCTIONAL), {"anyOf": [{"type": "null"}, names_to(ref("block"))]},
        value="mapping: name to block", doc="parameterised sub-graphs that edges call with `block:`; each call "
        "makes new layers", example={"pair": {"inputs": "a", "edges": {"d": {"Dense": {"units": 2}}},
                                              "outputs": "d"}}),
    Key("edges", (SPEC, FUNCTIONAL), names_to(ref("edge")),
        value="mapping: tensor name to call", doc="the calls, in file order; each one defines a tensor",
        example={"y": {"Dense": {"units": 2}, "in": "x"}}, required=(SPEC, FUNCTIONAL)),
    Key("outputs", (SPEC, FUNCTIONAL), {"anyOf": [ref("name"), NAMES]},
        value="tensor name, or list of them", doc="the model's outputs, in order",
        example=["y"], required=(SPEC, FUNCTIONAL)),
    Key("sequential", (SEQUENTIAL,), {"type": "array", "minItems": 1, "items": ref("layer")},
        value="list of layers", doc="the layers, each called on the previous one's output",
        example=["Flatten"], required=(SEQUENTIAL,)),
    Key("include", (INCLUDED,), PATH,
        value="path of a spec file", doc="the spec file whose model this is",
        example="encoder.yaml", required=(INCLUDED,)),
    Key("weights", _SUB_MODEL, {"anyOf": [PATH, WEIGHTS_FROM]},
        value="path of a `.keras` file, or `{file: PATH, model: NAME}`",
        doc="the file to load the sub-model's weights from; `model` takes them from the sub-model of that "
            "name inside the file", example="encoder.keras"),
    Key("trainable", _SUB_MODEL, BOOLEAN,
        value="true or false", doc="false freezes the sub-model", example=False, default="true"),
    # Compile settings and training defaults: the top level only.
    Key("optimizer", (SPEC,), {"anyOf": [{"type": "string"},
                                         {"type": "object", "minProperties": 1, "maxProperties": 1}]},
        value="name, or `{Class: {arguments}}`", doc="`model.compile`'s optimizer", example="adam",
        top_only=_COMPILE),
    Key("loss", (SPEC,), {"type": ["string", "array", "object"]},
        value="name, class, list or mapping by output", doc="`model.compile`'s loss", example="mse",
        top_only=_COMPILE),
    Key("loss_weights", (SPEC,), {"anyOf": [_NUMBER, {"type": "array", "items": _NUMBER},
                                            {"type": "object", "additionalProperties": _NUMBER}]},
        value="number, list or mapping by output", doc="`model.compile`'s loss weights", example=[1.0],
        top_only=_COMPILE),
    Key("metrics", (SPEC,), {"type": ["array", "object"]},
        value="list, or mapping by output", doc="`model.compile`'s metrics", example=["mae"],
        top_only=_COMPILE),
    Key("training", (SPEC,), ref("training"),
        value="mapping of the keys under [training](#training)", doc="defaults for `kspec train`",
        example={"epochs": 2}, top_only="move training defaults to the top of the spec"),
    Key("search", (SPEC,), {"type": "object", "minProperties": 1, "additionalProperties": ref("distribution")},
        value="mapping: `--set` path to distribution", doc="the values `kspec tune` searches (see [Search](#search)); "
        "other commands use the spec's own", example={"edges.y.units": {"int": [2, 8], "step": 2}},
        top_only="move the search space to the top of the spec"),
    Key("objective", (SPEC,), {"type": "object", "properties": {"metric": {"type": "string"},
                                                                "direction": {"enum": ["minimize", "maximize"]}},
                               "required": ["metric"], "additionalProperties": False},
        value="`{metric: NAME, direction: minimize or maximize}`", doc="what `kspec tune` optimises",
        example={"metric": "val_loss", "direction": "minimize"}, default="val_loss, minimize",
        top_only="move the objective to the top of the spec"),
    # An input.
    Key("shape", (INPUT,), ref("shape"),
        value="list of dimensions", doc="the shape without the batch dimension; `null` is a dimension of any size",
        example=[4], required=(INPUT,)),
    Key("dtype", (INPUT,), {"enum": list(DTYPES)},
        value="one of " + ", ".join(DTYPES), doc="the input's dtype", example="int32", default="float32"),
    Key("batch_size", (INPUT,), {"type": "integer", "minimum": 1},
        value="positive integer", doc="a fixed batch size, as in `keras.Input`", example=8, default="any"),
    Key("sparse", (INPUT,), BOOLEAN,
        value="true or false", doc="a sparse input, as in `keras.Input`", example=False, default="false"),
    Key("ragged", (INPUT,), BOOLEAN,
        value="true or false", doc="a ragged input, as in `keras.Input`", example=False, default="false"),
    # Where a table's columns feed an input (kspec.tables); read from data files, never given to keras.Input.
    Key("columns", (INPUT,), {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                              "uniqueItems": True},
        value="list of column names", doc="the CSV or Parquet columns that fill the input, in order (as many "
        "as its shape holds)", example=["radius", "texture", "perimeter", "area"], default="the column named after the input"),
    Key("fill", (INPUT,), {"type": ["number", "string"]},
        value="number or string", doc="the value put in the input's missing table cells (CSV or Parquet)",
        example=0, default="missing cells are refused"),
    # An edge, besides its inline layer class (which the schema takes from the catalogue).
    Key("in", _EDGE, ref("call_inputs"),
        value="tensor name, list, or mapping by keyword", doc="what the layer is called on", example="x",
        default="the tensor above"),
    Key("call", (DECLARED, INLINE), {"type": "object", "additionalProperties": {"type": ["boolean", "number", "string", "null"]}},
        value="mapping: keyword to true, false, number, string or null",
        doc="the call's other arguments, by the keywords of the layer's `call` (e.g. `training: true`)",
        example={"training": True}),
    Key("block", (CALL,), ref("name"),
        value="block name", doc="a block declared under `blocks` to call: its layers are made anew",
        example="b", required=(CALL,)),
    Key("with", (CALL,), {"anyOf": [{"type": "object"}, {"type": "array", "minItems": 1, "items": {"type": "object"}}]},
        value="mapping: parameter to value, or a list of them", doc="the block's parameters; a list gives "
        "each repetition its own", example={"units": 3}, default="the block's defaults"),
    Key("layer", (DECLARED,), ref("name"),
        value="layer or sub-model name",
        doc="a layer declared under `layers`, or a sub-model, to call instead of an inline class",
        example="dense", required=(DECLARED,)),
    Key("repeat", (INLINE, CALL), {"type": "integer", "minimum": 1, "maximum": MAX_REPEAT},
        value=f"integer from 1 to {MAX_REPEAT:,}", doc="chain this many copies of the inline layer, or calls "
        "of the block", example=2, default="1 (a block: the length of a `with` list)"),
    Key("outputs", _EDGE, NAMES,
        value="list of tensor names", doc="a name for each output of a multi-output layer", example=["y_out"]),
    # An inline edge's layer or a declared layer, beside its class.
    Key("adapt", (INLINE, LAYER), BOOLEAN,
        value="true or false", doc="fit the preprocessing layer's state (`adapt`) to the training rows before "
                                   "`kspec train` trains", example=True, default="false"),
    # A block, under `blocks:`.
    Key("params", (BLOCK,), {"type": "array", "uniqueItems": True, "items": ref("name")},
        value="list of names", doc="the parameters that `$NAME` stands for in the block's edges",
        example=["units"], default="none"),
    Key("defaults", (BLOCK,), {"type": "object", "propertyNames": ref("name")},
        value="mapping: parameter to value", doc="values of parameters a call may leave out",
        example={"units": 2}, default="none"),
    Key("inputs", (BLOCK,), {"anyOf": [ref("name"), NAMES]},
        value="tensor name, or list of them", doc="the block's inputs, in the order a call's `in` gives them",
        example=["a"], required=(BLOCK,)),
    Key("edges", (BLOCK,), names_to(ref("edge")),
        value="mapping: tensor name to call", doc="the block's calls, as a model's edges",
        example={"d": {"Dense": {"units": 2}, "in": "a"}}, required=(BLOCK,)),
    Key("outputs", (BLOCK,), {"anyOf": [ref("name"), NAMES]},
        value="tensor name, or list of them", doc="the block's outputs (one, for a repeated call)",
        example="d", required=(BLOCK,)),
    # training:
    Key("epochs", (TRAINING,), COUNT,
        value=f"integer from 1 to {MAX_COUNT:,}", doc="epochs to train", example=2, default="1"),
    Key("batch_size", (TRAINING,), COUNT,
        value=f"integer from 1 to {MAX_COUNT:,}", doc="rows in a batch", example=16, default="32"),
    Key("validation_split", (TRAINING,), {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        value="number in [0, 1)", doc="the share of rows, taken from the end, held out to validate on",
        example=0.2, default="none"),
    Key("callbacks", (TRAINING,), {"type": "array", "items": {"anyOf": [
        {"enum": list(ALLOWED_CALLBACKS)},
        {"type": "object", "propertyNames": {"enum": list(ALLOWED_CALLBACKS)}, "minProperties": 1,
         "maxProperties": 1, "additionalProperties": {"type": ["object", "null"]}}]}},
        value="list of `{Class: {arguments}}`",
        doc="Keras callbacks: EarlyStopping, ReduceLROnPlateau, TerminateOnNaN",
        example=[{"TerminateOnNaN": {}}], default="none"),
    Key("class_weight", (TRAINING,), {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"},
                                      "additionalProperties": {"type": "number", "minimum": 0}},
        value="mapping: class id to weight", doc="`fit`'s class_weight (a model with one classifier output)",
        example={0: 1.0, 1: 5.0}, default="none"),
    Key("mixed_precision", (TRAINING,), {"enum": list(MIXED_POLICIES)},
        value="one of " + ", ".join(MIXED_POLICIES),
        doc="train under this Keras dtype policy; output layers stay float32", example="mixed_float16",
        default="none (float32)"),
)


def keys_in(*forms: str) -> list[Key]:
    """The keys allowed in any of `forms`, in declaration order."""
    return [key for key in KEYS if any(form in key.where for form in forms)]


def key_names(place: str) -> tuple[str, ...]:
    """The names of the keys a place (a key of PLACES) allows, in hint order."""
    return tuple(dict.fromkeys(key.name for key in keys_in(*PLACES[place])))


def top_only_keys() -> list[Key]:
    """Keys of the top level that a sub-model must not hold."""
    return [key for key in KEYS if key.top_only]


# ------------------------------------------------------------------- docs
DOCS = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
_TABLE = re.compile(r"(<!-- keys:([\w-]+) -->\n)(.*?)(<!-- /keys -->)", re.DOTALL)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _default(key: Key, forms: tuple[str, ...]) -> str:
    required = [form for form in forms if form in key.required]
    if not required:
        return key.default
    allowed = [form for form in forms if form in key.where]
    return "required" if required == allowed else f"required ({', '.join(required)})"


def table(place: str) -> str:
    """The Markdown table of a place's keys, as docs/spec.md holds it."""
    forms = PLACES[place]
    several = len(forms) > 1
    rows = ["| Key | " + ("In | " if several else "") + "Value | Default | Meaning |",
            "| --- | " + ("--- | " if several else "") + "--- | --- | --- |"]
    for key in keys_in(*forms):
        where = [form for form in forms if form in key.where]
        cells = [f"`{key.name}`"]
        if several:
            cells.append("all" if len(where) == len(forms) else ", ".join(where))
        cells += [key.value, _default(key, forms), key.doc]
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def render_docs(text: str) -> str:
    """`text` (docs/spec.md) with every key table rewritten from the declarations."""
    def rewrite(match: re.Match[str]) -> str:
        place = match.group(2)
        if place not in PLACES:
            raise ValueError(f"docs name an unknown place '{place}'; the places are {', '.join(PLACES)}")
        return f"{match.group(1)}\n{table(place)}\n{match.group(4)}"

    return _TABLE.sub(rewrite, text)


def main(argv: list[str] | None = None) -> None:
    import argparse  # here, not above: validate imports this module and never runs main

    parser = argparse.ArgumentParser(prog="python -m kspec.spec.keys",
                                     description="Print the key tables of the spec language, or rewrite docs/spec.md's.")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite the key tables of {DOCS.name}")
    args = parser.parse_args(argv)
    if args.write_docs:
        text = DOCS.read_text(encoding="utf-8")
        rendered = render_docs(text)
        if rendered != text:
            DOCS.write_text(rendered, encoding="utf-8")
        print(f"{DOCS}: {'rewritten' if rendered != text else 'up to date'}")
    else:
        for place in PLACES:
            print(f"{place}:\n{table(place)}")


if __name__ == "__main__":
    main()
