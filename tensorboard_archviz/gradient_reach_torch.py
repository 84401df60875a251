"""Gradient reach of a torch ``nn.Module`` (see ``tensorboard_archviz.gradient_reach``).

One forward pass in training mode (evaluation mode when training mode fails, e.g. BatchNorm on a
batch of one) under ``torch.enable_grad()``, then ``torch.autograd.grad(scalar, params,
allow_unused=True)``: the parameters' ``.grad`` fields are never touched. Forward hooks record
which modules ran and what they returned, and a ``TorchFunctionMode`` records every ``detach()`` /
``.data`` so that a parameter cut off from the loss is explained by the ``detach`` whose input's
autograd graph holds it. Training flags, buffers (BatchNorm statistics) and the RNG state are
restored afterwards; hooks are removed and no tensor is kept.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from tensorboard_archviz.gradient_reach import (FROZEN, GRAD, NONE, SCALAR_LOSS, SCALAR_SUM,
                                                ParamReach, build_result, unavailable)
from tensorboard_archviz.util import one_line
from tensorboard_archviz.extract.torch_graph import unwrap

ROOT_ID = "(model)"
_DETACH = {"detach", "detach_", "data"}


def _tensors(value: Any, depth: int = 0) -> List[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if depth > 8:
        return []
    if isinstance(value, dict):
        value = list(value.values())
    elif hasattr(value, "__dataclass_fields__"):
        value = [getattr(value, f) for f in value.__dataclass_fields__]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v, depth + 1)]
    return []


def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, dict):
        return model(**example_input)
    if isinstance(example_input, (list, tuple)):
        return model(*example_input)
    return model(example_input)


class _State:
    """Training flags, buffers and RNG of a model, restored on exit."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.buffers = [(m, k, b, b.detach().clone()) for m in self.model.modules()
                        for k, b in m._buffers.items() if b is not None]
        self.rng = torch.random.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return self

    def __exit__(self, *exc):
        for m, training in self.modes:
            m.training = training
        with torch.no_grad():
            for m, k, b, saved in self.buffers:
                if m._buffers.get(k) is not b:
                    m._buffers[k] = b
                if b.shape == saved.shape and not torch.equal(b, saved):
                    b.copy_(saved)
        torch.random.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        return False


class _Recorder(TorchFunctionMode):
    """Which modules ran, who produced each tensor, and every detach with its input."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.names = {m: (q or ROOT_ID) for q, m in model.named_modules()}
        self.param_names = {id(p): "%s.%s" % (q, k) if q else k
                            for q, m in model.named_modules() for k, p in m._parameters.items()
                            if p is not None}
        self.called: Dict[str, bool] = {}        # module id -> its output requires grad
        self.producers: Dict[int, Tuple[Any, str]] = {}
        self.stack: List[str] = []
        self.detaches: List[Tuple[str, Any]] = []  # (label, input tensor's grad_fn or param)
        self.handles: List[Any] = []

    def install(self, model: nn.Module) -> None:
        for m, q in self.names.items():
            self.handles.append(m.register_forward_pre_hook(self._pre(q)))
            self.handles.append(m.register_forward_hook(self._post(q)))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _pre(self, q: str):
        def hook(module, args):
            self.stack.append(q)
        return hook

    def _post(self, q: str):
        def hook(module, args, output):
            if self.stack and self.stack[-1] == q:
                self.stack.pop()
            outs = [t for t in _tensors(output) if t.is_floating_point() or t.is_complex()]
            self.called[q] = self.called.get(q, False) or any(t.requires_grad for t in outs)
            for t in outs:
                self.producers[id(t)] = (weakref.ref(t), q)
        return hook

    def producer(self, t: torch.Tensor) -> Optional[str]:
        e = self.producers.get(id(t))
        if e is not None and e[0]() is t:
            return e[1]
        return self.param_names.get(id(t))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if name == "__get__":
            name = getattr(getattr(func, "__self__", None), "__name__", "")
        if name in _DETACH and args and isinstance(args[0], torch.Tensor) \
                and args[0].requires_grad:
            self.detaches.append((self._label(args[0], name), args[0]))
        return out

    def _label(self, t: torch.Tensor, name: str) -> str:
        call = ".data" if name == "data" else ".%s()" % name
        src = self.producer(t)
        if src is not None:
            return "%s%s" % (src, call)
        where = self.stack[-1] if self.stack else ROOT_ID
        return "%s in %s.forward" % (call.lstrip("."), where)


def _reachable_params(t: torch.Tensor) -> set:
    """ids of the leaf tensors (parameters) in the autograd graph behind `t`."""
    if t.grad_fn is None:
        return {id(t)} if t.requires_grad else set()
    out, seen, todo = set(), set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None:
            out.add(id(var))
        todo.extend(nxt for nxt, _ in getattr(fn, "next_functions", ()))
    return out


def _scalar(output: Any, loss: Optional[Callable[[Any], Any]]):
    if loss is not None:
        value = loss(output)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise TypeError("the loss must return a tensor with one element, got %s"
                            % type(value).__name__)
        return value.reshape(())
    outs = [t for t in _tensors(output) if t.is_floating_point()]
    if not outs:
        return None
    total = None
    for t in outs:
        w = 0.5 + (torch.arange(t.numel(), device=t.device) % 97).to(t.dtype) / 97
        term = (t.reshape(-1) * w).sum()
        total = term if total is None else total + term
    return total


def _forward(model: nn.Module, example_input: Any, rec: _Recorder) -> Tuple[Any, str]:
    """Runs the forward in training mode, else in evaluation mode; returns (output, mode)."""
    try:
        model.train()
        with torch.enable_grad(), rec:
            return _call(model, example_input), "train"
    except Exception as e:  # noqa: BLE001 - e.g. BatchNorm on a batch of one: try eval
        first = one_line(e)
    rec.called.clear()
    rec.detaches.clear()
    model.eval()
    with torch.enable_grad(), rec:
        out = _call(model, example_input)
    return out, "eval (training mode failed: %s)" % first


def _none_reason(q: str, pid: int, rec: _Recorder, cut: Dict[int, str]) -> str:
    if pid in cut:
        return "the branch is detached at %s" % cut[pid]
    if q not in rec.called:
        return "%s is not called in the forward pass (unused module)" % q
    if not rec.called[q]:
        return "%s's output does not require grad (computed under torch.no_grad()?)" % q
    return "%s's output does not reach the model's outputs" % q


def _classify(model: nn.Module, grads: Dict[int, Any], rec: _Recorder) -> List[ParamReach]:
    cut: Dict[int, str] = {}
    for label, t in rec.detaches:
        for pid in _reachable_params(t):
            cut.setdefault(pid, label)
    out = []
    for q, m in model.named_modules():
        nid = q or ROOT_ID
        for k, p in m._parameters.items():
            if p is None or isinstance(p, nn.parameter.UninitializedParameter):
                continue
            size = int(p.numel())
            if not p.requires_grad:
                out.append(ParamReach(nid, k, FROZEN, size))
                continue
            g = grads.get(id(p))
            if g is None:
                out.append(ParamReach(nid, k, NONE, size, _none_reason(nid, id(p), rec, cut)))
            elif not bool(torch.any(g != 0)):
                out.append(ParamReach(nid, k, NONE, size,
                                      "the gradient is exactly 0 on the example input"))
            else:
                out.append(ParamReach(nid, k, GRAD, size))
    return out


def _parents(model: nn.Module) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {ROOT_ID: None}
    for q, _ in model.named_modules():
        if q:
            out[q] = q.rsplit(".", 1)[0] if "." in q else None
    return out


def gradient_reach_torch(model: nn.Module, example_input: Any,
                         loss: Optional[Callable[[Any], Any]] = None) -> Dict[str, Any]:
    """The ``gradient_reach`` object of `model` on `example_input` (see the module doc)."""
    model = unwrap(model)
    if not isinstance(model, nn.Module):
        return unavailable("not a torch.nn.Module: %s" % type(model).__name__)
    rec = _Recorder(model)
    with _State(model):
        rec.install(model)
        try:
            try:
                output, mode = _forward(model, example_input, rec)
            except Exception as e:  # noqa: BLE001 - reported, the architecture is still written
                return unavailable("the forward pass failed: %s" % one_line(e))
            finally:
                rec.remove()
            return _backward(model, output, mode, rec, loss)
        finally:
            rec.producers.clear()
            rec.detaches.clear()


def _backward(model: nn.Module, output: Any, mode: str, rec: _Recorder,
              loss: Optional[Callable[[Any], Any]]) -> Dict[str, Any]:
    try:
        with torch.enable_grad():
            scalar = _scalar(output, loss)
    except Exception as e:  # noqa: BLE001
        return unavailable("the loss failed: %s" % one_line(e))
    if scalar is None:
        return unavailable("the model's outputs hold no floating-point tensor (got %s)"
                           % type(output).__name__)
    params, seen = [], set()
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
    grads: Dict[int, Any] = {}
    if params and scalar.requires_grad:
        try:
            found = torch.autograd.grad(scalar, params, allow_unused=True)
        except Exception as e:  # noqa: BLE001
            return unavailable("the backward pass failed: %s" % one_line(e))
        grads = {id(p): g for p, g in zip(params, found)}
    result = _classify(model, grads, rec)
    return build_result(result, _parents(model), SCALAR_LOSS if loss else SCALAR_SUM, mode=mode)
