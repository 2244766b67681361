"""Constant call arguments (`call: {training: true}`) and wrappers around a declared layer or sub-model.

Each built model is compared with the same model written by hand in Keras:
same layer classes and configs, and the same outputs once the weights are the
same. Messages for mistakes are pinned in tests/specs/invalid.
"""

from __future__ import annotations

import textwrap

import keras
import numpy as np
import yaml
from keras import layers

from kspec.build import build
from kspec.graph import to_dot
from kspec.importer import from_model
from kspec.inspection import calls, format_table
from kspec.spec import read_spec, validate


def _build(write_spec, text: str):
    model_def, _ = read_spec(write_spec(textwrap.dedent(text)))
    return build(model_def)


def _same_outputs(ours, theirs, inputs) -> None:
    """Same layers (by name and class), then the same outputs once `theirs`' weights are copied into `ours`."""
    assert [(l.name, type(l).__name__) for l in ours.layers] == [(l.name, type(l).__name__) for l in theirs.layers]
    ours.set_weights(theirs.get_weights())
    for got, expected in zip(keras.tree.flatten(ours.predict(inputs, verbose=0)),
                             keras.tree.flatten(theirs.predict(inputs, verbose=0))):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ constants
ATTENTION = """
name: causal
inputs:
  tokens: {shape: [5, 8]}
edges:
  att:
    MultiHeadAttention: {num_heads: 2, key_dim: 4}
    in: {query: tokens, value: tokens}
    call: {use_causal_mask: true, return_attention_scores: true}
    outputs: [attended, scores]
outputs: [attended, scores]
"""


def _attention_reference() -> keras.Model:
    tokens = keras.Input((5, 8), name="tokens")
    attended, scores = layers.MultiHeadAttention(num_heads=2, key_dim=4, name="att")(
        query=tokens, value=tokens, use_causal_mask=True, return_attention_scores=True)
    return keras.Model(tokens, [attended, scores], name="causal")


def test_attention_with_a_causal_mask_and_its_scores_is_the_hand_written_model(write_spec):
    built = _build(write_spec, ATTENTION)
    data = np.random.default_rng(0).standard_normal((2, 5, 8)).astype("float32")
    _same_outputs(built.model, _attention_reference(), data)
    scores = built.model.predict(data, verbose=0)[1]
    assert np.all(scores[:, :, np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)  # no look-ahead


def test_monte_carlo_dropout_as_keras_3_runs_it(write_spec):
    """`training: true` is recorded in the call; Keras 3 lets a flag given to the model (predict's) override it."""
    built = _build(write_spec, """
        name: mc
        inputs:
          x: {shape: [64]}
        edges:
          hidden: {Dense: {units: 64}}
          dropped: {Dropout: {rate: 0.5, seed: 3}, call: {training: true}}
        outputs: [dropped]
        """)
    x = keras.Input((64,), name="x")
    hidden = layers.Dense(64, name="hidden")(x)
    reference = keras.Model(x, layers.Dropout(0.5, seed=3, name="dropped")(hidden, training=True), name="mc")
    assert built.model.get_layer("dropped")._inbound_nodes[0].arguments.kwargs == {"training": True}
    data = np.ones((4, 64), dtype="float32")
    _same_outputs(built.model, reference, data)
    first, second = (keras.ops.convert_to_numpy(built.model(data)) for _ in range(2))
    assert np.mean(first == 0) > 0.2 and not np.array_equal(first, second)  # dropping, differently each time
    assert np.all(built.model.predict(data, verbose=0) != 0)  # predict calls the model with training=False


def test_a_sub_model_called_in_training_mode(write_spec):
    built = _build(write_spec, """
        inputs:
          x: {shape: [16]}
        models:
          noisy:
            inputs: {v: {shape: [16]}}
            edges:
              d: {Dropout: {rate: 0.5}}
            outputs: [d]
        edges:
          y: {layer: noisy, in: x, call: {training: true}}
        outputs: [y]
        """)
    assert built.model.get_layer("noisy")._inbound_nodes[-1].arguments.kwargs["training"] is True


def test_inspect_and_graph_show_the_constants(write_spec):
    built = _build(write_spec, ATTENTION)
    row = calls(built)[0]
    assert row.to_dict()["call"] == {"use_causal_mask": True, "return_attention_scores": True}
    assert "query=tokens, value=tokens, use_causal_mask=True, return_attention_scores=True" in format_table([row])
    assert ('"input:tokens" -> "att" [label="query=(None, 5, 8)\\nuse_causal_mask=True\\n'
            'return_attention_scores=True"];') in to_dot(built)


def test_import_carries_the_constants(tmp_path):
    original = _attention_reference()
    text = from_model(original)
    assert yaml.safe_load(text)["edges"]["att"]["call"] == {"use_causal_mask": True, "return_attention_scores": True}
    path = tmp_path / "imported.yaml"
    path.write_text(text, encoding="utf-8")
    rebuilt = build(read_spec(path)[0]).model
    _same_outputs(rebuilt, original, np.random.default_rng(1).standard_normal((2, 5, 8)).astype("float32"))


def test_import_refuses_a_value_call_cannot_write():
    x = keras.Input((4, 3), name="x")
    model = keras.Model(x, layers.MultiHeadAttention(1, 2, name="att")(x, x, attention_mask=np.ones((4, 4), bool)),
                        name="masked")
    try:
        from_model(model)
    except Exception as exc:  # a RunError naming the call and the argument
        message = str(exc)
    assert message.startswith("masked: error: call 0 of 'att' passes attention_mask=array(")
    assert message.endswith("; a spec passes tensors ('in:') and constants ('call:': true, false, a number, a "
                            "string or null) only\n  hint: call the layer without that argument before importing")


# ------------------------------------------------------------- wrappers
VIDEO_QA = """
name: video_qa
inputs:
  video: {shape: [3, 8, 8, 1]}
  image: {shape: [8, 8, 1]}
  question: {shape: [6], dtype: int32}
models:
  vision_model:
    inputs:
      frame: {shape: [8, 8, 1]}
    sequential:
      - Conv2D: {filters: 4, kernel_size: [3, 3], activation: relu, name: conv}
      - MaxPooling2D: {pool_size: [2, 2], name: pool}
      - Flatten: {name: flatten}
layers:
  question_lstm: {LSTM: {units: 4}}
edges:
  encoded_frames: {TimeDistributed: {layer: vision_model}, in: video}
  encoded_video: {LSTM: {units: 5}}
  encoded_image: {layer: vision_model, in: image}
  embedded: {Embedding: {input_dim: 20, output_dim: 4}, in: question}
  encoded_question: {Bidirectional: {layer: question_lstm}}
  merged: {Concatenate: {}, in: [encoded_video, encoded_image, encoded_question]}
  output: {Dense: {units: 7, activation: softmax}}
outputs: [output]
"""


def _video_qa_reference() -> keras.Model:
    """The guide's video question answering: TimeDistributed(vision_model), the vision model also called on an image."""
    vision_model = keras.Sequential([keras.Input((8, 8, 1), name="frame"),
                                     layers.Conv2D(4, (3, 3), activation="relu", name="conv"),
                                     layers.MaxPooling2D((2, 2), name="pool"),
                                     layers.Flatten(name="flatten")], name="vision_model")
    question_lstm = layers.LSTM(4, name="question_lstm")
    video = keras.Input((3, 8, 8, 1), name="video")
    image = keras.Input((8, 8, 1), name="image")
    question = keras.Input((6,), dtype="int32", name="question")
    encoded_video = layers.LSTM(5, name="encoded_video")(
        layers.TimeDistributed(vision_model, name="encoded_frames")(video))
    encoded_image = vision_model(image)
    embedded = layers.Embedding(20, 4, name="embedded")(question)
    encoded_question = layers.Bidirectional(question_lstm, name="encoded_question")(embedded)
    merged = layers.Concatenate(name="merged")([encoded_video, encoded_image, encoded_question])
    output = layers.Dense(7, activation="softmax", name="output")(merged)
    return keras.Model([video, image, question], output, name="video_qa")


def test_time_distributed_wraps_the_declared_sub_model_itself(write_spec):
    path = write_spec(VIDEO_QA)
    _, diagnostics = validate(str(path))
    assert diagnostics == []  # no "never called" warning for a wrapped layer
    built = build(read_spec(path)[0])
    vision_model = built.layers["vision_model"]
    assert built.model.get_layer("encoded_frames").layer is vision_model  # one set of weights for both uses
    rng = np.random.default_rng(2)
    data = [rng.standard_normal((2, 3, 8, 8, 1)).astype("float32"), rng.standard_normal((2, 8, 8, 1)).astype("float32"),
            rng.integers(0, 20, (2, 6)).astype("int32")]
    _same_outputs(built.model, _video_qa_reference(), data)


def test_a_wrapper_declared_before_the_layer_it_wraps(write_spec):
    built = _build(write_spec, """
        inputs:
          x: {shape: [4, 3]}
        layers:
          both_ways: {Bidirectional: {layer: lstm, merge_mode: sum}}
          lstm: {LSTM: {units: 2}}
        edges:
          y: {layer: both_ways}
        outputs: [y]
        """)
    assert built.layers["both_ways"].forward_layer.units == 2


def test_import_names_the_sub_model_a_wrapper_wraps(tmp_path):
    original = _video_qa_reference()
    text = from_model(original)
    spec = yaml.safe_load(text)
    assert spec["edges"]["encoded_frames"] == {"TimeDistributed": {"layer": "vision_model"}, "in": "video"}
    assert "vision_model" in spec["models"]
    path = tmp_path / "imported.yaml"
    path.write_text(text, encoding="utf-8")
    rebuilt = build(read_spec(path)[0]).model
    assert rebuilt.get_layer("encoded_frames").layer is rebuilt.get_layer("vision_model")
    rng = np.random.default_rng(3)
    data = [rng.standard_normal((2, 3, 8, 8, 1)).astype("float32"), rng.standard_normal((2, 8, 8, 1)).astype("float32"),
            rng.integers(0, 20, (2, 6)).astype("int32")]
    _same_outputs(rebuilt, original, data)


def test_import_declares_a_sub_model_only_a_wrapper_uses(tmp_path):
    frame = keras.Input((4,), name="frame")
    inner = keras.Model(frame, layers.Dense(2, name="project")(frame), name="per_frame")
    frames = keras.Input((3, 4), name="frames")
    original = keras.Model(frames, layers.TimeDistributed(inner, name="each")(frames), name="wrapped_only")
    text = from_model(original)
    assert list(yaml.safe_load(text)["models"]) == ["per_frame"]
    path = tmp_path / "imported.yaml"
    path.write_text(text, encoding="utf-8")
    _, diagnostics = validate(str(path))
    assert diagnostics == []
    rebuilt = build(read_spec(path)[0]).model
    _same_outputs(rebuilt, original, np.random.default_rng(4).standard_normal((2, 3, 4)).astype("float32"))
