"""tensorboard_archviz.torch_writer: real torch / tensorboardX SummaryWriters -> event files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_models as tm
from tensorboard_archviz import add_architecture, add_filter_grids, metadata, schema
from tensorboard_archviz.extract.torch import ExtractionError
from tensorboard_archviz.summary import ArchVizWriter, architecture_pb
from tensorboard_archviz.torch_writer import write_summary

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def torch_writer(logdir):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(logdir))


def tbx_writer(logdir):
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(logdir))


WRITERS = pytest.mark.parametrize("make_writer", [torch_writer, tbx_writer],
                                  ids=["torch", "tensorboardX"])


def read_events(logdir):
    """The accumulator TensorBoard's plugins read through (no TensorFlow needed)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def read_architectures(logdir):
    acc = read_events(logdir)
    if metadata.ARCHITECTURE_TAG not in acc.Tags()["tensors"]:
        return acc, []
    return acc, [(ev.step, schema.from_json(ev.tensor_proto.string_val[0]))
                 for ev in acc.Tensors(metadata.ARCHITECTURE_TAG)]


def files(logdir):
    return {name: os.path.getsize(os.path.join(logdir, name)) for name in os.listdir(logdir)}


@WRITERS
def test_add_architecture_writes_a_readable_summary(tmp_path, make_writer):
    writer = make_writer(tmp_path)
    try:
        writer.add_scalar("loss", 0.5, 1)
        arch = add_architecture(writer, tm.MLP(), torch.randn(1, 1, 28, 28), global_step=3)
        # flushed at once: readable before close()
        acc, archs = read_architectures(tmp_path)
    finally:
        writer.close()
    assert arch.model.total_params == 669_706
    assert [step for step, _ in archs] == [3]
    got = archs[0][1]
    assert (got.model.total_params, got.model.trainable_params) == (669_706, 669_706)
    assert got.model.macs == 668_672  # per example, matrix products (schema 2)
    assert got.to_dict() == arch.to_dict()
    md = acc.SummaryMetadata(metadata.ARCHITECTURE_TAG)
    assert md.plugin_data.plugin_name == "archviz"
    assert md.data_class == metadata.summary_pb2.DATA_CLASS_TENSOR
    assert json.loads(md.plugin_data.content)["kind"] == "architecture"
    assert "loss" in acc.Tags()["tensors"]  # the user's own scalars are untouched


@WRITERS
def test_two_steps_and_walltime(tmp_path, make_writer):
    writer = make_writer(tmp_path)
    try:
        model = tm.SmallResNet()
        add_architecture(writer, model, torch.randn(2, 1, 28, 28), 0, walltime=1000.0)
        model.fc = torch.nn.Linear(8, 3)
        add_architecture(writer, model, torch.randn(2, 1, 28, 28), 5)
    finally:
        writer.close()
    acc, archs = read_architectures(tmp_path)
    assert [step for step, _ in archs] == [0, 5]
    assert archs[0][1].node("fc").total_params == 90 and archs[1][1].node("fc").total_params == 27
    assert acc.Tensors(metadata.ARCHITECTURE_TAG)[0].wall_time == 1000.0
    assert set(archs[1][1].edge_pairs()) >= {("block.bn2", "add"), ("stem", "add")}


@WRITERS
def test_wrong_input_raises_and_writes_nothing(tmp_path, make_writer):
    writer = make_writer(tmp_path)
    try:
        writer.flush()
        before = files(tmp_path)
        with pytest.raises(ExtractionError, match="linear_relu_stack.0") as err:
            add_architecture(writer, tm.MLP(), torch.randn(1, 1, 20, 20))
        assert err.value.module == "linear_relu_stack.0"
        writer.flush()
        assert files(tmp_path) == before
    finally:
        writer.close()
    _, archs = read_architectures(tmp_path)
    assert archs == []


def test_archviz_writer_and_dict_model(tmp_path):
    with ArchVizWriter(str(tmp_path)) as writer:
        add_architecture(writer, tm.DictOutput(), torch.randn(2, 16), 7)
    _, archs = read_architectures(tmp_path)
    assert archs[0][0] == 7 and archs[0][1].outputs == ["head", "relu"]


def test_write_summary_rejects_other_objects(tmp_path):
    pb = architecture_pb(schema.Architecture(framework="torch", framework_version="x",
                                             model=schema.ModelInfo(name="m", class_name="M")))
    with pytest.raises(TypeError, match="SummaryWriter"):
        write_summary(object(), pb)


def test_add_filter_grids_writes_blob_sequences(tmp_path):
    writer = tbx_writer(tmp_path)
    torch.manual_seed(0)
    model = tm.SmallResNet()
    try:
        written = add_filter_grids(writer, model, ["stem", "block.conv2"], global_step=2,
                                   input_shape=(1, 28, 28), steps=3, max_filters=4)
    finally:
        writer.close()
    assert written == ["stem", "block.conv2"]
    acc = read_events(tmp_path)
    for node_id in written:
        tag = metadata.filters_tag(node_id)
        events = acc.Tensors(tag)
        assert [e.step for e in events] == [2]
        png, tiles = events[0].tensor_proto.string_val
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(json.loads(tiles)["tiles"]) == 4
        md = acc.SummaryMetadata(tag)
        assert md.data_class == metadata.summary_pb2.DATA_CLASS_BLOB_SEQUENCE
        assert json.loads(md.plugin_data.content)["layer"] == node_id


def test_importing_the_writer_does_not_import_torch():
    code = ("import sys, tensorboard_archviz, tensorboard_archviz.torch_writer; "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


RANK_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import torch, torch.distributed as dist
    from tensorboardX import SummaryWriter
    import torch_models as tm
    from tensorboard_archviz import add_architecture, add_filter_grids
    rank = int(sys.argv[1])
    dist.init_process_group("gloo", init_method="file://" + {store!r}, rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(tm.MLP())
    writer = SummaryWriter(os.path.join({logdir!r}, "rank%d" % rank))
    arch = add_architecture(writer, model, torch.randn(1, 1, 28, 28), 0)
    grids = add_filter_grids(writer, tm.SmallResNet(), ["stem"], input_shape=(1, 28, 28),
                             steps=2, max_filters=2)
    writer.close()
    dist.barrier()
    dist.destroy_process_group()
    print("RESULT", rank, None if arch is None else arch.model.total_params, grids)
""")


def test_only_rank_zero_writes_under_torch_distributed(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT.format(tests=HERE, store=str(tmp_path / "store"),
                                         logdir=str(tmp_path / "logs")))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, str(script), str(r)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in (0, 1)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = sorted(line for out, _ in outs for line in out.splitlines()
                     if line.startswith("RESULT"))
    assert results == ["RESULT 0 669706 ['stem']", "RESULT 1 None []"]
    _, archs0 = read_architectures(tmp_path / "logs" / "rank0")
    assert [a.model.class_name for _, a in archs0] == ["MLP"]  # DDP unwrapped
    acc1, archs1 = read_architectures(tmp_path / "logs" / "rank1")
    assert archs1 == [] and not any(t.startswith("archviz") for t in acc1.Tags()["tensors"])
