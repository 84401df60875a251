"""The timeline is bounded in time and cached per pair of writes (issue 21 item 7): many steps
whose layers are all renamed at every step (the structural matcher's worst case) through the
plugin's reader over event files. A first request stops at its budget and says so, the next
ones continue from the cached pairs, the complete answer equals an unbounded computation and is
then served from the cache at once."""

from __future__ import annotations

import time

import pytest

from tensorboard_archviz import reader, schema, summary
from tensorboard_archviz.event_files import LocalEventFilesProvider

NODES = 500
STEPS = 8


def renamed_arch(step):
    """NODES layers in a chain, every id renamed at each step (dense_<k>_<step>)."""
    classes = ("Dense", "ReLU", "Dropout")
    ids = ["l%d_s%d" % (k, step) for k in range(NODES)]
    nodes = [schema.Node(i, i, classes[k % 3], output_shapes=[[None, 8 + (k + step) % 5]],
                         params={"trainable": 10 if k % 3 == 0 else 0, "non_trainable": 0})
             for k, i in enumerate(ids)]
    total = 10 * len([k for k in range(NODES) if k % 3 == 0])
    return schema.Architecture("keras", "3", schema.ModelInfo("m", "Sequential", total, total),
                               inputs=[ids[0]], outputs=[ids[-1]], nodes=nodes,
                               edges=[schema.Edge(a, b) for a, b in zip(ids, ids[1:])])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("renamed")
    with summary.ArchVizWriter(str(root / "run")) as w:
        for step in range(STEPS):
            w.add_architecture(renamed_arch(step), step=step)
    return str(root)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def test_timeline_budget_partial_then_complete_then_cached(logdir):
    full_reader = reader.ArchitectureReader(LocalEventFilesProvider(logdir))
    full_reader.timeline_budget = 1e9
    expected, unbounded = timed(lambda: full_reader.timeline(None, "", "run"))
    assert expected["partial"] is False and len(expected["entries"]) == STEPS
    assert all(e["counts"]["renamed"] > 0 for e in expected["entries"][1:])
    per_pair = unbounded / STEPS

    bounded = reader.ArchitectureReader(LocalEventFilesProvider(logdir))
    bounded.timeline_budget = max(0.05, per_pair * 2.5)
    first, took = timed(lambda: bounded.timeline(None, "", "run"))
    assert first["partial"] is True, "the budget never ran out: %.2f s for %d steps" % (
        unbounded, STEPS)
    pending = [e for e in first["entries"] if e.get("pending")]
    assert 0 < len(pending) < STEPS and first["entries"][-1]["pending"] is True
    assert first["notice"].startswith("computing what changed took longer than the "
                                      "timeline's budget")
    assert "%d of %d steps are not compared yet" % (len(pending), STEPS) in first["notice"]
    assert pending[0]["error"].startswith("not compared yet: the timeline's time budget")
    assert took < bounded.timeline_budget + 3 * per_pair + 1.0
    done = [e for e in first["entries"] if not e.get("pending")]
    assert done == expected["entries"][:len(done)]  # computed entries are already final

    answers = [first]
    while answers[-1]["partial"] and len(answers) < STEPS + 2:
        answers.append(bounded.timeline(None, "", "run"))
    assert answers[-1]["partial"] is False and len(answers) >= 2
    assert answers[-1]["entries"] == expected["entries"]
    again, warm = timed(lambda: bounded.timeline(None, "", "run"))
    assert again == expected and warm < 0.05, warm  # the complete answer is cached
