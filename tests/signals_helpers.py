"""Logdirs with layer signals of known values for the dashboard's browser tests: an architecture
written with ArchVizWriter and one signals summary per step (summary.signals_pb, the stored form of
the contract), no framework needed.

- ``small_run(logdir)``: stem -> 6 identical blocks (fc + act, so they fold) -> head; signals at
  steps 0..9, the (same) architecture at steps 0 and 5.
  gradients.rms grows 10x per layer from the stem (1e-6) to the head; ``blocks.2.fc`` is NaN at
  step 9, ``blocks.3.fc`` has no value at any step (null), updates.ratio of the stem is exactly 0, and
  ``ghost.fc`` (an update ratio) is not in the architecture; each update ratio spans 10 training
  steps (``meta.update_steps``).
- ``big_run(logdir, layers=800, steps=1100)``: ``layers`` distinct Linear layers (no folds), one
  signal (gradients.rms) every 100 steps; the route shows 1,000 of them (its default max_steps).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from tensorboard_archviz import schema
from tensorboard_archviz.summary import ArchVizWriter, signals_pb

SMALL_BLOCKS = 6
SMALL_STEPS = 10


def _linear(nid: str, name: str, parent: Optional[str], params: int) -> schema.Node:
    return schema.Node(nid, name, "Linear", parent=parent, input_shapes=[[1, 8]], output_shapes=[[1, 8]],
                       params={"trainable": params, "non_trainable": 0})


def small_arch() -> schema.Architecture:
    nodes: List[schema.Node] = [schema.Node("x", "x", "Input", output_shapes=[[1, 8]]),
                                _linear("stem", "stem", None, 72),
                                schema.Node("blocks", "blocks", "Sequential")]
    edges = [schema.Edge("x", "stem")]
    prev = "stem"
    for i in range(SMALL_BLOCKS):
        b = "blocks.%d" % i
        nodes += [schema.Node(b, str(i), "Block", parent="blocks"),
                  _linear(b + ".fc", "fc", b, 72),
                  schema.Node(b + ".act", "act", "ReLU", parent=b, input_shapes=[[1, 8]], output_shapes=[[1, 8]])]
        edges += [schema.Edge(prev, b + ".fc"), schema.Edge(b + ".fc", b + ".act")]
        prev = b + ".act"
    nodes.append(_linear("head", "head", None, 90))
    edges.append(schema.Edge(prev, "head"))
    total = 72 * (SMALL_BLOCKS + 1) + 90
    return schema.Architecture("torch", "2.13.0", schema.ModelInfo("SignalNet", "SignalNet", total, total),
                               inputs=["x"], outputs=["head"], nodes=nodes, edges=edges)


def small_layers() -> List[str]:
    """The parameterised layers of small_arch in model order."""
    return ["stem"] + ["blocks.%d.fc" % i for i in range(SMALL_BLOCKS)] + ["head"]


def small_doc(step: int) -> Dict:
    layers = small_layers()
    grads = {lid: float("%.6g" % (10.0 ** (-6 + i) * (1 + step / 100))) for i, lid in enumerate(layers)}
    grads["blocks.3.fc"] = None
    if step == SMALL_STEPS - 1:
        grads["blocks.2.fc"] = "NaN"
    updates = {lid: 1e-3 for lid in layers}
    updates["stem"] = 0.0
    updates["ghost.fc"] = 1e-3   # an id the architecture lacks: listed as unmatched, never drawn
    zeros = {"blocks.%d.act" % i: round(0.1 * i, 6) for i in range(SMALL_BLOCKS)}
    return {"version": 1,
            "signals": {"gradients.rms": grads, "updates.ratio": updates,
                        "activations.zero_fraction": zeros},
            "meta": {"framework": "torch", "batch_size": 1, "time_repeats": None,
                     "update_sample": 4096, "notes": [],
                     # each written step's update ratio spans 10 training steps (after the first)
                     "update_steps": 10 if step else None}}


def small_run(run_dir: str) -> None:
    with ArchVizWriter(run_dir) as w:
        w.add_architecture(small_arch(), step=0)
        w.add_architecture(small_arch(), step=5)
        for s in range(SMALL_STEPS):
            w.add_summary(signals_pb(small_doc(s)), step=s)


def big_arch(layers: int) -> schema.Architecture:
    nodes = [schema.Node("x", "x", "Input", output_shapes=[[1, 8]])]
    edges = []
    prev = "x"
    for i in range(layers):
        # distinct parameter counts: no two consecutive layers fold
        nodes.append(_linear("l%d" % i, "l%d" % i, None, 72 + i))
        edges.append(schema.Edge(prev, "l%d" % i))
        prev = "l%d" % i
    total = sum(72 + i for i in range(layers))
    return schema.Architecture("torch", "2.13.0", schema.ModelInfo("Deep", "Deep", total, total),
                               inputs=["x"], outputs=[prev], nodes=nodes, edges=edges)


def big_run(run_dir: str, layers: int = 800, steps: int = 1100, every: int = 100) -> None:
    with ArchVizWriter(run_dir) as w:
        w.add_architecture(big_arch(layers), step=0)
        for k in range(steps):
            g = {"l%d" % i: float("%.6g" % (10.0 ** (-8 + 8 * i / layers) * (1 + (k % 7) / 10)))
                 for i in range(layers)}
            w.add_summary(signals_pb({"version": 1, "signals": {"gradients.rms": g},
                                      "meta": {"framework": "torch", "batch_size": 1,
                                               "time_repeats": None, "update_sample": 4096,
                                               "notes": []}}), step=k * every)
