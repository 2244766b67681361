"""Located YAML tree -> typed spec objects, collecting structural problems.

Structure means: which keys exist, what type each value has, names that are
well formed, includes that resolve. Whether names refer to anything, and
whether layer classes and arguments exist in Keras, is semantics.py's job.

Which keys each mapping allows is declared in keys.py; what each key means
is read by the parse function of its mapping: here the top level and
includes, and beside this module inputs.py, layer_defs.py, edges.py, blocks.py,
submodels.py and settings.py, each given the Parser that collects the
diagnostics (so they come out in the order the spec is read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import Diagnostic, Location, SpecError, did_you_mean
from .load import YMap, YNode, YScalar, load_file, type_name
from .paths import MAX_SPEC_BYTES, display_path, resolve_spec_path
from .overrides import apply_overrides
from .model import ModelDef, TrainingDef
from .keys import MODEL_NAME_PATTERN, NAME_PATTERN, key_names
from .inputs import parse_inputs
from .layer_defs import parse_layers
from .edges import parse_outputs
from .blocks import Expander, Problems, parse_blocks, renamed_outputs
from .submodels import parse_models, parse_sequential
from .settings import parse_compile, parse_training

# The keys the top level allows, in the order the "allowed keys" hints list them (declared in keys.py).
TOP_KEYS = key_names("spec")

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
        model = self.parse_model(tree, default_name, str(path), top=name is None)
        if name is None and ("search" in tree.entries or "objective" in tree.entries):
            from dataclasses import replace

            from .search import parse_search  # kspec tune's keys: other commands carry them unused

            search, problems = parse_search(self, tree, model)
            model = replace(model, search=search, problems=model.problems + problems)
        return model

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
            return parse_sequential(self, tree, name, file)
        for key in ("inputs", "edges", "outputs"):
            if key not in tree.entries:
                self.error(tree.loc, f"model '{name}' has no '{key}'",
                           "a functional model needs 'inputs', 'edges' and 'outputs'")
        inputs = parse_inputs(self, tree.get("inputs"))
        layers = parse_layers(self, tree.get("layers"))
        models = parse_models(self, tree.get("models"), file)
        problems = Problems()  # what blocks' names mean: reported with the semantic checks
        blocks = parse_blocks(self, tree.get("blocks"), problems)
        edges, aliases = Expander(self, blocks, problems).model_edges(tree.get("edges"), inputs)  # calls expanded
        outputs = renamed_outputs(parse_outputs(self, tree.get("outputs")), aliases)
        compile_def = parse_compile(tree) if top else None
        training = parse_training(self, tree.get("training")) if top else TrainingDef()
        return ModelDef(name=name, loc=tree.loc, file=file, inputs=inputs, layers=layers,
                        models=models, edges=edges, outputs=outputs, compile=compile_def,
                        training=training, problems=tuple(problems.diagnostics))

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


def parse(path: str | Path, overrides: Sequence[str] = ()) -> tuple[ModelDef | None, list[Diagnostic]]:
    """Parse a spec file (after `--set` overrides); return the model (None if unreadable) and diagnostics."""
    parser = Parser()
    model = parser.parse_file(Path(path), overrides=overrides)
    return model, parser.diagnostics
