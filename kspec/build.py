"""Checked spec -> Keras model.

Each declared layer or sub-model is created once and called once per edge
that names it, so sharing and node indices follow from the spec's call
order, exactly as in hand-written functional code. Every tensor a call
returns is kept, by tensor name and by (layer, node), for later commands.
Only the public `keras` API is used, so any Keras backend builds the same
model.
"""

from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .backend import import_keras
from .errors import Diagnostic, Location, SpecError
from .modelfile import check_model_file
from .precision import float32_layers
from .recursion import recursion_allowance
from .spec.calls import LAYER_ARGUMENTS, call_inputs, node_indices
from .spec.semantics import check_refused
from .spec.compile_settings import for_keras, is_class_form
from .spec.model import CallInputs, Edge, LayerDef, ModelDef, Ref, Setting


@dataclass
class Built:
    """A built model and every tensor and layer call the spec named."""

    model: Any  # keras.Model
    spec: ModelDef
    tensors: dict[str, Any] = field(default_factory=dict)  # tensor name -> KerasTensor
    layers: dict[str, Any] = field(default_factory=dict)  # layer/model name -> Keras layer
    calls: dict[tuple[str, int], Any] = field(default_factory=dict)  # (layer, node) -> output
    submodels: dict[str, Built] = field(default_factory=dict)

    def output_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Each output's shape (batch axis None), by the spec's output name."""
        return {ref.name: tuple(self.tensors[ref.name].shape) for ref in self.spec.outputs}


_TERMINAL_STYLE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # Keras prints parts of its messages in bold


def keras_message(exc: Exception) -> str:
    """Keras's message on one line, without terminal styling (or the exception's class, when it has none)."""
    return " ".join(_TERMINAL_STYLE.sub("", str(exc)).split()) or type(exc).__name__


def keras_error(loc: Location, what: str, exc: Exception, hint: str | None = None) -> SpecError:
    """A located error that carries Keras's own message, on one line."""
    return SpecError([Diagnostic(loc, f"Keras rejected {what}: {keras_message(exc)}",
                                 hint or "fix the spec here; Keras's message says what it expected")])


@contextmanager
def keras_errors(loc: Location, what: str, hint: str | None = None) -> Iterator[None]:
    """Report an error Keras raises at the spec location that caused it."""
    try:
        yield
    except SpecError:
        raise
    except Exception as exc:  # Keras raises ValueError, TypeError, and more
        raise keras_error(loc, what, exc, hint) from None


def run_message(exc: Exception) -> str:
    """Keras's message on one line; of a TensorFlow graph error, only its last paragraph.

    A graph error first lists the Python stack that defined the failing node,
    which would read as a traceback.
    """
    text = str(exc).strip()
    if text.startswith("Graph execution error"):
        text = re.split(r"\n\s*\n", text)[-1]
        text = re.sub(r"\[\[\{\{node [^}]*\}\}\]\]|\[Op:[^\]]*\]", "", text)  # node and op: located instead
    return keras_message(Exception(text)) if text.strip() else type(exc).__name__


_PATH = re.compile(r"[A-Za-z_][\w.-]*(?:/[\w.-]+)+")  # a graph node or variable path


def graph_location(spec: ModelDef, message: str) -> Location | None:
    """The spec location of the layer a graph node or variable path in an error names.

    TensorFlow names the node that failed by its scopes, e.g.
    `model_1/encoder_1/embedding_1/GatherV2`: the path is followed down
    through the sub-models it names.
    """
    for path in _PATH.findall(message):
        where = _walk(spec, path.split("/"))
        if where is not None:
            return where
    return None


def stack_location(spec: ModelDef, trace: Any) -> Location | None:
    """The spec location of the innermost layer being called in a traceback."""
    return _walk(spec, _stack_layer_names(trace))


def _stack_layer_names(trace: Any) -> list[str]:
    """Names of the layers being called in a traceback, outermost first."""
    names: list[str] = []
    while trace is not None:
        owner = trace.tb_frame.f_locals.get("self")
        name = getattr(owner, "name", None)
        if isinstance(name, str) and type(owner).__module__.startswith("keras") and name not in names[-1:]:
            names.append(name)
        trace = trace.tb_next
    return names


def _walk(spec: ModelDef, names: list[str]) -> Location | None:
    """Follow a path of layer names down through sub-models; the innermost spec location found."""
    found = None
    for name in names:
        entry = _named(spec, name) or _named(spec, re.sub(r"_\d+$", "", name))
        if entry is None:
            continue
        found, sub = entry
        if sub is not None:
            spec = sub
    return found


def _named(spec: ModelDef, name: str) -> tuple[Location, ModelDef | None] | None:
    """Where a layer, sub-model or input of this model is declared."""
    if name in spec.models:
        return spec.models[name].loc, spec.models[name]
    if name in spec.layers:
        return spec.layers[name].where, None
    for edge in spec.edges:
        if edge.layer is not None and name in edge.layer_names():
            return edge.loc, None
    for layer_name, layer in spec.sequence:
        if layer_name == name:
            return layer.loc, None
    return next(((inp.loc, None) for inp in spec.inputs if inp.name == name), None)


def load_weights(model: Any, path: str | Path, loc: Location) -> None:
    """Load layer weights from a .keras file, reporting failures at `loc`.

    Only the layers' weights are wanted: a saved optimizer state is skipped
    (the model trains on with a fresh optimizer), without Keras's warning.
    The file is checked first, like every .keras file kspec opens.
    """
    check_model_file(path, loc)
    with keras_errors(loc, f"the weights in '{path}'",
                      "the .keras file must hold a model of the same architecture"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(path)


# Larger models are refused unless --max-params raises the limit: 1e9 float32
# weights are 4 GB before the optimizer's copies.
DEFAULT_MAX_PARAMS = 1_000_000_000
# Specs with a number this large somewhere are sized before they are built.
_SIZE_CHECK_THRESHOLD = 100_000


def build(spec: ModelDef, compile: bool = True, max_params: int = DEFAULT_MAX_PARAMS) -> Built:
    """Build the Keras model a checked spec describes (and compile it if asked).

    A spec that could be too large to allocate is first sized without
    allocating anything, and refused when it has more than `max_params`.
    """
    keras = import_keras()
    _check_string_inputs(keras, spec)
    if _might_be_large(spec):
        count, per_layer = count_parameters(keras, spec)
        if count > max_params:
            largest = max(per_layer, key=per_layer.get)  # type: ignore[arg-type]
            raise SpecError([Diagnostic(
                _layer_location(spec, largest),
                f"the model has {count:,} parameters ({_gigabytes(count)} as float32), more than the limit "
                f"of {max_params:,}; the largest layer is '{largest}' with {per_layer[largest]:,}",
                "shrink the layers, or raise the limit with --max-params N")])
    with deep_graphs(spec):
        built = _Builder(keras, float32_layers(keras, spec)).functional(spec)
    if compile and spec.compile is not None:
        _compile(keras, built, spec)
    return built


def _check_string_inputs(keras: Any, spec: ModelDef) -> None:
    """String inputs need TensorFlow: Keras's string lookups and text layers run on tf.data only."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    found = [inp for inp in spec.inputs if inp.dtype == "string"]
    if found:
        raise SpecError([Diagnostic(
            found[0].loc, f"input '{found[0].name}' holds strings, which Keras runs only on the TensorFlow "
            f"backend, not on {backend}",
            "train this spec with --backend tensorflow, or feed token ids (dtype: int32) instead of strings")])


def load_trained(spec: ModelDef, weights: Path, max_params: int = DEFAULT_MAX_PARAMS) -> Built:
    """Build the spec and load trained weights (e.g. a run's model.keras) into it.

    Layers marked `adapt: true` are built with the state the file's config holds (kspec.adapt).
    """
    from .adapt import with_saved_state

    built = build(with_saved_state(spec, weights, Location(str(weights))), max_params=max_params)
    load_weights(built.model, weights, Location(str(weights)))
    return built


def layer_calls(spec: ModelDef) -> int:
    """How many layer calls a spec makes, its sub-models' included."""
    calls = sum(max(1, len(edge.layer_names())) for edge in spec.edges) + len(spec.sequence)
    return calls + sum(layer_calls(sub) for sub in spec.models.values())


# A graph deeper than this fails with Keras's RecursionError, located by kspec,
# rather than risk a stack overflow somewhere Python calls through C.
_MAX_RECURSION = 100_000


def deep_graphs(spec: ModelDef) -> Any:
    """Let Python recurse as deep as Keras needs to walk this spec's graph."""
    return deep_recursion(layer_calls(spec))


def deep_recursion(layers: int) -> Any:
    """Let Python recurse as deep as Keras needs to walk a graph of this many layers.

    `keras.Model(...)`, and loading a saved model, walk the graph recursively,
    a frame or two per layer on the longest path, so a chain of 1,000 layers
    overflows Python's default limit of 1,000 frames. The limit is raised in
    proportion to the graph for the length of the block (Python 3.11 recurses
    in Python code without using the C stack).
    """
    return recursion_allowance(1000 + 4 * layers, cap=_MAX_RECURSION)


def _numbers(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)


def _might_be_large(spec: ModelDef) -> bool:
    """Whether any layer argument or input dimension is large enough to need sizing first."""
    layers = list(spec.layers.values()) + [edge.layer for edge in spec.edges if edge.layer]
    layers += [layer for _, layer in spec.sequence]
    numbers = [n for layer in layers for n in _numbers(layer.args)]
    numbers += [d for inp in spec.inputs for d in inp.shape if d]
    return max(numbers, default=0) >= _SIZE_CHECK_THRESHOLD or any(_might_be_large(m) for m in spec.models.values())


def count_parameters(keras: Any, spec: ModelDef) -> tuple[int, dict[str, int]]:
    """Parameters in all, and per top-level layer, from a build that never allocates its variables."""
    def size(layer: Any) -> int:
        return sum(math.prod(variable.shape) for variable in layer.weights)

    try:
        with keras.StatelessScope(initialize_variables=False), deep_graphs(spec):  # variables stay uninitialised
            built = _Builder(keras, load_weights=False).functional(spec)
            return size(built.model), {name: size(layer) for name, layer in built.layers.items()}
    finally:
        keras.backend.clear_session()  # forget the uninitialised variables


def _layer_location(spec: ModelDef, name: str) -> Location:
    if name in spec.layers:
        return spec.layers[name].where
    if name in spec.models:
        return spec.models[name].loc
    return next((edge.loc for edge in spec.edges if name in edge.layer_names()), spec.loc)


def _gigabytes(count: int) -> str:
    return f"{count * 4 / 1e9:,.1f} GB"


def check_activation_memory(built: Built, batch_size: int) -> None:
    """Refuse a model whose layer outputs for one batch would not fit in memory, before it runs.

    Counted at 4 bytes a value, free axes 8 long (as synthetic data makes
    them); a RepeatVector or UpSampling with a huge factor has no weights for
    the parameter limit to catch, but would exhaust memory on the first batch.
    """
    from .arrays import memory_bytes

    sizes = _outputs_bytes(built, batch_size)
    total, limit = sum(sizes.values()), memory_bytes() // 2
    if total > limit:
        largest = max(sizes, key=sizes.__getitem__)
        raise SpecError([Diagnostic(
            _tensor_location(built.spec, largest),
            f"one batch of {batch_size} would fill {total:,} bytes with layer outputs, more than half of this "
            f"machine's memory ({limit * 2:,} bytes); the largest is '{largest}' with {sizes[largest]:,} bytes",
            "make this layer's output smaller, or train with a smaller batch")])


def _outputs_bytes(built: Built, batch_size: int) -> dict[str, int]:
    """Bytes of each top-level tensor's output, a sub-model's call counting everything inside it."""
    if built.spec.kind == "sequential":
        tensors = {name: getattr(layer, "output", None) for name, layer in built.layers.items()}
    else:
        tensors = built.tensors
    sizes = {name: _output_bytes(tensor, batch_size) for name, tensor in tensors.items()}
    for index, edge in enumerate(built.spec.edges):
        sub = built.submodels.get(edge.target.name) if edge.target else None
        if sub is not None:  # each call runs every layer inside the sub-model
            sizes[edge.name] += sum(_outputs_bytes(sub, batch_size).values())
    return sizes


def _output_bytes(tensor: Any, batch_size: int) -> int:
    tensors = tensor if isinstance(tensor, (list, tuple)) else [tensor]
    shapes = [tuple(t.shape)[1:] for t in tensors if getattr(t, "shape", None) is not None]
    return sum(batch_size * 4 * math.prod(8 if d is None else d for d in shape) for shape in shapes)


def _tensor_location(spec: ModelDef, name: str) -> Location:
    for edge in spec.edges:
        if any(ref.name == name for ref in edge.tensor_names()):
            return edge.loc
    return next((inp.loc for inp in spec.inputs if inp.name == name), spec.loc)


class _Builder:
    def __init__(self, keras: Any, float32: set[str] | None = None, load_weights: bool = True):
        self.keras = keras
        self.load_weights = load_weights
        self.float32 = float32 or set()  # layers kept float32 under a mixed policy: the outputs' (kspec.precision)
        self.making: set[tuple[int, str]] = set()  # declared layers being made (a wrapper makes what it wraps first)

    # --------------------------------------------------------------- layers
    def make_layer(self, layer: LayerDef, name: str, named: Callable[[str], Any] | None = None) -> Any:
        """A Keras layer; `named` gives the declared layer or sub-model a wrapper names (`layer: NAME`)."""
        check_refused(layer)  # a Lambda or TFSMLayer at any depth, even in a spec built without validate
        cls = getattr(self.keras.layers, layer.class_name)
        wraps = {arg: named(value) for arg, value in layer.args.items()
                 if named is not None and arg in LAYER_ARGUMENTS and isinstance(value, str)}
        with keras_errors(layer.loc, f"{layer.class_name} '{name}'"):
            args = {key: wraps[key] if key in wraps else self.materialize(value) for key, value in layer.args.items()}
            args["name"] = name  # for sequential layers, their own `name` argument or Keras's style
            if name in self.float32:
                args.setdefault("dtype", "float32")
            return cls(**args)

    def materialize(self, value: Any) -> Any:
        """Turn `{ClassName: {args}}` values into Keras objects Keras accepts.

        A layer class becomes a layer (Bidirectional's `layer`); an initializer,
        regularizer or constraint class becomes Keras's serialized form.
        """
        if isinstance(value, list):
            return [self.materialize(item) for item in value]
        if not (isinstance(value, dict) and len(value) == 1):
            return value
        class_name, args = next(iter(value.items()))
        if not isinstance(args, (dict, type(None))):
            return value
        args = {key: self.materialize(item) for key, item in (args or {}).items()}
        cls = getattr(self.keras.layers, class_name, None)
        if isinstance(cls, type) and issubclass(cls, self.keras.layers.Layer):
            return cls(**args)
        for module in (self.keras.initializers, self.keras.regularizers, self.keras.constraints):
            if isinstance(getattr(module, class_name, None), type):
                return {"class_name": class_name, "config": args}
        return value

    # --------------------------------------------------------------- models
    def submodel(self, spec: ModelDef) -> Built:
        built = self.sequential(spec) if spec.kind == "sequential" else self.functional(spec)
        if spec.weights is not None and self.load_weights:
            assert spec.weights_loc is not None
            if spec.weights_model is not None:  # weights: {file: ..., model: NAME}
                from .submodel_weights import copy_submodel_weights

                copy_submodel_weights(self.keras, built.model, spec.weights, spec.weights_model, spec.weights_loc)
            else:
                load_weights(built.model, spec.weights, spec.weights_loc)
        if spec.trainable is not None:
            built.model.trainable = spec.trainable
        return built

    def sequential(self, spec: ModelDef) -> Built:
        keras = self.keras
        built = Built(model=None, spec=spec)
        items: list[Any] = []
        if spec.inputs:
            items.append(self.make_input(spec.inputs[0]))
        for name, layer_def in spec.sequence:
            layer = self.make_layer(layer_def, name)
            built.layers[name] = layer
            items.append(layer)
        with keras_errors(spec.loc, f"sequential model '{spec.name}'"):
            built.model = keras.Sequential(items, name=spec.name)
        return built

    def make_input(self, inp: Any) -> Any:
        with keras_errors(inp.loc, f"input '{inp.name}'"):
            return self.keras.Input(shape=inp.shape, dtype=inp.dtype, name=inp.name, **inp.options)

    def functional(self, spec: ModelDef) -> Built:
        built = Built(model=None, spec=spec)
        for inp in spec.inputs:
            built.tensors[inp.name] = self.make_input(inp)
        for name in list(spec.layers) + list(spec.models):
            self.declared(built, name)
        nodes = node_indices(spec)
        for index, edge in enumerate(spec.edges):
            self.call_edge(built, edge, call_inputs(spec, index), nodes.get(index, 0))
        inputs = [built.tensors[inp.name] for inp in spec.inputs]
        outputs = [built.tensors[ref.name] for ref in spec.outputs]
        for ref, tensor in zip(spec.outputs, outputs):
            if isinstance(tensor, (list, tuple, dict)):
                raise SpecError([Diagnostic(
                    ref.loc, f"output '{ref.name}' is a list of {len(tensor)} tensors, not one tensor",
                    "name the outputs of the edge that makes it ('outputs: [...]') and list those")])
        with keras_errors(spec.loc, f"model '{spec.name}'"):
            built.model = self.keras.Model(
                inputs=inputs[0] if len(inputs) == 1 else inputs,
                outputs=outputs[0] if len(outputs) == 1 else outputs,
                name=spec.name,
            )
        return built

    def declared(self, built: Built, name: str) -> Any:
        """The declared layer or sub-model `name`, made on first use: a wrapper may name one declared after it."""
        spec, key = built.spec, (id(built), name)
        if name not in built.layers:
            if key in self.making:  # validate reports this; a spec built without it gets a located error too
                raise SpecError([Diagnostic(spec.layers[name].where, f"'{name}' wraps itself",
                                            "a wrapper wraps another layer")])
            self.making.add(key)
            if name in spec.models:
                sub = self.submodel(spec.models[name])
                built.submodels[name] = sub
                built.layers[name] = sub.model
            else:
                built.layers[name] = self.make_layer(spec.layers[name], name, lambda inner: self.declared(built, inner))
            self.making.discard(key)
        return built.layers[name]

    def call_edge(self, built: Built, edge: Edge, inputs: CallInputs, node: int) -> None:
        args, kwargs = self.resolve_inputs(built, inputs)
        constants = {key: constant.value for key, constant in edge.constants.items()}  # `call:`
        if edge.layer is not None:
            for layer_name in edge.layer_names():  # one name, or NAME_1..NAME_N for repeat
                layer = self.make_layer(edge.layer, layer_name, lambda inner: self.declared(built, inner))
                built.layers[layer_name] = layer
                _check_initial_state(layer, kwargs, edge)
                with keras_errors(edge.loc, f"the call of {edge.layer.class_name} '{layer_name}'"):
                    result = layer(*args, **kwargs, **constants)
                args, kwargs = [result], {}  # a repeated layer takes the previous output (and the same constants)
                built.calls[(layer_name, 0)] = result
                built.tensors[layer_name] = result
        else:
            assert edge.target is not None
            layer = built.layers[edge.target.name]
            if edge.target.name in built.submodels and kwargs:
                args, kwargs = [kwargs], {}  # a model takes its inputs as one dict by name
            _check_initial_state(layer, kwargs, edge)
            with keras_errors(edge.loc, f"call {node} of '{edge.target.name}' in edge '{edge.name}'"):
                result = layer(*args, **kwargs, **constants)
            built.calls[(edge.target.name, node)] = result
        built.tensors[edge.name] = result
        if edge.outputs:
            if not isinstance(result, (list, tuple)) or len(result) != len(edge.outputs):
                count = len(result) if isinstance(result, (list, tuple)) else 1
                raise SpecError([Diagnostic(
                    edge.outputs[0].loc,
                    f"edge '{edge.name}' names {len(edge.outputs)} outputs but its layer returns {count}",
                    "name exactly as many outputs as the layer returns (e.g. LSTM with "
                    "return_state: true returns 3)")])
            for ref, tensor in zip(edge.outputs, result):
                built.tensors[ref.name] = tensor

    def resolve_inputs(self, built: Built, inputs: CallInputs) -> tuple[list[Any], dict[str, Any]]:
        def tensor(value: Ref | tuple[Ref, ...]) -> Any:
            if isinstance(value, Ref):
                return built.tensors[value.name]
            return [built.tensors[ref.name] for ref in value]

        if isinstance(inputs, dict):
            return [], {key: tensor(value) for key, value in inputs.items()}
        assert inputs is not None
        return [tensor(inputs)], {}


def _check_initial_state(layer: Any, kwargs: dict[str, Any], edge: Edge) -> None:
    """Refuse an `initial_state` of the wrong length: Keras builds it, then fails on the first batch."""
    given = kwargs.get("initial_state")
    wanted = _state_count(layer)
    if given is None or wanted is None:
        return
    count = len(given) if isinstance(given, (list, tuple)) else 1
    if count != wanted:
        raise SpecError([Diagnostic(
            edge.inputs_loc, f"{type(layer).__name__} '{layer.name}' takes {wanted} initial state tensor(s), "
            f"'initial_state' gives {count}",
            "list one tensor per state, e.g. 'initial_state: [state_h, state_c]' for an LSTM "
            "(the states an LSTM with return_state: true names in 'outputs')")])


def _state_count(layer: Any) -> int | None:
    """How many state tensors a recurrent layer's call takes (a Bidirectional's: both directions'), if known."""
    if hasattr(layer, "forward_layer") and hasattr(layer, "backward_layer"):
        counts = [_state_count(layer.forward_layer), _state_count(layer.backward_layer)]
        return None if None in counts else sum(counts)  # type: ignore[arg-type]
    size = getattr(getattr(layer, "cell", None), "state_size", None)
    if isinstance(size, int):
        return 1
    if isinstance(size, (list, tuple)) and all(isinstance(item, int) for item in size):
        return len(size)
    return None  # stacked cells, or not a recurrent layer


# -------------------------------------------------------------------- compile
def _compile(keras: Any, built: Built, spec: ModelDef) -> None:
    settings = spec.compile
    assert settings is not None
    outputs = spec.output_names

    def converter(module: Any) -> Any:
        def convert(value: Any) -> Any:
            if is_class_form(value, outputs):  # {ClassName: {args}} -> an instance
                class_name, args = next(iter(value.items()))
                return getattr(module, class_name)(**(args or {}))
            return value
        return convert

    modules = {"loss": keras.losses, "metrics": keras.metrics, "loss_weights": None}
    kwargs: dict[str, Any] = {}
    located: dict[str, Setting] = {}
    if settings.optimizer is not None:
        with keras_errors(settings.optimizer.loc, "the optimizer"):
            kwargs["optimizer"] = converter(keras.optimizers)(_with_schedule(keras, settings.optimizer.value))
        located["optimizer"] = settings.optimizer
    for name, module in modules.items():
        setting = getattr(settings, name)
        if setting is None:
            continue
        with keras_errors(setting.loc, f"the {name}"):
            kwargs[name] = for_keras(name, setting.value, outputs, converter(module) if module else float)
        located[name] = setting
    try:
        built.model.compile(**kwargs)
    except Exception as exc:
        raise keras_error(_blamed(str(exc), located, spec.loc), "the compile settings", exc) from None


def _with_schedule(keras: Any, optimizer: Any) -> Any:
    """An optimizer setting with a learning-rate schedule written in class form made a Keras schedule."""
    if not isinstance(optimizer, dict) or len(optimizer) != 1:
        return optimizer
    class_name, args = next(iter(optimizer.items()))
    rate = (args or {}).get("learning_rate") if isinstance(args, dict) else None
    if not (isinstance(rate, dict) and len(rate) == 1):
        return optimizer
    schedule, schedule_args = next(iter(rate.items()))
    if not isinstance(getattr(keras.optimizers.schedules, schedule, None), type):
        return optimizer  # Keras says what is wrong with it
    return {class_name: {**args, "learning_rate": getattr(keras.optimizers.schedules, schedule)(**(schedule_args or {}))}}


def _blamed(message: str, located: dict[str, Setting], default: Location) -> Location:
    """The setting a compile() error is about: Keras's message names it (longest name first)."""
    for name in sorted(located, key=len, reverse=True):
        if any(f"{name}{end}" in message for end in ("`", " ", "=", ":")):
            return located[name].loc
    return next(iter(located.values())).loc if located else default
