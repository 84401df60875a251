"""Filter maximisation: the framework-neutral core, the PNG grid, and the PyTorch backend.

Real PyTorch models; the correctness test hand-sets the first conv layer's kernels and checks
that each optimised image reproduces its kernel (better than random noise ever does).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from filters_helpers import assert_recovers_hand_kernels, hand_kernels, png_image
from tensorboard_archviz.filters import core, grid

torch = pytest.importorskip("torch")
nn = torch.nn

from tensorboard_archviz.filters import torch_backend  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two cores are shared by the whole team: two OpenMP threads fighting over them are several
    # times slower than one.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- core


def test_options_are_validated_by_name():
    with pytest.raises(TypeError, match="'stepz'"):
        core.resolve_options({"stepz": 3})
    with pytest.raises(ValueError, match="value_range"):
        core.resolve_options({"value_range": (1, 0)})
    with pytest.raises(ValueError, match="parametrization"):
        core.resolve_options({"parametrization": "wavelet"})
    assert core.resolve_options({}).n_steps == 128
    assert core.resolve_options({"fast": True}).n_steps == 64
    assert core.resolve_options({}).steps_for(False) == 128     # 256 before (issue 25)
    assert core.resolve_options({"fast": True}).steps_for(False) == 64
    with pytest.raises(ValueError, match="objective"):
        core.resolve_options({"objective": "max"})
    with pytest.raises(ValueError, match=r"\[12\] out of range"):
        core.choose_filters(12, core.resolve_options({"filters": [0, 12]}))
    assert core.choose_filters(100, core.resolve_options({})) == list(range(64))


def test_dct_basis_is_orthonormal_and_render_stays_in_range():
    d = core.dct_matrix(13)
    np.testing.assert_allclose(d @ d.T, np.eye(13), atol=1e-12)
    opts = core.resolve_options({"value_range": (-2.0, 3.0)})
    for param in ("pixel", "fourier"):
        opts.parametrization = param
        plan = core.make_plan("c", "Conv2d", 4, 3, (20, 24), (-2.0, 3.0), False, opts)
        bases = core.make_bases(plan)
        z = 50.0 * np.random.RandomState(0).randn(4, 3, *plan.canvas_hw).astype(np.float32)
        img = core.render_numpy(z, plan, bases)
        assert img.shape == (4, 3) + plan.canvas_hw
        assert img.min() >= -2.0 and img.max() <= 3.0
    # Fixed contrast: whatever the logits' scale, the deeper layers' images keep one contrast.
    plan = core.make_plan("c", "Conv2d", 4, 1, (20, 20), (0.0, 1.0), False,
                          core.resolve_options({}))
    assert plan.gain == 1.5 and plan.parametrization == "fourier"
    bases = core.make_bases(plan)
    z = np.random.RandomState(1).randn(2, 1, *plan.canvas_hw).astype(np.float32)
    a, b = core.render_numpy(z, plan, bases), core.render_numpy(1000.0 * z, plan, bases)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.mean((a < 0.02) | (a > 0.98)) < 0.05


def test_plan_choices():
    opts = core.resolve_options({})
    tiny = core.make_plan("a", "Conv2d", 8, 1, (28, 28), (0, 1), True, opts)
    assert (tiny.scale, tiny.parametrization, tiny.transforms) == (2, "pixel", False)
    assert (tiny.objective, tiny.steps, tiny.gain) == ("centre", 128, 0.0)
    assert tiny.canvas_hw == (56 + 2 * tiny.jitter, 56 + 2 * tiny.jitter)
    deep = core.make_plan("d", "Conv2d", 8, 1, (28, 28), (0, 1), False, opts)
    assert (deep.scale, deep.parametrization, deep.objective, deep.jitter, deep.steps) == \
        (1, "fourier", "interior", 2, 128)
    assert deep.transforms and not deep.rotate          # scale 0.95-1.05 only
    big = core.make_plan("b", "Conv2d", 8, 3, (128, 96), (0, 255), False, opts)
    assert (big.scale, big.parametrization, big.transforms, big.rotate) == \
        (1, "fourier", True, True)
    # Interior: positions whose receptive field (centre: rows/cols 4..16 of 28) stays inside.
    sup = np.zeros((28, 28), np.float32)
    sup[8:21, 8:21] = 1.0                               # 13 px field of the centre (7, 7) of 14
    win = core.interior_window((14, 14), sup)
    rows = np.nonzero(win.sum(1))[0]
    assert list(rows) == list(range(3, 11)) and np.isclose(win.sum(), 1.0)
    w = core.center_window((7, 8), 0.0)
    assert w.sum() == 1.0 and w[3, 4] == 1.0
    np.testing.assert_allclose(core.center_window((5, 5), 0.2).sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(core.center_window((5, 5), None), np.full((5, 5), 0.04))
    assert core.chunk_bounds(50, 16) == [(0, 13), (13, 26), (26, 38), (38, 50)]


def test_run_in_chunks_measures_batch_sizes_on_the_real_work():
    clock = [0.0]
    per_image = {1: 1.0, 4: 0.5, 16: 0.75}      # seconds per image at each batch size
    runs = []

    def run_chunk(lo, hi):
        runs.append((lo, hi))
        clock[0] += (hi - lo) * per_image.get(hi - lo, 0.6)

    opts = core.resolve_options({"memory_mb": 10_000})
    size = core.run_in_chunks(40, 200 * 2 ** 20, opts, run_chunk, lambda: None,
                              clock=lambda: clock[0])
    assert size == 4
    # 1, 4, then 16 (slower per image: stop growing), then the other 19 in batches of <= 4.
    assert runs[:3] == [(0, 1), (1, 5), (5, 21)]
    assert all(hi - lo <= 4 for lo, hi in runs[3:])
    assert [i for lo, hi in sorted(runs) for i in range(lo, hi)] == list(range(40))
    # Small work runs in one batch without measuring; the user's chunk_size wins.
    runs.clear()
    assert core.run_in_chunks(40, 1024, opts, run_chunk, lambda: 1 / 0) == 40
    assert runs == [(0, 40)]
    runs.clear()
    assert core.run_in_chunks(10, 1024, core.resolve_options({"chunk_size": 4}), run_chunk,
                              lambda: 1 / 0) == 4
    assert runs == [(0, 4), (4, 7), (7, 10)]


# ----------------------------------------------------------------------------- grid


def test_grid_png_is_greyscale_ordered_and_unstretched():
    n, h, w = 7, 5, 6
    imgs = np.zeros((n, h, w, 1), np.float32)
    for k in range(n):
        imgs[k] = 0.1 * k           # tile k is flat at 0.1*k: no per-tile stretching allowed
    imgs[6, 0, 0, 0] = 1.0
    png, lay = grid.encode_grid(imgs, (0.0, 1.0), margin=2, tile_min=64)
    im = png_image(png)
    assert im.mode == "L"
    assert (lay["rows"], lay["cols"], lay["tile_size"]) == (3, 3, 66)   # 6 px * 11
    assert im.size == (3 * (66 + 2) + 2, 3 * (66 + 2) + 2) == (lay["width"], lay["height"])
    a = np.asarray(im)
    for k in range(n):
        t = grid.decode_tile(png, lay, k)
        inner = t[6:-6, 6:-6] if k != 6 else t[20:-6, 6:-6]
        assert np.all(inner == int(round(0.1 * k * 255))), k
    assert grid.decode_tile(png, lay, 6)[5, 0] == 255      # (0, 0) of tile 6, upscaled 11x
    # Margins and the empty 8th/9th cells are white.
    assert np.all(a[:2] == 255) and np.all(a[:, :2] == 255)
    assert np.all(grid.decode_tile(png, lay, 8) == 255)


def test_grid_rgb_and_size_cap():
    imgs = np.random.RandomState(0).rand(3, 4, 4, 3).astype(np.float32)
    png, lay = grid.encode_grid(imgs, (0.0, 1.0))
    assert png_image(png).mode == "RGB" and lay["channels"] == 3
    t = grid.decode_tile(png, lay, 2)
    assert np.array_equal(t[0, 0], grid.to_uint8(imgs[2, 0, 0], (0, 1)))
    big = np.zeros((512, 64, 64, 1), np.float32)
    png, lay = grid.encode_grid(big, (0.0, 1.0))
    assert max(png_image(png).size) <= 2048 and lay["cols"] == 23 and lay["tile_size"] == 64


# ----------------------------------------------------------------------------- torch backend


def hand_model():
    """conv(1->4, 5x5) with hand-set kernels (filter 3 is dead: bias -1000), in-place ReLU,
    max-pool, a second conv; BatchNorm and Dropout to check inference mode."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                      nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
                      nn.Dropout(0.5), nn.Flatten(), nn.Linear(6 * 14 * 14, 3))
    with torch.no_grad():
        for i, k in enumerate(hand_kernels()):
            m[0].weight[i, 0] = torch.from_numpy(k)
            m[0].bias[i] = 0.0
        m[0].bias[3] = -1000.0
        m[4].running_mean.uniform_(-0.5, 0.5)
        m[4].running_var.uniform_(0.5, 2.0)
    return m


@pytest.fixture(scope="module")
def hand_run():
    m = hand_model()
    m.train()
    before = copy.deepcopy(m.state_dict())
    lines = []
    results = list(torch_backend.make_grids(m, None, input_shape=(1, 28, 28), log=lines.append,
                                            steps=64))
    return m, before, results, lines


def test_torch_recovers_hand_set_kernels(hand_run):
    _, _, results, _ = hand_run
    first = results[0]
    assert first.node_id == "0" and first.tiles["parametrization"] == "pixel"
    assert_recovers_hand_kernels(first.images)


def test_torch_dead_filter_range_png_and_order(hand_run):
    _, _, results, _ = hand_run
    assert [r.node_id for r in results] == ["0", "3"]
    first, second = results
    tiles = first.tiles["tiles"]
    assert [t["index"] for t in tiles] == [0, 1, 2, 3]
    assert [t["dead"] for t in tiles] == [False, False, False, True]
    # The score is the conv's own output before the in-place ReLU: about -1000 for the dead one.
    assert -1001 < tiles[3]["score"] < -990 and tiles[3]["post_score"] == 0.0
    assert all(t["score"] > 1.0 and t["post_score"] == t["score"] for t in tiles[:3])
    assert first.tiles["activation"] == "relu"
    for r in results:
        assert r.images.min() >= 0.0 and r.images.max() <= 1.0
        im = png_image(r.png)
        t = r.tiles
        assert im.mode == "L" and t["channels"] == 1
        side = t["cols"] * (t["tile_size"] + t["margin"]) + t["margin"]
        assert im.size == (side, t["rows"] * (t["tile_size"] + t["margin"]) + t["margin"])
        assert [(x["row"], x["col"]) for x in t["tiles"]] == \
            [divmod(k, t["cols"]) for k in range(len(t["tiles"]))]
        assert t["image_size"] == [28, 28] and t["value_range"] == [0.0, 1.0]
        assert t["method"] == "batched-adam-fourier" and t["steps"] == 64
    assert second.tiles["parametrization"] == "fourier" and len(second.tiles["tiles"]) == 6
    # The first layer's tiles show its 5x5 receptive field (+ jitter), not the whole image;
    # deeper tiles (interior objective) the whole image.
    assert first.tiles["crop"][2] <= 8 and second.tiles["crop"] is None
    # The first layer's tiles carry the kernel itself.
    assert first.tiles["kernel_shape"] == [5, 5, 1] and "kernel" not in second.tiles["tiles"][0]
    for i, k in enumerate(hand_kernels()):
        np.testing.assert_allclose(np.array(tiles[i]["kernel"])[:, :, 0], k, atol=1e-6)


def test_torch_model_state_is_untouched(hand_run):
    m, before, _, lines = hand_run
    assert all(mod.training for mod in m.modules())         # train mode restored
    after = m.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k                  # BatchNorm stats included
    assert all(p.grad is None for p in m.parameters())
    assert any("[1/2] 0 (Conv2d): 4 of 4 filters" in l for l in lines)
    assert any("[2/2] 3 done" in l for l in lines)


def test_torch_heads_match_the_modules():
    torch.manual_seed(1)
    x = torch.randn(3, 4, 11, 12)
    idx = torch.tensor([5, 0, 3])
    mods = [nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2),
            nn.Conv2d(4, 6, 3, padding="same", dilation=2),
            nn.Conv2d(4, 8, 3, groups=4, padding=1, padding_mode="reflect"),
            nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(0, 1), bias=False),
            nn.ConvTranspose2d(4, 6, 3, stride=2)]
    for mod in mods:
        with torch.no_grad():
            full = mod(x)
            pre = torch_backend.make_head(mod, torch)(x, idx)
        expect = full[torch.arange(3), idx]
        assert pre.shape == expect.shape, mod
        torch.testing.assert_close(pre, expect, atol=1e-5, rtol=1e-5)


def test_torch_value_range_filters_option_and_chunking_invariance():
    m = nn.Sequential(nn.Conv2d(3, 12, 3), nn.GELU(), nn.Conv2d(12, 5, 3, stride=2))
    common = dict(layers=["2"], input_shape=(3, 20, 20), steps=12, value_range=(-1.0, 2.0))
    a = next(torch_backend.make_grids(m, **common, filters=[4, 1, 2]))
    assert [t["index"] for t in a.tiles["tiles"]] == [1, 2, 4]
    assert a.images.min() >= -1.0 and a.images.max() <= 2.0
    assert png_image(a.png).mode == "RGB" and a.tiles["value_range"] == [-1.0, 2.0]
    b = next(torch_backend.make_grids(m, **common, filters=[1, 2, 4], chunk_size=2))
    assert b.tiles["chunk_size"] == 2
    np.testing.assert_allclose(a.images, b.images, atol=2e-3)
    c = next(torch_backend.make_grids(m, layers=["0"], input_shape=(3, 20, 20), steps=2,
                                      max_filters=5))
    assert [t["index"] for t in c.tiles["tiles"]] == [0, 1, 2, 3, 4]
    assert c.tiles["filters_total"] == 12 and c.tiles["activation"] == "gelu"


def test_torch_image_size_from_the_example_input():
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3))
    results = list(torch_backend.make_grids(m, steps=2, input_to_model=torch.zeros(4, 2, 20, 24)))
    assert [r.node_id for r in results] == ["0", "2"]
    assert results[1].tiles["image_size"] == [20, 24]       # the example's size, never 128
    assert results[1].images.shape == (2, 20, 24, 2)
    assert results[1].tiles["channels"] == 1                # 2 channels: shown as their mean
    d = next(torch_backend.make_grids(m, ["2"], steps=1, input_to_model={"x": torch.zeros(1, 2, 9, 9)}))
    assert d.tiles["image_size"] == [9, 9]
    with pytest.raises(ValueError, match="input_to_model"):
        list(torch_backend.make_grids(nn.Sequential(nn.Conv2d(2, 3, 3)), steps=1))


class _Net1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3)
        self.unused = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x)


def test_torch_conv1d_and_unreached_layers_are_skipped_with_a_log_line():
    lines = []
    out = list(torch_backend.make_grids(_Net1d(), log=lines.append, input_shape=(1, 8, 8),
                                        steps=2))
    assert out == []
    assert any("skipped conv (Conv1d): only 2-D convolutions" in l for l in lines)
    assert any("skipped unused: the model's forward pass did not reach this layer" in l
               for l in lines)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        list(torch_backend.make_grids(_Net1d(), ["nope"]))
    with pytest.raises(TypeError, match="'stepz'"):
        list(torch_backend.make_grids(_Net1d(), stepz=1))


def test_torch_time_budget_stops_starting_layers():
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3))
    lines = []
    out = list(torch_backend.make_grids(m, input_shape=(1, 12, 12), steps=3, time_budget=1e-6,
                                        log=lines.append))
    assert [r.node_id for r in out] == ["0"]
    assert any("time budget" in l and "skipped 2 layer(s): 2, 3" in l for l in lines)


def test_torch_float64_model_under_no_grad():
    m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3)).double()
    with torch.no_grad():
        out = list(torch_backend.make_grids(m, input_shape=(1, 10, 10), steps=3))
    assert [r.node_id for r in out] == ["0", "2"]
    assert out[1].images.dtype == np.float32 and out[1].images.shape == (2, 10, 10, 1)
    assert all(p.grad is None for p in m.parameters())


def test_torch_threads_follow_the_load_and_are_restored(monkeypatch):
    import os

    from tensorboard_archviz.filters import torch_optim

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    torch.set_num_threads(2)
    try:
        # Busy cores: one thread (OpenMP threads waiting for a busy core are far slower).
        assert torch_optim.choose_threads(None, torch) == (1, "load average 5.0 on 2 cores")
        assert torch_optim.choose_threads(3, torch) == (3, "threads=3")
        monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
        assert torch_optim.choose_threads(None, torch) == (2, "torch's setting")
        monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
        seen, lines = [], []
        m = nn.Sequential(nn.Conv2d(1, 2, 3))
        m.register_forward_pre_hook(lambda *a: seen.append(torch.get_num_threads()))
        out = list(torch_backend.make_grids(m, input_shape=(1, 8, 8), steps=2, log=lines.append))
        assert len(out) == 1 and seen[0] == 2 and set(seen[1:]) == {1}   # after the probe: 1
        assert any("1 torch thread(s) instead of 2 (load average 5.0 on 2 cores)" in l
                   for l in lines)
        assert torch.get_num_threads() == 2                 # restored
        with pytest.raises(ValueError, match="threads must be a positive int"):
            core.resolve_options({"threads": 0})
    finally:
        torch.set_num_threads(1)
