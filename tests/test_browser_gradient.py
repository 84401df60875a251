"""Browser test of the gradient reach overlay, against a real TensorBoard and Chromium.

A real PyTorch model with a detached branch (``aux``), a module never called (``unused``) and a
frozen layer (``frozen``) is written with ``add_architecture(writer, model, x,
gradient_reach=True)``. The Table view shows the summary line above the table and a Gradient
badge per row (the label as text, the state's colour, the parameters on hover); the Graph view
shows the summary line, a badge and a stroke in the state's colour per node, and the legend.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from browser_helpers import run_axe
from conftest import PLUGIN, get_json, open_archviz, run_tensorboard, wait_for_run
from tensorboard_archviz import add_architecture
from tensorboard_archviz.gradient_reach import compute
from tensorboard_archviz.summary import ArchVizWriter

DETACHED = "no gradient — the branch is detached at aux.detach()"
UNUSED = "no gradient — unused is not called in the forward pass (unused module)"
LIGHT = {"grad": "rgb(46, 125, 50)", "none": "rgb(211, 47, 47)", "frozen": "rgb(96, 125, 139)"}
HEX = {"grad": "#2e7d32", "none": "#d32f2f", "frozen": "#607d8b"}


class Detached(nn.Module):
    """trunk -> frozen -> head learn; aux's output is detached; unused is never called."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 4)
        self.unused = nn.Linear(3, 3)

    def forward(self, x):
        f = self.trunk(x).mean((2, 3))
        return self.head(self.frozen(f) + self.aux(f).detach())


@pytest.fixture(scope="module")
def reach():
    torch.manual_seed(0)
    return compute(Detached(), torch.randn(1, 1, 8, 8))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("gradient")
    torch.manual_seed(0)
    with ArchVizWriter(str(logdir / "reach")) as w:
        add_architecture(w, Detached(), torch.randn(1, 1, 8, 8), gradient_reach=True)
    with run_tensorboard(logdir) as url:
        wait_for_run(url, "reach")
        yield url


def open_run(page, url):
    frame = open_archviz(page, url)
    frame.wait_for_selector('.av-table tr.row[data-id="aux"]')
    return frame


def test_table_shows_the_summary_and_a_labelled_badge_per_row(server, page, reach):
    status, arch = get_json(server + PLUGIN + "/architecture?run=reach")
    assert status == 200 and arch["gradient_reach"]["summary"] == reach["summary"]
    frame = open_run(page, server)
    assert frame.inner_text("[data-testid=table-reach-summary]") == "Gradient reach: " + reach["summary"]
    assert frame.inner_text("th[data-col=gradient]").startswith("Gradient")
    cells = frame.eval_on_selector_all("tr.row[data-id] td[data-col=gradient]", """tds => tds.map(td => {
        const b = td.querySelector('.av-reach');
        return [td.closest('tr').dataset.id, b ? b.textContent : null, b ? b.dataset.state : null,
                b ? getComputedStyle(b, '::before').backgroundColor : null, b ? b.title : null]; })""")
    got = {c[0]: c[1:] for c in cells}
    assert got["aux"][:3] == [DETACHED, "none", LIGHT["none"]]
    assert got["unused"][:3] == [UNUSED, "none", LIGHT["none"]]
    assert got["frozen"][:3] == ["frozen", "frozen", LIGHT["frozen"]]
    assert got["head"][:3] == ["gets gradient", "grad", LIGHT["grad"]]
    assert got["aux"][3] == ("Gradient reach: " + DETACHED + "\nweight: " + DETACHED + "\nbias: " + DETACHED)
    # exactly the nodes the server reports carry a badge (no badge on parameterless layers)
    assert {k for k, v in got.items() if v[0] is not None} == set(reach["nodes"])
    assert run_axe(frame) == []


def test_graph_shows_the_summary_badges_strokes_and_legend(server, page, reach):
    frame = open_run(page, server)
    frame.click("button[data-view=graph]")
    frame.wait_for_selector('[data-testid=graph-view][data-render-complete="1"]')
    assert frame.inner_text("[data-testid=graph-reach-summary]") == "Gradient reach: " + reach["summary"]
    marks = frame.eval_on_selector_all("[data-testid=graph-node], [data-testid=graph-group-collapsed]", """gs => gs.map(g => {
        const b = g.querySelector(':scope > [data-testid=graph-reach]');
        return [g.dataset.id, g.dataset.reach || null, b ? b.dataset.state : null,
                b ? b.querySelector('circle').getAttribute('fill') : null,
                g.querySelector(':scope > rect.avg-bg').getAttribute('stroke'),
                b ? b.querySelector('title').textContent : null,
                g.querySelector(':scope > title').textContent]; })""")
    got = {m[0]: m[1:] for m in marks}
    for nid, state in (("aux", "none"), ("unused", "none"), ("frozen", "frozen"), ("head", "grad")):
        assert got[nid][:4] == [state, state, HEX[state], HEX[state]], (nid, got[nid])
    assert got["aux"][4].startswith("Gradient reach: " + DETACHED + "\nweight: ")
    assert got["unused"][5].endswith("\nGradient reach: " + UNUSED + "\nweight: " + UNUSED + "\nbias: " + UNUSED)
    assert {k for k, v in got.items() if v[0]} <= set(reach["nodes"])
    legend = frame.inner_text("[data-testid=graph-legend]")
    assert "Gradient" in legend and "gets gradient" in legend and "no gradient" in legend and "frozen" in legend
    assert run_axe(frame) == []
