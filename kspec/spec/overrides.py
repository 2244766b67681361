"""`--set PATH=VALUE`: change one value of a spec before it is checked.

PATH is a dotted path of keys (and list indices) in the spec. Inside a layer
definition the class name may be left out, so `layers.shared_lstm.units`
reaches `layers: {shared_lstm: {LSTM: {units: ...}}}`, and a layer may get an
argument it did not have (the checker then checks it like any other).
VALUE is read as YAML, so `128`, `0.5`, `relu`, `[3, 3]` and `null` work.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import Diagnostic, Location, SpecError, did_you_mean
from .load import YMap, YNode, YScalar, YSeq, parse_value


def _fail(where: str, message: str, hint: str | None = None) -> SpecError:
    return SpecError([Diagnostic(Location(f"--set {where}"), message, hint)])


def _class_args(node: YMap) -> YMap | None:
    """The argument mapping of a layer written as `{ClassName: {args}}` (maybe among other keys)."""
    classes = [key for key in node.entries if key[:1].isupper()]
    if len(classes) != 1:
        return None
    args = node.entries[classes[0]][1]
    if isinstance(args, YScalar) and args.value is None:  # `Flatten: null` gets a mapping to hold arguments
        args = YMap(args.loc)
        node.entries[classes[0]] = (node.entries[classes[0]][0], args)
    return args if isinstance(args, YMap) else None


def _relocate(node: YNode, loc: Location) -> YNode:
    """Point every value given on the command line at its `--set` (it has no file line)."""
    node.loc = loc
    for child in (node.items if isinstance(node, YSeq) else
                  [n for entry in node.entries.values() for n in entry] if isinstance(node, YMap) else []):
        _relocate(child, loc)
    return node


def apply_override(tree: YMap, assignment: str) -> None:
    """Apply one `PATH=VALUE` to a spec tree, in place."""
    path, equals, text = assignment.partition("=")
    if not equals or not path:
        raise _fail(assignment, "expected PATH=VALUE", "e.g. --set layers.shared_lstm.units=128")
    value = _relocate(parse_value(text if text.strip() else "''", f"--set {assignment}"),
                      Location(f"--set {assignment}"))
    segments = path.split(".")
    node: YNode = tree
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        where = ".".join(segments[: depth + 1])
        if isinstance(node, YSeq):
            if not (segment.isdigit() and int(segment) < len(node.items)):
                raise _fail(assignment, f"'{where}': no item {segment} in a list of {len(node.items)}",
                            f"use an index from 0 to {len(node.items) - 1}")
            if last:
                node.items[int(segment)] = value
                return
            node = node.items[int(segment)]
            continue
        if not isinstance(node, YMap):
            raise _fail(assignment, f"'{where}' goes inside a single value", "shorten the path")
        holder = node
        if segment == "training" and depth == 0 and not last and segment not in node.entries:
            # A spec without training defaults gets them from the command line (--set training.epochs=3).
            node.entries[segment] = (YScalar(value.loc, segment, segment), YMap(value.loc))
        if segments[0] == "training" and depth == 1 and last:
            pass  # any key of 'training' may be given; the parser checks it like one written in the file
        elif segment not in node.entries:
            args = _class_args(node)
            if args is not None and (segment in args.entries or last):
                holder = args  # the class name may be left out of the path
            else:
                known = list(node.entries) + (list(args.entries) if args is not None else [])
                raise _fail(assignment, f"no '{segment}' at '{where}'{did_you_mean(segment, known)}",
                            f"keys there: {', '.join(known) or 'none'}")
        if last:
            key = holder.entries[segment][0] if segment in holder.entries else YScalar(value.loc, segment, segment)
            holder.entries[segment] = (key, value)
            return
        node = holder.entries[segment][1]


def apply_overrides(tree: YMap, assignments: Sequence[str]) -> YMap:
    for assignment in assignments:
        apply_override(tree, assignment)
    return tree
