"""`kspec check`: smoke-test many specs in one process, for CI.

Each spec is validated, built, trained for a couple of steps on synthetic
data and run for a prediction. A failing spec is reported with its located
error and does not stop the others. Results print as a table, or as JSON,
and can be written as JUnit XML for CI systems.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .backend import stderr_silenced
from .errors import Diagnostic, KspecError, Location
from .files import write_text

SAMPLES = 8  # synthetic samples per spec: two training steps at batch size 4
EAGER_MAX_PARAMS = 10_000_000  # models below this train their two steps eagerly (see smoke_test)


@dataclass
class CheckResult:
    spec: str
    passed: bool
    params: int | None = None
    seconds: float = 0.0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "status": "passed" if self.passed else "failed", "params": self.params,
                "seconds": round(self.seconds, 3), "note": self.note,
                "diagnostics": [d.to_dict() for d in self.diagnostics]}


def collect(paths: Iterable[str]) -> tuple[list[Path], list[Diagnostic]]:
    """Spec files named by files, folders (every *.yaml / *.yml below) and globs."""
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():  # a file, or a FIFO or device, which the spec-file check refuses unopened
            found.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                problems.append(Diagnostic(Location(text), "no spec file matches this pattern"))
            found += matches
        else:
            problems.append(Diagnostic(Location(text), "no such file or folder", "check the path"))
    unique = list(dict.fromkeys(found))
    return unique, problems


def check_spec(path: Path, overrides: Sequence[str] = (), max_params: int | None = None) -> CheckResult:
    """Validate, build, train two steps and predict; never raises for the spec's own problems."""
    from .build import import_keras

    keras = import_keras()
    started = time.monotonic()
    result = CheckResult(str(path), passed=False)
    try:
        result.note = smoke_test(path, overrides, max_params, result)
        result.passed = True
    except KspecError as exc:
        result.diagnostics = list(exc.diagnostics)
    except Exception as exc:  # a fault outside the located steps, still reported per spec
        result.diagnostics = [Diagnostic(Location(str(path)), f"Keras failed while training or predicting: "
                                                             f"{' '.join(str(exc).split())}")]
    finally:
        result.seconds = time.monotonic() - started
        keras.backend.clear_session()  # free the model before the next spec
    return result


def check_isolated(path: Path, overrides: Sequence[str] = (), max_params: int | None = None) -> CheckResult:
    """check_spec in a child process forked from this one, so that the spec's memory goes when it ends.

    Keras is imported here first, without starting it, so that no child
    pays for the import. Where a fork is unsafe (no fork on this system, or
    Keras already running in this process, its threads with it), the spec
    is checked in this process instead.
    """
    from .spec import read_spec

    started = time.monotonic()
    try:
        read_spec(path, overrides)  # a spec that does not validate needs no process of its own
    except KspecError as exc:
        return CheckResult(str(path), False, seconds=time.monotonic() - started, diagnostics=list(exc.diagnostics))
    if not _can_fork():
        return check_spec(path, overrides, max_params)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_check_in_child,
                                                        args=(sender, path, overrides, max_params))
    child.start()
    sender.close()
    try:
        result: CheckResult = receiver.recv()
    except EOFError:  # the child died before reporting, e.g. killed for memory
        result = CheckResult(str(path), passed=False, diagnostics=[Diagnostic(
            Location(str(path)), f"the process checking this spec ended without a result ({_ended(child)})",
            "a process killed by signal 9 most often ran out of memory; the system log (dmesg) says")])
        result.seconds = time.monotonic() - started
    child.join()
    return result


def _can_fork() -> bool:
    """Whether children can be forked safely: Keras imported by _preload and not started since.

    Started, Keras runs thread pools, and a forked child could wait forever on
    a lock one of them held; starting it adds threads, which Linux lists in
    /proc (elsewhere, no fork).
    """
    global _threads_after_preload
    if "fork" not in multiprocessing.get_all_start_methods() or not Path("/proc/self/task").is_dir():
        return False
    if _threads_after_preload is None:
        if "keras" in sys.modules:
            return False
        _preload()
        _threads_after_preload = _threads()
    return _threads() <= _threads_after_preload


_threads_after_preload: int | None = None


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _preload() -> None:
    """Import Keras and its backend's modules without creating a device or a thread pool."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")


def _check_in_child(sender: Any, path: Path, overrides: Sequence[str], max_params: int | None) -> None:
    from .build import import_keras

    with stderr_silenced():  # the first device use, where CUDA probing logs
        import_keras().ops.zeros(())
    sender.send(check_spec(path, overrides, max_params))
    sender.close()


def _ended(child: Any) -> str:
    child.join()
    code = child.exitcode
    return f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"


def smoke_test(path: Path, overrides: Sequence[str] = (), max_params: int | None = None,
               result: CheckResult | None = None) -> str:
    """Validate, build, predict and train two steps: a note on how it went, or a located KspecError.

    The model's parameter count goes into `result` once it is built.
    """
    from .build import build, check_activation_memory, import_keras
    from .run_errors import model_errors
    from .spec import read_spec

    spec, _ = read_spec(path, overrides)
    import_keras().utils.set_random_seed(0)
    built = build(spec, max_params=max_params) if max_params else build(spec)
    if result is not None:
        result.params = built.model.count_params()
    check_activation_memory(built, SAMPLES)
    from .adapt import adapt_synthetic

    built = adapt_synthetic(built, SAMPLES, max_params)  # layers marked adapt: true, on the same synthetic rows
    # Two steps are far cheaper run eagerly than traced into a graph first (resnet_blocks: a quarter of the CPU
    # time); but eagerly each optimizer update makes weight-sized temporaries, so a large model is traced
    # (vqa, 165M parameters: a peak of 5.9 GB eagerly, 4.5 GB traced, the same CPU time).
    built.model.run_eagerly = built.model.count_params() < EAGER_MAX_PARAMS
    with model_errors(spec, "predicting and training two steps on synthetic data"):
        return _predict_and_train(spec, built.model)


def _predict_and_train(spec: Any, model: Any) -> str:
    """Predict, then train two steps, on synthetic data; a note on how it went."""
    from .data import REGRESSION, Dataset, labels_from_teacher, output_kinds, synthetic_inputs

    dataset = Dataset(synthetic_inputs(spec, SAMPLES, np.random.default_rng(0)), {}, "synthetic")
    outputs = model.predict(dataset.x(spec), batch_size=SAMPLES, verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if spec.compile is None or spec.compile.loss is None:
        return "no loss: built and predicted, not trained"
    # Labels from the model's own outputs (shifted, for regression), so that they fit each loss.
    rng = np.random.default_rng(1)
    named = {name: out + rng.normal(size=out.shape).astype(out.dtype) if kind == REGRESSION else out
             for (name, kind), out in zip(output_kinds(spec).items(), outputs)}
    dataset.targets = labels_from_teacher(named, output_kinds(spec))
    history = model.fit(dataset.x(spec), dataset.y(spec), batch_size=SAMPLES // 2, epochs=1, verbose=0)
    loss = history.history["loss"][-1]
    if not np.isfinite(loss):
        raise KspecError([Diagnostic(spec.compile.loss.loc, f"training gave a loss of {loss}",
                                     "check the loss and the model's outputs")])
    return f"loss {loss:.4g}"


def format_table(results: list[CheckResult]) -> str:
    header = ["spec", "status", "params", "time", "note"]
    rows = [[r.spec, "ok" if r.passed else "FAILED", f"{r.params:,}" if r.params is not None else "-",
             f"{r.seconds:.1f}s", r.note] for r in results]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = []
    for row, result in zip([header] + rows, [None] + results):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if result is not None and not result.passed:
            lines += ["    " + line for d in result.diagnostics for line in d.format().splitlines()]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results)} spec(s): {len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


# XML 1.0 allows tab, newline and carriage return but no other control
# character, so Keras messages with terminal colours would break the file.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` without terminal escapes and without characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("?", _ANSI_ESCAPE.sub("", text))


def junit_xml(results: list[CheckResult]) -> str:
    """JUnit XML: one testcase per spec, the located error inside a failure."""
    suite = ET.Element("testsuite", name="kspec check", tests=str(len(results)),
                       failures=str(sum(not r.passed for r in results)), errors="0",
                       time=f"{sum(r.seconds for r in results):.3f}")
    for result in results:
        case = ET.SubElement(suite, "testcase", classname="kspec.check", name=xml_text(result.spec),
                             time=f"{result.seconds:.3f}")
        if not result.passed:
            text = "\n".join(d.format() for d in result.diagnostics)
            first = result.diagnostics[0].format(with_source=False).splitlines()[0] if result.diagnostics else "failed"
            failure = ET.SubElement(case, "failure", message=xml_text(first))
            failure.text = xml_text(text)
        elif result.note:
            ET.SubElement(case, "system-out").text = xml_text(result.note)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_junit(results: list[CheckResult], path: Path) -> None:
    write_text(path, junit_xml(results))
