"""Benchmark: the dashboard's layer-signal views at the issue's scale, in a real TensorBoard and a
real Chromium.

    python bench/bench_signals_view.py [--layers 800] [--steps 1000] [--repeats 5]

A run of ``--layers`` distinct Linear layers with one signal (gradient RMS) at ``--steps`` steps
is written with the package's writer (tests/signals_helpers.big_run, no framework). Printed:

- Layers × steps view: time from opening the page to the heatmap drawn, and the longest
  main-thread task (PerformanceObserver "longtask") since the view mounted (target < 200 ms) and
  over the whole page load (the bundle's own parse included);
- Graph view, Colour by gradient RMS: a step change on the slider (recolour in place) against a
  change of what is coloured (every box in view drawn again), ms from the input to the next frame,
  median of ``--repeats``, side by side with their ratio (target for a step change: < 100 ms).

Client and server share the machine: the figures are a ceiling for a dedicated one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

LONGTASKS = """window.__lt = []; window.__mounted = null;
new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__lt.push([e.startTime, e.duration]); })
  .observe({type: 'longtask', buffered: true});
new MutationObserver(() => { if (window.__mounted === null && document.querySelector('[data-testid=signals-view]'))
  window.__mounted = performance.now(); }).observe(document, {subtree: true, childList: true});"""
TO_NEXT_FRAME = """([sel, v, ev]) => new Promise((done) => {
    const s = document.querySelector(sel); const t0 = performance.now();
    s.value = v; s.dispatchEvent(new Event(ev));
    requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0)); })"""
G = "[data-testid=graph-view]"


def heatmap(page, url):
    from browser_helpers import open_entry

    page.add_init_script(LONGTASKS)
    t0 = time.time()
    frame = open_entry(page, url, "view=signals&run=big")
    frame.wait_for_selector("[data-testid=signals-view][data-render-complete='1']", timeout=300000)
    opened = time.time() - t0
    page.wait_for_timeout(500)
    tasks, mounted = frame.evaluate("[window.__lt, window.__mounted]")
    page_max = max([d for _, d in tasks], default=0)
    view_max = max([d for t, d in tasks if t + d > mounted], default=0)
    return frame, opened, page_max, view_max, frame.inner_text("[data-testid=signals-info]")


def colour_changes(frame, repeats):
    frame.click("button[data-view=graph]")
    frame.wait_for_selector(G + "[data-render-complete='1']", timeout=300000)
    frame.wait_for_selector(G + " select[data-action=colour-by] option[value='gradients.rms']", state="attached")
    frame.select_option(G + " select[data-action=colour-by]", "gradients.rms")
    frame.wait_for_selector(G + " input[data-action=colour-step]")
    n = int(frame.get_attribute(G + " input[data-action=colour-step]", "max")) + 1
    step, metric = [], []
    for i in range(repeats):
        step.append(frame.evaluate(TO_NEXT_FRAME, [G + " input[data-action=colour-step]", str((i * 97) % n), "input"]))
        key = "arch:params" if i % 2 == 0 else "gradients.rms"
        metric.append(frame.evaluate(TO_NEXT_FRAME, [G + " select[data-action=colour-by]", key, "change"]))
        if key == "arch:params":   # back to the signal for the next step change
            frame.evaluate(TO_NEXT_FRAME, [G + " select[data-action=colour-by]", "gradients.rms", "change"])
            frame.wait_for_selector(G + " input[data-action=colour-step]")
    return statistics.median(step), statistics.median(metric), frame.get_attribute(G, "data-render-mode")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=800)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, CHROMIUM_ARGS, run_tensorboard, wait_for_run
    from signals_helpers import big_run

    with tempfile.TemporaryDirectory() as root:
        t0 = time.time()
        big_run(os.path.join(root, "big"), layers=args.layers, steps=args.steps)
        print("wrote %d layers x %d steps in %.1f s" % (args.layers, args.steps, time.time() - t0))
        with run_tensorboard(root, extra_args=["--samples_per_plugin=archviz=%d" % (args.steps + 10)]) as url:
            wait_for_run(url, "big", steps=1, timeout=300)
            time.sleep(5)   # let the loader reach the last step
            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = b.new_context(viewport={"width": 1400, "height": 900}).new_page()
                frame, opened, page_max, view_max, info = heatmap(page, url)
                print("Layers x steps: %s" % info)
                print("  drawn %.1f s after opening; longest main-thread task: %.0f ms since the view mounted "
                      "(target < 200), %.0f ms over the whole page load" % (opened, view_max, page_max))
                step, metric, mode = colour_changes(frame, args.repeats)
                print("Graph, Colour by (%s mode), ms to the next frame, median of %d:" % (mode, args.repeats))
                print("  step change (recolour in place) %.1f | what is coloured (redraw) %.1f | ratio %.2f"
                      % (step, metric, step / metric if metric else float("nan")))
                b.close()


if __name__ == "__main__":
    main()
