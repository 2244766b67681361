"""Messages fit on a screen, and machine-readable reports stay well formed.

Whatever a user's file holds (a CSV given as a spec, a 50 KB one-line JSON
spec), a message quotes a bounded window of it; whatever Keras puts in a
message (terminal colours, control characters), JUnit XML still parses.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from click.testing import CliRunner

from kspec.cli import main
from kspec.errors import Diagnostic, Location, source_window
from kspec.check import CheckResult, junit_xml

# A screen: no printed line longer than this, and not much more than a page.
LONGEST_LINE = 700
MOST_TEXT = 4000


def _validate(path) -> str:
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.stderr


def _fits_on_screen(text: str) -> None:
    assert len(text) < MOST_TEXT, len(text)
    assert max(len(line) for line in text.splitlines()) < LONGEST_LINE


def test_a_csv_given_as_a_spec_is_not_printed_back(tmp_path):
    table = tmp_path / "table.csv"
    rows = [f"{i},{i * 2},secret{i}" for i in range(3000)]
    table.write_text("a,b,c\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stderr = _validate(table)
    _fits_on_screen(stderr)
    assert stderr.startswith(f"{table}:1:1: error: the spec must be a mapping, got the string 'a,b,c 0,0,secret0")
    assert "secret100" not in stderr


def test_a_long_one_line_json_spec_quotes_a_window_around_the_mistake(tmp_path):
    spec = {"name": "wide", "inputs": {"x": {"shape": [4]}}, "description": "y" * 50_000,
            "edges": {"d": {"Dense": {"unitz": 2}, "in": "x"}}, "outputs": ["d"], "loss": "mse"}
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    stderr = _validate(path)
    _fits_on_screen(stderr)
    lines = stderr.splitlines()
    assert "unknown argument 'unitz' for Dense; did you mean 'units'?" in lines[0]
    quoted, caret = lines[1], lines[2]
    # The caret still points at the key the message is about.
    assert quoted[caret.index("^"):].startswith('"unitz"') or quoted[caret.index("^") + 1:].startswith("unitz")


def test_the_source_window_keeps_the_caret_on_its_column():
    line = "a" * 300 + "X" + "b" * 300
    shown, caret = source_window(line, 301)
    assert shown[caret] == "X"
    assert len(shown) <= 102  # the window and its two ellipses
    assert source_window("short", 3) == ("short", 2)
    start_shown, start_caret = source_window(line, 1)
    assert start_caret == 0 and start_shown.startswith("a") and start_shown.endswith("…")


def test_junit_xml_parses_whatever_keras_put_in_the_message():
    message = "Keras rejected Dense 'd': \x1b[1mbold\x1b[0m and a bell \x07 and a NUL \x00 end"
    failed = CheckResult(spec="specs/a\x1b[31m.yaml", passed=False,
                         diagnostics=[Diagnostic(Location("specs/a.yaml", 3, 5), message)])
    passed = CheckResult(spec="specs/b.yaml", passed=True, note="warning: \x1b[33myellow\x1b[0m")
    suite = ET.fromstring(junit_xml([failed, passed]).split("\n", 1)[1])
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == ("specs/a.yaml:3:5: error: Keras rejected Dense 'd': bold and a bell ? "
                                      "and a NUL ? end")
    assert suite.findall("testcase")[0].get("name") == "specs/a.yaml"
    assert suite.find("testcase/system-out").text == "warning: yellow"
