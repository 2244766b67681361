"""`kspec export`: a trained model as a TensorFlow SavedModel, ONNX or LiteRT file, checked against Keras.

Every format gets one serving signature keyed by the spec's input and
output names, with the spec's dtypes and shapes (the batch axis and `null`
axes dynamic). The export is written beside its target under a temporary
name, loaded back in its own runtime (TensorFlow, ONNX Runtime, the LiteRT
interpreter), run on sample rows and compared output by output with Keras's
`predict_on_batch`. Only when every output agrees within the tolerance is
it renamed into place: a failed check leaves nothing behind.

Nothing here imports TensorFlow at module level: the command's options and
the check for a format's optional packages come before it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .errors import RunError, SpecError, fail, shorten
from .spec.model import ModelDef

FORMATS = ("saved_model", "onnx", "litert")
SUFFIXES = {"saved_model": "", "onnx": ".onnx", "litert": ".tflite"}  # a SavedModel is a folder
RUNTIMES = {"saved_model": "TensorFlow", "onnx": "ONNX Runtime", "litert": "the LiteRT interpreter"}
# The modules each format needs beyond kspec's own dependencies, by import name.
EXTRAS = {"saved_model": (), "onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ("ai_edge_litert",)}
# Largest absolute difference allowed for a float32 output. The same graph in TensorFlow differs by
# nothing; ONNX Runtime and LiteRT fuse and reorder float operations (e.g. XNNPACK's kernels).
DEFAULT_ATOL = {"saved_model": 1e-5, "onnx": 1e-4, "litert": 1e-4}
# Outputs of 16-bit floats carry about 3 significant digits: their tolerance is this many times wider.
HALF_FLOAT_FACTOR = 100
SAMPLE_ROWS = 8  # synthetic rows, or the first rows of --data, that the check runs
SIGNATURE = "serving_default"


@dataclass(frozen=True)
class Difference:
    """How far one output of the export is from Keras's on the sample rows."""

    output: str
    absolute: float
    relative: float  # the absolute difference over the largest magnitude of Keras's output
    tolerance: float

    @property
    def agrees(self) -> bool:
        return self.absolute <= self.tolerance  # NaN never agrees

    def line(self) -> str:
        verdict = "ok" if self.agrees else "TOO LARGE"
        return (f"  {self.output}: largest difference {self.absolute:.3g} (relative {self.relative:.3g}), "
                f"tolerance {self.tolerance:.3g}: {verdict}")


@dataclass(frozen=True)
class Exported:
    path: Path
    format: str
    rows: int
    sample: str  # where the sample rows came from
    differences: list[Difference]


def check_extras(fmt: str) -> None:
    """Refuse a format whose exporter or runtime is not installed, naming the install command."""
    missing = [name for name in EXTRAS[fmt] if importlib.util.find_spec(name) is None]
    if missing:
        listed = ", ".join(missing)
        raise fail(RunError, f"--format {fmt}", f"exporting to {fmt} needs the optional packages it "
                   f"converts and checks with, and {listed} {'is' if len(missing) == 1 else 'are'} not installed",
                   f"pip install 'kspec[{fmt}]'")


def check_suffix(fmt: str, output: Path) -> str | None:
    """What is wrong with the output path's name for this format, if anything."""
    suffix = SUFFIXES[fmt]
    if suffix and output.suffix.lower() != suffix:
        return f"an {fmt} export is a file ending in {suffix}"
    if not suffix and output.suffix.lower() in (".onnx", ".tflite", ".keras"):
        return "a SavedModel is a folder; name it without a file suffix"
    return None


def export(spec: ModelDef, weights: Path, fmt: str, output: Path, data: Path | None = None,
           atol: float | None = None, max_params: int | None = None,
           say: Callable[[str], None] = lambda _: None) -> Exported:
    """Write `spec` with trained `weights` to `output` in `fmt`, only if its outputs agree with Keras's."""
    from .backend import import_keras
    from .build import DEFAULT_MAX_PARAMS, load_trained

    check_extras(fmt)
    backend = import_keras().backend.backend()
    if backend != "tensorflow":  # every format is converted from a TensorFlow graph of the model
        raise fail(RunError, "--backend", f"kspec export runs on the TensorFlow backend, not {backend}",
                   "leave out --backend (and KERAS_BACKEND), or give --backend tensorflow")
    built = load_trained(spec, weights, max_params or DEFAULT_MAX_PARAMS)
    inputs, sample = sample_inputs(spec, built, data)
    expected = keras_outputs(spec, built.model, inputs)
    writer = _WRITERS[fmt]
    with _staged(output, fmt) as staged:
        with converter_errors(spec, fmt):
            writer(spec, built.model, staged)
        got = run_export(fmt, staged, spec, inputs)
        differences = compare(expected, got, fmt, atol)
        for difference in differences:
            say(difference.line())
        wrong = [d for d in differences if not d.agrees]
        if wrong:
            listed = ", ".join(f"'{d.output}' by {d.absolute:.3g}" for d in wrong)
            raise fail(RunError, str(output), f"the {fmt} export disagrees with Keras on {sample}: {listed} "
                       f"(tolerance {wrong[0].tolerance:.3g}); nothing was written",
                       "raise --atol if such a difference is acceptable, or export to another format")
    return Exported(output, fmt, len(next(iter(inputs.values()))), sample, differences)


# ----------------------------------------------------------------- sample rows and Keras's outputs
def sample_inputs(spec: ModelDef, built: Any, data: Path | None) -> tuple[dict[str, np.ndarray], str]:
    """The rows the check runs: the first rows of --data, else synthetic rows that fit the spec."""
    from .data import load_npz, synthetic_inputs

    if data is None:
        rows = synthetic_inputs(spec, SAMPLE_ROWS, np.random.default_rng(0))
        return rows, f"{SAMPLE_ROWS} synthetic rows"
    dataset = load_npz(data, spec, built.output_shapes(), need_targets=False, stream=True)
    taken = dataset.take(slice(0, SAMPLE_ROWS))
    rows = {name: np.asarray(values) for name, values in taken.inputs.items()}
    return rows, f"the first {len(taken)} rows of {data}"


def keras_outputs(spec: ModelDef, model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from .data import Dataset
    from .run_errors import model_errors

    with model_errors(spec, "computing the outputs the export is checked against"):
        outputs = model.predict_on_batch(Dataset(inputs, {}, "sample rows").x(spec))
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {name: np.asarray(values) for name, values in zip(spec.output_names, outputs)}


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], fmt: str,
            atol: float | None) -> list[Difference]:
    """Each output's largest absolute and relative difference, and the tolerance it is held to."""
    differences = []
    for name, want in expected.items():
        have = np.asarray(got[name])
        if have.shape != want.shape:
            differences.append(Difference(name, float("inf"), float("inf"), 0.0))
            continue
        if want.dtype.kind in "fc":
            gap = float(np.max(np.abs(have.astype(np.float64) - want.astype(np.float64)), initial=0.0))
            scale = float(np.max(np.abs(want.astype(np.float64)), initial=0.0))
        else:  # integers, booleans, strings: equal or not
            gap = float(np.count_nonzero(have != want) > 0)
            scale = 1.0
        tolerance = atol if atol is not None else default_atol(fmt, want.dtype)
        differences.append(Difference(name, gap, gap / scale if scale else gap, tolerance))
    return differences


def default_atol(fmt: str, dtype: np.dtype) -> float:
    if dtype.kind not in "fc":
        return 0.0
    return DEFAULT_ATOL[fmt] * (HALF_FLOAT_FACTOR if dtype.itemsize <= 2 else 1)


# ----------------------------------------------------------------- writing each format
def _tensor_specs(spec: ModelDef) -> list[Any]:
    """The signature's inputs: the spec's names, dtypes and shapes, with a dynamic batch axis."""
    import tensorflow as tf

    return [tf.TensorSpec((None, *inp.shape), tf.string if inp.dtype == "string" else tf.as_dtype(inp.dtype or
                          "float32"), name=inp.name) for inp in spec.inputs]


def _serving_function(spec: ModelDef, model: Any) -> Callable[..., dict[str, Any]]:
    """The model's forward pass, taking the inputs in the spec's order and giving outputs by name."""
    def serve(*tensors: Any) -> dict[str, Any]:
        outputs = model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(spec.output_names, outputs))

    return serve


def write_saved_model(spec: ModelDef, model: Any, path: Path) -> None:
    """A SavedModel with one signature, `serving_default`, through Keras's ExportArchive."""
    from .backend import import_keras

    archive = import_keras().export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", _serving_function(spec, model), input_signature=_tensor_specs(spec))
    archive.write_out(str(path), verbose=False)


def write_onnx(spec: ModelDef, model: Any, path: Path) -> None:
    """The model's forward pass converted by tf2onnx, as Keras's `model.export(format="onnx")` does.

    Keras's export is followed but not called: tf2onnx turns the constants the
    function captures (e.g. an adapted Normalization's mean and variance) into
    extra graph inputs, which kspec puts back as the constants they are. The
    outputs are renamed after the spec's, and the dynamic axes named.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx  # what Keras's own ONNX export runs first

    serve = _serving_function(spec, model)
    names = spec.output_names
    function = tf.function(lambda *tensors: [serve(*tensors)[name] for name in names],
                           input_signature=_tensor_specs(spec))
    concrete = function.get_concrete_function()  # the one tf2onnx converts (tf.function caches it)
    with warnings.catch_warnings(), _quiet("tf2onnx"):  # kspec reports what it could not convert, once
        warnings.simplefilter("ignore", FutureWarning)  # Keras's patch for NumPy 2 looks up np.object
        patch_tf2onnx()
        graph, _ = tf2onnx.convert.from_function(function, input_signature=_tensor_specs(spec))
    _restore_captured_constants(graph, concrete)
    renamed = dict(zip([out.name for out in graph.graph.output], names))
    for node in graph.graph.node:
        node.output[:] = [renamed.get(name, name) for name in node.output]
        node.input[:] = [renamed.get(name, name) for name in node.input]
    for value in [*graph.graph.input, *graph.graph.output]:
        value.name = renamed.get(value.name, value.name)
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):  # tf2onnx names them unk__N
            if not dim.HasField("dim_value"):
                dim.dim_param = "batch" if axis == 0 else f"{value.name}_{axis}"
    foreign = [node for node in graph.graph.node if not onnx.defs.has(node.op_type, node.domain)]
    if foreign:  # tf2onnx copies a TensorFlow operation it cannot convert as is, which no ONNX runtime runs
        raise Unconverted(sorted({node.op_type for node in foreign}), " ".join(node.name for node in foreign))
    onnx.save(graph, str(path))


def _restore_captured_constants(graph: Any, concrete: Any) -> None:
    """Turn the graph inputs that are the function's captured constants back into stored constants."""
    from onnx import numpy_helper

    captured = {placeholder.name: value for placeholder, value in
                zip(concrete.graph.internal_captures, concrete.captured_inputs) if value.dtype.name != "resource"}
    extra = [value for value in graph.graph.input if value.name in captured]
    for value in extra:
        array = np.asarray(captured[value.name].numpy())
        array = array.astype(object) if array.dtype.kind in "SU" else array  # how ONNX takes strings
        graph.graph.initializer.append(numpy_helper.from_array(array, value.name))
        graph.graph.input.remove(value)


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's log (tf2onnx logs each node it cannot convert, with a traceback) for a block."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def write_litert(spec: ModelDef, model: Any, path: Path) -> None:
    """A .tflite of LiteRT's built-in operations only, so that any LiteRT runtime runs it.

    It is converted from the SavedModel kspec writes, as Keras's own LiteRT
    export does; Keras also allows TensorFlow operations ("Flex"), which the
    standalone LiteRT runtime cannot run.
    """
    import tensorflow as tf

    from .backend import stderr_silenced

    with tempfile.TemporaryDirectory(prefix=".kspec-litert.", dir=path.parent) as folder:
        write_saved_model(spec, model, Path(folder) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(folder) / "saved_model"),
                                                             signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        with stderr_silenced():  # the converter's C++ prints each refused operation; kspec names the layer
            flat = converter.convert()
        path.write_bytes(flat)


_WRITERS = {"saved_model": write_saved_model, "onnx": write_onnx, "litert": write_litert}


# ----------------------------------------------------------------- running each format
def run_export(fmt: str, path: Path, spec: ModelDef, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The export's outputs by name, computed by its own runtime."""
    try:
        return _RUNNERS[fmt](path, spec, inputs)
    except KeyError as exc:
        raise fail(RunError, str(path), f"the {fmt} export has no output or input {exc} in its signature",
                   "report this as a kspec bug") from None
    except Exception as exc:  # each runtime raises its own errors
        message = shorten(" ".join(str(exc).split()), 400)
        raise fail(RunError, str(path), f"{RUNTIMES[fmt]} could not run the {fmt} export: {message}",
                   "export to another format (saved_model runs whatever TensorFlow runs)") from None


def run_saved_model(path: Path, spec: ModelDef, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE]
    outputs = serve(**{name: tf.constant(values) for name, values in inputs.items()})
    return {name: outputs[name].numpy() for name in spec.output_names}


def run_onnx(path: Path, spec: ModelDef, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: values.astype(object) if values.dtype.kind in "US" else values for name, values in inputs.items()}
    return dict(zip(spec.output_names, session.run(spec.output_names, feed)))


def run_litert(path: Path, spec: ModelDef, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner(SIGNATURE)
    outputs = runner(**inputs)
    return {name: outputs[name] for name in spec.output_names}


_RUNNERS = {"saved_model": run_saved_model, "onnx": run_onnx, "litert": run_litert}


# ----------------------------------------------------------------- converter failures
_SCOPED = re.compile(r"[A-Za-z_][\w.-]*(?:/[\w.-]+)+")  # a graph node's path, e.g. model_1/lstm_1/while
_OPERATION = re.compile(r"'tf\.(\w+)' op|[Uu]nsupported ops?:? ?\W*(\w+)|No conversion function registered for op "
                        r"type (\w+)|op type not supported:? ?(\w+)")


class Unconverted(Exception):
    """A converter's output that still holds operations of TensorFlow's, by name, at these graph nodes."""

    def __init__(self, operations: list[str], nodes: str):
        super().__init__(nodes)
        self.operations = operations


@contextmanager
def converter_errors(spec: ModelDef, fmt: str) -> Iterator[None]:
    """Report a converter's failure at the spec's layer whose operations it could not express."""
    try:
        yield
    except Exception as exc:  # TensorFlow's ConverterError, tf2onnx's and Keras's ValueErrors, ...
        from .build import graph_location

        text = str(exc)
        layer = failing_layer(spec, text)
        operations = getattr(exc, "operations", None) or sorted({next(filter(None, found))
                                                                 for found in _OPERATION.findall(text)})
        what = f" (TensorFlow operations {', '.join(operations)})" if operations else ""
        where = graph_location(spec, text) or spec.loc
        subject = f"layer '{layer}'" if layer else "this model"
        detail = "" if layer or operations else ": " + shorten(" ".join(text.split()), 300)
        raise fail(SpecError, where, f"{fmt} cannot express {subject}{what}; the converter failed{detail}",
                   f"export to {' or '.join(f for f in FORMATS if f != fmt)}, or use a layer {fmt} "
                   "supports (docs/export.md lists them)") from None


def failing_layer(spec: ModelDef, message: str) -> str | None:
    """The innermost spec layer named on a graph path in a converter's message."""
    names = _layer_names(spec)
    for path in _SCOPED.findall(message):
        pieces = path.split("/")  # Keras's scopes add _1, _2 to names, which may end in _N themselves
        found = [next(n for n in (piece, re.sub(r"_\d+$", "", piece)) if n in names) for piece in pieces
                 if piece in names or re.sub(r"_\d+$", "", piece) in names]
        if found:
            return found[-1]
    return None


def _layer_names(spec: ModelDef) -> set[str]:
    names = set(spec.layers) | {name for name, _ in spec.sequence}
    names |= {name for edge in spec.edges for name in edge.layer_names()}
    for sub in spec.models.values():
        names |= _layer_names(sub) | {sub.name}
    return names


# ----------------------------------------------------------------- writing atomically
@contextmanager
def _staged(output: Path, fmt: str) -> Iterator[Path]:
    """A temporary path beside `output`, renamed over it when the block succeeds, removed otherwise.

    A SavedModel is a folder: it is written into a fresh folder beside the
    target, and a SavedModel already at the target is replaced only after.
    """
    from .files import atomic_path

    if SUFFIXES[fmt]:
        with atomic_path(output) as temporary:
            yield temporary
        return
    parent = output.parent if str(output.parent) else Path(".")
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=parent))
    try:
        yield scratch / "saved_model"
        _replace_folder(scratch / "saved_model", output, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _replace_folder(new: Path, output: Path, scratch: Path) -> None:
    """Move `new` to `output`; a SavedModel already there goes into `scratch` (to be removed) first."""
    if output.exists():
        os.rename(output, scratch / "previous")
    os.rename(new, output)


def check_saved_model_target(output: Path) -> str | None:
    """What is wrong with replacing what is at `output` with a SavedModel, if anything."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        return "the output path is an existing file or link; a SavedModel folder goes here"
    if output.is_dir() and any(output.iterdir()) and not (output / "saved_model.pb").is_file():
        return "the output path is a folder that holds no SavedModel; kspec replaces only a SavedModel it wrote"
    return None
