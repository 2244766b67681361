"""Preprocessing layers marked `adapt: true`, fitted to the training rows before a run trains.

`kspec train` adapts each marked layer of a freshly built model, in the order
of the spec's edges (a layer fed by another adapted layer sees it adapted),
on the training rows only, a batch at a time through tf.data, so data larger
than memory works. A layer called on an input is adapted on that input's
array; any other on what reaches it, computed by a model from the inputs up
to the layer.

The adapted state (a vocabulary, a mean and variance, bin boundaries) then
becomes the layer's constructor arguments, and the model is built again from
the spec with them. The state is so part of the model's config: the output
shapes that depend on it (a one-hot vocabulary's size) are right, and the
saved model.keras carries it. Commands that build the spec and load a trained
file's weights (evaluate, predict, inspect) read it back from the file's
config first (`with_saved_state`); a resumed run takes it from its checkpoint.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .build import DEFAULT_MAX_PARAMS, Built, build, deep_graphs
from .data import Dataset
from .errors import DataError, Location, RunError, fail
from .spec.model import LayerDef, ModelDef

# The constructor arguments that hold each class's adapted state; an argument
# set to None is dropped (Discretization takes bin boundaries or a bin count).
STATE_ARGUMENTS = {
    "Normalization": ("mean", "variance"),
    "StringLookup": ("vocabulary",),
    "IntegerLookup": ("vocabulary",),
    "TextVectorization": ("vocabulary",),
    "Discretization": ("bin_boundaries",),
}
_DROPPED = {"Discretization": ("num_bins",)}


def adapted_layers(spec: ModelDef) -> dict[str, LayerDef]:
    """The top-level model's layers marked `adapt: true`, by Keras layer name, in the order they are first called."""
    found: dict[str, LayerDef] = {}
    for edge in spec.edges:
        if edge.layer is not None and edge.layer.adapt:
            found[edge.name] = edge.layer
        elif edge.target is not None and edge.target.name in spec.layers and spec.layers[edge.target.name].adapt:
            found.setdefault(edge.target.name, spec.layers[edge.target.name])
    return found


def training_rows(dataset: Dataset, validation: Dataset | None, split: float | None) -> Dataset:
    """The rows `fit` trains on: without the last ones a validation split holds out (as Keras takes them)."""
    if validation is not None or not split:
        return dataset
    return dataset.window(0, len(dataset) - int(len(dataset) * split))


def adapt(keras: Any, built: Built, rows: Dataset, batch_size: int, max_params: int | None,
          progress: Callable[[str], None], distributed: bool = False) -> Built:
    """Adapt the spec's marked layers on `rows`; the model built again with their state as arguments."""
    spec = built.spec
    layers = adapted_layers(spec)
    if not layers:
        return built
    if distributed:
        first = next(iter(layers.values()))
        raise fail(RunError, first.where, "'adapt: true' cannot be used in a distributed run: each process "
                   "would fit the layer to its own share of the rows", "train it in one process")
    states = {}
    for name, layer_def in layers.items():
        layer = built.layers[name]
        with deep_graphs(spec):
            batches = _batches(keras, spec, built.model, layer, rows, batch_size)
        try:
            layer.adapt(batches)
        except DataError:
            raise
        except Exception as exc:  # Keras's refusal of these rows (e.g. numbers given to a StringLookup)
            from .build import keras_message

            raise fail(RunError, layer_def.where, f"Keras could not adapt {layer_def.class_name} '{name}' to the "
                       f"training rows: {keras_message(exc)}", "check that the data this layer sees is what "
                       "the layer expects") from None
        states[name] = _adapted_state(layer_def.class_name, layer)
        progress(f"adapted {layer_def.class_name} '{name}' on {len(rows):,} training rows")
    return build(with_state(spec, states), max_params=max_params or DEFAULT_MAX_PARAMS)


def adapt_synthetic(built: Built, samples: int, max_params: int | None) -> Built:
    """A fresh model's marked layers adapted to the synthetic inputs `kspec check` makes (seed 0)."""
    if not adapted_layers(built.spec):
        return built
    from .backend import import_keras
    from .data import synthetic_inputs

    rows = Dataset(synthetic_inputs(built.spec, samples, np.random.default_rng(0)), {}, "synthetic data")
    return adapt(import_keras(), built, rows, samples, max_params, lambda _: None)


def _batches(keras: Any, spec: ModelDef, model: Any, layer: Any, rows: Dataset, batch_size: int) -> Any:
    """A tf.data stream of the batches of what reaches `layer`'s first call, computed from `rows`."""
    import tensorflow as tf

    tensors = layer._inbound_nodes[0].input_tensors  # Keras has no public accessor for a node's inputs
    tensor = tensors[0]
    index = next((i for i, inp in enumerate(model.inputs) if inp is tensor), None)
    feature = keras.Model(model.inputs, tensor) if index is None else None

    def batches() -> Any:
        for start in range(0, len(rows), batch_size):
            batch = rows.take(slice(start, start + batch_size))
            if feature is None:
                yield batch.inputs[spec.inputs[index].name]
            else:
                yield np.asarray(feature.predict_on_batch(batch.x(spec)))

    signature = tf.TensorSpec(tuple(tensor.shape), tf.as_dtype(tensor.dtype))
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def _adapted_state(class_name: str, layer: Any) -> dict[str, Any]:
    """A layer's state just after adapt(), which its config does not show yet."""
    if class_name == "Normalization":
        state = {"mean": layer.adapt_mean.numpy(), "variance": layer.adapt_variance.numpy()}
    elif class_name == "Discretization":
        state = {"bin_boundaries": layer.bin_boundaries}
    else:
        state = {"vocabulary": layer.get_vocabulary(include_special_tokens=False)}
    state = {name: _plain(value) for name, value in state.items()}
    state.update({name: None for name in _DROPPED.get(class_name, ())})
    return state


def state_of(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """An adapted layer's state, as constructor arguments in plain Python values, from the config of a layer
    built with it (after `adapt`, the model is built again with the state as its arguments)."""
    state = {name: _plain(config.get(name)) for name in STATE_ARGUMENTS.get(class_name, ())}
    state.update({name: None for name in _DROPPED.get(class_name, ())})
    return state


def _plain(value: Any) -> Any:
    """NumPy values and arrays (a vocabulary of np.str_) as Python's."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value.item() if isinstance(value, np.generic) else value


def with_state(spec: ModelDef, states: dict[str, dict[str, Any]]) -> ModelDef:
    """The spec with each adapted layer's state as its arguments (None drops an argument)."""
    def stated(layer: LayerDef, state: dict[str, Any]) -> LayerDef:
        args = {**layer.args, **state}
        return replace(layer, args={key: value for key, value in args.items() if value is not None})

    layers = {name: stated(layer, states[name]) if name in states else layer for name, layer in spec.layers.items()}
    edges = tuple(replace(edge, layer=stated(edge.layer, states[edge.name]))
                  if edge.layer is not None and edge.name in states else edge for edge in spec.edges)
    return replace(spec, layers=layers, edges=edges)


def state_in_model(spec: ModelDef, model: Any) -> ModelDef:
    """The spec with the adapted state of a loaded model's layers (a resumed run's checkpoint)."""
    layers = adapted_layers(spec)
    return with_state(spec, {name: state_of(layer.class_name, model.get_layer(name).get_config())
                             for name, layer in layers.items()})


def like_restored(built: Built, model: Any, max_params: int) -> Built:
    """The spec built with a restored checkpoint's adapted state, to compare the checkpoint with (a resumed run)."""
    if not adapted_layers(built.spec):
        return built
    return build(state_in_model(built.spec, model), max_params=max_params)


def with_saved_state(spec: ModelDef, path: str | Path, where: Location | None = None) -> ModelDef:
    """The spec with the adapted state a trained .keras file's config holds (evaluate, predict, inspect)."""
    layers = adapted_layers(spec)
    if not layers:
        return spec
    from .modelfile import check_model_file

    checked = check_model_file(path, where)
    configs = {}
    top = checked.config.get("config", {}) if isinstance(checked.config, dict) else {}
    for entry in top.get("layers", []) if isinstance(top, dict) else []:
        config = entry.get("config") if isinstance(entry, dict) else None
        if isinstance(config, dict) and config.get("name") in layers:
            configs[config["name"]] = config
    states = {}
    for name, layer in layers.items():
        state = state_of(layer.class_name, configs.get(name, {}))
        if any(state[key] is None for key in STATE_ARGUMENTS.get(layer.class_name, ())):
            raise fail(DataError, str(path), f"the file holds no adapted state for {layer.class_name} '{name}', "
                       "which the spec marks 'adapt: true'", "give the model.keras of a run of "
                       "`kspec train` of this spec")
        states[name] = state
    return with_state(spec, states)
