"""Browser tests of the dashboard for a newcomer (#16) and the compute/memory figures (#11 UI),
against a real TensorBoard and Chromium: header totals (MACs per example, "at least", the old
convention, memory) and one layer count shared with the graph; "Connected to" naming the visible
group when groups are collapsed; one spelling of names (ids, with dots); toggleable columns
remembered across reloads; CSV and Markdown export; deep links that name what is missing; steps
as exact strings (-1, 2^60 + 1) end to end.

Data: a real PyTorch residual network (extracted in a subprocess), a schema 2 document with a
layer whose MACs are unknown, a schema 1 document stored raw (migrated on read), a run written at
steps -1, 3 and 2^60 + 1, and a run with a filter grid.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from browser_helpers import (INTERACTIVE, grid_png, open_entry, run_axe, tab_through,
                             torch_resnet_doc, write_raw_architecture)
from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import schema
from tensorboard_archviz.summary import ArchVizWriter

BIG_STEP = 2 ** 60 + 1
REASON = "custom CUDA kernel: MACs not known"


def node(id, cls, parent=None, out=None, t=0, macs=None, **extra):
    n = {"id": id, "name": id.split("/")[-1], "class_name": cls, "parent": parent,
         "input_shapes": [[None, 32]], "output_shapes": [out or [None, 32]], "dtype": "float32",
         "params": {"trainable": t, "non_trainable": 0}, "activation": None, "config": {},
         "macs": macs}
    n.update(extra)
    return n


def partial_doc():
    """schema 2: dense (2,048 MACs), a custom layer whose MACs are unknown, dense_1 (4,096)."""
    mem = lambda p, o: {"params_bytes": p, "output_bytes": o}  # noqa: E731
    nodes = [node("input", "InputLayer", memory=mem(0, 128)),
             node("dense", "Dense", t=2112, macs=2048, memory=mem(8448, 256), out=[None, 64]),
             node("custom", "FancyOp", macs=None, macs_reason=REASON, memory=mem(0, 256), out=[None, 64]),
             node("dense_1", "Dense", t=650, macs=640, memory=mem(2600, 40), out=[None, 10])]
    return {"schema_version": 2, "framework": "keras", "framework_version": "3.15.1",
            "model": {"name": "partial", "class_name": "Functional", "total_params": 2762,
                      "trainable_params": 2762, "non_trainable_params": 0, "macs": 2688,
                      "macs_complete": False, "macs_convention": schema.MACS_CONVENTION, "batch_size": 1,
                      "memory": {"params_bytes": 11048, "buffers_bytes": 0, "activations_bytes": 552}},
            "inputs": ["input"], "outputs": ["dense_1"], "nodes": nodes,
            "edges": [{"source": a, "target": b, "shape": None}
                      for a, b in [("input", "dense"), ("dense", "custom"), ("custom", "dense_1")]],
            "extraction": {"method": "test"}}


OWN_REASON = ("Net.call() could not be traced: <b>the operations</b> it runs outside its layers "
              "are not counted")


def untraced_doc():
    """Every node's figure known, the model's own work (outside every node) unknown."""
    d = partial_doc()
    d["nodes"][2]["macs"] = 0
    d["nodes"][2].pop("macs_reason")
    d["model"].update(name="untraced", self_macs=None, self_macs_reason=OWN_REASON)
    return d


def v1_doc():
    d = partial_doc()
    d["schema_version"] = 1
    for k in ("macs_complete", "macs_convention", "batch_size", "memory"):
        d["model"].pop(k)
    d["model"]["macs"] = 5376
    for n in d["nodes"]:
        n.pop("memory", None)
        n.pop("macs_reason", None)
    d["extraction"] = "test"
    return d


@pytest.fixture(scope="module")
def resnet():
    return torch_resnet_doc()


@pytest.fixture(scope="module")
def server(tmp_path_factory, resnet):
    logdir = tmp_path_factory.mktemp("dashboard")
    with ArchVizWriter(str(logdir / "resnet")) as w:
        w.add_architecture(resnet, step=0)
    with ArchVizWriter(str(logdir / "partial")) as w:
        w.add_architecture(partial_doc(), step=0)
    with ArchVizWriter(str(logdir / "untraced")) as w:
        w.add_architecture(untraced_doc(), step=0)
    write_raw_architecture(str(logdir / "v1"), v1_doc())
    with ArchVizWriter(str(logdir / "steps")) as w:
        for i, s in enumerate((-1, 3, BIG_STEP)):
            d = partial_doc()
            d["model"]["name"] = "steps_%d" % i
            w.add_architecture(d, step=s)
    png, tiles = grid_png()
    with ArchVizWriter(str(logdir / "grids")) as w:
        d = partial_doc()
        d["nodes"][1]["class_name"] = "Conv2D"
        w.add_architecture(d, step=0)
        w.add_filter_grid("dense", png, tiles, step=0)
    with run_tensorboard(logdir) as url:
        for run in ("resnet", "partial", "v1", "grids", "untraced"):
            wait_for_run(url, run)
        wait_for_run(url, "steps", steps=3)
        yield url


def open_run(page, url, run, view=None):
    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", run)
    frame.wait_for_selector(".av-table tr.row")
    frame.wait_for_function("r => document.querySelector('.av-totals .model-name') !== null", arg=run)
    return frame


def col_texts(frame, col):
    return frame.evaluate("""c => Object.fromEntries([...document.querySelectorAll('.av-table tr.row')].map(
        tr => [tr.dataset.id, tr.querySelector(`td[data-col="${c}"]`)?.innerText.trim()]))""", col)


def layer_count(doc):
    ids = {n["id"] for n in doc["nodes"]}
    parents = {n["parent"] for n in doc["nodes"] if n.get("parent") in ids}
    kinds = {"layers": 0, "ops": 0}
    for n in doc["nodes"]:
        if n["id"] in parents or n["class_name"] in ("Input", "InputLayer"):
            continue
        kinds["ops" if n.get("is_function") else "layers"] += 1
    return kinds


def test_header_totals_and_one_layer_count(server, page, resnet):
    frame = open_run(page, server, "resnet")
    m = resnet["model"]
    assert frame.inner_text("[data-total=macs]") == "{:,}".format(m["macs"])
    assert "MACs per example" in frame.inner_text(".av-totals")
    mem = frame.inner_text("[data-total=memory]")
    assert mem.startswith("params 25.8 kB") and "activations 176 kB per example" in mem
    k = layer_count(resnet)
    assert (k["layers"], k["ops"]) == (18, 11)
    assert frame.inner_text("[data-total=layers]") == "18 layers · 11 functional ops"
    frame.click("button[data-view=graph]")
    info = frame.wait_for_selector("[data-testid=graph-info]").inner_text()
    assert " 18 layers " in info


def test_unknown_macs_show_the_reason_and_totals_say_at_least(server, page):
    frame = open_run(page, server, "partial")
    assert frame.inner_text("[data-total=macs]") == "at least 2,688"
    macs = col_texts(frame, "macs")
    assert macs == {"input": "—", "dense": "2,048", "custom": "—", "dense_1": "640"}
    assert frame.get_attribute('tr.row[data-id="custom"] td[data-col=macs]', "title") == REASON
    assert col_texts(frame, "param_bytes")["dense"] == "8.45 kB"
    assert frame.get_attribute('tr.row[data-id="dense"] td[data-col=param_bytes]', "title") == "8,448 bytes"
    frame.click('tr.row[data-id="custom"]')
    assert "unknown: " + REASON in frame.inner_text("tr.details")


def test_unknown_own_work_of_the_model_says_why_in_the_header(server, page):
    frame = open_run(page, server, "untraced")
    assert frame.inner_text("[data-total=macs]") == "at least 2,688"
    title = frame.get_attribute(".av-totals .stat:has([data-total=macs])", "title")
    assert title.startswith(OWN_REASON + "; this is a lower bound. 2,688 multiply-accumulates")
    assert frame.locator(".av-totals b b").count() == 0  # the reason is text, never markup
    assert "—" not in col_texts(frame, "macs")["custom"]


def test_schema_1_macs_are_marked_old_convention(server, page):
    frame = open_run(page, server, "v1")
    header = frame.inner_text(".av-totals")
    assert "MACs (old convention) 5,376" in header
    assert frame.get_attribute("[data-total=macs]", "title") is None
    assert "old convention" in frame.get_attribute(".av-totals .stat:has([data-total=macs])", "title")
    assert frame.inner_text("th[data-col=macs]").startswith("MACs (old convention)")


def test_collapsed_group_is_named_in_connected_to(server, page):
    frame = open_run(page, server, "resnet")
    conn = col_texts(frame, "conn")
    assert conn["layer2"] == "relu_4" and conn["fc"] == "flatten"
    frame.click('tr.row[data-id="layer1"] button.twisty')
    frame.wait_for_selector('tr.row[data-id="layer1.0"]', state="detached")
    conn = col_texts(frame, "conn")
    assert conn["layer2"] == "layer1"           # relu_4 is hidden inside the collapsed layer1
    assert conn["layer1"] == "relu"              # feeding layer1 from outside: still visible
    frame.click('tr.row[data-id="layer2"] button.twisty')
    assert col_texts(frame, "conn")["pool"] == "layer2"


def test_one_spelling_with_dots(server, page):
    frame = open_run(page, server, "resnet")
    frame.click("th[data-col=name]")             # sorted: flat list with full names
    names = col_texts(frame, "name")
    assert names["layer1.0.conv1"] == "layer1.0.conv1"
    assert names["layer2.0.downsample.0"].startswith("layer2.0.downsample.0")
    assert not any("/" in v for v in names.values())
    frame.click('tr.row[data-id="layer1.0.conv1"]')
    assert "layer1.0.conv1" in frame.inner_text("tr.details")


def test_optional_columns_are_remembered(server, page):
    frame = open_run(page, server, "resnet")
    assert frame.locator("th[data-col=kernel]").count() == 0
    frame.click(".av-col-menu summary")
    for key in ("in_shape", "kernel", "stride", "padding"):
        frame.check(f"input[data-col-toggle={key}]")
    assert col_texts(frame, "kernel")["layer2.0.conv1"] == "3×3"
    assert col_texts(frame, "stride")["layer2.0.conv1"] == "2×2"
    assert col_texts(frame, "padding")["layer2.0.conv1"] == "1, 1"
    assert col_texts(frame, "kernel")["layer2.0.downsample.0"] == "1×1"
    assert col_texts(frame, "in_shape")["layer2.0.conv1"] == "[2, 8, 16, 16]"
    frame.evaluate("location.reload()")
    frame = open_archviz(page, server)
    frame.wait_for_selector(".av-table tr.row")
    cols = frame.eval_on_selector_all(".av-table th", "ths => ths.map(t => t.dataset.col)")
    assert cols[:7] == ["name", "type", "in_shape", "shape", "kernel", "stride", "padding"]
    frame.click(".av-col-menu summary")
    for key in ("in_shape", "kernel", "stride", "padding"):
        frame.uncheck(f"input[data-col-toggle={key}]")
    assert frame.locator("th[data-col=kernel]").count() == 0


def test_csv_and_markdown_export(server, page, resnet):
    frame = open_run(page, server, "resnet")
    with page.expect_download() as dl:
        frame.click("[data-action=export-csv]")
    assert dl.value.suggested_filename == "ResNetTiny_layers.csv"
    rows = list(csv.reader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    labels = frame.eval_on_selector_all(".av-table th", "ths => ths.map(t => t.innerText.trim())")
    assert rows[0] == labels
    body = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert len(body) == len(resnet["nodes"])
    assert body["layer1.0.conv1"]["Params"] == "576"          # raw numbers for spreadsheets
    assert body["layer1.0.conv1"]["MACs"] == "147456"
    assert body["layer1"]["Params"] == str(sum(
        sum(n["params"].values()) for n in resnet["nodes"] if n["id"].startswith("layer1.") and
        not any(c["parent"] == n["id"] for c in resnet["nodes"])))
    with page.expect_download() as dl:
        frame.click("[data-action=export-md]")
    md = open(dl.value.path(), encoding="utf-8").read().splitlines()
    assert md[0] == "| " + " | ".join(labels) + " |"
    assert md[1].startswith("| --- | --- |") and " ---: " in md[1]
    assert len(md) == 2 + len(resnet["nodes"])
    assert any(line.startswith("| layer1.0.conv1 | Conv2d | [2, 8, 16, 16] | 576 |") for line in md)


def test_compare_shows_per_example_macs(server, page, resnet):
    frame = open_entry(page, server, "view=compare&ra=resnet&sa=0&rb=partial&sb=0")
    frame.wait_for_selector(".av-diff-table tr.row")
    assert frame.inner_text("[data-total=macs-delta]") == "MACs per example {:,} → at least 2,688".format(
        resnet["model"]["macs"])
    heads = frame.eval_on_selector_all(".av-diff-table th", "ths => ths.map(t => t.innerText.trim())")
    assert heads[7] == "MACs"
    cells = frame.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.av-diff-table tr.row')]
        .map(tr => [tr.dataset.id, [tr.dataset.change, tr.cells[0].innerText.trim(), tr.cells[7].innerText.trim()]]))""")
    assert cells["custom"] == ["added", "added", "—"]            # a word, not only a colour
    assert cells["layer1.0.conv1"] == ["removed", "removed", "147,456"]
    frame = open_entry(page, server, "view=compare&ra=resnet&sa=0&rb=v1&sb=0")
    frame.wait_for_selector(".av-diff-table tr.row")
    assert frame.inner_text("[data-total=macs-delta]") == "MACs not comparable (old convention on one side)"
    assert frame.eval_on_selector_all(".av-diff-table th", "ths => ths.map(t => t.innerText.trim())")[7] \
        == "MACs (old convention)"


@pytest.mark.parametrize("link, words", [
    ("view=table&run=nope", ["Run “nope” was not found", "“resnet”", "“partial”"]),
    ("view=table&run=resnet&step=7", ["no architecture at step 7", "Steps: 0"]),
    ("view=table&run=resnet&sel=layer9.conv1", ["Layer “layer9.conv1” was not found", "“layer1.0.conv1”"]),
    ("view=compare&ra=resnet&sa=0&rb=ghost&sb=0", ["Compare B: run “ghost” was not found"]),
    ("view=compare&ra=resnet&sa=4&rb=resnet&sb=0", ["Compare A: run “resnet” has no architecture at step 4", "Steps: 0"]),
    ("view=filters&run=grids&layer=nolayer", ["no filter grids for layer “nolayer”", "“dense”"]),
])
def test_bad_deep_link_names_what_is_missing(server, page, link, words):
    frame = open_entry(page, server, link)
    msg = frame.wait_for_selector("[data-msg=link]").inner_text()
    for w in words:
        assert w in msg, msg


def test_steps_are_exact_strings_end_to_end(server, page):
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200 and runs["steps"]["step_strings"] == ["-1", "3", str(BIG_STEP)]
    frame = open_run(page, server, "steps")
    opts = frame.eval_on_selector_all("select[data-picker=step] option", "os => os.map(o => o.value)")
    assert opts == ["-1", "3", str(BIG_STEP)]
    assert frame.eval_on_selector("select[data-picker=step]", "s => s.value") == str(BIG_STEP)
    assert frame.inner_text(".av-totals .model-name").startswith("steps_2")
    frame.select_option("select[data-picker=step]", "-1")
    frame.wait_for_function("document.querySelector('.av-totals .model-name')?.innerText.startsWith('steps_0')")
    assert "step=-1" in frame.evaluate("location.hash")
    frame.click("button[data-view=timeline]")
    frame.wait_for_selector("ol.av-timeline li[data-step='%d']" % BIG_STEP)
    steps = frame.eval_on_selector_all("ol.av-timeline > li", "ls => ls.map(l => l.dataset.step)")
    assert steps == ["-1", "3", str(BIG_STEP)]
    frame.click("ol.av-timeline li[data-step='%d'] [data-action=open-diff]" % BIG_STEP)
    frame.wait_for_selector(".av-diff-table tr.row")
    sel = frame.evaluate("['stepA', 'stepB'].map(k => document.querySelector(`select[data-picker=${k}]`).value)")
    assert sel == ["3", str(BIG_STEP)]
    status, diff = get_json(server + PLUGIN + "/diff?run_a=steps&step_a=3&run_b=steps&step_b=%d" % BIG_STEP)
    assert status == 200 and diff["b"]["step_string"] == str(BIG_STEP)
    assert frame.inner_text("[data-role=summary]") == diff["summary"]


# -- keyboard and accessibility -------------------------------------------------------------------

VIEWS = {
    "table": "view=table&run=resnet",
    "graph": "view=graph&run=resnet",
    "layered": "view=layered&run=resnet",
    "filters": "view=filters&run=grids&layer=dense",
    "compare": "view=compare&ra=steps&sa=3&rb=partial&sb=0",
    "timeline": "view=timeline&run=steps",
}
READY = {
    "table": ".av-table tr.row", "graph": "[data-testid=graph-info]", "layered": "[data-testid=layered-mode]",
    "filters": ".av-tile",
    "compare": ".av-diff-table tr.row", "timeline": "[data-action=open-diff]",
}


def open_view(page, url, view, scheme="light"):
    page.emulate_media(color_scheme=scheme)
    frame = open_entry(page, url, VIEWS[view])
    frame.wait_for_selector(READY[view])
    page.wait_for_timeout(300)
    return frame


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("view", list(VIEWS))
def test_axe_finds_no_serious_violations(server, page, view, scheme):
    frame = open_view(page, server, view, scheme)
    assert frame.evaluate("document.documentElement.dataset.theme") == scheme
    violations = run_axe(frame)
    assert violations == [], json.dumps(violations, indent=1, ensure_ascii=False)


def test_graph_legend_items_are_buttons_reached_by_keyboard(server, page):
    frame = open_view(page, server, "graph")
    items = frame.eval_on_selector_all("[data-testid=graph-legend] .avg-li[data-cat]",
                                       "els => els.map(e => [e.tagName, e.type, e.getAttribute('aria-pressed')])")
    assert len(items) >= 2 and all(i == ["BUTTON", "button", "false"] for i in items), items
    seen = tab_through(page, frame, frame.evaluate(INTERACTIVE) + 3)
    legend = [s for s in seen if s["tag"] == "button" and s["text"].endswith(")") and "(" in s["text"]]
    assert len(legend) == len(items), seen
    assert all(s["ring"] for s in legend), legend
    frame.focus("[data-testid=graph-legend] .avg-li[data-cat]")
    page.keyboard.press("Enter")
    first = "[data-testid=graph-legend] .avg-li[data-cat]"
    assert frame.get_attribute(first, "aria-pressed") == "true"
    assert frame.evaluate("document.activeElement.matches('[data-testid=graph-legend] .avg-li[aria-pressed=true]')")


@pytest.mark.parametrize("view", ["table", "filters", "compare", "timeline"])
def test_every_control_is_reachable_by_keyboard_with_a_focus_ring(server, page, view):
    frame = open_view(page, server, view)
    n = frame.evaluate(INTERACTIVE)
    assert n >= 5
    seen = tab_through(page, frame, n + 3)
    keys = {(s["tag"], s["text"], s["key"]) for s in seen}
    assert len(keys) >= n, (n, seen)
    assert [s for s in seen if not s["ring"]] == []
