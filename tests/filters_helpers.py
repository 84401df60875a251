"""Helpers shared by the filter-maximisation tests (hand-set kernels, patch correlation)."""

from __future__ import annotations

import io
from typing import List

import numpy as np


def hand_kernels() -> List[np.ndarray]:
    """5x5 kernels: horizontal edge (bright above dark), vertical edge, centre-surround.

    All three are zero-sum, so a plain spatial mean of their (linear) output could not see them.
    """
    h = np.zeros((5, 5), np.float32)
    h[:2] = 1.0
    h[3:] = -1.0
    c = np.full((5, 5), -9.0 / 16.0, np.float32)
    c[1:4, 1:4] = 1.0
    return [h, h.T.copy(), c]


def ncc_max(img: np.ndarray, k: np.ndarray) -> float:
    """Max over all valid patches of the normalised cross-correlation of patch and kernel."""
    from numpy.lib.stride_tricks import sliding_window_view

    p = sliding_window_view(np.asarray(img, np.float64), k.shape).reshape(-1, k.size)
    p = p - p.mean(axis=1, keepdims=True)
    kk = (k - k.mean()).ravel().astype(np.float64)
    norm = np.linalg.norm(p, axis=1) * np.linalg.norm(kk)
    ok = norm > 1e-9
    return float(((p @ kk)[ok] / norm[ok]).max()) if ok.any() else 0.0


def noise_baseline(k: np.ndarray, size: int = 28, n: int = 30, seed: int = 0) -> float:
    """The best ncc_max that uniform random images reach (what "noise cannot pass" means)."""
    rng = np.random.RandomState(seed)
    return max(ncc_max(rng.rand(size, size), k) for _ in range(n))


def png_image(png: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(png))
    im.load()
    return im


def keras_hand_model():
    """Keras: Conv2D 'edges' (4 filters, 5x5, hand-set; filter 3 dead: bias -1000), then a second conv,
    BatchNorm, Dropout and a head."""
    import keras
    from keras import layers

    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(4, 5, padding="same", activation="relu", name="edges")(inp)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(6, 3, padding="same", name="second")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.5)(x)
    out = layers.Dense(3)(layers.Flatten()(x))
    m = keras.Model(inp, out, name="hand")
    k = np.zeros((5, 5, 1, 4), np.float32)
    for i, kern in enumerate(hand_kernels()):
        k[:, :, 0, i] = kern
    k[:, :, 0, 3] = np.random.RandomState(0).randn(5, 5)
    m.get_layer("edges").set_weights([k, np.array([0, 0, 0, -1000], np.float32)])
    bn = m.get_layer("bn")
    bn.set_weights([np.ones(6), np.zeros(6), np.linspace(-0.5, 0.5, 6), np.linspace(0.5, 2, 6)])
    return m


THRESHOLD = 0.9


def assert_recovers_hand_kernels(images: np.ndarray) -> None:
    """Image i of the first layer's grid matches hand-set kernel i above THRESHOLD (which random
    noise does not reach) and better than any other kernel."""
    kernels = hand_kernels()
    for i, k in enumerate(kernels):
        img = images[i, :, :, 0]
        own = ncc_max(img, k)
        noise = noise_baseline(k)
        assert noise < THRESHOLD < own, (i, noise, own)
        others = [ncc_max(img, kk) for j, kk in enumerate(kernels) if j != i]
        assert own > max(others) + 0.1, (i, own, others)
