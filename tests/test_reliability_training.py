"""Training never breaks: faults inside ArchVizCallback during real Keras fit() runs, and the same
faults through the PyTorch helpers.

Behaviour under test (see also tests/test_keras_callback.py, which covers an extractor failure,
a log_dir under a regular file, a missing filters module and non-chief workers):
- Keras callback: ``fit()`` always completes; each failure is logged as exactly ONE warning on a
  ``tensorboard_archviz.*`` logger and only the part that failed is switched off. A
  KeyboardInterrupt is not a failure: it propagates out of ``fit()`` as the user expects and the
  event file stays readable (a record cut half-way is rolled back), so a resumed ``fit()`` with
  the same callback appends readable records.
- PyTorch helpers (``add_architecture`` / ``add_filter_grids``): the caller gets a clear
  exception and nothing is written (the user called them directly, so the user decides).

Tests run as root, where chmod does not stop writes: a read-only log_dir is a read-only tmpfs
mounted in a private mount namespace (``unshare -rm``, so nothing leaks to the host), and a full
disk is RLIMIT_FSIZE in a subprocess (writes beyond the limit fail with EFBIG, half-way through a
record). Those two run Keras on the torch backend in a subprocess (the rlimit is per process).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from test_reliability_events import archviz_values, event_files, read_records  # noqa: E402
from tensorboard_archviz import metadata, schema  # noqa: E402
from tensorboard_archviz.keras_callback import ArchVizCallback  # noqa: E402
from tensorboard_archviz.summary import ArchVizWriter  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CB_LOGGER = "tensorboard_archviz.keras_callback"


def architectures(run_dir):
    """[(step, Architecture)] in write order."""
    return [(step, schema.from_json(v.tensor.string_val[0]))
            for step, tag, v in archviz_values(run_dir) if tag == metadata.ARCHITECTURE_TAG]


def grid_steps(run_dir):
    """{layer: [steps]} of the filter grids written."""
    out = {}
    for step, tag, v in archviz_values(run_dir):
        layer = metadata.layer_from_filters_tag(tag)
        if layer:
            assert v.tensor.string_val[0].startswith(b"\x89PNG\r\n\x1a\n")
            out.setdefault(layer, []).append(step)
    return out


def our_warnings(caplog):
    return [r for r in caplog.records
            if r.name.startswith("tensorboard_archviz") and r.levelno >= logging.WARNING]


# -- Keras helpers --------------------------------------------------------------------------------

def data(n=64, shape=(28, 28, 1), seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + shape, dtype=np.float32), rng.integers(0, 10, n)


def fit(model, callbacks, epochs=2, x=None, y=None, **kw):
    if x is None:
        x, y = data()
    if not model.compiled:
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks, **kw)


def mlp(name="mlp"):
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(name="flatten"),
                             layers.Dense(8, activation="relu", name="dense"),
                             layers.Dense(10, name="dense_1")], name=name)


def small_convnet():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(4, 3, activation="relu", name="conv2d"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Conv2D(4, 3, activation="relu", name="conv2d_1"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, name="dense"),
    ], name="convnet")


FAST_FILTERS = {"steps": 4, "max_filters": 4}
MLP_PARAMS = 784 * 8 + 8 + 8 * 10 + 10  # 6,370


def freeze_at(model, epoch, layer):
    def on_epoch_begin(e, logs=None):
        if e == epoch:
            model.get_layer(layer).trainable = False
    return keras.callbacks.LambdaCallback(on_epoch_begin=on_epoch_begin)


# -- the model itself is odd ---------------------------------------------------------------------

class NoShapeInference(layers.Layer):
    """Trains fine, but symbolic shape inference raises (like many hand-written custom layers)."""

    def call(self, x):
        return x * 2.0

    def compute_output_shape(self, input_shape):
        raise NotImplementedError("NoShapeInference cannot infer shapes")


class WithOpaqueLayer(keras.Model):
    def __init__(self):
        super().__init__(name="opaque")
        self.flat = layers.Flatten(name="flat")
        self.odd = NoShapeInference(name="odd")
        self.out = layers.Dense(10, name="out")

    def call(self, x):
        return self.out(self.odd(self.flat(x)))


def test_layer_whose_shape_inference_raises(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        history = fit(WithOpaqueLayer(), [ArchVizCallback(log_dir=str(tmp_path))], epochs=2)
    assert len(history.history["loss"]) == 2
    warned = our_warnings(caplog)
    # one warning, from the extractor: the layer is still shown, without shapes, and why
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert warned[0].name == "tensorboard_archviz.extract.keras"
    assert "odd" in warned[0].getMessage() and "NotImplementedError" in warned[0].getMessage()
    written = architectures(tmp_path / "train")
    assert [s for s, _ in written] == [0]
    arch = written[0][1]
    assert arch.model.total_params == 784 * 10 + 10
    odd = arch.node("odd")
    assert odd.output_shapes is None
    assert odd.reason.startswith("compute_output_shape failed: NotImplementedError")
    assert arch.node("flat").output_shapes == [[None, 784]]
    assert arch.node("out").total_params == 7850


def test_model_with_zero_parameters(tmp_path, caplog):
    model = keras.Sequential([keras.Input((10,), name="input_layer"), layers.Activation("softmax", name="softmax")],
                             name="zero")
    model.compile("adam", "categorical_crossentropy")
    x, labels = data(shape=(10,))
    y = keras.utils.to_categorical(labels, 10)
    with caplog.at_level(logging.WARNING):
        history = model.fit(x, y, epochs=2, verbose=0,
                            callbacks=[ArchVizCallback(log_dir=str(tmp_path))])
    assert len(history.history["loss"]) == 2
    assert our_warnings(caplog) == []   # nothing failed: nothing to warn about
    written = architectures(tmp_path / "train")
    assert [s for s, _ in written] == [0]
    arch = written[0][1]
    assert (arch.model.total_params, arch.model.trainable_params) == (0, 0)
    assert arch.node_ids() == ["input_layer", "softmax"]
    assert arch.node("softmax").output_shapes == [[None, 10]]
    assert arch.node("softmax").activation == "softmax"


def test_unbuilt_sequential_is_written_once_built(tmp_path, caplog):
    model = keras.Sequential([layers.Flatten(name="flatten"), layers.Dense(10, name="dense")],
                             name="unbuilt")
    assert not model.built
    cb = ArchVizCallback(log_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING):
        fit(model, [cb], epochs=2)
    assert our_warnings(caplog) == []
    written = architectures(tmp_path / "train")
    assert [s for s, _ in written] == [0] and cb.written_steps == [0]
    arch = written[0][1]
    assert arch.model.total_params == 7850
    # built by fit() on a batch of 32: Keras' own summary() says (32, 10) too
    assert arch.node("dense").output_shapes == [[32, 10]]


# -- the log directory misbehaves ----------------------------------------------------------------

def test_run_directory_removed_during_training(tmp_path, caplog):
    """`rm -rf logs` while training: the next epoch writes the architecture again into a new
    file (never into the deleted one), with one warning however often it happens."""
    run_dir = tmp_path / "logs" / "train"

    def remove(epoch, logs=None):
        if epoch in (1, 2):
            shutil.rmtree(tmp_path / "logs")

    model = mlp()
    cb = ArchVizCallback(log_dir=str(tmp_path / "logs"))
    with caplog.at_level(logging.WARNING):
        history = fit(model, [keras.callbacks.LambdaCallback(on_epoch_end=remove), cb], epochs=4)
    assert len(history.history["loss"]) == 4
    warned = our_warnings(caplog)
    assert len(warned) == 1 and warned[0].name == CB_LOGGER
    assert "removed during training" in warned[0].getMessage()
    assert cb.written_steps == [0, 2, 3]
    files = event_files(run_dir)
    assert len(files) == 1   # the file created after the last removal
    written = architectures(run_dir)
    assert [s for s, _ in written] == [3]
    assert written[0][1].model.total_params == MLP_PARAMS


READONLY_SCRIPT = textwrap.dedent("""
    import json, logging, os, resource, signal, sys
    import numpy as np
    import keras
    from tensorboard_archviz import ArchVizCallback

    mode, log_dir = sys.argv[1], sys.argv[2]
    records = []

    class Capture(logging.Handler):
        def emit(self, record):
            if record.name.startswith("tensorboard_archviz") and record.levelno >= logging.WARNING:
                records.append(record.getMessage())

    logging.getLogger("tensorboard_archviz").addHandler(Capture())
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(8, name="dense"),
                              keras.layers.Dense(10, name="out")])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)
    if mode == "full":
        # a disk that fills up: the file header fits, the architecture record does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), resource.RLIM_INFINITY))

    def freeze(epoch, logs=None):
        if epoch == 1:
            model.get_layer("dense").trainable = False

    cb = ArchVizCallback(log_dir=log_dir)
    h = model.fit(x, y, epochs=3, batch_size=32, verbose=0,
                  callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=freeze), cb])
    if mode == "full":
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        model.get_layer("dense").trainable = True   # space again: a resumed fit() writes
        model.fit(x, y, epochs=4, initial_epoch=3, verbose=0, callbacks=[cb])
    print(json.dumps({"epochs": len(h.history["loss"]), "warnings": records,
                      "written": cb.written_steps, "backend": keras.backend.backend()}))
""")


def run_keras_script(args, prefix=(), timeout=240):
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run(list(prefix) + [sys.executable, "-c", READONLY_SCRIPT] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _can_unshare():
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


def test_read_only_log_dir(tmp_path):
    if not _can_unshare():
        pytest.skip("needs `unshare -rm` (user + mount namespaces) for a read-only mount")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    # the read-only tmpfs exists only inside the subprocess's private mount namespace
    script = ("mount -t tmpfs -o ro,size=1m tmpfs \"$0\" && exec \"$@\"")
    out = run_keras_script(["ro", str(mnt / "logs")],
                           prefix=["unshare", "-rm", "sh", "-c", script, str(mnt)])
    assert out["backend"] == "torch" and out["epochs"] == 3
    assert len(out["warnings"]) == 1, out["warnings"]
    assert "Read-only file system" in out["warnings"][0]
    assert "disabled" in out["warnings"][0]
    assert out["written"] == []
    assert os.listdir(mnt) == []  # the mount is gone with its namespace; nothing was written


def test_disk_full_mid_record_leaves_a_readable_file(tmp_path):
    """EFBIG half-way through the architecture record: one warning, training completes, the
    partial record is cut off again (the file holds exactly its header record), and a resumed
    fit() with the same callback writes a new, readable file once there is space."""
    log_dir = tmp_path / "logs"
    out = run_keras_script(["full", str(log_dir), "400"])
    assert out["epochs"] == 3
    assert len(out["warnings"]) == 1, out["warnings"]
    assert "File too large" in out["warnings"][0] and "disabled" in out["warnings"][0]
    files = event_files(log_dir / "train")
    assert len(files) == 2
    first = read_records(files[0])          # strict: any partial record would fail here
    assert len(first) == 1 and first[0].file_version == "brain.Event:2"
    assert os.path.getsize(files[0]) < 400
    written = architectures(log_dir / "train")
    assert [s for s, _ in written] == [3] and out["written"] == [3]
    assert written[0][1].model.total_params == 784 * 8 + 8 + 90


# -- filter maximisation fails -------------------------------------------------------------------

def test_filter_maximisation_on_a_layer_it_cannot_handle(tmp_path, caplog):
    cb = ArchVizCallback(log_dir=str(tmp_path), filters=["dense"], filters_every=1,
                         filters_options=FAST_FILTERS)
    with caplog.at_level(logging.WARNING):
        history = fit(small_convnet(), [cb], epochs=2)
    assert len(history.history["loss"]) == 2
    warned = our_warnings(caplog)
    assert len(warned) == 1 and warned[0].name == CB_LOGGER
    msg = warned[0].getMessage()
    assert "writing filter grids failed" in msg
    assert "layer 'dense' is a Dense, not a 2-D convolution" in msg
    assert "filters disabled" in msg
    assert [s for s, _ in architectures(tmp_path / "train")] == [0]   # architecture unaffected
    assert grid_steps(tmp_path / "train") == {}


def test_exception_half_way_through_filter_maximisation(tmp_path, caplog, monkeypatch):
    """The first layer's grid is made for real, then the maximiser raises: the grid already
    written stays, one warning, no more grid attempts, and the architecture keeps being written."""
    from tensorboard_archviz.filters import keras_backend

    real = keras_backend.make_grids
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        results = real(*args, **kwargs)
        yield next(results)
        raise RuntimeError("injected failure in the maximiser")

    monkeypatch.setattr(keras_backend, "make_grids", flaky)
    model = small_convnet()
    cb = ArchVizCallback(log_dir=str(tmp_path), filters=True, filters_every=1,
                         filters_options=FAST_FILTERS)
    with caplog.at_level(logging.WARNING):
        history = fit(model, [freeze_at(model, 2, "dense"), cb], epochs=3)
    assert len(history.history["loss"]) == 3
    warned = our_warnings(caplog)
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert "RuntimeError: injected failure in the maximiser" in warned[0].getMessage()
    assert calls == [1]   # switched off after the failure: not at epochs 2, 3 nor at the end
    assert grid_steps(tmp_path / "train") == {"conv2d": [1]}
    assert [s for s, _ in architectures(tmp_path / "train")] == [0, 3]


# -- KeyboardInterrupt ---------------------------------------------------------------------------

def test_keyboard_interrupt_in_add_summary_propagates(tmp_path, caplog, monkeypatch):
    """Ctrl-C while the callback writes: fit() is interrupted (no warning, nothing swallowed),
    the file holds what was written before, and re-running fit() in the same session works.
    (Layer signals off: the writes counted here are the architecture's.)"""
    model = mlp()
    cb = ArchVizCallback(log_dir=str(tmp_path), layer_signals_every=None)
    real = ArchVizWriter.add_summary
    calls = []

    def interrupted(self, summary_pb, step=None, wall_time=None):
        calls.append(step)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, summary_pb, step, wall_time)

    monkeypatch.setattr(ArchVizWriter, "add_summary", interrupted)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(KeyboardInterrupt):
            fit(model, [freeze_at(model, 1, "dense"), cb], epochs=3)
    assert calls == [0, 2]
    assert our_warnings(caplog) == []
    assert [s for s, _ in architectures(tmp_path / "train")] == [0]

    monkeypatch.setattr(ArchVizWriter, "add_summary", real)
    fit(model, [cb], epochs=4, initial_epoch=3)      # the user runs the cell again
    written = architectures(tmp_path / "train")
    # written at the resumed fit()'s start; step = epochs completed before the interrupt
    assert [s for s, _ in written] == [0, 2]
    assert written[1][1].node("dense").params == {"trainable": 0, "non_trainable": 6280}
    assert len(event_files(tmp_path / "train")) == 1


class HalfWriteThenInterrupt:
    """Stands in for the event file's raw file object: the next write hands half of the record
    to the real file, then a KeyboardInterrupt arrives (as between two partial write() calls)."""

    def __init__(self, raw):
        self.raw = raw
        self.armed = True

    def write(self, b):
        if self.armed:
            self.armed = False
            self.raw.write(bytes(b[:len(b) // 2]))
            raise KeyboardInterrupt
        return self.raw.write(b)

    def __getattr__(self, name):
        return getattr(self.raw, name)


def test_keyboard_interrupt_half_way_through_a_record(tmp_path):
    model = mlp()
    cb = ArchVizCallback(log_dir=str(tmp_path))

    def arm(epoch, logs=None):
        if epoch == 1:
            local = cb._writer._writer
            local._file = HalfWriteThenInterrupt(local._file)

    with pytest.raises(KeyboardInterrupt):
        fit(model, [freeze_at(model, 1, "dense"), keras.callbacks.LambdaCallback(
            on_epoch_begin=arm), cb], epochs=3)
    (path,) = event_files(tmp_path / "train")
    assert [s for s, _ in architectures(tmp_path / "train")] == [0]   # strict read: no debris
    size = os.path.getsize(path)
    model.get_layer("dense_1").trainable = False
    fit(model, [cb], epochs=4, initial_epoch=3)   # same callback, same open file
    assert os.path.getsize(path) > size
    written = architectures(tmp_path / "train")
    assert [s for s, _ in written] == [0, 2]
    assert written[1][1].model.trainable_params == 0


# -- the PyTorch helpers raise to the caller -----------------------------------------------------

import torch  # noqa: E402  (after the Keras tests' imports: TensorFlow first, then torch)

nn = torch.nn


def torch_writer(logdir):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(logdir))


class RaisesInForward(nn.Module):
    def forward(self, x):
        raise RuntimeError("shape inference of a custom module failed")


def test_torch_module_that_raises_is_a_clear_error_and_writes_nothing(tmp_path):
    from tensorboard_archviz import add_architecture
    from tensorboard_archviz.extract.torch import ExtractionError

    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), RaisesInForward())
    writer = torch_writer(tmp_path)
    try:
        with pytest.raises(ExtractionError) as err:
            add_architecture(writer, model, torch.randn(2, 1, 28, 28), global_step=0)
    finally:
        writer.close()
    msg = str(err.value)
    assert err.value.module == "2"
    assert "RaisesInForward" in msg and "shape inference of a custom module failed" in msg
    assert archviz_values(tmp_path) == []


def test_torch_zero_parameter_and_lazy_models(tmp_path):
    from tensorboard_archviz import add_architecture

    zero = nn.Sequential(nn.Flatten(), nn.ReLU())
    lazy = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))   # "unbuilt" until its first call
    with ArchVizWriter(str(tmp_path)) as writer:
        a0 = add_architecture(writer, zero, torch.randn(2, 1, 28, 28), global_step=0)
        a1 = add_architecture(writer, lazy, torch.randn(2, 1, 28, 28), global_step=1)
    assert a0.model.total_params == 0
    assert [n.output_shapes for n in a0.nodes[1:]] == [[[2, 784]], [[2, 784]]]
    # the example forward pass materialises the lazy layer, as the user's first call would
    assert a1.model.total_params == 7850 and a1.node("1").class_name == "Linear"
    assert isinstance(lazy[1], nn.Linear) and lazy[1].in_features == 784
    written = architectures(tmp_path)
    assert [(s, a.model.total_params) for s, a in written] == [(0, 0), (1, 7850)]


def test_torch_unwritable_log_dir_raises(tmp_path):
    from tensorboard_archviz import add_architecture

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError) as err:
        ArchVizWriter(str(blocker / "logs"))
    assert "a_file" in str(err.value)
    # the user's own SummaryWriter on such a path fails before our helper is involved;
    # a writer whose directory vanishes is re-created by ArchVizWriter on the next write
    run = tmp_path / "run"
    with ArchVizWriter(str(run)) as writer:
        add_architecture(writer, nn.Linear(4, 2), torch.randn(1, 4), global_step=0)
        shutil.rmtree(run)
        assert writer.vanished()
        add_architecture(writer, nn.Linear(4, 3), torch.randn(1, 4), global_step=1)
        assert not writer.vanished()
    written = architectures(run)
    assert [(s, a.model.total_params) for s, a in written] == [(1, 15)]


def test_torch_filter_maximisation_failures_raise_and_write_nothing(tmp_path, monkeypatch):
    import torch_models as tm
    from tensorboard_archviz import add_filter_grids
    from tensorboard_archviz.filters import torch_backend

    model = tm.SmallResNet()
    writer = torch_writer(tmp_path)
    try:
        with pytest.raises(ValueError, match="layer 'fc' is a Linear, not a 2-D convolution"):
            add_filter_grids(writer, model, ["fc"], global_step=0, input_shape=(1, 28, 28),
                             steps=2, max_filters=2)
        real = torch_backend.make_grids

        def flaky(*args, **kwargs):
            results = real(*args, **kwargs)
            yield next(results)
            raise RuntimeError("injected failure in the maximiser")

        monkeypatch.setattr(torch_backend, "make_grids", flaky)
        with pytest.raises(RuntimeError, match="injected failure"):
            add_filter_grids(writer, model, ["stem", "block.conv2"], global_step=1,
                             input_shape=(1, 28, 28), steps=2, max_filters=2)
    finally:
        writer.close()
    # grids are all computed before any is written: the first grid was not written either
    assert archviz_values(tmp_path) == []


def test_torch_keyboard_interrupt_half_way_through_a_record(tmp_path):
    from tensorboard_archviz import add_architecture

    with ArchVizWriter(str(tmp_path)) as writer:
        add_architecture(writer, nn.Linear(4, 2), torch.randn(1, 4), global_step=0)
        local = writer._writer
        local._file = HalfWriteThenInterrupt(local._file)
        with pytest.raises(KeyboardInterrupt):
            add_architecture(writer, nn.Linear(4, 3), torch.randn(1, 4), global_step=1)
        add_architecture(writer, nn.Linear(4, 5), torch.randn(1, 4), global_step=2)
    written = architectures(tmp_path)
    assert [(s, a.model.total_params) for s, a in written] == [(0, 10), (2, 25)]
