"""add_architecture leaves no trace in the model (issue 17 item 4): no fx Proxy stored in a module,
the forward runs exactly once (also when torch.fx fails and the hooks path takes over), parameters
written in place and the caller's input tensors restored."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import torch_models as tm

from tensorboard_archviz import add_architecture
from tensorboard_archviz.summary import ArchVizWriter
from tensorboard_archviz.extract.torch import extract_torch

METHODS = pytest.mark.parametrize("method", ["auto", "fx", "hooks"])


class Stateful(nn.Module):
    """Stores its last output and counts its calls (Python attributes)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        y = self.lin(x)
        self.last = y.detach()
        return y


@METHODS
def test_no_proxy_left_and_the_model_can_be_saved(method, tmp_path):
    model = Stateful()
    with ArchVizWriter(str(tmp_path)) as writer:
        arch = add_architecture(writer, model, torch.randn(2, 4), method=method)
    assert arch.extraction["method"] == ("fx" if method == "fx" else "hooks")
    last = getattr(model, "last", None)
    assert last is None or isinstance(last, torch.Tensor)  # never a torch.fx Proxy
    torch.save(model, io.BytesIO())  # failed with "Can't pickle local object ... Tracer"
    assert model.calls == 1  # the forward ran once (the fx trace is that one run)


class DataDependentCounter(nn.Module):
    """torch.fx fails at the `if` (after the counter was incremented): the hooks path runs."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        self.seen = x.detach()
        x = tm.wrapped_scale(x)  # a torch.fx.wrap-ed function: "auto" tries torch.fx first
        if x.sum() > 0:
            return self.lin(x)
        return -self.lin(x)


def test_forward_runs_once_when_fx_fails(tmp_path):
    model = DataDependentCounter()
    x = torch.ones(2, 4)
    with ArchVizWriter(str(tmp_path)) as writer:
        arch = add_architecture(writer, model, x)
    assert arch.extraction["method"] == "hooks"
    assert "torch.fx could not trace" in arch.extraction["reason"]
    assert model.calls == 1  # +1, not +2
    assert model.seen is not None and isinstance(model.seen, torch.Tensor)
    torch.save(model, io.BytesIO())


class InPlace(nn.Module):
    """Writes its own parameter and its input in place."""

    def __init__(self, setitem: bool):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.scale = nn.Parameter(torch.ones(4))
        self.setitem = setitem

    def forward(self, x):
        with torch.no_grad():
            self.scale.mul_(2.0)          # a parameter edited in place
            if self.setitem:              # (torch.fx cannot trace item assignment)
                self.lin.weight[0, 0] = 5.0
        x += 1                            # the caller's tensor, in place
        return self.lin(torch.relu_(x)) * self.scale


@METHODS
def test_parameters_and_inputs_written_in_place_are_restored(method):
    torch.manual_seed(0)
    model = InPlace(setitem=method != "fx")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 4)
    x_before = x.clone()
    arch = extract_torch(model, x, method=method)
    assert arch.node("lin").output_shapes == [[3, 4]]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(x, x_before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", ["auto", "hooks"])
def test_inplace_relu_on_the_input_is_undone(method):
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 2))
    x = torch.randn(5, 4)
    x_before = x.clone()
    extract_torch(model, x, method=method)
    assert torch.equal(x, x_before)


def test_a_replaced_submodule_and_buffer_are_put_back():
    class Rewires(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("count", torch.zeros(()))

        def forward(self, x):
            self.count += 1
            self.register_buffer("other", torch.ones(1))
            return self.lin(x)

    model = Rewires()
    lin, count = model.lin, model.count
    extract_torch(model, torch.randn(1, 2), method="hooks")
    assert model.lin is lin and model.count is count and model.count.item() == 0
    assert "other" not in model._buffers


class Holder:
    """A plain object held by a module (not a module): its attributes are nested state."""

    def __init__(self):
        self.last = None
        self.history = {"runs": []}


class Logs(nn.Module):
    """Keeps what it saw in containers and nested attributes, and counts in a tensor."""

    def __init__(self, data_dependent: bool = False):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.log = []
        self.stats = {}
        self.shapes = set()
        self.holder = Holder()
        self.steps = torch.zeros((), dtype=torch.long)  # a tensor attribute, not a buffer
        self.data_dependent = data_dependent

    def forward(self, x):
        self.steps += 1
        y = self.lin(x)
        self.log.append(y)
        self.stats["mean"] = y.mean()
        self.shapes.add(y.shape)
        self.holder.last = y
        self.holder.history["runs"].append(y.sum())
        y = tm.wrapped_scale(y)  # a torch.fx.wrap-ed function: "auto" tries torch.fx first
        if self.data_dependent and x.sum() > 0:  # torch.fx fails here: the hooks path runs
            y = -y
        return y


def _fx_objects(model):
    from tensorboard_archviz.extract.torch_guard import is_fx_object

    found = []

    def walk(v, path, depth=0):
        if is_fx_object(v):
            found.append(path)
        elif depth < 6 and isinstance(v, (list, tuple, set)):
            for i, x in enumerate(v):
                walk(x, "%s[%d]" % (path, i), depth + 1)
        elif depth < 6 and isinstance(v, dict):
            for k, x in v.items():
                walk(x, "%s[%r]" % (path, k), depth + 1)
        elif depth < 6 and isinstance(v, Holder):
            walk(vars(v), path, depth + 1)

    for q, m in model.named_modules():
        for k, v in vars(m).items():
            walk(v, "%s.%s" % (q, k))
    return found


@pytest.mark.parametrize("data_dependent,method", [(False, "auto"), (False, "hooks"),
                                                   (True, "auto")])
def test_no_fx_object_anywhere_and_state_as_after_one_forward(data_dependent, method, tmp_path):
    model = Logs(data_dependent)
    x = torch.ones(2, 4)
    arch = extract_torch(model, x, method=method)
    expected = "hooks" if data_dependent or method == "hooks" else "fx"
    assert arch.extraction["method"] == expected
    assert _fx_objects(model) == []
    torch.save(model, tmp_path / "model.pt")  # a Proxy anywhere would fail to pickle
    assert int(model.steps) == 1  # once, as one real forward (also after the fx fallback)
    if expected == "hooks":  # the real forward ran: what it kept is real
        assert len(model.log) == 1 and isinstance(model.log[0], torch.Tensor)
        assert isinstance(model.stats["mean"], torch.Tensor)
        assert model.shapes == {torch.Size([2, 4])}
        assert isinstance(model.holder.last, torch.Tensor)
        assert len(model.holder.history["runs"]) == 1
    else:  # the trace's proxies were taken out again: the containers are as before
        assert model.log == [] and model.stats == {} and model.shapes == set()
        assert model.holder.last is None and model.holder.history == {"runs": []}
    # a second extraction and a real call still work on the restored model
    extract_torch(model, x, method=method)
    model(x)


@pytest.mark.parametrize("method", ["auto", "fx", "hooks"])
def test_inplace_relu_on_the_callers_input_is_restored(method):
    """ReLU(inplace=True) runs outside the dispatch mode only when what it writes is not
    watched: on the caller's input (first layer) it is guarded and restored; after a Linear
    (an intermediate tensor) nothing needs a copy."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 4), nn.ReLU(inplace=True))
    x = torch.randn(3, 4)
    assert (x < 0).any()
    before = x.clone()
    arch = extract_torch(model, x, method=method)
    assert torch.equal(x, before)  # the caller's tensor, written in place by the forward
    assert arch.node("0").output_shapes == [[3, 4]] and arch.node("2").macs == 0
    assert arch.model.macs == 16
    assert set(arch.edge_pairs()) == {("input", "0"), ("0", "1"), ("1", "2")}
