"""The seed guide's nine models, written by hand in Keras 3.

Layer names are given explicitly so that they match the specs' names (a spec
names every layer); everything else is the seed's code. Embedding's
`input_length` is left out because Keras 3 ignores it.
"""

from __future__ import annotations

import keras
from keras import layers


def mlp() -> keras.Model:
    inputs = keras.Input(shape=(784,), name="inputs")
    x = layers.Dense(64, activation="relu", name="hidden_1")(inputs)
    x = layers.Dense(64, activation="relu", name="hidden_2")(x)
    predictions = layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs=inputs, outputs=predictions, name="mlp")


def multi_io() -> keras.Model:
    main_input = keras.Input(shape=(100,), dtype="int32", name="main_input")
    x = layers.Embedding(output_dim=512, input_dim=10000, name="embedded")(main_input)
    lstm_out = layers.LSTM(32, name="lstm_out")(x)
    auxiliary_output = layers.Dense(1, activation="sigmoid", name="aux_output")(lstm_out)
    auxiliary_input = keras.Input(shape=(5,), name="aux_input")
    x = layers.Concatenate(name="merged")([lstm_out, auxiliary_input])
    x = layers.Dense(64, activation="relu", name="deep_1")(x)
    x = layers.Dense(64, activation="relu", name="deep_2")(x)
    x = layers.Dense(64, activation="relu", name="deep_3")(x)
    main_output = layers.Dense(1, activation="sigmoid", name="main_output")(x)
    return keras.Model(inputs=[main_input, auxiliary_input],
                       outputs=[main_output, auxiliary_output], name="multi_io")


def shared_lstm() -> keras.Model:
    tweet_a = keras.Input(shape=(140, 256), name="tweet_a")
    tweet_b = keras.Input(shape=(140, 256), name="tweet_b")
    shared = layers.LSTM(64, name="shared_lstm")
    encoded_a = shared(tweet_a)
    encoded_b = shared(tweet_b)
    merged_vector = layers.Concatenate(axis=-1, name="merged_vector")([encoded_a, encoded_b])
    predictions = layers.Dense(1, activation="sigmoid", name="predictions")(merged_vector)
    return keras.Model(inputs=[tweet_a, tweet_b], outputs=predictions, name="shared_lstm")


def shared_nodes() -> keras.Model:
    a = keras.Input(shape=(140, 256), name="a")
    b = keras.Input(shape=(140, 256), name="b")
    lstm = layers.LSTM(32, name="lstm")
    encoded_a = lstm(a)
    encoded_b = lstm(b)
    return keras.Model([a, b], [encoded_a, encoded_b], name="shared_nodes")


def shared_conv() -> keras.Model:
    a = keras.Input(shape=(32, 32, 3), name="a")
    b = keras.Input(shape=(64, 64, 3), name="b")
    conv = layers.Conv2D(16, (3, 3), padding="same", name="conv")
    conved_a = conv(a)
    conved_b = conv(b)
    return keras.Model([a, b], [conved_a, conved_b], name="shared_conv")


def inception() -> keras.Model:
    input_img = keras.Input(shape=(256, 256, 3), name="input_img")
    tower_1 = layers.Conv2D(64, (1, 1), padding="same", activation="relu", name="tower_1a")(input_img)
    tower_1 = layers.Conv2D(64, (3, 3), padding="same", activation="relu", name="tower_1")(tower_1)
    tower_2 = layers.Conv2D(64, (1, 1), padding="same", activation="relu", name="tower_2a")(input_img)
    tower_2 = layers.Conv2D(64, (5, 5), padding="same", activation="relu", name="tower_2")(tower_2)
    tower_3 = layers.MaxPooling2D((3, 3), strides=(1, 1), padding="same", name="tower_3a")(input_img)
    tower_3 = layers.Conv2D(64, (1, 1), padding="same", activation="relu", name="tower_3")(tower_3)
    output = layers.Concatenate(axis=1, name="output")([tower_1, tower_2, tower_3])
    return keras.Model(input_img, output, name="inception")


def residual() -> keras.Model:
    x = keras.Input(shape=(256, 256, 3), name="x")
    y = layers.Conv2D(3, (3, 3), padding="same", name="y")(x)
    z = layers.Add(name="z")([x, y])
    return keras.Model(x, z, name="residual")


def shared_vision() -> keras.Model:
    digit_input = keras.Input(shape=(27, 27, 1), name="digit_input")
    x = layers.Conv2D(64, (3, 3), name="conv_1")(digit_input)
    x = layers.Conv2D(64, (3, 3), name="conv_2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool")(x)
    out = layers.Flatten(name="out")(x)
    vision_model = keras.Model(digit_input, out, name="vision_model")

    digit_a = keras.Input(shape=(27, 27, 1), name="digit_a")
    digit_b = keras.Input(shape=(27, 27, 1), name="digit_b")
    out_a = vision_model(digit_a)
    out_b = vision_model(digit_b)
    concatenated = layers.Concatenate(name="concatenated")([out_a, out_b])
    out = layers.Dense(1, activation="sigmoid", name="out")(concatenated)
    return keras.Model([digit_a, digit_b], out, name="classification_model")


def vqa() -> keras.Model:
    vision_model = keras.Sequential(name="vision_model")
    vision_model.add(keras.Input(shape=(224, 224, 3), name="image"))
    vision_model.add(layers.Conv2D(64, (3, 3), activation="relu", padding="same", name="conv2d"))
    vision_model.add(layers.Conv2D(64, (3, 3), activation="relu", name="conv2d_1"))
    vision_model.add(layers.MaxPooling2D((2, 2), name="max_pooling2d"))
    vision_model.add(layers.Conv2D(128, (3, 3), activation="relu", padding="same", name="conv2d_2"))
    vision_model.add(layers.Conv2D(128, (3, 3), activation="relu", name="conv2d_3"))
    vision_model.add(layers.MaxPooling2D((2, 2), name="max_pooling2d_1"))
    vision_model.add(layers.Conv2D(256, (3, 3), activation="relu", padding="same", name="conv2d_4"))
    vision_model.add(layers.Conv2D(256, (3, 3), activation="relu", name="conv2d_5"))
    vision_model.add(layers.Conv2D(256, (3, 3), activation="relu", name="conv2d_6"))
    vision_model.add(layers.MaxPooling2D((2, 2), name="max_pooling2d_2"))
    vision_model.add(layers.Flatten(name="flatten"))

    image_input = keras.Input(shape=(224, 224, 3), name="image_input")
    encoded_image = vision_model(image_input)
    question_input = keras.Input(shape=(100,), dtype="int32", name="question_input")
    embedded_question = layers.Embedding(input_dim=10000, output_dim=256,
                                         name="embedded_question")(question_input)
    encoded_question = layers.LSTM(256, name="encoded_question")(embedded_question)
    merged = layers.Concatenate(name="merged")([encoded_question, encoded_image])
    output = layers.Dense(1000, activation="softmax", name="output")(merged)
    return keras.Model(inputs=[image_input, question_input], outputs=output, name="vqa_model")


# spec file stem -> (hand-written model, names of shared layers and their call counts)
SEED_MODELS = {
    "mlp": (mlp, {}),
    "multi_io": (multi_io, {}),
    "shared_lstm": (shared_lstm, {"shared_lstm": 2}),
    "shared_nodes": (shared_nodes, {"lstm": 2}),
    "shared_conv": (shared_conv, {"conv": 2}),
    "inception": (inception, {}),
    "residual": (residual, {}),
    "shared_vision": (shared_vision, {"vision_model": 2}),
    "vqa": (vqa, {"vision_model": 1}),
}
