"""Sub-models and sequential models: 'models', 'sequential', a sub-model's include, 'weights' and 'trainable'."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Location
from .inputs import parse_inputs
from .keys import WEIGHTS_FROM, key_names, snake_case, top_only_keys
from .layer_defs import parse_layer_def
from .load import YMap, YNode, YScalar, YSeq, type_name
from .model import LayerDef, ModelDef
from .paths import display_path

if TYPE_CHECKING:
    from .parse import Parser

SUBMODEL_KEYS = key_names("sub-model")  # declared in keys.py
TOP_ONLY = top_only_keys()  # e.g. compile settings: a sub-model holding one gets their own hint


def parse_sequential(parser: Parser, tree: YMap, name: str, file: str) -> ModelDef:
    for key in ("edges", "outputs", "layers", "models", "blocks"):
        if key in tree.entries:
            parser.error(tree.key_loc(key), f"a sequential model has no '{key}'",
                         "list its layers under 'sequential:', or make it functional")
    inputs = parse_inputs(parser, tree.get("inputs"))
    if len(inputs) > 1:
        parser.error(inputs[1].loc, "a sequential model takes one input",
                     "make it a functional model to give it several")
    node = tree.get("sequential")
    sequence: list[tuple[str, LayerDef]] = []
    if not isinstance(node, YSeq) or not node.items:
        assert node is not None
        parser.error(node.loc, f"'sequential' must be a non-empty list of layers, got {type_name(node)}")
    else:
        counts: dict[str, int] = {}
        for item in node.items:
            layer = parse_layer_def(parser, item, "a sequential layer")
            if layer is None:
                continue
            layer_name = layer.args.get("name")
            if not isinstance(layer_name, str):
                # Keras's own naming, counted within this model: conv2d, conv2d_1, ...
                base = snake_case(layer.class_name)
                count = counts.get(base, 0)
                counts[base] = count + 1
                layer_name = base if count == 0 else f"{base}_{count}"
            sequence.append((layer_name, layer))
    return ModelDef(name=name, loc=tree.loc, file=file, kind="sequential", inputs=inputs,
                    sequence=tuple(sequence))


def parse_models(parser: Parser, node: YNode | None, file: str) -> dict[str, ModelDef]:
    models: dict[str, ModelDef] = {}
    if node is None:
        return models
    if isinstance(node, YScalar) and node.value is None:
        return models  # an empty section, e.g. only comments below the key
    mapping = parser.expect_map(node, "'models'", "map each sub-model's name to its definition")
    if mapping is None:
        return models
    for name, key_node, body in mapping.items():
        model = None
        if parser.check_name(name, key_node.loc, "model"):
            body_map = parser.expect_map(body, f"sub-model '{name}'",
                                         "give it 'include:', 'sequential:' or 'inputs/edges/outputs'")
            if body_map is not None:
                model = parse_submodel(parser, name, key_node.loc, body_map, file)
        # A sub-model that failed to parse still defines its name (its error is reported).
        models[name] = model or ModelDef(name=name, loc=key_node.loc, file=file, kind="broken")
    return models


def parse_submodel(parser: Parser, name: str, loc: Location, body: YMap, file: str) -> ModelDef | None:
    for key in TOP_ONLY:
        if key.name in body.entries:
            parser.error(body.key_loc(key.name),
                         f"'{key.name}' belongs to the top-level model, not sub-model '{name}'", key.top_only)
    parser.unknown_keys(body, SUBMODEL_KEYS, f"sub-model '{name}'", tuple(key.name for key in TOP_ONLY))
    include = body.get("include")
    if include is not None:
        for key in ("inputs", "edges", "outputs", "layers", "models", "blocks", "sequential"):
            if key in body.entries:
                parser.error(body.key_loc(key), f"sub-model '{name}' has both 'include' and '{key}'",
                             "an included model is defined in its own file")
        model = parser.parse_include(name, include, file)
    else:
        model = parser.parse_model(body, name, file, top=False)
    if model is None:
        return None
    weights, weights_loc, weights_model = parse_weights(parser, body.get("weights"), file)
    trainable_node = body.get("trainable")
    trainable = None
    if trainable_node is not None:
        if isinstance(trainable_node, YScalar) and isinstance(trainable_node.value, bool):
            trainable = trainable_node.value
        else:
            parser.error(trainable_node.loc, f"'trainable' must be true or false, got {type_name(trainable_node)}")
    return ModelDef(**{**model.__dict__, "name": name, "loc": loc, "weights": weights,
                       "weights_loc": weights_loc, "weights_model": weights_model,
                       "trainable": trainable, "compile": None})


def parse_weights(parser: Parser, node: YNode | None, file: str) -> tuple[str | None, Location | None, str | None]:
    """The weights file, where it is written, and the sub-model inside it to take them from (or None)."""
    if node is None:
        return None, None, None
    model = None
    if isinstance(node, YMap):  # {file: run/model.keras, model: encoder}
        parser.unknown_keys(node, tuple(WEIGHTS_FROM["properties"]), "'weights'")
        for key in WEIGHTS_FROM["required"]:
            if key not in node.entries:
                parser.error(node.loc, f"'weights' as a mapping needs '{key}'",
                             "write {file: PATH, model: NAME}: the trained .keras file and the name of "
                             "the sub-model inside it")
        model_node = node.get("model")
        if isinstance(model_node, YScalar) and isinstance(model_node.value, str):
            if parser.check_name(model_node.value, model_node.loc, "model"):
                model = model_node.value
        elif model_node is not None:
            parser.error(model_node.loc, f"'model' must be a sub-model's name, got {type_name(model_node)}")
        node = node.get("file")
        if node is None:
            return None, None, None
    if isinstance(node, YScalar) and isinstance(node.value, str) and not node.value.endswith(".keras"):
        parser.error(node.loc, f"weights file '{node.value}' is not a .keras file",
                     "save the trained model with model.save('NAME.keras')")
        return None, None, None
    path = parser.referenced_file(node, file, "weights", "give the path of a .keras file")
    return (display_path(path), node.loc, model) if path is not None else (None, None, None)
