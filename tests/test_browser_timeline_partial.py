"""The timeline when the route's time budget ran out (#21 item 7): the route answers `partial`
with a `notice` and `pending` entries; the view says so in words and offers "Continue", which
asks the route again and shows the completed answer. Real TensorBoard and Chromium; the first
answer is made partial in the page's network layer (the budget itself is tested on the route in
test_timeline_budget.py)."""

from __future__ import annotations

from browser_helpers import torch_resnet_doc, write_raw_architecture
from conftest import open_archviz, run_tensorboard, wait_for_run

NOTICE = "The timeline took longer than its time budget: 2 of 3 steps compared; reload to continue."


def test_partial_timeline_says_so_and_continues(tmp_path, page):
    logdir = tmp_path / "logs"
    doc = torch_resnet_doc()
    for step in (0, 1, 2):
        write_raw_architecture(str(logdir / "resnet"), doc, step=step)
    answers = []

    def first_partial(route):
        resp = route.fetch()
        body = resp.json()
        answers.append(body)
        if len(answers) == 1:
            body = dict(body, partial=True, notice=NOTICE)
            last = dict(body["entries"][-1])
            last.update(pending=True, error="not compared yet: the time budget ran out")
            body["entries"] = body["entries"][:-1] + [last]
        route.fulfill(response=resp, json=body)

    with run_tensorboard(logdir) as url:
        wait_for_run(url, "resnet", steps=3)
        page.route("**/data/plugin/archviz/timeline?*", first_partial)
        frame = open_archviz(page, url)
        frame.wait_for_selector(".av-totals .model-name")
        frame.click("button[data-view=timeline]")
        frame.wait_for_selector("ol.av-timeline[data-complete='1']")
        note = frame.inner_text("[data-msg=timeline-partial]")
        assert "not complete yet" in note and NOTICE in note
        assert "not compared yet" in frame.inner_text("ol.av-timeline > li[data-step='2']")
        frame.click("button[data-action=timeline-continue]")
        frame.wait_for_function(
            "!document.querySelector('[data-msg=timeline-partial]') && "
            "document.querySelector(\"ol.av-timeline[data-complete='1']\")")
        assert len(answers) == 2 and answers[1].get("partial") is False
        assert frame.locator("ol.av-timeline > li").count() == 3
        assert "not compared yet" not in frame.inner_text("ol.av-timeline")
        assert frame.locator("button[data-action=timeline-continue]").count() == 0
