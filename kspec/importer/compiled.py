"""A compiled model's settings as spec keys: optimizer, loss, loss_weights and metrics.

Read from Keras's compile config; a name stays a name, an object becomes
`{ClassName: {non-default args}}`, and settings given by Keras's output
names are given by the spec's. Compile settings a spec cannot carry
(weighted_metrics, run_eagerly, steps_per_execution) are refused.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec.keys import snake_case
from .layer_args import ArgumentWriter
from .context import Context
from .values import MISSING, default_config, same, shortest_float32, shown

__all__ = ["CompileWriter"]

# Compile-config entries kspec cannot write, with the value that means "unset".
_COMPILE_DEFAULTS = {"weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1}


class CompileWriter:
    """Writes a model's compile settings; config values go through an ArgumentWriter."""

    def __init__(self, context: Context, arguments: ArgumentWriter):
        self.keras = context.keras
        self.catalogue = context.catalogue
        self.refuse = context.refuse
        self.arguments = arguments

    def settings(self, model: Any, keras_outputs: list[str], outputs: list[str]) -> dict[str, Any]:
        """optimizer, loss, loss_weights and metrics, when the model was compiled.

        `keras_outputs` are Keras's names of the outputs, `outputs` the spec's.
        """
        config = model.get_compile_config() if getattr(model, "compiled", False) else None
        if not config:
            return {}
        for key, unset in _COMPILE_DEFAULTS.items():
            if key in config and not same(config[key], unset) and config[key] not in ([], {}):
                raise self.refuse(f"model '{model.name}' is compiled with {key}={config[key]!r}, which a spec "
                                  "cannot carry", "a spec's compile settings are optimizer, loss, loss_weights "
                                  "and metrics")
        # jit_compile is left to Keras: it is how to run the model, not what it is.
        settings: dict[str, Any] = {}
        if config.get("optimizer") is not None:
            settings["optimizer"] = self.compile_object(config["optimizer"], self.keras.optimizers, "optimizer")
        for key, module in (("loss", self.keras.losses), ("loss_weights", None), ("metrics", self.keras.metrics)):
            value = config.get(key)
            if value is None:
                continue
            settings[key] = self.per_output(value, key, module, keras_outputs, outputs)
        return settings

    def per_output(self, value: Any, key: str, module: Any, keras_outputs: list[str],
                   outputs: list[str]) -> Any:
        """A setting by output name (Keras's output names -> the spec's), in a list, or one for all."""
        def convert(item: Any) -> Any:
            if item is None:  # no loss (or metric) for that output
                return None
            if module is None:
                return float(item)
            if isinstance(item, (list, tuple)):
                return [convert(i) for i in item]
            return self.compile_object(item, module, key)

        if isinstance(value, dict) and not ("class_name" in value and "config" in value):
            if len(set(keras_outputs)) < len(keras_outputs):
                raise self.refuse(f"the {key} are given by output name, but outputs share the name(s) "
                                  f"{', '.join(sorted({n for n in keras_outputs if keras_outputs.count(n) > 1}))}",
                                  "compile with a list in output order")
            spec_name = dict(zip(keras_outputs, outputs))
            unknown = [name for name in value if name not in spec_name]
            if unknown:
                raise self.refuse(f"the {key} name output '{unknown[0]}', which the model does not have")
            return {spec_name[name]: convert(item) for name, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        if key == "metrics":
            return [convert(value)]
        return convert(value)

    def compile_object(self, value: Any, module: Any, what: str) -> Any:
        """An optimizer, loss or metric: its name, or `{ClassName: {non-default args}}`."""
        known = self.catalogue[{"optimizer": "optimizers", "loss": "losses", "metrics": "metrics"}[what]]
        if isinstance(value, str):
            if value not in known["strings"] and value not in known["classes"]:
                raise self.refuse(f"the {what} '{value}' is not one Keras knows by name, which a spec needs",
                                  "use a Keras optimizer, loss or metric")
            return value
        if not (isinstance(value, dict) and "class_name" in value):
            raise self.refuse(f"the {what} is {shown(value)}, which a spec cannot write")
        class_name, config = value["class_name"], value.get("config")
        if class_name == "function" and isinstance(config, str):
            if not str(value.get("module", "")).startswith("keras") or config not in known["strings"]:
                raise self.refuse(f"the {what} is the Python function '{config}', which a spec cannot carry",
                                  "use a Keras loss or metric")
            return config  # a Keras loss or metric function, known by name
        cls = getattr(module, class_name, None)
        if value.get("registered_name") not in (None, class_name) or not isinstance(cls, type):
            raise self.refuse(f"the {what} is the custom class '{value.get('registered_name') or class_name}', "
                              "which a spec cannot name", "use a class Keras provides")
        fresh = default_config(cls)
        args = {}
        for key, item in (config or {}).items():
            default = fresh.get(key, MISSING)
            if key == "name" and isinstance(item, str) and isinstance(default, str) \
                    and re.sub(r"_\d+$", "", item) == re.sub(r"_\d+$", "", default):
                continue  # Keras's automatic name (adam, auc_1, ...)
            if same(default, item):
                continue
            if isinstance(item, dict) and "class_name" in item:
                raise self.refuse(f"the {what}'s '{key}' is a {item['class_name']} object, which a spec "
                                  "cannot write", "give it a plain number")
            if what == "optimizer" and isinstance(item, float):
                item = shortest_float32(item)
            args[key] = self.arguments.value(item, f"'{key}' of the {what}")
        if not args and what == "optimizer":  # compile() turns a name into the same object
            for name in (class_name.lower(), snake_case(class_name)):
                if name in self.catalogue["optimizers"]["strings"]:
                    return name
        return {class_name: args}  # a loss or metric object stays an object, as in the compile config
