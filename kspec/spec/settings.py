"""The top-level model's compile settings and 'training' -> CompileDef, TrainingDef.

What the compile settings mean (per-output forms, Keras classes) is checked in compile_settings.py.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from .fit_settings import parse_fit_settings
from .keys import MAX_COUNT, key_names
from .load import YMap, YNode, YScalar, to_python, type_name
from .model import CompileDef, Setting, TrainingDef

if TYPE_CHECKING:
    from .parse import Parser

TRAINING_KEYS = key_names("training")  # declared in keys.py
COMPILE_KEYS = tuple(setting.name for setting in fields(CompileDef))


def parse_compile(tree: YMap) -> CompileDef | None:
    settings = {key: Setting(to_python(tree.get(key)), tree.get(key))
                for key in COMPILE_KEYS if tree.get(key) is not None}
    return CompileDef(**settings) if settings else None


def parse_training(parser: Parser, node: YNode | None) -> TrainingDef:
    if node is None:
        return TrainingDef()
    mapping = parser.expect_map(node, "'training'", "e.g. 'training: {epochs: 10, batch_size: 32}'")
    if mapping is None:
        return TrainingDef()
    parser.unknown_keys(mapping, TRAINING_KEYS, "'training'")
    values: dict[str, Any] = {}
    for key in ("epochs", "batch_size"):
        item = mapping.get(key)
        if item is None:
            continue
        value = item.value if isinstance(item, YScalar) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            parser.error(item.loc, f"'training.{key}' must be a positive integer, got {type_name(item)}")
        elif value > MAX_COUNT:  # TensorFlow counts batches and epochs in 32-bit integers
            parser.error(item.loc, f"'training.{key}' is {value:,}; it may be at most {MAX_COUNT:,}")
        else:
            values[key] = value
    item = mapping.get("validation_split")
    if item is not None:
        value = item.value if isinstance(item, YScalar) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            parser.error(item.loc, f"'training.validation_split' must be a number in [0, 1), got {type_name(item)}")
        else:
            values["validation_split"] = float(value)
    values.update(parse_fit_settings(parser, mapping))
    return TrainingDef(**values, locs={key: node.loc for key, _, node in mapping.items()})
