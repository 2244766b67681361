"""Loading a .keras file for `kspec import` without running code from it.

The file is checked first (kspec.modelfile: zip members, sizes, every class
in its config) before Keras reads any of it; Keras's safe mode stays on
besides. Every failure is a RunError located at the file's path.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from ..build import deep_recursion, keras_message
from ..errors import RunError, fail
from ..modelfile import check_model_file

__all__ = ["load_model_file"]


def load_model_file(keras: Any, path: Path) -> Any:
    """The model in a .keras file, loaded with Keras's safe mode once kspec has checked the file."""
    checked = check_model_file(path)
    try:
        with warnings.catch_warnings(), deep_recursion(checked.layer_count()):
            # an untrained optimizer's state is not the model's
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zipfile errors, ...
        message = keras_message(exc)
        if "safe_mode" in message:  # a Lambda, a lambda, a TFSMLayer, a vocabulary file, a torch module, ...
            said = message.split(". ")[0].rstrip(".")[:200]  # Keras's first sentence names what it refused
            raise fail(RunError, str(path),
                       f"the model holds what Keras loads only with safe_mode off: \"{said}\"",
                       "kspec never runs code or reads files a model file names, and a spec cannot carry "
                       "code; rewrite that part with layers from keras.layers") from None
        match = re.search(r"[Cc]ould not (?:locate|deserialize) class '?([\w.]+)'?", message)
        if match:
            raise fail(RunError, str(path),
                       f"the model uses the class '{match.group(1)}', which is not part of Keras",
                       "a spec names only classes of keras.layers; custom classes cannot be "
                       "imported") from None
        raise fail(RunError, str(path), f"cannot load the model: {message}",
                   "give a model saved with model.save('NAME.keras')") from None
