"""Browser tests of the Arch Viz tab's shell and table view, against a real TensorBoard.

Data: a real Keras LeNet extraction (written in a subprocess, so TensorFlow never loads into the
test process), a hand-built nested model whose last layer is named like an XSS payload, a run
whose architecture is broken, and a run whose name is HTML. Chromium opens ``/#archviz`` like a
user and works inside the plugin's iframe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import metadata, schema
from tensorboard_archviz.summary import ArchVizWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XSS = "<img src=x onerror=alert(1)>"
HTML_RUN = "<i>html-run</i>"

LENET_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from tensorboard_archviz.extract.keras import extract_keras
    from tensorboard_archviz.summary import ArchVizWriter
    sys.path.insert(0, os.path.join(os.environ["ARCHVIZ_REPO"], "tests", "fixtures"))
    from keras_models import build_lenet
    model = build_lenet()
    with ArchVizWriter(sys.argv[1]) as w:
        w.add_architecture(extract_keras(model), step=0)
""")

# (class, output shape, params) of LeNet's layers after the input, as Keras counts them.
LENET = [
    ("Conv2D", "(None, 28, 28, 20)", "520"),
    ("MaxPooling2D", "(None, 14, 14, 20)", "0"),
    ("Conv2D", "(None, 14, 14, 50)", "25,050"),
    ("MaxPooling2D", "(None, 7, 7, 50)", "0"),
    ("Flatten", "(None, 2450)", "0"),
    ("Dense", "(None, 500)", "1,225,500"),
    ("Dense", "(None, 10)", "5,010"),
]


def node(id, cls, parent=None, out=None, t=0, nt=0, act=None, cfg=None, macs=None):
    return schema.Node(id, id.split("/")[-1], cls, parent=parent, output_shapes=out,
                       input_shapes=None, dtype="float32",
                       params={"trainable": t, "non_trainable": nt}, activation=act,
                       config=cfg or {}, macs=macs)


def nested_arch() -> schema.Architecture:
    """input -> encoder(dense 32->64, dense_1 64->64) -> XSS-named Dense(10)."""
    nodes = [
        node("input", "InputLayer", out=[[None, 32]]),
        node("encoder", "Sequential", out=[[None, 64]], t=6272),
        node("encoder/dense", "Dense", "encoder", [[None, 64]], t=2112, act="relu",
             cfg={"units": 64}, macs=2048),
        node("encoder/dense_1", "Dense", "encoder", [[None, 64]], t=4160, act="relu",
             cfg={"units": 64}, macs=4096),
        node(XSS, "Dense", out=[[None, 10]], t=650, act="softmax",
             cfg={"units": 10, "comment": "<b>bold</b><script>alert(2)</script>"}, macs=640),
    ]
    edges = [("input", "encoder/dense"), ("encoder/dense", "encoder/dense_1"),
             ("encoder/dense_1", XSS)]
    return schema.Architecture(
        "keras", "3.15.1", schema.ModelInfo("nested_model", "Functional", 6922, 6922, 0),
        inputs=["input"], outputs=[XSS], nodes=nodes,
        edges=[schema.Edge(s, t) for s, t in edges])


def write_broken(logdir: str) -> None:
    """An architecture tensor whose JSON lacks the model: the route answers 422."""
    import numpy as np
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    s = summary_pb2.Summary()
    s.value.add(tag=metadata.ARCHITECTURE_TAG, metadata=metadata.create_architecture_metadata(),
                tensor=tensor_util.make_tensor_proto(
                    np.array(b'{"schema_version": 1, "framework": "keras"}', dtype=object)))
    with ArchVizWriter(logdir) as w:
        w.add_summary(s, step=2)


def screenshot_dir(tmp_path) -> str:
    d = os.environ.get("ARCHVIZ_SCREENSHOTS") or str(tmp_path)
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_table")
    subprocess.run([sys.executable, "-c", LENET_SCRIPT, str(logdir / "lenet")], check=True,
                   env=dict(os.environ, ARCHVIZ_REPO=REPO),
                   timeout=300)
    with ArchVizWriter(str(logdir / "nested")) as w:
        w.add_architecture(nested_arch(), step=0)
    with ArchVizWriter(str(logdir / HTML_RUN)) as w:
        w.add_architecture(nested_arch(), step=1)
    write_broken(str(logdir / "broken"))
    with run_tensorboard(logdir) as url:
        wait_for_run(url, "lenet")
        wait_for_run(url, "nested")
        wait_for_run(url, HTML_RUN)
        wait_for_run(url, "broken")
        yield url


def open_run(page, url, run):
    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", run)
    frame.wait_for_selector(".av-table tr.row")
    return frame


# the default columns, in order (memory columns between the params and the activation)
COLS = ["name", "type", "shape", "params", "trainable", "non_trainable", "param_bytes",
        "output_bytes", "activation", "macs", "conn"]
C = {k: i for i, k in enumerate(COLS)}


def rows(frame):
    """[(id, [cell texts])] of the table's layer rows, in display order."""
    return frame.evaluate("""() => [...document.querySelectorAll('.av-table tr.row')].map(
        tr => [tr.dataset.id, [...tr.cells].map(td => td.innerText.trim())])""")


def search(frame, text):
    """Type into the (debounced) search box and wait until the table shows the result."""
    before = frame.inner_text(".av-toolbar .count")
    frame.fill("input[type=search]", text)
    frame.wait_for_function("b => document.querySelector('.av-toolbar .count').innerText !== b", arg=before)


def test_lenet_rows_and_totals(server, page):
    frame = open_run(page, server, "lenet")
    got = rows(frame)
    assert got[0][1][1] == "InputLayer"
    body = [(cells[1], cells[2], cells[3]) for _, cells in got[1:]]
    assert body == LENET
    # trainable / non-trainable columns and totals header, exact with separators
    assert [cells[C["trainable"]] for _, cells in got[1:]] == [p for _, _, p in LENET]
    assert all(cells[C["non_trainable"]] == "0" for _, cells in got)
    assert [th for th in frame.eval_on_selector_all(".av-table th", "ths => ths.map(t => t.dataset.col)")] == COLS
    totals = {k: frame.inner_text(f"[data-total={k}]") for k in ("total", "trainable", "non_trainable")}
    assert totals == {"total": "1,256,080", "trainable": "1,256,080", "non_trainable": "0"}
    header = frame.inner_text(".av-totals")
    assert "lenet" in header and "Sequential" in header and "Keras 3." in header
    # activations and "connected to": each layer fed by the one before
    assert [cells[C["activation"]] for _, cells in got[1:]] == ["relu", "—", "relu", "—", "—", "relu", "softmax"]
    names = [cells[0] for _, cells in got]
    assert [cells[C["conn"]] for _, cells in got[1:]] == names[:-1]


def test_sort_columns(server, page):
    frame = open_run(page, server, "lenet")
    original = [i for i, _ in rows(frame)]
    frame.click("th[data-col=params]")
    got = rows(frame)
    assert [c[3] for _, c in got][:5] == ["1,225,500", "25,050", "5,010", "520", "0"]
    assert frame.get_attribute("th[data-col=params]", "aria-sort") == "descending"
    frame.click("th[data-col=params]")
    got = rows(frame)
    assert [c[3] for _, c in got][-4:] == ["520", "5,010", "25,050", "1,225,500"]
    frame.click("th[data-col=params]")  # third click: back to the model's order
    assert [i for i, _ in rows(frame)] == original
    frame.click("th[data-col=type]")
    types = [c[1] for _, c in rows(frame)]
    assert types == sorted(types, key=str.lower)


def test_expand_collapse_and_flat_paths(server, page):
    frame = open_run(page, server, "nested")
    ids = [i for i, _ in rows(frame)]
    assert ids == ["input", "encoder", "encoder/dense", "encoder/dense_1", XSS]
    enc = dict(rows(frame))["encoder"]
    assert enc[1] == "Sequential" and enc[3] == "6,272"   # container: its subtree total
    assert "2 children" in enc[0]
    # the container is fed from outside its subtree by "input"
    assert enc[C["conn"]] == "input"
    frame.click('tr.row[data-id="encoder"] button.twisty')
    assert [i for i, _ in rows(frame)] == ["input", "encoder", XSS]
    assert frame.get_attribute('tr.row[data-id="encoder"] button.twisty', "aria-expanded") == "false"
    frame.click('tr.row[data-id="encoder"] button.twisty')
    assert [i for i, _ in rows(frame)] == ids
    # sorted = flat with full paths
    frame.click("th[data-col=name]")
    got = dict(rows(frame))
    assert got["encoder/dense_1"][0] == "encoder/dense_1"
    # search keeps matches and their ancestors
    frame.click("th[data-col=name]")
    frame.click("th[data-col=name]")
    search(frame, "dense_1")
    assert [i for i, _ in rows(frame)] == ["encoder", "encoder/dense_1"]
    assert "1 of 5 rows match" in frame.inner_text(".av-toolbar .count")


def test_untrusted_strings_render_as_text(server, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    frame = open_run(page, server, HTML_RUN)
    # the run's name is literal text in the picker
    options = frame.eval_on_selector_all("select[data-picker=run] option", "os => os.map(o => o.textContent)")
    assert any(HTML_RUN in o for o in options)
    assert frame.evaluate("document.querySelectorAll('i').length") == 0
    cells = dict(rows(frame))[XSS]
    assert cells[0] == XSS
    frame.click(f'tr.row[data-id="{XSS}"]')  # open the details: config values as text
    details = frame.inner_text("tr.details")
    assert "<b>bold</b><script>alert(2)</script>" in details
    assert frame.evaluate("document.querySelectorAll('img, script, tr.details b').length") == 0
    time.sleep(0.3)
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0


def test_broken_run_shows_error_and_rest_works(server, page):
    frame = open_archviz(page, server)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", "broken")
    err = frame.wait_for_selector(".av-msg.error")
    text = err.inner_text()
    assert "broken" in text and "step 2" in text and "model" in text
    frame.select_option("select[data-picker=run]", "lenet")
    frame.wait_for_selector(".av-table tr.row")
    assert frame.inner_text("[data-total=total]") == "1,256,080"


def test_reload_keeps_view_and_run(server, page):
    frame = open_run(page, server, "nested")
    frame.click("button[data-view=timeline]")
    frame.wait_for_selector("ol.av-timeline li")
    # the state lives in the iframe's own URL (never rebased onto <base href>) ...
    assert "/data/plugin_entry.html?name=archviz#view=timeline" in frame.url
    frame.evaluate("location.reload()")   # ... so reloading the frame alone works
    frame = open_archviz(page, server)
    frame.wait_for_selector("ol.av-timeline li")
    page.reload()                          # and so does reloading TensorBoard
    frame = open_archviz(page, server)
    frame.wait_for_selector("ol.av-timeline li")
    assert frame.get_attribute("button[data-view=timeline]", "aria-selected") == "true"
    assert frame.eval_on_selector("select[data-picker=run]", "s => s.value") == "nested"


def test_theme_follows_tensorboard(server, page, tmp_path):
    frame = open_run(page, server, "nested")
    shots = screenshot_dir(tmp_path)

    def pick(theme):
        page.click("button[aria-label='Menu for changing light or dark theme']")
        page.get_by_role("menuitemradio", name=theme).click() \
            if page.get_by_role("menuitemradio", name=theme).count() \
            else page.get_by_text(theme, exact=True).click()
        page.keyboard.press("Escape")
        time.sleep(0.3)

    pick("Dark")
    frame.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    bg = frame.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(48, 48, 48)"
    page.screenshot(path=os.path.join(shots, "table_dark.png"))
    pick("Light")
    frame.wait_for_function("document.documentElement.dataset.theme === 'light'")
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    page.screenshot(path=os.path.join(shots, "table_light.png"))


def test_empty_state_then_data_appears(tmp_path, page):
    logdir = tmp_path / "empty"
    logdir.mkdir()
    with run_tensorboard(logdir) as url:
        frame = open_archviz(page, url)
        frame.wait_for_selector("text=No architectures yet")
        assert "ArchVizCallback()" in frame.inner_text(".av-empty h2")
        assert "callbacks=[ArchVizCallback(" in frame.inner_text(".av-empty pre")
        # no empty Run/Step dropdowns (nor view tabs) beside the empty-state text
        assert frame.locator("select").count() == 0
        assert frame.locator("[data-picker], button[data-view]").count() == 0
        with ArchVizWriter(str(logdir / "late")) as w:
            w.add_architecture(nested_arch(), step=0)
        wait_for_run(url, "late")
        frame.wait_for_selector('.av-table tr.row[data-id="encoder"]', timeout=30000)
