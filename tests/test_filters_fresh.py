"""Filter grids on PyTorch models: fresh weights at every call, what deeper filters are shown to
respond to (hand-set oriented kernels recovered as gratings), "dead" judged after BatchNorm, and
the defaults of ``add_filter_grids`` (image size from the example input, logging, progress)."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from filters_helpers import (angle_diff, grating, orientation_deg, png_array, read_grids)

torch = pytest.importorskip("torch")
nn = torch.nn

from tensorboard_archviz import add_architecture, add_filter_grids  # noqa: E402
from tensorboard_archviz.filters import torch_backend  # noqa: E402
from tensorboard_archviz.summary import ArchVizWriter  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # two cores shared by the whole team
    yield
    torch.set_num_threads(n)


def small_net(seed: int):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
                         nn.Flatten(), nn.Linear(5 * 8 * 8, 3))


def test_grids_follow_load_state_dict_between_steps(tmp_path):
    """Grids written at two steps with load_state_dict in between equal a fresh computation
    with each step's weights (the second is not a copy of the first)."""
    model = small_net(0)
    weights = [copy.deepcopy(model.state_dict()), copy.deepcopy(small_net(1).state_dict())]
    weights[1]["4.running_mean"] += 0.3              # BatchNorm statistics are read fresh too
    example = torch.zeros(2, 1, 16, 16)
    with ArchVizWriter(str(tmp_path)) as w:
        for step, sd in ((1, weights[0]), (2, weights[1])):
            model.load_state_dict(sd)
            assert add_filter_grids(w, model, global_step=step, input_to_model=example,
                                    steps=12) == ["0", "3"]
    written = read_grids(str(tmp_path))
    assert sorted(written) == [("0", 1), ("0", 2), ("3", 1), ("3", 2)]
    for step, sd in ((1, weights[0]), (2, weights[1])):
        fresh_model = small_net(7)
        fresh_model.load_state_dict(sd)
        for r in torch_backend.make_grids(fresh_model, input_to_model=example, steps=12):
            png, tiles = written[(r.node_id, step)]
            assert np.abs(png_array(png) - png_array(r.png)).max() <= 1, (r.node_id, step)
            np.testing.assert_allclose([t["score"] for t in tiles["tiles"]],
                                       [t["score"] for t in r.tiles["tiles"]], rtol=1e-4, atol=1e-5)
    for node in ("0", "3"):
        assert np.abs(png_array(written[(node, 1)][0]) - png_array(written[(node, 2)][0])).max() > 20


ANGLES = (0.0, 45.0, 90.0, 135.0)


def oriented_net():
    """A fixed first layer (x and 1 - x, both >= 0 on [0, 1]) and a second layer of hand-set
    Gabor kernels at four orientations, then ReLU."""
    m = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Conv2d(2, len(ANGLES), 7, padding=3),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        m[0].weight[:, 0, 0, 0] = torch.tensor([1.0, -1.0])
        m[0].bias[:] = torch.tensor([0.0, 1.0])
        for k, a in enumerate(ANGLES):
            g = torch.from_numpy(grating(a))
            m[2].weight[k, 0] = g
            m[2].weight[k, 1] = -g
        m[2].bias.zero_()
    return m


def test_deeper_filters_show_gratings_of_their_orientation():
    m = oriented_net()
    r = next(torch_backend.make_grids(m, ["2"], input_to_model=torch.zeros(1, 1, 24, 24),
                                      steps=128))
    t = r.tiles
    assert t["objective_kind"] == "interior" and t["parametrization"] == "fourier"
    assert t["crop"] is None and t["gain"] == 1.5
    for k, a in enumerate(ANGLES):
        img = r.images[k, 3:-3, 3:-3, 0]
        got = orientation_deg(img)
        assert angle_diff(got, orientation_deg(grating(a))) <= 20, (a, got)
        assert img.std() > 0.1                          # a grating, not a flat grey
    # In range and unsaturated (fixed contrast).
    assert r.images.min() >= 0.0 and r.images.max() <= 1.0
    assert np.mean((r.images < 0.02) | (r.images > 0.98)) < 0.05
    assert all(x["fires"] == "yes" and not x["dead"] for x in t["tiles"])


def bn_net():
    """conv(1->2) ReLU, conv(2->3) BatchNorm ReLU: filter 0 of the second conv is always
    negative but BatchNorm shifts it up (fires only after normalisation), filter 1 is always
    negative and stays so (dead), filter 2 is ordinary."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1),
                      nn.BatchNorm2d(3), nn.ReLU())
    with torch.no_grad():
        m[0].weight.fill_(0.1)
        m[0].bias.zero_()
        m[2].weight.uniform_(-0.01, 0.01)
        m[2].bias[:] = torch.tensor([-50.0, -50.0, 0.5])
        m[3].running_mean[:] = torch.tensor([-60.0, 0.0, 0.0])
        m[3].running_var[:] = 1.0
    return m


def test_dead_is_judged_after_batchnorm_and_activation():
    r = next(torch_backend.make_grids(bn_net(), ["2"], input_to_model=torch.zeros(1, 1, 12, 12),
                                      steps=8))
    t = r.tiles
    assert (t["norm"], t["activation"]) == ("BatchNorm", "relu")
    assert t["post"] == "the output after BatchNorm + relu"
    tiles = t["tiles"]
    assert [x["fires"] for x in tiles] == ["after_norm", "never", "yes"]
    assert [x["dead"] for x in tiles] == [False, True, False]
    assert tiles[0]["pre_score"] < -40 and tiles[0]["post_score"] > 5
    assert tiles[0]["dead_reason"].startswith("fires only after normalisation")
    assert tiles[1]["dead_reason"].startswith("never fires: the output after BatchNorm + relu")
    assert tiles[2]["dead_reason"] is None


def test_default_image_size_logging_and_progress(tmp_path, caplog, capsys):
    m = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    with ArchVizWriter(str(tmp_path)) as w:
        add_architecture(w, m, torch.zeros(1, 3, 20, 14))
        with caplog.at_level(logging.INFO, logger="tensorboard_archviz.filters"):
            assert add_filter_grids(w, m, global_step=3, steps=2, progress=True) == ["0", "2"]
    written = read_grids(str(tmp_path))
    assert [written[(n, 3)][1]["image_size"] for n in ("0", "2")] == [[20, 14], [20, 14]]
    done = [r.getMessage() for r in caplog.records if " done in " in r.getMessage()]
    assert len(done) == 2 and done[0].startswith("archviz filters [1/2] 0 done in ")
    assert "archviz filters" in capsys.readouterr().err       # the tqdm bar
    with pytest.raises(ValueError, match="input_to_model"):
        add_filter_grids(ArchVizWriter(str(tmp_path / "other")), nn.Sequential(nn.Conv2d(3, 2, 3)))


def test_layers_cut_by_the_budget_are_written_with_the_reason(tmp_path):
    """A layer the time budget cut (or the forward pass never reached) is written as a grid
    without tiles whose ``skipped`` names the budget (or the reason): the view can say why."""
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))
    with ArchVizWriter(str(tmp_path)) as w:
        written = add_filter_grids(w, m, global_step=4, input_to_model=torch.zeros(1, 1, 12, 12),
                                   steps=2, time_budget=1e-6)
    assert written == ["0"]
    grids = read_grids(str(tmp_path))
    assert sorted(grids) == [("0", 4), ("2", 4), ("3", 4)]
    assert "skipped" not in grids[("0", 4)][1] and len(grids[("0", 4)][1]["tiles"]) == 2
    for node in ("2", "3"):
        png, tiles = grids[(node, 4)]
        assert tiles["tiles"] == [] and tiles["skip_kind"] == "time_budget"
        assert tiles["skipped"].startswith("not computed at this step: the time budget of "
                                           "1e-06 s was spent after 1 of 3 layers")
        assert tiles["layer_class"] == "Conv2d" and png_array(png).shape == (1, 1)
    run = torch_backend.make_grids(_Unreached(), input_shape=(1, 8, 8), steps=2)
    assert [r.node_id for r in run] == ["used"]
    assert [(s.node_id, s.kind) for s in run.skipped] == [("unused", "unreached")]
    assert run.skipped[0].reason.startswith("the model's forward pass did not reach this layer")


class _Unreached(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Conv2d(1, 2, 3)
        self.unused = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.used(x)
