"""Layer signals of Keras models written by ArchVizCallback during real fit() runs, with known
answers, read back through TensorBoard's event accumulator. TensorFlow in this process; the
torch and JAX backends in subprocesses (the Keras backend is fixed per process)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

from signals_fixtures import read_signals  # noqa: E402
from tensorboard_archviz import ArchVizCallback  # noqa: E402
from tensorboard_archviz.signals.findings import find  # noqa: E402

LOGGER = "tensorboard_archviz.keras_callback"

# One model with known answers, built the same way in every backend's process.
BUILD = textwrap.dedent("""
    import numpy as np
    import keras

    def build(seed=0):
        keras.utils.set_random_seed(seed)
        base = keras.Sequential([keras.Input((8,)),
                                 keras.layers.Dense(16, activation="relu", name="d1")],
                                name="base_model")
        inp = keras.Input((8,))
        h = base(inp)
        dead = keras.layers.Dense(16, activation="relu", name="dead",
                                  bias_initializer=keras.initializers.Constant(-100.0))(inp)
        h = keras.layers.Concatenate(name="cat")([h, dead])
        out = keras.layers.Dense(3, activation="softmax", name="head")(h)
        model = keras.Model(inp, out)
        base.trainable = False
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        return model

    def data():
        rng = np.random.default_rng(0)
        return rng.standard_normal((32, 8)).astype("float32"), rng.integers(0, 3, 32)
""")
exec(BUILD)  # noqa: S102 - defines build() and data() here too


def fitted(tmp_path, epochs=2, **options):
    model = build()  # noqa: F821
    x, y = data()  # noqa: F821
    cb = ArchVizCallback(str(tmp_path), **options)
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[cb],
                        shuffle=False)
    return model, cb, history, read_signals(str(tmp_path / "train"))


def check_known_answers(r):
    """The answers every backend must give (steps 0..2 written at epoch ends by default)."""
    assert r["steps"] == [0, 1, 2]
    s = r["series"]
    assert s["updates.ratio"]["base_model/d1"] == [None, 0.0, 0.0]
    assert s["updates.ratio"]["base_model"] == [None, 0.0, 0.0]
    assert s["updates.ratio"]["head"][2] > 1e-4
    assert s["activations.zero_fraction"]["dead"][1:] == [1.0, 1.0]
    assert s["gradients.rms"]["dead"][1:] == [0.0, 0.0]  # nothing flows through a dead ReLU
    assert s["gradients.rms"]["head"][2] > 0
    assert "base_model/d1" not in s["gradients.rms"]      # frozen: not differentiated
    assert set(s["activations.saturated_fraction"]) == {"head"}  # the softmax only
    ids = {n["id"] for n in r["arch"]["nodes"]}
    assert all(set(per) <= ids for per in s.values())
    texts = [f["text"] for f in find(r["arch"], r["steps"], s)[0]]
    assert "`base_model` did not change between steps 0 and 2 (frozen or zero learning rate)" \
        in texts
    assert "`dead`: 100 % of units are zero on every example of the example batch (dead ReLU)" \
        in texts


BATCH_SIGNALS = ["weights", "updates", "gradients", "activations"]


def test_the_default_writes_weights_and_updates_every_epoch(tmp_path):
    model, cb, _, r = fitted(tmp_path)
    assert cb.signals_steps == [0, 1, 2] == r["steps"]
    assert set(r["series"]) == {"weights.rms", "updates.ratio"}
    assert r["series"]["updates.ratio"]["base_model"] == [None, 0.0, 0.0]
    assert cb._capture is None  # nothing wraps the train function without batch signals
    # the steps are epochs; each ratio spans the epoch's 2 training batches (optimizer steps)
    assert [r["docs"][s]["meta"].get("update_steps") for s in r["steps"]] == [None, 2, 2]


def test_signals_on_the_held_first_batch_tensorflow(tmp_path):
    model, cb, _, r = fitted(tmp_path, layer_signals=BATCH_SIGNALS)
    assert cb.signals_steps == [0, 1, 2]
    check_known_answers(r)
    meta = r["docs"][0]["meta"]
    assert meta["framework"] == "keras" and meta["backend"] == "tensorflow"
    assert "no example batch" in meta["notes"][0]           # before the first batch
    assert r["docs"][2]["meta"]["batch_size"] == 16         # the held first training batch
    # the one-call wrapper put the train function back
    assert type(getattr(model.train_function, "__self__", None)).__name__ != "BatchCapture"


def test_the_callback_does_not_change_training(tmp_path):
    x, y = data()  # noqa: F821
    plain = build()  # noqa: F821
    h0 = plain.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    model, _, h1, _ = fitted(tmp_path, layer_signals=["weights", "updates", "gradients",
                                                      "activations", "time"])
    assert h0.history["loss"] == h1.history["loss"]
    for a, b in zip(plain.weights, model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_example_input_and_batch_steps(tmp_path):
    x, y = data()  # noqa: F821
    _, cb, _, r = fitted(tmp_path, layer_signals_every=2, example_input=(x[:8], y[:8]),
                         layer_signals="all")
    assert r["steps"] == [0, 2, 4] == cb.signals_steps  # 2 batches x 2 epochs
    assert [r["docs"][s]["meta"].get("update_steps") for s in r["steps"]] == [None, 2, 2]
    doc = r["docs"][0]["signals"]
    assert doc["activations.zero_fraction"]["dead"] == 1.0 and "gradients.rms" in doc
    assert r["docs"][0]["meta"]["batch_size"] == 8 and r["docs"][0]["meta"]["time_repeats"] == 3
    assert set(doc["time.forward_ms"]) >= {"dead", "head", "base_model", "base_model/d1"}


def test_vanishing_in_a_20_layer_sigmoid_mlp(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,))] + [
        keras.layers.Dense(16, activation="sigmoid", name="s%02d" % i) for i in range(20)] + [
        keras.layers.Dense(3, activation="softmax", name="out")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 16)).astype("float32"), rng.integers(0, 3, 32)
    cb = ArchVizCallback(str(tmp_path), example_input=(x, y))
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    r = read_signals(str(tmp_path / "train"))
    g = r["docs"][1]["signals"]["gradients.rms"]
    assert g["s00"] < 1e-4 * g["out"] and g["s19"] > g["s10"] > g["s00"]
    vanishing = [f for f in find(r["arch"], r["steps"], r["series"])[0]
                 if f["kind"] == "vanishing"]
    assert vanishing and vanishing[0]["nodes"][0] == "s00"
    assert vanishing[0]["text"].startswith("gradients in `s00`\u2026`")


def test_bad_options_and_failures(tmp_path, caplog):
    with pytest.raises(ValueError, match="layer_signals_every"):
        ArchVizCallback(str(tmp_path), layer_signals_every=0)
    with pytest.raises(ValueError, match="unknown signal"):
        ArchVizCallback(str(tmp_path), layer_signals=["nope"])
    with caplog.at_level(logging.WARNING, LOGGER):
        model, cb, history, r = fitted(tmp_path, example_input=np.zeros((2, 5), "float32"))
    warned = [rec.getMessage() for rec in caplog.records if rec.name == LOGGER]
    assert len(warned) == 1 and "layer signals" in warned[0]
    assert len(history.history["loss"]) == 2 and cb.written_steps == [0]  # training went on
    assert r["steps"] == []


def test_layer_signals_off(tmp_path):
    _, cb, _, r = fitted(tmp_path, layer_signals_every=None)
    assert r["steps"] == [] and r["arch"] is not None and cb.signals_steps == []


BACKEND_SCRIPT = BUILD + textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from tensorboard_archviz import ArchVizCallback
    assert keras.backend.backend() == sys.argv[3]
    x, y = data()
    plain = build()
    h0 = plain.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
    model = build()
    cb = ArchVizCallback(sys.argv[1], layer_signals=["weights", "updates", "gradients",
                                                     "activations"])
    h1 = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False, callbacks=[cb])
    same = h0.history["loss"] == h1.history["loss"] and all(
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(plain.weights, model.weights))
    print(json.dumps({"steps": cb.signals_steps, "same": bool(same)}))
""")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backends(tmp_path, backend):
    pytest.importorskip(backend)
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", BACKEND_SCRIPT, str(tmp_path), ROOT, backend],
                         check=True, env=env, timeout=600, stdout=subprocess.PIPE, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"steps": [0, 1, 2], "same": True}
    r = read_signals(str(tmp_path / "train"))
    check_known_answers(r)
    assert r["docs"][2]["meta"]["backend"] == backend
