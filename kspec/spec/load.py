"""Spec text -> a tree of YAML values that remember where they came from.

PyYAML's `compose` gives nodes with marks; we turn them into `YScalar`,
`YSeq` and `YMap` objects, each with a `Location`, refusing what PyYAML would
let through silently: duplicate keys, tags that construct Python objects,
several documents, alias bombs. Only the safe constructor ever builds values.
"""

from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from ..errors import Diagnostic, Location, SpecError, shorten
from .paths import MAX_SPEC_BYTES, check_spec_file

# Past this many nodes (aliases expanded) a spec is refused: no real model
# needs it, and a "billion laughs" file would otherwise exhaust memory.
MAX_NODES = 200_000
# No spec nests this deep; the limit keeps every later recursive step safe.
MAX_DEPTH = 100

_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "merge")
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


# libyaml's loader composes about 15 times faster than the pure-Python one and
# gives the same nodes and marks; PyYAML ships it in its wheels, but a source
# install may lack it.
_FastLoader: type = getattr(yaml, "CSafeLoader", _Loader)
if _FastLoader is not _Loader:
    class _FastLoader(_FastLoader):  # type: ignore[no-redef]
        """CSafeLoader with the same float resolver as _Loader."""

# How a spec's floats are recognised, written once for every loader and kspec's own dumper.
FLOAT_RESOLVER = ("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                  list("-+0123456789"))
for _loader_class in {_Loader, _FastLoader}:
    _loader_class.add_implicit_resolver(*FLOAT_RESOLVER)


@dataclass(eq=False)
class YNode:
    loc: Location


@dataclass(eq=False)
class YScalar(YNode):
    value: Any  # str, int, float, bool or None
    text: str = ""  # the scalar as written


@dataclass(eq=False)
class YSeq(YNode):
    items: list[YNode] = field(default_factory=list)


@dataclass(eq=False)
class YMap(YNode):
    # key text -> (key node, value node), in file order
    entries: dict[str, tuple[YScalar, YNode]] = field(default_factory=dict)

    def get(self, key: str) -> YNode | None:
        entry = self.entries.get(key)
        return entry[1] if entry else None

    def key_loc(self, key: str) -> Location:
        return self.entries[key][0].loc

    def items(self) -> Iterator[tuple[str, YScalar, YNode]]:
        for key, (key_node, value) in self.entries.items():
            yield key, key_node, value


def type_name(node: YNode) -> str:
    """How a node's type is named in messages: 'a mapping', 'the string "x"'."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    assert isinstance(node, YScalar)
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {node.text}"
    return f"the string '{shorten(str(value), 60)}'"


def to_python(node: YNode) -> Any:
    """Plain Python value of a node (dicts keep file order)."""
    if isinstance(node, YScalar):
        return node.value
    if isinstance(node, YSeq):
        return [to_python(item) for item in node.items]
    assert isinstance(node, YMap)
    return {key: to_python(value) for key, _, value in node.items()}


def maps_within(node: YNode, descend: Callable[[YMap], bool] = lambda _: True) -> Iterator[YMap]:
    """Every mapping in a value, at any depth, outermost first.

    A mapping for which `descend` is false is yielded but not looked into.
    """
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, YSeq):
            stack.extend(reversed(current.items))
        elif isinstance(current, YMap):
            yield current
            if descend(current):
                stack.extend(reversed([value for _, _, value in current.items()]))


def _fail(loc: Location, message: str, hint: str | None = None) -> SpecError:
    return SpecError([Diagnostic(loc, message, hint)])


def _location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def read_text(path: Path) -> str:
    """Read a spec file as UTF-8, with a located error for every way that fails."""
    name = str(path)
    check_spec_file(path)  # a regular file of bounded size: a FIFO or /dev/zero is never opened
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise _fail(Location(name), f"cannot read spec file: {exc.strerror}") from None
    if len(data) > MAX_SPEC_BYTES:  # it grew after it was checked
        raise _fail(Location(name), f"spec file is larger than the {MAX_SPEC_BYTES:,} bytes allowed")
    if b"\x00" in data:
        raise _fail(Location(name), "binary file, not a YAML spec",
                    "a spec is a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _fail(
            Location(name, line, column),
            f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            "save the spec as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def parse_text(text: str, file: str) -> YMap:
    """Parse spec text into a located tree whose root is a mapping."""
    tree = parse_value(text, file)
    if not isinstance(tree, YMap):
        raise _fail(tree.loc, f"the spec must be a mapping, got {type_name(tree)}",
                    "start the file with keys such as 'inputs:', 'edges:' and 'outputs:'")
    return tree


def parse_value(text: str, file: str) -> YNode:
    """Parse one YAML document (a spec, or a value given on the command line) into located values."""
    _check_printable(text, file)
    with gc_paused():
        try:
            root, loader = _compose_any(text, file)
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(exc, file) from None
        except yaml.YAMLError as exc:  # errors without a mark
            raise _fail(Location(file), f"invalid YAML: {exc}") from None
        except RecursionError:
            raise _fail(Location(file), f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)") from None
        return _Converter(file, loader).convert(root, depth=0)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a spec is read.

    Every collection would walk all the nodes made so far, which makes
    reading a large spec grow faster than its size. A spec is bounded by
    MAX_NODES, so the memory this holds back is bounded too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_printable(text: str, file: str) -> None:
    """Refuse control characters with the character and its place (PyYAML's reader finds them)."""
    try:
        yaml.reader.Reader(text)
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        loc = Location(file, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise _fail(loc, f"control character {code:#04x} is not allowed in YAML",
                    "delete it (editors sometimes insert form feeds or escape codes)") from None


def _compose_any(text: str, file: str) -> tuple[yaml.Node, Any]:
    """Compose with libyaml where it agrees with the pure-Python loader, else with the latter.

    libyaml accepts tabs that PyYAML refuses (`units:\t8`), and words and places
    some errors differently, so those texts go to the pure-Python loader, whose
    messages are the documented ones.
    """
    if "\t" not in text:
        try:
            return _compose(text, file, _FastLoader)
        except (yaml.YAMLError, SpecError):
            pass
    return _compose(text, file, _Loader)


def _compose(text: str, file: str, loader_class: type) -> tuple[yaml.Node, Any]:
    """The one document in `text` as a node tree, and the loader that can construct its scalars."""
    loader = loader_class(text)
    try:
        if not loader.check_node():
            raise _fail(Location(file, 1, 1), "spec is empty",
                        "a spec is a mapping with at least 'inputs', 'edges' and 'outputs'")
        root = loader.get_node()
        if loader.check_node():
            extra = loader.get_node()
            raise _fail(
                _location(file, extra.start_mark),
                "several YAML documents in one spec file",
                "keep one model per file; remove the '---' separator",
            )
    finally:
        loader.dispose()
    return root, loader


def load_file(path: str | Path) -> YMap:
    """Read and parse one spec file."""
    path = Path(path)
    return parse_text(read_text(path), str(path))


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    loc = _location(file, mark) if mark else Location(file)
    problem = (exc.problem or "").strip()
    if "'\\t'" in problem or "\\t" in problem:
        return _fail(loc, "tab character in indentation; YAML indents with spaces only",
                     "replace the tab with spaces")
    detail = problem or (exc.context or "").strip()
    context, start = (exc.context or "").strip(), exc.context_mark
    if context.startswith("while ") and start is not None and start is not mark:
        # e.g. "(in the flow mapping started at line 2, column 6)"
        what = context.removeprefix("while parsing ").removeprefix("while scanning ").removeprefix("a ")
        detail += f" (in the {what} started at line {start.line + 1}, column {start.column + 1})"
    return _fail(loc, f"invalid YAML: {detail}", "check the indentation and punctuation near here")


# Implicitly typed scalars a spec has no use for: they stay strings.
_AS_STRING_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}


class _Converter:
    """PyYAML nodes -> located values, with limits on size and depth."""

    def __init__(self, file: str, loader: Any):
        self.file = file
        self.loader = loader
        self.count = 0
        self.open: set[int] = set()  # nodes being converted: an alias back to one is a cycle

    def fail(self, node: yaml.Node, message: str, hint: str | None = None) -> SpecError:
        return _fail(_location(self.file, node.start_mark), message, hint)

    def convert(self, node: yaml.Node, depth: int) -> YNode:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, f"spec expands to more than {MAX_NODES} YAML values",
                            "aliases ('*name') nested this deep look like an alias bomb; write the spec out")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)")
        if id(node) in self.open:
            raise self.fail(node, "an alias refers to the value that contains it",
                            "a spec cannot hold a recursive structure; remove the '*' alias")
        loc = _location(self.file, node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, loc)
        if node.tag not in _STANDARD_TAGS:
            raise self.unknown_tag(node)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return YSeq(loc, [self.convert(item, depth + 1) for item in node.value])
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, loc, depth)
        finally:
            self.open.discard(id(node))

    def unknown_tag(self, node: yaml.Node) -> SpecError:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        return self.fail(node, f"YAML tag '{tag}' is not allowed in a spec",
                         "remove the tag; specs hold plain values only")

    def scalar(self, node: yaml.ScalarNode, loc: Location) -> YScalar:
        if node.tag in _AS_STRING_TAGS:
            return YScalar(loc, node.value, node.value)
        if node.tag not in _STANDARD_TAGS:
            raise self.unknown_tag(node)
        try:
            value = self.loader.construct_object(node, deep=True)
        except Exception:  # e.g. `!!int abc` raises ValueError inside PyYAML
            raise _fail(loc, f"invalid value '{node.value}' for its YAML tag "
                        f"'{node.tag.replace('tag:yaml.org,2002:', '!!')}'",
                        "remove the tag, or write a value of that type") from None
        return YScalar(loc, value, node.value)

    def mapping(self, node: yaml.MappingNode, loc: Location, depth: int) -> YMap:
        # Merged entries (`<<: *defaults`) come first, as in PyYAML; explicit keys override them.
        merged: dict[str, tuple[YScalar, YNode]] = {}
        explicit: dict[str, tuple[YScalar, YNode]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                for key, entry in self.merge_sources(value_node, depth):
                    merged.setdefault(key, entry)
                continue
            key = self.convert(key_node, depth + 1)
            if not isinstance(key, YScalar):
                raise _fail(key.loc, "mapping keys must be plain names, not lists or mappings")
            text = str(key_node.value)  # keys as written: `on:` is the name 'on', not True
            if text in explicit:
                first = explicit[text][0].loc
                raise _fail(key.loc, f"duplicate key '{text}' (first defined at line {first.line})",
                            "YAML would silently keep only the last one; remove or rename one")
            explicit[text] = (key, self.convert(value_node, depth + 1))
        result = YMap(loc)
        result.entries = {**merged, **explicit}
        return result

    def merge_sources(self, node: yaml.Node, depth: int) -> Iterator[tuple[str, tuple[YScalar, YNode]]]:
        """Entries brought in by a YAML merge key (`<<: *defaults` or `<<: [*a, *b]`)."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            converted = self.convert(source, depth + 1)
            if not isinstance(converted, YMap):
                raise _fail(converted.loc, "'<<' merges mappings only",
                            "point '<<' at an anchored mapping, e.g. '<<: *defaults'")
            yield from converted.entries.items()
