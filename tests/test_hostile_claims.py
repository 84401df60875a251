"""Event files whose tensors claim shapes that would allocate terabytes when decoded (issue 21
item 2), beside a healthy run, through a real TensorBoard with both loaders: the listing
answers 200, the healthy run is served, each bad run is named with its error (a 422 naming the
run and the tag), and TensorBoard's peak memory (VmHWM of the server and, with the Rust loader,
of its data server) stays under 2 GB. The CLI's reader (event_files) says the same in one line.

The protos are written here: a float tensor claiming [2^20, 2^20] with one value (numpy would
repeat it 2^40 times), a string tensor claiming 10^9 elements, the same claims under the
filter-grid and signals tags.
"""

from __future__ import annotations

import os
import urllib.parse

import pytest
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

from conftest import PLUGIN, get_json, http_get, run_tensorboard, wait_for_run
from tensorboard_archviz import bounded_reads, metadata, reader, summary
from tensorboard_archviz.event_files import LocalEventFilesProvider
from test_plugin_routes import TILES, png_bytes, small_arch

PEAK_LIMIT = 2 * 1024 ** 3
FLOAT_CLAIM = "a float32 tensor claims shape [1048576, 1048576] (1,099,511,627,776 elements"
STRING_CLAIM = "a string tensor claims shape [1000000000] (1,000,000,000 elements"


def shape(*dims):
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])


def float_bomb():
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape(2 ** 20, 2 ** 20),
                                  float_val=[1.0])


def string_bomb():
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape(10 ** 9),
                                  string_val=[b"x"])


def write(writer, tag, md, tensor, step=0):
    s = summary_pb2.Summary()
    s.value.add(tag=tag, metadata=md, tensor=tensor)
    writer.add_summary(s, step=step)


def build(root):
    with summary.ArchVizWriter(str(root / "healthy")) as w:
        w.add_architecture(small_arch(10), step=0)
        w.add_architecture(small_arch(12), step=1)
        w.add_filter_grid("conv", png_bytes(), TILES, step=1)
    amd = metadata.create_architecture_metadata()
    with summary.ArchVizWriter(str(root / "float_bomb")) as w:
        write(w, metadata.ARCHITECTURE_TAG, amd, float_bomb())
    with summary.ArchVizWriter(str(root / "string_bomb")) as w:
        w.add_architecture(small_arch(10), step=0)
        write(w, metadata.ARCHITECTURE_TAG, amd, string_bomb(), step=1)
    with summary.ArchVizWriter(str(root / "grid_bomb")) as w:
        w.add_architecture(small_arch(10), step=0)
        write(w, metadata.filters_tag("conv"), metadata.create_filters_metadata("conv"),
              string_bomb())
    with summary.ArchVizWriter(str(root / "signals_bomb")) as w:
        w.add_architecture(small_arch(10), step=0)
        write(w, metadata.SIGNALS_TAG, metadata.create_signals_metadata(), string_bomb())


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("claims")
    build(root)
    return root


def peak_bytes(pid):
    """VmHWM (peak resident memory) of a process, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM for pid %d" % pid)


def tensorboard_pids(port):
    """The TensorBoard process serving `port` and its children (the Rust data server)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"tensorboard.main" in b" ".join(cmd) and str(port).encode() in cmd:
            pids.append(int(entry))
    children = []
    for pid in pids:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                children += [int(c) for c in f.read().split()]
    return pids, children


def q(**params):
    return urllib.parse.urlencode(params)


@pytest.mark.parametrize("load_fast", [True, False], ids=["load_fast", "legacy_loader"])
def test_claims_are_refused_per_run_and_memory_stays_low(logdir, load_fast):
    with run_tensorboard(logdir, load_fast=load_fast) as url:
        port = int(url.rsplit(":", 1)[1])
        runs = wait_for_run(url, "healthy", steps=2, filter_layers=1)
        for run in ("float_bomb", "string_bomb", "grid_bomb", "signals_bomb"):
            runs = wait_for_run(url, run)
        status, runs = get_json(url + PLUGIN + "/runs")
        assert status == 200
        assert runs["healthy"]["errors"] == [] and runs["healthy"]["steps"] == [0, 1]
        (err,) = runs["float_bomb"]["errors"]
        assert err.startswith("the architecture data of run 'float_bomb' cannot be read: tag "
                              "'archviz/architecture' step 0: " + FLOAT_CLAIM), err
        (err,) = runs["string_bomb"]["errors"]
        assert "run 'string_bomb'" in err and "step 1: " + STRING_CLAIM in err, err
        assert runs["string_bomb"]["steps"] == []
        assert runs["signals_bomb"]["signals"] is True

        for params, needle in (
                ({"run": "float_bomb"}, "run 'float_bomb' cannot be read: tag "
                                        "'archviz/architecture' step 0: " + FLOAT_CLAIM),
                ({"run": "string_bomb"}, STRING_CLAIM),
                ({"run": "string_bomb", "step": "0"}, STRING_CLAIM)):
            status, body = get_json(url + PLUGIN + "/architecture?" + q(**params))
            assert status == 422 and needle in body["error"], body
        status, body = get_json(url + PLUGIN + "/timeline?" + q(run="float_bomb"))
        assert status == 422 and FLOAT_CLAIM in body["error"], body
        status, body = get_json(url + PLUGIN + "/diff?" + q(run_a="healthy", run_b="string_bomb"))
        assert status == 422 and STRING_CLAIM in body["error"], body
        status, body = get_json(url + PLUGIN + "/signals?" + q(run="signals_bomb"))
        assert status == 422, body
        assert ("the signals data of run 'signals_bomb' cannot be read: tag 'archviz/signals' "
                "step 0: " + STRING_CLAIM) in body["error"]
        status, body = get_json(url + PLUGIN + "/filters?" + q(run="grid_bomb", layer="conv"))
        if load_fast:  # the Rust loader keeps the stored blobs only (one here), not the claim
            assert status == 422 and body["error"] == (
                "filter grid of layer 'conv' in run 'grid_bomb' at step 0 has no tile metadata")
        else:
            assert status == 422 and "run 'grid_bomb'" in body["error"] \
                and "'archviz/filters/conv'" in body["error"] and STRING_CLAIM in body["error"]
        # the healthy run is served after all that
        status, arch = get_json(url + PLUGIN + "/architecture?" + q(run="healthy"))
        assert status == 200 and arch["model"]["total_params"] == 784 * 12 + 12
        status, png, _ = http_get(url + PLUGIN + "/filters_image?" + q(run="healthy",
                                                                         layer="conv"))
        assert status == 200 and png == png_bytes()
        pids, children = tensorboard_pids(port)
        assert len(pids) == 1 and (len(children) >= 1 if load_fast else True), (pids, children)
        for pid in pids + children:
            assert peak_bytes(pid) < PEAK_LIMIT, (pid, peak_bytes(pid))


def test_cli_reader_says_one_line(logdir):
    """The CLI reads logdirs through event_files + reader: a clean ReadError, one line."""
    dp = LocalEventFilesProvider(str(logdir))
    arch_reader = reader.ArchitectureReader(dp)
    for run, needle in (("float_bomb", FLOAT_CLAIM), ("string_bomb", STRING_CLAIM)):
        with pytest.raises(reader.ReadError) as info:
            arch_reader.load(None, "", run, None)
        assert info.value.code == 422 and needle in info.value.message
        assert "\n" not in info.value.message
    assert arch_reader.load(None, "", "healthy", None)[0] == 1


def test_claim_bound_is_exact():
    """Just under the bound decodes, just over is refused (the bound can fail both ways)."""
    n = bounded_reads.CLAIM_LIMIT // 4
    ok = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape(n), float_val=[2.0])
    over = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape(n + 1),
                                  float_val=[2.0])
    assert bounded_reads.claim_problem(ok) is None
    assert bounded_reads.claim_problem(over).startswith("a float32 tensor claims shape [%d]"
                                                        % (n + 1))


@pytest.mark.parametrize("run,needle", [("float_bomb", FLOAT_CLAIM),
                                        ("string_bomb", STRING_CLAIM)])
def test_cli_summary_prints_one_line(logdir, run, needle):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tensorboard_archviz", "summary", str(logdir),
                          "--run", run], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "archviz: error: the architecture data of run %r cannot be read: tag "
        "'archviz/architecture' step " % run) and needle in lines[0], out.stderr
