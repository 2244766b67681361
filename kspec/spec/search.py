"""`search:` and `objective:` -> SearchDef: what `kspec tune` searches, and what it optimises.

A search maps `--set` paths to distributions:

    search:
      optimizer.Adam.learning_rate: {float: [1e-4, 1e-2], log: true}
      edges.conv.Conv2D.filters: {int: [8, 64], step: 8}
      edges.act.Activation.activation: {choice: [relu, gelu]}
    objective: {metric: val_loss, direction: minimize}

Each path is checked as `--set` checks it, and the spec is checked with each
end of every range and every choice written in (as `kspec validate` would
check it), so that a trial fails on Keras's account only. Every other command
ignores both keys and uses the spec's own values.

This module is on `kspec validate`'s path: it imports nothing heavy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import Diagnostic, Location, SpecError, did_you_mean
from .load import YMap, YNode, YScalar, YSeq, to_python, type_name

if TYPE_CHECKING:
    from .model import ModelDef
    from .parse import Parser

KINDS = ("int", "float", "choice")
DIRECTIONS = ("minimize", "maximize")
DEFAULT_METRIC = "val_loss"
# A search space is checked with each value written in; past this many checks, the rest are left to the trials.
MAX_VALUE_CHECKS = 64
_EXAMPLE = "e.g. '{float: [0.0001, 0.01], log: true}', '{int: [16, 128], step: 16}' or '{choice: [relu, gelu]}'"


@dataclass(frozen=True)
class Param:
    """One searched value: its `--set` path and distribution."""

    path: str
    kind: str  # "int", "float" or "choice"
    loc: Location  # where the path is written
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def ends(self) -> tuple[Any, ...]:
        """The values a validation tries: every choice, or both ends of the range."""
        return self.choices if self.kind == "choice" else (self.low, self.high)


@dataclass(frozen=True)
class SearchDef:
    params: tuple[Param, ...]
    metric: str = DEFAULT_METRIC
    direction: str = "minimize"
    loc: Location | None = None  # where `search:` is written


def choice_label(value: Any) -> Any:
    """How Optuna holds a choice: a single value as it is, a mapping or list as its YAML text."""
    if isinstance(value, (dict, list)):
        return assignment("", value)[1:]
    return value


def assignment(path: str, value: Any) -> str:
    """`PATH=VALUE` for --set, the value as YAML reads it back."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"{path}={text.removesuffix('...').strip()}"


class _Findings:
    """Where a finding goes: one of structure to the parser (the JSON Schema finds it too), one of meaning
    (a range, a path, what the model reports) to the problems reported with the semantic checks."""

    def __init__(self, parser: Parser):
        self.parser = parser
        self.problems: list[Diagnostic] = []

    def error(self, loc: Location, message: str, hint: str | None = None) -> None:
        self.parser.error(loc, message, hint)

    def meaning(self, loc: Location, message: str, hint: str | None = None) -> None:
        self.problems.append(Diagnostic(loc, message, hint))


def parse_search(parser: Parser, tree: YMap, model: ModelDef) -> tuple[SearchDef, tuple[Diagnostic, ...]]:
    """The spec's search and objective, and the problems of their meaning (structure goes to `parser`)."""
    node, objective = tree.get("search"), tree.get("objective")
    found = _Findings(parser)
    params: list[Param] = []
    if node is None:
        found.problems.append(Diagnostic(
            tree.key_loc("objective"), "'objective' without 'search': kspec tune has nothing to search",
            "add e.g. 'search: {optimizer.Adam.learning_rate: {float: [0.0001, 0.01], log: true}}'", "warning"))
    elif parser.expect_map(node, "'search'", "map each --set path to a distribution, " + _EXAMPLE) is not None:
        assert isinstance(node, YMap)
        for path, key_node, value in node.items():
            if not str(path).strip():
                found.meaning(key_node.loc, "a search path is empty", "give the --set path of a value, e.g. "
                              "optimizer.Adam.learning_rate")
                continue
            param = _parse_param(found, str(path), key_node.loc, value)
            if param is not None:
                params.append(param)
    metric, direction = _parse_objective(found, objective, model, tree.key_loc("search" if node else "objective"))
    search = SearchDef(tuple(params), metric, direction, tree.key_loc("search") if node is not None else None)
    _check_values(found, tree, search)
    return search, tuple(found.problems)


def _parse_param(found: _Findings, path: str, loc: Location, node: YNode) -> Param | None:
    if not isinstance(node, YMap):
        found.error(node.loc, f"the distribution of '{path}' must be a mapping, got {type_name(node)}", _EXAMPLE)
        return None
    kinds = [kind for kind in KINDS if kind in node.entries]
    if len(kinds) != 1:
        found.error(node.loc, f"the distribution of '{path}' needs exactly one of int, float, choice"
                    + (f", not {' and '.join(kinds)}" if kinds else ""), _EXAMPLE)
        return None
    kind = kinds[0]
    allowed = ("choice",) if kind == "choice" else (kind, "log", "step")
    found.parser.unknown_keys(node, allowed, f"a {kind} distribution")
    value = node.get(kind)
    assert value is not None
    if kind == "choice":
        return _parse_choice(found, path, loc, value)
    low_high = _range(found, path, kind, value)
    if low_high is None:
        return None
    low, high = low_high
    log = _flag(found, node.get("log"), "log")
    step = node.get("step")
    step_value = None
    if step is not None:
        number = step.value if isinstance(step, YScalar) else None
        if isinstance(number, bool) or not isinstance(number, int if kind == "int" else (int, float)) or number <= 0:
            found.error(step.loc, f"'step' of '{path}' must be a positive {'integer' if kind == 'int' else 'number'}, "
                        f"got {type_name(step)}")
            return None
        if log:
            found.meaning(step.loc, f"'{path}' has both 'step' and 'log: true'", "a log range has no step; drop one")
            return None
        step_value = number
    if log and low <= 0:
        found.meaning(value.loc, f"the log range [{_text(low)}, {_text(high)}] of '{path}' reaches zero or below",
                      "a log range must be above zero: raise its low end (e.g. 1e-5), or drop 'log: true'")
        return None
    return Param(path, kind, loc, low, high, log, step_value)


def _range(found: _Findings, path: str, kind: str, node: YNode) -> tuple[float, float] | None:
    numbers = (int,) if kind == "int" else (int, float)
    items = node.items if isinstance(node, YSeq) else []
    wrong = [item for item in items if not (isinstance(item, YScalar) and not isinstance(item.value, bool)
                                            and isinstance(item.value, numbers) and math.isfinite(item.value))]
    if len(items) != 2 or wrong:
        what = "integers" if kind == "int" else "numbers"
        got = (f"a list holding {type_name(wrong[0])}" if len(items) == 2
               else f"a list of {len(items)}" if isinstance(node, YSeq) else type_name(node))
        found.error(node.loc, f"'{kind}' of '{path}' must be a list of two {what} [LOW, HIGH], got {got}", _EXAMPLE)
        return None
    low, high = (item.value for item in items if isinstance(item, YScalar))
    if low > high:
        found.meaning(node.loc, f"the range [{_text(low)}, {_text(high)}] of '{path}' is empty: its low end is above "
                      "its high end", f"write it low end first: [{_text(high)}, {_text(low)}]")
        return None
    return low, high


def _parse_choice(found: _Findings, path: str, loc: Location, node: YNode) -> Param | None:
    if not isinstance(node, YSeq) or not node.items:
        got = "an empty list" if isinstance(node, YSeq) else type_name(node)
        found.error(node.loc, f"'choice' of '{path}' must be a list of values, got {got}",
                    "e.g. 'choice: [relu, gelu]'")
        return None
    kinds: dict[str, YNode] = {}
    for item in node.items:
        kinds.setdefault(_kind(item), item)
    if len(kinds) > 1:
        mixed = " and ".join(f"{kind} ({type_name(item)})" for kind, item in kinds.items())
        found.meaning(node.loc, f"the choices of '{path}' mix {mixed}",
                      "give choices of one type: all numbers, all strings, all true/false, or all mappings "
                      "(e.g. a choice of layers: '{choice: [{LSTM: {units: 64}}, {GRU: {units: 64}}]}')")
        return None
    return Param(path, "choice", loc, choices=tuple(to_python(item) for item in node.items))


def _kind(node: YNode) -> str:
    if isinstance(node, YMap):
        return "mappings"
    if isinstance(node, YSeq):
        return "lists"
    value = node.value if isinstance(node, YScalar) else None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "booleans"
    return "numbers" if isinstance(value, (int, float)) else "strings"


def _flag(found: _Findings, node: YNode | None, name: str) -> bool:
    if node is None:
        return False
    if isinstance(node, YScalar) and isinstance(node.value, bool):
        return node.value
    found.error(node.loc, f"'{name}' must be true or false, got {type_name(node)}")
    return False


def _text(number: float) -> str:
    return f"{number:g}"


def _parse_objective(found: _Findings, node: YNode | None, model: ModelDef, loc: Location) -> tuple[str, str]:
    metric, direction = DEFAULT_METRIC, "minimize"
    metric_loc = loc  # the default objective is the search's
    if node is not None and found.parser.expect_map(node, "'objective'", "e.g. '{metric: val_loss, direction: "
                                                                      "minimize}'"):
        assert isinstance(node, YMap)
        found.parser.unknown_keys(node, ("metric", "direction"), "'objective'")
        item = node.get("metric")
        if item is not None:
            metric_loc = item.loc
            if isinstance(item, YScalar) and isinstance(item.value, str) and item.value:
                metric = item.value
            else:
                found.error(item.loc, f"'objective.metric' must be a metric's name, got {type_name(item)}",
                            "e.g. val_loss or val_accuracy")
        item = node.get("direction")
        if item is not None:
            if isinstance(item, YScalar) and item.value in DIRECTIONS:
                direction = item.value
            else:
                found.error(item.loc, f"'objective.direction' must be minimize or maximize, got {type_name(item)}")
    found.problems.extend(_check_metric(metric, metric_loc, model))
    return metric, direction


def _check_metric(metric: str, loc: Location, model: ModelDef) -> Iterator[Diagnostic]:
    """The objective must be a value that training this spec reports (validation ones need held-out rows)."""
    from .fit_settings import reported_metrics

    if model.kind == "broken" or model.compile is None or model.compile.loss is None:
        return  # a spec without a loss cannot be trained; kspec tune says so like kspec train
    reported = reported_metrics(model)
    base = metric[4:] if metric.startswith("val_") else metric
    if base not in reported:
        yield Diagnostic(loc, f"the objective '{metric}' is not a value this model reports"
                         f"{did_you_mean(base, reported)}",
                         f"it reports {', '.join(sorted(reported))} (and val_NAME of each with validation data)")
    elif metric.startswith("val_") and not model.training.validation_split:
        yield Diagnostic(loc, f"the objective '{metric}' needs validation data, and the spec holds out none",
                         "add 'validation_split: 0.2' under 'training:', or optimise a training value such as 'loss'")


def _check_values(found: _Findings, tree: YMap, search: SearchDef) -> None:
    """Each path exists, and the spec is valid with each end of a range and each choice written in."""
    from .overrides import apply_override

    base = {(d.message, str(d.location)) for d in _errors(found.parser, tree)}
    checks = 0
    for param in search.params:
        for value in param.ends():
            checks += 1
            if checks > MAX_VALUE_CHECKS:
                return
            variant = copy.deepcopy(tree)
            try:
                apply_override(variant, assignment(param.path, value))
            except SpecError as exc:
                first = exc.diagnostics[0]
                said = first.message.removeprefix(f"'{param.path}': ")  # said once, not twice
                found.meaning(param.loc, f"search path '{param.path}': {said}", first.hint)
                break
            new = [d for d in _errors(found.parser, variant) if (d.message, str(d.location)) not in base]
            if new:
                found.meaning(param.loc, f"with {assignment(param.path, value)} the spec is invalid: {new[0].message}",
                              new[0].hint)
                break


def _errors(parser: Parser, tree: YMap) -> list[Diagnostic]:
    """The errors of a spec tree without its search, parsed and checked apart from `parser`."""
    from .parse import Parser as FreshParser
    from .semantics import check_model

    fresh = FreshParser(parser.include_stack, parser.state)
    fresh.file = parser.file
    without = YMap(tree.loc, {key: entry for key, entry in tree.entries.items() if key not in ("search", "objective")})
    model = fresh.parse_model(without, "search_check", parser.file, top=True)
    return [d for d in fresh.diagnostics + list(check_model(model)) if d.is_error]
