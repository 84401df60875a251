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


def read_grids(run_dir: str):
    """{(node id, step): (png bytes, tiles dict)} of the filter grids written to a run directory,
    read back with TensorBoard's EventAccumulator."""
    import json

    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    from tensorboard_archviz import metadata

    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        node = metadata.layer_from_filters_tag(tag)
        if node is None:
            continue
        for ev in acc.Tensors(tag):
            png, tiles = tensor_util.make_ndarray(ev.tensor_proto)[:2]
            out[(node, ev.step)] = (bytes(png), json.loads(tiles))
    return out


def png_array(png: bytes) -> np.ndarray:
    return np.asarray(png_image(png), np.int16)


def orientation_deg(img: np.ndarray) -> float:
    """Dominant gradient direction (degrees, 0..180) of an image from its structure tensor: the
    direction across the stripes of a grating."""
    gy, gx = np.gradient(np.asarray(img, np.float64))
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    return float(np.degrees(0.5 * np.arctan2(2 * jxy, jxx - jyy)) % 180.0)


def angle_diff(a: float, b: float) -> float:
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def grating(angle_deg: float, size: int = 7, period: float = 4.0, sigma: float = 2.5):
    """A Gabor kernel: stripes across ``angle_deg`` (its gradient direction), Gaussian envelope."""
    r = np.arange(size) - (size - 1) / 2.0
    y, x = np.meshgrid(r, r, indexing="ij")
    t = np.deg2rad(angle_deg)
    g = np.cos(2 * np.pi * (x * np.cos(t) + y * np.sin(t)) / period)
    g = g * np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return (g - g.mean()).astype(np.float32)


def callback_fresh_check(log_dir: str) -> dict:
    """Fit the demo LeNet 2 epochs with ``ArchVizCallback(filters=..., filters_every=1)`` on the
    current Keras backend, then recompute each written grid from a fresh model holding that
    epoch's weights (snapshotted by a callback that runs first). Returns JSON-safe figures."""
    import os
    import sys

    import keras

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "tests", "fixtures"))
    from keras_models import build_lenet, compile_classifier

    from tensorboard_archviz import ArchVizCallback
    from tensorboard_archviz.filters.keras_backend import make_grids

    keras.utils.set_random_seed(0)
    model = compile_classifier(build_lenet())
    snaps = {}
    snap = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: snaps.__setitem__(
        e + 1, [w.copy() for w in model.get_weights()]))
    opts = {"steps": 6, "max_filters": 4}
    cb = ArchVizCallback(log_dir=log_dir, filters=["conv2d", "conv2d_1"], filters_every=1,
                         filters_options=opts)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[snap, cb])
    written = read_grids(os.path.join(log_dir, "train"))
    out = {"backend": keras.backend.backend(), "written": sorted("%s@%d" % k for k in written),
           "png_diff": {}, "score_diff": {}, "between": {}, "kernel_shape": None}
    for step, weights in sorted(snaps.items()):
        clone = build_lenet()
        clone.set_weights(weights)
        for r in make_grids(clone, ["conv2d", "conv2d_1"], **opts):
            png, tiles = written[(r.node_id, step)]
            key = "%s@%d" % (r.node_id, step)
            out["png_diff"][key] = int(np.abs(png_array(png) - png_array(r.png)).max())
            a = np.array([t["score"] for t in tiles["tiles"]])
            b = np.array([t["score"] for t in r.tiles["tiles"]])
            out["score_diff"][key] = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))
            out["kernel_shape"] = out["kernel_shape"] or tiles.get("kernel_shape")
    for node in ("conv2d", "conv2d_1"):
        a = np.array([t["score"] for t in written[(node, 1)][1]["tiles"]])
        b = np.array([t["score"] for t in written[(node, 2)][1]["tiles"]])
        out["between"][node] = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))
    return out


def assert_fresh(res: dict, backend: str) -> None:
    """What ``callback_fresh_check`` must show: every grid equals the fresh computation with its
    own epoch's weights, and the two epochs' grids differ."""
    assert res["backend"] == backend
    assert res["written"] == ["conv2d@1", "conv2d@2", "conv2d_1@1", "conv2d_1@2"]
    assert all(v <= 1 for v in res["png_diff"].values()), res["png_diff"]
    assert all(v < 1e-3 for v in res["score_diff"].values()), res["score_diff"]
    assert all(v > 1e-3 for v in res["between"].values()), res["between"]
    assert res["kernel_shape"] == [5, 5, 1]


HEAD_INDICES = [5, 0, 3]


def keras_head_cases():
    """(x (3, 11, 12, 4), layers) with deterministic weights: the conv kinds and options the
    Keras filter head handles, unequal strides included (the same layers in any process)."""
    from keras import layers

    rng = np.random.RandomState(0)
    x = rng.randn(3, 11, 12, 4).astype(np.float32)
    cases = [layers.Conv2D(6, 3, strides=2, padding="same", groups=2),
             layers.Conv2D(6, (3, 2), dilation_rate=2, padding="valid"),
             layers.Conv2D(6, 4, strides=(2, 3), padding="valid", use_bias=False),
             layers.Conv2D(6, 3, strides=(2, 3), padding="same", groups=2),
             layers.Conv2D(6, (2, 3), strides=(3, 2), padding="same"),
             layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2),
             layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=(2, 3)),
             layers.SeparableConv2D(6, 3, depth_multiplier=2, padding="same"),
             layers.SeparableConv2D(6, 3, padding="valid", strides=(3, 2)),
             layers.Conv2DTranspose(6, 3, strides=2, padding="same")]
    for layer in cases:
        layer.build(x.shape)
        layer.set_weights([(0.5 * rng.randn(*w.shape)).astype(np.float32)
                           for w in layer.get_weights()])
    return x, cases


def keras_heads(x, cases):
    """Each layer's filter head on x for filters HEAD_INDICES (numpy arrays (3, Ho, Wo))."""
    import keras
    from keras import ops

    from tensorboard_archviz.filters import keras_backend

    idx = ops.convert_to_tensor(np.array(HEAD_INDICES, np.int32))
    return [ops.convert_to_numpy(keras_backend.make_head(layer, keras, ops)[0](
        ops.convert_to_tensor(x), idx)) for layer in cases]
