"""Distributed training writes one architecture, from one process, and never hangs.

- PyTorch: two CPU processes in a real ``torch.distributed`` group (gloo, TCP rendezvous on a free
  127.0.0.1 port), a DistributedDataParallel model with BatchNorm buffers (so any DDP forward run
  on one rank alone would block in a buffer broadcast). Both ranks call ``add_architecture`` and
  ``add_filter_grids`` with a SummaryWriter on the SAME log directory, then train a step together:
  exactly one architecture and one grid are written, by rank 0, and nothing hangs (every wait has
  a timeout).
- Keras multi-worker: ``tf.distribute.MultiWorkerMirroredStrategy`` does not run with Keras 3.15
  here (fit() fails converting PerReplica values), so the chief-only rule is tested as far as this
  machine allows: two real worker processes with a shared ``TF_CONFIG`` cluster train
  concurrently into one log_dir; only worker 0 writes. (Which task counts as chief for every
  TF_CONFIG shape is covered in tests/test_keras_callback.py.)
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap

from conftest import free_port
from test_reliability_events import archviz_values, event_files, read_records

from tensorboard_archviz import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUT = 180


def run_ranks(script, args_per_rank, env_extra=None, timeout=TIMEOUT):
    """Start one process per rank, wait for all (killing every one on timeout); returns outputs."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + HERE, OMP_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    procs = [subprocess.Popen([sys.executable, "-c", script] + [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for args in args_per_rank]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    results = {}
    for out, _ in outs:
        for line in out.splitlines():
            if line.startswith("RESULT "):
                r = json.loads(line[len("RESULT "):])
                results[r["rank"]] = r
    return results


DDP_SCRIPT = textwrap.dedent("""
    import datetime, json, os, sys
    import torch, torch.distributed as dist
    from tensorboardX import SummaryWriter   # torch.utils.tensorboard's imports TensorFlow (~10 s)
    import torch_models as tm
    from tensorboard_archviz import add_architecture, add_filter_grids

    rank, port, logdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + port, rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=60))
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(tm.SmallResNet())
    # every rank opens the same run, as users do; tensorboardX names files by time and host
    # only (no pid), so two ranks in the same second would share one file without a suffix
    writer = SummaryWriter(logdir, filename_suffix=".rank%d" % rank)
    x = torch.randn(4, 1, 28, 28)
    arch = add_architecture(writer, model, x, global_step=0)
    grids = add_filter_grids(writer, model, ["stem"], global_step=0, input_shape=(1, 28, 28),
                             steps=2, max_filters=2)
    # a real training step through DDP: all-reduce of gradients needs both ranks in step
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(x).square().mean()
    loss.backward()
    opt.step()
    writer.close()
    dist.barrier()
    dist.destroy_process_group()
    print("RESULT " + json.dumps({"rank": rank, "pid": os.getpid(),
          "params": None if arch is None else arch.model.total_params,
          "class_name": None if arch is None else arch.model.class_name, "grids": grids}))
""")


def test_ddp_only_rank_zero_writes_one_architecture(tmp_path):
    import torch_models as tm

    logdir = tmp_path / "logs"
    # tensorboardX checks-then-creates the directory: two ranks racing there can fail with
    # FileExistsError inside tensorboardX itself, so the directory exists before they start.
    logdir.mkdir()
    port = free_port()
    results = run_ranks(DDP_SCRIPT, [(0, port, logdir), (1, port, logdir)])
    expected_params = sum(p.numel() for p in tm.SmallResNet().parameters())
    assert results[0]["params"] == expected_params and results[0]["class_name"] == "SmallResNet"
    assert results[0]["grids"] == ["stem"]
    assert results[1]["params"] is None and results[1]["grids"] == []

    files = event_files(logdir)
    assert len(files) == 2                       # one SummaryWriter file per rank
    found = [(os.path.basename(path), ev.step, v.tag)
             for path in files for ev in read_records(path) for v in ev.summary.value
             if v.tag.startswith("archviz/")]
    assert sorted((step, tag) for _, step, tag in found) == [
        (0, metadata.ARCHITECTURE_TAG), (0, metadata.filters_tag("stem"))]
    assert all(name.endswith(".rank0") for name, _, _ in found)   # both in rank 0's own file
    assert len(archviz_values(logdir)) == 2


KERAS_WORKER_SCRIPT = textwrap.dedent("""
    import json, logging, os, sys
    index, logdir = int(sys.argv[1]), sys.argv[2]
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": ["127.0.0.1:%s" % sys.argv[3], "127.0.0.1:%s" % sys.argv[4]]},
        "task": {"type": "worker", "index": index}})
    import numpy as np
    import keras
    from tensorboard_archviz import ArchVizCallback

    warnings = []

    class Capture(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger("tensorboard_archviz").addHandler(Capture())
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(8, name="dense"),
                              keras.layers.Dense(10, name="out")], name="worker_%d" % index)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(index)
    x, y = rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)
    cb = ArchVizCallback(log_dir=logdir, filters=True)
    h = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    print("RESULT " + json.dumps({"rank": index, "pid": os.getpid(),
          "epochs": len(h.history["loss"]), "written": cb.written_steps, "warnings": warnings,
          "backend": keras.backend.backend()}))
""")


def test_keras_tf_config_only_worker_zero_writes(tmp_path):
    logdir = tmp_path / "logs"
    ports = (free_port(), free_port())
    results = run_ranks(KERAS_WORKER_SCRIPT, [(0, logdir) + ports, (1, logdir) + ports],
                        env_extra={"KERAS_BACKEND": "tensorflow"})
    assert results[0]["backend"] == "tensorflow"
    assert [results[i]["epochs"] for i in (0, 1)] == [2, 2]
    assert results[0]["written"] == [0] and results[1]["written"] == []
    assert results[0]["warnings"] == [] and results[1]["warnings"] == []
    files = event_files(logdir / "train")
    assert files and all((".%d." % results[0]["pid"]) in f for f in files)   # worker 0's only
    archs = [v for _, tag, v in archviz_values(logdir / "train")
             if tag == metadata.ARCHITECTURE_TAG]
    assert len(archs) == 1
    assert json.loads(archs[0].tensor.string_val[0])["model"]["name"] == "worker_0"
    assert glob.glob(str(logdir / "*")) == [str(logdir / "train")]
