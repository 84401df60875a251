"""PyTorch end to end: add_architecture on a real SummaryWriter -> a real TensorBoard (both
loaders) -> routes -> the Arch Viz tab in a real Chromium; the two frameworks agree on LeNet."""

import urllib.parse

import pytest

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from tensorboard_archviz import add_architecture
    from torch_models import SmallResNet, lenet

    root = tmp_path_factory.mktemp("torch_e2e")
    with SummaryWriter(str(root / "torch_lenet")) as w:
        add_architecture(w, lenet(), torch.randn(1, 1, 28, 28))
        w.add_scalar("loss", 1.0, 0)
    with SummaryWriter(str(root / "torch_resnet")) as w:
        add_architecture(w, SmallResNet(), torch.randn(2, 1, 28, 28), global_step=5)
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["load_fast", "legacy_loader"])
def server(request, logdir):
    with run_tensorboard(logdir, load_fast=request.param) as url:
        wait_for_run(url, "torch_lenet")
        wait_for_run(url, "torch_resnet")
        yield url


def test_torch_runs_through_routes(server):
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200
    assert runs["torch_lenet"]["steps"] == [0] and runs["torch_resnet"]["steps"] == [5]
    status, arch = get_json(server + PLUGIN + "/architecture?" +
                            urllib.parse.urlencode({"run": "torch_lenet"}))
    assert status == 200 and arch["framework"] == "torch"
    assert arch["model"]["total_params"] == 1256080
    by_id = {n["id"]: n for n in arch["nodes"]}
    assert by_id["0"]["class_name"] == "Conv2d" and by_id["0"]["params"]["trainable"] == 520
    assert by_id["0"]["output_shapes"] == [[1, 20, 28, 28]]
    status, res = get_json(server + PLUGIN + "/architecture?run=torch_resnet")
    assert status == 200
    ops = [n for n in res["nodes"] if n.get("is_function")]
    assert any(n["class_name"] == "add" for n in ops), [n["id"] for n in ops]


def test_keras_and_torch_lenet_agree():
    """The Keras LeNet and the same network in PyTorch both have 1,256,080 params."""
    import torch

    from fixtures.keras_models import build_lenet
    from tensorboard_archviz.extract.keras import extract_keras
    from tensorboard_archviz.extract.torch import extract_torch
    from torch_models import lenet

    k = extract_keras(build_lenet())
    t = extract_torch(lenet(), torch.randn(1, 1, 28, 28))
    assert k.model.total_params == t.model.total_params == 1256080
    k_params = [n.total_params for n in k.nodes if n.class_name in ("Conv2D", "Dense")]
    t_params = [n.total_params for n in t.nodes if n.class_name in ("Conv2d", "Linear")]
    assert k_params == t_params == [520, 25050, 1225500, 5010]


def test_browser_shows_torch_run(server, page):
    frame = open_archviz(page, server)
    frame.wait_for_selector("select", timeout=30000)
    run_select = frame.locator("select").first
    run_select.select_option(label="torch_lenet")
    frame.wait_for_selector("text=1,225,500", timeout=30000)
    text = frame.locator("body").inner_text()
    for needle in ["Conv2d", "Linear", "25,050", "1,256,080", "PyTorch"]:
        assert needle in text, needle
