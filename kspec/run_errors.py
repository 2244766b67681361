"""Failures inside Keras's fit, evaluate or predict, as located errors.

A spec and its data can pass every check and Keras can still fail while
running them (a shape only known at run time, a TensorFlow kernel's own
check). `model_errors` turns such a failure into a located error at the
layer Keras's message names, else at the model.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from .build import graph_location, run_message, stack_location
from .errors import MAX_MESSAGE, KspecError, Location, SpecError, fail, shorten
from .spec.model import ModelDef


@contextmanager
def model_errors(spec: ModelDef, doing: str) -> Iterator[None]:
    """Report an exception from Keras's fit, evaluate or predict as a located error.

    The location is the spec's layer or sub-model whose name Keras's message
    quotes (the longest such name), else the model itself.
    """
    try:
        yield
    except (KspecError, KeyboardInterrupt):
        raise
    except Exception as exc:  # ValueError, TypeError, TensorFlow's errors, ...
        message = run_message(exc)
        message = shorten(message, MAX_MESSAGE)  # TensorFlow's can run to pages
        where = graph_location(spec, str(exc)) or blamed_layer(spec, message)
        if where == spec.loc:  # the message names no layer: the innermost one being called, if any
            where = stack_location(spec, exc.__traceback__) or where
        raise fail(SpecError, where, f"Keras failed while {doing}: {message}",
                   "the spec and the data passed every check, but Keras could not run them; "
                   "this is the place in the spec that Keras's message names") from None


def blamed_layer(spec: ModelDef, message: str) -> Location:
    """Where the spec defines the layer or sub-model that `message` names, else the model."""
    places = dict(_named_places(spec))
    for name in sorted(places, key=len, reverse=True):
        if re.search(rf"(?<![\w/.-]){re.escape(name)}(?![\w-])", message):
            return places[name]
    return spec.loc


def _named_places(spec: ModelDef) -> Iterator[tuple[str, Location]]:
    """Every Keras layer name the spec gives, with where it is written, sub-models included."""
    for name, model in spec.models.items():
        yield from _named_places(model)
        yield name, model.loc
    for name, layer in spec.layers.items():
        yield name, layer.where
    for name, layer in spec.sequence:
        yield name, layer.loc
    for edge in spec.edges:
        for name in edge.layer_names():
            yield name, edge.loc
