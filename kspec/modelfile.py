""".keras files are checked here before any of them is deserialised.

Every place that loads a .keras file (`--weights`, a spec's `weights:`,
`kspec import`, `--resume`) calls `check_model_file` first. It opens the zip
with the standard library only and refuses, naming the file:

- what is not a .keras file: a folder, a device or FIFO, a file whose name
  does not end in `.keras` (Keras picks its loader by the name, so an HDF5
  file with a zip appended would pass these checks and load as legacy HDF5),
  a file that is not a zip archive or was cut short;
- members with unsafe paths (absolute, `..`), too many members, members whose
  declared size is too large or that inflate like a decompression bomb;
- a config.json nested too deeply, or holding what Keras could be made to
  run or fetch: classes from outside Keras, functions outside Keras's
  activations, losses, metrics and ops, lambdas and Lambda layers, layers that
  load foreign graphs or files (`catalogue.REFUSED_LAYERS`), Keras's
  `safe_mode` toggle, and URLs.

Nothing here imports Keras. Keras's own `safe_mode=True` stays on wherever a
model is loaded; these checks come first and do not rely on it.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from .catalogue import REFUSED_LAYERS
from .errors import Location, RunError, fail
from .filekind import FOLDER, NOT_REGULAR, not_a_file
from .recursion import recursion_allowance
from .spec.paths import FILE_ARGUMENTS

__all__ = ["CheckedModelFile", "check_model_file"]

# A .keras file holds config.json, metadata.json, the weights and a few assets.
MAX_MEMBERS = 10_000
# config.json and metadata.json larger than this are not Keras's.
MAX_CONFIG_BYTES = 64 * 2**20
# A member may inflate at most this many times its stored size, once it is
# larger than the floor below. Keras stores its members uncompressed (ratio 1),
# and floats deflate by little; a bomb inflates by a thousand.
MAX_EXPANSION = 100
EXPANSION_FLOOR_BYTES = 16 * 2**20
# Deeper JSON is refused before it is walked (a real config nests ~10 levels a sub-model).
MAX_CONFIG_DEPTH = 500
# Keras functions a config may name, by the module they come from.
_FUNCTION_MODULES = re.compile(r"keras\.(src\.)?(activations|losses|metrics|ops)(\.\w+)*")
# Special serialized values Keras writes without a module (tensors, tuples, ...).
_CODE_CLASSES = {"__lambda__": "a lambda function"}
_LAMBDA_MESSAGE = ("holds Python code (a Lambda layer or a lambda function), which Keras loads "
                   "only with safe_mode off")
_LAMBDA_HINT = ("kspec never runs code from a file, and a spec cannot carry code; rewrite that part with "
                "layers from keras.layers")
_HINT = "give a model saved with model.save('NAME.keras')"


@dataclass(frozen=True)
class CheckedModelFile:
    """A .keras file that passed the checks: its path and its parsed config (None if it has none)."""

    path: Path
    config: Any

    def layer_count(self) -> int:
        """About how many layers the file holds (every serialized object counts)."""
        return sum(1 for value in _values(self.config) if isinstance(value, dict) and "class_name" in value)


def check_model_file(path: str | Path, where: Location | None = None) -> CheckedModelFile:
    """Refuse a .keras file that is not one, or that holds what kspec never loads.

    Args:
        path: the file, as the user named it.
        where: where to report a refusal (a spec's `weights:` line); the file itself by default.
    Returns:
        The checked file, with its config.json parsed (bounded in size and depth).
    Raises:
        RunError naming the file, before anything in it is deserialised.
    """
    path = Path(path)
    refuse = _Refuser(path, where or Location(str(path)))
    _check_regular_file(path, refuse)
    if not path.name.endswith(".keras"):  # Keras's own test (case-sensitive) for loading a zip as .keras
        raise refuse("is not named NAME.keras; Keras chooses how to load a file by its name, and kspec loads "
                     "only .keras files (an .h5 file would bypass these checks)",
                     "save the model with model.save('NAME.keras'), or give a renamed .keras file its name back")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            _check_members(infos, refuse)
            names = {info.filename: info for info in infos}
            config = _read_json(archive, names["config.json"], refuse) if "config.json" in names else None
            for info in infos:
                if info.filename.endswith(".h5"):
                    _check_hdf5(archive, info, refuse)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        raise refuse("is not a .keras file (not a zip archive, or cut short)",
                     "copy the file again if a copy was interrupted, or " + _HINT) from None
    except OSError as exc:
        raise refuse(f"cannot be read: {exc.strerror or exc}") from None
    if config is not None:
        _check_config(config, refuse)
    return CheckedModelFile(path, config)


class _Refuser:
    """Makes the RunErrors of one file; each message names it (its location may be a spec's line)."""

    def __init__(self, path: Path, where: Location):
        self.path = path
        self.where = where

    def __call__(self, what: str, hint: str | None = None) -> RunError:
        return fail(RunError, self.where, f"'{self.path}' {what}", hint)  # type: ignore[return-value]


def _check_regular_file(path: Path, refuse: _Refuser) -> None:
    try:
        mode = path.stat().st_mode  # stat, not open: opening a FIFO would wait for a writer
    except FileNotFoundError:
        raise fail(RunError, refuse.where, f"no such file: '{path}'", _HINT) from None
    except (OSError, ValueError) as exc:
        raise refuse(f"cannot be read: {getattr(exc, 'strerror', None) or exc}", _HINT) from None
    kind = not_a_file(mode)
    if kind == FOLDER:
        raise refuse("is a folder, not a .keras file", _HINT)
    if kind is not None:
        raise refuse(f"{NOT_REGULAR}, so not a .keras file", _HINT)


def _check_members(infos: list[zipfile.ZipInfo], refuse: _Refuser) -> None:
    if len(infos) > MAX_MEMBERS:
        raise refuse(f"holds {len(infos):,} files; a .keras file holds a few (at most {MAX_MEMBERS:,} are read)")
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise refuse(f"holds a file with an unsafe path ({name!r}), which is never extracted",
                         "a .keras file written by Keras holds relative paths only")
        if name in seen:
            raise refuse(f"holds the file {name!r} twice, which Keras never writes")
        seen.add(name)
        _check_size(info, refuse)
    # Many members each under the floor can still inflate together (Keras extracts assets to disk).
    total = sum(info.file_size for info in infos)
    stored = sum(info.compress_size for info in infos)
    if total > EXPANSION_FLOOR_BYTES and total > MAX_EXPANSION * max(stored, 1):
        raise refuse(f"inflates from {stored:,} to {total:,} bytes in all: a decompression bomb, not a saved model")


def _check_size(info: zipfile.ZipInfo, refuse: _Refuser) -> None:
    """Declared sizes bound what zipfile reads, so checking them bounds memory and time."""
    name, size = info.filename, info.file_size
    if name in ("config.json", "metadata.json") and size > MAX_CONFIG_BYTES:
        raise refuse(f"has a {name} of {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} any model needs")
    if size > EXPANSION_FLOOR_BYTES and size > MAX_EXPANSION * max(info.compress_size, 1):
        raise refuse(f"holds {name!r}, which inflates from {info.compress_size:,} to {size:,} bytes: "
                     "a decompression bomb, not a saved model")


def _read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, refuse: _Refuser) -> Any:
    """config.json, read at most to its bounded declared size and parsed with bounded nesting."""
    with archive.open(info) as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise refuse(f"has a config.json larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        # json's C parser recurses once a level: it may not follow a limit a caller raised for a deep graph
        with recursion_allowance(MAX_CONFIG_DEPTH + 50, cap=MAX_CONFIG_DEPTH + 50):
            return json.loads(data)
    except RecursionError:
        raise refuse(f"has a config.json nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse(f"has a config.json that is not valid JSON ({exc})", _HINT) from None


def _check_hdf5(archive: zipfile.ZipFile, info: zipfile.ZipInfo, refuse: _Refuser) -> None:
    """Weights must be in the file itself: HDF5 can link to, or store data in, other files.

    Only the HDF5 metadata is read (links and dataset layouts), not the weights.
    """
    import h5py  # a Keras dependency; imported only when a model file is checked

    def outside(name: str, link: Any) -> str | None:
        if isinstance(link, h5py.ExternalLink):
            return f"links '{name}' to the file '{link.filename}'"
        if isinstance(link, h5py.HardLink):
            item = weights.get(name)
            if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
                files = [entry[0] for entry in item.external or []] or ["other files"]
                return f"stores '{name}' in {_short(str(files[0]))}"
        return None

    try:
        with archive.open(info) as handle, h5py.File(handle, "r") as weights:
            found = weights.visititems_links(outside)
    except OSError as exc:
        raise refuse(f"has a {info.filename} that is not a readable HDF5 file ({exc})", _HINT) from None
    if found:
        raise refuse(f"has a {info.filename} that {found}, outside the model file; kspec reads weights "
                     "from the file you name only")


def _values(config: Any) -> Iterator[Any]:
    """Every value in a parsed config, nested ones included, without recursion."""
    stack = [config]
    while stack:
        value = stack.pop()
        yield value
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _check_config(config: Any, refuse: _Refuser) -> None:
    """Walk the whole config (nested objects too) for what kspec never lets Keras load."""
    stack: list[tuple[Any, int]] = [(config, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise refuse(f"has a config.json nested more than {MAX_CONFIG_DEPTH} levels deep")
        if isinstance(value, str) and "://" in value:
            raise refuse(f"names the URL {_short(value)!r}; kspec never fetches anything a model names")
        if isinstance(value, dict):
            if "safe_mode" in value:
                raise refuse("sets Keras's 'safe_mode' inside its config, which kspec never lets a file choose",
                             _LAMBDA_HINT)
            if "class_name" in value:
                _check_object(value, refuse)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def _check_object(serialized: dict[str, Any], refuse: _Refuser) -> None:
    """One serialized Keras object: {class_name, module, registered_name, config}."""
    class_name = serialized["class_name"]
    module = serialized.get("module")
    registered = serialized.get("registered_name")
    config = serialized.get("config")
    if class_name in _CODE_CLASSES or class_name == "Lambda":
        raise refuse(_LAMBDA_MESSAGE, _LAMBDA_HINT)
    if not isinstance(class_name, str) or not (module is None or isinstance(module, str)):
        raise refuse(f"has an object whose class is {_short(repr(class_name))}, which Keras never writes")
    if class_name == "function":
        if module is None or not _FUNCTION_MODULES.fullmatch(module):
            raise refuse(f"names the function {_short(repr(config))} from '{module}', which kspec never loads",
                         "a model's functions are Keras's activations, losses and metrics")
        return
    if module is not None and not _is_keras(module):
        raise refuse(f"uses the class '{module}.{class_name}', which is not part of Keras",
                     "a spec names only classes of keras.layers; custom classes cannot be imported")
    if registered is not None and registered != class_name:
        raise refuse(f"uses the class '{registered}', which is not part of Keras",
                     "a spec names only classes of keras.layers; custom classes cannot be imported")
    if class_name in REFUSED_LAYERS and class_name not in ("InputLayer", "Layer"):
        raise refuse(f"holds a {class_name} layer, which kspec never loads: {REFUSED_LAYERS[class_name]}")
    for argument in FILE_ARGUMENTS.get(class_name, ()):
        if isinstance(config, dict) and isinstance(config.get(argument), str):
            raise refuse(f"has a {class_name} whose {argument} is the file {_short(config[argument])!r}, "
                         "which kspec never reads from a model file")


def _is_keras(module: str) -> bool:
    return module == "keras" or module.startswith("keras.")


def _short(text: str, limit: int = 60) -> str:
    """A value from the file, cut so a message stays on one line."""
    return text if len(text) <= limit else text[:limit] + "..."
