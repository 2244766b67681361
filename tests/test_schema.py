"""The JSON Schema and the checker agree, tested against each other.

On every shipped spec and every invalid-spec fixture: the schema never
refuses what kspec accepts, and every structural error kspec's parser finds
(wrong keys, wrong types, bad names) the schema finds too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SPECS
from jsonschema import Draft202012Validator

from kspec.cli import main
from kspec.errors import SpecError
from kspec.schema import schema
from kspec.spec import validate
from kspec.spec.load import load_file, to_python
from kspec.spec.parse import parse

INVALID = Path(__file__).parent / "specs" / "invalid"
VALIDATOR = Draft202012Validator(schema())
# Parse errors about other files, which a schema of one document cannot see.
FILE_PROBLEMS = ("included spec", "include cycle", "weights file", "'include' names", "'weights' names",
                 "'include' is not", "'weights' is not", "includes expand", "vocabulary file", "'vocabulary' ")


def _schema_errors(path: Path) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(to_python(load_file(path)))]


def test_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_spec_validates(path):
    assert _schema_errors(path) == []


def _loadable_fixtures() -> list[Path]:
    paths = []
    for path in sorted(INVALID.glob("*.yaml")):
        try:
            load_file(path)
        except SpecError:
            continue  # not YAML a schema could see
        paths.append(path)
    return paths


@pytest.mark.parametrize("path", _loadable_fixtures(), ids=lambda p: p.stem)
def test_schema_and_checker_agree(path, monkeypatch):
    monkeypatch.chdir(INVALID)
    schema_errors = _schema_errors(path)
    _, parse_diagnostics = parse(path.name)
    structural = [d for d in parse_diagnostics if d.is_error and d.location.file == path.name
                  and not d.message.startswith(FILE_PROBLEMS)]
    _, all_diagnostics = validate(path.name)
    if structural:
        assert schema_errors, f"kspec finds {structural[0].message!r}; the schema accepts the spec"
    if schema_errors:
        assert any(d.is_error for d in all_diagnostics), f"the schema refuses ({schema_errors[0]}); kspec accepts"


def test_structural_fixtures_are_many():
    # The agreement test above must have structural cases to bite on.
    structural = 0
    for path in _loadable_fixtures():
        _, diagnostics = parse(path)
        structural += any(d.is_error and not d.message.startswith(FILE_PROBLEMS) for d in diagnostics)
    assert structural >= 15


def test_schema_knows_layer_classes_and_arguments():
    assert _errors_for({"inputs": {"x": [4]}, "edges": {"y": {"Dense": {"units": 2}}}, "outputs": ["y"]}) == []
    assert _errors_for({"inputs": {"x": [4]}, "edges": {"y": {"Dense": {"unit": 2}}}, "outputs": ["y"]})
    assert _errors_for({"inputs": {"x": [4]}, "edges": {"y": {"Lambda": {}}}, "outputs": ["y"]})


def _errors_for(document):
    return list(VALIDATOR.iter_errors(document))


def test_cli_prints_and_writes_the_schema(tmp_path):
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema()
    target = tmp_path / "kspec.schema.json"
    assert CliRunner().invoke(main, ["schema", "-o", str(target)]).exit_code == 0
    assert json.loads(target.read_text()) == schema()
