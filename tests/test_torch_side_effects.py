"""add_architecture leaves no trace in the model (issue 17 item 4): no fx Proxy stored in a module,
the forward runs exactly once (also when torch.fx fails and the hooks path takes over), parameters
written in place and the caller's input tensors restored."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

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
    assert arch.extra["extraction"]["method"] == ("hooks" if method == "hooks" else "fx")
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
        if x.sum() > 0:
            return self.lin(x)
        return -self.lin(x)


def test_forward_runs_once_when_fx_fails(tmp_path):
    model = DataDependentCounter()
    x = torch.ones(2, 4)
    with ArchVizWriter(str(tmp_path)) as writer:
        arch = add_architecture(writer, model, x)
    assert arch.extra["extraction"]["method"] == "hooks"
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
