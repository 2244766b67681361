"""The keys of 'training' that shape Keras's fit: callbacks, class_weight, mixed_precision.

Callbacks are Keras's own classes in class form (`- EarlyStopping: {patience: 3}`),
their arguments checked against the catalogue like a layer's. Only the
callbacks that make sense from a spec are allowed: those that save, log or
resume would fight the run folder, which already does each of those, and
those that take Python functions cannot be written in a spec. The checks that
need the whole model (a `monitor` the model does not report, class weights on
a model with several outputs) are in `check_training`, run with the other
checks of a spec's meaning.

This module is on `kspec validate`'s path: it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from .. import catalogue as catalogue_module
from ..errors import Diagnostic, Location, did_you_mean
from .arguments import check_class_arguments
from .compile_settings import LIST, MAPPING, form, is_class_form
from .keys import ALLOWED_CALLBACKS, MIXED_POLICIES, snake_case
from .load import YMap, YNode, YScalar, YSeq, to_python, type_name
from .model import CallbackDef, ModelDef

if TYPE_CHECKING:
    from .parse import Parser

_RUN_FOLDER = "kspec's run folder already"
REFUSED_CALLBACKS = {
    "ModelCheckpoint": f"{_RUN_FOLDER} writes checkpoints (checkpoints/) and the final model (model.keras)",
    "BackupAndRestore": f"{_RUN_FOLDER} resumes a stopped run (kspec train --resume)",
    "OrbaxCheckpoint": f"{_RUN_FOLDER} writes checkpoints (checkpoints/) and the final model (model.keras)",
    "TensorBoard": f"{_RUN_FOLDER} writes TensorBoard logs (logs/)",
    "CSVLogger": f"{_RUN_FOLDER} writes every epoch's losses and metrics (history.csv)",
    "ProgbarLogger": "kspec train shows Keras's progress bar itself (-q hides it)",
    "History": "Keras records the history itself, and kspec writes it to history.csv",
    "CallbackList": "it only groups callbacks; list them under 'callbacks' instead",
    "LambdaCallback": "it runs Python code, which a spec may not carry",
    "LearningRateScheduler": "it takes a Python function; give the optimizer a learning-rate schedule instead, "
                             "e.g. 'learning_rate: {CosineDecay: {initial_learning_rate: 0.001, decay_steps: 1000}}'",
    "RemoteMonitor": "it sends every epoch's logs over the network; kspec's run folder records them",
    "SwapEMAWeights": "it needs an optimizer with use_ema, which kspec's checkpoints do not follow",
}
_ALLOWED_HINT = f"allowed callbacks: {', '.join(ALLOWED_CALLBACKS)}"
_EXAMPLE = "e.g. '- EarlyStopping: {monitor: val_loss, patience: 3, restore_best_weights: true}'"


def parse_fit_settings(parser: Parser, mapping: YMap) -> dict[str, Any]:
    """TrainingDef's callbacks, class_weight and mixed_precision from a 'training' mapping."""
    values: dict[str, Any] = {}
    node = mapping.get("callbacks")
    if node is not None:
        values["callbacks"] = tuple(_parse_callbacks(parser, node))
    node = mapping.get("class_weight")
    if node is not None:
        weights = _parse_class_weight(parser, node)
        if weights is not None:
            values["class_weight"] = weights
    node = mapping.get("mixed_precision")
    if node is not None:
        value = node.value if isinstance(node, YScalar) else None
        if value in MIXED_POLICIES:
            values["mixed_precision"] = value
        else:
            shown = f"'{value}'" if isinstance(value, str) else type_name(node)
            parser.error(node.loc, f"unknown mixed_precision policy {shown}"
                         f"{did_you_mean(value, MIXED_POLICIES) if isinstance(value, str) else ''}",
                         "use mixed_float16 (GPUs with float16 units) or mixed_bfloat16 (TPUs, recent GPUs "
                         "and CPUs); leave it out to train in float32")
    return values


def _parse_callbacks(parser: Parser, node: YNode) -> Iterator[CallbackDef]:
    if not isinstance(node, YSeq):
        parser.error(node.loc, f"'training.callbacks' must be a list of callbacks, got {type_name(node)}", _EXAMPLE)
        return
    classes = catalogue_module.load()["callbacks"]
    for item in node.items:
        if isinstance(item, YScalar) and isinstance(item.value, str):
            name, loc, args_node = item.value, item.loc, None  # `- TerminateOnNaN`: no arguments
        elif isinstance(item, YMap) and len(item.entries) == 1:
            name, key_node, args_node = next(item.items())
            loc = key_node.loc
        else:
            parser.error(item.loc, f"a callback is one class with its arguments, got {type_name(item)}", _EXAMPLE)
            continue
        if name in REFUSED_CALLBACKS:
            parser.error(loc, f"callback {name} is not allowed in a spec: {REFUSED_CALLBACKS[name]}", _ALLOWED_HINT)
            continue
        if name not in ALLOWED_CALLBACKS or name not in classes["classes"]:
            parser.error(loc, f"unknown callback '{name}'{did_you_mean(name, ALLOWED_CALLBACKS)}", _ALLOWED_HINT)
            continue
        args = _parse_arguments(parser, name, args_node, classes)
        if args is not None:
            yield CallbackDef(name, loc, *args)


def _parse_arguments(parser: Parser, name: str, node: YNode | None,
                     classes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Location]] | None:
    """A callback's arguments and where each is written; None when they are wrong (reported)."""
    if node is None or (isinstance(node, YScalar) and node.value is None):
        return {}, {}
    if not isinstance(node, YMap):
        parser.error(node.loc, f"the arguments of callback {name} must be a mapping, got {type_name(node)}",
                     _EXAMPLE)
        return None
    accepted = classes["classes"][name]
    errors = len(parser.diagnostics)
    for arg, key_node, _ in node.items():
        if arg not in accepted:
            parser.error(key_node.loc, f"unknown argument '{arg}' for callback {name}{did_you_mean(arg, accepted)}",
                         f"{name} takes: {', '.join(accepted)}")
    parser.diagnostics.extend(check_class_arguments(node, f"callback {name}", classes["kinds"].get(name, {})))
    if len(parser.diagnostics) > errors:
        return None
    return ({arg: to_python(value) for arg, _, value in node.items()},
            {arg: value.loc for arg, _, value in node.items()})


def _parse_class_weight(parser: Parser, node: YNode) -> dict[int, float] | None:
    hint = "map each class id to its weight, e.g. 'class_weight: {0: 1.0, 1: 5.0}'"
    if not isinstance(node, YMap) or not node.entries:
        parser.error(node.loc, f"'training.class_weight' must be a mapping of class ids to weights, "
                     f"got {type_name(node)}", hint)
        return None
    weights: dict[int, float] = {}
    for _, key_node, value_node in node.items():
        key, value = key_node.value, value_node.value if isinstance(value_node, YScalar) else None
        if isinstance(key, str) and key.isascii() and key.isdigit():
            key = int(key)  # '0': a spec written back after --set quotes its keys (kspec.spec.spec_text)
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            parser.error(key_node.loc, f"class_weight's key {key!r} is not a class id (an integer from 0)", hint)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            parser.error(value_node.loc, f"the weight of class {key} must be a number from 0, "
                         f"got {type_name(value_node)}", hint)
        else:
            weights[key] = float(value)
    return weights if len(weights) == len(node.entries) else None


# ------------------------------------------------------------ model checks
def check_training(model: ModelDef) -> Iterator[Diagnostic]:
    """What 'training' asks that this model cannot give: class weights for several outputs, unknown monitors."""
    training, outputs = model.training, model.output_names
    if training.class_weight is not None and len(outputs) > 1:
        yield Diagnostic(training.locs["class_weight"],
                         f"'training.class_weight' needs a model with one output; this one has {len(outputs)} "
                         f"({', '.join(outputs)})",
                         "Keras takes class weights for a single output only; weight each output's rows with "
                         "sample_weight_OUTPUT arrays in the data file instead")
    if model.compile is None or model.compile.loss is None:
        return  # not trainable: that is reported when it is trained
    reported = reported_metrics(model)
    for callback in training.callbacks:
        monitor = callback.args.get("monitor")
        if not isinstance(monitor, str):
            continue
        base = monitor[4:] if monitor.startswith("val_") else monitor
        if base not in reported:
            yield Diagnostic(callback.arg_locs["monitor"],
                             f"callback {callback.class_name} monitors '{monitor}', which this model does not "
                             f"report{did_you_mean(base, reported)}",
                             f"it reports {', '.join(sorted(reported))} (and val_NAME of each with validation data)")


def reported_metrics(model: ModelDef) -> set[str]:
    """The names of the losses and metrics Keras's fit reports for this model (without the val_ prefix)."""
    outputs = model.output_names
    assert model.compile is not None
    prefixes = [f"{out}_" for out in outputs] if len(outputs) > 1 else [""]
    names = {"loss"} | ({f"{out}_loss" for out in outputs} if len(outputs) > 1 else set())
    metrics = model.compile.metrics.value if model.compile.metrics is not None else []
    kind = form(metrics, outputs)
    if kind == MAPPING:
        groups = [metrics.get(out, []) for out in outputs]
    elif kind == LIST and any(isinstance(item, list) for item in metrics):
        groups = metrics
    else:
        groups = [metrics] * len(outputs)  # one list for every output
    for prefix, group in zip(prefixes, groups):
        for metric in group if isinstance(group, list) else [group]:
            names.add(prefix + _metric_name(metric, outputs))
    return names


def _metric_name(metric: Any, outputs: list[str]) -> str:
    """The name Keras logs a metric under: as written, or a class's `name` argument, else its snake_case name."""
    if is_class_form(metric, outputs):
        class_name, args = next(iter(metric.items()))
        name = (args or {}).get("name")
        return name if isinstance(name, str) else snake_case(class_name)
    return str(metric)
