"""Layer signals in the dashboard, through a real TensorBoard and a real Chromium: the Layers × steps
view (cells of known colours read back as pixels, exact values on hover, NaN and "no value" apart,
findings with thresholds, a click opening the layer at that step in the Graph view), "Colour by"
in the Graph, Layered and Table views (legend text, fills of a low- and a high-valued layer, the
step slider and the step picker), the sparklines of the detail panels, axe-core, and the scale
figures: 800 layers × 1,000 shown steps (of 1,100) with no main-thread task over 200 ms, and the
graph recoloured on a step change in under 100 ms.

The runs come from tests/signals_helpers.py (stored documents of known values, no framework)."""

from __future__ import annotations

import statistics
import time
import urllib.parse

import pytest

from browser_helpers import open_entry, run_axe
from conftest import PLUGIN, get_json, run_tensorboard, wait_for_run
from signals_helpers import big_run, small_run

# long main-thread tasks as [start, duration] ms, and when the signals view was mounted (its work
# is what counts; the bundle's own parse at page load comes before)
LONGTASKS = """window.__lt = []; window.__mounted = null;
try { new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__lt.push([e.startTime, e.duration]); })
        .observe({type: 'longtask', buffered: true}); } catch (e) { window.__lt = null; }
new MutationObserver(() => { if (window.__mounted === null && document.querySelector('[data-testid=signals-view]'))
  window.__mounted = performance.now(); }).observe(document, {subtree: true, childList: true});"""

# the ramp's ends and the special paints (common/signals_scale.ts)
LOW, HIGH, NAN, BLACK = "#440154", "#fde725", "#e91e63", "#000000"


def rgb(hex_):
    return tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    small_run(str(root / "small"))
    big_run(str(root / "big"))
    with run_tensorboard(root, extra_args=["--samples_per_plugin=archviz=2000"]) as base:
        wait_for_run(base, "small", steps=2)
        wait_for_run(base, "big", steps=1)
        deadline = time.time() + 120
        while True:   # every step of the big run loaded (the reload is incremental)
            q = urllib.parse.urlencode({"run": "big", "signal": "gradients.rms", "max_steps": 1})
            status, body = get_json(base + PLUGIN + "/signals?" + q)
            if status == 200 and body["total_steps"] == 1100:
                break
            assert time.time() < deadline, (status, body if status != 200 else body["total_steps"])
            time.sleep(1)
        yield base


def open_view(page, url, hash_, ready):
    frame = open_entry(page, url, hash_)
    frame.wait_for_selector(ready, timeout=120000)
    return frame


def choose_colour(frame, root, key):
    """Pick `key` in the Colour by select inside `root` once the run's signals are listed."""
    sel = root + " select[data-action=colour-by]"
    frame.wait_for_selector(sel + ' option[value="%s"]' % key, state="attached", timeout=60000)
    frame.select_option(sel, key)


def legend_text(frame, root):
    return frame.inner_text(root + " [data-testid=signals-legend]")


# -------------------------------------------------------------------------- Layers × steps view

CELL = """([id, c]) => {
    const cv = document.querySelector('[data-testid=signals-heatmap]');
    const ids = JSON.parse(cv.dataset.rowIds), r = ids.indexOf(id);
    const rh = +cv.dataset.rowH, gut = +cv.dataset.gutter, n = +cv.dataset.steps;
    const cw = (cv.clientWidth - gut) / n, box = cv.getBoundingClientRect();
    const x = gut + (c + 0.5) * cw, y = r * rh + rh / 2 - cv.parentElement.scrollTop;
    const d = devicePixelRatio, px = cv.getContext('2d').getImageData(Math.floor(x * d), Math.floor(y * d), 1, 1).data;
    return {x: box.left + x, y: box.top + y, rgb: [px[0], px[1], px[2]]};
}"""


def test_layers_by_steps_view(url, page):
    frame = open_view(page, url, "view=signals&run=small", "[data-testid=signals-view][data-render-complete='1']")
    assert frame.get_attribute("button[data-view=signals]", "aria-selected") == "true"
    # folded: the six blocks are one band showing one copy; all copies on demand
    assert frame.inner_text("[data-testid=signals-info]").startswith("3 layers × 10 steps")
    frame.evaluate("document.querySelector('[data-testid=signals-view]').dataset.renderComplete = '0'")
    frame.select_option("select[data-fold-pick]", "all")
    frame.wait_for_selector("[data-testid=signals-view][data-render-complete='1']")
    assert frame.inner_text("[data-testid=signals-info]").startswith("8 layers × 10 steps")
    assert "downsampled" not in frame.inner_text("[data-testid=signals-info]")

    leg = legend_text(frame, "[data-testid=signals-view]")
    assert "Gradient RMS" in leg and "min 1e-6" in leg and "max 10.9" in leg and "log scale" in leg
    assert "NaN (1)" in leg and "no value (10)" in leg
    kinds = frame.eval_on_selector_all("[data-testid=signals-findings] li", "ls => ls.map(l => l.dataset.kind)")
    assert {"vanishing", "nonfinite", "frozen"} <= set(kinds)
    assert "vanishing ratio = 0.0001" in frame.inner_text("[data-testid=signals-thresholds]")
    assert frame.inner_text("[data-testid=signals-unmatched]").endswith("updates.ratio: ghost.fc")

    # the cells' pixels: the ramp's ends, NaN, and the hatch of "no value" (grey, not the colour of 0)
    assert tuple(frame.evaluate(CELL, ["stem", 0])["rgb"]) == rgb(LOW)
    assert tuple(frame.evaluate(CELL, ["head", 9])["rgb"]) == rgb(HIGH)
    assert tuple(frame.evaluate(CELL, ["blocks.2.fc", 9])["rgb"]) == rgb(NAN)
    r, g, b = frame.evaluate(CELL, ["blocks.3.fc", 4])["rgb"]
    assert r > 150 and abs(r - g) < 15 and abs(g - b) < 15, (r, g, b)

    # hover: the exact value, NaN spelled out, "no value" apart from 0
    for lid, c, text in [("blocks.2.fc", 9, "blocks.2.fc · step 9 · Gradient RMS: NaN"),
                         ("blocks.3.fc", 3, "blocks.3.fc · step 3 · Gradient RMS: no value"),
                         ("head", 5, "head · step 5 · Gradient RMS: 10.5")]:
        p = frame.evaluate(CELL, [lid, c])
        page.mouse.move(p["x"], p["y"])
        frame.wait_for_function("t => document.querySelector('[data-testid=signals-tip]').textContent === t", arg=text)
    assert run_axe(frame) == []

    # a click opens the layer at that step in the Graph view, coloured by this signal at that step
    p = frame.evaluate(CELL, ["stem", 2])
    page.mouse.click(p["x"], p["y"])
    frame.wait_for_selector("[data-testid=graph-detail][data-node-id=stem]", timeout=60000)
    hash_ = dict(urllib.parse.parse_qsl(frame.evaluate("location.hash.slice(1)")))
    assert hash_["view"] == "graph" and hash_["sel"] == "stem" and hash_["step"] == "0"
    frame.wait_for_selector("[data-testid=graph-view][data-colour-step='2'][data-colour-by='gradients.rms']")
    assert frame.get_attribute("[data-testid=graph-node][data-id=stem] rect.avg-bg", "data-fill") == LOW


def test_heatmap_keyboard_and_no_signals_message(url, page):
    frame = open_view(page, url, "view=signals&run=small", "[data-testid=signals-view][data-render-complete='1']")
    frame.focus("[data-testid=signals-heatmap]")
    page.keyboard.press("ArrowDown")   # the cursor starts on the first layer at the last step
    assert frame.inner_text("[data-testid=signals-tip]").startswith("stem · step 9 · Gradient RMS: 1.09e-6")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowLeft")
    assert frame.inner_text("[data-testid=signals-tip]").startswith("blocks.0.fc · step 8")
    page.keyboard.press("Enter")
    frame.wait_for_selector("[data-testid=graph-detail][data-node-id='blocks.0.fc']", timeout=60000)


def test_update_ratio_cells_say_how_many_training_steps_they_span(url, page):
    frame = open_view(page, url, "view=signals&run=small", "[data-testid=signals-view][data-render-complete='1']")
    frame.evaluate("document.querySelector('[data-testid=signals-view]').dataset.renderComplete = '0'")
    frame.select_option("select[data-action=signal]", "updates.ratio")
    frame.wait_for_selector("[data-testid=signals-view][data-render-complete='1']")
    frame.focus("[data-testid=signals-heatmap]")
    page.keyboard.press("ArrowDown")   # the first layer at the last step
    tip = frame.inner_text("[data-testid=signals-tip]")
    assert tip == "stem · step 9 · Update ratio \u2016\u0394W\u2016/\u2016W\u2016: 0 over the 10 " \
        "training steps since the previous write", tip
    for _ in range(9):
        page.keyboard.press("ArrowLeft")   # step 0: the first write has no ratio, no span
    assert "training steps" not in frame.inner_text("[data-testid=signals-tip]")


# --------------------------------------------------------------------------------- Colour by

def fills(frame, ids):
    return {i: frame.get_attribute("[data-testid=graph-node][data-id='%s'] rect.avg-bg" % i, "data-fill")
            for i in ids}


def test_colour_by_in_the_graph(url, page):
    g = "[data-testid=graph-view]"
    frame = open_view(page, url, "view=graph&run=small", g + "[data-render-complete='1']")
    choose_colour(frame, g, "gradients.rms")
    frame.wait_for_selector(g + "[data-colour-by='gradients.rms'][data-colour-step='9']")
    leg = legend_text(frame, g)
    assert "Gradient RMS" in leg and "min 1e-6" in leg and "max 10.9" in leg and "log scale" in leg
    assert "colours from step 9 (the latest signals step" in leg
    f = fills(frame, ["stem", "head"])   # 1.09e-6 (near the minimum, 1e-6) and 10.9 (the maximum)
    assert f["head"] == HIGH and sum(rgb(f["stem"])) < 200, f
    # the text stays readable on its fill; the input has no value: hatched, not the colour of 0
    assert frame.get_attribute(g + " [data-testid=graph-node][data-id=x] rect.avg-bg", "data-paint") == "none"
    assert frame.get_attribute(g + " [data-testid=graph-node][data-id=x] rect.avg-bg", "fill").startswith("url(#")

    # the step slider recolours in place (no layout) in well under 100 ms
    frame.fill(g + " input[data-action=colour-step]", "0")
    frame.wait_for_selector(g + "[data-colour-step='0']")
    assert float(frame.get_attribute(g, "data-recolour-ms")) < 100
    assert "colours from step 0 (the step picked on the slider" in legend_text(frame, g)
    assert fills(frame, ["head"])["head"] != HIGH   # 10.0 at step 0 is below the maximum, 10.9

    # each signal of the run: its legend and different fills for a low- and a high-valued layer
    choose_colour(frame, g, "updates.ratio")
    frame.wait_for_selector(g + "[data-colour-by='updates.ratio']")
    assert "Update ratio" in legend_text(frame, g) and "≤ 0 (off the log scale) (1)" in legend_text(frame, g)
    f = fills(frame, ["stem", "head"])
    assert f["stem"] == BLACK and f["head"] != BLACK      # exactly 0 (frozen) vs 1e-3
    choose_colour(frame, g, "activations.zero_fraction")
    frame.wait_for_selector(g + "[data-colour-by='activations.zero_fraction']")
    leg = legend_text(frame, g)
    assert "Dead units" in leg and "[fraction (0–1)]" in leg and "linear scale" in leg and "max 0.5" in leg
    act = g + " [data-testid=graph-node][data-id='blocks.0.act'] rect.avg-bg"
    assert frame.get_attribute(act, "data-paint") == "value" and frame.get_attribute(act, "data-fill") == LOW  # 0: a value
    assert frame.get_attribute(g + " [data-testid=graph-node][data-id=head] rect.avg-bg", "data-paint") == "none"
    # an architecture figure (log: 0 is off the scale), and the linear / log choice
    choose_colour(frame, g, "arch:params")
    frame.wait_for_selector(g + "[data-colour-by='arch:params']")
    assert fills(frame, ["stem", "head"]) == {"stem": LOW, "head": HIGH}   # 72 vs 90 params
    frame.select_option(g + " select[data-action=colour-scale]", "linear")
    frame.wait_for_function("() => document.querySelector('[data-testid=graph-view] [data-testid=signals-legend]')"
                            ".textContent.includes('linear scale')")
    assert "min 0" in legend_text(frame, g) and fills(frame, ["stem"])["stem"] != LOW   # 72 of 0..90
    assert run_axe(frame) == []


def test_colour_follows_the_step_picker_and_panel_sparklines(url, page):
    g = "[data-testid=graph-view]"
    frame = open_view(page, url, "view=graph&run=small&step=0&sel=head", g + "[data-render-complete='1']")
    choose_colour(frame, g, "gradients.rms")
    # architecture step 0 (not the latest, 5): the signals step at or before it
    frame.wait_for_selector(g + "[data-colour-step='0']")
    assert "nearest at or before architecture step 0" in legend_text(frame, g)
    frame.wait_for_selector("[data-testid=graph-detail] [data-testid=node-signals] table")
    rows = frame.eval_on_selector_all("[data-testid=graph-detail] [data-testid=node-signals] tr",
                                      "rs => rs.map(r => [r.dataset.signal, r.querySelector('th').textContent, !!r.querySelector('svg path')])")
    assert rows == [["gradients.rms", "Gradient RMS", True], ["updates.ratio", "Update ratio ‖ΔW‖/‖W‖", True]]
    assert "10 @ 0" in frame.inner_text("[data-testid=graph-detail] tr[data-signal='gradients.rms']")


def test_colour_by_in_the_table_and_layered_views(url, page):
    t = ".av-table-view"
    frame = open_view(page, url, "view=table&run=small", "[data-testid=table-colour-by]")
    choose_colour(frame, t, "gradients.rms")
    frame.uncheck("input[data-action=fold-repeats]")
    frame.click("xpath=//button[normalize-space(.)='Expand all']")
    sw = "tr.row[data-id='%s'] .avs-cell-sw"
    frame.wait_for_selector(sw % "blocks.2.fc")
    cells = {i: (frame.get_attribute(sw % i, "data-paint"), frame.get_attribute(sw % i, "data-fill"),
                 frame.eval_on_selector(sw % i, "e => getComputedStyle(e).backgroundColor"),
                 frame.inner_text("tr.row[data-id='%s'] .avs-cell-val" % i))
             for i in ["stem", "head", "blocks.2.fc", "blocks.3.fc"]}
    paint, fill, css, text = cells["stem"]   # 1.09e-6, just above the minimum 1e-6 (step 0)
    assert (paint, text) == ("value", "1.09e-6") and css == "rgb(%d, %d, %d)" % rgb(fill) and sum(rgb(fill)) < 200
    assert cells["head"] == ("value", HIGH, "rgb(253, 231, 37)", "10.9")
    assert cells["blocks.2.fc"][0::3] == ("nan", "NaN")
    assert cells["blocks.3.fc"][0::3] == ("none", "no value")
    assert "gradient" in frame.eval_on_selector(sw % "blocks.3.fc", "e => getComputedStyle(e).backgroundImage")
    leg = legend_text(frame, t)
    assert "Gradient RMS" in leg and "max 10.9" in leg and "NaN (1)" in leg
    frame.click("tr.row[data-id=head]")
    frame.wait_for_selector("tr.details[data-details-for=head] [data-testid=node-signals] tr[data-signal='gradients.rms'] svg")
    assert run_axe(frame) == []

    frame.click("button[data-view=layered]")
    lay = "[data-testid=layered-view]"
    frame.wait_for_selector(lay + " [data-testid=layered-box]")
    choose_colour(frame, lay, "gradients.rms")   # the choice is kept for the session: already chosen
    box = lay + " [data-testid=layered-box][data-id='%s']"
    frame.wait_for_selector(box % "stem" + "[data-fill]")
    assert sum(rgb(frame.get_attribute(box % "stem", "data-fill"))) < 200   # 1.09e-6: near the minimum
    assert frame.get_attribute(box % "head", "data-fill") == HIGH
    assert "Gradient RMS" in legend_text(frame, lay)
    assert run_axe(frame) == []


# ------------------------------------------------------------------------------------- scale

def test_800_layers_by_1000_steps_without_long_tasks(url, page):
    page.add_init_script(LONGTASKS)
    frame = open_view(page, url, "view=signals&run=big", "[data-testid=signals-view][data-render-complete='1']")
    info = frame.inner_text("[data-testid=signals-info]")
    assert info.startswith("800 layers × 1000 steps") and "showing 1000 of 1100 steps" in info
    page.wait_for_timeout(500)
    tasks, mounted = frame.evaluate("[window.__lt, window.__mounted]")
    assert tasks is not None and mounted is not None
    print("long tasks [start, ms]:", [[round(a), round(b)] for a, b in tasks], "view mounted at", round(mounted))
    assert max([d for t, d in tasks if t + d > mounted], default=0) < 200, (tasks, mounted)
    ids = frame.evaluate("JSON.parse(document.querySelector('[data-testid=signals-heatmap]').dataset.rowIds)")
    assert ids[0] == "l0" and ids[-1] == "l799" and len(ids) == 800

    # the graph of the same 800 layers: a step change recolours in under 100 ms
    g = "[data-testid=graph-view]"
    frame.click("button[data-view=graph]")
    frame.wait_for_selector(g + "[data-render-complete='1']", timeout=120000)
    choose_colour(frame, g, "gradients.rms")
    frame.wait_for_selector(g + " input[data-action=colour-step]")
    times, seen = [], set()
    for v in ["0", "500", "999", "250"]:
        times.append(frame.evaluate("""(v) => new Promise((done) => {
            const s = document.querySelector('[data-testid=graph-view] input[data-action=colour-step]');
            const t0 = performance.now(); s.value = v; s.dispatchEvent(new Event('input'));
            requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0)); })""", v))
        seen.add(frame.get_attribute(g, "data-colour-step"))
    print("recolour to the next frame, ms:", [round(x, 1) for x in times])
    assert len(seen) == 4 and statistics.median(times) < 100, (seen, times)


# ------------------------------------------------------------------------- a real PyTorch run

def test_a_real_pytorch_run(tmp_path, page):
    """SignalsNet written by the real writers (tests/signals_fixtures.py): the dead ReLU is the
    top of the dead-units scale, the slow layer the top of the forward-time scale in the graph."""
    from signals_fixtures import write_torch_signals_run

    facts = write_torch_signals_run(str(tmp_path), run="signals", steps=4)
    with run_tensorboard(tmp_path) as base:
        wait_for_run(base, "signals", steps=1)
        v = "[data-testid=signals-view]"
        frame = open_view(page, base, "view=signals&run=signals", v + "[data-render-complete='1']")
        kinds = frame.eval_on_selector_all("[data-testid=signals-findings] li", "ls => ls.map(l => l.dataset.kind)")
        assert {"vanishing", "dead", "frozen", "slowest"} <= set(kinds), kinds
        assert "values.quant_error: " + facts["unknown_id"] in frame.inner_text("[data-testid=signals-unmatched]")
        frame.evaluate("document.querySelector('[data-testid=signals-view]').dataset.renderComplete = '0'")
        frame.select_option("select[data-action=signal]", "activations.zero_fraction")
        frame.wait_for_selector(v + "[data-render-complete='1']")
        assert tuple(frame.evaluate(CELL, [facts["dead_id"], 3])["rgb"]) == rgb(HIGH)   # 100 % dead

        g = "[data-testid=graph-view]"   # opened on the slow layer, so that its box is drawn
        frame = open_view(page, base, "view=graph&run=signals&sel=" + facts["slow_id"], g + "[data-render-complete='1']")
        choose_colour(frame, g, "time.forward_ms")
        frame.wait_for_selector(g + "[data-colour-by='time.forward_ms']")
        assert "Forward time [ms]" in legend_text(frame, g)
        slow = g + " [data-testid=graph-node][data-id='%s'] rect.avg-bg" % facts["slow_id"]
        # the sleeping layer (30 ms): the top of the scale (which spans every step: near, not at, its end)
        mine = frame.get_attribute(slow, "data-fill")
        assert sum(rgb(mine)) > 480, mine
        fills_ = frame.eval_on_selector_all(g + " rect.avg-bg[data-paint=value]", "rs => rs.map(r => r.dataset.fill)")
        assert min(sum(rgb(f)) for f in fills_) < 300, fills_   # the small layers beside it: ~0.02-0.1 ms
