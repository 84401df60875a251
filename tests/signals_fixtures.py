"""Logdirs with layer signals for the tests (route, views, writers) — see /tmp/team/signals_fixture.md.

- ``write_torch_signals_run(logdir, run="signals", steps=4)``: a real PyTorch run written by the
  real writers (``add_architecture`` + ``add_layer_signals(signals="all")`` after each training
  step + ``add_layer_values``), in a subprocess so torch never loads into the calling test.
  The model (``SignalsNet``) has known answers: ``deep.0`` … ``deep.11`` a 12-layer sigmoid
  stack (vanishing gradients toward the input), ``dead`` a Linear with bias -100 before the ReLU
  ``dead_relu`` (100 % dead), ``frozen`` a Linear with ``requires_grad=False`` (update ratio 0),
  ``slow`` a module sleeping 100 ms in ``forward`` (the slowest layer), ``head`` the output.
  User values ``values.quant_error`` for a few layers plus the unknown id ``no_such_layer``.
  Returns a dict of these facts (``FACTS``).
- ``write_synthetic_signals_run(logdir, run="big", layers=80, steps=1000, every=100)``: no
  framework; a chain architecture of ``layers`` x 10 nodes (``layers.<i>.<part>``, containers
  ``layers.<i>``) and a signals document every `every` steps (``steps`` documents), gradient RMS
  falling toward the input. 20 steps of 8 layers take 0.2 s; the full 80 x 1000 (68 MB) about
  40 s on this machine (TensorBoard's pure-Python CRC of each record): make it once per session.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FACTS: Dict[str, Any] = {
    "deep_ids": ["deep.%d" % i for i in range(0, 24, 2)],  # the Linear layers of the stack
    "dead_id": "dead_relu",
    "dead_linear": "dead",
    "frozen_id": "frozen",
    "slow_id": "slow",
    "head_id": "head",
    "values_name": "quant_error",
    "unknown_id": "no_such_layer",
}

TORCH_SCRIPT = r'''
import sys, time, torch
from torch import nn
from tensorboard_archviz import add_architecture, add_layer_signals, add_layer_values
from tensorboard_archviz.summary import ArchVizWriter

class Slow(nn.Module):
    def forward(self, x):
        time.sleep(0.1)
        return x

class SignalsNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for _ in range(12):
            layers += [nn.Linear(16, 16), nn.Sigmoid()]
        self.deep = nn.Sequential(*layers)
        self.dead = nn.Linear(16, 16)
        self.dead_relu = nn.ReLU()
        self.frozen = nn.Linear(16, 16)
        self.slow = Slow()
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = self.deep(x)
        d = self.dead_relu(self.dead(x))
        f = self.slow(self.frozen(x))
        return self.head(torch.cat([h + d, f], dim=1))

logdir, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
model = SignalsNet()
with torch.no_grad():
    model.dead.bias.fill_(-100.0)
model.frozen.requires_grad_(False)
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
with ArchVizWriter(logdir) as writer:
    add_architecture(writer, model, x[:8], 0)
    for step in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        add_layer_signals(writer, model, step, input_to_model=x[:8], signals="all")
        opt.step()
        add_layer_values(writer, "quant_error", {"deep.0": 0.01 * (step + 1), "head": 0.5,
                                                 "no_such_layer": 1.0}, step)
'''


def write_torch_signals_run(logdir: str, run: str = "signals", steps: int = 4) -> Dict[str, Any]:
    """Write the SignalsNet run into ``<logdir>/<run>`` (subprocess); returns ``FACTS``."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", TORCH_SCRIPT, os.path.join(logdir, run), str(steps)],
                   check=True, env=env, timeout=300)
    return dict(FACTS, run=run, steps=list(range(steps)))


def chain_architecture(layers: int) -> Dict[str, Any]:
    """A schema-2 architecture: ``layers`` blocks of 10 nodes each in one chain (no framework)."""
    parts = ["norm", "q", "k", "v", "o", "act", "up", "gate", "down", "add"]
    nodes: List[Dict[str, Any]] = [{"id": "x", "name": "x", "class_name": "Input", "parent": None,
                                    "input_shapes": [], "output_shapes": [[1, 8]],
                                    "params": {"trainable": 0, "non_trainable": 0}}]
    edges, prev = [], "x"
    for i in range(layers):
        block = "layers.%d" % i
        nodes.append({"id": block, "name": str(i), "class_name": "Block", "parent": "layers",
                      "params": {"trainable": 9 * 72, "non_trainable": 0}})
        for p in parts[:-1]:
            nid = "%s.%s" % (block, p)
            nodes.append({"id": nid, "name": p, "class_name": "Linear", "parent": block,
                          "input_shapes": [[1, 8]], "output_shapes": [[1, 8]],
                          "params": {"trainable": 72, "non_trainable": 0}})
            edges.append({"source": prev, "target": nid, "shape": [1, 8]})
            prev = nid
    nodes.insert(1, {"id": "layers", "name": "layers", "class_name": "ModuleList",
                     "parent": None, "params": {"trainable": layers * 9 * 72,
                                                "non_trainable": 0}})
    total = layers * 9 * 72
    return {"schema_version": 2, "framework": "torch", "framework_version": "synthetic",
            "model": {"name": "Chain", "class_name": "Chain", "total_params": total,
                      "trainable_params": total, "non_trainable_params": 0},
            "inputs": ["x"], "outputs": [prev], "nodes": nodes, "edges": edges}


def _synthetic_doc(leaves: List[str], step: int, steps: int) -> Dict[str, Any]:
    n = len(leaves)
    grads, weights, updates, fwd = {}, {}, {}, {}
    for i, nid in enumerate(leaves):
        depth = (n - 1 - i) / max(n - 1, 1)  # 1 at the input, 0 at the head
        grads[nid] = float("%.6g" % (1e-2 * 10 ** (-6 * depth) * (1 + step / steps)))
        weights[nid] = float("%.6g" % (0.05 + 0.01 * math.sin(i + step)))
        updates[nid] = 0.0 if nid.endswith(".norm") else float("%.6g" % (1e-3 * (1 + i % 5)))
        fwd[nid] = float("%.6g" % (0.05 + 0.001 * (i % 7)))
    return {"version": 1, "signals": {"gradients.rms": grads, "weights.rms": weights,
                                      "updates.ratio": updates, "time.forward_ms": fwd},
            "meta": {"framework": "torch", "batch_size": 1, "time_repeats": 3,
                     "update_sample": 4096, "notes": ["synthetic"]}}


def write_synthetic_signals_run(logdir: str, run: str = "big", layers: int = 80,
                                steps: int = 1000, every: int = 100) -> Dict[str, Any]:
    """Write a chain architecture and `steps` signal documents at steps 0, every, 2*every, ...
    into ``<logdir>/<run>`` without any framework; returns {"node_ids", "steps"}."""
    sys.path.insert(0, REPO)
    from tensorboard_archviz import summary
    from tensorboard_archviz.summary import ArchVizWriter

    arch = chain_architecture(layers)
    leaves = [n["id"] for n in arch["nodes"] if n["class_name"] == "Linear"]
    written = [k * every for k in range(steps)]
    with ArchVizWriter(os.path.join(logdir, run)) as writer:
        writer.add_architecture(arch, step=0)
        for k, step in enumerate(written):
            writer.add_summary(summary.signals_pb(_synthetic_doc(leaves, k, steps)), step)
    return {"node_ids": leaves, "steps": written}


if __name__ == "__main__":  # python tests/signals_fixtures.py LOGDIR  (both runs)
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/signals_logdir"
    print(json.dumps(write_torch_signals_run(out)))
    big = write_synthetic_signals_run(out)
    print(json.dumps({"big_nodes": len(big["node_ids"]), "big_steps": len(big["steps"])}))


def read_signals(run_dir: str) -> Dict[str, Any]:
    """What a run holds, read through TensorBoard's event accumulator (no framework):
    {"arch": latest architecture dict or None, "steps": [...], "docs": {step: signals doc},
    "series": {key: {node: [v per step]}} (as the route builds it, user values as
    ``values.<name>``), "values": {name: {step: doc}}}."""
    sys.path.insert(0, REPO)
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard_archviz import metadata

    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    arch = None
    if metadata.ARCHITECTURE_TAG in tags:
        arch = json.loads(acc.Tensors(metadata.ARCHITECTURE_TAG)[-1].tensor_proto.string_val[0])
    docs = {ev.step: json.loads(ev.tensor_proto.string_val[0])
            for ev in acc.Tensors(metadata.SIGNALS_TAG)} if metadata.SIGNALS_TAG in tags else {}
    values: Dict[str, Dict[int, Any]] = {}
    for tag in tags:
        name = metadata.name_from_values_tag(tag)
        if name is not None:
            values[name] = {ev.step: json.loads(ev.tensor_proto.string_val[0])
                            for ev in acc.Tensors(tag)}
    steps = sorted(set(docs) | {s for v in values.values() for s in v})
    series: Dict[str, Dict[str, List[Any]]] = {}
    per_step = [(s, docs.get(s, {}).get("signals", {})) for s in steps]
    for name, by_step in values.items():
        for s, sig in per_step:
            if s in by_step:
                sig["values." + name] = by_step[s]["values"]
    for i, (s, sig) in enumerate(per_step):
        for key, nodes in sig.items():
            for nid, v in nodes.items():
                series.setdefault(key, {}).setdefault(nid, [None] * len(steps))[i] = v
    return {"arch": arch, "steps": steps, "docs": docs, "series": series, "values": values}
