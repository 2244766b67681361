"""Typed, frozen objects for a parsed spec. Each keeps the Location it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from ..errors import Diagnostic, Location
from .load import YNode


@dataclass(frozen=True)
class Ref:
    """A name used in the spec (a tensor, a layer), with where it was written."""

    name: str
    loc: Location


# What an edge is called on: nothing (the tensor above), one tensor, a list of
# tensors (merge layers), or keyword tensors (MultiHeadAttention's query=...).
CallInputs = Union[None, Ref, tuple[Ref, ...], dict[str, Union[Ref, tuple[Ref, ...]]]]


def refs_in(inputs: CallInputs) -> Iterator[Ref]:
    """Every tensor reference in an edge's inputs, in file order."""
    if isinstance(inputs, Ref):
        yield inputs
    elif isinstance(inputs, tuple):
        yield from inputs
    elif isinstance(inputs, dict):
        for value in inputs.values():
            yield from refs_in(value)


@dataclass(frozen=True)
class Constant:
    """A non-tensor argument of a call (`call: {training: true}`): None, a bool, a number or a string."""

    value: Any
    loc: Location  # where the value is written
    key_loc: Location  # where its keyword is written


@dataclass(frozen=True)
class InputDef:
    name: str
    loc: Location
    shape: tuple[int | None, ...]
    dtype: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # batch_size, sparse, ragged
    columns: tuple[str, ...] | None = None  # the table columns that fill it (kspec.tables)
    fill: Any = None  # the value of its missing table cells; None: missing cells are refused
    table_locs: dict[str, Location] = field(default_factory=dict, compare=False)  # where columns, fill are


@dataclass(frozen=True)
class LayerDef:
    """A Keras layer class and the constructor arguments to build it with."""

    class_name: str
    loc: Location  # where the class name is written
    args: dict[str, Any]  # plain Python values
    arg_nodes: dict[str, tuple[Location, YNode]] = field(default_factory=dict, compare=False)
    name_loc: Location | None = None  # where a declared layer's name is written
    adapt: bool = False  # `adapt: true`: kspec train fits its state to the training rows (kspec.adapt)

    @property
    def where(self) -> Location:
        return self.name_loc or self.loc


@dataclass(frozen=True)
class Edge:
    """One call: `name = layer(inputs)`.

    `layer` is set for an inline layer (named after the edge), `target` for a
    call of a declared layer or sub-model. `repeat` > 1 chains copies of an
    inline layer, named NAME_1 ... NAME_N.
    """

    name: str
    loc: Location
    layer: LayerDef | None
    target: Ref | None
    inputs: CallInputs
    inputs_loc: Location
    repeat: int = 1
    outputs: tuple[Ref, ...] = ()
    constants: dict[str, Constant] = field(default_factory=dict)  # `call`: keyword -> constant
    broken: bool = False  # could not be parsed (already reported); still defines its name

    def layer_names(self) -> list[str]:
        """Names of the Keras layers an inline edge creates."""
        if self.layer is None:
            return []
        if self.repeat == 1:
            return [self.name]
        return [f"{self.name}_{i}" for i in range(1, self.repeat + 1)]

    def tensor_names(self) -> list[Ref]:
        """Tensors this edge defines: its own name, each repeat, each named output."""
        names = [Ref(self.name, self.loc)]
        if self.repeat > 1:
            names += [Ref(name, self.loc) for name in self.layer_names()]
        return names + list(self.outputs)


@dataclass(frozen=True)
class Setting:
    """A compile setting (loss, metrics, ...) as written, with its YAML node."""

    value: Any
    node: YNode

    @property
    def loc(self) -> Location:
        return self.node.loc


@dataclass(frozen=True)
class CompileDef:
    optimizer: Setting | None = None
    loss: Setting | None = None
    loss_weights: Setting | None = None
    metrics: Setting | None = None


@dataclass(frozen=True)
class CallbackDef:
    """A Keras callback of `training.callbacks`: its class and constructor arguments."""

    class_name: str
    loc: Location  # where the class name is written
    args: dict[str, Any]
    arg_locs: dict[str, Location] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TrainingDef:
    """Training defaults a spec may hold; command-line flags override them."""

    epochs: int | None = None
    batch_size: int | None = None
    validation_split: float | None = None
    callbacks: tuple[CallbackDef, ...] = ()
    class_weight: dict[int, float] | None = None  # class id -> weight, for a single-output classifier
    mixed_precision: str | None = None  # a Keras dtype policy: mixed_float16 or mixed_bfloat16
    locs: dict[str, Location] = field(default_factory=dict, compare=False)  # where each key is written


@dataclass(frozen=True)
class ModelDef:
    """A model: the top-level spec, or a sub-model declared under `models:`.

    A functional model has inputs, edges and outputs; a sequential one has a
    list of layers and, optionally, one input.
    """

    name: str
    loc: Location
    file: str
    kind: str = "functional"  # "sequential", or "broken" when it could not be parsed
    inputs: tuple[InputDef, ...] = ()
    layers: dict[str, LayerDef] = field(default_factory=dict)
    models: dict[str, ModelDef] = field(default_factory=dict)
    edges: tuple[Edge, ...] = ()
    outputs: tuple[Ref, ...] = ()
    sequence: tuple[tuple[str, LayerDef], ...] = ()  # (layer name, layer) for sequential
    compile: CompileDef | None = None
    training: TrainingDef = field(default_factory=TrainingDef)
    weights: str | None = None  # path of a .keras file to load weights from
    weights_loc: Location | None = None
    weights_model: str | None = None  # take them from the sub-model of this name inside that file
    trainable: bool | None = None
    included_from: str | None = None  # the include path as written, if any
    search: Any = None  # the top level's `search:` and `objective:` (a spec.search.SearchDef), for kspec tune
    # Mistakes in what its blocks and block calls name, found while reading it (spec/blocks.py)
    problems: tuple[Diagnostic, ...] = field(default=(), compare=False)

    @property
    def output_names(self) -> list[str]:
        return [ref.name for ref in self.outputs]
