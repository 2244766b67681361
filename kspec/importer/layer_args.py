"""Layer configs -> spec arguments: `{ClassName: {arguments}}` with Keras's defaults left out.

An argument is written only when Keras would not choose its value anyway:
found by constructing the class with fewer arguments and comparing configs.
Nested Keras objects (initializers, regularizers, constraints, wrapped
layers, dtype policies) become `{ClassName: {args}}` or the name Keras also
accepts; a value with no YAML form, or a class a spec cannot name, is refused.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .. import catalogue as catalogue_module
from ..build import keras_message
from ..spec.keys import snake_case
from .context import Context
from .values import MISSING, default_config, from_config_takes, jsonable, same, shown

__all__ = ["ArgumentWriter"]

_ACTIVATION_ARGS = ("activation", "recurrent_activation")


class ArgumentWriter:
    """Writes layers and config values in the spec's form; remembers the configs it built to compare."""

    def __init__(self, context: Context):
        self.keras = context.keras
        self.catalogue = context.catalogue
        self.refuse = context.refuse
        self.fresh_configs: dict[tuple[type, str], dict[str, Any]] = {}

    # ----------------------------------------------------------------- layers
    def layer_def(self, layer: Any, where: str, frozen: bool) -> dict[str, Any]:
        """`{ClassName: {arguments}}` of a layer, its defaults left out."""
        self.check_layer_class(layer, where)
        class_name = type(layer).__name__
        try:
            config = layer.get_config()
        except Exception as exc:  # e.g. a lambda's source that cannot be found
            raise self.refuse(f"layer '{where}' ({class_name}) cannot give its config: "
                              f"{keras_message(exc)}") from None
        wrapped = getattr(layer, "layer", None)
        by_name = isinstance(layer, self.keras.layers.Wrapper) and isinstance(wrapped, self.keras.Model)
        if by_name:  # TimeDistributed(vision_model): compared with a stand-in, written as the sub-model's name
            stand_in = self.keras.layers.Identity(name=wrapped.name)
            config = {**config, "layer": self.keras.saving.serialize_keras_object(stand_in)}
        args = self.explicit_args(type(layer), config, keep_name=False)
        if by_name:
            args["layer"] = wrapped.name
        if frozen and args.get("trainable") is False:
            del args["trainable"]  # the sub-model's `trainable: false` freezes it
        return {class_name: self.layer_args(class_name, args, where)}

    def check_layer_class(self, layer: Any, where: str) -> None:
        """Refuses a layer whose class is not one of keras.layers that a spec can name."""
        cls = type(layer)
        if isinstance(layer, self.keras.layers.Lambda):
            raise self.refuse(f"layer '{where}' is a Lambda layer: it runs Python code, which a spec cannot carry",
                              "rewrite it with layers from keras.layers")
        if getattr(self.keras.layers, cls.__name__, None) is not cls:
            raise self.refuse(f"layer '{where}' is of class '{cls.__module__}.{cls.__qualname__}', which is not "
                              "a class of keras.layers; a spec names keras.layers classes only",
                              "rewrite it with layers from keras.layers")
        refused = catalogue_module.REFUSED_LAYERS.get(cls.__name__)
        if refused or cls.__name__ not in self.catalogue["layers"]:
            raise self.refuse(f"layer '{where}' is a {cls.__name__}, which a spec cannot name",
                              refused or "regenerate kspec's catalogue for this Keras (python -m kspec.catalogue)")

    def layer_args(self, class_name: str, args: dict[str, Any], where: str) -> dict[str, Any]:
        """Arguments in the spec's form, each one a constructor argument kspec accepts."""
        info = self.catalogue["layers"][class_name]
        written = {}
        for key, value in args.items():
            if key not in info["args"] or key in info["deprecated"]:
                raise self.refuse(f"layer '{where}' ({class_name}) has '{key}' in its config, which is not an "
                                  f"argument a spec can give {class_name}")
            if key in _ACTIVATION_ARGS and value is not None and value not in self.catalogue["activations"]:
                raise self.refuse(f"argument '{key}' of layer '{where}' is {shown(value)}, not the name of one "
                                  "of Keras's activations, which is all a spec can write",
                                  "use a Keras activation, or an Activation layer")
            written[key] = self.value(value, f"argument '{key}' of layer '{where}'")
        return written

    def explicit_args(self, cls: type, config: dict[str, Any], keep_name: bool) -> dict[str, Any]:
        """The config entries that must be given for `cls` to build this config.

        Starting from the required arguments, the first entry (in config
        order) that a layer built from the kept entries gets wrong is added,
        until none is wrong: an argument whose default follows from another
        (MaxPooling2D's strides from pool_size) is then left out.
        """
        required = self.catalogue["layers"].get(cls.__name__, {}).get("required", [])
        kept = {key: config[key] for key in required if key in config}
        if keep_name and "name" in config:
            kept["name"] = config["name"]
        for _ in range(len(config) + 1):
            fresh = self.fresh_config(cls, kept)
            if fresh is None:  # Keras cannot build it from fewer arguments: write them all
                return {key: value for key, value in config.items() if keep_name or key != "name"}
            wrong = [key for key, value in config.items()
                     if key != "name" and key not in kept and not same(fresh.get(key, MISSING), value)]
            if not wrong:
                break
            kept[wrong[0]] = config[wrong[0]]
        # In config order, but the arguments every layer has (Keras lists them first) last.
        last = [key for key in ("trainable", "dtype", "name") if key in kept]
        ordered = [key for key in config if key in kept and key not in last] + last
        return {key: config[key] for key in ordered}

    def fresh_config(self, cls: type, kept: dict[str, Any]) -> dict[str, Any] | None:
        """The config of a `cls` made from `kept` alone, or None when Keras cannot make one.

        from_config reads nested objects as Keras serialized them; some
        classes' from_config wants every key (Rescaling's offset), so the
        constructor is tried too.
        """
        key = (cls, json.dumps(kept, sort_keys=True, default=repr))
        if key not in self.fresh_configs:
            self.fresh_configs[key] = None  # type: ignore[assignment]
            for make in (cls.from_config, lambda config: cls(**config)):
                try:
                    self.fresh_configs[key] = make(json.loads(json.dumps(kept, default=jsonable))).get_config()
                    break
                except Exception:  # an argument that needs another
                    continue
        return self.fresh_configs[key]

    # ----------------------------------------------------------------- values
    def value(self, value: Any, what: str) -> Any:
        """A config value in the spec's YAML form; `what` names it in a refusal."""
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return self.value(value.tolist(), what)
        if isinstance(value, (list, tuple)):
            return [self.value(item, what) for item in value]
        if isinstance(value, dict):
            if "class_name" in value and "config" in value:
                return self.keras_object(value, what)
            if all(isinstance(key, str) for key in value):
                return {key: self.value(item, what) for key, item in value.items()}
        raise self.refuse(f"{what} is {shown(value)}, which a spec cannot write")

    def keras_object(self, serialized: dict[str, Any], what: str) -> Any:
        """A serialized Keras object as `{ClassName: {args}}`, or the name Keras also accepts."""
        keras = self.keras
        class_name, config = serialized["class_name"], serialized["config"]
        module = serialized.get("module") or ""
        if serialized.get("registered_name") not in (None, class_name):
            raise self.refuse(f"{what} is the custom object '{serialized['registered_name']}', which a spec "
                              "cannot write", "use a class from Keras instead")
        if class_name in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config, dict):
            return config["name"]
        if class_name == "function":
            raise self.refuse(f"{what} is the Python function '{config}', which a spec cannot carry")
        if module == "keras.layers" and class_name in self.catalogue["layers"]:
            refused = catalogue_module.REFUSED_LAYERS.get(class_name)
            if refused:
                raise self.refuse(f"{what} is a {class_name} layer, which a spec cannot carry", refused)
            cls = getattr(keras.layers, class_name)
            args = self.explicit_args(cls, config, keep_name=True)  # a wrapped layer keeps its name
            return {class_name: self.layer_args(class_name, args, f"{what}: {class_name}")}
        for kind in ("initializers", "regularizers", "constraints"):
            cls = getattr(getattr(keras, kind), class_name, None)
            if module == f"keras.{kind}" and isinstance(cls, type) and isinstance(config, dict):
                return self.object_form(getattr(keras, kind), cls, config, what)
        raise self.refuse(f"{what} is a '{class_name}' object from '{module}', which a spec cannot write")

    def object_form(self, module: Any, cls: type, config: dict[str, Any], what: str) -> Any:
        """`{ClassName: {non-default args}}`, or its name when it has none and Keras takes the name."""
        fresh = default_config(cls)
        args = {key: self.value(value, what) for key, value in config.items()
                if not same(fresh.get(key, MISSING), value)}
        if not from_config_takes(cls, args):  # Constant's from_config reads 'value' even when it is the default
            return {cls.__name__: {key: self.value(value, what) for key, value in config.items()}}
        if not args:
            name = snake_case(cls.__name__)
            try:
                if type(module.get(name)) is cls:
                    return name
            except Exception:
                pass
        return {cls.__name__: args}
