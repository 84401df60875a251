"""ArchVizCallback on Keras 3's JAX backend (the backend is fixed per process: a subprocess fits
the demo's LeNet with ``KERAS_BACKEND=jax``), read back through TensorBoard's own data provider
(``MultiplexerDataProvider`` over the event files, as the TensorBoard server reads them): the
architecture (params and shapes per layer, per-example MACs) and a filter grid of ``conv2d``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    sys.path.insert(0, sys.argv[2])
    from keras_models import build_lenet, compile_classifier
    from tensorboard_archviz import ArchVizCallback

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    model = build_lenet()
    compile_classifier(model)
    cb = ArchVizCallback(log_dir=sys.argv[1], filters=["conv2d"], filters_options={"steps": 8})
    history = model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    print(json.dumps({"epochs": len(history.history["loss"]), "written": cb.written_steps,
                      "params": int(model.count_params())}))
""")

# (id, class, output shape, params) of the demo's LeNet, as Keras counts them
LENET = [
    ("input_layer", "InputLayer", [None, 28, 28, 1], 0),
    ("conv2d", "Conv2D", [None, 28, 28, 20], 520),
    ("max_pooling2d", "MaxPooling2D", [None, 14, 14, 20], 0),
    ("conv2d_1", "Conv2D", [None, 14, 14, 50], 25050),
    ("max_pooling2d_1", "MaxPooling2D", [None, 7, 7, 50], 0),
    ("flatten", "Flatten", [None, 2450], 0),
    ("dense", "Dense", [None, 500], 1225500),
    ("dense_1", "Dense", [None, 10], 5010),
]


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """(logdir, the subprocess's JSON line, a data provider over the logdir)."""
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider

    logdir = tmp_path_factory.mktemp("keras_jax")
    script = logdir / "jax_fit.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(script), str(logdir / "lenet"),
                           os.path.join(ROOT, "tests", "fixtures")], env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={"archviz": 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return logdir, result, MultiplexerDataProvider(multiplexer, str(logdir))


def ctx():
    from tensorboard import context

    return context.RequestContext()


def test_jax_fit_writes_the_lenet_architecture(jax_run):
    from tensorboard_archviz import metadata

    _, result, provider = jax_run
    assert result == {"epochs": 1, "written": [0], "params": 1256080}
    series = provider.read_tensors(ctx(), experiment_id="", plugin_name=metadata.PLUGIN_NAME,
                                   downsample=100)
    datums = series["lenet/train"][metadata.ARCHITECTURE_TAG]
    assert [d.step for d in datums] == [0]
    arch = json.loads(datums[0].numpy.item())
    assert arch["framework"] == "keras" and arch["model"]["name"] == "lenet"
    assert arch["model"]["total_params"] == arch["model"]["trainable_params"] == 1256080
    got = [(n["id"], n["class_name"], n["output_shapes"][0],
            n["params"]["trainable"] + n["params"]["non_trainable"]) for n in arch["nodes"]]
    assert got == LENET
    assert [(e["source"], e["target"]) for e in arch["edges"]] == [
        (a[0], b[0]) for a, b in zip(LENET, LENET[1:])]
    # per-example MACs: 28*28*20*25 + 14*14*50*500 + 2450*500 + 500*10
    assert arch["model"]["macs"] == 392000 + 4900000 + 1225000 + 5000


def test_jax_fit_writes_a_filter_grid(jax_run):
    from PIL import Image

    from tensorboard_archviz import metadata

    _, _, provider = jax_run
    tag = metadata.filters_tag("conv2d")
    listing = provider.list_blob_sequences(ctx(), experiment_id="",
                                           plugin_name=metadata.PLUGIN_NAME)
    assert set(listing["lenet/train"]) == {tag}
    series = provider.read_blob_sequences(ctx(), experiment_id="",
                                          plugin_name=metadata.PLUGIN_NAME, downsample=10)
    datum = series["lenet/train"][tag][-1]
    assert datum.step == 1  # end of training: epochs done
    png = provider.read_blob(ctx(), blob_key=datum.values[metadata.FILTERS_PNG_INDEX].blob_key)
    tiles = json.loads(provider.read_blob(
        ctx(), blob_key=datum.values[metadata.FILTERS_META_INDEX].blob_key))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(tiles["tiles"]) == 20  # one tile per filter of conv2d
    image = Image.open(io.BytesIO(png))
    assert image.size[0] >= tiles["cols"] * 28 and image.size[1] >= tiles["rows"] * 28
