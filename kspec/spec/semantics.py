"""Semantic checks of a parsed spec, as generators of diagnostics.

Names and references, file order, layer classes and their arguments (against
the catalogue of the installed Keras), compile settings. Nothing here imports
Keras: `kspec validate` stays fast.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from .. import catalogue as catalogue_module
from ..errors import Diagnostic, Location, SpecError, did_you_mean
from .arguments import check_layer_arguments, takes_layer_classes
from .calls import call_inputs, check_call_keywords, check_wrapped, wrapped, wrappers
from .compile_settings import check_compile
from .fit_settings import check_training
from .inputs import check_table_keys
from .load import YMap, YNode, YScalar, maps_within, to_python
from .model import LayerDef, ModelDef, Ref, refs_in

_ACTIVATION_ARGS = ("activation", "recurrent_activation")


def _error(loc: Location, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(loc, message, hint)


def _warning(loc: Location, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(loc, message, hint, severity="warning")


def check_model(model: ModelDef, top: bool = True) -> Iterator[Diagnostic]:
    """Every problem in a model and its sub-models."""
    catalogue = catalogue_module.load()
    yield from model.problems  # blocks' names and calls, checked as they were expanded
    for sub in model.models.values():
        if sub.included_from is None:  # included files were checked when they were read
            yield from check_model(sub, top=False)
    if model.kind == "broken":
        return
    for inp in model.inputs:
        yield from check_table_keys(inp)
    yield from check_wrapped(model, catalogue)
    if model.kind == "sequential":
        yield from _check_sequential(model, catalogue)
        return
    for layer in model.layers.values():
        yield from check_layer(layer, catalogue)
    for edge in model.edges:
        if edge.layer is None:
            continue
        name = edge.layer.class_name
        if name in model.layers or name in model.models:
            yield _error(edge.layer.loc, f"'{name}' in edge '{edge.name}' is a declared layer or model, "
                         "not a layer class", f"call it with 'layer: {name}'")
        else:
            yield from check_layer(edge.layer, catalogue)
    yield from _check_names(model)
    yield from _check_edges(model, catalogue)
    yield from _check_outputs(model)
    if top:
        yield from _check_adapt(model, catalogue)
    if top and model.compile is not None:
        yield from check_compile(model, catalogue)
    if top:
        yield from check_training(model)


# ------------------------------------------------------------------ layers
def check_layer(layer: LayerDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """The class exists in keras.layers; each argument exists and is required."""
    known = catalogue["layers"]
    refusals = list(refused_in(layer, catalogue))
    if refusals:  # nothing else about a layer that may not be built matters
        yield from refusals
        return
    info = known.get(layer.class_name)
    if info is None:
        yield _error(
            layer.loc,
            f"unknown layer class '{layer.class_name}'{did_you_mean(layer.class_name, known)}",
            "layer classes are those of keras.layers, spelled as in Keras (e.g. Dense, Conv2D)",
        )
        return
    suggested: set[str] = set()
    for arg, (arg_loc, value_node) in layer.arg_nodes.items():
        if arg in info["deprecated"]:
            yield _warning(arg_loc, f"argument '{arg}' of {layer.class_name} is deprecated in Keras "
                           f"{catalogue['keras_version']} and ignored", "remove it")
        elif arg not in info["args"]:
            suggestion = did_you_mean(arg, info["args"])
            suggested.add(suggestion.split("'")[1] if suggestion else "")
            yield _error(arg_loc, f"unknown argument '{arg}' for {layer.class_name}{suggestion}",
                         f"{layer.class_name} takes: {', '.join(info['args'])}")
        else:
            yield from _check_arg_value(layer, arg, catalogue)
    yield from check_layer_arguments(layer, catalogue)  # the kind of each value
    for nested in _nested_layers(layer, catalogue, takes_layer_classes):  # a layer as initializer: a wrong kind
        yield from check_layer(nested, catalogue)
    for arg in info["required"]:
        if arg not in layer.args and arg not in suggested:  # a misspelling is already reported
            yield _error(layer.loc, f"{layer.class_name} requires argument '{arg}'",
                         f"add '{arg}: ...' to its arguments")


def refused_in(layer: LayerDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """Classes a spec may not name (catalogue.REFUSED_LAYERS), in a layer or nested in it at any depth.

    Validation and the builder both call this, so a Lambda or TFSMLayer in
    an RNN's list of cells, a Pipeline's layers or a wrapper's wrapped layer
    is refused wherever it sits. Keras's serialized form ({class_name:
    ..., config: ...}) is refused too: Keras would import the module it names.
    """
    refused = catalogue_module.REFUSED_LAYERS.get(layer.class_name)
    if refused:
        yield _error(layer.loc, f"layer class '{layer.class_name}' is not allowed in a spec", refused)
        return
    for nested in _nested_layers(layer, catalogue):
        yield from refused_in(nested, catalogue)
    for _, node in layer.arg_nodes.values():
        for mapping in maps_within(node, lambda m: _class_form(m, catalogue) is None):
            if "class_name" in mapping.entries:
                yield _error(mapping.key_loc("class_name"), "Keras's serialized form ('class_name: ...') is "
                             "not allowed in a spec; Keras would import the module it names",
                             "write the object as {ClassName: {arguments}}, e.g. {HeNormal: {seed: 1}}")


def _class_form(mapping: YMap, catalogue: dict[str, Any]) -> tuple[str, YScalar, YNode] | None:
    """(class, key, arguments) of a `{LayerClass: {...}}` mapping, else None."""
    if len(mapping.entries) != 1:
        return None
    class_name, key_node, args_node = next(mapping.items())
    if class_name in catalogue["layers"] or class_name in catalogue_module.REFUSED_LAYERS:
        return class_name, key_node, args_node
    return None


def _nested_layers(layer: LayerDef, catalogue: dict[str, Any],
                   in_arg: Callable[[str], bool] = lambda _: True) -> Iterator[LayerDef]:
    """Layers given in arguments (those `in_arg` accepts) at any depth: Bidirectional's `layer`, ...

    Each nested layer is yielded once; layers nested in it are its own.
    """
    for arg, (_, node) in layer.arg_nodes.items():
        if not in_arg(arg):
            continue
        for mapping in maps_within(node, lambda m: _class_form(m, catalogue) is None):
            form = _class_form(mapping, catalogue)
            if form is None:
                continue
            class_name, key_node, args_node = form
            if isinstance(args_node, YScalar) and args_node.value is None:
                yield LayerDef(class_name, key_node.loc, {})
            elif isinstance(args_node, YMap):
                yield LayerDef(class_name, key_node.loc, {k: to_python(v) for k, _, v in args_node.items()},
                               {k: (key.loc, v) for k, key, v in args_node.items()})


def _check_arg_value(layer: LayerDef, arg: str, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    value = layer.args[arg]
    if not isinstance(value, str):
        return
    loc = layer.arg_nodes[arg][1].loc
    if arg in _ACTIVATION_ARGS:
        names = catalogue["activations"]
        if value not in names:
            yield _error(loc, f"unknown activation '{value}' for {layer.class_name}{did_you_mean(value, names)}",
                         f"activations: {', '.join(names)}")
    elif arg.endswith("_initializer"):
        names = catalogue["initializers"]["strings"] + list(catalogue["initializers"]["classes"])
        if value not in names:
            yield _error(loc, f"unknown initializer '{value}' for {layer.class_name}{did_you_mean(value, names)}",
                         "use a name from keras.initializers, e.g. glorot_uniform or zeros")


def _check_sequential(model: ModelDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    seen: dict[str, Location] = {}
    for name, layer in model.sequence:
        yield from check_layer(layer, catalogue)
        if name in seen:
            yield _error(layer.loc, f"layer name '{name}' is used twice in sequential model '{model.name}'",
                         f"first used at {seen[name]}; give one a different 'name'")
        seen.setdefault(name, layer.loc)


# ------------------------------------------------------------------- names
def _adapted(model: ModelDef) -> Iterator[tuple[LayerDef, int]]:
    """Each layer of a model marked `adapt: true`, with how many times its edge repeats it."""
    for layer in model.layers.values():
        if layer.adapt:
            yield layer, 1
    for edge in model.edges:
        if edge.layer is not None and edge.layer.adapt:
            yield edge.layer, edge.repeat


def _check_adapt(model: ModelDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    """`adapt: true` only on a class with adapt(), not repeated, and in the top-level model (kspec.adapt)."""
    adaptable = catalogue.get("adaptable", [])
    for layer, repeat in _adapted(model):
        if layer.class_name in catalogue["layers"] and layer.class_name not in adaptable:
            yield _error(layer.loc, f"{layer.class_name} cannot be adapted: it has no adapt() to fit it to data",
                         f"'adapt: true' goes on {', '.join(adaptable)}; remove it here")
        elif repeat > 1:
            yield _error(layer.loc, f"a repeated {layer.class_name} cannot be adapted",
                         "adapt one layer: drop 'repeat', or write the layers as edges of their own")
        else:
            yield from _check_adapted_width(layer)
    stack = list(model.models.values())
    while stack:
        sub = stack.pop()
        stack.extend(sub.models.values())
        for layer, _ in _adapted(sub):
            yield _error(layer.loc, f"{layer.class_name} in sub-model '{sub.name}' is marked 'adapt: true'; "
                         "only layers of the top-level model are adapted",
                         "move the layer into the top-level model's edges, or give it its state as arguments")


_VOCABULARY_LAYERS = ("StringLookup", "IntegerLookup", "TextVectorization")


def _check_adapted_width(layer: LayerDef) -> Iterator[Diagnostic]:
    """A vocabulary layer's output must have a known width before it is adapted: the model is built first."""
    mode = layer.args.get("output_mode", "int")
    if layer.class_name not in _VOCABULARY_LAYERS or mode == "int":
        return
    if mode == "tf_idf":
        yield _error(layer.loc, f"{layer.class_name} with output_mode 'tf_idf' cannot be adapted by kspec: "
                     "its adapted idf weights are not carried into the saved model",
                     "use output_mode 'count' or 'multi_hot', or give 'vocabulary' and 'idf_weights' yourself")
    elif not isinstance(layer.args.get("max_tokens"), int) or layer.args.get("pad_to_max_tokens") is not True:
        yield _error(layer.loc, f"{layer.class_name} with output_mode '{mode}' and 'adapt: true' needs "
                     "'max_tokens' and 'pad_to_max_tokens: true'",
                     "its output is max_tokens wide, which must be known when the model is built, before "
                     "adapt finds the vocabulary; or use output_mode 'int' followed by CategoryEncoding")


def _check_names(model: ModelDef) -> Iterator[Diagnostic]:
    """Tensor names are unique, and so are the Keras layer names they imply."""
    tensors: dict[str, Location] = {}
    for inp in model.inputs:
        tensors[inp.name] = inp.loc
    for edge in model.edges:
        for ref in edge.tensor_names():
            if ref.name in tensors and tensors[ref.name] != ref.loc:
                yield _error(ref.loc, f"tensor '{ref.name}' is defined twice",
                             f"first defined at {tensors[ref.name]}; rename one of them")
            tensors.setdefault(ref.name, ref.loc)

    # Inputs and inline edges are Keras layers named like their tensors (unique,
    # as checked above); declared layers and sub-models must not reuse a name.
    layer_names: dict[str, Location] = {inp.name: inp.loc for inp in model.inputs}
    layer_names.update({name: edge.loc for edge in model.edges for name in edge.layer_names()})
    declared = [(name, layer.where) for name, layer in model.layers.items()]
    declared += [(name, sub.loc) for name, sub in model.models.items()]
    for name, loc in declared:
        if name in layer_names:
            first, second = sorted([loc, layer_names[name]])
            yield _error(second, f"Keras layer name '{name}' is used twice",
                         f"also used at {first}; layer, sub-model, input and inline "
                         "edge names must all differ")
        layer_names.setdefault(name, loc)

    callables = set(model.layers) | set(model.models)
    called = {edge.target.name for edge in model.edges if edge.target is not None}
    called |= {name for _, layer in wrappers(model) for name, _ in wrapped(layer)}  # wrapped by name
    for name in callables - called:
        loc = model.layers[name].where if name in model.layers else model.models[name].loc
        yield _warning(loc, f"'{name}' is declared but never called",
                       f"call it from an edge with 'layer: {name}', or remove it")


# ------------------------------------------------------------------- edges
def _check_edges(model: ModelDef, catalogue: dict[str, Any]) -> Iterator[Diagnostic]:
    defined: dict[str, Location] = {inp.name: inp.loc for inp in model.inputs}
    all_tensors: dict[str, Location] = dict(defined)
    for edge in model.edges:
        for ref in edge.tensor_names():
            all_tensors.setdefault(ref.name, ref.loc)
    callables = list(model.layers) + list(model.models)

    for index, edge in enumerate(model.edges):
        if edge.broken:
            defined.setdefault(edge.name, edge.loc)
            continue
        if edge.target is not None and edge.target.name not in callables:
            name = edge.target.name
            hint = "declare it under 'layers:' or 'models:'"
            if name in catalogue["layers"]:
                hint = f"to use the class inline, write '{name}: {{...}}' instead of 'layer: {name}'"
            elif name in all_tensors:
                hint = f"'{name}' is a tensor; give it to 'in:', and 'layer:' a layer or model"
            yield _error(edge.target.loc, f"unknown layer or model '{name}' in edge '{edge.name}'"
                         f"{did_you_mean(name, callables)}", hint)
        inputs = call_inputs(model, index)
        if inputs is None:
            yield _error(edge.loc, f"edge '{edge.name}' has no 'in' and there is no tensor above it",
                         "name the tensors it is called on, e.g. 'in: x' or 'in: [a, b]'")
        for ref in refs_in(inputs):
            yield from _check_reference(ref, edge.name, defined, all_tensors)
        yield from check_call_keywords(model, edge, inputs, catalogue)
        if edge.target is not None and edge.target.name in model.models:
            yield from _check_submodel_call(model.models[edge.target.name], inputs, edge.inputs_loc, edge.name)
        for ref in edge.tensor_names():
            defined.setdefault(ref.name, ref.loc)


def _check_reference(ref: Ref, edge: str, defined: dict[str, Location],
                     all_tensors: dict[str, Location]) -> Iterator[Diagnostic]:
    if ref.name in defined:
        return
    if ref.name in all_tensors:
        yield _error(ref.loc, f"tensor '{ref.name}' is used in edge '{edge}' before it is defined "
                     f"at {all_tensors[ref.name]}",
                     "edges run in file order; move the edge that defines it above this one")
    else:
        yield _error(ref.loc, f"unknown tensor '{ref.name}' in edge '{edge}'"
                     f"{did_you_mean(ref.name, defined)}",
                     "tensors are the model's inputs and the names of edges above this one")


def _check_submodel_call(sub: ModelDef, inputs: Any, loc: Location, edge: str) -> Iterator[Diagnostic]:
    if sub.kind == "broken":
        return
    if sub.kind == "sequential" or not sub.inputs:
        wanted = 1
    else:
        wanted = len(sub.inputs)
    if isinstance(inputs, dict):
        names = [inp.name for inp in sub.inputs]
        for key in inputs:
            if key not in names:
                yield _error(loc, f"sub-model '{sub.name}' has no input '{key}'{did_you_mean(key, names)}",
                             f"its inputs: {', '.join(names)}")
        return
    given = len(inputs) if isinstance(inputs, tuple) else 1
    if inputs is not None and given != wanted:
        yield _error(loc, f"edge '{edge}' calls sub-model '{sub.name}' on {given} tensor(s); it takes {wanted}",
                     f"its inputs: {', '.join(inp.name for inp in sub.inputs)}")


def _check_outputs(model: ModelDef) -> Iterator[Diagnostic]:
    tensors = [inp.name for inp in model.inputs]
    tensors += [ref.name for edge in model.edges for ref in edge.tensor_names()]
    several = {edge.name: edge.outputs for edge in model.edges if edge.outputs}
    seen: set[str] = set()
    for ref in model.outputs:
        if ref.name in several:
            names = ", ".join(out.name for out in several[ref.name])
            yield _error(ref.loc, f"output '{ref.name}' is the list of its edge's {len(several[ref.name])} "
                         f"outputs; a model output is one tensor", f"name one or more of: {names}")
        elif ref.name not in tensors:
            yield _error(ref.loc, f"unknown output tensor '{ref.name}'{did_you_mean(ref.name, tensors)}",
                         "outputs name tensors defined under 'edges:'")
        elif ref.name in seen:
            yield _error(ref.loc, f"output '{ref.name}' is listed twice")
        seen.add(ref.name)


def check_refused(layer: LayerDef) -> None:
    """Raise SpecError when a layer, or a layer nested in its arguments, is of a refused class."""
    refusals = list(refused_in(layer, catalogue_module.load()))
    if refusals:
        raise SpecError(refusals)
