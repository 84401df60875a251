"""The graph view reads at any size (issue 13), against a real TensorBoard and Debian Chromium.

Data (written once per module, see ``graph_helpers.py``): Keras MobileNetV2 (156 layers, flat),
a 48-block GPT-style PyTorch transformer and a ``transformers`` Llama with 32 tiny layers (random
weights) through ``add_architecture``; a hand-built model with a layer named ``"conv\\x01a"``; the
nested / edited pair of ``test_browser_graph`` for the compare panes.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from browser_helpers import open_graph, relayout  # noqa: E402
from graph_helpers import write_models
from tensorboard_archviz.summary import ArchVizWriter
from test_browser_graph import arch_of, edited_nested_arch, nested_arch, node

G = "[data-testid=graph-view]"
SVGNS = "{http://www.w3.org/2000/svg}"
CTRL = "conv\x01a"

# Every <text> of the graph on screen: its on-screen font size (px) and its text.
TEXTS = """() => {
  const out = [];
  for (const root of document.querySelectorAll('[data-testid=graph-view]')) {
    const c = root.querySelector('[data-testid=graph-canvas]').getBoundingClientRect();
    for (const t of root.querySelectorAll('svg text')) {
      const r = t.getBoundingClientRect();
      if (!r.width || !r.height || r.right < c.left || r.left > c.right || r.bottom < c.top || r.top > c.bottom) continue;
      const m = t.getScreenCTM();
      out.push([parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b), t.textContent]);
    }
  }
  return out;
}"""


def ctrl_arch():
    a = arch_of("ctrl", [node("x", "Input", out=[[1, 3]]), node(CTRL, "Linear", inp=[[1, 3]], out=[[1, 4]], t=16)],
                [("x", CTRL, [1, 3])], ["x"], [CTRL])
    a.framework = "torch"
    return a


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_overview")
    write_models(str(logdir), ["mobilenetv2", "gpt48", "llama32", "gpt2tiny"])
    for name, arch in (("ctrl", ctrl_arch()), ("pair_a", nested_arch()), ("pair_b", edited_nested_arch())):
        with ArchVizWriter(str(logdir / name)) as w:
            w.add_architecture(arch, step=0)
    with run_tensorboard(logdir) as url:
        for run in ("mobilenetv2", "gpt48", "llama32", "gpt2tiny", "ctrl", "pair_a", "pair_b"):
            wait_for_run(url, run)
        yield url


def fit(frame):
    frame.click("[data-testid=graph-fit]")
    frame.wait_for_timeout(150)   # one animation frame for the labels
    return frame.evaluate(TEXTS)


def test_mobilenetv2_fit_shows_blocks_1_to_16_legibly(server, page):
    frame = open_graph(page, server, "mobilenetv2")
    texts = fit(frame)
    assert texts and min(size for size, _ in texts) >= 9
    shown = {t for _, t in texts}
    blocks = ["block_%d" % i for i in range(1, 17)]
    assert [b for b in blocks if b not in shown] == []          # every group named, in full
    assert frame.get_attribute(G, "data-name-groups") == "16"
    ids = frame.eval_on_selector_all("[data-testid=graph-group-collapsed]", "gs => gs.map(g => g.dataset.id)")
    assert sorted(ids) == sorted("group:" + b for b in blocks)
    # each group says what it holds; expanding one shows its 9 layers
    assert "9 layers · 5,568 params" in shown
    before = int(frame.get_attribute(G, "data-visible-nodes"))
    relayout(frame, lambda: frame.dblclick('[data-testid=graph-group-collapsed][data-id="group:block_1"]'))
    assert int(frame.get_attribute(G, "data-visible-nodes")) == before - 1 + 9
    # the flat chain as written
    frame.click("[data-testid=graph-view-opts]")
    relayout(frame, lambda: frame.click("[data-testid=graph-opt-name-groups]"))
    assert frame.get_attribute(G, "data-name-groups") == "0"
    assert frame.get_attribute(G, "data-visible-nodes") == "156"


# The screen rectangles of the legend and of every box (layer or collapsed group) in view.
RECTS = """() => {
  const r = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const root = document.querySelector('[data-testid=graph-view]');
  return { legend: r(root.querySelector('[data-testid=graph-legend]')),
           boxes: [...root.querySelectorAll('[data-testid=graph-node] rect.avg-bg, [data-testid=graph-group-collapsed] rect.avg-bg')]
             .map((e) => [e.closest('g[data-id]').dataset.id, ...r(e)]) };
}"""


# Each label drawn over a layer box in view, with the id of that box.
LABELLED = """() => {
  const root = document.querySelector('[data-testid=graph-view]');
  const boxes = [...root.querySelectorAll('[data-testid=graph-node] rect.avg-bg')].map((e) => [e.closest('g[data-id]').dataset.id, e.getBoundingClientRect()]);
  const out = [];
  for (const t of root.querySelectorAll('.avg-lod-labels text')) {
    const r = t.getBoundingClientRect(); const x = r.left + 2; const y = r.top + r.height / 2;
    const hit = boxes.find(([, b]) => b.left <= x && x <= b.right && b.top <= y && y <= b.bottom);
    if (hit) out.push([t.textContent, hit[0]]);
  }
  return out;
}"""


def overlaps(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_mobilenetv2_legend_covers_no_box_and_expanded_boxes_read_apart(server, page):
    frame = open_graph(page, server, "mobilenetv2")
    for expand in (False, True):
        if expand:
            relayout(frame, lambda: frame.click("[data-testid=graph-expand-all]"))
        texts = fit(frame)
        rects = frame.evaluate(RECTS)
        assert len(rects["boxes"]) >= (100 if expand else 16)
        assert rects["legend"][2] > rects["legend"][0] + 50            # the legend is shown
        assert [b[0] for b in rects["boxes"] if overlaps(rects["legend"], b[1:])] == []
    # every layer of a block drawn with its own name: the part after the block's name when the
    # box is too narrow for all of it ("expand_BN" inside block_1), never "block_1_e…" for all
    labels = frame.evaluate(LABELLED)
    assert len(labels) >= 50
    by_block = {}
    for text, box in labels:
        if box.startswith("block_"):
            by_block.setdefault("_".join(box.split("_")[:2]), []).append((text, box))
    assert len(by_block) >= 10
    for block, items in by_block.items():
        texts_of = [t for t, _ in items]
        assert len(set(texts_of)) == len(texts_of), (block, items)      # no two read the same
        assert not [t for t in texts_of if t.startswith(block) and t.endswith("…")], (block, items)
    assert any(t == "depthwise_BN" for t, _ in labels) or any(t.endswith("e_BN") for t, _ in labels), labels


def test_transformer48_fit_folded_legible_and_attention_reads_qkv(server, page):
    frame = open_graph(page, server, "gpt48")
    texts = fit(frame)
    assert texts and min(size for size, _ in texts) >= 9
    shown = [t for _, t in texts]
    assert any(t.startswith("h  ·  ModuleList") for t in shown)          # the top-level group
    assert any(t.startswith("h.0 – h.47 × 48") for t in shown)           # the 48 blocks, folded
    # a group counts "layers" as the header does: not the functional ops inside it
    _, arch = get_json(server + PLUGIN + "/architecture?run=gpt48")
    parent = {n["id"]: n.get("parent") for n in arch["nodes"]}
    has_kids = set(parent.values())

    def inside_h(i):
        while parent.get(i) is not None:
            i = parent[i]
            if i == "h":
                return True
        return False

    leaves = [n for n in arch["nodes"] if n["id"] not in has_kids and inside_h(n["id"])]
    layers = [n for n in leaves if not n.get("is_function")]
    assert 0 < len(layers) < len(leaves)
    joined = " ".join(shown)
    # (labels may be cut short with "…" at this zoom: "h  ·  ModuleList · 432 l…")
    assert "ModuleList · %s l" % format(len(layers), ",") in joined
    assert "ModuleList · %s l" % format(len(leaves), ",") not in joined
    assert frame.get_attribute(G, "data-folds") == "1"
    # the overview: the 48 blocks are one box; one click on it shows a copy inside
    assert frame.locator('[data-testid=graph-group-collapsed][data-id="fold:h.0"]').count() == 1
    relayout(frame, lambda: frame.click('[data-testid=graph-expand][data-toggle="fold:h.0"]'))
    assert frame.locator('[data-testid=graph-group][data-id="fold:h.0"]').count() == 1
    fit(frame)
    # shape-only ops merged: q/k projections feed the attention matmul directly
    es = frame.eval_on_selector_all("[data-testid=graph-edge]", "es => es.map(e => [e.dataset.source, e.dataset.target])")
    assert ["h.0.attn.q_proj", "matmul"] in es and ["h.0.attn.k_proj", "matmul"] in es
    assert ["matmul_1", "h.0.attn.o_proj"] in es
    merged = int(frame.get_attribute(G, "data-merged-ops"))
    assert merged == 48 * 10   # per block: 3 x (view, transpose), k.transpose, transpose, contiguous, view
    frame.click("[data-testid=graph-view-opts]")
    relayout(frame, lambda: frame.click("[data-testid=graph-opt-all-ops]"))
    assert frame.get_attribute(G, "data-merged-ops") == "0"
    es = frame.eval_on_selector_all("[data-testid=graph-edge]", "es => es.map(e => [e.dataset.source, e.dataset.target])")
    assert ["h.0.attn.q_proj", "matmul"] not in es and ["h.0.attn.q_proj", "view"] in es


def test_llama32_opens_on_one_fold_box_with_a_copy_picker_inside(server, page):
    frame = open_graph(page, server, "llama32")
    texts = fit(frame)
    assert min(size for size, _ in texts) >= 9
    # the overview: the 32 decoder layers are ONE box, named by its range, with its totals
    shown = [t for _, t in texts]
    assert [t for t in shown if t.startswith("layers.0 – layers.31 × 32")] == ["layers.0 – layers.31 × 32"], shown
    assert any(t.startswith("× 32 · ") and t.endswith(" params") for t in shown), shown
    assert frame.get_attribute(G, "data-folds") == "1"
    fold = "fold:model.layers.0"
    assert frame.locator('[data-testid=graph-group-collapsed][data-id="%s"]' % fold).count() == 1
    assert not frame.locator("[data-testid=graph-node][data-id^='model.layers.0.']").count()
    # one click looks inside: the first copy, with the picker
    relayout(frame, lambda: frame.click('[data-testid=graph-expand][data-toggle="%s"]' % fold))
    assert frame.locator('[data-testid=graph-group][data-id="%s"]' % fold).count() == 1
    assert frame.locator("[data-testid=graph-group][data-id='model.layers.0']").count() == 1
    groups = int(frame.get_attribute(G, "data-visible-groups"))
    # the picker: the next copy is drawn instead of the first
    relayout(frame, lambda: frame.click('[data-testid=graph-fold-next][data-fold="%s"]' % fold))
    ids = frame.eval_on_selector_all("[data-testid=graph-group]", "gs => gs.map(g => g.dataset.id)")
    assert "model.layers.1" in ids and "model.layers.0" not in ids
    # every copy (collapsed, beside the first one expanded ... as the user left them)
    relayout(frame, lambda: frame.click('[data-testid=graph-fold-all][data-fold="%s"]' % fold))
    assert int(frame.get_attribute(G, "data-visible-nodes")) >= 31
    assert int(frame.get_attribute(G, "data-visible-groups")) >= groups - 2


def test_compare_panes_share_one_scale_and_fit_the_window(server, page):
    frame = open_archviz(page, server)
    frame.click("xpath=//button[normalize-space(.)='Compare']")
    frame.select_option("select[data-picker=runA]", "pair_a")
    frame.select_option("select[data-picker=runB]", "pair_b")
    frame.wait_for_function("document.querySelector('select[data-picker=runB]').value === 'pair_b'")
    frame.click("xpath=//button[normalize-space(.)='Graphs']")
    frame.wait_for_function("document.querySelectorAll('[data-testid=graph-view][data-render-complete=\"1\"]').length === 2")
    frame.wait_for_timeout(200)
    zooms = frame.eval_on_selector_all(G, "vs => vs.map(v => v.dataset.zoom)")
    assert zooms[0] == zooms[1]
    widths = frame.eval_on_selector_all('[data-testid=graph-node][data-id="input"] rect.avg-bg',
                                        "rs => rs.map(r => r.getBoundingClientRect().width)")
    assert len(widths) == 2 and abs(widths[0] - widths[1]) < 0.5
    # one-line toolbars at 1400 px; the pair ends inside the window
    bars = frame.eval_on_selector_all(G + " .avg-toolbar", "bs => bs.map(b => b.getBoundingClientRect().height)")
    assert len(bars) == 2 and max(bars) < 40
    bottom = frame.evaluate("document.querySelector('.av-graph-pair').getBoundingClientRect().bottom")
    assert bottom <= frame.evaluate("window.innerHeight")
    # zooming one pane zooms the other
    a, b = frame.locator(G + " [data-testid=graph-zoom-in]").all()
    a.click()
    frame.wait_for_function("(() => { const z = [...document.querySelectorAll('[data-testid=graph-view]')].map(v => v.dataset.zoom);"
                            " return z[0] === z[1] && z[0] !== %r; })()" % zooms[0])
    # a trace is cleared by "collapse all"
    pane = frame.locator(G).first
    pane.locator('[data-testid=graph-node][data-id="encoder/dense"]').click()
    pane.locator("[data-testid=graph-trace-down]").click()
    assert pane.get_attribute("data-trace") != ""
    pane.locator("[data-testid=graph-collapse-all]").click()
    assert pane.get_attribute("data-trace") == ""


def test_svg_and_png_export_with_control_characters(server, page):
    frame = open_graph(page, server, "ctrl")

    def download(testid):
        frame.click("[data-testid=graph-export]")
        with page.expect_download() as dl:
            frame.click("[data-testid=%s]" % testid)
        return open(dl.value.path(), "rb").read()

    svg = ET.fromstring(download("graph-export-svg"))   # well-formed XML
    texts = [t.text for t in svg.iter(SVGNS + "text")]
    assert "conv\u2401a" in texts                          # the control character made visible
    img = Image.open(io.BytesIO(download("graph-export-png")))
    assert img.format == "PNG" and img.size[0] > 100
    assert frame.inner_text("[data-testid=graph-status]") == ""


def test_gpt2_conv1d_is_dense_linear_in_legend_colours_and_layered_view(server, page):
    """Hugging Face ``Conv1D`` (GPT-2's c_attn / c_proj / c_fc: a linear layer with a transposed
    weight) is a Dense / Linear layer, not a convolution (issue 24 item 5)."""
    _, arch = get_json(server + PLUGIN + "/architecture?run=gpt2tiny")
    conv1d = sorted(n["id"] for n in arch["nodes"] if n["class_name"] == "Conv1D")
    assert len(conv1d) == 8                       # c_attn, c_proj, c_fc, mlp.c_proj in 2 blocks
    linear = [n["id"] for n in arch["nodes"] if n["class_name"] == "Linear"]   # lm_head
    frame = open_graph(page, server, "gpt2tiny")
    relayout(frame, lambda: frame.click("[data-testid=graph-expand-all]"))
    legend = frame.eval_on_selector_all("[data-testid=graph-legend] .avg-li[data-cat]",
                                        "ls => ls.map(l => [l.dataset.cat, l.textContent])")
    cats = dict(legend)
    assert "conv" not in cats, legend
    assert cats["linear"] == "Dense / Linear (%d)" % (len(conv1d) + len(linear)), legend
    # its box is drawn in the Dense / Linear colour (found by search: centred at a readable zoom)
    frame.fill("[data-testid=graph-search]", conv1d[0])
    frame.press("[data-testid=graph-search]", "Enter")
    frame.wait_for_selector('[data-testid=graph-node][data-id="%s"] rect[width="3"]' % conv1d[0])
    fill = frame.get_attribute('[data-testid=graph-node][data-id="%s"] rect[width="3"]' % conv1d[0], "fill")
    swatch = frame.evaluate("getComputedStyle(document.querySelector('[data-testid=graph-legend] "
                            ".avg-li[data-cat=linear] .avg-sw')).backgroundColor")
    assert swatch == "rgb(%d, %d, %d)" % tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5)), (fill, swatch)
    # the layered view, every group open: Conv1D boxes are in the linear category
    frame.click("button[data-view=layered]")
    frame.wait_for_selector("[data-testid=layered-depth]")
    frame.select_option("[data-testid=layered-depth]", "all")
    frame.wait_for_selector('[data-testid=layered-box][data-id="%s"]' % conv1d[0])
    got = frame.eval_on_selector_all("[data-testid=layered-box]", "bs => bs.map(b => [b.dataset.id, b.dataset.category])")
    kinds = {i: c for i, c in got}
    assert {kinds[i] for i in conv1d if i in kinds} == {"linear"} and sum(i in kinds for i in conv1d) == 8, got
    keys = frame.eval_on_selector_all("[data-testid=layered-legend-item]", "ls => ls.map(l => l.dataset.key)")
    assert "conv" not in keys and "linear" in keys
