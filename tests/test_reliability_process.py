"""Nothing lost, nothing interleaved: killed training processes, concurrent writers, and writes
while a real TensorBoard reads the same directory.

- A Keras training process (TensorFlow backend, filters on) is SIGKILLed after its second
  epoch, while a TensorBoard (Rust loader) reads its log_dir the whole time: the architecture
  steps and every filter grid written before the kill are served — by that TensorBoard, and by
  a legacy-loader TensorBoard started afterwards — and the event file has no partial record.
- Two processes write into the same log_dir at once — each its own run, plus one run both
  write to (different time series) — while TensorBoard reads it: every run and step of both is
  served, each file holds only its own writer's records, all checksums valid. (Two processes
  writing the SAME time series of one run with interleaved steps is not supported by
  TensorBoard itself: both loaders treat a step going backwards as a restart and drop the later
  steps.)
- Eight threads share one ArchVizWriter: every record lands whole in one file.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse

from PIL import Image

from conftest import PLUGIN, get_json, http_get, run_tensorboard, wait_for_run
from test_plugin_routes import TILES, png_bytes, small_arch
from test_reliability_events import archviz_values, event_files, read_records
from tensorboard_archviz import metadata
from tensorboard_archviz.summary import ArchVizWriter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def q(**params):
    return urllib.parse.urlencode(params)


def expect_line(proc, wanted, timeout, err_path):
    """Read the child's stdout until the line `wanted` (or fail with its stderr)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if line.strip() == wanted:
                return
        elif proc.poll() is not None:
            break
    with open(err_path, encoding="utf-8", errors="replace") as f:
        err = f.read()[-3000:]
    raise AssertionError("no %r from the training process (exit %s):\n%s"
                         % (wanted, proc.poll(), err))


TRAIN_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import keras
    from keras import layers
    from tensorboard_archviz import ArchVizCallback

    logdir, go = sys.argv[1], sys.argv[2]
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(4, 3, activation="relu", name="conv2d"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dense(10, name="dense"),
    ], name="killed")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)

    def freeze(epoch, logs=None):
        if epoch == 1:
            model.get_layer("dense").trainable = False

    class Signals(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:      # let the test look at TensorBoard while training is running
                print("EPOCH1", flush=True)
                deadline = time.time() + 120
                while not os.path.exists(go) and time.time() < deadline:
                    time.sleep(0.05)
            elif epoch == 1:    # the second epoch is fully written: wait to be killed
                print("READY", flush=True)
                time.sleep(600)

    cb = ArchVizCallback(log_dir=logdir, filters=["conv2d"], filters_every=1,
                         filters_options={"steps": 4, "max_filters": 4})
    model.fit(x, y, epochs=5, batch_size=32, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=freeze), cb, Signals()])
    print("FINISHED", flush=True)
""")


def check_killed_run(url):
    """What a TensorBoard must serve for the killed run."""
    runs = wait_for_run(url, "train", steps=2, filter_layers=1, timeout=60)
    assert runs["train"] == {"steps": [0, 2], "step_strings": ["0", "2"],
                             "filter_layers": ["conv2d"], "errors": [],
                             "signals": True}  # ArchVizCallback's default layer signals
    status, arch0 = get_json(url + PLUGIN + "/architecture?" + q(run="train", step=0))
    assert status == 200 and arch0["model"]["name"] == "killed"
    assert arch0["model"]["total_params"] == 40 + 13 * 13 * 4 * 10 + 10
    status, arch2 = get_json(url + PLUGIN + "/architecture?" + q(run="train"))
    assert status == 200
    dense = [n for n in arch2["nodes"] if n["id"] == "dense"][0]
    assert dense["params"] == {"trainable": 0, "non_trainable": 6770}
    status, grid = get_json(url + PLUGIN + "/filters?" + q(run="train", layer="conv2d"))
    assert status == 200, grid
    assert grid["steps"] == [1, 2] and grid["step"] == 2
    assert [t["index"] for t in grid["tiles"]] == [0, 1, 2, 3]
    for step in (1, 2):
        status, body, headers = http_get(url + PLUGIN + "/filters_image?" + q(
            run="train", layer="conv2d", step=step))
        assert status == 200 and headers["Content-Type"] == "image/png"
        img = Image.open(io.BytesIO(body))
        img.load()
        assert img.width >= 2 * grid["tile_size"]


def test_training_killed_after_second_epoch_loses_nothing(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    go = tmp_path / "go"
    err_path = tmp_path / "stderr.txt"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    with run_tensorboard(logdir, load_fast=True) as url, open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", TRAIN_SCRIPT, str(logdir), str(go)],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        try:
            expect_line(proc, "EPOCH1", 240, err_path)
            # while training runs, TensorBoard (reading the directory all along) has the data
            runs = wait_for_run(url, "train", steps=1, filter_layers=1, timeout=60)
            assert runs["train"]["steps"] == [0]
            status, grid = get_json(url + PLUGIN + "/filters?" + q(run="train", layer="conv2d"))
            assert status == 200 and grid["steps"] == [1]
            go.touch()
            expect_line(proc, "READY", 240, err_path)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        check_killed_run(url)
    (path,) = event_files(logdir / "train")
    events = read_records(path)  # strict: whole records only
    assert [(ev.step, v.tag) for ev in events for v in ev.summary.value] == [
        (0, metadata.ARCHITECTURE_TAG), (0, metadata.SIGNALS_TAG),
        (1, metadata.filters_tag("conv2d")), (1, metadata.SIGNALS_TAG),
        (2, metadata.ARCHITECTURE_TAG), (2, metadata.filters_tag("conv2d")),
        (2, metadata.SIGNALS_TAG)]  # layer signals: ArchVizCallback's default
    with run_tensorboard(logdir, load_fast=False) as url:
        check_killed_run(url)


WRITER_SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from test_plugin_routes import TILES, png_bytes, small_arch
    from tensorboard_archviz.summary import ArchVizWriter

    name, logdir, go, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    deadline = time.time() + 60
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.005)
    png = png_bytes()
    # its own run, and a run shared with the other process (A: architecture + grids of
    # conv_A; B: grids of conv_B only, like a separate filter-visualisation job)
    with ArchVizWriter(os.path.join(logdir, name)) as own, \\
            ArchVizWriter(os.path.join(logdir, "shared")) as shared:
        for step in range(n):
            arch = small_arch(units=1 + step)
            arch.model.name = name
            own.add_architecture(arch, step=step)
            own.add_filter_grid("conv", png, TILES, step=step)
            if name == "A":
                shared.add_architecture(arch, step=step)
            shared.add_filter_grid("conv_" + name, png, TILES, step=step)
            time.sleep(0.002)
    print("DONE", flush=True)
""")

N = 40
SAMPLES = ["--samples_per_plugin=archviz=1000"]


def check_concurrent_runs(url):
    runs = wait_for_run(url, "shared", steps=N, filter_layers=2, timeout=60)
    for run in ("A", "B"):
        runs = wait_for_run(url, run, steps=N, filter_layers=1, timeout=60)
    exact = [str(s) for s in range(N)]
    assert runs["A"] == runs["B"] == {"steps": list(range(N)), "step_strings": exact,
                                      "filter_layers": ["conv"], "errors": []}
    assert runs["shared"] == {"steps": list(range(N)), "step_strings": exact,
                              "filter_layers": ["conv_A", "conv_B"], "errors": []}
    for run, step in (("A", 0), ("B", N - 1), ("shared", N - 1)):
        status, arch = get_json(url + PLUGIN + "/architecture?" + q(run=run, step=step))
        assert status == 200
        assert arch["model"]["name"] == ("A" if run == "shared" else run)
        assert arch["nodes"][1]["config"]["units"] == 1 + step
    for run, layer in (("A", "conv"), ("B", "conv"), ("shared", "conv_A"), ("shared", "conv_B")):
        status, grid = get_json(url + PLUGIN + "/filters?" + q(run=run, layer=layer))
        assert status == 200 and grid["steps"] == list(range(N))


def test_two_processes_write_the_same_log_dir(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    go = tmp_path / "go"
    script = WRITER_SCRIPT.format(tests=HERE)
    env = dict(os.environ, PYTHONPATH=ROOT)
    with run_tensorboard(logdir, load_fast=True, extra_args=SAMPLES) as url:
        procs = [subprocess.Popen([sys.executable, "-c", script, name, str(logdir), str(go),
                                   str(N)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
                 for name in ("A", "B")]
        time.sleep(1.0)   # both imported and waiting: start together
        go.touch()
        statuses = set()
        while any(p.poll() is None for p in procs):   # TensorBoard reads while they write
            statuses.add(get_json(url + PLUGIN + "/runs")[0])
            time.sleep(0.1)
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and out.strip() == "DONE", err[-2000:]
        assert statuses <= {200}
        check_concurrent_runs(url)
    files = event_files(logdir / "shared")
    assert len(files) == 2
    tags_per_file = []
    for path in files:
        events = read_records(path)   # strict: every record whole, every checksum valid
        tags = [v.tag for ev in events for v in ev.summary.value]
        tags_per_file.append(sorted(set(tags)))
        assert len(events) == 1 + len(tags)
    # not interleaved: each file holds one writer's records only
    assert sorted(tags_per_file) == [
        [metadata.ARCHITECTURE_TAG, metadata.filters_tag("conv_A")],
        [metadata.filters_tag("conv_B")]]
    with run_tensorboard(logdir, load_fast=False, extra_args=SAMPLES) as url:
        check_concurrent_runs(url)


def test_threads_sharing_one_writer(tmp_path):
    png = png_bytes()
    errors = []
    with ArchVizWriter(str(tmp_path)) as writer:
        def work(t):
            try:
                for i in range(25):
                    step = t * 25 + i
                    if i % 2:
                        writer.add_filter_grid("conv%d" % t, png, TILES, step=step)
                    else:
                        writer.add_architecture(small_arch(units=1 + step), step=step)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
    assert errors == []
    (path,) = event_files(tmp_path)
    assert len(read_records(path)) == 1 + 200
    values = archviz_values(tmp_path)
    assert sorted(step for step, _, _ in values) == list(range(200))
    for step, tag, v in values:
        if tag == metadata.ARCHITECTURE_TAG:
            assert json.loads(v.tensor.string_val[0])["nodes"][1]["config"]["units"] == 1 + step
