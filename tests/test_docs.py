"""Every command line printed in README.md, docs/*.md and data/README.md runs here, as printed.

The rule the documents follow, so that a change to an example is tested by the same change:

- Commands live in fenced blocks tagged `sh`, `bash`, `shell` or `console`. Any other block (yaml, python, json,
  untagged text) holds none: a line there that starts with `kspec ` or `$ ` fails the test.
- In an `sh`, `bash` or `shell` block every line is a command, except blank lines and `#` comments. A line ending
  in a backslash continues on the next, and a `for`, `while`, `until` or `if` runs to its `done` or `fi`.
- In a `console` block a line starting with `$ ` is a command, and the lines after it (up to the next
  `$ `) are what it prints: the command must print them, except that numbers with a fraction (losses,
  statistics of random weights) may differ.
- Installing is left out, since the tests run in the installed venv: in a `&&` chain, `python3 -m venv`,
  `. .venv/bin/activate` and `pip install` are dropped, and so is `python -m pytest` (this suite). A
  block with nothing left is skipped, naming what was dropped.
- `<!-- not run: REASON -->` on the line before a block skips it with that reason (two hosts with GPUs);
  `<!-- exit: N -->` says that the block's last command fails with exit code N, as the text shows.

Each block runs in its own temporary folder holding copies of specs/, data/ and docs/; its commands run in
order in one shell (so later ones use earlier ones' outputs, e.g. runs/digits), inside a private network
namespace with only loopback, every kspec process under a timeout. Each command must end with its exit
code (0 unless documented), and print no traceback and, when it succeeds, no error.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "data" / "README.md"]
COPIED = ("specs", "data", "docs")
TIMEOUT = 600  # per kspec process; the block as a whole gets a little more per command

# Blocks that take more than about 20 s on two shared cores (measured); the ids are the tests' ids.
SLOW = {
    "README.md#quick-start-1",  # trains multi_io for 3 epochs (about 20 s)
    "README.md#quick-start-2",  # trains the digits CNN for 15 epochs, then evaluates and predicts (about 40 s)
    "README.md#checking-specs-in-ci-1",  # two training steps of every shipped spec
    "README.md#overrides-1",  # two trainings, one of an LSTM over 140x256 inputs
    "README.md#inspecting-layer-calls-1",  # two inspections (about 20 s)
    "docs/distributed.md#trying-it-on-one-machine-1",  # two processes joining over loopback
    "README.md#searching-hyperparameters-2",  # kspec tune: two trials of one epoch (about 45 s)
    "README.md#from-a-csv-or-parquet-table-or-a-folder-of-images-1",  # trains breast_cancer for 30 epochs (about 40 s)
}

SHELL_TAGS = {"sh", "bash", "shell"}
COMMAND_TAGS = SHELL_TAGS | {"console"}
FENCE = re.compile(r"^\s*(`{3,})\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(not run|exit):\s*(.*?)\s*-->$")
OPENS = re.compile(r"^(for|while|until|if)\b")
CLOSES = re.compile(r"(^|;\s*)(done|fi)\b")
DROPPED = [  # (pattern of one step of a && chain, why it is not run)
    (re.compile(r"^python3? -m venv\b"), "creates a venv (the tests run in the installed one)"),
    (re.compile(r"^(\.|source) \S*bin/activate$"), "activates a venv (the tests run in the installed one)"),
    (re.compile(r"^pip3? install\b"), "installs packages (the tests run in the installed venv)"),
    (re.compile(r"^python3? -m pytest\b"), "runs the test suite, which holds this test"),
]
DECIMAL = re.compile(r"-?\d+\.\d+(e[-+]?\d+)?%?")
START, END = "@@doc-command", "@@doc-exit"


@dataclass
class Command:
    text: str  # as printed, less dropped install steps
    output: list[str] | None = None  # a console block's printed output


@dataclass
class Block:
    id: str
    where: str  # FILE:LINE of the opening fence
    tag: str
    lines: list[str]
    not_run: str | None = None
    exit_code: int = 0
    commands: list[Command] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


# ----------------------------------------------------------------- reading the Markdown
def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def read_blocks(text: str, name: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the commands of the command blocks."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading, counts = "top", {}
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = _slug(line.lstrip("#"))
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), len(lines))
        tag = fence.group(2)
        block = Block(id="", where=f"{name}:{i + 1}", tag=tag, lines=lines[i + 1:end])
        _apply_marker(block, lines[i - 1].strip() if i > 0 else "")
        if tag in COMMAND_TAGS:
            counts[heading] = counts.get(heading, 0) + 1
            block.id = f"{name}#{heading}-{counts[heading]}"
            commands = _console_commands(block.lines) if tag == "console" else _shell_commands(block.lines)
            for command in commands:
                _drop_installs(command, block.dropped)
            block.commands = [command for command in commands if command.text]
        blocks.append(block)
        i = end + 1
    return blocks


def _apply_marker(block: Block, previous_line: str) -> None:
    marker = MARKER.match(previous_line)
    if marker and marker.group(1) == "not run":
        block.not_run = marker.group(2)
    elif marker:
        block.exit_code = int(marker.group(2))


def _logical_lines(lines: list[str]) -> list[str]:
    """Lines joined where one ends in a backslash."""
    joined: list[str] = []
    pending = ""
    for line in lines:
        pending += line
        if line.endswith("\\"):
            pending += "\n"
        else:
            joined.append(pending)
            pending = ""
    if pending:
        joined.append(pending)
    return joined


def _shell_commands(lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    depth = 0
    for line in _logical_lines(lines):
        stripped = line.strip()
        if depth == 0 and (not stripped or stripped.startswith("#")):
            continue
        if depth > 0:
            commands[-1].text += "\n" + line
        else:
            commands.append(Command(line))
        depth += bool(OPENS.match(stripped)) - bool(CLOSES.search(stripped))
    return commands


def _console_commands(lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    for line in _logical_lines(lines):
        if line.startswith("$ "):
            commands.append(Command(line[2:], output=[]))
        elif commands and line.strip():
            commands[-1].output.append(line)  # type: ignore[union-attr]
    return commands


def _drop_installs(command: Command, dropped: list[str]) -> None:
    """Leave out the steps of a && chain that install, naming each with why."""
    if "\n" in command.text and OPENS.match(command.text.strip()):
        return
    kept = []
    for step in (part.strip() for part in command.text.split("&&")):
        reason = next((why for pattern, why in DROPPED if pattern.search(step)), None)
        if reason:
            dropped.append(f"'{step}' {reason}")
        else:
            kept.append(step)
    command.text = " && ".join(kept)


def all_blocks() -> list[Block]:
    return [block for path in DOCUMENTS
            for block in read_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]


BLOCKS = all_blocks()
COMMAND_BLOCKS = [block for block in BLOCKS if block.tag in COMMAND_TAGS]


# ----------------------------------------------------------------- running a block
def _script(block: Block) -> str:
    lines = [f'kspec() {{ timeout {TIMEOUT} kspec "$@"; }}']  # every kspec process, also in loops
    for i, command in enumerate(block.commands):
        lines += [f"echo {START} {i}", command.text, f"echo {END} {i} $?"]
    return "\n".join(lines) + "\n"


def run_block(block: Block, folder: Path) -> list[tuple[int, str]]:
    """Run a block's commands in order in `folder`; each one's exit code and output."""
    for name in COPIED:
        shutil.copytree(ROOT / name, folder / name)
    script = folder.parent / f"{folder.name}.sh"
    script.write_text(_script(block), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JAX_", "KERAS_BACKEND"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(["unshare", "-rn", "bash", "-c", f"ip link set lo up && exec bash {script}"],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=(TIMEOUT + 30) * len(block.commands))
    return _split_output(result.stdout, len(block.commands))


def _split_output(output: str, count: int) -> list[tuple[int, str]]:
    results = []
    for i in range(count):
        match = re.search(rf"^{START} {i}\n(.*?)^{END} {i} (\d+)$", output, re.S | re.M)
        assert match, f"command {i + 1} never finished; the shell printed:\n{output}"
        results.append((int(match.group(2)), match.group(1)))
    return results


def _normalised(lines: list[str]) -> list[str]:
    """Printed lines with numbers that have a fraction replaced, and runs of spaces made one."""
    return [" ".join(DECIMAL.sub("#", line).split()) for line in lines if line.strip()]


def _missing_backend(block: Block) -> str | None:
    for backend in re.findall(r"--backend (\w+)", "\n".join(command.text for command in block.commands)):
        if importlib.util.find_spec(backend) is None:
            return backend
    return None


# ----------------------------------------------------------------- the tests
def _params() -> list:
    return [pytest.param(block, id=block.id, marks=[pytest.mark.slow] if block.id in SLOW else [])
            for block in COMMAND_BLOCKS]


@pytest.mark.parametrize("block", _params())
def test_documented_commands_run_as_printed(block: Block, tmp_path: Path):
    if block.not_run:
        pytest.skip(f"{block.where}: not run: {block.not_run}")
    if not block.commands:
        pytest.skip(f"{block.where}: nothing left to run: {'; '.join(block.dropped)}")
    missing = _missing_backend(block)
    if missing:
        pytest.skip(f"{block.where}: needs the {missing} extra (pip install 'kspec[{missing}]')")
    assert shutil.which("kspec", path=str(Path(sys.executable).parent)), "kspec is not installed in this venv"
    results = run_block(block, tmp_path / "work")
    for i, (command, (code, output)) in enumerate(zip(block.commands, results)):
        expected = block.exit_code if i == len(block.commands) - 1 else 0
        where = f"{block.where}: `{command.text}`"
        assert code == expected, f"{where} exited {code}, not {expected}:\n{output}"
        assert "Traceback" not in output, f"{where} printed a traceback:\n{output}"
        if expected == 0:
            assert ": error:" not in output, f"{where} printed an error:\n{output}"
        if command.output is not None:
            shown = [line for line in output.splitlines() if not line.startswith(("WARNING:", "I0000", "E0000"))]
            assert _normalised(shown) == _normalised(command.output), f"{where} printed:\n{output}"


def test_commands_that_are_not_run_still_parse():
    # The examples skipped here (two hosts with GPUs) must at least name commands and options that exist.
    from kspec.cli import main

    commands = [command.text for block in COMMAND_BLOCKS if block.not_run for command in block.commands
                if command.text.startswith("kspec ")]
    assert commands, "no marked example holds a kspec command"
    for text in commands:
        words = shlex.split(text.replace("\\\n", " "))  # as the shell joins a continued line
        main.commands[words[1]].make_context(words[1], words[2:])  # a usage error raises here


def test_commands_appear_only_in_command_blocks():
    # A command in a block of another kind would never run: tag the block sh, bash, shell or console.
    hidden = [f"{block.where}: {line}" for block in BLOCKS if block.tag not in COMMAND_TAGS
              for line in block.lines if line.startswith(("kspec ", "$ "))]
    assert hidden == []


def test_the_documents_hold_the_examples_they_should():
    # Guards against a reader that finds nothing (and so tests nothing).
    assert SLOW <= {block.id for block in COMMAND_BLOCKS}, "SLOW names a block that is gone"
    by_id = {block.id: block for block in COMMAND_BLOCKS}
    one_machine = by_id["docs/distributed.md#trying-it-on-one-machine-1"]
    assert one_machine.not_run is None and "--synthetic 1024" in one_machine.commands[0].text
    two_hosts = [block for key, block in by_id.items() if key.startswith("docs/distributed.md#on-two-hosts")]
    assert two_hosts and all(block.not_run for block in two_hosts)


SAMPLE = """\
# Title

## Install

```sh
python3 -m venv .venv && . .venv/bin/activate && pip install -e . && kspec train a.yaml --synthetic 8
```

<!-- not run: needs two hosts with GPUs -->
```sh
# a comment
kspec train a.yaml --data d.npz \\
    --distributed
```

## Loop

```bash
for i in 0 1; do
  kspec train a.yaml --process-id $i &
done; wait
kspec plot runs/a
```

<!-- exit: 1 -->
```console
$ kspec inspect a.yaml
layer  node  mean
conv   0     0.25

$ kspec validate bad.yaml
bad.yaml:1:1: error: ...
```

```
kspec hidden in text
```
"""


def test_reading_the_markdown_follows_the_rule():
    install, gpu, loop, console, text = read_blocks(SAMPLE, "sample.md")
    assert install.id == "sample.md#install-1" and install.where == "sample.md:5"
    assert [c.text for c in install.commands] == ["kspec train a.yaml --synthetic 8"]
    assert [d.split("'")[1] for d in install.dropped] == ["python3 -m venv .venv", ". .venv/bin/activate",
                                                         "pip install -e ."]
    assert gpu.not_run == "needs two hosts with GPUs" and gpu.id == "sample.md#install-2"
    assert [c.text for c in gpu.commands] == ["kspec train a.yaml --data d.npz \\\n    --distributed"]
    assert [c.text for c in loop.commands] == [
        "for i in 0 1; do\n  kspec train a.yaml --process-id $i &\ndone; wait", "kspec plot runs/a"]
    assert console.exit_code == 1 and [c.text for c in console.commands] == ["kspec inspect a.yaml",
                                                                            "kspec validate bad.yaml"]
    assert console.commands[0].output == ["layer  node  mean", "conv   0     0.25"]
    assert _normalised(["conv   0     0.31"]) == _normalised(console.commands[0].output[1:])
    assert _normalised(["conv   1     0.25"]) != _normalised(console.commands[0].output[1:])
    assert text.tag == "" and text.commands == []


def test_a_script_reports_each_commands_exit_code_and_output():
    block = Block(id="x", where="x.md:1", tag="sh", lines=[], commands=[Command("echo one"), Command("false")])
    script = _script(block)
    result = subprocess.run(["bash", "-c", script.replace('kspec() {', 'unused() {')], capture_output=True,
                            text=True, timeout=30)
    assert _split_output(result.stdout, 2) == [(0, "one\n"), (1, "")]
