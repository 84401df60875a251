"""timm models (``timm.create_model(name, pretrained=False)``: random weights, nothing downloaded)
through ``add_architecture`` and a real TensorBoard: ResNet-18, a 2-block ViT, EfficientNet-B0.

timm needs torchvision. The only torchvision on PyPI matching torch 2.13 (0.28.0) is a CUDA
build: its ``_C`` extension links ``libtorch_cuda.so`` / ``libc10_cuda.so``, absent from the CPU
torch, so it does not load, and ``import torchvision`` then fails in its unguarded
``register_fake("torchvision::nms")`` ("operator torchvision::nms does not exist"). Installing
it would also break ``from transformers import Trainer`` (which imports torchvision when it is
installed). So torchvision and timm are not in requirements-dev.txt and this module is skipped,
saying why, unless a working torchvision (e.g. PyTorch's own CPU build) and timm are installed.
"""

from __future__ import annotations

import pytest

try:
    import timm
except Exception as e:  # ImportError, or torchvision's RuntimeError at import
    from tensorboard_archviz.util import one_line

    pytest.skip("timm is not usable here (%s); timm needs torchvision, and PyPI's torchvision "
                "for torch 2.13 is a CUDA build that cannot load beside the CPU torch"
                % one_line(e), allow_module_level=True)

import torch  # noqa: E402

import hf_helpers as H  # noqa: E402  (reachability and route helpers; sets HF_HUB_OFFLINE)
from conftest import open_archviz, run_tensorboard, wait_for_run  # noqa: E402

MODELS = {
    "resnet18": ({"num_classes": 10}, (1, 3, 64, 64)),
    "vit_tiny_patch16_224": ({"num_classes": 10, "img_size": 32, "patch_size": 8, "depth": 2},
                             (1, 3, 32, 32)),
    "efficientnet_b0": ({"num_classes": 10}, (1, 3, 64, 64)),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(TensorBoard URL, {name: model}) with each model written as run `name`."""
    from torch.utils.tensorboard import SummaryWriter

    from tensorboard_archviz import add_architecture

    logdir = tmp_path_factory.mktemp("timm_logs")
    models = {}
    torch.manual_seed(0)
    for name, (kwargs, shape) in MODELS.items():
        model = timm.create_model(name, pretrained=False, **kwargs)
        writer = SummaryWriter(str(logdir / name))
        add_architecture(writer, model, torch.randn(*shape), global_step=0)
        writer.close()
        models[name] = model
    with run_tensorboard(logdir) as url:
        for name in MODELS:
            wait_for_run(url, name)
        yield url, models


@pytest.fixture(scope="module")
def archs(served):
    return {name: H.fetch_architecture(served[0], name) for name in MODELS}


def preds(arch, node_id):
    return {s for s, t in H.edge_set(arch) if t == node_id}


@pytest.mark.parametrize("name", list(MODELS))
def test_params_exact_every_module_a_node(served, archs, name):
    model = served[1][name]
    arch = archs[name]
    assert arch["model"]["total_params"] == H.unique_params(model)
    assert arch["inputs"] == ["x"]
    ids = set(H.nodes_by_id(arch))
    assert {m for m, _ in model.named_modules() if m} <= ids
    assert all(H.reaches(arch, "x", out) for out in arch["outputs"])


def test_resnet18_residuals_and_shapes(archs):
    arch = archs["resnet18"]
    n = H.nodes_by_id(arch)
    assert arch["model"]["total_params"] == 11181642 and arch["outputs"] == ["fc"]
    assert n["layer1.0"]["output_shapes"] == [[1, 64, 16, 16]]
    assert n["layer2.0.downsample.0"]["output_shapes"] == [[1, 128, 8, 8]]
    assert n["fc"]["output_shapes"] == [[1, 10]]
    # identity shortcut in layer1.0, projection shortcut in layer2.0; the add sits in its block
    add1 = [i for i in n if n[i]["class_name"] == "add" and n[i]["parent"] == "layer1.0"]
    assert len(add1) == 1 and preds(arch, add1[0]) == {"layer1.0.bn2", "maxpool"}
    add2 = [i for i in n if n[i]["class_name"] == "add" and n[i]["parent"] == "layer2.0"]
    assert len(add2) == 1 and preds(arch, add2[0]) == {"layer2.0.bn2", "layer2.0.downsample.1"}


def test_vit_tokens_and_attention(archs):
    arch = archs["vit_tiny_patch16_224"]
    n = H.nodes_by_id(arch)
    assert arch["outputs"] == ["head"] and n["head"]["output_shapes"] == [[1, 10]]
    assert n["patch_embed.proj"]["output_shapes"] == [[1, 192, 4, 4]]
    assert n["blocks.0.attn.qkv"]["output_shapes"] == [[1, 17, 576]]  # 16 patches + class token
    sdpa = [i for i in n if n[i]["class_name"] == "scaled_dot_product_attention"]
    assert len(sdpa) == 2
    assert H.reaches(arch, "blocks.0.attn.qkv", sdpa[0])
    assert H.reaches(arch, sdpa[0], "blocks.0.attn.proj")


def test_efficientnet_depthwise_and_squeeze_excite(archs):
    arch = archs["efficientnet_b0"]
    n = H.nodes_by_id(arch)
    dw = n["blocks.1.0.conv_dw"]
    assert dw["config"]["groups"] == 96 and dw["output_shapes"] == [[1, 96, 16, 16]]
    assert n["blocks.1.0.se.conv_reduce"]["output_shapes"] == [[1, 4, 1, 1]]
    # the squeeze-excite gate scales the depthwise branch: both feed one functional multiply
    gate = [t for s, t in H.edge_set(arch) if s == "blocks.1.0.se.gate"]
    assert len(gate) == 1 and n[gate[0]]["class_name"] == "mul"
    assert "blocks.1.0.aa" in preds(arch, gate[0])
    assert n["classifier"]["output_shapes"] == [[1, 10]]


def test_resnet18_in_the_arch_viz_tab(served, page):
    frame = open_archviz(page, served[0])
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", "resnet18")
    frame.wait_for_selector('.av-table tr.row[data-id="layer1"]')
    assert frame.inner_text("[data-total=total]") == "11,181,642"
