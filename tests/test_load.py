"""The YAML loader: values with locations, and what it refuses."""

from __future__ import annotations

import pytest

from kspec.errors import Location, SpecError
from kspec.spec.load import YMap, YScalar, YSeq, parse_text, to_python


def test_values_keep_their_locations():
    tree = parse_text("inputs:\n  x: {shape: [784, null]}\n", "f.yaml")
    shape = tree.get("inputs").get("x").get("shape")
    assert isinstance(shape, YSeq)
    assert shape.loc == Location("f.yaml", 2, 14)
    assert [item.loc.column for item in shape.items] == [15, 20]
    assert to_python(tree) == {"inputs": {"x": {"shape": [784, None]}}}


def test_exponent_without_dot_is_a_float():
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; a spec reads it as Keras users mean it.
    tree = parse_text("a: 1e-3\nb: 2E5\nc: 1.5e-2\nd: e5\n", "f.yaml")
    assert to_python(tree) == {"a": 0.001, "b": 200000.0, "c": 0.015, "d": "e5"}


def test_merge_keys_bring_in_shared_arguments():
    text = "base: &conv {filters: 8, padding: same}\nlayer: {<<: *conv, filters: 16}\n"
    assert to_python(parse_text(text, "f.yaml"))["layer"] == {"filters": 16, "padding": "same"}


def test_keys_are_taken_as_written():
    # YAML 1.1 would read the key `on` as True; a spec name is a name.
    tree = parse_text("on: 1\n'yes': 2\n", "f.yaml")
    assert list(tree.entries) == ["on", "yes"]


def test_byte_order_mark_is_ignored(tmp_path):
    from kspec.spec.load import load_file

    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: x\n".encode("utf-8"))
    assert to_python(load_file(path)) == {"name": "x"}


@pytest.mark.parametrize("text, message", [
    ("a: !!python/name:os.system x\n", "YAML tag '!!python/name:os.system' is not allowed in a spec"),
    ("a: !custom 3\n", "YAML tag '!custom' is not allowed in a spec"),
    ("a: {b: 1, b: 2}\n", "duplicate key 'b' (first defined at line 1)"),
    ("[1, 2]\n", "the spec must be a mapping, got a list"),
    ("just text\n", "the spec must be a mapping, got the string 'just text'"),
    ("", "spec is empty"),
])
def test_refusals(text, message):
    with pytest.raises(SpecError) as info:
        parse_text(text, "f.yaml")
    assert info.value.diagnostics[0].message == message


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(SpecError) as info:
        parse_text("\n".join(lines) + "\n", "bomb.yaml")
    assert info.value.diagnostics[0].message == "spec expands to more than 200000 YAML values"


def test_scalars_record_their_text():
    tree = parse_text("a: 0x10\n", "f.yaml")
    node = tree.get("a")
    assert isinstance(node, YScalar) and node.value == 16 and node.text == "0x10"
    assert isinstance(tree, YMap)


def _located(node):
    """A tree as plain data with every location in it, to compare two loaders' trees."""
    if isinstance(node, YScalar):
        return (node.loc, node.value, type(node.value), node.text)
    if isinstance(node, YSeq):
        return (node.loc, [_located(item) for item in node.items])
    return (node.loc, {key: (_located(k), _located(v)) for key, k, v in node.items()})


def _spec_texts():
    from pathlib import Path

    root = Path(__file__).parent.parent
    paths = sorted(root.glob("specs/*.yaml")) + sorted((root / "tests/specs/invalid").glob("*.yaml"))
    return [pytest.param(path, id=path.name) for path in paths]


# Texts where libyaml and PyYAML's pure-Python loader disagree on their own
# (tabs, the place of a second document): kspec must still answer as the
# pure-Python loader does. (One known difference is left: in `{a: , b}`,
# libyaml places the empty value one column later.)
_TRICKY = ["a:\t1\n", "a: 1\t\n", "a: x\ty\n", "edges:\n  h:\t{Dense: {units: 8}}\n", "a: 1\n---",
           "a: 1\n--- b\n", "a: 'x\ty'\n", "a: [1, 2\n", "a: {b: 1\n", "- - - x\n", "a: b: c\n",
           "a: " + "[" * 25_000 + "]" * 25_000 + "\n", "- " * 25_000 + "x\n"]


_TEXTS = _spec_texts() + [pytest.param(text, id=f"tricky{i}") for i, text in enumerate(_TRICKY)]


@pytest.mark.parametrize("path", _TEXTS)
def test_libyaml_and_python_loaders_agree(path, monkeypatch):
    # Specs are composed by libyaml when PyYAML has it, and by the pure-Python
    # loader otherwise: both must give the same tree or the same error.
    import yaml

    from kspec.spec import load

    if load._FastLoader is load._Loader:
        pytest.skip("this PyYAML was built without libyaml")
    assert issubclass(load._FastLoader, yaml.CSafeLoader)
    text = path if isinstance(path, str) else path.read_text(encoding="utf-8", errors="replace")

    def outcome():
        try:
            return _located(parse_text(text, "f.yaml"))
        except SpecError as exc:
            return str(exc)

    fast = outcome()
    monkeypatch.setattr(load, "_FastLoader", load._Loader)
    assert outcome() == fast


def test_columns_count_characters_not_bytes():
    # libyaml reads UTF-8 bytes; its marks must still count characters, as editors do.
    tree = parse_text('a: {b: "é€😀", c: [1, 2]}\n', "f.yaml")
    assert tree.get("a").get("c").loc == Location("f.yaml", 1, 18)
