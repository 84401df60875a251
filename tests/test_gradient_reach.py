"""Gradient reach on real PyTorch and Keras models (TensorFlow and torch backends).

Each model has a detached branch, an unused module and a frozen layer, and exactly those must be
reported; a model where everything learns reports no "none"; ``.grad`` fields, training flags,
buffers / non-trainable variables and the RNG are as before; failing models give
``status: unavailable`` while the architecture is still written. Keras runs in subprocesses (one
per backend) so the backend can be chosen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from tensorboard_archviz import gradient_reach, schema
from tensorboard_archviz.summary import ArchVizWriter
from torch_models import SmallResNet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Detached(nn.Module):
    """trunk -> frozen -> head is learnt; aux's output is detached; unused is never called."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 4)
        self.unused = nn.Linear(3, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        f = self.trunk(x).mean((2, 3))
        return self.head(self.drop(self.frozen(f)) + self.aux(f).detach())


class BadBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("this backward always fails")


class FailingBackward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return BadBackward.apply(self.fc(x))


class StringOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        self.fc(x)
        return "not a tensor"


def states(result):
    return {nid: (e["state"], e.get("reason")) for nid, e in result["nodes"].items()}


def test_torch_detached_unused_frozen_reported_exactly():
    model = Detached()
    model.head.weight.grad = torch.full_like(model.head.weight, 7.0)
    grad_obj = model.head.weight.grad
    model.eval()
    stats = model.trunk[1].running_mean.clone()
    x = torch.randn(2, 1, 6, 6)
    rng = torch.random.get_rng_state()
    r = gradient_reach.compute(model, x)
    assert r["status"] == "ok" and r["mode"] == "train"
    assert r["counts"] == {"grad": 6, "none": 4, "frozen": 2}
    s = states(r)
    assert s["aux"] == ("none", "the branch is detached at aux.detach()")
    assert s["unused"] == ("none", "unused is not called in the forward pass (unused module)")
    assert s["frozen"] == ("frozen", None)
    for nid in ("trunk.0", "trunk.1", "head", "trunk"):
        assert s[nid] == ("grad", None), nid
    assert set(r["nodes"]["aux"]["params"]) == {"weight", "bias"}
    assert r["nodes"]["aux"]["params"]["weight"] == {
        "state": "none", "size": 16, "reason": "the branch is detached at aux.detach()"}
    assert r["summary"] == (
        "2 parameters of aux receive no gradient: the branch is detached at aux.detach(); "
        "2 parameters of unused receive no gradient: unused is not called in the forward pass "
        "(unused module); 2 parameters frozen on purpose (frozen)")
    # no side effects
    assert model.head.weight.grad is grad_obj and bool((grad_obj == 7).all())
    assert all(p.grad is None for n, p in model.named_parameters() if n != "head.weight")
    assert not any(m.training for m in model.modules())
    assert torch.equal(model.trunk[1].running_mean, stats)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert not model._forward_hooks and not model.trunk[0]._forward_pre_hooks
    json.dumps(r)


def test_torch_everything_learns_and_training_mode_kept():
    model = SmallResNet()
    model.train()
    r = gradient_reach.compute(model, torch.randn(1, 1, 28, 28))
    assert r["status"] == "ok"
    assert r["counts"] == {"grad": 10, "none": 0, "frozen": 0}
    assert set(e["state"] for e in r["nodes"].values()) == {"grad"}
    assert r["summary"] == "all 10 trainable parameters receive a gradient"
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_torch_no_grad_section_and_loss():
    class NoGrad(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 2)

        def forward(self, x):
            with torch.no_grad():
                h = self.a(x)
            return self.b(h)

    r = gradient_reach.compute(NoGrad(), torch.randn(2, 3), loss=lambda out: out[:, 0].mean())
    s = states(r)
    assert s["a"] == ("none", "a's output does not require grad (computed under torch.no_grad()?)")
    assert s["b"] == ("grad", None)
    assert r["scalar"] == gradient_reach.SCALAR_LOSS


def test_torch_functional_detach_data_and_dropped_output():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.g = nn.Linear(3, 3)
            self.h = nn.Linear(3, 3)

        def forward(self, x):
            y = torch.nn.functional.linear(x, self.fc.weight.detach(), self.fc.bias)
            self.h(x)   # computed, then dropped
            return y + self.g(x).data

    r = gradient_reach.compute(Functional(), torch.randn(2, 3))
    assert r["nodes"]["fc"]["params"] == {
        "weight": {"state": "none", "size": 9, "reason": "the branch is detached at fc.weight.detach()"},
        "bias": {"state": "grad", "size": 3}}
    assert r["nodes"]["fc"]["state"] == "mixed"
    assert states(r)["g"] == ("none", "the branch is detached at g.data")
    assert states(r)["h"] == ("none", "h's output does not reach the model's outputs")


@pytest.mark.parametrize("model, needle", [
    (FailingBackward(), "the backward pass failed: RuntimeError: this backward always fails"),
    (StringOutput(), "the model's outputs hold no floating-point tensor (got str)"),
])
def test_torch_unavailable_and_architecture_still_written(tmp_path, model, needle):
    from tensorboard_archviz import add_architecture

    r = gradient_reach.compute(model, torch.randn(1, 4))
    assert r["status"] == "unavailable" and r["reason"] == needle
    assert r["summary"] == "gradient reach unavailable: " + needle
    if isinstance(model, StringOutput):
        return  # the extractor itself needs tensor outputs
    with ArchVizWriter(str(tmp_path)) as w:
        arch = add_architecture(w, model, torch.randn(1, 4), gradient_reach=True)
    back = schema.from_json(arch.to_json())
    assert back.gradient_reach["status"] == "unavailable"
    assert [n.id for n in back.nodes if n.class_name == "Linear"] == ["fc"]


KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import keras
    from tensorboard_archviz import gradient_reach

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.trunk = keras.layers.Dense(6, name="trunk")
            self.norm = keras.layers.BatchNormalization(name="norm")
            self.side = keras.layers.Dense(6, name="side")
            self.frozen = keras.layers.Dense(6, name="frozen")
            self.frozen.trainable = False
            self.head = keras.layers.Dense(2, name="head")
            self.drop = keras.layers.Dropout(0.5)
            self.unused = keras.layers.Dense(3, name="unused")

        def build(self, shape):
            self.unused.build((None, 4))

        def call(self, x, training=None):
            h = self.drop(self.frozen(self.norm(self.trunk(x))), training=training)
            return self.head(h + keras.ops.stop_gradient(self.side(x)))

    model = Net()
    model(np.zeros((2, 4), "float32"))
    before = [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.variables]
    out = {"detached": gradient_reach.compute(model)}
    after = [keras.ops.convert_to_numpy(v.value) for v in model.variables]
    out["unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, after))
    out["call_wrapped"] = any("call" in l.__dict__ for l in model._flatten_layers())
    cnn = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                            keras.layers.BatchNormalization(), keras.layers.Flatten(),
                            keras.layers.Dense(10, activation="softmax")])
    out["learns"] = gradient_reach.compute(cnn)
    def bad_loss(outputs):
        raise ValueError("no loss today")
    out["bad"] = gradient_reach.compute(cnn, loss=bad_loss)
    if keras.backend.backend() == "tensorflow":   # the callback writes it with the architecture
        import glob
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.util import tensor_util
        from tensorboard_archviz import ArchVizCallback, metadata
        cnn.compile("adam", "sparse_categorical_crossentropy")
        cb = ArchVizCallback(log_dir=sys.argv[1], gradient_reach=True)
        cnn.fit(np.random.rand(8, 8, 8, 1), np.zeros(8), epochs=1, verbose=0, callbacks=[cb])
        for f in glob.glob(os.path.join(sys.argv[1], "train", "*")):
            for ev in event_file_loader.EventFileLoader(f).Load():
                for v in ev.summary.value:
                    if v.tag == metadata.ARCHITECTURE_TAG:
                        arch = json.loads(tensor_util.make_ndarray(v.tensor).item())
                        out["callback"] = arch["gradient_reach"]
    print("RESULT" + json.dumps(out))
""")


KERAS_BACKENDS = ("tensorflow", "torch")


@pytest.fixture(scope="module")
def keras_runs(tmp_path_factory):
    """Both backends' scripts, started together (they wait on imports more than on the CPU)."""
    procs = {}
    for backend in KERAS_BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        procs[backend] = subprocess.Popen(
            [sys.executable, "-c", KERAS_SCRIPT, str(tmp_path_factory.mktemp("reach_" + backend))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.mark.parametrize("backend", KERAS_BACKENDS)
def test_keras_detached_unused_frozen(backend, keras_runs):
    stdout, stderr = keras_runs[backend].communicate(timeout=300)
    line = [l for l in stdout.splitlines() if l.startswith("RESULT")]
    assert line, stdout[-2000:] + stderr[-3000:]
    out = json.loads(line[0][len("RESULT"):])
    r = out["detached"]
    assert r["status"] == "ok", r
    s = states(r)
    assert s == {
        "trunk": ("grad", None), "norm": ("grad", None), "head": ("grad", None),
        "side": ("none", "the branch is detached at stop_gradient"),
        "frozen": ("frozen", None),
        "unused": ("none", "unused is not called in the forward pass (unused layer)"),
    }
    assert r["counts"] == {"grad": 6, "none": 4, "frozen": 2}
    assert set(r["nodes"]["norm"]["params"]) == {"gamma", "beta"}  # statistics are state
    assert out["unchanged"] and not out["call_wrapped"]
    learns = out["learns"]
    assert learns["counts"] == {"grad": 6, "none": 0, "frozen": 0}
    assert learns["summary"] == "all 6 trainable parameters receive a gradient"
    assert out["bad"]["status"] == "unavailable"
    assert out["bad"]["reason"].endswith("ValueError: no loss today")
    if backend == "tensorflow":
        assert out["callback"]["status"] == "ok"
        assert out["callback"]["summary"] == "all 6 trainable parameters receive a gradient"


# -- no side effects (issue 21 item 4) ----------------------------------------------------------

class Busy(nn.Module):
    """Writes a parameter in place, counts its calls, appends to a list, sets a dict entry,
    increments a tensor attribute and registers a tensor hook, all in forward."""

    def __init__(self, fired):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(4)
        self.counter = 1
        self.log = []
        self.stats = {"seen": 0}
        self.steps = torch.zeros(())
        self.fired = fired

    def forward(self, x):
        self.counter += 1
        self.log.append(x.shape[0])
        self.stats["seen"] += 1
        self.steps += 1
        with torch.no_grad():
            self.b.bias.add_(1.0)
        h = self.bn(self.a(x))
        if h.requires_grad:
            h.register_hook(lambda g: self.fired.append("tensor in forward"))
        return self.b(torch.relu(h))


def _busy_with_hooks():
    fired = []
    model = Busy(fired)
    model.a.register_forward_hook(lambda *a: fired.append("forward"))
    model.a.register_forward_pre_hook(lambda *a: fired.append("forward pre"))
    model.b.register_full_backward_hook(lambda *a: fired.append("full backward"))
    model.a.weight.register_hook(lambda g: fired.append("parameter"))
    return model, fired


def test_torch_pass_leaves_the_model_as_it_was_and_user_hooks_silent():
    model, fired = _busy_with_hooks()
    x = torch.randn(3, 4)
    x_before = x.clone()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    r = gradient_reach.compute(model, x)
    assert r["status"] == "ok" and r["counts"] == {"grad": 6, "none": 0, "frozen": 0}, r
    assert fired == []  # no forward, backward, tensor or parameter hook saw the pass
    assert model.counter == 1 and model.log == [] and model.stats == {"seen": 0}
    assert float(model.steps) == 0.0
    for k, v in model.state_dict().items():  # b.bias written in place, BN statistics
        assert torch.equal(v, params[k]), k
    assert torch.equal(x, x_before) and torch.equal(torch.random.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters()) and model.training
    # the user's hooks are back: a real step fires every one of them once
    model(x).sum().backward()
    assert sorted(fired) == ["forward", "forward pre", "full backward", "parameter",
                             "tensor in forward"]
    assert model.counter == 2 and model.log == [3]


def test_add_architecture_with_gradient_reach_leaves_what_the_extraction_leaves(tmp_path):
    from tensorboard_archviz import add_architecture

    after = {}
    for reach in (False, True):
        torch.manual_seed(0)
        model, fired = _busy_with_hooks()
        with ArchVizWriter(str(tmp_path / str(reach))) as w:
            arch = add_architecture(w, model, torch.randn(3, 4), gradient_reach=reach)
        after[reach] = (model.counter, list(model.log), dict(model.stats), float(model.steps),
                        list(fired), float(model.b.bias.sum()), torch.random.get_rng_state())
        assert (arch.gradient_reach is not None) == reach
    assert after[True][:6] == after[False][:6]
    assert torch.equal(after[True][6], after[False][6])
    assert after[True][0] == 2 and after[True][4] == ["forward pre", "forward"]  # one forward


def test_torch_meta_device_llama_reach_from_the_graph_rng_kept():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    ids = torch.zeros(1, 8, dtype=torch.long, device="meta")
    model.eval()
    modes = [m.training for m in model.modules()]
    rng = torch.random.get_rng_state()
    r = gradient_reach.compute(model, {"input_ids": ids})
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert r["status"] == "ok", r
    assert r["summary"] == ("all 21 trainable parameters receive a gradient; meta device: reach "
                            "read from the autograd graph (no values, so an exactly-zero "
                            "gradient cannot be told)")
    assert r["counts"] == {"grad": 21, "none": 0, "frozen": 0}
    assert "aten::" not in json.dumps(r)
    assert all(p.is_meta for p in model.parameters())
    assert [m.training for m in model.modules()] == modes


def test_one_name_per_parameter_from_the_writer_down():
    import inspect
    from tensorboard_archviz.gradient_reach import torch as reach_torch
    from tensorboard_archviz.torch_writer import add_architecture

    def params(f):
        return list(inspect.signature(f).parameters)

    assert params(add_architecture)[:3] == ["writer", "model", "input_to_model"]
    assert "gradient_reach" in params(add_architecture)
    assert params(gradient_reach.add_to)[:4] == ["arch", "model", "input_to_model",
                                                 "gradient_reach"]
    assert params(gradient_reach.compute)[:2] == ["model", "input_to_model"]
    assert params(reach_torch.reach)[:2] == ["model", "input_to_model"]


def test_keras_reach_reuses_the_callers_extraction(monkeypatch, tmp_path):
    import keras
    import numpy as np
    from tensorboard_archviz import ArchVizCallback
    from tensorboard_archviz.extract import keras as keras_extract

    runs = []
    real_run = keras_extract._Extractor.run
    monkeypatch.setattr(keras_extract._Extractor, "run",
                        lambda self: runs.append(1) or real_run(self))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.Dense(2, activation="softmax")])
    arch, layers = keras_extract.extract_keras_layers(model)
    assert len(runs) == 1 and set(layers) == {n.id for n in arch.nodes}
    gradient_reach.add_to(arch, model, None, True, layers=layers)
    assert len(runs) == 1 and arch.gradient_reach["status"] == "ok"
    assert arch.gradient_reach["counts"] == {"grad": 4, "none": 0, "frozen": 0}
    assert gradient_reach.compute(model)["counts"] == arch.gradient_reach["counts"]
    assert len(runs) == 2  # without the caller's extraction: extracted once, here
    model.compile("adam", "mse")
    per_write = []
    real_write = ArchVizCallback._write_architecture

    def write(self, *args, **kwargs):  # extractions while the callback writes an architecture
        before = len(runs)
        real_write(self, *args, **kwargs)
        per_write.append(len(runs) - before)

    monkeypatch.setattr(ArchVizCallback, "_write_architecture", write)
    cb = ArchVizCallback(log_dir=str(tmp_path), gradient_reach=True)
    model.fit(np.zeros((4, 4), "float32"), np.zeros((4, 2), "float32"), epochs=1, verbose=0,
              callbacks=[cb])
    # one architecture written (a later call finds it unchanged): one extraction, reach included
    assert len(cb.written_steps) == 1 and per_write[0] == 1 and sum(per_write) == 1


def test_torch_own_hooks_stay_for_the_pass():
    """Pruning is a forward pre-hook of torch's: it stays (part of the computation), the
    user's hooks beside it are set aside."""
    from torch.nn.utils import prune
    from tensorboard_archviz.gradient_reach import torch as reach_torch

    model, fired = _busy_with_hooks()
    prune.l1_unstructured(model.a, "weight", amount=0.5)
    hooks = list(model.a._forward_pre_hooks.values())
    assert [reach_torch.is_torch_hook(h) for h in hooks] == [False, True]
    r = gradient_reach.compute(model, torch.randn(3, 4))
    assert set(r["nodes"]["a"]["params"]) == {"bias", "weight_orig"}
    assert r["nodes"]["a"]["params"]["weight_orig"]["state"] == "grad" and fired == []
    assert list(model.a._forward_pre_hooks.values()) == hooks


def test_keras_weight_assigned_in_call_is_put_back():
    """Neither the extraction (a custom layer's call traced for its MACs) nor the pass leave
    a weight that call() assigns to changed."""
    import keras
    import numpy as np

    class Drift(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones", name="w")

        def call(self, x):
            self.w.assign_add(keras.ops.ones_like(self.w))  # a weight written in call
            return x * self.w

    model = keras.Sequential([keras.Input((3,)), Drift(), keras.layers.Dense(2)])
    before = [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.variables]
    r = gradient_reach.compute(model)  # extracts (its MACs trace runs call) and runs the pass
    assert r["status"] == "ok" and r["counts"] == {"grad": 3, "none": 0, "frozen": 0}, r
    after = [keras.ops.convert_to_numpy(v.value) for v in model.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_torch_failing_forward_leaves_nothing_either():
    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.counter, self.log = 1, []

        def forward(self, x):
            self.counter += 1
            self.log.append(float(torch.rand(())))  # consumes the RNG
            with torch.no_grad():
                self.fc.weight.mul_(0)
            raise RuntimeError("boom")

    model, x = Flaky(), torch.randn(1, 2)
    weight = model.fc.weight.clone()
    rng = torch.random.get_rng_state()
    r = gradient_reach.compute(model, x)
    assert r == gradient_reach.unavailable("the forward pass failed: RuntimeError: boom")
    assert model.counter == 1 and model.log == [] and torch.equal(model.fc.weight, weight)
    assert torch.equal(torch.random.get_rng_state(), rng) and model.training
