"""Layer signals of PyTorch models (add_layer_signals / add_layer_values), with known answers,
read back through TensorBoard's event accumulator (signals_fixtures.read_signals)."""

from __future__ import annotations

import logging
import math
import time

import pytest
import torch
from torch import nn

from signals_fixtures import read_signals
from tensorboard_archviz import add_architecture, add_layer_signals, add_layer_values
from tensorboard_archviz.signals.catalog import UPDATE_SAMPLE
from tensorboard_archviz.signals.findings import find
from tensorboard_archviz.signals.torch import TorchSignalState, compute_torch
from tensorboard_archviz.summary import ArchVizWriter

WRITER_LOG = "tensorboard_archviz.torch_writer"


def sigmoid_mlp(depth=20, width=16):
    torch.manual_seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(width, 3))


def train_step(model, x, y, opt=None):
    if opt is not None:
        opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    if opt is not None:
        opt.step()


def written(tmp_path, model, x, steps=1, signals=None, opt=None, y=None, **kw):
    """Architecture at step 0, then train + add_layer_signals per step; what was read back."""
    y = torch.zeros(len(x), dtype=torch.long) if y is None else y
    with ArchVizWriter(str(tmp_path)) as w:
        arch = add_architecture(w, model, x)
        for step in range(steps):
            train_step(model, x, y, opt)
            add_layer_signals(w, model, step, input_to_model=x, signals=signals, **kw)
    return arch, read_signals(str(tmp_path))


def test_update_ratio_every_100_steps_of_healthy_sgd_is_no_finding(tmp_path):
    """The README's loop: SGD at lr 0.1, signals every 100 steps. Each ratio spans 100
    updates (meta.update_steps) and is large (0.2-0.7) though every single step moves the
    weights by about 2e-3 of their norm (measured here): no "learning rate too high"."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(256, 20), torch.randint(0, 10, (256,))
    per_step = []
    with ArchVizWriter(str(tmp_path)) as w:
        add_architecture(w, model, x[:8])
        for step in range(301):
            before = [p.detach().clone() for p in model[2].parameters()]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if step % 100 == 0:
                add_layer_signals(w, model, step, input_to_model=x[:32])
            opt.step()
            delta = sum(((p - b) ** 2).sum() for p, b in zip(model[2].parameters(), before))
            per_step.append(float(delta.sqrt() / sum((p ** 2).sum() for p in
                                                       model[2].parameters()).sqrt()))
    r = read_signals(str(tmp_path))
    assert [r["docs"][s]["meta"].get("update_steps") for s in r["steps"]] == [None, 100, 100, 100]
    assert max(per_step[50:]) < 1e-2                      # every step is a usual one
    assert max(r["series"]["updates.ratio"]["2"][1:]) > 0.1  # their sum over 100 steps is not
    found, _ = find(r["arch"], r["steps"], r["series"])   # the gap between steps: 100 as well
    assert "update_high" not in [f["kind"] for f in found]
    found, _ = find(r["arch"], r["steps"], r["series"],
                    update_steps=[r["docs"][s]["meta"].get("update_steps") for s in r["steps"]])
    assert "update_high" not in [f["kind"] for f in found]
    # called without a step: no span is claimed
    w2 = ArchVizWriter(str(tmp_path / "nostep"))
    add_layer_signals(w2, model)
    doc = add_layer_signals(w2, model)
    w2.close()
    assert "updates.ratio" in doc["signals"] and doc["meta"]["update_steps"] is None


def test_vanishing_gradients_of_a_20_layer_sigmoid_mlp_are_named(tmp_path):
    model = sigmoid_mlp()
    arch, r = written(tmp_path, model, torch.randn(8, 16))
    grads = r["docs"][0]["signals"]["gradients.rms"]
    linears = ["%d" % (2 * i) for i in range(20)] + ["40"]
    assert set(linears) <= set(grads)
    assert grads["0"] < 1e-4 * grads["40"]                       # orders of magnitude lower
    assert grads["38"] > grads["20"] > grads["0"]                # falling toward the input
    found, thresholds = find(r["arch"], r["steps"], r["series"])
    assert thresholds["vanishing_ratio"] == 1e-4
    vanishing = [f for f in found if f["kind"] == "vanishing"]
    assert len(vanishing) == 1
    nodes = vanishing[0]["nodes"]
    assert nodes[0] == "0" and nodes == linears[:len(nodes)] and len(nodes) >= 5
    assert vanishing[0]["text"].startswith("gradients in `0`\u2026`%s`" % nodes[-1])
    assert "(vanishing)" in vanishing[0]["text"] and vanishing[0]["step"] == 0
    # ids are the architecture's node ids
    ids = {n.id for n in arch.nodes}
    assert all(set(per) <= ids for per in r["docs"][0]["signals"].values())


def test_a_large_negative_bias_before_relu_is_100_percent_dead(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    with torch.no_grad():
        model[0].bias.fill_(-1000.0)
    _, r = written(tmp_path, model, torch.randn(16, 8))
    acts = r["docs"][0]["signals"]
    assert acts["activations.zero_fraction"]["1"] == 1.0
    assert acts["activations.zero_fraction"]["0"] == 0.0
    assert acts["activations.mean"]["1"] == 0.0 and acts["activations.std"]["1"] == 0.0
    assert acts["gradients.rms"]["0"] == 0.0        # nothing flows back through a dead ReLU
    found, _ = find(r["arch"], r["steps"], r["series"])
    dead = [f for f in found if f["kind"] == "dead"]
    assert [f["nodes"] for f in dead] == [["1"]]
    assert dead[0]["text"] == ("`1`: 100 % of units are zero on every example of the example "
                               "batch (dead ReLU)")


def test_a_frozen_layer_has_an_update_ratio_of_exactly_zero(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    model[0].requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _, r = written(tmp_path, model, torch.randn(16, 8), steps=3, opt=opt,
                   y=torch.randint(0, 4, (16,)), signals=("weights", "updates", "gradients"))
    ratio = r["series"]["updates.ratio"]
    assert ratio["0"] == [None, 0.0, 0.0]            # no ratio at the first write
    assert all(v > 1e-3 for v in ratio["2"][1:])
    assert "0" not in r["series"]["gradients.rms"]  # no .grad on a frozen layer
    found, _ = find(r["arch"], r["steps"], r["series"])
    frozen = [f for f in found if f["kind"] == "frozen"]
    assert [f["nodes"] for f in frozen] == [["0"]]
    assert frozen[0]["text"] == ("`0` did not change between steps 0 and 2 "
                                 "(frozen or zero learning rate)")


class Sleepy(nn.Module):
    def forward(self, x):
        time.sleep(0.1)
        return x


def test_a_hand_timed_layer_is_the_slowest(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), Sleepy(), nn.Linear(8, 2))
    _, r = written(tmp_path, model, torch.randn(4, 8), signals=["time"])
    times = r["docs"][0]["signals"]["time.forward_ms"]
    assert times["1"] >= 100.0 and max(times, key=times.get) == "1"
    assert r["docs"][0]["meta"]["time_repeats"] == 3
    assert set(r["docs"][0]["signals"]) == {"time.forward_ms"}
    found, _ = find(r["arch"], r["steps"], r["series"])
    slowest = [f for f in found if f["kind"] == "slowest"]
    assert slowest[0]["nodes"] == ["1"] and slowest[0]["severity"] == "info"
    assert slowest[0]["text"].startswith("`1` is the slowest layer: ")


def test_backward_time_is_opt_in_and_leaves_grad_alone(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(4, 8)
    values, meta = compute_torch(model, x, ("backward_time",))
    assert set(values) == {"time.backward_ms"} and set(values["time.backward_ms"]) == {"0", "1",
                                                                                       "2"}
    assert all(p.grad is None for p in model.parameters())


def test_custom_values_round_trip_and_unknown_ids_are_reported(tmp_path, caplog):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with ArchVizWriter(str(tmp_path)) as w, caplog.at_level(logging.WARNING, WRITER_LOG):
        add_architecture(w, model, torch.randn(2, 4))
        doc = add_layer_values(w, "quant_error", {"0": 0.25, "1": float("nan"),
                                                  "no_such": float("-inf")}, 7)
    assert doc["values"] == {"0": 0.25, "1": "NaN", "no_such": "-Infinity"}
    warned = [r.getMessage() for r in caplog.records if r.name == WRITER_LOG]
    assert len(warned) == 1 and "no_such" in warned[0] and "unmatched" in warned[0]
    r = read_signals(str(tmp_path))
    assert r["values"]["quant_error"][7] == {"version": 1, "name": "quant_error",
                                             "values": {"0": 0.25, "1": "NaN",
                                                        "no_such": "-Infinity"}}
    with pytest.raises(ValueError, match="name must be"):
        add_layer_values(w, "bad/name", {"0": 1.0}, 0)
    with pytest.raises(ValueError, match="must be a number"):
        add_layer_values(w, "ok", {"0": "high"}, 0)


def test_a_model_without_parameters_gets_activations_and_time_only(tmp_path):
    model = nn.Sequential(nn.ReLU(), nn.Tanh())
    _, r = written_no_train(tmp_path, model, torch.randn(4, 8), signals="all")
    assert set(r["docs"][0]["signals"]) == {
        "activations.mean", "activations.std", "activations.zero_fraction",
        "activations.saturated_fraction", "time.forward_ms"}
    assert set(r["docs"][0]["signals"]["activations.saturated_fraction"]) == {"1"}  # Tanh only


def written_no_train(tmp_path, model, x, signals=None):
    with ArchVizWriter(str(tmp_path)) as w:
        arch = add_architecture(w, model, x)
        add_layer_signals(w, model, 0, input_to_model=x, signals=signals)
    return arch, read_signals(str(tmp_path))


def test_nan_gradients_and_activations_are_findings_not_zeros(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    _, r = written(tmp_path, model, torch.randn(4, 4))
    sig = r["docs"][0]["signals"]
    assert sig["gradients.rms"]["2"] == "NaN" and sig["activations.mean"]["2"] == "NaN"
    assert sig["weights.rms"]["2"] == "NaN"
    found, _ = find(r["arch"], r["steps"], r["series"])
    kinds = {(f["kind"], f["signal"]): f for f in found}
    assert ("nonfinite", "gradients.rms") in kinds and ("nonfinite", "activations.mean") in kinds
    assert kinds[("nonfinite", "activations.mean")]["nodes"] == ["2"]
    assert "NaN or infinite" in kinds[("nonfinite", "weights.rms")]["text"]


def test_no_side_effects_on_the_model(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train()
    x = torch.randn(6, 8)
    train_step(model, x, torch.zeros(6, dtype=torch.long))
    params = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad.clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    rng = torch.random.get_rng_state()
    compute_torch(model, x, ("weights", "updates", "gradients", "activations", "time",
                             "backward_time"))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(a, p) for a, p in zip(params, model.parameters()))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers()))
    assert torch.equal(rng, torch.random.get_rng_state())
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


def test_update_samples_are_bounded_and_fixed():
    torch.manual_seed(0)
    model = nn.Linear(200, 100)  # 20,000 weights > the 4096 sample
    state = TorchSignalState()
    compute_torch(model, None, ("updates",), state)
    assert state.tracker._previous["weight"].shape == (UPDATE_SAMPLE,)
    assert state.tracker._previous["bias"].shape == (100,)
    with torch.no_grad():
        model.weight.mul_(1.01)
    values, _ = compute_torch(model, None, ("updates", "weights"), state)
    # the bare layer is one node named by its class; 1 % growth of the weights on the sample
    assert values["updates.ratio"]["Linear"] == pytest.approx(0.01 * math.sqrt(
        state.tracker._previous["weight"].dot(state.tracker._previous["weight"]) / 1.01 ** 2
        / (state.tracker._previous["weight"].dot(state.tracker._previous["weight"]) / 1.01 ** 2
           + state.tracker._previous["bias"].dot(state.tracker._previous["bias"]))), rel=1e-3)


def test_failures_warn_once_and_switch_the_signals_off(tmp_path, caplog):
    model = nn.Sequential(nn.Linear(8, 8))
    with ArchVizWriter(str(tmp_path)) as w, caplog.at_level(logging.WARNING, WRITER_LOG):
        assert add_layer_signals(w, model, 0, input_to_model=torch.randn(2, 3)) is None
        assert add_layer_signals(w, model, 1, input_to_model=torch.randn(2, 8)) is None
    warned = [r.getMessage() for r in caplog.records if r.name == WRITER_LOG]
    assert len(warned) == 1 and "add_layer_signals failed" in warned[0]
    with pytest.raises(ValueError, match="unknown signal 'speed'"):
        add_layer_signals(w, model, 0, signals=["speed"])


def test_torch_summary_writer_and_wrappers(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    wrapped = nn.DataParallel(model)
    writer = SummaryWriter(str(tmp_path))
    x = torch.randn(3, 4)
    add_architecture(writer, wrapped, x)
    train_step(model, x, torch.zeros(3, dtype=torch.long))
    doc = add_layer_signals(writer, wrapped, 5)
    writer.close()
    assert set(doc["signals"]) == {"weights.rms", "gradients.rms"}  # no input: no activations
    assert set(doc["signals"]["weights.rms"]) == {"0", "2"}
    assert "activations" not in " ".join(doc["meta"]["notes"])
    r = read_signals(str(tmp_path))
    assert r["steps"] == [5] and r["docs"][5] == doc


def test_signals_through_the_real_route(tmp_path):
    """The fixture run (real writers) served by a real TensorBoard: the `signals` route."""
    from conftest import PLUGIN, get_json, run_tensorboard, wait_for_run
    from signals_fixtures import write_torch_signals_run

    facts = write_torch_signals_run(str(tmp_path), run="signals", steps=3)
    with run_tensorboard(str(tmp_path)) as url:
        runs = wait_for_run(url, "signals")
        assert runs["signals"].get("signals") is True
        status, doc = get_json(url + PLUGIN + "/signals?run=signals")
    assert status == 200, doc
    assert doc["steps"] == [0, 1, 2] and doc["architecture_step"] == 0
    s = doc["series"]
    assert s["activations.zero_fraction"][facts["dead_id"]] == [1.0, 1.0, 1.0]
    assert s["updates.ratio"][facts["frozen_id"]] == [None, 0.0, 0.0]
    assert doc["unmatched"] == {"values.quant_error": [facts["unknown_id"]]}
    by_kind = {}
    for f in doc["findings"]:
        by_kind.setdefault(f["kind"], []).append(f)
    assert by_kind["vanishing"][0]["nodes"][0] == "deep.0"
    assert by_kind["dead"][0]["nodes"] == [facts["dead_id"]]
    assert [facts["frozen_id"]] in [f["nodes"] for f in by_kind["frozen"]]
    assert by_kind["slowest"][0]["nodes"] == [facts["slow_id"]]
    assert doc["thresholds"]["vanishing_ratio"] == 1e-4 and doc["thresholds"]["frozen"] == 0.0
