"""Helpers for the dashboard's browser tests: an accessibility check with axe-core (the
frontend's devDependency, injected from node_modules), keyboard focus checks, small data writers
(a real PyTorch residual model in a subprocess, a schema-1 document stored raw, a filter grid)
and opening the plugin page directly with a deep link."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from tensorboard_archviz import metadata
from tensorboard_archviz.summary import ArchVizWriter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AXE_JS = os.path.join(REPO, "frontend", "node_modules", "axe-core", "axe.min.js")
ENTRY = "/data/plugin_entry.html?name=archviz"

# A residual network small enough to extract in a second: a stem, layer1 (two basic blocks whose
# residual adds and relus are functional ops), layer2 (a strided block with a downsample), a head.
TORCH_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from tensorboard_archviz import schema
    from tensorboard_archviz.extract.torch import extract_torch

    class Block(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                               if stride != 1 or cin != cout else None)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = x if self.downsample is None else self.downsample(x)
            return torch.relu(y + s)

    class ResNetTiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.layer1 = nn.Sequential(Block(8, 8), Block(8, 8))
            self.layer2 = nn.Sequential(Block(8, 16, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer2(self.layer1(x))
            return self.fc(torch.flatten(self.pool(x), 1))

    torch.manual_seed(0)
    sys.stdout.write(schema.to_json(extract_torch(ResNetTiny(), torch.randn(2, 3, 16, 16))))
""")


def torch_resnet_doc() -> dict:
    """The real extraction of ResNetTiny (in a subprocess: torch never loads into the tests)."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", TORCH_SCRIPT], check=True, env=env, timeout=300,
                         stdout=subprocess.PIPE).stdout
    return json.loads(out)


def write_raw_architecture(logdir: str, doc: dict, step: int = 0) -> None:
    """Store a document as is (no validation or migration on write), e.g. a schema-1 document."""
    s = summary_pb2.Summary()
    s.value.add(tag=metadata.ARCHITECTURE_TAG, metadata=metadata.create_architecture_metadata(),
                tensor=tensor_util.make_tensor_proto(np.array(json.dumps(doc).encode(), dtype=object)))
    with ArchVizWriter(logdir) as w:
        w.add_summary(s, step)


def grid_png(n: int = 4, tile: int = 8):
    """A filter grid of n grey tiles and its tile metadata."""
    from PIL import Image

    img = np.full((tile, n * tile), 255, np.uint8)
    for i in range(n):
        img[:, i * tile:(i + 1) * tile] = 40 * (i + 1)
    buf = io.BytesIO()
    Image.fromarray(img, "L").save(buf, "PNG")
    tiles = [{"index": i, "score": 1.0 + i, "post_score": 1.0 + i, "dead": i == n - 1, "row": 0,
              "col": i} for i in range(n)]
    return buf.getvalue(), {"tile_size": tile, "margin": 0, "rows": 1, "cols": n, "channels": 1,
                            "value_range": [0, 1], "tiles": tiles}


def open_entry(page, url: str, hash_: str = ""):
    """Open the plugin page itself (what the tab's iframe shows), with a deep link in the hash."""
    page.goto(url + ENTRY + ("#" + hash_ if hash_ else ""))
    return page.main_frame


def run_axe(frame, exclude=()) -> list:
    """axe-core on the frame's document (minus the `exclude` selectors): the serious and critical
    violations, as readable rows."""
    if not os.path.exists(AXE_JS):
        pytest.fail("axe-core is missing: run `npm ci` in frontend/ (it is a devDependency)")
    if not frame.evaluate("typeof window.axe === 'object'"):
        # evaluated through the DevTools protocol: TensorBoard's CSP does not apply to it
        frame.evaluate(open(AXE_JS, encoding="utf-8").read() + "\n;0")
    res = frame.evaluate("""async (exclude) => {
        const ctx = exclude.length ? {include: [document], exclude: exclude.map(s => [s])} : document;
        const r = await axe.run(ctx, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
    }""", list(exclude))
    return res


FOCUS_PROBE = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const cs = getComputedStyle(el);
    const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 1) || cs.boxShadow !== 'none';
    return {tag: el.tagName.toLowerCase(), text: (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 40),
            key: el.dataset.view || el.dataset.action || el.dataset.picker || el.dataset.col || el.dataset.id || '',
            ring};
}"""

INTERACTIVE = """() => [...document.querySelectorAll(
    'button:not([disabled]), select:not([disabled]), input:not([disabled]), summary, a[href], [tabindex]:not([tabindex="-1"])')]
    .filter(e => { const r = e.getBoundingClientRect();
                   return r.width > 0 && r.height > 0 && !e.closest('[inert], details:not([open]) > :not(summary)')
                     && e.checkVisibility({checkVisibilityCSS: true, contentVisibilityAuto: true})
                     && !(e.tagName === 'INPUT' && e.type === 'hidden'); }).length"""


def tab_through(page, frame, presses: int):
    """Press Tab `presses` times; the focused elements (tag, label, key, ring) in order."""
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        info = frame.evaluate(FOCUS_PROBE)
        if info:
            seen.append(info)
    return seen


GRAPH = "[data-testid=graph-view]"


def open_graph(page, url: str, run: str):
    """The Arch Viz tab on `run`, switched to the Graph view, once it is drawn."""
    from conftest import open_archviz

    frame = open_archviz(page, url)
    frame.wait_for_selector("select[data-picker=run]")
    frame.select_option("select[data-picker=run]", run)
    frame.click("xpath=//button[normalize-space(.)='Graph']")
    frame.wait_for_selector(GRAPH + '[data-render-complete="1"]')
    return frame


def relayout(frame, action) -> None:
    """Do something that lays the graph(s) out again and wait until drawn (every graph view on
    the page: the compare view has two)."""
    frame.evaluate("document.querySelectorAll('[data-testid=graph-view]')"
                   ".forEach(v => v.dataset.renderComplete = 'x')")
    action()
    frame.wait_for_selector(GRAPH + '[data-render-complete="1"]')
