"""Broken event data through a real TensorBoard, with both loaders: every broken run/step gets a
clear 4xx JSON answer naming the run and the problem, and every other run keeps being served.

tests/test_plugin_routes.py already covers invalid architecture JSON, a future schema_version,
a float architecture tensor and a non-PNG blob; this module adds what an event file can hold
beyond those: a file cut in the middle of a record (with and without a newer file after it),
garbage in the middle of a file, malformed TensorProtos (content of the wrong size, a string
scalar without a value), architecture tensors of the wrong rank / not UTF-8 / not an object,
filter-grid series of the wrong rank or dtype, a missing or non-UTF-8 tile metadata blob, and
PNGs that are truncated or merely start with the PNG signature.
"""

from __future__ import annotations

import glob
import json
import os
import struct
import time
import urllib.parse

import numpy as np
import pytest
from tensorboard.compat.proto import (event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2,
                                      types_pb2)
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.util import tensor_util

from conftest import PLUGIN, get_json, http_get, run_tensorboard, wait_for_run
from tensorboard_archviz import metadata, summary
from test_plugin_routes import TILES, png_bytes, small_arch

AMD = metadata.create_architecture_metadata()


def fmd(layer="conv"):
    return metadata.create_filters_metadata(layer)


def tensor_summary(tag, md, tensor):
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=md, tensor=tensor)
    return s


def value_summary(tag, md, value):
    return tensor_summary(tag, md, tensor_util.make_tensor_proto(value))


def shape(*dims):
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])


def cut_last_record(writer, size_before):
    """Cut the writer's file in the middle of the record written after `size_before` bytes."""
    path = writer._writer.path
    size = os.path.getsize(path)
    assert size > size_before + 16
    with open(path, "r+b") as f:
        f.truncate(size_before + (size - size_before) // 2)
    return path


# -- reading event files strictly (also used by the other reliability tests) ---------------------

def read_records(path):
    """Every Event of one file; fails on any truncated record or bad checksum (no skipping)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, events = 0, []
    while pos < len(data):
        assert pos + 12 <= len(data), "%s: truncated record header at byte %d" % (path, pos)
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc32c(header), \
            "%s: bad length checksum at byte %d" % (path, pos)
        body = data[pos + 12:pos + 12 + length]
        assert len(body) == length and pos + 16 + length <= len(data), \
            "%s: truncated record at byte %d" % (path, pos)
        assert struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])[0] == \
            masked_crc32c(body), "%s: bad data checksum at byte %d" % (path, pos)
        events.append(event_pb2.Event.FromString(body))
        pos += 16 + length
    return events


def event_files(run_dir):
    return sorted(glob.glob(os.path.join(str(run_dir), "events.out.tfevents.*")))


def archviz_values(run_dir):
    """[(step, tag, value)] of every archviz summary in a run directory, read strictly."""
    out = []
    for path in event_files(run_dir):
        for ev in read_records(path):
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME or \
                        v.tag.startswith("archviz/"):
                    out.append((ev.step, v.tag, v))
    return out


# -- the broken log directory ----------------------------------------------------------------------

def build_logdir(root):
    """The runs of this module; returns nothing, every expectation is in the tests below."""
    def w(run):
        return summary.ArchVizWriter(str(root / run))

    with w("good") as wr:
        wr.add_architecture(small_arch(10), step=0)
        wr.add_architecture(small_arch(32), step=3)
        wr.add_filter_grid("conv2d", png_bytes(), TILES, step=3)

    # a writer killed in the middle of its second record
    with w("truncated") as wr:
        wr.add_architecture(small_arch(10), step=0)
        before = os.path.getsize(wr._writer.path)
        wr.add_architecture(small_arch(20), step=1)
    cut_last_record(wr, before)

    # ... and a new writer (a restarted job) after it: its newer file is read
    with w("truncated_then_new") as wr:
        wr.add_architecture(small_arch(10), step=0)
        before = os.path.getsize(wr._writer.path)
        wr.add_architecture(small_arch(20), step=1)
    cut_last_record(wr, before)
    time.sleep(1.1)  # event file names carry whole seconds: the new file must sort after
    with w("truncated_then_new") as wr:
        wr.add_architecture(small_arch(30), step=2)

    # half a record, then a complete one appended after it (what a writer that does not roll
    # back a failed write produces): readers cannot resynchronise; what came before survives
    with w("garbage_mid") as wr:
        wr.add_architecture(small_arch(10), step=0)
        before = os.path.getsize(wr._writer.path)
        wr.add_architecture(small_arch(20), step=1)
    cut_last_record(wr, before)
    with open(wr._writer.path, "ab") as f:
        from tensorboard.summary.writer.record_writer import RecordWriter

        RecordWriter(f).write(event_pb2.Event(
            step=5, wall_time=time.time(),
            summary=summary.architecture_pb(small_arch(50))).SerializeToString())

    # malformed TensorProtos: TensorBoard's own decoder (make_ndarray) raises on them
    with w("bad_tensor_content") as wr:
        wr.add_architecture(small_arch(10), step=0)
        wr.add_summary(tensor_summary(metadata.ARCHITECTURE_TAG, AMD, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=shape(), tensor_content=b"abc")), step=1)
    with w("empty_string_tensor") as wr:
        wr.add_summary(tensor_summary(metadata.ARCHITECTURE_TAG, AMD, tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, tensor_shape=shape())), step=0)

    # the architecture tag with data of the wrong kind
    with w("arch_rank1") as wr:
        wr.add_summary(value_summary(metadata.ARCHITECTURE_TAG, AMD,
                                     np.array([b"{}", b"{}"], dtype=object)), step=0)
    with w("arch_int") as wr:
        wr.add_summary(value_summary(metadata.ARCHITECTURE_TAG, AMD, np.array(7, np.int64)),
                       step=0)
    with w("arch_not_utf8") as wr:
        wr.add_summary(value_summary(metadata.ARCHITECTURE_TAG, AMD,
                                     np.array(b"\xff\xfe{", dtype=object)), step=0)
    with w("arch_json_list") as wr:
        wr.add_summary(value_summary(metadata.ARCHITECTURE_TAG, AMD,
                                     np.array(b"[1, 2]", dtype=object)), step=0)

    # filter grids of the wrong kind (each run also has a good architecture)
    def grid_run(run, value=None, tensor=None):
        with w(run) as wr:
            wr.add_architecture(small_arch(10), step=0)
            wr.add_summary(tensor_summary(metadata.filters_tag("conv"), fmd(), tensor)
                           if tensor is not None
                           else value_summary(metadata.filters_tag("conv"), fmd(), value), step=1)

    grid_run("filters_rank0", np.array(png_bytes(), dtype=object))
    grid_run("filters_float", np.array([1.0, 2.0], np.float32))
    grid_run("filters_bad_content", tensor=tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=shape(2), tensor_content=b"abc"))
    grid_run("filters_one_blob", np.array([png_bytes()], dtype=object))
    grid_run("filters_meta_not_utf8", np.array([png_bytes(), b"\xff\xfe{"], dtype=object))
    # names JSON has to escape, with an intact grid
    with w('quote"run') as wr:
        wr.add_filter_grid("conv", png_bytes(), TILES, step=1)
    with w("backslash_layer") as wr:
        wr.add_filter_grid("conv\\1", png_bytes(), TILES, step=1)

    good_png = png_bytes()
    for run, png in (("png_signature_only", good_png[:8] + b"garbage" * 8),
                     ("png_truncated", good_png[:len(good_png) // 2]),
                     ("png_bad_checksum", good_png[:-1] + bytes([good_png[-1] ^ 1])),
                     ("gif", b"GIF89a" + b"\x00" * 40)):
        grid_run(run, np.array([png, json.dumps(TILES).encode()], dtype=object))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken_events")
    build_logdir(root)
    return root


@pytest.fixture(scope="module", params=[True, False], ids=["load_fast", "legacy_loader"])
def server(request, logdir):
    with run_tensorboard(logdir, load_fast=request.param) as url:
        wait_for_run(url, "good", steps=2, filter_layers=1)
        wait_for_run(url, "truncated_then_new", steps=2)
        for run in ("gif", "png_truncated", "bad_tensor_content", "arch_json_list"):
            wait_for_run(url, run)
        yield url, request.param


def q(**params):
    return urllib.parse.urlencode(params)


def error_of(url, route, **params):
    status, body, headers = http_get(url + PLUGIN + "/" + route + "?" + q(**params))
    decoded = json.loads(body) if headers.get("Content-Type", "").startswith(
        "application/json") else None
    if status != 200:
        assert decoded is not None and set(decoded) == {"error"}, (status, body[:300])
        assert b"Traceback" not in body and b'File "' not in body
    return status, decoded


def test_runs_lists_every_run_with_what_is_readable(server):
    url, load_fast = server
    status, runs = get_json(url + PLUGIN + "/runs")
    assert status == 200
    steps = {run: info["steps"] for run, info in runs.items()}
    assert steps["good"] == [0, 3] and runs["good"]["filter_layers"] == ["conv2d"]
    assert steps["truncated"] == [0]              # the half record is not read
    assert steps["truncated_then_new"] == [0, 2]  # the newer file is read after the cut one
    assert steps["garbage_mid"] == [0]            # nothing after the broken record
    # a malformed tensor makes the data provider fail on the whole series of that run:
    # the run is listed with the reason, the listing itself keeps working
    for run in ("bad_tensor_content", "empty_string_tensor"):
        assert steps[run] == [], runs[run]
        (err,) = runs[run]["errors"]
        assert err.startswith("the architecture data of run %r cannot be decoded: ValueError" % run)
    for run in ("arch_rank1", "arch_int", "arch_not_utf8", "arch_json_list"):
        assert steps[run] == [0] and runs[run]["errors"] == []
    assert runs["png_truncated"]["filter_layers"] == ["conv"]
    # the Rust loader drops blob sequences that are not rank-1 strings; the legacy one keeps them
    dropped = {"filters_rank0", "filters_float", "filters_bad_content"}
    for run in dropped:
        assert runs[run]["filter_layers"] == ([] if load_fast else ["conv"])


@pytest.mark.parametrize("params,code,needle", [
    ({"run": "truncated"}, 200, None),
    ({"run": "truncated", "step": "1"}, 404, "available steps: [0]"),
    ({"run": "truncated_then_new", "step": "2"}, 200, None),
    ({"run": "garbage_mid", "step": "5"}, 404, "available steps: [0]"),
    ({"run": "bad_tensor_content"}, 422,
     "the architecture data of run 'bad_tensor_content' cannot be decoded: "
     "ValueError: buffer size"),
    ({"run": "empty_string_tensor"}, 422,
     "the architecture data of run 'empty_string_tensor' cannot be decoded: ValueError"),
    ({"run": "arch_rank1"}, 422,
     "architecture of run 'arch_rank1' step 0 is not a scalar string tensor "
     "(dtype object, shape (2,))"),
    ({"run": "arch_int"}, 422,
     "architecture of run 'arch_int' step 0 is not a scalar string tensor (dtype int64, shape ())"),
    ({"run": "arch_not_utf8"}, 422, "architecture of run 'arch_not_utf8' step 0 is unreadable: "
                                    "<root>: not UTF-8"),
    ({"run": "arch_json_list"}, 422, "architecture of run 'arch_json_list' step 0 is unreadable: "
                                     "<root>: expected a JSON object"),
])
def test_architecture_answers(server, params, code, needle):
    url, _ = server
    status, body = error_of(url, "architecture", **params)
    assert status == code, body
    if code == 200:
        assert body["model"]["total_params"] == {"truncated": 7850,
                                                 "truncated_then_new": 23550}[params["run"]]
    else:
        assert needle in body["error"], body


GRID = "filter grid of layer 'conv' in run %r at step 1"


@pytest.mark.parametrize("run,route,code,needle", [
    ("filters_one_blob", "filters", 422, (GRID + " has no tile metadata") % "filters_one_blob"),
    ("filters_one_blob", "filters_image", 200, None),
    ("filters_meta_not_utf8", "filters", 422,
     (GRID + " has unreadable tile metadata: 'utf-8' codec") % "filters_meta_not_utf8"),
    ("png_signature_only", "filters", 200, None),
    ("png_signature_only", "filters_image", 422,
     (GRID + " is not a PNG image: it does not start with an IHDR chunk") % "png_signature_only"),
    ("png_truncated", "filters_image", 422,
     (GRID + " is not a PNG image: ") % "png_truncated"),
    ("png_bad_checksum", "filters_image", 422,
     (GRID + " is not a PNG image: chunk 'IEND' has a bad checksum") % "png_bad_checksum"),
    ("gif", "filters_image", 422, (GRID + " is not a PNG image: no PNG signature") % "gif"),
])
def test_filter_answers(server, run, route, code, needle):
    url, _ = server
    status, body = error_of(url, route, run=run, layer="conv")
    assert status == code, body
    if needle:
        assert needle in body["error"], body


@pytest.mark.parametrize("run", ["filters_rank0", "filters_float", "filters_bad_content"])
def test_filter_series_of_the_wrong_kind(server, run):
    url, load_fast = server
    for route in ("filters", "filters_image"):
        status, body = error_of(url, route, run=run, layer="conv")
        if load_fast:  # dropped by the Rust loader: as if never written
            assert status == 404, body
            assert body["error"] == "run %r has no filter grids for layer 'conv'" % run
        else:          # kept by the legacy loader: the data cannot be decoded
            assert status == 422, body
            assert ("in run %r" % run) in body["error"]


@pytest.mark.parametrize("run,layer", [('quote"run', "conv"), ("backslash_layer", "conv\\1")])
def test_blob_of_a_name_with_a_quote(server, run, layer):
    """TensorBoard's Rust data server hands out blob keys it cannot parse back when the run or tag
    holds '"' or a backslash: a 422 that says so (the legacy loader reads them)."""
    url, load_fast = server
    for route in ("filters", "filters_image"):
        status, body = error_of(url, route, run=run, layer=layer)
        if load_fast:
            assert status == 422, body
            assert "failed to parse blob key" in body["error"]
            assert "rename it, or start TensorBoard with --load_fast=false" in body["error"]
        else:
            assert status == 200, body
    status, body, _ = http_get(url + PLUGIN + "/filters_image?" + q(run=run, layer=layer))
    assert (status, body == png_bytes()) == ((422, False) if load_fast else (200, True))


def test_every_route_of_every_run_answers_without_500(server):
    url, _ = server
    status, runs = get_json(url + PLUGIN + "/runs")
    assert status == 200
    seen = {}
    for run, info in runs.items():
        for step in [None] + info["steps"]:
            params = {"run": run} if step is None else {"run": run, "step": step}
            seen[("architecture", run, step)] = error_of(url, "architecture", **params)[0]
            seen[("diff", run, step)] = error_of(url, "diff", run_a="good", run_b=run)[0]
        for layer in info["filter_layers"]:
            for route in ("filters", "filters_image"):
                seen[(route, run, layer)] = error_of(url, route, run=run, layer=layer)[0]
    assert len(runs) == 21
    assert set(seen.values()) <= {200, 404, 422}, {k: v for k, v in seen.items()
                                                    if v not in (200, 404, 422)}
    assert seen[("diff", "arch_int", None)] == 422


def test_good_run_is_served_after_all_the_errors(server):
    url, _ = server
    status, arch = get_json(url + PLUGIN + "/architecture?" + q(run="good"))
    assert status == 200 and arch["model"]["total_params"] == 784 * 32 + 32
    status, grid = get_json(url + PLUGIN + "/filters?" + q(run="good", layer="conv2d"))
    assert status == 200 and grid["step"] == 3 and len(grid["tiles"]) == 2
    status, png, headers = http_get(url + PLUGIN + "/" + grid["image_url"])
    assert status == 200 and headers["Content-Type"] == "image/png" and png == png_bytes()
    status, d = get_json(url + PLUGIN + "/diff?" + q(run_a="good", step_a=0, run_b="truncated"))
    assert status == 200 and d["identical"] is True
    status, d = get_json(url + PLUGIN + "/diff?" + q(run_a="good", run_b="bad_tensor_content"))
    assert status == 422 and "bad_tensor_content" in d["error"]
