"""ArchVizCallback in real fit() runs; event files read back with TensorBoard's EventAccumulator.

Default backend (TensorFlow) in this process; the torch backend runs in a subprocess (the Keras
backend is fixed per process). Model builders come from tests/fixtures/keras_models.py.
"""

import glob
import json
import logging
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from keras import layers  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

from fixtures.keras_models import build_lenet, build_mlp, compile_classifier  # noqa: E402
from tensorboard_archviz import metadata, schema  # noqa: E402
from tensorboard_archviz.keras_callback import ArchVizCallback, is_chief  # noqa: E402

LOGGER = "tensorboard_archviz.keras_callback"


def small_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def fit(model, callbacks, epochs=3, **kw):
    x, y = small_data()
    compile_classifier(model)
    return model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks, **kw)


def load_run(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def architectures(run_dir):
    """[(step, Architecture)] written under the archviz plugin in one run directory."""
    if not os.path.isdir(run_dir):
        return []
    acc = load_run(run_dir)
    if metadata.ARCHITECTURE_TAG not in acc.Tags()["tensors"]:
        return []
    md = acc.SummaryMetadata(metadata.ARCHITECTURE_TAG)
    assert md.plugin_data.plugin_name == "archviz"
    out = []
    for ev in acc.Tensors(metadata.ARCHITECTURE_TAG):
        payload = tensor_util.make_ndarray(ev.tensor_proto).item()
        out.append((ev.step, schema.from_json(payload)))
    return out


def our_warnings(caplog):
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


# -- writing ---------------------------------------------------------------------------------------

def test_fit_writes_architecture_once_when_nothing_changes(tmp_path, caplog):
    model = build_mlp()
    cb = ArchVizCallback(log_dir=str(tmp_path / "logs"))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        history = fit(model, [cb])
    assert len(history.history["loss"]) == 3
    run_dir = tmp_path / "logs" / "train"
    files = glob.glob(str(run_dir / "events.out.tfevents.*"))
    assert len(files) == 1 and files[0].endswith(".archviz")
    written = architectures(run_dir)
    assert [s for s, _ in written] == [0]
    arch = written[0][1]
    assert arch.model.total_params == 25450 and arch.model.name == "mlp"
    assert arch.node_ids() == ["input_layer", "flatten", "dense", "dropout", "dense_1"]
    assert arch.node("dense").output_shapes == [[None, 32]]
    assert cb.written_steps == [0] and our_warnings(caplog) == []

    # a second fit() with the same callback and an unchanged model writes nothing new
    fit(model, [cb], epochs=4, initial_epoch=3)
    assert [s for s, _ in architectures(run_dir)] == [0]


def test_freezing_a_layer_mid_training_writes_a_second_architecture(tmp_path):
    model = build_mlp()

    def freeze(epoch, logs=None):
        if epoch == 1:
            model.get_layer("dense").trainable = False

    cb = ArchVizCallback(log_dir=str(tmp_path))
    fit(model, [keras.callbacks.LambdaCallback(on_epoch_begin=freeze), cb], epochs=3)
    written = architectures(tmp_path / "train")
    assert [s for s, _ in written] == [0, 2]
    before, after = written[0][1], written[1][1]
    assert before.node("dense").params == {"trainable": 25120, "non_trainable": 0}
    assert after.node("dense").params == {"trainable": 0, "non_trainable": 25120}
    assert after.node("dense").config["trainable"] is False
    assert (after.model.trainable_params, after.model.non_trainable_params) == (330, 25120)

    # unfreezing before a resumed fit(): written at train begin, step = epochs done so far
    model.get_layer("dense").trainable = True
    fit(model, [cb], epochs=4, initial_epoch=3)
    assert [s for s, _ in architectures(tmp_path / "train")] == [0, 2, 3]


def test_with_keras_tensorboard_callback_in_one_run(tmp_path, caplog):
    logdir = str(tmp_path / "logs")
    with caplog.at_level(logging.WARNING):
        fit(build_lenet(), [ArchVizCallback(log_dir=logdir),
                            keras.callbacks.TensorBoard(log_dir=logdir)], epochs=2)
    run_dir = tmp_path / "logs" / "train"
    assert len(glob.glob(str(run_dir / "events.out.tfevents.*"))) == 2
    tags = load_run(run_dir).Tags()["tensors"]
    assert metadata.ARCHITECTURE_TAG in tags and "epoch_loss" in tags
    written = architectures(run_dir)
    assert [s for s, _ in written] == [0]
    arch = written[0][1]
    assert [arch.node(i).total_params for i in arch.node_ids()[1:]] == [
        520, 0, 25050, 0, 0, 1225500, 5010]
    assert arch.model.total_params == 1256080
    assert our_warnings(caplog) == []


class SmallSubclassed(keras.Model):
    def __init__(self):
        super().__init__(name="small_sub")
        self.flat = layers.Flatten(name="flat")
        self.d1 = layers.Dense(16, activation="relu", name="d1")
        self.d2 = layers.Dense(10, name="d2")

    def call(self, x):
        return self.d2(self.d1(self.flat(x)))


def test_subclassed_model_is_written_once_built(tmp_path):
    # On TensorFlow, fit() builds a subclassed model in its first train step, after
    # on_train_begin: the first architecture waits for the build and keeps step 0.
    model = SmallSubclassed()
    assert not model.built
    fit(model, [ArchVizCallback(log_dir=str(tmp_path))], epochs=2)
    written = architectures(tmp_path / "train")
    assert [s for s, _ in written] == [0]
    arch = written[0][1]
    assert arch.extraction["method"] == "symbolic_trace"
    assert [(e.source, e.target) for e in arch.edges] == [
        ("input", "flat"), ("flat", "d1"), ("d1", "d2")]
    assert arch.model.total_params == 784 * 16 + 16 + 170


def test_custom_run_name(tmp_path):
    fit(build_mlp(), [ArchVizCallback(log_dir=str(tmp_path), run="archviz_only")], epochs=1)
    assert [s for s, _ in architectures(tmp_path / "archviz_only")] == [0]
    assert not (tmp_path / "train").exists()


# -- never stop training ------------------------------------------------------------------------

class Exploding(layers.Layer):
    """Trains fine, but raises when the extractor asks for its activation."""

    @property
    def activation(self):
        raise RuntimeError("injected failure")

    def call(self, x):
        return x


def test_failure_inside_extraction_logs_one_warning_and_training_completes(tmp_path, caplog):
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(),
                              Exploding(name="exploding"), layers.Dense(10)])
    with caplog.at_level(logging.WARNING):
        history = fit(model, [ArchVizCallback(log_dir=str(tmp_path))], epochs=3)
    assert len(history.history["loss"]) == 3
    warned = our_warnings(caplog)
    assert len(warned) == 1
    assert "injected failure" in warned[0].getMessage()
    assert "RuntimeError" in warned[0].getMessage()
    assert architectures(tmp_path / "train") == []


def test_unwritable_log_dir_logs_one_warning_and_training_completes(tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        history = fit(build_mlp(), [ArchVizCallback(log_dir=str(blocker / "logs"))], epochs=3)
    assert len(history.history["loss"]) == 3
    warned = our_warnings(caplog)
    assert len(warned) == 1 and "a_file" in warned[0].getMessage()


def test_missing_filters_module_logs_one_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard_archviz.filters.keras_backend", None)
    with caplog.at_level(logging.WARNING):
        history = fit(build_mlp(), [ArchVizCallback(log_dir=str(tmp_path), filters=True,
                                                    filters_every=1)], epochs=2)
    assert len(history.history["loss"]) == 2
    warned = our_warnings(caplog)
    assert len(warned) == 1 and "filter" in warned[0].getMessage()
    assert [s for s, _ in architectures(tmp_path / "train")] == [0]


def test_filter_grid_scheduling_and_writing(tmp_path, monkeypatch):
    """The make_grids contract of tensorboard_archviz.filters.keras_backend, with a stand-in
    that returns a real PNG, checks when the callback asks for grids and how it writes them."""
    import io

    from PIL import Image

    calls = []

    def make_grids(model, layers=None, *, time_budget=None, log=None, **options):
        calls.append((layers, time_budget, options))
        log("making %d grid(s)", 1)
        buf = io.BytesIO()
        Image.new("L", (6, 4), 128).save(buf, format="PNG")
        yield types.SimpleNamespace(node_id="conv2d_1", png=buf.getvalue(),
                                    tiles={"tiles": [{"index": 0, "score": 1.5}]})

    fake = types.ModuleType("tensorboard_archviz.filters.keras_backend")
    fake.make_grids = make_grids
    monkeypatch.setitem(sys.modules, "tensorboard_archviz.filters.keras_backend", fake)
    cb = ArchVizCallback(log_dir=str(tmp_path), filters=["conv2d_1"], filters_every=2,
                         filters_options={"steps": 8}, filters_time_budget=5.0)
    fit(build_lenet(), [cb], epochs=3)
    assert calls == [(["conv2d_1"], 5.0, {"steps": 8})] * 2
    acc = load_run(tmp_path / "train")
    tag = metadata.filters_tag("conv2d_1")
    events = acc.Tensors(tag)
    assert [e.step for e in events] == [2, 3]
    blobs = tensor_util.make_ndarray(events[0].tensor_proto)
    assert blobs.shape == (2,) and blobs[0].startswith(b"\x89PNG")
    assert json.loads(blobs[1]) == {"tiles": [{"index": 0, "score": 1.5}]}


# -- multi-worker ----------------------------------------------------------------------------------

def tf_config(kind, index, chief=False):
    cluster = {"worker": ["h:1", "h:2"]}
    if chief:
        cluster["chief"] = ["h:0"]
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize("config,expected", [
    (None, True),
    (tf_config("worker", 0), True),
    (tf_config("worker", 1), False),
    (tf_config("worker", 0, chief=True), False),
    (tf_config("chief", 0, chief=True), True),
    (tf_config("ps", 0), False),
    (tf_config("evaluator", 0), False),
])
def test_is_chief_from_tf_config(monkeypatch, config, expected):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    assert is_chief() is expected


def test_non_chief_worker_writes_nothing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TF_CONFIG", tf_config("worker", 1))
    with caplog.at_level(logging.WARNING):
        fit(build_mlp(), [ArchVizCallback(log_dir=str(tmp_path))], epochs=1)
    assert not (tmp_path / "train").exists() and our_warnings(caplog) == []


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="filters_every"):
        ArchVizCallback(filters=True, filters_every=0)
    with pytest.raises(ValueError, match="filters must be"):
        ArchVizCallback(filters=3)
    with pytest.raises(ValueError, match="run"):
        ArchVizCallback(run="")


# -- torch backend ---------------------------------------------------------------------------------

TORCH_SCRIPT = textwrap.dedent("""
    import json, logging, sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "torch", keras.backend.backend()
    sys.path.insert(0, sys.argv[2])
    from keras_models import build_mlp, compile_classifier
    from tensorboard_archviz import ArchVizCallback

    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.flat = keras.layers.Flatten(name="flat")
            self.d1 = keras.layers.Dense(16, activation="relu", name="d1")
            self.d2 = keras.layers.Dense(10, name="d2")

        def call(self, x):
            h = self.d1(self.flat(x))
            return self.d2(keras.ops.add(h, h))

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    for name, model in (("mlp", build_mlp()), ("sub", Sub())):
        def freeze(epoch, logs=None, model=model):
            if epoch == 1:
                model.layers[-1].trainable = False
        compile_classifier(model)
        model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[
            keras.callbacks.LambdaCallback(on_epoch_begin=freeze),
            ArchVizCallback(log_dir=sys.argv[1] + "/" + name)])
    print(json.dumps({"ok": True}))
""")


def test_torch_backend_fit_writes_architecture(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    script = tmp_path / "torch_fit.py"
    script.write_text(TORCH_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "logs"),
                           os.path.join(ROOT, "tests", "fixtures")], env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"ok": True}

    written = architectures(tmp_path / "logs" / "mlp" / "train")
    assert [s for s, _ in written] == [0, 2]
    first, second = written[0][1], written[1][1]
    assert first.backend == "torch" and first.extraction["method"] == "sequential_graph"
    assert first.model.total_params == 25450
    assert [first.node(i).total_params for i in first.node_ids()] == [0, 0, 25120, 0, 330]
    assert second.node("dense_1").params == {"trainable": 0, "non_trainable": 330}

    written = architectures(tmp_path / "logs" / "sub" / "train")
    assert [s for s, _ in written] == [0, 2]
    arch = written[0][1]
    assert arch.extraction["method"] == "symbolic_trace"
    assert arch.model.total_params == 784 * 16 + 16 + 170
    assert {(e.source, e.target) for e in arch.edges} == {
        ("input", "flat"), ("flat", "d1"), ("d1", "add"), ("add", "d2")}
    assert arch.node("d1").output_shapes == [[None, 16]]


# -- filter grids with the real make_grids: fresh weights at every epoch, on every backend -----

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filters_helpers import assert_fresh, callback_fresh_check  # noqa: E402

FRESH_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    import keras
    from filters_helpers import callback_fresh_check
    print("RESULT " + json.dumps(callback_fresh_check(sys.argv[1])))
""")


def test_filter_grids_use_each_epochs_weights_tensorflow(tmp_path):
    assert_fresh(callback_fresh_check(str(tmp_path)), "tensorflow")
    arch = architectures(tmp_path / "train")
    assert [s for s, _ in arch] == [0]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_callback_architecture_and_fresh_filter_grids_on_backend(tmp_path, backend):
    """ArchVizCallback on Keras' JAX and torch backends (a backend is fixed per process):
    the architecture and filter grids are written, each grid from that epoch's weights."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "logs"),
                           os.path.join(ROOT, "tests")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    assert_fresh(json.loads(line[len("RESULT "):]), backend)
    written = architectures(tmp_path / "logs" / "train")
    assert [s for s, _ in written] == [0]
    arch = written[0][1]
    assert arch.backend == backend
    assert arch.model.total_params == 1256080
    assert [n for n in arch.node_ids() if n.startswith("conv2d")] == ["conv2d", "conv2d_1"]
