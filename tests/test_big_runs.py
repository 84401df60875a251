"""A run whose architecture series is larger than TensorBoard's data server can return in one
reply (256 MiB) next to a healthy run, through a real TensorBoard with the default Rust loader:
the listing answers 200, the healthy run is served, the big run shows the steps that fit with
a per-run error, its latest step and its timeline are served — never a 500 for everyone."""

import time
import urllib.parse

import pytest

from conftest import PLUGIN, get_json, run_tensorboard
from tensorboard_archviz import reader, schema, summary

STEP_BYTES = 23_000_000  # 12 kept steps = 276 MB > 256 MiB (268.4 MB)
STEPS = 12


def big_arch(step):
    nodes = [schema.Node("inp", "inp", "InputLayer", output_shapes=[[None, 4]]),
             schema.Node("dense", "dense", "Dense", output_shapes=[[None, 4 + step]],
                         params={"trainable": 20 + 5 * step, "non_trainable": 0},
                         config={"units": 4 + step, "notes": "x" * STEP_BYTES})]
    total = 20 + 5 * step
    return schema.Architecture("keras", "3", schema.ModelInfo("big", "Sequential", total, total),
                               inputs=["inp"], outputs=["dense"], nodes=nodes,
                               edges=[schema.Edge("inp", "dense")])


def small_arch():
    return schema.Architecture("keras", "3", schema.ModelInfo("small", "Sequential", 10, 10),
                               nodes=[schema.Node("d", "d", "Dense",
                                                  params={"trainable": 10, "non_trainable": 0})])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("big_runs")
    with summary.ArchVizWriter(str(root / "big")) as w:
        for step in range(STEPS):
            w.add_architecture(big_arch(step), step=step)
    with summary.ArchVizWriter(str(root / "healthy")) as w:
        w.add_architecture(small_arch(), step=0)
        w.add_architecture(small_arch(), step=1)
    return root


def q(**params):
    return urllib.parse.urlencode(params)


@pytest.mark.parametrize("extra", [[], ["--samples_per_plugin=archviz=12"]],
                         ids=["rust_default", "samples_per_plugin"])
def test_a_run_over_the_reply_cap_beside_a_healthy_run(logdir, extra):
    kept = STEPS
    assert kept * STEP_BYTES > reader.GRPC_REPLY_LIMIT  # reading the series at once would fail
    with run_tensorboard(logdir, load_fast=True, extra_args=extra) as url:
        deadline = time.time() + 300
        while True:  # the first listing reads the big run (bounded): allow it time on a busy CI
            status, runs = get_json(url + PLUGIN + "/runs", timeout=300)
            assert status == 200, runs
            if (runs.get("big", {}).get("steps", [None])[-1:] == [STEPS - 1]
                    and len(runs.get("healthy", {}).get("steps", [])) == 2) \
                    or time.time() > deadline:
                break
            time.sleep(1)
        assert runs["healthy"] == {"steps": [0, 1], "step_strings": ["0", "1"],
                                   "filter_layers": [], "errors": []}
        big = runs["big"]
        fit = reader.READ_BUDGET // (STEP_BYTES + 400)
        assert big["steps"][-1] == STEPS - 1 and len(big["steps"]) == fit
        assert big["errors"][0].startswith("this run's data is too large to read at once: ")
        assert "only %d of its steps fit" % fit in big["errors"][0]
        status, arch = get_json(url + PLUGIN + "/architecture?" + q(run="healthy"))
        assert status == 200 and arch["model"]["total_params"] == 10
        status, arch = get_json(url + PLUGIN + "/architecture?" + q(run="big"), timeout=300)
        assert status == 200 and arch["nodes"][1]["config"]["units"] == 4 + STEPS - 1
        status, arch = get_json(url + PLUGIN + "/architecture?" + q(run="big",
                                                                     step=big["steps"][0]),
                                timeout=300)
        assert status == 200 and arch["nodes"][1]["config"]["units"] == 4 + big["steps"][0]
        for _ in range(10):  # the route's time budget may cut it: each request continues
            status, tl = get_json(url + PLUGIN + "/timeline?" + q(run="big"), timeout=300)
            assert status == 200, tl
            if not tl["partial"]:
                break
            assert all(e.get("pending") for e in tl["entries"] if "identical" not in e), tl
        assert tl["partial"] is False
        assert [e["step"] for e in tl["entries"]] == big["steps"]
        assert tl["errors"] == big["errors"]
        assert all(e["identical"] is False for e in tl["entries"][1:])
