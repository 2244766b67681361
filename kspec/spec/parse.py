"""Located YAML tree -> typed spec objects, collecting structural problems.

Structure means: which keys exist, what type each value has, names that are
well formed, includes that resolve. Whether names refer to anything, and
whether layer classes and arguments exist in Keras, is semantics.py's job.

Which keys each mapping allows is declared in keys.py; what each key means
is read here, by the parse method of its mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import Diagnostic, Location, SpecError, did_you_mean
from .load import YMap, YNode, YScalar, YSeq, load_file, maps_within, to_python, type_name
from .paths import FILE_ARGUMENTS, MAX_ARGUMENT_FILE_BYTES, MAX_SPEC_BYTES, display_path, resolve_spec_path
from .overrides import apply_overrides
from .model import CallInputs, CompileDef, Edge, InputDef, LayerDef, ModelDef, Ref, Setting, TrainingDef
from .keys import DTYPES, MAX_COUNT, MAX_REPEAT, MODEL_NAME_PATTERN, NAME_PATTERN, key_names, top_only_keys


# The keys each place allows, in the order the "allowed keys" hints list them (declared in keys.py).
TOP_KEYS = key_names("spec")
SUBMODEL_KEYS = key_names("sub-model")
EDGE_KEYS = key_names("edge")
INPUT_KEYS = key_names("input")
TRAINING_KEYS = key_names("training")
COMPILE_KEYS = tuple(setting.name for setting in fields(CompileDef))
TOP_ONLY = top_only_keys()  # e.g. compile settings: a sub-model holding one gets their own hint

# Sub-model includes deeper than this are refused (a cycle is caught earlier).
MAX_INCLUDE_DEPTH = 16
# Includes that expand to more sub-models than this are refused: a file that
# includes another twice, which includes a third twice, ... doubles each level.
MAX_INCLUDED_MODELS = 1000


@dataclass
class _Included:
    """An included file, parsed and checked once however often it is included."""

    model: ModelDef | None
    errors: int
    expanded: int  # sub-models its own includes expand to


@dataclass
class _ParseState:
    """What every parser of one spec shares: its folder and the included files read so far."""

    root: Path
    included: dict[Path, _Included] = field(default_factory=dict)


class Parser:
    """Parses one spec file (and the files it includes) into a ModelDef."""

    def __init__(self, include_stack: tuple[Path, ...] = (), state: _ParseState | None = None):
        self.diagnostics: list[Diagnostic] = []
        self.include_stack = include_stack
        self.state = state
        self.expanded = 0  # sub-models this file's includes expand to
        self.file = ""  # the file being parsed: paths in it are relative to it

    # ------------------------------------------------------------- reporting
    def error(self, loc: Location, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(loc, message, hint))

    def expect_map(self, node: YNode, what: str, hint: str | None = None) -> YMap | None:
        if isinstance(node, YMap):
            return node
        self.error(node.loc, f"{what} must be a mapping, got {type_name(node)}", hint)
        return None

    def unknown_keys(self, node: YMap, allowed: tuple[str, ...], where: str, reported: tuple[str, ...] = ()) -> None:
        """Report each key of `node` that is not `allowed` (nor `reported` by another check)."""
        for key, key_node, _ in node.items():
            if key not in allowed and key not in reported:
                self.error(
                    key_node.loc,
                    f"unknown key '{key}' in {where}{did_you_mean(key, allowed)}",
                    f"allowed keys: {', '.join(allowed)}",
                )

    def check_name(self, name: str, loc: Location, what: str) -> bool:
        if NAME_PATTERN.fullmatch(name):
            return True
        self.error(loc, f"invalid {what} name '{name}'",
                   "names start with a letter or '_' and hold only letters, digits and '_'")
        return False

    # ----------------------------------------------------------------- model
    def parse_file(self, path: Path, name: str | None = None, overrides: Sequence[str] = ()) -> ModelDef | None:
        if self.state is None:  # the spec the user named: its folder bounds every path in it
            self.state = _ParseState(Path(path).absolute().parent.resolve())
        self.file = str(path)
        try:
            tree = apply_overrides(load_file(path), overrides)
        except SpecError as exc:
            self.diagnostics.extend(exc.diagnostics)
            return None
        default_name = name or re.sub(r"\W", "_", path.stem)
        return self.parse_model(tree, default_name, str(path), top=name is None)

    def parse_model(self, tree: YMap, name: str, file: str, top: bool) -> ModelDef:
        if top:
            self.unknown_keys(tree, TOP_KEYS, "the spec")
            name_node = tree.get("name")
            if isinstance(name_node, YScalar) and isinstance(name_node.value, str):
                # Nothing refers to the model's own name, so Keras's names ('mobilenetv2_1.00_224') work too.
                if MODEL_NAME_PATTERN.fullmatch(name_node.value):
                    name = name_node.value
                else:
                    self.error(name_node.loc, f"invalid model name '{name_node.value}'",
                               "a model name is one line of text without '/'")
            elif name_node is not None:
                self.error(name_node.loc, f"'name' must be a string, got {type_name(name_node)}")
        if "sequential" in tree.entries:
            return self.parse_sequential(tree, name, file)
        for key in ("inputs", "edges", "outputs"):
            if key not in tree.entries:
                self.error(tree.loc, f"model '{name}' has no '{key}'",
                           "a functional model needs 'inputs', 'edges' and 'outputs'")
        inputs = self.parse_inputs(tree.get("inputs"))
        layers = self.parse_layers(tree.get("layers"))
        models = self.parse_models(tree.get("models"), file)
        edges = self.parse_edges(tree.get("edges"))
        outputs = self.parse_outputs(tree.get("outputs"))
        compile_def = self.parse_compile(tree) if top else None
        training = self.parse_training(tree.get("training")) if top else TrainingDef()
        return ModelDef(name=name, loc=tree.loc, file=file, inputs=inputs, layers=layers,
                        models=models, edges=edges, outputs=outputs, compile=compile_def,
                        training=training)

    def parse_sequential(self, tree: YMap, name: str, file: str) -> ModelDef:
        for key in ("edges", "outputs", "layers", "models"):
            if key in tree.entries:
                self.error(tree.key_loc(key), f"a sequential model has no '{key}'",
                           "list its layers under 'sequential:', or make it functional")
        inputs = self.parse_inputs(tree.get("inputs"))
        if len(inputs) > 1:
            self.error(inputs[1].loc, "a sequential model takes one input",
                       "make it a functional model to give it several")
        node = tree.get("sequential")
        sequence: list[tuple[str, LayerDef]] = []
        if not isinstance(node, YSeq) or not node.items:
            assert node is not None
            self.error(node.loc, f"'sequential' must be a non-empty list of layers, got {type_name(node)}")
        else:
            counts: dict[str, int] = {}
            for item in node.items:
                layer = self.parse_layer_def(item, "a sequential layer")
                if layer is None:
                    continue
                layer_name = layer.args.get("name")
                if not isinstance(layer_name, str):
                    # Keras's own naming, counted within this model: conv2d, conv2d_1, ...
                    base = _snake_case(layer.class_name)
                    count = counts.get(base, 0)
                    counts[base] = count + 1
                    layer_name = base if count == 0 else f"{base}_{count}"
                sequence.append((layer_name, layer))
        return ModelDef(name=name, loc=tree.loc, file=file, kind="sequential", inputs=inputs,
                        sequence=tuple(sequence))

    def parse_models(self, node: YNode | None, file: str) -> dict[str, ModelDef]:
        models: dict[str, ModelDef] = {}
        if node is None:
            return models
        if isinstance(node, YScalar) and node.value is None:
            return models  # an empty section, e.g. only comments below the key
        mapping = self.expect_map(node, "'models'", "map each sub-model's name to its definition")
        if mapping is None:
            return models
        for name, key_node, body in mapping.items():
            model = None
            if self.check_name(name, key_node.loc, "model"):
                body_map = self.expect_map(body, f"sub-model '{name}'",
                                           "give it 'include:', 'sequential:' or 'inputs/edges/outputs'")
                if body_map is not None:
                    model = self.parse_submodel(name, key_node.loc, body_map, file)
            # A sub-model that failed to parse still defines its name (its error is reported).
            models[name] = model or ModelDef(name=name, loc=key_node.loc, file=file, kind="broken")
        return models

    def parse_submodel(self, name: str, loc: Location, body: YMap, file: str) -> ModelDef | None:
        for key in TOP_ONLY:
            if key.name in body.entries:
                self.error(body.key_loc(key.name),
                           f"'{key.name}' belongs to the top-level model, not sub-model '{name}'", key.top_only)
        self.unknown_keys(body, SUBMODEL_KEYS, f"sub-model '{name}'", tuple(key.name for key in TOP_ONLY))
        include = body.get("include")
        if include is not None:
            for key in ("inputs", "edges", "outputs", "layers", "models", "sequential"):
                if key in body.entries:
                    self.error(body.key_loc(key), f"sub-model '{name}' has both 'include' and '{key}'",
                               "an included model is defined in its own file")
            model = self.parse_include(name, include, file)
        else:
            model = self.parse_model(body, name, file, top=False)
        if model is None:
            return None
        weights, weights_loc = self.parse_weights(body.get("weights"), file)
        trainable_node = body.get("trainable")
        trainable = None
        if trainable_node is not None:
            if isinstance(trainable_node, YScalar) and isinstance(trainable_node.value, bool):
                trainable = trainable_node.value
            else:
                self.error(trainable_node.loc, f"'trainable' must be true or false, got {type_name(trainable_node)}")
        return ModelDef(**{**model.__dict__, "name": name, "loc": loc, "weights": weights,
                           "weights_loc": weights_loc, "trainable": trainable, "compile": None})

    def referenced_file(self, node: YNode, file: str, what: str, hint: str,
                        max_bytes: int | None = None) -> Path | None:
        """The regular file inside the spec's folder that a path in the spec names, or None after an error."""
        if not (isinstance(node, YScalar) and isinstance(node.value, str) and node.value):
            self.error(node.loc, f"'{what}' must be a file path, got {type_name(node)}", hint)
            return None
        assert self.state is not None
        try:
            return resolve_spec_path(node.value, node.loc, file, self.state.root, what, max_bytes)
        except SpecError as exc:
            self.diagnostics.extend(exc.diagnostics)
            return None

    def parse_include(self, name: str, node: YNode, file: str) -> ModelDef | None:
        path = self.referenced_file(node, file, "include", "give the path of another spec file", MAX_SPEC_BYTES)
        if path is None:
            return None
        assert isinstance(node, YScalar) and self.state is not None
        stack = self.include_stack or (Path(file).resolve(),)
        if path in stack:
            chain = " -> ".join(p.name for p in stack + (path,))
            self.error(node.loc, f"include cycle: {chain}", "a spec cannot include itself, directly or not")
            return None
        if len(stack) > MAX_INCLUDE_DEPTH:
            self.error(node.loc, f"includes nested deeper than {MAX_INCLUDE_DEPTH} files")
            return None
        included = self.state.included.get(path)
        if included is None:
            included = self.state.included[path] = self.read_include(path, stack)
        self.expanded += 1 + included.expanded
        if self.expanded > MAX_INCLUDED_MODELS:
            self.error(node.loc, f"includes expand to more than {MAX_INCLUDED_MODELS} sub-models",
                       "a file included several times, by files included several times, multiplies; "
                       "include each model once and call it from several edges")
            return None
        if included.errors:  # point from the spec the user ran to the file with the problems
            self.error(node.loc, f"included spec '{node.value}' has {included.errors} error(s); "
                       "see the messages for that file")
        if included.model is None:
            return None
        return ModelDef(**{**included.model.__dict__, "included_from": node.value})

    def read_include(self, path: Path, stack: tuple[Path, ...]) -> _Included:
        """Parse and check an included file; its diagnostics are reported once."""
        sub = Parser(stack + (path,), self.state)
        model = sub.parse_file(Path(display_path(path)), name=None)
        if model is not None:  # an included file is checked as a whole, as if validated alone
            from .semantics import check_model

            sub.diagnostics.extend(check_model(model))
        self.diagnostics.extend(sub.diagnostics)
        return _Included(model, sum(d.is_error for d in sub.diagnostics), sub.expanded)

    def parse_weights(self, node: YNode | None, file: str) -> tuple[str | None, Location | None]:
        if node is None:
            return None, None
        if isinstance(node, YScalar) and isinstance(node.value, str) and not node.value.endswith(".keras"):
            self.error(node.loc, f"weights file '{node.value}' is not a .keras file",
                       "save the trained model with model.save('NAME.keras')")
            return None, None
        path = self.referenced_file(node, file, "weights", "give the path of a .keras file")
        return (display_path(path), node.loc) if path is not None else (None, None)

    # ---------------------------------------------------------------- inputs
    def parse_inputs(self, node: YNode | None) -> tuple[InputDef, ...]:
        if node is None:
            return ()
        mapping = self.expect_map(node, "'inputs'", "map each input's name to its shape, e.g. 'x: {shape: [784]}'")
        if mapping is None:
            return ()
        inputs = []
        for name, key_node, body in mapping.items():
            parsed = None
            if self.check_name(name, key_node.loc, "input"):
                parsed = self.parse_input(name, key_node.loc, body)
            # An input that failed to parse still defines its name (its error is reported).
            inputs.append(parsed or InputDef(name, key_node.loc, ()))
        return tuple(inputs)

    def parse_input(self, name: str, loc: Location, body: YNode) -> InputDef | None:
        if isinstance(body, YSeq):  # shorthand: `x: [784]`
            shape = self.parse_shape(body, name)
            return None if shape is None else InputDef(name, loc, shape)
        mapping = self.expect_map(body, f"input '{name}'", "write 'NAME: {shape: [784]}' or 'NAME: [784]'")
        if mapping is None:
            return None
        self.unknown_keys(mapping, INPUT_KEYS, f"input '{name}'")
        shape_node = mapping.get("shape")
        if shape_node is None:
            self.error(mapping.loc, f"input '{name}' has no 'shape'", "give its shape without the batch size, e.g. 'shape: [784]'")
            return None
        shape = self.parse_shape(shape_node, name)
        dtype = None
        dtype_node = mapping.get("dtype")
        if dtype_node is not None:
            value = dtype_node.value if isinstance(dtype_node, YScalar) else None
            if not isinstance(value, str) or value not in DTYPES:
                shown = value if isinstance(value, str) else type_name(dtype_node)
                self.error(dtype_node.loc, f"unknown dtype '{shown}' for input '{name}'"
                           + (did_you_mean(value, DTYPES) if isinstance(value, str) else ""),
                           f"use one of: {', '.join(DTYPES)}")
            else:
                dtype = value
        options = {}
        for key in ("batch_size", "sparse", "ragged"):
            option = mapping.get(key)
            if option is None:
                continue
            value = to_python(option)
            wanted = int if key == "batch_size" else bool
            if not isinstance(value, wanted) or (key == "batch_size" and (isinstance(value, bool) or value < 1)):
                self.error(option.loc, f"'{key}' of input '{name}' must be "
                           + ("a positive integer" if key == "batch_size" else "true or false")
                           + f", got {type_name(option)}")
            else:
                options[key] = value
        if shape is None:
            return None
        return InputDef(name, loc, shape, dtype, options)

    def parse_shape(self, node: YNode, name: str) -> tuple[int | None, ...] | None:
        if not isinstance(node, YSeq):
            self.error(node.loc, f"shape of input '{name}' must be a list, got {type_name(node)}",
                       "e.g. 'shape: [784]' or 'shape: [null, 128]' (no batch size)")
            return None
        dims: list[int | None] = []
        for item in node.items:
            value = item.value if isinstance(item, YScalar) else item
            if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                dims.append(value)
            else:
                self.error(item.loc, f"shape of input '{name}' has an invalid dimension: {type_name(item)}",
                           "each dimension is a positive integer, or null for any size")
                return None
        return tuple(dims)

    # ---------------------------------------------------------------- layers
    def parse_layers(self, node: YNode | None) -> dict[str, LayerDef]:
        layers: dict[str, LayerDef] = {}
        if node is None:
            return layers
        if isinstance(node, YScalar) and node.value is None:
            return layers  # an empty section
        mapping = self.expect_map(node, "'layers'", "map each shared layer's name to its class, e.g. 'lstm: {LSTM: {units: 32}}'")
        if mapping is None:
            return layers
        for name, key_node, body in mapping.items():
            if not self.check_name(name, key_node.loc, "layer"):
                continue
            layer = self.parse_layer_def(body, f"layer '{name}'")
            if layer is not None:
                if "name" in layer.args:
                    self.error(layer.arg_nodes["name"][0], f"layer '{name}' sets 'name' in its arguments",
                               "the key under 'layers:' is already the layer's name; remove 'name'")
                layers[name] = replace(layer, name_loc=key_node.loc)
        return layers

    def parse_layer_def(self, node: YNode, what: str) -> LayerDef | None:
        """`Dense` or `{Dense: {units: 64}}` -> LayerDef."""
        if isinstance(node, YScalar) and isinstance(node.value, str):
            return LayerDef(node.value, node.loc, {})
        if not isinstance(node, YMap) or len(node.entries) != 1:
            self.error(node.loc, f"{what} must name one layer class with its arguments, got "
                       + (f"{len(node.entries)} keys" if isinstance(node, YMap) else type_name(node)),
                       "e.g. '{Dense: {units: 64, activation: relu}}'")
            return None
        class_name, key_node, args_node = next(node.items())
        return self.make_layer_def(class_name, key_node.loc, args_node, what)

    def make_layer_def(self, class_name: str, loc: Location, args_node: YNode, what: str) -> LayerDef | None:
        if isinstance(args_node, YScalar) and args_node.value is None:
            return LayerDef(class_name, loc, {})
        if not isinstance(args_node, YMap):
            self.error(args_node.loc,
                       f"arguments of {class_name} in {what} must be a mapping, got {type_name(args_node)}",
                       f"name each argument as Keras does, e.g. '{class_name}: {{units: 64}}'")
            return None
        self.resolve_file_arguments(class_name, args_node)
        args = {key: to_python(value) for key, _, value in args_node.items()}
        arg_nodes = {key: (key_node.loc, value) for key, key_node, value in args_node.items()}
        return LayerDef(class_name, loc, args, arg_nodes)

    def resolve_file_arguments(self, class_name: str, args_node: YMap) -> None:
        """Arguments Keras reads as files (a vocabulary path), in this layer or nested at any depth.

        Each is checked like an include and replaced by its absolute path, so
        Keras reads the file the spec names, whatever the working directory.
        """
        layers = [(class_name, args_node)]
        for mapping in maps_within(args_node):
            if len(mapping.entries) == 1:
                nested_class, _, nested_args = next(mapping.items())
                if isinstance(nested_args, YMap):
                    layers.append((nested_class, nested_args))
        for name, arguments in layers:
            for argument in FILE_ARGUMENTS.get(name, ()):
                value = arguments.get(argument)
                if isinstance(value, YScalar) and isinstance(value.value, str):
                    path = self.referenced_file(value, self.file, argument, "give a list of values, or "
                                                "the path of a file in the spec's folder", MAX_ARGUMENT_FILE_BYTES)
                    value.value = str(path) if path is not None else value.value

    # ----------------------------------------------------------------- edges
    def parse_edges(self, node: YNode | None) -> tuple[Edge, ...]:
        if node is None:
            return ()
        mapping = self.expect_map(node, "'edges'", "map each tensor's name to the call that makes it")
        if mapping is None:
            return ()
        edges = []
        for name, key_node, body in mapping.items():
            edge = None
            if self.check_name(name, key_node.loc, "tensor"):
                edge = self.parse_edge(name, key_node.loc, body)
            if edge is None:  # keep the name defined, so later uses don't cascade into errors
                edge = Edge(name=name, loc=key_node.loc, layer=None, target=None, inputs=None,
                            inputs_loc=key_node.loc, broken=True)
            edges.append(edge)
        return tuple(edges)

    def parse_edge(self, name: str, loc: Location, body: YNode) -> Edge | None:
        mapping = self.expect_map(body, f"edge '{name}'",
                                  "e.g. '{Dense: {units: 64}, in: x}' or '{layer: shared_lstm, in: x}'")
        if mapping is None:
            return None
        class_keys = [key for key in mapping.entries if key not in EDGE_KEYS]
        target_node = mapping.get("layer")
        layer: LayerDef | None = None
        target: Ref | None = None
        if target_node is not None:
            if class_keys:
                self.error(mapping.key_loc(class_keys[0]),
                           f"edge '{name}' has both 'layer' and the layer class '{class_keys[0]}'",
                           "call a declared layer with 'layer: NAME', or define one inline, not both")
                return None
            if name_of(target_node) is not None:
                target = Ref(name_of(target_node), target_node.loc)
            else:
                self.error(target_node.loc, f"'layer' of edge '{name}' must be a layer or model name, got {type_name(target_node)}")
                return None
        elif not class_keys:
            self.error(mapping.loc, f"edge '{name}' calls no layer",
                       "add a layer class (e.g. 'Dense: {units: 64}') or 'layer: NAME'")
            return None
        elif len(class_keys) > 1:
            self.error(mapping.key_loc(class_keys[1]),
                       f"edge '{name}' names several layer classes ({', '.join(class_keys)})"
                       + did_you_mean(class_keys[1], EDGE_KEYS),
                       f"an edge calls one layer; its other keys are {', '.join(EDGE_KEYS)}")
            return None
        else:
            key = class_keys[0]
            layer = self.make_layer_def(key, mapping.key_loc(key), mapping.entries[key][1], f"edge '{name}'")
            if layer is None:
                return None
            if "name" in layer.args:
                self.error(layer.arg_nodes["name"][0], f"edge '{name}' sets 'name' in its layer's arguments",
                           "an inline layer is named after its edge; rename the edge instead")
                return None
        in_node = mapping.get("in")
        inputs = self.parse_call_inputs(in_node, name) if in_node is not None else None
        repeat = self.parse_repeat(mapping.get("repeat"), name, layer is not None)
        outputs = self.parse_output_names(mapping.get("outputs"), name)
        if repeat > 1 and outputs:
            self.error(mapping.key_loc("outputs"), f"edge '{name}' repeats a layer and names its outputs",
                       "a repeated layer must have one output")
        if repeat > 1 and isinstance(inputs, dict):
            self.error(mapping.key_loc("repeat"), f"edge '{name}' repeats a layer called with keyword tensors",
                       "each repeated layer is called on the previous one's output alone; drop 'repeat'")
        return Edge(name=name, loc=loc, layer=layer, target=target, inputs=inputs,
                    inputs_loc=in_node.loc if in_node is not None else loc,
                    repeat=repeat, outputs=outputs)

    def parse_call_inputs(self, node: YNode, edge: str) -> CallInputs:
        if isinstance(node, YMap):
            keywords: dict[str, Ref | tuple[Ref, ...]] = {}
            for key, _, value in node.items():
                parsed = self.parse_call_inputs(value, edge)
                if isinstance(parsed, dict):
                    self.error(value.loc, f"keyword input '{key}' of edge '{edge}' must be a tensor name or a list")
                elif parsed is not None:
                    keywords[key] = parsed
            return keywords
        if isinstance(node, YSeq):
            refs = []
            for item in node.items:
                if name_of(item) is not None:
                    refs.append(Ref(name_of(item), item.loc))
                else:
                    self.error(item.loc, f"inputs of edge '{edge}' must be tensor names, got {type_name(item)}")
            return tuple(refs)
        if name_of(node) is not None:
            return Ref(name_of(node), node.loc)
        self.error(node.loc, f"'in' of edge '{edge}' must be a tensor name, a list or a mapping, got {type_name(node)}")
        return None

    def parse_repeat(self, node: YNode | None, edge: str, inline: bool) -> int:
        if node is None:
            return 1
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.error(node.loc, f"'repeat' of edge '{edge}' must be a positive integer, got {type_name(node)}")
            return 1
        if not inline:
            self.error(node.loc, f"edge '{edge}' repeats a declared layer",
                       "'repeat' makes N new layers from an inline class; a declared layer is one layer")
            return 1
        if value > MAX_REPEAT:
            self.error(node.loc, f"'repeat' of edge '{edge}' is {value}; at most {MAX_REPEAT} is allowed",
                       "a chain that long cannot be built; split it or use fewer layers")
            return 1
        return value

    def parse_output_names(self, node: YNode | None, edge: str) -> tuple[Ref, ...]:
        if node is None:
            return ()
        if not isinstance(node, YSeq) or not node.items:
            self.error(node.loc, f"'outputs' of edge '{edge}' must be a list of names, got {type_name(node)}",
                       "name each output of a multi-output layer, e.g. 'outputs: [seq, state_h, state_c]'")
            return ()
        refs = []
        for item in node.items:
            if isinstance(item, YScalar) and isinstance(item.value, str):
                if self.check_name(item.value, item.loc, "tensor"):
                    refs.append(Ref(item.value, item.loc))
            else:
                self.error(item.loc, f"'outputs' of edge '{edge}' must hold names, got {type_name(item)}")
        return tuple(refs)

    # --------------------------------------------------------------- outputs
    def parse_outputs(self, node: YNode | None) -> tuple[Ref, ...]:
        if node is None:
            return ()
        if name_of(node) is not None:
            return (Ref(name_of(node), node.loc),)
        if isinstance(node, YSeq) and node.items:
            refs = []
            for item in node.items:
                if name_of(item) is not None:
                    refs.append(Ref(name_of(item), item.loc))
                else:
                    self.error(item.loc, f"'outputs' must hold tensor names, got {type_name(item)}")
            return tuple(refs)
        self.error(node.loc, f"'outputs' must be a tensor name or a non-empty list of names, got {type_name(node)}")
        return ()

    # --------------------------------------------------------------- compile
    def parse_compile(self, tree: YMap) -> CompileDef | None:
        settings = {key: Setting(to_python(tree.get(key)), tree.get(key))
                    for key in COMPILE_KEYS if tree.get(key) is not None}
        return CompileDef(**settings) if settings else None


    def parse_training(self, node: YNode | None) -> TrainingDef:
        if node is None:
            return TrainingDef()
        mapping = self.expect_map(node, "'training'", "e.g. 'training: {epochs: 10, batch_size: 32}'")
        if mapping is None:
            return TrainingDef()
        self.unknown_keys(mapping, TRAINING_KEYS, "'training'")
        values: dict[str, Any] = {}
        for key in ("epochs", "batch_size"):
            item = mapping.get(key)
            if item is None:
                continue
            value = item.value if isinstance(item, YScalar) else None
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self.error(item.loc, f"'training.{key}' must be a positive integer, got {type_name(item)}")
            elif value > MAX_COUNT:  # TensorFlow counts batches and epochs in 32-bit integers
                self.error(item.loc, f"'training.{key}' is {value:,}; it may be at most {MAX_COUNT:,}")
            else:
                values[key] = value
        item = mapping.get("validation_split")
        if item is not None:
            value = item.value if isinstance(item, YScalar) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                self.error(item.loc, f"'training.validation_split' must be a number in [0, 1), got {type_name(item)}")
            else:
                values["validation_split"] = float(value)
        return TrainingDef(**values)


def name_of(node: YNode) -> str | None:
    """A name written as a plain scalar: strings, and words YAML 1.1 reads as booleans (`on`, `no`)."""
    if isinstance(node, YScalar) and isinstance(node.value, (str, bool)) and node.text:
        return node.text if isinstance(node.value, bool) else node.value
    return None


def _snake_case(name: str) -> str:
    """Keras's layer-name style: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def parse(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ModelDef | None, list[Diagnostic]]:
    """Parse a spec file (after `--set` overrides); return the model (None if unreadable) and diagnostics."""
    parser = Parser()
    model = parser.parse_file(Path(path), overrides=overrides)
    return model, parser.diagnostics
