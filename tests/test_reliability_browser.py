"""The Arch Viz tab in a real Chromium against a real TensorBoard: broken runs get a clear message
while good runs keep working, and hostile strings (run, model and layer names, class names,
config values, activations, dtypes) are shown as text in every view — no dialog fires and no
injected element appears.

Views are driven the way tests/test_browser_{table,filters,compare}.py do (run picker, view
tabs, table rows); the graph view through its data-testid hooks (search box, result list,
detail panel).
"""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.util import tensor_util

from conftest import open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import metadata, schema
from tensorboard_archviz.summary import ArchVizWriter

# hostile strings (directory names cannot hold "/", layer ids can). The run and layer that have
# a filter grid avoid '"': TensorBoard's Rust data server cannot read blobs of such names (see
# test_reliability_events.py::test_blob_of_a_name_with_a_quote).
RUN_XSS = "<img src=x onerror=alert('run')>"
BROKEN_XSS = '<svg onload=alert("broken-run")>'
MODEL_XSS = '<svg onload=alert("model")><b>bold</b>'
LAYER_XSS = "<img src=x onerror=alert('layer')>"
GROUP_XSS = '"><iframe srcdoc="<script>alert(\'group\')</script>"></iframe>'
CHILD_NAME = '<a href="javascript:alert(\'child\')">child</a>'
CHILD_XSS = GROUP_XSS + "/" + CHILD_NAME
CLASS_XSS = '<script>alert("class")</script>Conv2D'
CONFIG_XSS = "<script>alert('config')</script>"
ACT_XSS = '<img src=y onerror=alert("activation")>'
DTYPE_XSS = '<u onmouseover=alert("dtype")>float32</u>'
HOSTILE = [RUN_XSS, MODEL_XSS, LAYER_XSS, GROUP_XSS, CHILD_XSS, CLASS_XSS, CONFIG_XSS, ACT_XSS,
           DTYPE_XSS, BROKEN_XSS]


def node(id, cls, out, t=0, parent=None, act=None, cfg=None, dtype="float32", name=None):
    return schema.Node(id, name if name is not None else id.split("/")[-1], cls, parent=parent,
                       input_shapes=None, output_shapes=[out], dtype=dtype,
                       params={"trainable": t, "non_trainable": 0}, activation=act,
                       config=cfg or {})


def conv_arch(name="convnet"):
    nodes = [node("input_layer", "InputLayer", [None, 28, 28, 1]),
             node("conv2d", "Conv2D", [None, 26, 26, 4], 40, act="relu", cfg={"filters": 4}),
             node("flatten", "Flatten", [None, 2704]),
             node("dense", "Dense", [None, 10], 27050, act="softmax", cfg={"units": 10})]
    return schema.Architecture(
        "keras", "3.15.1", schema.ModelInfo(name, "Sequential", 27090, 27090, 0),
        inputs=["input_layer"], outputs=["dense"], nodes=nodes,
        edges=[schema.Edge(a.id, b.id) for a, b in zip(nodes, nodes[1:])])


def hostile_arch():
    nodes = [
        node("input_layer", "InputLayer", [None, 28, 28, 1]),
        node(LAYER_XSS, CLASS_XSS, [None, 26, 26, 4], 40, act=ACT_XSS, dtype=DTYPE_XSS,
             cfg={"filters": 4, "comment": CONFIG_XSS, CONFIG_XSS: ACT_XSS}),
        node(GROUP_XSS, "Sequential", [None, 10], 27050, name=GROUP_XSS),
        node(CHILD_XSS, "Dense", [None, 10], 27050, parent=GROUP_XSS, act="softmax",
             cfg={"units": 10}, name=CHILD_NAME),
    ]
    return schema.Architecture(
        "keras", "3.15.1<script>alert('version')</script>",
        schema.ModelInfo(MODEL_XSS, CLASS_XSS, 27090, 27090, 0),
        inputs=["input_layer"], outputs=[CHILD_XSS], nodes=nodes,
        edges=[schema.Edge("input_layer", LAYER_XSS, [None, 28, 28, 1]),
               schema.Edge(LAYER_XSS, CHILD_XSS, [None, 2704])])


def grid(n=4, tile=8):
    img = np.full((tile, n * tile), 255, np.uint8)
    for i in range(n):
        img[:, i * tile:(i + 1) * tile] = 40 * (i + 1)
    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, "PNG")
    tiles = [{"index": i, "score": 1.0 + i, "post_score": 1.0 + i, "dead": False, "row": 0,
              "col": i} for i in range(n)]
    return buf.getvalue(), {"tile_size": tile, "margin": 0, "rows": 1, "cols": n, "channels": 1,
                            "value_range": [0, 1], "tiles": tiles}


def raw(tag, md, tensor):
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=md, tensor=tensor)
    return s


def arch_tensor(value):
    return raw(metadata.ARCHITECTURE_TAG, metadata.create_architecture_metadata(),
               tensor_util.make_tensor_proto(value))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_reliability_browser")
    png, tiles = grid()
    with ArchVizWriter(str(logdir / "good")) as w:
        w.add_architecture(conv_arch(), step=0)
        w.add_filter_grid("conv2d", png, tiles, step=0)
    with ArchVizWriter(str(logdir / RUN_XSS)) as w:
        w.add_architecture(hostile_arch(), step=0)
        w.add_filter_grid(LAYER_XSS, png, tiles, step=0)
    # broken runs
    with ArchVizWriter(str(logdir / "bad_json")) as w:
        w.add_summary(arch_tensor(np.array(b'{"schema_version": 1, "nodes": [', dtype=object)), 0)
    future = conv_arch().to_dict()
    future["schema_version"] = 99
    with ArchVizWriter(str(logdir / "future_version")) as w:
        w.add_summary(arch_tensor(np.array(json.dumps(future).encode(), dtype=object)), 0)
    with ArchVizWriter(str(logdir / "wrong_dtype")) as w:
        w.add_summary(arch_tensor(np.array(3.5, np.float32)), 0)
    with ArchVizWriter(str(logdir / "bad_tensor")) as w:
        w.add_summary(raw(metadata.ARCHITECTURE_TAG, metadata.create_architecture_metadata(),
                          tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT,
                                                 tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                                                 tensor_content=b"abc")), 0)
    with ArchVizWriter(str(logdir / BROKEN_XSS)) as w:
        w.add_summary(arch_tensor(np.array(b"{", dtype=object)), 0)
    with ArchVizWriter(str(logdir / "truncated_file")) as w:
        w.add_architecture(conv_arch("truncated"), step=0)
        size = os.path.getsize(w._writer.path)
        w.add_architecture(conv_arch("lost"), step=1)
        path = w._writer.path
    with open(path, "r+b") as f:
        f.truncate(size + (os.path.getsize(path) - size) // 2)
    with ArchVizWriter(str(logdir / "bad_png")) as w:
        w.add_architecture(conv_arch(), step=0)
        w.add_summary(raw(metadata.filters_tag("conv2d"),
                          metadata.create_filters_metadata("conv2d"),
                          tensor_util.make_tensor_proto(np.array(
                              [b"\x89PNG\r\n\x1a\nnot really", json.dumps(tiles).encode()],
                              dtype=object))), 0)
    with run_tensorboard(logdir) as url:
        for run in ("good", RUN_XSS, "bad_json", "future_version", "wrong_dtype", "bad_tensor",
                    BROKEN_XSS, "truncated_file", "bad_png"):
            wait_for_run(url, run)
        wait_for_run(url, "good", filter_layers=1)
        wait_for_run(url, RUN_XSS, filter_layers=1)
        yield url


class Watch(list):
    """Dialogs opened (list items) and Content-Security-Policy violations (``.csp``) in any frame.

    TensorBoard's CSP forbids inline event handlers and javascript: URLs, so an injected
    ``onerror=alert(..)`` would be blocked and logged as a CSP violation rather than open a
    dialog: both are watched, and the DOM is searched for the injected elements themselves."""

    def __init__(self):
        super().__init__()
        self.csp = []


@pytest.fixture
def dialogs(page):
    seen = Watch()
    page.on("dialog", lambda d: (seen.append(d.message), d.dismiss()))
    page.on("console", lambda m: seen.csp.append(m.text)
            if "Content Security Policy" in m.text else None)
    return seen


INJECTED = """() => {
    const bad = [...document.querySelectorAll(
        'img[src="x"], img[src="y"], iframe[srcdoc], svg[onload], [onerror], [onload], ' +
        '[onmouseover], a[href^="javascript:"], u')].concat(
        [...document.querySelectorAll('b')].filter(b => b.textContent === 'bold'));
    const scripts = [...document.querySelectorAll('script')].filter(
        s => (s.textContent || '').includes('alert'));
    return bad.concat(scripts).map(e => e.outerHTML.slice(0, 120));
}"""


def assert_nothing_injected(page, frame, dialogs):
    time.sleep(0.3)   # an injected onerror/onload would have fired by now
    assert dialogs == [] and dialogs.csp == []
    assert frame.evaluate(INJECTED) == []
    assert page.evaluate(INJECTED) == []


def select_run(frame, run):
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", run)


def frame_text(frame):
    return frame.evaluate("document.body.innerText")


# -- broken runs ---------------------------------------------------------------------------------

def test_broken_runs_show_a_clear_message_and_good_runs_still_work(server, page, dialogs):
    frame = open_archviz(page, server)
    cases = [
        ("bad_json", ["bad_json", "step 0", "not valid JSON"]),
        ("future_version", ["future_version", "schema_version: 99 is newer than this",
                            "upgrade tensorboard-archviz"]),
        ("wrong_dtype", ["wrong_dtype", "not a scalar string tensor (dtype float32"]),
        (BROKEN_XSS, [BROKEN_XSS, "not valid JSON"]),
    ]
    for run, needles in cases:
        select_run(frame, run)
        frame.wait_for_function(
            "r => { const e = document.querySelector('.av-msg.error');"
            " return e && e.innerText.includes(r); }", arg=run)
        text = frame.inner_text(".av-msg.error")
        for needle in needles:
            assert needle in text, (run, text)
        assert frame.locator(".av-table tr.row").count() == 0
    # a malformed tensor: the runs listing carries the reason, shown with the run
    select_run(frame, "bad_tensor")
    frame.wait_for_selector(".av-msg.warn")
    assert "Some data of run “bad_tensor” could not be read" in frame.inner_text(".av-msg.warn")
    err = frame.inner_text(".av-msg.error")
    assert "No readable architecture in run “bad_tensor”" in err
    assert "the architecture data of run 'bad_tensor' cannot be decoded: ValueError" in err
    labels = frame.eval_on_selector_all("select[data-picker=run] option",
                                        "os => os.map(o => o.textContent)")
    assert "bad_tensor  ⚠" in labels
    # a file cut in the middle of its second record: the first architecture is shown
    select_run(frame, "truncated_file")
    frame.wait_for_selector('.av-table tr.row[data-id="dense"]')
    assert "truncated" in frame.inner_text(".av-totals")
    assert frame.eval_on_selector_all("select[data-picker=step] option",
                                      "os => os.map(o => o.value)") == ["0"]
    # the good run, after all of that
    select_run(frame, "good")
    frame.wait_for_function("document.querySelector('.av-totals').innerText.includes('convnet')")
    frame.wait_for_selector('.av-table tr.row[data-id="dense"]')
    assert frame.inner_text("[data-total=total]") == "27,090"
    assert frame.locator(".av-table tr.row").count() == 4
    assert_nothing_injected(page, frame, dialogs)


def test_grid_that_is_not_a_png_shows_a_message(server, page, dialogs):
    frame = open_archviz(page, server)
    select_run(frame, "bad_png")
    frame.wait_for_selector(".av-table tr.row")
    frame.click("button[data-view=filters]")
    err = frame.wait_for_selector(".av-filters .av-msg.error")
    text = err.inner_text()
    assert "Could not load the filters of “conv2d”" in text
    # the route's own reason, not a generic "could not be loaded"
    assert "is not a PNG image" in text and "bad_png" in text
    assert frame.locator(".av-tile").count() == 0
    select_run(frame, "good")   # the good run's grid still renders, every tile
    frame.wait_for_function("document.querySelectorAll('.av-tile').length === 4")
    assert "4 filters · 0 dead · step 0" in frame.inner_text(".av-filters")


# -- hostile strings in every view ---------------------------------------------------------------

def open_hostile(page, url):
    frame = open_archviz(page, url)
    select_run(frame, RUN_XSS)
    frame.wait_for_function("document.querySelectorAll('.av-table tr.row').length === 4")
    return frame


def test_table_and_details_show_hostile_strings_as_text(server, page, dialogs):
    frame = open_hostile(page, server)
    options = frame.eval_on_selector_all("select[data-picker=run] option",
                                         "os => os.map(o => o.value + '|' + o.textContent)")
    assert RUN_XSS + "|" + RUN_XSS in options and BROKEN_XSS + "|" + BROKEN_XSS in options
    totals = frame.inner_text(".av-totals")
    assert MODEL_XSS in totals and CLASS_XSS in totals
    rows = frame.evaluate("""() => [...document.querySelectorAll('.av-table tr.row')].map(
        tr => [tr.dataset.id, tr.cells[0].innerText.trim(), tr.cells[1].innerText.trim()])""")
    ids = [r[0] for r in rows]
    assert ids == ["input_layer", LAYER_XSS, GROUP_XSS, CHILD_XSS]
    assert rows[1][1].split("\n") == [LAYER_XSS, "filters"]   # with its one-click grid link
    assert rows[1][2] == CLASS_XSS
    assert GROUP_XSS in rows[2][1]
    text = frame_text(frame)
    assert ACT_XSS in text
    # the details row of the hostile layer: config keys and values, dtype, all literal
    frame.locator(".av-table tr.row").nth(1).click()
    frame.wait_for_selector("tr.details")
    details = frame.inner_text("tr.details")
    assert CONFIG_XSS in details and ACT_XSS in details
    assert_nothing_injected(page, frame, dialogs)


def test_graph_search_and_detail_panel_show_hostile_strings_as_text(server, page, dialogs):
    frame = open_hostile(page, server)
    frame.locator(".av-table tr.row").nth(1).click()   # selected in the table ...
    frame.click("button[data-view=graph]")             # ... and focused in the graph
    frame.wait_for_selector('[data-testid=graph-view][data-render-complete="1"]')
    panel = frame.wait_for_selector(
        "[data-testid=graph-detail]:has([data-testid=graph-detail-title])")
    assert frame.inner_text("[data-testid=graph-detail-title]") == LAYER_XSS
    panel_text = panel.inner_text()
    for s in (CLASS_XSS, CONFIG_XSS, ACT_XSS, DTYPE_XSS):
        assert s in panel_text, s
    assert frame.get_attribute("[data-testid=graph-view]", "data-selected") == LAYER_XSS
    assert_nothing_injected(page, frame, dialogs)
    # search lists matching names as text; picking one opens its details
    frame.fill("[data-testid=graph-search]", "child")
    frame.wait_for_selector("[data-testid=graph-search-results] [data-id]")
    results = frame.eval_on_selector_all("[data-testid=graph-search-results] [data-id]",
                                         "rs => rs.map(r => [r.dataset.id, r.textContent])")
    assert [r[0] for r in results] == [CHILD_XSS]
    assert results[0][1].startswith(CHILD_NAME)
    frame.dispatch_event("[data-testid=graph-search-results] [data-id]", "mousedown")
    frame.wait_for_function(
        "t => { const e = document.querySelector('[data-testid=graph-detail-title]');"
        " return e && e.textContent === t; }", arg=CHILD_NAME)
    assert GROUP_XSS in frame.inner_text("[data-testid=graph-detail]")
    assert_nothing_injected(page, frame, dialogs)


def test_filters_view_shows_hostile_layer_as_text(server, page, dialogs):
    frame = open_hostile(page, server)
    frame.click("button[data-view=filters]")
    frame.wait_for_function("document.querySelectorAll('.av-tile').length === 4")
    layer_options = frame.eval_on_selector_all("select[data-picker=layer] option",
                                               "os => os.map(o => o.textContent)")
    assert layer_options == [LAYER_XSS]
    head = frame.inner_text(".av-filters")
    assert LAYER_XSS in head and "4 filters · 0 dead · step 0" in head
    greys = frame.evaluate("""() => [...document.querySelectorAll('.av-tile canvas')].map(c =>
        c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data[0])""")
    assert greys == [40, 80, 120, 160]
    assert_nothing_injected(page, frame, dialogs)


def test_compare_and_timeline_show_hostile_strings_as_text(server, page, dialogs):
    frame = open_archviz(page, server)
    frame.wait_for_selector("button[data-view=compare]")
    frame.click("button[data-view=compare]")
    frame.wait_for_selector("select[data-picker=runA]")
    for side, run in (("A", "good"), ("B", RUN_XSS)):
        frame.select_option("select[data-picker=run%s]" % side, run)
        frame.wait_for_selector("select[data-picker=step%s]" % side)
        frame.select_option("select[data-picker=step%s]" % side, "0")
    frame.wait_for_function(
        "r => document.querySelector('select[data-picker=runB]').value === r"
        " && document.querySelectorAll('.av-diff-table tr.row').length > 0", arg=RUN_XSS)
    rows = frame.evaluate("""() => [...document.querySelectorAll('.av-diff-table tr.row')].map(
        tr => [tr.dataset.id, tr.dataset.change, tr.innerText])""")
    by_id = {r[0]: r for r in rows}
    assert by_id[GROUP_XSS][1] == "added" and GROUP_XSS in by_id[GROUP_XSS][2]
    assert any(CLASS_XSS in r[2] for r in rows)
    assert frame.inner_text("[data-role=summary]")
    assert_nothing_injected(page, frame, dialogs)
    frame.click("button[data-mode=graph]")     # the side-by-side graphs
    frame.wait_for_selector(".av-graph-pair")
    labels = frame.eval_on_selector_all(".av-graph-pair .side-label",
                                        "ls => ls.map(l => l.textContent)")
    assert labels == ["A: good · step 0", "B: %s · step 0" % RUN_XSS]
    assert_nothing_injected(page, frame, dialogs)
    frame.click("button[data-view=timeline]")
    select_run(frame, RUN_XSS)
    frame.wait_for_selector("ol.av-timeline li")
    assert "first architecture written" in frame.inner_text("ol.av-timeline")
    assert_nothing_injected(page, frame, dialogs)


def test_the_checks_would_catch_an_injection(server, page, dialogs):
    """Control: the same payload parsed as HTML is found in the DOM, and its handler is caught
    as a CSP violation (TensorBoard's CSP blocks it, so no dialog opens)."""
    frame = open_hostile(page, server)
    assert_nothing_injected(page, frame, dialogs)
    frame.evaluate("h => document.body.insertAdjacentHTML('beforeend', h)", LAYER_XSS)
    frame.wait_for_function("() => document.querySelector('img[src=x]') !== null")
    deadline = time.time() + 10
    while not dialogs.csp and time.time() < deadline:
        time.sleep(0.1)
    assert len(dialogs.csp) == 1 and "inline event handler" in dialogs.csp[0]
    assert dialogs == []
    assert frame.evaluate(INJECTED) == ['<img src="x" onerror="alert(\'layer\')">']


# -- a long timeline (issue 21 item 7): drawn in slices, an unreadable step said in words -------

LONG_STEPS = 3000
LONGTASKS = """() => { window.__longest = 0; window.__tasks = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) { window.__tasks.push([e.startTime, e.duration]);
    window.__longest = Math.max(window.__longest, e.duration); } }).observe({type: 'longtask'}); return performance.now(); }"""


def test_long_timeline_is_drawn_in_slices_and_says_what_is_unreadable(tmp_path, page):
    logdir = tmp_path / "logs"
    with ArchVizWriter(str(logdir / "long")) as w:
        for step in range(LONG_STEPS):
            if step == 1500:      # one step whose architecture cannot be read
                w.add_summary(arch_tensor(np.array(b'{"schema_version": 2, "nodes": [', dtype=object)), step)
                continue
            w.add_architecture(conv_arch("long_%d" % (step // 1000)), step=step)
    with run_tensorboard(logdir, extra_args=["--samples_per_plugin=archviz=%d" % (LONG_STEPS + 10)]) as url:
        wait_for_run(url, "long", steps=LONG_STEPS - 1, timeout=120)
        frame = open_archviz(page, url)
        frame.wait_for_selector(".av-totals .model-name")
        t0 = frame.evaluate(LONGTASKS)
        frame.click("button[data-view=timeline]")
        frame.wait_for_selector("ol.av-timeline[data-complete='1']", timeout=120000)
        items = frame.eval_on_selector_all("ol.av-timeline > li", "ls => ls.map(l => [l.dataset.step, l.className])")
        assert len(items) == LONG_STEPS
        assert [s for s, _ in items[:3]] == ["0", "1", "2"] and items[-1][0] == str(LONG_STEPS - 1)
        # the unreadable step is one entry, in words, and the next one compares with 1499
        bad = frame.locator("ol.av-timeline > li[data-step='1500']")
        assert "unreadable" in bad.get_attribute("class")
        assert bad.inner_text().strip().startswith("step 1500")
        assert len(bad.inner_text()) > len("step 1500") + 10
        nxt = frame.inner_text("ol.av-timeline > li[data-step='1501'] [data-action=open-diff]")
        assert nxt == "Compare step 1499 → 1501"
        # a renamed model is the same architecture: every readable entry but the first says "no change"
        assert sum("nochange" in c for _, c in items) == LONG_STEPS - 2
        assert frame.evaluate("window.__longest") <= 200, (t0, frame.evaluate("window.__tasks"))
