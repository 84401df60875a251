"""Browser tests of the Layered view and the gradient-reach overlay, against a real TensorBoard.

Data: a real Keras LeNet extraction with gradient reach (written in a subprocess, so TensorFlow
never loads into the test process), a real PyTorch bottleneck ResNet and a model with a detached
branch and a frozen layer (both through ``add_architecture(gradient_reach=True)``), a model whose
backward fails, and a hand-built model whose layer names hold control characters and HTML.
Chromium opens ``/#archviz`` like a user and clicks the Layered tab.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
import torch
from PIL import Image

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import add_architecture, schema
from tensorboard_archviz.summary import ArchVizWriter
from test_gradient_reach import Detached, FailingBackward
from torch_models import ResNet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SVGNS = "{http://www.w3.org/2000/svg}"
WEIRD = "bad\x01name<script>alert(1)</script>"

LENET_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tensorboard_archviz.extract.keras import extract_keras
    from tensorboard_archviz.gradient_reach import add_to
    from tensorboard_archviz.summary import ArchVizWriter
    sys.path.insert(0, os.path.join(os.environ["ARCHVIZ_REPO"], "tests", "fixtures"))
    from keras_models import build_lenet
    model = build_lenet()
    with ArchVizWriter(sys.argv[1]) as w:
        w.add_architecture(add_to(extract_keras(model), model), step=0)
""")


def weird_arch() -> schema.Architecture:
    def node(i, cls, out):
        return schema.Node(i, i, cls, output_shapes=[out], input_shapes=None, dtype="float32")
    nodes = [node("input", "InputLayer", [None, 16, 16, 3]), node("conv", "Conv2D", [None, 16, 16, 8]),
             node(WEIRD, "Dense", [None, 16, 16, 4]), node("flat\ud800", "Flatten", [None, 1024])]
    edges = [("input", "conv"), ("conv", WEIRD), (WEIRD, "flat\ud800")]
    return schema.Architecture("keras", "3.15.1", schema.ModelInfo("weird\x02model", "Functional"),
                               inputs=["input"], outputs=["flat\ud800"], nodes=nodes,
                               edges=[schema.Edge(s, t) for s, t in edges])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_layered")
    proc = subprocess.Popen([sys.executable, "-c", LENET_SCRIPT, str(logdir / "keras_cnn")],
                            env=dict(os.environ, ARCHVIZ_REPO=REPO))
    torch.manual_seed(0)
    for run, model, x in [("torch_resnet", ResNet((1, 1, 1, 1), num_classes=10), torch.randn(1, 3, 64, 64)),
                          ("detached", Detached(), torch.randn(2, 1, 6, 6)),
                          ("failing", FailingBackward(), torch.randn(1, 4))]:
        with ArchVizWriter(str(logdir / run)) as w:
            add_architecture(w, model, x, gradient_reach=True)
    with ArchVizWriter(str(logdir / "weird")) as w:
        w.add_architecture(weird_arch(), step=0)
    assert proc.wait(timeout=300) == 0
    with run_tensorboard(logdir) as url:
        for run in ("keras_cnn", "torch_resnet", "detached", "failing", "weird"):
            wait_for_run(url, run)
        yield url


def open_layered(page, url, run):
    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", run)
    frame.click("button[data-view=layered]")
    frame.wait_for_selector("[data-testid=layered-svg] [data-testid=layered-box]")
    return frame


def boxes(frame):
    return frame.evaluate("""() => [...document.querySelectorAll('[data-testid=layered-svg] [data-testid=layered-box]')]
        .map(g => ({id: g.dataset.id, kind: g.dataset.kind, h: +g.dataset.h, len: +g.dataset.len,
                    depth: +g.dataset.depth, group: g.querySelector('[stroke-dasharray]') !== null,
                    reach: g.querySelector('[data-testid=layered-reach]')?.dataset.state || null}))""")


def architecture(url, run):
    status, arch = get_json(url + PLUGIN + "/architecture?run=" + run)
    assert status == 200
    return arch


def expected_dims(shape, framework, cls):
    """(kind, sizes) as the view reads a shape: bars by units, volumes by (height, width, channels)."""
    d = shape[1:]
    if len(d) == 1:
        return "bar", (d[0],)
    first = framework == "torch" and (len(d) >= 3 or "1d" in cls.lower())
    c, sp = (d[0], d[1:]) if first else (d[-1], d[:-1])
    sp = sp[-2:] if len(sp) >= 2 else [sp[0], 0]
    return "volume", (sp[0], sp[1], c)


def sign(x):
    return (x > 0) - (x < 0)


def assert_sizes_ordered(drawn, arch):
    """Every two boxes of a kind compare like their shapes, axis by axis."""
    nodes = {n["id"]: n for n in arch["nodes"]}
    exp = [expected_dims(nodes[b["id"]]["output_shapes"][0], arch["framework"], nodes[b["id"]]["class_name"])
           for b in drawn]
    for b, (kind, _) in zip(drawn, exp):
        assert b["kind"] == kind, b
    axes = {"bar": ["h"], "volume": ["h", "depth", "len"]}
    checked = 0
    for i in range(len(drawn)):
        for j in range(i + 1, len(drawn)):
            if exp[i][0] != exp[j][0]:
                continue
            for k, axis in enumerate(axes[exp[i][0]]):
                assert sign(drawn[i][axis] - drawn[j][axis]) == sign(exp[i][1][k] - exp[j][1][k]), \
                    (axis, drawn[i], drawn[j], exp[i], exp[j])
                checked += 1
    assert checked > 10


def legend(frame):
    return frame.eval_on_selector_all("[data-testid=layered-svg] [data-testid=layered-legend-item] text",
                                      "ts => ts.map(t => t.textContent)")


def test_keras_cnn_one_box_per_layer_sizes_and_legend(server, page):
    frame = open_layered(page, server, "keras_cnn")
    arch = architecture(server, "keras_cnn")
    drawn = boxes(frame)
    assert [b["id"] for b in drawn] == [n["id"] for n in arch["nodes"]]   # a chain: all 8 layers
    assert [b["kind"] for b in drawn] == ["volume"] * 5 + ["bar"] * 3
    assert_sizes_ordered(drawn, arch)
    assert legend(frame)[:5] == ["Input: InputLayer", "Convolution: Conv2D", "Pooling: MaxPooling2D",
                                 "Reshape: Flatten", "Dense / Linear: Dense"]
    assert frame.inner_text("[data-testid=layered-info]") == "8 layers on the main path"
    summary = "Gradient reach: all 8 trainable parameters receive a gradient"
    assert frame.inner_text("[data-testid=layered-summary]") == summary
    assert [b["reach"] for b in drawn] == [None, "grad", None, "grad", None, None, "grad", "grad"]
    # labels follow the checkboxes
    labels = "[data-testid=layered-svg] [data-testid=layered-labels] text"
    assert frame.eval_on_selector(labels, "t => t.textContent") == "input_layer  (None, 28, 28, 1)"
    frame.uncheck("[data-testid=layered-shapes]")
    assert frame.eval_on_selector(labels, "t => t.textContent") == "input_layer"
    frame.uncheck("[data-testid=layered-names]")
    assert frame.eval_on_selector_all(labels, "ts => ts.length") == 0


def test_torch_resnet_groups_branches_and_sizes(server, page):
    frame = open_layered(page, server, "torch_resnet")
    arch = architecture(server, "torch_resnet")
    drawn = boxes(frame)
    main = ["x", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
            "avgpool", "flatten", "fc"]
    assert [b["id"] for b in drawn] == main
    assert [b["id"] for b in drawn if b["group"]] == ["layer1", "layer2", "layer3", "layer4"]
    assert_sizes_ordered(drawn, arch)
    assert "Container: Sequential" in legend(frame)
    # open every group: each bottleneck's convolutions are on the main path and its shortcut
    # (a projection conv + batch norm) is a side branch rejoining at the add
    frame.select_option("[data-testid=layered-depth]", "all")
    frame.wait_for_function("document.querySelectorAll('[data-testid=layered-svg] [data-testid=layered-box]').length > 12")
    drawn = boxes(frame)
    ids = [b["id"] for b in drawn]
    for k in range(1, 5):
        assert ["layer%d.0.conv%d" % (k, i) for i in (1, 2, 3)] == [i for i in ids if i.startswith("layer%d.0.conv" % k)]
    branches = frame.eval_on_selector_all("[data-testid=layered-svg] [data-testid=layered-branch]",
                                          "gs => gs.map(g => [+g.dataset.units, g.querySelector('title').textContent])")
    assert len(branches) == 4 and all(n == 2 for n, _ in branches)
    assert "layer1.0.downsample.0 (Conv2d) → layer1.0.downsample.1 (BatchNorm2d)" in branches[0][1]
    assert_sizes_ordered(drawn, arch)
    # folding the activations / norms: the same path without them
    frame.check("[data-testid=layered-fold]")
    frame.wait_for_function("!document.querySelector('[data-testid=layered-svg] [data-id=\"bn1\"]')")
    folded = [b["id"] for b in boxes(frame)]
    assert folded == [i for i in ids if not any(t in i.split(".")[-1] for t in ("bn", "relu"))]


def download(page, frame, testid):
    with page.expect_download() as dl:
        frame.click("[data-testid=%s]" % testid)
    return dl.value.suggested_filename, open(dl.value.path(), "rb").read()


def test_svg_and_png_exports(server, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    frame = open_layered(page, server, "weird")
    assert len(boxes(frame)) == 4
    name, data = download(page, frame, "layered-export-svg")
    assert name == "weird_model.layered.svg"
    svg = ET.fromstring(data)   # well-formed XML despite the control characters
    assert svg.tag == SVGNS + "svg"
    w, h = float(svg.get("width")), float(svg.get("height"))
    assert svg.get("viewBox") == "0 0 %d %d" % (w, h)
    drawn = [g for g in svg.iter(SVGNS + "g") if g.get("data-testid") == "layered-box"]
    assert [g.get("data-id") for g in drawn] == ["input", "conv", WEIRD.replace("\x01", "\u2401"), "flat\ufffd"]
    texts = [t.text for t in svg.iter(SVGNS + "text")]
    assert "bad\u2401name<script>alert(1)</script>  (None, 16, 16, 4)" in texts
    tags = {el.tag.replace(SVGNS, "") for el in svg.iter()}
    assert not tags & {"script", "foreignObject", "image", "img"}
    assert not any(k.lower().startswith("on") for el in svg.iter() for k in el.attrib)
    assert frame.evaluate("document.querySelectorAll('script:not([src])').length") == 0 and dialogs == []
    frame.fill("[data-testid=layered-png-width]", "1234")
    frame.press("[data-testid=layered-png-width]", "Enter")
    frame.dispatch_event("[data-testid=layered-png-width]", "change")
    name, data = download(page, frame, "layered-export-png")
    assert name == "weird_model.layered.png"
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (1234, round(1234 * h / w))
    assert frame.inner_text("[data-testid=layered-status]") == "PNG %d × %d exported." % img.size


def test_the_box_clicked_is_the_row_the_table_opens_on(server, page):
    frame = open_layered(page, server, "torch_resnet")
    last = boxes(frame)[-1]["id"]
    frame.click('[data-testid=layered-svg] [data-testid=layered-box][data-id="%s"]' % last)
    frame.click("button[data-view=table]")
    row = frame.wait_for_selector('.av-table tr.row.selected[data-id="%s"]' % last)
    assert frame.locator(".av-table tr.row").count() > 40   # the row starts below the fold
    frame.wait_for_function("""id => { const r = document.querySelector(`.av-table tr.row[data-id="${id}"]`)
        .getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }""", arg=last, timeout=5000)
    assert row.get_attribute("data-id") == last


def test_gradient_reach_summary_badges_and_colours(server, page):
    frame = open_layered(page, server, "detached")
    arch = architecture(server, "detached")
    reach = arch["gradient_reach"]
    assert frame.inner_text("[data-testid=layered-summary]") == "Gradient reach: " + reach["summary"]
    assert "2 parameters of aux receive no gradient: the branch is detached at aux.detach()" in reach["summary"]
    drawn = {b["id"]: b for b in boxes(frame)}
    assert list(drawn) == ["x", "trunk", "mean", "frozen", "drop", "add", "head"]
    assert {k: b["reach"] for k, b in drawn.items() if b["reach"]} == {
        "trunk": "grad", "frozen": "frozen", "head": "grad"}
    branch = frame.eval_on_selector("[data-testid=layered-svg] [data-testid=layered-branch] title", "t => t.textContent")
    assert branch == "side branch: aux (Linear) → detach (detach)"
    # colour by reach: the side branch's marker takes aux's state colour, the legend lists the states
    frame.select_option("[data-testid=layered-colour]", "reach")
    frame.wait_for_function("[...document.querySelectorAll('[data-testid=layered-legend-item]')].some(g => g.dataset.key === 'reach-none')")
    marker = frame.eval_on_selector("[data-testid=layered-svg] [data-testid=layered-branch] rect", "r => r.getAttribute('fill')")
    assert marker.lower() in ("#d32f2f", "#ef5350")
    tip = frame.eval_on_selector('[data-testid=layered-svg] [data-id="frozen"] title', "t => t.textContent")
    assert "Gradient reach: frozen" in tip and "weight: frozen" in tip
    # a model whose backward fails: the architecture is there, with the reason
    frame.select_option("select[data-picker=run]", "failing")
    frame.click("button[data-view=layered]")
    frame.wait_for_selector("[data-testid=layered-summary].unavailable")
    assert frame.inner_text("[data-testid=layered-summary]") == (
        "gradient reach unavailable: the backward pass failed: RuntimeError: this backward always fails")
    assert [b["id"] for b in boxes(frame)] == ["x", "fc", "mul"]   # BadBackward's x * 2
