"""Browser tests of the Filters view against a real TensorBoard.

A small conv architecture and filter grids made with Pillow (each tile one known grey level) are
written with ArchVizWriter; the test checks that every tile is cropped from the right place of the
PNG (pixel values read back from the canvases), that scores are shown under the tiles, that dead
filters are marked and kept, sorting by score, and the step slider.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from conftest import open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import schema
from tensorboard_archviz.summary import ArchVizWriter

TILE, MARGIN, ROWS, COLS = 10, 2, 3, 4
N = 10                       # filters; the last row of the grid is not full
DEAD = {3, 7}
LAYER = "conv2d_1"


def conv_arch() -> schema.Architecture:
    def n(id, cls, out, t=0, act=None, cfg=None):
        return schema.Node(id, id, cls, output_shapes=[out], input_shapes=None, dtype="float32",
                           params={"trainable": t, "non_trainable": 0}, activation=act,
                           config=cfg or {})
    nodes = [n("input_layer", "InputLayer", [None, 28, 28, 1]),
             n("conv2d", "Conv2D", [None, 28, 28, 8], 208, "relu", {"filters": 8}),
             n(LAYER, "Conv2D", [None, 28, 28, N], 2010, "relu", {"filters": N}),
             n("flatten", "Flatten", [None, 7840])]
    return schema.Architecture(
        "keras", "3.15.1", schema.ModelInfo("convnet", "Sequential", 2218, 2218, 0),
        inputs=["input_layer"], outputs=["flatten"], nodes=nodes,
        edges=[schema.Edge(a.id, b.id) for a, b in zip(nodes, nodes[1:])])


def grey(i: int, step: int) -> int:
    """The grey level of tile i at a step (distinct per tile; inverted at the second step)."""
    v = 20 + 23 * i
    return v if step == 1 else 255 - v


def scores(step: int):
    return [round(0.5 * ((i * 7) % N) - 1.0 + step * 0.01, 4) for i in range(N)]


def grid(step: int):
    """PNG bytes (outer and inner margins) + tile metadata for one step."""
    w = COLS * TILE + (COLS + 1) * MARGIN
    h = ROWS * TILE + (ROWS + 1) * MARGIN
    img = np.full((h, w), 255, np.uint8)
    tiles = []
    sc = scores(step)
    for i in range(N):
        r, c = divmod(i, COLS)
        y, x = MARGIN + r * (TILE + MARGIN), MARGIN + c * (TILE + MARGIN)
        img[y:y + TILE, x:x + TILE] = grey(i, step)
        tiles.append({"index": i, "score": sc[i], "post_score": max(sc[i], 0.0),
                      "dead": i in DEAD, "row": r, "col": c})
    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, "PNG")
    meta = {"tile_size": TILE, "margin": MARGIN, "rows": ROWS, "cols": COLS, "channels": 1,
            "value_range": [0, 1], "tiles": tiles}
    return buf.getvalue(), meta


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_filters")
    with ArchVizWriter(str(logdir / "train")) as w:
        w.add_architecture(conv_arch(), step=0)
        for step in (1, 4):
            png, meta = grid(step)
            w.add_filter_grid(LAYER, png, meta, step=step)
    with ArchVizWriter(str(logdir / "nofilters")) as w:
        w.add_architecture(conv_arch(), step=0)
    with run_tensorboard(logdir) as url:
        wait_for_run(url, "train", filter_layers=1)
        wait_for_run(url, "nofilters")
        yield url


def tiles(frame):
    """[(index, dead, score text, has dead label, centre pixel grey)] in display order."""
    return frame.evaluate("""() => [...document.querySelectorAll('.av-tile')].map(t => {
        const c = t.querySelector('canvas');
        const d = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
        return [Number(t.dataset.index), t.classList.contains('dead'),
                t.querySelector('.score').textContent, !!t.querySelector('.dead-label'), d[0]];
    })""")


def fmt(x: float) -> str:
    return ("%.3g" % x) if x != 0 else "0"


def open_filters(page, url):
    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", "train")
    frame.wait_for_selector(f'.av-table tr.row[data-id="{LAYER}"]')
    # the conv layer with a grid has a one-click link; the other conv layer has none
    assert frame.locator('tr.row[data-id="conv2d"] [data-action=filters]').count() == 0
    frame.click(f'tr.row[data-id="{LAYER}"] [data-action=filters]')
    frame.wait_for_selector(".av-tile")
    return frame


def test_tiles_scores_and_dead_marks(server, page, tmp_path):
    frame = open_filters(page, server)
    assert frame.get_attribute("button[data-view=filters]", "aria-selected") == "true"
    got = tiles(frame)
    sc = scores(4)
    # all filters, in filter order, none dropped; latest step (4) first
    assert [t[0] for t in got] == list(range(N))
    assert [t[2] for t in got] == [fmt(s) for s in sc]
    assert {t[0] for t in got if t[1]} == DEAD
    assert {t[0] for t in got if t[3]} == DEAD
    assert [t[4] for t in got] == [grey(i, 4) for i in range(N)]   # cropped from the right place
    assert frame.inner_text(".av-tile.dead .dead-label").strip().lower() == "dead"
    outline = frame.evaluate("getComputedStyle(document.querySelector('.av-tile.dead')).borderTopColor")
    assert outline in ("rgb(211, 47, 47)", "rgb(239, 83, 80)")
    assert f"{N} filters · {len(DEAD)} dead · step 4" in frame.inner_text(".av-filters")
    shots = os.environ.get("ARCHVIZ_SCREENSHOTS") or str(tmp_path)
    page.screenshot(path=os.path.join(shots, "filters.png"))


def test_sort_by_score_toggle(server, page):
    frame = open_filters(page, server)
    frame.check("input[data-action=sort-score]")
    sc = scores(4)
    order = sorted(range(N), key=lambda i: (-sc[i], i))
    assert [t[0] for t in tiles(frame)] == order
    frame.uncheck("input[data-action=sort-score]")
    assert [t[0] for t in tiles(frame)] == list(range(N))


def test_step_slider(server, page):
    frame = open_filters(page, server)
    assert frame.inner_text("[data-label=fstep]") == "step 4"
    slider = frame.locator("input[data-picker=fstep]")
    slider.fill("0")   # first of the available steps (1, 4)
    assert frame.inner_text("[data-label=fstep]") == "step 1"
    frame.wait_for_function(
        "document.querySelector('.av-filters').innerText.includes('dead · step 1')")
    got = tiles(frame)
    assert [t[4] for t in got] == [grey(i, 1) for i in range(N)]
    assert [t[2] for t in got] == [fmt(s) for s in scores(1)]


def test_run_without_grids_explains(server, page):
    frame = open_archviz(page, server)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", "nofilters")
    frame.wait_for_selector(".av-table tr.row")
    frame.click("button[data-view=filters]")
    frame.wait_for_selector("text=has no filter grids")
    assert "ArchVizCallback(filters=True)" in frame.inner_text(".av-filters pre")
