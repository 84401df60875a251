"""Browser tests of the Compare view and the Timeline, against a real TensorBoard.

Runs written with ArchVizWriter from hand-built architectures:
- ``small``: Flatten -> Dense(16) -> Dense(10)            (12,730 params)
- ``big``:   Flatten -> Dense(32) -> Dropout -> Dense(10) (25,450 params)
- ``renamed``: ``small`` with Keras ids from another session (dense_7, dense_8)
- ``finetune``: a base model frozen at step 0 and unfrozen at step 2
"""

from __future__ import annotations

import os
import urllib.parse

import pytest

from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import schema
from tensorboard_archviz.summary import ArchVizWriter


def node(id, cls, out, t=0, nt=0, parent=None, cfg=None, inp=None, act=None):
    return schema.Node(id, id.split("/")[-1], cls, parent=parent, output_shapes=[out],
                       input_shapes=inp, dtype="float32",
                       params={"trainable": t, "non_trainable": nt}, activation=act,
                       config=cfg or {})


def mlp(units, dropout=False, ids=("dense", "dense_1")):
    nodes = [node("flatten", "Flatten", [None, 784]),
             node(ids[0], "Dense", [None, units], t=784 * units + units, cfg={"units": units},
                  act="relu"),
             node(ids[1], "Dense", [None, 10], t=units * 10 + 10, cfg={"units": 10},
                  act="softmax", inp=[[None, units]])]
    if dropout:
        nodes.insert(2, node("dropout", "Dropout", [None, units], cfg={"rate": 0.2}))
    total = sum(n.total_params for n in nodes)
    return schema.Architecture(
        "keras", "3.15.1", schema.ModelInfo("mlp", "Sequential", total, total, 0),
        inputs=["flatten"], outputs=[ids[1]], nodes=nodes,
        edges=[schema.Edge(a.id, b.id) for a, b in zip(nodes, nodes[1:])])


def finetune(frozen):
    t = 0 if frozen else 448
    nodes = [node("input_layer", "InputLayer", [None, 32, 32, 3]),
             node("base", "Functional", [None, 30, 30, 16], t=t, nt=448 - t),
             node("base/conv", "Conv2D", [None, 30, 30, 16], t=t, nt=448 - t, parent="base",
                  cfg={"filters": 16}),
             node("pool", "GlobalAveragePooling2D", [None, 16]),
             node("head", "Dense", [None, 10], t=170, cfg={"units": 10})]
    return schema.Architecture(
        "keras", "3.15.1", schema.ModelInfo("finetune", "Functional", 618, t + 170, 448 - t),
        inputs=["input_layer"], outputs=["head"], nodes=nodes,
        edges=[schema.Edge("input_layer", "base/conv"), schema.Edge("base/conv", "pool"),
               schema.Edge("pool", "head")])


def write_broken_then_good(logdir):
    """Step 0: an architecture JSON without its model (the routes answer 422); step 1: valid."""
    import numpy as np
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    from tensorboard_archviz import metadata

    bad = summary_pb2.Summary()
    bad.value.add(tag=metadata.ARCHITECTURE_TAG, metadata=metadata.create_architecture_metadata(),
                  tensor=tensor_util.make_tensor_proto(
                      np.array(b'{"schema_version": 1, "framework": "keras"}', dtype=object)))
    with ArchVizWriter(logdir) as w:
        w.add_summary(bad, step=0)
        w.add_architecture(mlp(16), step=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_compare")
    for run, arch in (("small", mlp(16)), ("big", mlp(32, dropout=True)),
                      ("renamed", mlp(16, ids=("dense_7", "dense_8")))):
        with ArchVizWriter(str(logdir / run)) as w:
            w.add_architecture(arch, step=0)
    with ArchVizWriter(str(logdir / "finetune")) as w:
        w.add_architecture(finetune(True), step=0)
        w.add_architecture(finetune(False), step=2)
    write_broken_then_good(str(logdir / "broken"))
    with run_tensorboard(logdir) as url:
        wait_for_run(url, "broken", steps=2)
        for run in ("small", "big", "renamed"):
            wait_for_run(url, run)
        wait_for_run(url, "finetune", steps=2)
        yield url


def open_compare(page, url, a, b):
    frame = open_archviz(page, url)
    frame.wait_for_selector("button[data-view=compare]")
    frame.click("button[data-view=compare]")
    frame.wait_for_selector("select[data-picker=runA]")
    for side, (run, step) in (("A", a), ("B", b)):
        frame.select_option(f"select[data-picker=run{side}]", run)
        frame.wait_for_selector(f"select[data-picker=step{side}]")
        frame.select_option(f"select[data-picker=step{side}]", str(step))
    frame.wait_for_function(
        "(() => { const s = document.querySelector('[data-role=summary]');"
        " const a = document.querySelector('select[data-picker=runA]');"
        " const b = document.querySelector('select[data-picker=runB]');"
        " return s && a && b && a.value === %r && b.value === %r; })()" % (a[0], b[0]))
    frame.wait_for_selector(".av-diff-table tr.row")
    return frame


# the diff table's columns: mark, layer, type, output shape, params, trainable, non-trainable,
# MACs (per example), what changed
WHAT = 8


def diff_rows(frame):
    return frame.evaluate("""() => [...document.querySelectorAll('.av-diff-table tr.row')].map(
        tr => [tr.dataset.id, tr.dataset.change, [...tr.cells].map(td => td.innerText.trim())])""")


def route_summary(url, ra, sa, rb, sb):
    q = urllib.parse.urlencode({"run_a": ra, "step_a": sa, "run_b": rb, "step_b": sb})
    status, body = get_json(url + PLUGIN + "/diff?" + q)
    assert status == 200, body
    return body["summary"]


def test_compare_marks_summary_and_navigation(server, page, tmp_path):
    frame = open_compare(page, server, ("small", 0), ("big", 0))
    summary = frame.inner_text("[data-role=summary]")
    assert summary == "+1 layer, 2 changed, params +12,720 (+99.9 %)"
    assert summary == route_summary(server, "small", 0, "big", 0)
    got = diff_rows(frame)
    assert [(i, c) for i, c, _ in got] == [
        ("flatten", "same"), ("dense", "changed"), ("dropout", "added"), ("dense_1", "changed")]
    cells = {i: c for i, _, c in got}
    assert cells["dropout"][0] == "added"
    assert cells["dense"][0] == "changed"
    assert "config.units: 16 → 32" in cells["dense"][WHAT]
    assert "params.trainable: 12,560 → 25,120" in cells["dense"][WHAT]
    assert cells["dense"][4].split("\n") == ["12,560", "25,120", "+12,560"]
    # colour coding differs per kind, and the legend names every kind
    colours = frame.evaluate("""() => Object.fromEntries(['added', 'changed', 'same'].map(k =>
        [k, getComputedStyle(document.querySelector(`tr.row[data-change=${k}]`)).backgroundColor]))""")
    assert len(set(colours.values())) == 3
    legend = frame.inner_text(".av-legend")
    for word in ("added", "removed", "changed", "renamed"):
        assert word in legend
    totals = frame.inner_text(".av-totals-delta")
    assert "Total params 12,730 → 25,450 (+12,720)" in totals
    # jump from change to change
    assert frame.inner_text("[data-role=position]") == "3 changes"
    frame.click("[data-action=next-change]")
    assert frame.inner_text("[data-role=position]") == "change 1 of 3"
    assert frame.get_attribute("tr.row.current", "data-id") == "dense"
    frame.click("[data-action=next-change]")
    assert frame.get_attribute("tr.row.current", "data-id") == "dropout"
    frame.click("[data-action=prev-change]")
    assert frame.get_attribute("tr.row.current", "data-id") == "dense"
    frame.check("[data-action=only-changes]")
    assert [i for i, _, _ in diff_rows(frame)] == ["dense", "dropout", "dense_1"]
    shots = os.environ.get("ARCHVIZ_SCREENSHOTS") or str(tmp_path)
    page.screenshot(path=os.path.join(shots, "compare.png"))
    # the graph side mounts one graph view per side
    frame.click("button[data-mode=graph]")
    frame.wait_for_selector(".av-graph-pair")
    labels = frame.eval_on_selector_all(".av-graph-pair .side-label", "ls => ls.map(l => l.textContent)")
    assert labels == ["A: small · step 0", "B: big · step 0"]
    frame.click("button[data-mode=table]")
    frame.wait_for_selector(".av-diff-table")


def test_swap_shows_removed(server, page):
    frame = open_compare(page, server, ("small", 0), ("big", 0))
    frame.click("text=Swap")
    frame.wait_for_function("document.querySelector('select[data-picker=runA]').value === 'big'")
    frame.wait_for_selector('tr.row[data-change=removed][data-id="dropout"]')
    assert frame.inner_text("[data-role=summary]") == "−1 layer, 2 changed, params −12,720 (−50.0 %)"
    got = diff_rows(frame)
    assert [(i, c) for i, c, _ in got] == [
        ("flatten", "same"), ("dense", "changed"), ("dropout", "removed"), ("dense_1", "changed")]


def test_renamed_layers_are_marked(server, page):
    frame = open_compare(page, server, ("small", 0), ("renamed", 0))
    assert frame.inner_text("[data-role=summary]") == route_summary(server, "small", 0, "renamed", 0)
    got = {i: (c, cells) for i, c, cells in diff_rows(frame)}
    assert got["dense_7"][0] == "renamed"
    assert got["dense_7"][1][1] == "dense\n→ dense_7" or "dense → dense_7" in got["dense_7"][1][1]
    assert "id dense → dense_7" in got["dense_7"][1][WHAT]
    assert frame.locator("tr.row[data-change=added]").count() == 0
    assert frame.locator("tr.row[data-change=removed]").count() == 0


def test_timeline_and_jump_to_diff(server, page):
    frame = open_archviz(page, server)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", "finetune")
    frame.click("button[data-view=timeline]")
    frame.wait_for_selector("[data-action=open-diff]")
    entries = frame.eval_on_selector_all("ol.av-timeline > li", "ls => ls.map(l => l.innerText)")
    assert len(entries) == 2
    assert entries[0].startswith("step 0") and "first architecture written" in entries[0]
    assert "618 params (170 trainable)" in entries[0]
    assert entries[1].startswith("step 2")
    assert "base unfrozen" in entries[1]
    assert "trainable params 170 → 618" in entries[1]
    assert "base: params.trainable 0 → 448" in entries[1]
    frame.click("[data-action=open-diff]")
    frame.wait_for_selector(".av-diff-table tr.row")
    assert frame.get_attribute("button[data-view=compare]", "aria-selected") == "true"
    sel = frame.evaluate("""() => ['runA', 'stepA', 'runB', 'stepB'].map(
        k => document.querySelector(`select[data-picker=${k}]`).value)""")
    assert sel == ["finetune", "0", "finetune", "2"]
    assert frame.inner_text("[data-role=summary]") == "2 changed"
    changed = [i for i, c, _ in diff_rows(frame) if c == "changed"]
    assert changed == ["base", "base/conv"]


def test_broken_side_shows_route_error(server, page):
    frame = open_archviz(page, server)
    frame.wait_for_selector("button[data-view=compare]")
    frame.click("button[data-view=compare]")
    frame.wait_for_selector("select[data-picker=runA]")
    frame.select_option("select[data-picker=runA]", "broken")
    frame.wait_for_selector("select[data-picker=stepA]")
    frame.select_option("select[data-picker=stepA]", "0")
    err = frame.wait_for_selector(".av-msg.error")
    text = err.inner_text()
    assert "broken" in text and "model: expected an object" in text
    # the other step of the same run still compares
    frame.select_option("select[data-picker=stepA]", "1")
    frame.wait_for_selector("[data-role=summary]")


def test_stale_selection_falls_back(server, page):
    # a comparison saved for a run that no longer exists falls back to a valid one
    frame = open_archviz(page, server)
    frame.wait_for_selector("button[data-view=compare]")
    frame.evaluate("""() => { history.replaceState(null, '', '#view=compare&ra=gone&sa=0&rb=big&sb=0');
                              sessionStorage.setItem('archviz.state', 'view=compare&ra=gone&sa=0&rb=big&sb=0'); }""")
    page.reload()
    frame = open_archviz(page, server)
    frame.wait_for_selector("[data-role=summary]")
    assert frame.eval_on_selector("select[data-picker=runA]", "s => s.value") != "gone"
