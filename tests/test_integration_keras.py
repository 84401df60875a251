"""Keras end to end: a real fit() with ArchVizCallback -> event files -> a real TensorBoard
(both loaders) -> the plugin's routes -> the Arch Viz tab in a real Chromium."""

import os
import sys
import urllib.parse

import numpy as np
import pytest

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

LENET_PARAMS = [("conv2d", 520), ("max_pooling2d", 0), ("conv2d_1", 25050),
                ("max_pooling2d_1", 0), ("flatten", 0), ("dense", 500 * 2450 + 500),
                ("dense_1", 5010)]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    import keras

    from tensorboard_archviz import ArchVizCallback

    root = tmp_path_factory.mktemp("keras_e2e")
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    from fixtures.keras_models import build_lenet

    model = build_lenet()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0,
              callbacks=[ArchVizCallback(log_dir=str(root / "lenet")),
                         keras.callbacks.TensorBoard(log_dir=str(root / "lenet"))])
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["load_fast", "legacy_loader"])
def server(request, logdir):
    with run_tensorboard(logdir, load_fast=request.param) as url:
        wait_for_run(url, "lenet/train")
        yield url


def test_routes_serve_the_fit_architecture(server):
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200
    assert runs["lenet/train"]["steps"] == [0]
    status, arch = get_json(server + PLUGIN + "/architecture?" +
                            urllib.parse.urlencode({"run": "lenet/train"}))
    assert status == 200
    assert arch["framework"] == "keras"
    assert arch["model"]["total_params"] == 1256080
    assert arch["model"]["trainable_params"] == 1256080
    by_id = {n["id"]: n for n in arch["nodes"]}
    for node_id, params in LENET_PARAMS:
        assert by_id[node_id]["params"]["trainable"] == params, node_id
    assert by_id["conv2d_1"]["output_shapes"] == [[None, 14, 14, 50]]
    assert by_id["dense"]["input_shapes"] == [[None, 2450]]
    edges = {(e["source"], e["target"]) for e in arch["edges"]}
    assert ("conv2d", "max_pooling2d") in edges and ("dense", "dense_1") in edges
    status, err = get_json(server + PLUGIN + "/architecture?run=lenet/train&step=7")
    assert status == 404 and "available steps: [0]" in err["error"]


def test_browser_shows_lenet_rows(server, page):
    if server is None:
        pytest.skip("no server")
    frame = open_archviz(page, server)
    frame.wait_for_selector("text=1,225,500", timeout=30000)
    text = frame.locator("body").inner_text()
    for needle in ["conv2d_1", "Conv2D", "520", "25,050", "1,225,500", "5,010", "1,256,080"]:
        assert needle in text, needle
