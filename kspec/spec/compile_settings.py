"""The compile settings of a spec: optimizer, loss, loss_weights, metrics.

`loss`, `loss_weights` and `metrics` can be given once for every output, as a
list in output order, or as a mapping by output name. `form()` tells which,
the checks below report what Keras would refuse, and `for_keras()` turns each
setting into the per-output lists that `model.compile` takes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from ..errors import Diagnostic, Location, did_you_mean
from .arguments import check_class_arguments, missing_arguments
from .load import YMap, YNode, YScalar, YSeq, to_python
from .model import ModelDef, Setting

ONE, LIST, MAPPING = "one", "list", "mapping"


def is_class_form(value: Any, outputs: list[str]) -> bool:
    """`{ClassName: {args}}`: one object with arguments, not a mapping by output."""
    if not (isinstance(value, dict) and len(value) == 1):
        return False
    key, args = next(iter(value.items()))
    return key not in outputs and isinstance(args, (dict, type(None))) and key[:1].isupper()


def form(value: Any, outputs: list[str]) -> str:
    if isinstance(value, dict) and not is_class_form(value, outputs):
        return MAPPING
    if isinstance(value, list):
        return LIST
    return ONE


def for_keras(name: str, value: Any, outputs: list[str], convert: Callable[[Any], Any]) -> Any:
    """A setting in the form model.compile wants: one value, or one entry per output in order."""
    kind = form(value, outputs)
    many = len(outputs) > 1
    if name == "metrics":
        if kind == MAPPING:
            return [[convert(m) for m in _as_list(value.get(out, []))] for out in outputs]
        items = _as_list(value)
        if many and not any(isinstance(item, list) for item in items):
            return [[convert(m) for m in items] for _ in outputs]  # a flat list applies to every output
        return [[convert(m) for m in _as_list(item)] for item in items] if many else [convert(m) for m in items]
    if name == "loss_weights":
        if kind == MAPPING:
            return [float(value.get(out, 1.0)) for out in outputs]
        if kind == LIST:
            return [float(v) for v in value]
        return [float(value)] * len(outputs) if many else float(value)
    # loss
    if kind == MAPPING:
        return [convert(value[out]) if out in value else None for out in outputs]
    if kind == LIST:
        return [convert(item) for item in value]
    return [convert(value)] * len(outputs) if many else convert(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------------- checks
def _error(loc: Location, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(loc, message, hint)


def check_compile(model: ModelDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    settings = model.compile
    assert settings is not None
    outputs = model.output_names
    if settings.optimizer is not None:
        yield from _check_identifier(settings.optimizer.node, "optimizer", catalogue["optimizers"])
    if settings.loss is not None:
        yield from _check_loss(settings.loss, outputs, catalogue["losses"])
    if settings.metrics is not None:
        yield from _check_metrics(settings.metrics, outputs, catalogue["metrics"])
    if settings.loss_weights is not None:
        yield from _check_loss_weights(settings.loss_weights, outputs)


def _check_identifier(node: YNode, what: str, known: dict[str, Any]) -> Iterator[Diagnostic]:
    """A name such as 'adam', or a class with arguments: {Adam: {learning_rate: 0.01}}."""
    value = to_python(node)
    classes = known["classes"]
    if isinstance(value, str):
        names = known["strings"] + list(classes)
        if value not in names:
            yield _error(node.loc, f"unknown {what} '{value}'{did_you_mean(value, names)}",
                         f"use a name such as {', '.join(known['strings'][:6])}, or a class from keras")
        return
    if isinstance(node, YMap) and len(node.entries) == 1:
        class_name, key_node, args_node = next(node.items())
        if class_name not in classes:
            yield _error(key_node.loc, f"unknown {what} class '{class_name}'{did_you_mean(class_name, classes)}",
                         f"{what} classes: {', '.join(classes)}")
            return
        if isinstance(args_node, YScalar) and args_node.value is None:
            yield from missing_arguments(class_name, key_node, [], known, what)
            return
        if not isinstance(args_node, YMap):
            yield _error(args_node.loc, f"arguments of {what} {class_name} must be a mapping")
            return
        yield from missing_arguments(class_name, key_node, [arg for arg, _, _ in args_node.items()], known, what)
        for arg, arg_key, _ in args_node.items():
            if arg not in classes[class_name]:
                yield _error(arg_key.loc, f"unknown argument '{arg}' for {what} {class_name}"
                             f"{did_you_mean(arg, classes[class_name])}",
                             f"{class_name} takes: {', '.join(classes[class_name])}")
        yield from check_class_arguments(args_node, f"{what} {class_name}", known["kinds"].get(class_name, {}))
        return
    yield _error(node.loc, f"{what} must be a name or a class with its arguments, got {value!r}",
                 f"e.g. '{known['strings'][0]}' or '{{{next(iter(classes))}: {{...}}}}'")


def _check_output_keys(node: YMap, what: str, outputs: list[str]) -> Iterator[Diagnostic]:
    if not node.entries:
        yield _error(node.loc, f"{what} is an empty mapping", f"map output names to a {what}: {', '.join(outputs)}")
    for key, key_node, _ in node.items():
        if key not in outputs:
            yield _error(key_node.loc, f"{what} for unknown output '{key}'{did_you_mean(key, outputs)}",
                         f"the model's outputs: {', '.join(outputs)}")


def _check_length(node: YSeq, what: str, outputs: list[str]) -> Iterator[Diagnostic]:
    if len(node.items) != len(outputs):
        yield _error(node.loc, f"{what} lists {len(node.items)} entries for {len(outputs)} output(s)",
                     f"give one per output, in order: {', '.join(outputs)}; or a mapping by output name")


def _check_loss(setting: Setting, outputs: list[str], known: dict[str, Any]) -> Iterator[Diagnostic]:
    node = setting.node
    kind = form(setting.value, outputs)
    if kind == MAPPING:
        assert isinstance(node, YMap)
        yield from _check_output_keys(node, "loss", outputs)
        entries = [value for key, _, value in node.items() if key in outputs]
    elif kind == LIST:
        assert isinstance(node, YSeq)
        yield from _check_length(node, "loss", outputs)
        entries = node.items
    else:
        entries = [node]
    for entry in entries:
        if not (isinstance(entry, YScalar) and entry.value is None and kind != ONE):  # null: no loss there
            yield from _check_identifier(entry, "loss", known)


def _check_metrics(setting: Setting, outputs: list[str], known: dict[str, Any]) -> Iterator[Diagnostic]:
    node = setting.node
    kind = form(setting.value, outputs)
    if kind == ONE:
        yield _error(node.loc, "metrics must be a list (for every output) or a mapping by output name",
                     f"e.g. 'metrics: [{to_python(node) if isinstance(to_python(node), str) else 'accuracy'}]'")
        return
    if kind == MAPPING:
        assert isinstance(node, YMap)
        yield from _check_output_keys(node, "metrics", outputs)
        groups = [value for key, _, value in node.items() if key in outputs]
    else:
        assert isinstance(node, YSeq)
        nested = [isinstance(item, YSeq) for item in node.items]
        if any(nested) and not all(nested):
            yield _error(node.loc, "metrics mixes lists and single metrics",
                         "give one list for every output, or one list per output: [[accuracy], [mae]]")
            return
        if any(nested):
            yield from _check_length(node, "metrics", outputs)
            groups = node.items
        else:
            groups = [node]
    for group in groups:
        for item in (group.items if isinstance(group, YSeq) else [group]):
            yield from _check_identifier(item, "metric", known)


def _check_loss_weights(setting: Setting, outputs: list[str]) -> Iterator[Diagnostic]:
    node = setting.node
    if isinstance(node, YMap):
        yield from _check_output_keys(node, "loss weight", outputs)
        values = [value for _, _, value in node.items()]
    elif isinstance(node, YSeq):
        yield from _check_length(node, "loss_weights", outputs)
        values = node.items
    else:
        values = [node]
    for value in values:
        number = value.value if isinstance(value, YScalar) else None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            yield _error(value.loc, "loss weights must be numbers", "e.g. 'loss_weights: [1.0, 0.2]'")
