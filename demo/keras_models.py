"""The Keras models of the demos and benchmarks (LeNet 1,256,080 params, MLP 25,450).

Layer names are given explicitly (the names Keras would pick in a fresh process), so node ids are
the same in every process: ``conv2d``, ``max_pooling2d``, ``conv2d_1``, ... .
"""

from __future__ import annotations

import keras
from keras import layers


def build_lenet(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """LeNet: Conv 20 5x5 same relu, MaxPool 2, Conv 50 5x5 same relu, MaxPool 2, Flatten,
    Dense 500 relu, Dense 10 softmax. Params 520 / 0 / 25,050 / 0 / 0 / 1,225,500 / 5,010 =
    1,256,080."""
    return keras.Sequential([
        keras.Input(shape=input_shape, name="input_layer"),
        layers.Conv2D(20, 5, padding="same", activation="relu", name="conv2d"),
        layers.MaxPooling2D(2, name="max_pooling2d"),
        layers.Conv2D(50, 5, padding="same", activation="relu", name="conv2d_1"),
        layers.MaxPooling2D(2, name="max_pooling2d_1"),
        layers.Flatten(name="flatten"),
        layers.Dense(500, activation="relu", name="dense"),
        layers.Dense(num_classes, activation="softmax", name="dense_1"),
    ], name="lenet")


def build_mlp(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """Fashion-MNIST-style MLP: Flatten, Dense 32 relu, Dropout 0.2, Dense 10 softmax (25,450)."""
    return keras.Sequential([
        keras.Input(shape=input_shape, name="input_layer"),
        layers.Flatten(name="flatten"),
        layers.Dense(32, activation="relu", name="dense"),
        layers.Dropout(0.2, name="dropout"),
        layers.Dense(num_classes, activation="softmax", name="dense_1"),
    ], name="mlp")


def compile_classifier(model: keras.Model) -> keras.Model:
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model
