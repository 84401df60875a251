"""Browser test of the table's "Fold repeats" (issue 13, item 1: "The table offers the same fold"),
against a real TensorBoard and Chromium.

Data: a real PyTorch model (an embedding Linear, an ``nn.ModuleList`` of 12 identical blocks
LayerNorm -> Linear -> relu -> Linear + residual, a head) written with
``tensorboard_archviz.add_architecture`` through torch's ``SummaryWriter`` in a subprocess (torch
never loads into the test process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import open_archviz, run_tensorboard, wait_for_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from torch.utils.tensorboard import SummaryWriter
    from tensorboard_archviz import add_architecture

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.fc = nn.Linear(d, 2 * d)
            self.proj = nn.Linear(2 * d, d)

        def forward(self, x):
            return x + self.proj(torch.relu(self.fc(self.norm(x))))

    class Net(nn.Module):
        def __init__(self, d=16):
            super().__init__()
            self.embed = nn.Linear(8, d)
            self.blocks = nn.ModuleList(Block(d) for _ in range(12))
            self.head = nn.Linear(d, 4)

        def forward(self, x):
            x = self.embed(x)
            for b in self.blocks:
                x = b(x)
            return self.head(x)

    torch.manual_seed(0)
    w = SummaryWriter(sys.argv[1])
    add_architecture(w, Net(), torch.randn(2, 8))
    w.close()
""")

# one Block: LayerNorm 2*16 + Linear 16*32+32 + Linear 32*16+16 = 32 + 544 + 528
PER_COPY, COPIES = 1104, 12
BLOCK_MODULES = ("", ".norm", ".fc", ".proj")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("logs_table_fold")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", SCRIPT, str(logdir / "blocks12")], check=True, env=env,
                   timeout=300)
    with run_tensorboard(logdir) as url:
        wait_for_run(url, "blocks12")
        yield url


def open_run(page, url):
    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", "blocks12")
    frame.wait_for_selector(".av-table tr.row")
    return frame


def rows(frame):
    """[(id, {column: text})] of the table's rows, in display order."""
    return frame.evaluate("""() => [...document.querySelectorAll('.av-table tr.row')].map(
        tr => [tr.dataset.id, Object.fromEntries([...tr.cells].map(td => [td.dataset.col, td.innerText.trim()]))])""")


def block_ids(frame):
    """The ids of the block modules shown (the functional ops inside have ids of their own)."""
    return [i for i, _ in rows(frame) if i.startswith("blocks.")]


def copy_ids(k):
    return ["blocks.%d%s" % (k, s) for s in BLOCK_MODULES]


def changed(frame, action):
    """Run `action` and wait until the table's rows are drawn again."""
    frame.evaluate("() => { for (const tr of document.querySelectorAll('.av-table tr.row')) tr.dataset.stale = '1'; }")
    action()
    frame.wait_for_function("() => !document.querySelector('.av-table tr.row[data-stale]')")


def search(frame, text):
    before = frame.inner_text(".av-toolbar .count")
    frame.fill("input[type=search]", text)
    frame.wait_for_function("b => document.querySelector('.av-toolbar .count').innerText !== b", arg=before)


def test_fold_row_picker_toggle_and_search(server, page):
    frame = open_run(page, server)
    got = rows(frame)
    folds = [(i, c) for i, c in got if "× 12" in c["name"]]
    assert len(folds) == 1, got
    fid, cells = folds[0]
    assert cells["name"].split("\n")[1:] == ["blocks.0 – blocks.11", "× 12"]   # after the twisty
    assert cells["type"] == "Block"
    assert cells["params"] == "1,104 × 12 = 13,248"
    assert cells["trainable"] == "1,104 × 12 = 13,248"
    assert cells["macs"] == "1,024 × 12 = 12,288"
    assert cells["non_trainable"] == "0"                    # nothing to multiply
    assert dict(got)["blocks"]["params"] == "13,248"       # the ModuleList keeps its own total
    assert block_ids(frame) == []                            # folded: no copy shown
    fold = 'tr.row[data-id="%s"]' % fid

    # expanding shows one representative copy (the first), then the picker chooses another
    changed(frame, lambda: frame.click(fold + " button.twisty"))
    assert block_ids(frame) == copy_ids(0)
    changed(frame, lambda: frame.select_option(fold + " select[data-fold-pick]", "3"))
    assert block_ids(frame) == copy_ids(3)
    assert dict(rows(frame))["blocks.3.fc"]["params"] == "544"
    changed(frame, lambda: frame.click(fold + ' button[data-fold-step="1"]'))
    assert block_ids(frame) == copy_ids(4)
    changed(frame, lambda: frame.select_option(fold + " select[data-fold-pick]", "all"))
    assert block_ids(frame) == [i for k in range(COPIES) for i in copy_ids(k)]

    # the toggle off: the twelve blocks as written, and the choice is remembered
    changed(frame, lambda: frame.uncheck("input[data-action=fold-repeats]"))
    got = rows(frame)
    assert not any("×" in c["name"] for _, c in got)
    assert [i for i, c in got if c["type"] == "Block"] == ["blocks.%d" % k for k in range(COPIES)]
    assert frame.evaluate("() => localStorage.getItem('archviz.table.foldRepeats')") == "0"
    page.goto("about:blank")                                 # a new page load, not a hash change
    frame = open_run(page, server)
    assert not frame.is_checked("input[data-action=fold-repeats]")
    assert len([i for i, c in rows(frame) if c["type"] == "Block"]) == COPIES
    changed(frame, lambda: frame.check("input[data-action=fold-repeats]"))
    assert block_ids(frame) == []

    # a search inside a folded copy reveals it, and the fold stays open on that copy afterwards
    search(frame, "blocks.7.fc")
    got = dict(rows(frame))
    assert fid in got and "blocks.7.fc" in got and "blocks.7" in got
    assert [i for i in got if i.startswith("blocks.") and not i.startswith("blocks.7")] == []
    search(frame, "")
    assert block_ids(frame) == copy_ids(7)
    assert frame.input_value(fold + " select[data-fold-pick]") == "7"
