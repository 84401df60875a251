"""The plugin's routes through a real TensorBoard subprocess, with both loaders.

Data is written with the package's own writer (no framework needed): good runs, and runs with
broken data that must give clear 422 errors while every other run keeps working.
"""

import io
import json
import urllib.parse

import numpy as np
import pytest
from PIL import Image
from tensorboard.compat.proto import summary_pb2
from tensorboard.util import tensor_util

from conftest import PLUGIN, get_json, http_get, run_tensorboard, wait_for_run
from tensorboard_archviz import metadata, schema, summary


def small_arch(units=10, name="dense"):
    return schema.Architecture(
        framework="keras", framework_version="3.15.1",
        model=schema.ModelInfo("m", "Sequential", total_params=784 * units + units,
                               trainable_params=784 * units + units, non_trainable_params=0),
        inputs=["flatten"], outputs=[name],
        nodes=[schema.Node("flatten", "flatten", "Flatten", input_shapes=[[None, 28, 28]],
                           output_shapes=[[None, 784]], dtype="float32"),
               schema.Node(name, name, "Dense", input_shapes=[[None, 784]],
                           output_shapes=[[None, units]], dtype="float32",
                           params={"trainable": 784 * units + units, "non_trainable": 0},
                           activation="softmax", config={"units": units}, macs=784 * units)],
        edges=[schema.Edge("flatten", name, [None, 784])])


BIG_STEP = 2 ** 60 + 1  # above 2^53: a JavaScript number cannot hold it


def png_bytes(size=(20, 10)):
    buf = io.BytesIO()
    Image.fromarray(np.arange(size[0] * size[1], dtype=np.uint8).reshape(size[1], size[0]),
                    "L").save(buf, "PNG")
    return buf.getvalue()


TILES = {"tile_size": 10, "margin": 0, "rows": 1, "cols": 2, "channels": 1,
         "value_range": [0, 1], "tiles": [
             {"index": 0, "score": 1.5, "post_score": 1.5, "dead": False, "row": 0, "col": 0},
             {"index": 1, "score": -3.0, "post_score": 0.0, "dead": True, "row": 0, "col": 1}]}


def raw_summary(tag, value, md):
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=md, tensor=tensor_util.make_tensor_proto(value))
    return s


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    with summary.ArchVizWriter(str(root / "good")) as w:
        w.add_architecture(small_arch(10), step=0)
        w.add_architecture(small_arch(32), step=3)
        w.add_filter_grid("conv2d", png_bytes(), TILES, step=3)
        w.add_filter_grid("conv2d", png_bytes(), TILES, step=5)
    with summary.ArchVizWriter(str(root / "weird <b>name</b> ü")) as w:
        w.add_architecture(small_arch(5, name="<img src=x onerror=alert(1)>"), step=7)
    amd = metadata.create_architecture_metadata()
    with summary.ArchVizWriter(str(root / "broken")) as w:
        w.add_summary(raw_summary(metadata.ARCHITECTURE_TAG,
                                  np.array(b'{"schema_version": 1, "nodes": [', dtype=object),
                                  amd), step=1)
        future = small_arch().to_dict()
        future["schema_version"] = 99
        w.add_summary(raw_summary(metadata.ARCHITECTURE_TAG,
                                  np.array(json.dumps(future).encode(), dtype=object), amd),
                      step=2)
        w.add_summary(raw_summary(metadata.filters_tag("conv"),
                                  np.array([b"not a png", b"{}"], dtype=object),
                                  metadata.create_filters_metadata("conv")), step=1)
    with summary.ArchVizWriter(str(root / "wrongdtype")) as w:
        w.add_summary(raw_summary(metadata.ARCHITECTURE_TAG, np.array(3.5, dtype=np.float32),
                                  amd), step=0)
    with summary.ArchVizWriter(str(root / "steps")) as w:  # torch's SummaryWriter accepts -1
        for step, units in ((-1, 3), (0, 4), (BIG_STEP, 5)):
            w.add_architecture(small_arch(units), step=step)
        w.add_filter_grid("conv2d", png_bytes(), TILES, step=-1)
        w.add_filter_grid("conv2d", png_bytes(), TILES, step=BIG_STEP)
    with summary.ArchVizWriter(str(root / "deep")) as w:
        for step, depth in ((0, 500), (1, 10_000)):
            text = json.dumps(small_arch().to_dict()).replace(
                '"units": 10', '"units": ' + '{"x": ' * depth + "1" + "}" * depth)
            w.add_summary(raw_summary(metadata.ARCHITECTURE_TAG,
                                      np.array(text.encode(), dtype=object), amd), step=step)
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["load_fast", "legacy_loader"])
def server(request, logdir):
    with run_tensorboard(logdir, load_fast=request.param) as url:
        wait_for_run(url, "good", steps=2, filter_layers=1)
        wait_for_run(url, "broken", steps=2)
        wait_for_run(url, "wrongdtype")
        wait_for_run(url, "steps", steps=3)
        wait_for_run(url, "deep", steps=2)
        yield url


def q(**params):
    return urllib.parse.urlencode(params)


def test_runs_lists_steps_and_filter_layers(server):
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200
    assert runs["good"]["steps"] == [0, 3]
    assert runs["good"]["filter_layers"] == ["conv2d"]
    assert runs["weird <b>name</b> ü"]["steps"] == [7]
    assert runs["broken"]["steps"] == [1, 2]


def test_architecture_latest_and_by_step(server):
    status, arch = get_json(server + PLUGIN + "/architecture?" + q(run="good"))
    assert status == 200
    assert arch["schema_version"] == schema.SCHEMA_VERSION
    assert arch["model"]["total_params"] == 784 * 32 + 32
    assert [n["id"] for n in arch["nodes"]] == ["flatten", "dense"]
    assert arch["edges"] == [{"source": "flatten", "target": "dense", "shape": [None, 784]}]
    status, arch0 = get_json(server + PLUGIN + "/architecture?" + q(run="good", step=0))
    assert status == 200 and arch0["model"]["total_params"] == 7850
    status, weird = get_json(server + PLUGIN + "/architecture?" + q(run="weird <b>name</b> ü"))
    assert status == 200 and weird["nodes"][1]["name"] == "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize("params,code,needle", [
    ({}, 400, "run"),
    ({"run": "good", "step": "abc"}, 400, "integer"),
    ({"run": "good", "step": "-1"}, 404, "available steps: [0, 3]"),
    ({"run": "good", "step": "1152921504606846977"}, 404, "no step 1152921504606846977"),
    ({"run": "good", "step": "9223372036854775808"}, 400, "out of range"),
    ({"run": "good", "step": "99999999999999999999999"}, 400, "out of range"),
    ({"run": "good", "step": "4"}, 404, "available steps: [0, 3]"),
    ({"run": "nope"}, 404, "no architecture"),
    ({"run": "../../etc/passwd"}, 404, "no architecture"),
    ({"run": "x" * 5000}, 400, "too long"),
    ({"run": "broken", "step": "1"}, 422, "not valid JSON"),
    ({"run": "broken", "step": "2"}, 422, "newer than this"),
    ({"run": "wrongdtype"}, 422, "not a scalar string tensor"),
])
def test_architecture_errors_are_json(server, params, code, needle):
    status, body = get_json(server + PLUGIN + "/architecture?" + q(**params))
    assert status == code, body
    assert needle in body["error"]
    assert "Traceback" not in body["error"]


def test_filters_route_and_png(server):
    status, f = get_json(server + PLUGIN + "/filters?" + q(run="good", layer="conv2d"))
    assert status == 200
    assert f["step"] == 5 and f["steps"] == [3, 5]
    assert [t["dead"] for t in f["tiles"]] == [False, True]
    assert f["image_url"] == "filters_image?" + q(run="good", layer="conv2d", step=5)
    status, body, headers = http_get(server + PLUGIN + "/" + f["image_url"])
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(body)).size == (20, 10)
    status, f3 = get_json(server + PLUGIN + "/filters?" + q(run="good", layer="conv2d", step=3))
    assert status == 200 and f3["step"] == 3


@pytest.mark.parametrize("route,params,code", [
    ("filters", {"run": "good"}, 400),
    ("filters", {"run": "good", "layer": "nope"}, 404),
    ("filters", {"run": "good", "layer": "conv2d", "step": "4"}, 404),
    ("filters_image", {"run": "broken", "layer": "conv"}, 422),
    ("filters", {"run": "broken", "layer": "conv"}, 422),
    ("filters_image", {"layer": "conv"}, 400),
])
def test_filters_errors(server, route, params, code):
    status, body = get_json(server + PLUGIN + "/" + route + "?" + q(**params))
    assert status == code, body
    assert isinstance(body, dict) and body["error"]


def test_static_files_cannot_escape(server):
    status, body, headers = http_get(server + PLUGIN + "/index.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    for path in ["/static/..%2Fplugin.py", "/static/../plugin.py", "/static/.gitignore",
                 "/static/nope.js", "/static/%2e%2e%2fschema.py"]:
        status, body, _ = http_get(server + PLUGIN + path)
        assert status == 404, path
        assert b"import" not in body


def test_frontend_metadata_lists_the_tab(server):
    status, listing = get_json(server + "/data/plugins_listing")
    assert status == 200
    entry = listing["archviz"]
    assert entry["tab_name"] == "Arch Viz"
    assert entry["enabled"] is True
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/archviz/index.js"} \
        or entry["loading_mechanism"]["module_path"].endswith("/index.js")


def test_diff_route(server):
    status, d = get_json(server + PLUGIN + "/diff?" + q(run_a="good", step_a=0, run_b="good",
                                                          step_b=3))
    assert status == 200, d
    assert d["a"] == {"run": "good", "step": 0, "step_string": "0"}
    assert d["b"] == {"run": "good", "step": 3, "step_string": "3"}
    assert d["changed"][0]["id_a"] == "dense"
    assert d["changed"][0]["fields"]["config.units"] == {"a": 10, "b": 32}
    assert d["totals"]["total_params"] == {"a": 7850, "b": 25120, "delta": 17270}
    status, d = get_json(server + PLUGIN + "/diff?" + q(run_a="good", run_b="good"))
    assert status == 200 and d["identical"] is True and d["a"]["step"] == 3


@pytest.mark.parametrize("params,code", [
    ({"run_a": "good"}, 400),
    ({"run_a": "good", "run_b": "nope"}, 404),
    ({"run_a": "good", "step_a": "9", "run_b": "good"}, 404),
    ({"run_a": "good", "step_a": "x", "run_b": "good"}, 400),
    ({"run_a": "good", "run_b": "broken"}, 422),
])
def test_diff_errors(server, params, code):
    status, body = get_json(server + PLUGIN + "/diff?" + q(**params))
    assert status == code, body
    assert body["error"]


def test_negative_and_huge_steps_are_served(server):
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200
    assert runs["steps"]["steps"] == [-1, 0, BIG_STEP]
    assert runs["steps"]["step_strings"] == ["-1", "0", "1152921504606846977"]
    assert runs["good"]["step_strings"] == ["0", "3"]
    for step, units in (("-1", 3), ("1152921504606846977", 5)):
        status, arch = get_json(server + PLUGIN + "/architecture?" + q(run="steps", step=step))
        assert status == 200, arch
        assert arch["nodes"][1]["config"]["units"] == units
    status, d = get_json(server + PLUGIN + "/diff?" + q(run_a="steps", step_a="-1", run_b="steps",
                                                          step_b="1152921504606846977"))
    assert status == 200, d
    assert d["b"]["step_string"] == "1152921504606846977" and d["a"]["step"] == -1
    status, f = get_json(server + PLUGIN + "/filters?" + q(run="steps", layer="conv2d", step="-1"))
    assert status == 200 and f["step_string"] == "-1"
    assert f["step_strings"] == ["-1", "1152921504606846977"]
    status, f = get_json(server + PLUGIN + "/filters?" + q(run="steps", layer="conv2d"))
    assert f["image_url"].endswith("step=1152921504606846977")
    status, body, _ = http_get(server + PLUGIN + "/" + f["image_url"])
    assert status == 200 and body.startswith(b"\x89PNG")


@pytest.mark.parametrize("route,params", [
    ("architecture", {"run": "deep", "step": "0"}),
    ("architecture", {"run": "deep", "step": "1"}),
    ("diff", {"run_a": "deep", "step_a": "0", "run_b": "good"}),
    ("diff", {"run_a": "good", "run_b": "deep", "step_b": "1"}),
])
def test_deeply_nested_json_is_a_422_naming_the_field(server, route, params):
    status, body = get_json(server + PLUGIN + "/" + route + "?" + q(**params))
    assert status == 422, body
    assert "nodes[1].config.units.x.x" in body["error"]
    assert "JSON depth limit of 100 levels" in body["error"]
    status, runs = get_json(server + PLUGIN + "/runs")
    assert status == 200 and runs["deep"]["steps"] == [0, 1]


def test_timeline_route(server):
    status, tl = get_json(server + PLUGIN + "/timeline?" + q(run="good"))
    assert status == 200, tl
    assert tl["run"] == "good" and tl["errors"] == []
    first, second = tl["entries"]
    assert first["step"] == 0 and first["first"] is True
    assert first["summary"] == ("first architecture written: m (Sequential), 2 layers, 7,850 "
                                "params (7,850 trainable)")
    assert second["previous_step_string"] == "0" and second["identical"] is False
    status, d = get_json(server + PLUGIN + "/diff?" + q(run_a="good", step_a=0, run_b="good",
                                                          step_b=3))
    for key in ("summary", "highlights", "totals", "identical"):
        assert second[key] == d[key], key
    assert second["counts"] == {"added": 0, "removed": 0, "changed": 1, "renamed": 0,
                                "edges_added": 0, "edges_removed": 0}
    assert "trainable params 7,850 \u2192 25,120" in second["details"]
    status, tl = get_json(server + PLUGIN + "/timeline?" + q(run="broken"))
    assert status == 200 and [("error" in e) for e in tl["entries"]] == [True, True]
    status, tl = get_json(server + PLUGIN + "/timeline?" + q(run="steps"))
    assert [e["step_string"] for e in tl["entries"]] == ["-1", "0", "1152921504606846977"]


@pytest.mark.parametrize("params,code", [({}, 400), ({"run": "nope"}, 404)])
def test_timeline_errors(server, params, code):
    status, body = get_json(server + PLUGIN + "/timeline?" + q(**params))
    assert status == code and body["error"]
