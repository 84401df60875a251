"""Filter maximisation for Keras 3: TensorFlow backend in-process, torch backend in a subprocess
(a Keras backend is fixed per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from filters_helpers import (HEAD_INDICES, THRESHOLD, assert_recovers_hand_kernels,
                             keras_head_cases, keras_heads, keras_hand_model as hand_model,
                             png_image)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("these tests run Keras on the TensorFlow backend", allow_module_level=True)
from keras import layers  # noqa: E402

from tensorboard_archviz.filters import core, keras_backend, tf_optim  # noqa: E402


@pytest.fixture(scope="module")
def hand_run():
    m = hand_model()
    before = [w.copy() for w in m.get_weights()]
    lines = []
    results = list(keras_backend.make_grids(m, log=lines.append, steps=64))
    return m, before, results, lines


def test_keras_tf_recovers_hand_set_kernels(hand_run):
    _, _, results, _ = hand_run
    first = results[0]
    assert first.node_id == "edges" and first.tiles["parametrization"] == "pixel"
    assert_recovers_hand_kernels(first.images)


def test_keras_tf_dead_filter_range_png_and_state(hand_run):
    m, before, results, lines = hand_run
    assert [r.node_id for r in results] == ["edges", "second"]
    first, second = results
    tiles = first.tiles["tiles"]
    assert [t["index"] for t in tiles] == [0, 1, 2, 3]
    assert [t["dead"] for t in tiles] == [False, False, False, True]
    assert tiles[3]["score"] < -900 and tiles[3]["post_score"] == 0.0
    assert first.tiles["activation"] == "relu"
    # "second" is followed by BatchNorm and an Activation("relu") layer: judged after both.
    assert (second.tiles["norm"], second.tiles["activation"]) == ("BatchNorm", "relu")
    assert second.tiles["post"] == "the output after BatchNorm + relu"
    assert first.tiles["kernel_shape"] == [5, 5, 1]
    assert second.tiles["parametrization"] == "fourier" and len(second.tiles["tiles"]) == 6
    for r in results:
        assert r.images.min() >= 0.0 and r.images.max() <= 1.0
        im = png_image(r.png)
        t = r.tiles
        assert im.mode == "L" and t["channels"] == 1 and t["image_size"] == [28, 28]
        assert im.size == (t["cols"] * (t["tile_size"] + t["margin"]) + t["margin"],
                           t["rows"] * (t["tile_size"] + t["margin"]) + t["margin"])
        json.dumps(t)   # JSON-safe
    for a, b in zip(before, m.get_weights()):   # weights and BatchNorm statistics untouched
        np.testing.assert_array_equal(a, b)
    assert any("[1/2] edges (Conv2D): 4 of 4 filters" in l for l in lines)


def test_keras_heads_match_the_layers(tmp_path):
    x, cases = keras_head_cases()
    got = keras_heads(x, cases)
    for layer, pre in zip(cases, got):
        full = np.asarray(layer(x))       # activation None: the output is the pre-activation
        expect = full[np.arange(3), :, :, HEAD_INDICES]
        assert pre.shape == expect.shape, layer.name
        np.testing.assert_allclose(pre, expect, atol=1e-4, err_msg=layer.name)
    assert keras_backend.make_head(cases[0], keras, keras.ops)[1] == 6
    # TensorFlow's plain CPU kernels (oneDNN off, as on processors it does not serve): the
    # depthwise kernel there refuses unequal strides; the heads must run and agree.
    script = ("import sys, numpy as np; sys.path.insert(0, %r)\n"
              "from filters_helpers import keras_head_cases, keras_heads\n"
              "np.savez(%r, *keras_heads(*keras_head_cases()))\n"
              % (os.path.join(ROOT, "tests"), str(tmp_path / "heads.npz")))
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="2",
               KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = np.load(str(tmp_path / "heads.npz"))
    for k, (layer, pre) in enumerate(zip(cases, got)):
        np.testing.assert_allclose(plain["arr_%d" % k], pre, atol=1e-4, err_msg=layer.name)


def test_tf_render_matches_the_numpy_reference():
    import tensorflow as tf

    opts = core.resolve_options({"value_range": (0.0, 255.0)})
    plan = core.make_plan("c", "Conv2D", 2, 3, (20, 24), (0.0, 255.0), False, opts)
    opt = tf_optim.TFOptimizer(plan, None, None)
    z = 3.0 * np.random.RandomState(0).randn(2, 3, *plan.canvas_hw).astype(np.float32)
    got = opt.render(tf.constant(z)).numpy()
    want = core.render_numpy(z, plan, core.make_bases(plan)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_keras_nested_rescaling_rgb_and_node_ids():
    from tensorboard_archviz.extract.keras import layer_node_ids

    inner = keras.Sequential([keras.Input((64, 64, 3)),
                              layers.Conv2D(5, 3, activation="relu", name="conv_in"),
                              layers.SeparableConv2D(3, 3, name="sep")], name="inner")
    inp = keras.Input((64, 64, 3))
    x = layers.Rescaling(1 / 255.0)(inp)
    x = inner(x)
    x = layers.Conv2DTranspose(2, 3, strides=2, name="up")(x)
    m = keras.Model(inp, layers.GlobalAveragePooling2D()(x))
    results = list(keras_backend.make_grids(m, steps=3, max_filters=2))
    ids = layer_node_ids(m)
    assert [r.node_id for r in results] == ["inner/conv_in", "inner/sep", "up"]
    assert all(r.node_id in ids for r in results)
    for r in results:
        assert r.tiles["value_range"] == [0.0, 255.0] and r.tiles["channels"] == 3
        assert png_image(r.png).mode == "RGB"
        assert r.images.min() >= 0.0 and r.images.max() <= 255.0
        assert r.images.shape == (2, 64, 64, 3)
    assert results[0].tiles["parametrization"] == "pixel"
    assert results[1].tiles["parametrization"] == "fourier"
    # A layer name resolves to its node id.
    only = list(keras_backend.make_grids(m, ["sep"], steps=1, max_filters=1))
    assert [r.node_id for r in only] == ["inner/sep"]


class _Sub(keras.Model):
    def __init__(self):
        super().__init__()
        self.c1 = layers.Conv2D(3, 3, activation="relu")
        self.c2 = layers.Conv2D(2, 3)

    def call(self, x):
        return self.c2(self.c1(x))


def test_keras_subclassed_model_and_image_size():
    m = _Sub()
    m(np.zeros((1, 16, 16, 1), np.float32))
    results = list(keras_backend.make_grids(m, steps=2, image_size=(20, 20)))
    assert len(results) == 2
    assert results[1].images.shape == (2, 20, 20, 1)
    assert all(r.tiles["image_size"] == [20, 20] for r in results)


def test_keras_conv1d_is_skipped_with_a_log_line():
    m = keras.Sequential([keras.Input((16, 2)), layers.Conv1D(3, 3, name="c1d"),
                          layers.GlobalAveragePooling1D()])
    lines = []
    assert list(keras_backend.make_grids(m, log=lines.append)) == []
    assert any("skipped c1d (Conv1D): only 2-D convolutions are visualised" in l for l in lines)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        list(keras_backend.make_grids(m, ["nope"]))


TORCH_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    sys.path.insert(0, %(tests)r)
    from filters_helpers import hand_kernels, ncc_max, png_image
    from filters_helpers import keras_hand_model as hand_model
    from tensorboard_archviz.filters.keras_backend import make_grids
    import torch
    torch.set_num_threads(1)
    m = hand_model()
    before = [w.copy() for w in m.get_weights()]
    lines = []
    out = []
    for r in make_grids(m, log=lines.append, steps=64):
        out.append({"node_id": r.node_id, "mode": png_image(r.png).mode,
                    "size": list(png_image(r.png).size),
                    "dead": [t["dead"] for t in r.tiles["tiles"]],
                    "lo": float(r.images.min()), "hi": float(r.images.max()),
                    "ncc": [ncc_max(r.images[i, :, :, 0], k)
                            for i, k in enumerate(hand_kernels())] if r.node_id == "edges"
                           else None,
                    "tiles": r.tiles})
    same = all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    grads = [v.value.grad is None for v in m.trainable_variables]
    print("RESULT " + json.dumps({"backend": keras.backend.backend(), "grids": out,
                                  "lines": lines, "weights_same": same,
                                  "no_grads": all(grads)}))
""")


def test_keras_on_the_torch_backend_produces_grids():
    env = dict(os.environ, KERAS_BACKEND="torch",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    script = TORCH_SCRIPT % {"tests": os.path.join(ROOT, "tests")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    assert res["backend"] == "torch"
    assert [g["node_id"] for g in res["grids"]] == ["edges", "second"]
    edges = res["grids"][0]
    assert edges["dead"] == [False, False, False, True]
    assert all(v > THRESHOLD for v in edges["ncc"]), edges["ncc"]
    for g in res["grids"]:
        assert g["mode"] == "L" and 0.0 <= g["lo"] and g["hi"] <= 1.0
        t = g["tiles"]
        assert g["size"][0] == t["cols"] * (t["tile_size"] + t["margin"]) + t["margin"]
    assert res["weights_same"] and res["no_grads"]
    assert any("edges done" in l for l in res["lines"])



def test_keras_deeper_filters_show_gratings_of_their_orientation():
    """A fixed first layer (x and 1 - x) and hand-set Gabor kernels at four orientations in the
    second: each tile is a grating across the kernel's orientation (structure tensor, 20 deg)."""
    from filters_helpers import angle_diff, grating, orientation_deg

    angles = (0.0, 45.0, 90.0, 135.0)
    inp = keras.Input((24, 24, 1))
    x = layers.Conv2D(2, 1, activation="relu", name="fixed")(inp)
    x = layers.Conv2D(len(angles), 7, padding="same", activation="relu", name="gabor")(x)
    m = keras.Model(inp, layers.GlobalAveragePooling2D()(x))
    m.get_layer("fixed").set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2),
                                      np.array([0.0, 1.0], np.float32)])
    k = np.zeros((7, 7, 2, len(angles)), np.float32)
    for i, a in enumerate(angles):
        k[:, :, 0, i], k[:, :, 1, i] = grating(a), -grating(a)
    m.get_layer("gabor").set_weights([k, np.zeros(len(angles), np.float32)])
    r = next(keras_backend.make_grids(m, ["gabor"], steps=128))
    assert r.tiles["objective_kind"] == "interior"
    for i, a in enumerate(angles):
        img = r.images[i, 3:-3, 3:-3, 0]
        assert angle_diff(orientation_deg(img), orientation_deg(grating(a))) <= 20, a
        assert img.std() > 0.1
    assert np.mean((r.images < 0.02) | (r.images > 0.98)) < 0.05
