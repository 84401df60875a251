"""Browser tests of the Arch Viz graph view, against a real TensorBoard and Debian Chromium.

Data: a real Keras LeNet extraction with a filter grid on its first convolution (written in a
subprocess, so TensorFlow never loads into the test process), a hand-built nested model with a
layer named like an XSS payload, and a 482-node model of 30 blocks (collapsed by default). The
page opens ``/#archviz`` like a user, switches the dashboard to its "Graph" view and works inside
the plugin's iframe; the graph view's root is ``[data-testid=graph-view]`` and sets
``data-render-complete="1"`` once laid out and drawn.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from browser_helpers import open_graph, relayout  # noqa: E402
from tensorboard_archviz import schema
from tensorboard_archviz.summary import ArchVizWriter
from tensorboard_archviz.totals import fill_totals

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XSS = "<img src=x onerror=alert(1)>"
HTML_CFG = "<b>bold</b><script>alert(2)</script>"
G = "[data-testid=graph-view]"
SVGNS = "{http://www.w3.org/2000/svg}"

LENET_SCRIPT = textwrap.dedent("""
    import io, os, sys
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from PIL import Image
    from tensorboard_archviz.extract.keras import extract_keras
    from tensorboard_archviz.summary import ArchVizWriter
    sys.path.insert(0, os.path.join(os.environ["ARCHVIZ_REPO"], "tests", "fixtures"))
    from keras_models import build_lenet
    model = build_lenet()
    arch = extract_keras(model)
    conv = next(n.id for n in arch.nodes if n.class_name == "Conv2D")
    buf = io.BytesIO()
    Image.new("L", (2 * 8 + 3, 8 + 2), 128).save(buf, "PNG")
    tiles = {"tile_size": 8, "margin": 1, "rows": 1, "cols": 2, "channels": 1,
             "value_range": [0, 1],
             "tiles": [{"index": i, "score": 0.5, "post_score": 0.5, "dead": False,
                        "row": 0, "col": i} for i in range(2)]}
    with ArchVizWriter(sys.argv[1]) as w:
        w.add_architecture(arch, step=0)
        w.add_filter_grid(conv, buf.getvalue(), tiles, step=0)
""")

# (class, input shape, output shape, params) of LeNet's nodes in model order, as Keras counts.
LENET = [
    ("InputLayer", None, "(None, 28, 28, 1)", "0"),
    ("Conv2D", "(None, 28, 28, 1)", "(None, 28, 28, 20)", "520"),
    ("MaxPooling2D", "(None, 28, 28, 20)", "(None, 14, 14, 20)", "0"),
    ("Conv2D", "(None, 14, 14, 20)", "(None, 14, 14, 50)", "25,050"),
    ("MaxPooling2D", "(None, 14, 14, 50)", "(None, 7, 7, 50)", "0"),
    ("Flatten", "(None, 7, 7, 50)", "(None, 2450)", "0"),
    ("Dense", "(None, 2450)", "(None, 500)", "1,225,500"),
    ("Dense", "(None, 500)", "(None, 10)", "5,010"),
]


def node(id, cls, parent=None, out=None, inp=None, t=0, nt=0, act=None, cfg=None, macs=None,
         weights=None):
    return schema.Node(id, id.split("/")[-1], cls, parent=parent, output_shapes=out,
                       input_shapes=inp, dtype="float32",
                       params={"trainable": t, "non_trainable": nt}, activation=act,
                       config=cfg or {}, macs=macs,
                       extra={"weights": weights} if weights else {})


def arch_of(name, nodes, edges, inputs, outputs):
    leaves = [n for n in nodes if not any(m.parent == n.id for m in nodes)]
    t = sum(n.params["trainable"] for n in leaves)
    nt = sum(n.params["non_trainable"] for n in leaves)
    return schema.Architecture(
        framework="keras", framework_version="3.15.1",
        model=schema.ModelInfo(name, "Functional", t + nt, t, nt),
        inputs=inputs, outputs=outputs, nodes=nodes,
        edges=[schema.Edge(a, b, s) for a, b, s in edges])


def nested_arch() -> schema.Architecture:
    """input -> encoder(dense 32->64, dense_1 64->64) -> XSS-named Dense(10)."""
    nodes = [
        node("input", "InputLayer", out=[[None, 32]]),
        node("encoder", "Sequential", inp=[[None, 32]], out=[[None, 64]], t=6272),
        node("encoder/dense", "Dense", "encoder", [[None, 64]], [[None, 32]], t=2112, act="relu",
             cfg={"units": 64}, macs=2048,
             weights=[{"name": "kernel", "shape": [32, 64], "trainable": True},
                      {"name": "bias", "shape": [64], "trainable": True}]),
        node("encoder/dense_1", "Dense", "encoder", [[None, 64]], [[None, 64]], t=4160,
             act="relu", cfg={"units": 64}, macs=4096),
        node(XSS, "Dense", out=[[None, 10]], inp=[[None, 64]], t=650, act="softmax",
             cfg={"units": 10, "comment": HTML_CFG}, macs=640),
    ]
    edges = [("input", "encoder/dense", [None, 32]), ("encoder/dense", "encoder/dense_1", [None, 64]),
             ("encoder/dense_1", XSS, [None, 64])]
    return arch_of("nested", nodes, edges, ["input"], [XSS])


BLOCKS, PER_BLOCK = 30, 15
KINDS = ["Conv2D", "BatchNormalization", "ReLU"]


def deep_arch() -> schema.Architecture:
    """input -> 30 blocks of 15 layers (conv/bn/relu x5) -> head: 482 nodes, collapsed at first."""
    nodes = [node("input", "InputLayer", out=[[None, 32, 32, 8]])]
    edges = []
    prev = "input"
    for b in range(BLOCKS):
        blk = "block%d" % b
        nodes.append(node(blk, "Block", out=[[None, 32, 32, 8]], t=5 * (584 + 16), nt=5 * 16))
        for i in range(PER_BLOCK):
            kind = KINDS[i % 3]
            nid = "%s/b%d_%s%d" % (blk, b, kind.lower(), i // 3)
            t, nt = {"Conv2D": (584, 0), "BatchNormalization": (16, 16), "ReLU": (0, 0)}[kind]
            nodes.append(node(nid, kind, blk, [[None, 32, 32, 8]], [[None, 32, 32, 8]], t=t, nt=nt))
            edges.append((prev, nid, [None, 32, 32, 8]))
            prev = nid
    nodes.append(node("head", "Dense", out=[[None, 10]], t=90))
    edges.append((prev, "head", [None, 32, 32, 8]))
    return arch_of("deep", nodes, edges, ["input"], ["head"])


def partial_nested_arch() -> schema.Architecture:
    """nested_arch whose encoder/dense_1 has unknown MACs; totals summed by the server's totals.py."""
    arch = nested_arch()
    inner = next(n for n in arch.nodes if n.id == "encoder/dense_1")
    inner.macs = None
    inner.macs_reason = "custom kernel: MACs not known"
    fill_totals(arch)
    return arch


def edited_nested_arch() -> schema.Architecture:
    """nested_arch with encoder/dense widened to 128 and a Dropout added before the head."""
    a = nested_arch()
    dense = a.node("encoder/dense")
    dense.output_shapes, dense.params, dense.config = [[None, 128]], {"trainable": 4224, "non_trainable": 0}, {"units": 128}
    dense_1 = a.node("encoder/dense_1")
    dense_1.input_shapes, dense_1.params = [[None, 128]], {"trainable": 8256, "non_trainable": 0}
    a.nodes.insert(4, node("dropout", "Dropout", out=[[None, 64]], inp=[[None, 64]]))
    a.edges = [e for e in a.edges if e.target != XSS] + [schema.Edge("encoder/dense_1", "dropout", [None, 64]),
                                                        schema.Edge("dropout", XSS, [None, 64])]
    return arch_of("nested", a.nodes, [(e.source, e.target, e.shape) for e in a.edges], ["input"], [XSS])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_graph")
    subprocess.run([sys.executable, "-c", LENET_SCRIPT, str(logdir / "lenet")], check=True,
                   env=dict(os.environ, ARCHVIZ_REPO=REPO),
                   timeout=300)
    with ArchVizWriter(str(logdir / "nested")) as w:
        w.add_architecture(nested_arch(), step=0)
    with ArchVizWriter(str(logdir / "deep")) as w:
        w.add_architecture(deep_arch(), step=0)
    with ArchVizWriter(str(logdir / "edited")) as w:
        w.add_architecture(edited_nested_arch(), step=0)
    with ArchVizWriter(str(logdir / "partial")) as w:
        w.add_architecture(partial_nested_arch(), step=0)
    with run_tensorboard(logdir) as url:
        wait_for_run(url, "lenet", filter_layers=1)
        wait_for_run(url, "nested")
        wait_for_run(url, "deep")
        wait_for_run(url, "edited")
        wait_for_run(url, "partial")
        yield url


def boxes(frame):
    """Every drawn box: id, kind (data-testid), its text lines, its top y."""
    return frame.evaluate("""() => [...document.querySelectorAll(
        '[data-testid=graph-view] .avg-nodes > g[data-id], [data-testid=graph-view] .avg-groups g[data-testid=graph-group]')]
        .map(g => ({id: g.getAttribute('data-id'), kind: g.getAttribute('data-testid'),
                    texts: [...g.querySelectorAll(':scope > text, :scope > g > text')].map(t => t.textContent),
                    y: g.transform.baseVal.consolidate().matrix.f}))""")


def edges(frame):
    return frame.evaluate("""() => [...document.querySelectorAll('[data-testid=graph-view] [data-testid=graph-edge]')]
        .map(e => [e.dataset.source, e.dataset.target, e.querySelector('text') ? e.querySelector('text').textContent : null])""")


def root_attr(frame, name):
    return frame.get_attribute(G, name)


def test_lenet_one_node_per_layer_with_shapes_and_counts(server, page):
    page.set_viewport_size({"width": 1400, "height": 1300})   # fits at a zoom that shows edge labels
    frame = open_graph(page, server, "lenet")
    assert float(root_attr(frame, "data-zoom")) >= 0.55
    _, arch = get_json(server + PLUGIN + "/architecture?run=lenet")
    got = [b for b in boxes(frame) if b["kind"] == "graph-node"]
    assert sorted(b["id"] for b in got) == sorted(n["id"] for n in arch["nodes"])
    assert len(got) == 8
    by_id = {b["id"]: b for b in got}
    # top to bottom in model order, each with its type, shapes and parameter count
    order = sorted(got, key=lambda b: b["y"])
    assert [b["id"] for b in order] == [n["id"] for n in arch["nodes"]]
    for n, (cls, inp, out, params) in zip(arch["nodes"], LENET):
        texts = by_id[n["id"]]["texts"]
        assert texts[0] == n["name"]
        assert texts[1].startswith(cls)
        if inp:
            assert "in  " + inp in texts
        assert "out " + out in texts
        assert "params " + params in texts
    assert [t for t in by_id[arch["nodes"][1]["id"]]["texts"] if "relu" in t] == ["Conv2D · relu"]
    # one edge per connection, labelled with the tensor's shape
    es = edges(frame)
    assert sorted((s, t) for s, t, _ in es) == sorted((e["source"], e["target"]) for e in arch["edges"])
    assert {lab for _, _, lab in es} == {o for _, _, o, _ in LENET[:-1]}
    assert "1,256,080 parameters" in frame.get_attribute("[data-testid=graph-info]", "title")
    # the detail panel: weights with shapes, MACs, config
    conv = arch["nodes"][1]["id"]
    frame.click('[data-testid=graph-node][data-id="%s"]' % conv)
    panel = frame.inner_text("[data-testid=graph-detail]")
    assert "(5, 5, 1, 20)" in panel and "500" in panel and "(20,)" in panel
    assert "392,000" in panel  # MACs per example (schema 2: 20 x 5 x 5 x 28 x 28)
    assert '"filters": 20' in frame.inner_text("[data-testid=graph-detail-config]")


def test_show_filters_button_opens_the_filters_view(server, page):
    frame = open_graph(page, server, "lenet")
    _, runs = get_json(server + PLUGIN + "/runs")
    conv = runs["lenet"]["filter_layers"][0]
    frame.click('[data-testid=graph-node][data-id="dense"]')
    assert frame.locator("[data-testid=graph-show-filters]").count() == 0
    frame.click('[data-testid=graph-node][data-id="%s"]' % conv)
    frame.click("[data-testid=graph-show-filters]")
    frame.wait_for_selector("button[data-view=filters][aria-selected=true]")


def test_nested_model_collapses_and_expands(server, page):
    frame = open_graph(page, server, "nested")
    kinds = {b["id"]: b["kind"] for b in boxes(frame)}
    assert kinds == {"input": "graph-node", "encoder": "graph-group", "encoder/dense": "graph-node",
                     "encoder/dense_1": "graph-node", XSS: "graph-node"}
    relayout(frame, lambda: frame.click('[data-testid=graph-collapse][data-toggle="encoder"]'))
    got = {b["id"]: b for b in boxes(frame)}
    assert {k: b["kind"] for k, b in got.items()} == {
        "input": "graph-node", "encoder": "graph-group-collapsed", XSS: "graph-node"}
    assert got["encoder"]["texts"][:2] == ["encoder", "Sequential · 2 layers"]
    assert "params 6,272" in got["encoder"]["texts"]
    assert sorted((s, t) for s, t, _ in edges(frame)) == sorted([("input", "encoder"), ("encoder", XSS)])
    assert root_attr(frame, "data-visible-nodes") == "3"
    # a double click on the collapsed container opens it again
    relayout(frame, lambda: frame.dblclick('[data-testid=graph-group-collapsed][data-id="encoder"]'))
    assert {b["id"] for b in boxes(frame)} == set(kinds)
    assert sorted((s, t) for s, t, _ in edges(frame)) == sorted(
        [("input", "encoder/dense"), ("encoder/dense", "encoder/dense_1"), ("encoder/dense_1", XSS)])


def test_container_macs_are_the_servers_sum_at_least_and_unknown(server, page):
    arch = partial_nested_arch()
    enc = next(n for n in arch.nodes if n.id == "encoder")
    assert enc.macs == 2048 and enc.macs_reason.startswith("at least")
    frame = open_graph(page, server, "partial")
    frame.click('[data-testid=graph-group][data-id="encoder"] text >> nth=0')
    frame.wait_for_selector("[data-testid=graph-detail]")
    rows = frame.eval_on_selector_all("[data-testid=graph-detail] tr",
                                      "trs => trs.map(r => [...r.children].map(c => c.textContent))")
    assert ["MACs (subtree)", "at least 2,048 (MACs unknown for 1 node(s) inside)"] in rows
    frame.click('[data-testid=graph-node][data-id="encoder/dense_1"]')
    frame.wait_for_function("document.querySelector('[data-testid=graph-detail]').innerText.includes('dense_1')")
    rows = frame.eval_on_selector_all("[data-testid=graph-detail] tr",
                                      "trs => trs.map(r => [...r.children].map(c => c.textContent))")
    assert ["MACs", "— (unknown: custom kernel: MACs not known)"] in rows
    # the table shows the same figure, with the reason on hover
    frame.click("button[data-view=table]")
    cell = frame.wait_for_selector('tr.row[data-id="encoder"] td[data-col=macs]')
    assert cell.inner_text() == "at least 2,048"
    assert cell.get_attribute("title") == "at least: MACs unknown for 1 node(s) inside"


def test_search_finds_a_layer_inside_a_collapsed_block(server, page):
    frame = open_graph(page, server, "deep")
    assert root_attr(frame, "data-total-nodes") == str(2 + BLOCKS * (PER_BLOCK + 1))
    # the 30 identical blocks are folded into one "block0 – block29 × 30": one closed box between
    # the input and the output (the overview)
    assert root_attr(frame, "data-folds") == "1"
    assert root_attr(frame, "data-visible-nodes") == "3"
    assert frame.locator('[data-testid=graph-group-collapsed][data-id^="fold:"]').count() == 1
    frame.fill("[data-testid=graph-search]", "BatchNormalization")
    frame.wait_for_function("document.querySelector('[data-testid=graph-view]').dataset.matches === '150'")
    assert frame.inner_text("[data-testid=graph-search-count]") == "150 found"
    target = "block17/b17_relu3"
    frame.fill("[data-testid=graph-search]", "b17_relu3")
    relayout(frame, lambda: frame.press("[data-testid=graph-search]", "Enter"))
    assert frame.inner_text("[data-testid=graph-search-count]") == "1 / 1"
    assert root_attr(frame, "data-selected") == target
    got = {b["id"]: b["kind"] for b in boxes(frame)}
    assert got[target] == "graph-node" and got["block17"] == "graph-group"
    assert frame.inner_text("[data-testid=graph-detail-title]") == "b17_relu3"
    # the match is in view, highlighted as selected
    box = frame.locator('[data-testid=graph-node][data-id="%s"]' % target).bounding_box()
    canvas = frame.locator("[data-testid=graph-canvas]").bounding_box()
    assert canvas["x"] <= box["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"]
    assert canvas["y"] <= box["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"]


def test_expand_all_lays_out_in_the_worker_under_tensorboards_csp(server, page):
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            and ("Content Security Policy" in m.text or "archviz" in m.text) else None)
    frame = open_graph(page, server, "deep")
    relayout(frame, lambda: frame.click("[data-testid=graph-expand-all]"))
    assert root_attr(frame, "data-layout-where") == "worker"
    assert root_attr(frame, "data-visible-nodes") == str(2 + BLOCKS * PER_BLOCK)
    assert root_attr(frame, "data-visible-groups") == str(BLOCKS + 1)   # the blocks and their fold
    assert problems == []


def test_export_svg_png_and_json(server, page, tmp_path):
    frame = open_graph(page, server, "nested")

    def download(testid):
        frame.click("[data-testid=graph-export]")
        with page.expect_download() as dl:
            frame.click("[data-testid=%s]" % testid)
        return dl.value.suggested_filename, open(dl.value.path(), "rb").read()

    name, data = download("graph-export-svg")
    assert name == "nested.svg"
    svg = ET.fromstring(data)   # well-formed XML
    assert svg.tag == SVGNS + "svg"
    w, h = float(svg.get("width")), float(svg.get("height"))
    assert svg.get("viewBox") == "0 0 %d %d" % (w, h) and w > 100 and h > 300
    drawn = [g.get("data-id") for g in svg.iter(SVGNS + "g") if g.get("data-testid") == "graph-node"]
    assert sorted(drawn) == sorted(["input", "encoder/dense", "encoder/dense_1", XSS])
    assert [g.get("data-id") for g in svg.iter(SVGNS + "g") if g.get("data-testid") == "graph-group"] == ["encoder"]
    assert len([g for g in svg.iter(SVGNS + "g") if g.get("data-testid") == "graph-edge"]) == 3
    texts = [t.text for t in svg.iter(SVGNS + "text")]
    assert XSS in texts and "params 4,160" in texts
    tags = {el.tag.replace(SVGNS, "") for el in svg.iter()}
    assert not tags & {"script", "foreignObject", "image", "img"}
    assert not any(k.lower().startswith("on") for el in svg.iter() for k in el.attrib)

    name, data = download("graph-export-png")
    assert name == "nested.png"
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (int(w * 2), int(h * 2))

    name, data = download("graph-export-json")
    assert name == "nested.architecture.json"
    _, arch = get_json(server + PLUGIN + "/architecture?run=nested")
    assert json.loads(data) == arch


def test_model_strings_render_as_text_and_no_script_runs(server, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    frame = open_graph(page, server, "nested")
    texts = frame.eval_on_selector_all(
        '[data-testid=graph-node][data-id="%s"] text' % XSS.replace('"', '\\"'), "ts => ts.map(t => t.textContent)")
    assert texts[0] == XSS
    frame.click('[data-testid=graph-node][data-id="%s"]' % XSS.replace('"', '\\"'))
    assert frame.inner_text("[data-testid=graph-detail-title]") == XSS
    assert HTML_CFG in frame.inner_text("[data-testid=graph-detail-config]")
    frame.fill("[data-testid=graph-search]", "<img")
    frame.wait_for_selector("[data-testid=graph-search-results] [data-id]")
    assert frame.inner_text("[data-testid=graph-search-results] [data-id]").startswith(XSS)
    injected = frame.evaluate("""() => document.querySelector('[data-testid=graph-view]')
        .querySelectorAll('img, script, b, [onerror]').length""")
    assert injected == 0
    page.wait_for_timeout(300)
    assert dialogs == []


def test_trace_keyboard_and_dark_theme(server, page):
    frame = open_graph(page, server, "nested")
    # trace the outputs of encoder/dense: the input is dimmed, the XSS layer is not
    frame.click('[data-testid=graph-node][data-id="encoder/dense"]')
    frame.click("[data-testid=graph-trace-down]")
    assert root_attr(frame, "data-trace") == "down:4"   # dense, dense_1, the head, their container
    dim = frame.eval_on_selector_all("[data-testid=graph-node]", "gs => Object.fromEntries(gs.map(g => [g.dataset.id, g.getAttribute('opacity')]))")
    assert dim["input"] == "0.22" and dim[XSS] is None and dim["encoder/dense_1"] is None
    # keyboard: Esc clears the trace, ? opens the help, / focuses the search, f fits
    frame.click("[data-testid=graph-canvas]", position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    assert root_attr(frame, "data-trace") == ""
    page.keyboard.press("?")
    assert frame.is_visible("[data-testid=graph-help-overlay]")
    page.keyboard.press("Escape")
    assert not frame.is_visible("[data-testid=graph-help-overlay]")
    fitted = float(root_attr(frame, "data-zoom"))
    zoom = "parseFloat(document.querySelector('[data-testid=graph-view]').dataset.zoom)"
    page.keyboard.press("+")
    frame.wait_for_function("z => %s > z * 1.2" % zoom, arg=fitted)
    page.keyboard.press("f")
    frame.wait_for_function("z => Math.abs(%s - z) < 0.002" % zoom, arg=fitted)
    page.keyboard.press("/")
    assert frame.evaluate("document.activeElement.dataset.testid") == "graph-search"
    # TensorBoard's dark theme: the graph follows
    assert root_attr(frame, "data-theme") == "light"
    page.click("button[aria-label='Menu for changing light or dark theme']")
    item = page.get_by_role("menuitemradio", name="Dark")
    (item if item.count() else page.get_by_text("Dark", exact=True)).click()
    page.keyboard.press("Escape")
    frame.wait_for_function("document.querySelector('[data-testid=graph-view]').dataset.theme === 'dark'")
    fill = frame.get_attribute('[data-testid=graph-node][data-id="input"] rect.avg-bg', "fill")
    assert fill == "#3a3a3a"
    shots = os.environ.get("ARCHVIZ_SCREENSHOTS")
    if shots:
        os.makedirs(shots, exist_ok=True)
        page.screenshot(path=os.path.join(shots, "graph_dark.png"))


def test_compare_mode_marks_added_changed_and_removed(server, page):
    frame = open_archviz(page, server)
    frame.click("xpath=//button[normalize-space(.)='Compare']")
    for side, run in (("A", "nested"), ("B", "edited")):
        frame.select_option("select[data-picker=run%s]" % side, run)
    frame.wait_for_function("document.querySelector('select[data-picker=runB]').value === 'edited'")
    frame.click("xpath=//button[normalize-space(.)='Graphs']")
    frame.wait_for_function("document.querySelectorAll('[data-testid=graph-view][data-render-complete=\"1\"]').length === 2")
    marks = frame.evaluate("""() => [...document.querySelectorAll('[data-testid=graph-view]')].map(v =>
        Object.fromEntries([...v.querySelectorAll('[data-testid=graph-node]')].map(g => [g.dataset.id, g.dataset.diff || null])))""")
    a, b = marks
    assert a == {"input": None, "encoder/dense": "changed", "encoder/dense_1": "changed", XSS: None}
    assert b == {"input": None, "encoder/dense": "changed", "encoder/dense_1": "changed", "dropout": "added", XSS: None}
    # the connection A had and B has not is drawn as removed on A's side, the new ones as added on B's
    removed = frame.evaluate("""() => [...document.querySelectorAll('[data-testid=graph-view]')[0]
        .querySelectorAll('[data-testid=graph-edge] path')].filter(p => p.getAttribute('marker-end').endsWith('-r)'))
        .map(p => p.parentNode.dataset.target)""")
    assert removed == [XSS]
