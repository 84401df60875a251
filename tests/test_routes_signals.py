"""The `signals` route (issue 23), the architecture route's cached bytes with ETag and gzip
(issue 25), the filters route's layout checked against the real PNG (issue 21 item 3) and the
plugin-data version (issue 22 item 6), through a real TensorBoard with both loaders.

Signals are written by hand through ``summary.signals_pb`` / ``values_pb`` with known values, so
every figure of the answer is exact.
"""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from conftest import PLUGIN, get_json, run_tensorboard, wait_for_run
from tensorboard_archviz import metadata, summary
from test_plugin_routes import TILES, png_bytes, small_arch

STEPS = [0, 100, 200, 300, 400]


# (step, the writer's meta.update_steps, the dense layer's update ratio): 0.5 over 100 steps is
# 5e-3 per step (usual), over 10 steps 0.05 (high); a span that is not a positive int is unknown
UPDATES = [(0, None, None), (100, 100, 0.5), (200, 100, 0.6), (300, "x", 0.004), (310, 10, 0.5)]


def signals_doc(i):
    return {"version": 1, "meta": {"framework": "torch", "notes": []}, "signals": {
        "weights.rms": {"dense": round(0.1 * (i + 1), 6), "ghost": 1.0},
        "gradients.rms": {"flatten": None, "dense": "NaN" if i == 4 else 0.5},
        "activations.zero_fraction": {"dense": 1.0, "flatten": 0.0}}}


def raw_string(tag, md, payload):
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=md, tensor=tensor_util.make_tensor_proto(
        np.array(payload, dtype=object)))
    return s


def future_md(md):
    content = json.loads(md.plugin_data.content)
    content["version"] = metadata.PROTO_VERSION + 1
    md.plugin_data.content = json.dumps(content).encode()
    return md


def build(root):
    with summary.ArchVizWriter(str(root / "sig")) as w:
        w.add_architecture(small_arch(10), step=0)
        for i, step in enumerate(STEPS):
            w.add_summary(summary.signals_pb(signals_doc(i)), step=step)
        w.add_summary(summary.values_pb("q", {"version": 1, "name": "q",
                                              "values": {"dense": 3, "ghost2": -1}}), step=200)
        w.add_summary(raw_string(metadata.SIGNALS_TAG, metadata.create_signals_metadata(),
                                 b'{"version": 1, "signals": [1, 2'), step=500)
    with summary.ArchVizWriter(str(root / "upd")) as w:  # ratios spanning meta.update_steps
        w.add_architecture(small_arch(10), step=0)
        for step, span, ratio in UPDATES:
            doc = {"version": 1, "meta": {"framework": "torch", "notes": [],
                                          "update_steps": span},
                   "signals": {"weights.rms": {"dense": 0.1}}}
            if ratio is not None:
                doc["signals"]["updates.ratio"] = {"dense": ratio}
            w.add_summary(summary.signals_pb(doc), step=step)
    with summary.ArchVizWriter(str(root / "sig_only")) as w:
        w.add_summary(summary.signals_pb(signals_doc(0)), step=7)
    with summary.ArchVizWriter(str(root / "future")) as w:
        w.add_summary(raw_string(metadata.ARCHITECTURE_TAG,
                                 future_md(metadata.create_architecture_metadata()),
                                 json.dumps(small_arch(10).to_dict()).encode()), step=0)
        w.add_summary(raw_string(metadata.SIGNALS_TAG,
                                 future_md(metadata.create_signals_metadata()),
                                 json.dumps(dict(signals_doc(0), version=2)).encode()), step=0)
    tiles = dict(TILES, tile_size=12000, rows=1, cols=2, image_size=[10 ** 9, "x"])
    tiles["tiles"] = TILES["tiles"] + [5, {"index": 7, "row": 3, "col": 0}]
    with summary.ArchVizWriter(str(root / "tiles")) as w:
        w.add_filter_grid("conv", png_bytes(), tiles, step=0)
        w.add_filter_grid("ok", png_bytes(), TILES, step=0)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    build(root)
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["load_fast", "legacy_loader"])
def server(request, logdir):
    with run_tensorboard(logdir, load_fast=request.param,
                         extra_args=["--samples_per_plugin=archviz=1000"]) as url:
        wait_for_run(url, "tiles", filter_layers=2)
        wait_for_run(url, "future", steps=1)
        deadline = time.time() + 60
        while time.time() < deadline:  # every signal step loaded
            status, body = get_json(url + PLUGIN + "/signals?run=sig")
            if status == 200 and body["total_steps"] == 6 and "values.q" in body["series"]:
                break
            time.sleep(0.5)
        yield url


def q(**params):
    return urllib.parse.urlencode(params)


def signals(url, **params):
    return get_json(url + PLUGIN + "/signals?" + q(**params))


def test_signals_answer_is_exact(server):
    status, body = signals(server, run="sig")
    assert status == 200, body
    assert body["steps"] == STEPS + [500] and body["step_strings"] == [str(s) for s in STEPS + [500]]
    assert body["total_steps"] == 6 and body["downsampled"] is False
    assert body["architecture_step"] == 0
    series = body["series"]
    assert list(series) == ["weights.rms", "gradients.rms", "activations.zero_fraction",
                            "values.q"]
    assert series["weights.rms"] == {"dense": [0.1, 0.2, 0.3, 0.4, 0.5, None],
                                     "ghost": [1.0] * 5 + [None]}
    assert series["gradients.rms"] == {"flatten": [None] * 6,
                                       "dense": [0.5, 0.5, 0.5, 0.5, "NaN", None]}
    assert list(series["activations.zero_fraction"]) == ["flatten", "dense"]  # model order
    assert series["values.q"] == {"dense": [None, None, 3, None, None, None],
                                  "ghost2": [None, None, -1, None, None, None]}
    assert body["unmatched"] == {"weights.rms": ["ghost"], "values.q": ["ghost2"]}
    scales = {d["key"]: (d["label"], d["scale"]) for d in body["signals"]}
    assert scales == {"weights.rms": ("Weight RMS", "log"),
                      "gradients.rms": ("Gradient RMS", "log"),
                      "activations.zero_fraction": ("Dead units (zero on every example)",
                                                    "linear"),
                      "values.q": ("q (user values)", "linear")}  # -1: not all > 0
    assert any(n.startswith("run 'sig' tag 'archviz/signals' step 500: not JSON")
               for n in body["notes"]), body["notes"]
    kinds = {(f["kind"], f["signal"]) for f in body["findings"]}
    assert ("dead", "activations.zero_fraction") in kinds, body["findings"]
    assert ("nonfinite", "gradients.rms") in kinds, body["findings"]
    assert body["thresholds"]["dead_fraction"] == 0.9


def test_update_ratio_findings_are_per_training_step(server):
    status, body = signals(server, run="upd")
    assert status == 200, body
    assert body["steps"] == [0, 100, 200, 300, 310]
    assert body["update_steps"] == [None, 100, 100, None, 10]
    assert body["series"]["updates.ratio"]["dense"] == [None, 0.5, 0.6, 0.004, 0.5]
    high = [f for f in body["findings"] if f["kind"] == "update_high"]
    assert [(f["nodes"], f["step"]) for f in high] == [(["dense"], 310)], body["findings"]
    assert high[0]["text"] == ("`dense` update ratio 0.5 over the 10 training steps up to step "
                               "310: at least 0.05 per step on average, far above the usual "
                               "0.001 (learning rate too high?)")
    status, one = signals(server, run="upd", signal="weights.rms", max_steps="2")
    assert status == 200 and one["steps"] == [0, 310] and one["update_steps"] == [None, 10]


def test_signals_downsample_and_one_signal(server):
    status, body = signals(server, run="sig", max_steps="3", signal="weights.rms")
    assert status == 200, body
    assert body["steps"] == [0, 200, 500] and body["downsampled"] is True  # evenly, ends kept
    assert body["total_steps"] == 6
    assert body["series"] == {"weights.rms": {"dense": [0.1, 0.3, None],
                                              "ghost": [1.0, 1.0, None]}}
    assert body["unmatched"] == {"weights.rms": ["ghost"]}
    assert len(body["signals"]) == 4  # every key present is described


@pytest.mark.parametrize("params,code,needle", [
    ({"run": "sig", "signal": "bogus"}, 400, "parameter 'signal' is not a signal key: 'bogus'"),
    ({"run": "sig", "signal": "time.forward_ms"}, 404,
     "run 'sig' has no signal 'time.forward_ms'; it holds: weights.rms, gradients.rms"),
    ({"run": "sig", "max_steps": "0"}, 400, "parameter 'max_steps' must be an integer from 1"),
    ({"run": "sig", "max_steps": "1e3"}, 400, "got '1e3'"),
    ({"run": "sig", "max_steps": "100001"}, 400, "from 1 to 100000"),
    ({"run": "tiles"}, 404, "run 'tiles' has no layer signals"),
    ({"run": "nope"}, 404, "run 'nope' has no layer signals"),
    ({}, 400, "missing required parameter 'run'"),
])
def test_signals_errors(server, params, code, needle):
    status, body = signals(server, **params)
    assert status == code and needle in body["error"], body


def test_runs_flag_signals_and_versions(server):
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200
    assert runs["sig"]["signals"] is True and runs["sig_only"]["signals"] is True
    assert runs["sig_only"]["steps"] == [] and "signals" not in runs["tiles"]
    assert runs["future"]["steps"] == [0]
    assert runs["future"]["errors"] == [
        "run 'future' tag 'archviz/architecture' was written by a newer tensorboard-archviz "
        "(plugin data version 2; this plugin reads version 1): update tensorboard-archviz; what "
        "this version can read is shown"]
    status, body = signals(server, run="sig_only")
    assert status == 200 and body["architecture_step"] is None and body["unmatched"] == {}
    assert body["steps"] == [7] and body["series"]["weights.rms"]["ghost"] == [1.0]
    status, body = signals(server, run="future")
    assert status == 200
    assert "run 'future' tag 'archviz/signals' was written by a newer" in body["notes"][0]
    assert ("run 'future' tag 'archviz/signals' step 0: written by a newer tensorboard-archviz "
            "(signals version 2; this plugin reads version 1)") in body["notes"]


def test_filters_layout_checked_against_the_png(server):
    status, body = get_json(server + PLUGIN + "/filters?" + q(run="tiles", layer="conv"))
    assert status == 200, body
    assert body["png_size"] == [20, 10]
    assert (body["tile_size"], body["rows"], body["cols"], body["margin"]) == (10, 1, 2, 0)
    assert body["image_size"] is None
    assert body["layout_problems"] == [
        "tile_size 12000 does not fit the 20x10 PNG: 10 used",
        'image_size [1000000000, "x"] is not two sizes in pixels: not shown',
        "4 tiles for a 1x2 grid: the extra ones are unreadable"]
    assert body["tiles"][:2] == TILES["tiles"]
    assert body["tiles"][2] == {"index": 2, "row": None, "col": None,
                                "unreadable": "tile entry 2 is not an object (int)"}
    assert body["tiles"][3] == {"index": 7, "row": None, "col": None,
                                "unreadable": "tile entry 3 is outside the 1x2 grid (row 3, col 0)"}
    status, body = get_json(server + PLUGIN + "/filters?" + q(run="tiles", layer="ok"))
    assert status == 200 and body["layout_problems"] == [] and body["tiles"] == TILES["tiles"]
    assert body["tile_size"] == TILES["tile_size"]


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_architecture_etag_gzip_and_304(server):
    url = server + PLUGIN + "/architecture?" + q(run="sig")
    status, plain, headers = fetch(url)
    assert status == 200 and "Content-Encoding" not in headers
    etag = headers["ETag"]
    assert etag.startswith('"') and len(etag) == 34
    assert "no-cache" in headers["Cache-Control"]
    assert json.loads(plain)["model"]["total_params"] == 7850
    status, zipped, headers = fetch(url, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["ETag"] == etag
    assert gzip.decompress(zipped) == plain and len(zipped) < len(plain)
    status, body, headers = fetch(url, {"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    status, again, headers = fetch(url, {"If-None-Match": '"0123"'})
    assert status == 200 and again == plain and headers["ETag"] == etag  # same after caching
    status, by_step, headers = fetch(server + PLUGIN + "/architecture?" + q(run="sig", step=0))
    assert status == 200 and by_step == plain and headers["ETag"] == etag


def test_new_write_changes_the_etag(tmp_path):
    with summary.ArchVizWriter(str(tmp_path / "grow")) as w:
        w.add_architecture(small_arch(10), step=0)
    with run_tensorboard(tmp_path, load_fast=True) as url:
        wait_for_run(url, "grow", steps=1)
        first = fetch(url + PLUGIN + "/architecture?run=grow")
        with summary.ArchVizWriter(str(tmp_path / "grow")) as w:
            w.add_architecture(small_arch(20), step=1)
        wait_for_run(url, "grow", steps=2)
        status, body, headers = fetch(url + PLUGIN + "/architecture?run=grow",
                                      {"If-None-Match": first[2]["ETag"]})
        assert status == 200 and headers["ETag"] != first[2]["ETag"]
        assert json.loads(body)["model"]["total_params"] == 784 * 20 + 20
        status, body, _ = fetch(url + PLUGIN + "/architecture?run=grow&step=0",
                                {"If-None-Match": first[2]["ETag"]})
        assert status == 304


def test_values_bound_downsamples_and_says_so(logdir):
    """The answer's size bound applies to the values served: all keys (8 per step here) get
    fewer steps than one key (2 per step), each answer says why (reader level, no server)."""
    from tensorboard_archviz import reader, signal_series
    from tensorboard_archviz.event_files import LocalEventFilesProvider

    dp = LocalEventFilesProvider(str(logdir))
    sr = signal_series.SignalsReader(dp, reader.ArchitectureReader(dp), max_cells=9)
    everything = sr.answer(None, "", "sig")
    assert everything["steps"] == [500] and everything["total_steps"] == 6
    assert everything["downsampled"] is True
    assert "1 of 6 steps shown: an answer holds at most 9 values (8 per step here)" in \
        everything["notes"]
    one = sr.answer(None, "", "sig", "weights.rms")
    assert one["steps"] == [0, 200, 300, 500] and one["downsampled"] is True
    assert one["series"]["weights.rms"]["dense"] == [0.1, 0.3, 0.4, None]
