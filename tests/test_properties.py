"""Property tests: random mutations of the shipped specs never escape as anything but a located error.

Each example deletes a key, changes a value's type, renames a reference,
shortens a list, or makes a number negative or huge, somewhere in a shipped
spec. The mutated spec must either validate and build, or fail with a
KspecError whose diagnostics are located in the file. Bounded for the normal
suite; `KSPEC_HYPOTHESIS=long` runs many more examples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kspec.build import build
from kspec.errors import KspecError
from kspec.spec import validate
from kspec.spec.load import load_file, to_python

settings.register_profile("default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile("long" if os.environ.get("KSPEC_HYPOTHESIS") == "long" else "default")

# vqa is left out only for speed: its 165M parameters take seconds to build.
SOURCES = {path.stem: to_python(load_file(path)) for path in sorted(SPECS.glob("*.yaml")) if path.stem != "vqa"}
MUTATIONS = ("delete", "retype", "rename", "shorten", "negate", "huge")
REPLACEMENTS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                         st.text(max_size=8), st.lists(st.integers(0, 3), max_size=3),
                         st.dictionaries(st.text(max_size=5), st.integers(0, 3), max_size=2))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _mutate(tree: Any, path: tuple, kind: str, replacement: Any) -> Any:
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    value = parent[key]
    if kind == "delete":
        del parent[key]
    elif kind == "retype":
        parent[key] = replacement
    elif kind == "rename" and isinstance(value, str):
        parent[key] = value + "x"
    elif kind == "shorten" and isinstance(value, list):
        parent[key] = value[:-1]
    elif kind == "negate" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = -value
    elif kind == "huge" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = 10**12
    return tree


@st.composite
def mutated_specs(draw: Any) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(SOURCES)))
    tree = yaml.safe_load(yaml.safe_dump(SOURCES[name]))  # a fresh copy
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(tree)
        if not paths:
            break
        tree = _mutate(tree, draw(st.sampled_from(paths)), draw(st.sampled_from(MUTATIONS)), draw(REPLACEMENTS))
    return name, tree


@given(mutated_specs())
def test_mutations_build_or_fail_with_a_located_error(tmp_path_factory, example):
    name, tree = example
    path = Path(tmp_path_factory.mktemp("mutant")) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    model, diagnostics = validate(path)
    errors = [d for d in diagnostics if d.is_error]
    if not errors:
        assert model is not None
        try:
            build(model)
            return
        except KspecError as exc:
            errors = exc.diagnostics
    assert errors
    for diagnostic in errors:
        assert diagnostic.location.file in (str(path), "--set") or diagnostic.location.file.endswith(".keras"), \
            diagnostic.format()
        assert diagnostic.message
