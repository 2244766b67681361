"""The package's layout: a command's code is found by its name, and no two modules share one.

A newcomer looking for `kspec graph` opens kspec/graph.py; one looking for
the checks behind `kspec validate` opens kspec/spec/. Two modules with the
same name (kspec/check.py beside a kspec/spec/check.py) would send them to
the wrong one, so module names are unique across the whole package.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from kspec.cli import main

PACKAGE = Path(__file__).resolve().parent.parent / "kspec"

# Commands whose module cannot carry the command's own name, and why.
MODULE_OF = {
    "validate": "spec",  # the spec language package: loading, parsing and its checks
    "summary": "build",  # a summary is Keras's own, of the model build.py makes
    "inspect": "inspection",  # a module named inspect would shadow the standard library's
    "import": "importer",  # import is a Python keyword
}


def _module_names() -> list[str]:
    """Every module and package name under kspec/, without __init__ and __main__."""
    names = [path.stem for path in PACKAGE.rglob("*.py") if not path.stem.startswith("__")]
    names += [path.name for path in PACKAGE.rglob("*") if path.is_dir() and (path / "__init__.py").exists()]
    return names


def test_every_command_has_a_module_named_after_it():
    modules = set(_module_names())
    missing = {command: MODULE_OF.get(command, command) for command in main.commands
               if MODULE_OF.get(command, command) not in modules}
    assert missing == {}


def test_no_two_modules_share_a_name():
    repeated = {name: count for name, count in Counter(_module_names()).items() if count > 1}
    assert repeated == {}

