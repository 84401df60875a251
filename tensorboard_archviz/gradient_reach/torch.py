"""Gradient reach of a torch ``nn.Module`` (see the ``tensorboard_archviz.gradient_reach`` package).

One forward pass in training mode (evaluation mode when training mode fails, e.g. BatchNorm on a
batch of one) under ``torch.enable_grad()``, then ``torch.autograd.grad(scalar, params,
allow_unused=True)``: the parameters' ``.grad`` fields are never touched. Forward hooks record
which modules ran and what they returned, and a ``TorchFunctionMode`` records every ``detach()`` /
``.data`` so that a parameter cut off from the loss is explained by the ``detach`` whose input's
autograd graph holds it.

The pass keeps the promise of extraction (``extract.torch_guard``): afterwards the model is as it
was before it —

- training flags, module attributes and the containers they hold (a counter, a list appended to
  in ``forward``: ``torch_guard.ModuleState``), parameters, tensor attributes and the caller's
  input tensors written in place (``p.add_()`` under ``no_grad``: copied on write by
  ``torch_guard.WriteGuard`` and written back), buffers (BatchNorm statistics: copied before
  the pass, since ``native_batch_norm`` writes them without saying so in its schema), the CPU
  (and CUDA) RNG state — restored also when the pass fails;
- the user's hooks do not see the pass: module forward / forward-pre hooks (they ran in the
  extraction's forward already), module backward hooks (``register_full_backward_hook``, also
  the global ones) and tensor hooks (``register_hook`` on parameters and buffers, and calls
  of ``register_hook`` inside ``forward``, which register nothing) are set aside for the pass.
  Hooks that are part of the computation are kept: those of torch itself
  (``torch.nn.utils.prune``, ``spectral_norm``, ``weight_norm``, quantization observers).
  Not silenced: hooks put directly on an autograd node (``y.grad_fn.register_hook``) inside
  ``forward`` — they fire during the synthetic backward.
- A model on the meta device has no values: reach is read from the autograd graph alone (a
  parameter the graph reaches is ``grad``; an exactly-zero gradient cannot be told), and the
  summary says so.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from tensorboard_archviz.extract.torch_graph import unwrap
from tensorboard_archviz.extract.torch_guard import ModuleState, WriteGuard
from tensorboard_archviz.gradient_reach.core import (FROZEN, GRAD, NONE, SCALAR_LOSS, SCALAR_SUM,
                                                     ParamReach, build_result, unavailable)
from tensorboard_archviz.util import one_line

ROOT_ID = "(model)"
_DETACH = {"detach", "detach_", "data"}
META_NOTE = ("meta device: reach read from the autograd graph (no values, so an exactly-zero "
             "gradient cannot be told)")


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


def _call(model: nn.Module, input_to_model: Any) -> Any:
    if isinstance(input_to_model, dict):
        return model(**input_to_model)
    if isinstance(input_to_model, (list, tuple)):
        return model(*input_to_model)
    return model(input_to_model)


# ---------------------------------------------------------------------------------------------
# no side effects

def is_torch_hook(hook: Any) -> bool:
    """A hook that belongs to torch itself (pruning, spectral / weight norm, quantization
    observers, distributed wrappers): part of the computation, kept for the pass."""
    target = getattr(hook, "func", hook)  # functools.partial
    module = getattr(target, "__module__", None) or type(target).__module__
    return isinstance(module, str) and (module == "torch" or module.startswith("torch."))


_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


class QuietHooks:
    """The user's module and tensor hooks set aside while the pass runs (module docstring):
    each hook dict keeps only torch's own hooks and is filled again on exit, so the hooks'
    handles stay valid."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.saved: List[Tuple[Any, "OrderedDict[int, Any]"]] = []

    def _quiet(self, hooks: Any) -> None:
        if not hooks:
            return
        saved = OrderedDict(hooks)
        self.saved.append((hooks, saved))
        hooks.clear()
        hooks.update((k, h) for k, h in saved.items() if is_torch_hook(h))

    def __enter__(self) -> "QuietHooks":
        import torch.nn.modules.module as module_globals

        for name in _MODULE_HOOKS:
            self._quiet(getattr(module_globals, "_global" + name, None))
        for m in self.model.modules():
            for name in _MODULE_HOOKS:
                self._quiet(m.__dict__.get(name))
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        for t in tensors:
            self._quiet(t._backward_hooks)
        return self

    def __exit__(self, *exc) -> bool:
        for hooks, saved in reversed(self.saved):
            hooks.clear()
            hooks.update(saved)
        self.saved = []
        return False


class Restore:
    """Everything the pass may change, put back on exit (module docstring). ``undo()`` puts
    back attributes, containers and written tensors (also between two attempts)."""

    def __init__(self, model: nn.Module, input_to_model: Any):
        self.model = model
        self.inputs = _tensors(input_to_model)

    def __enter__(self) -> "Restore":
        modules = list(self.model.modules())
        self.modes = [(m, m.training) for m in modules]
        self.rng = torch.random.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.state = ModuleState(self.model)
        attrs = [v for m in modules for v in m.__dict__.values() if isinstance(v, torch.Tensor)]
        self.writes = WriteGuard(list(self.model.parameters()) + list(self.model.buffers())
                                 + self.inputs + attrs)
        # ops that write a buffer without saying so in their schema (native_batch_norm's
        # running statistics in training mode) are not seen by the WriteGuard: buffers copied
        self.buffers = [(b, b.detach().clone()) for b in self.model.buffers() if not b.is_meta]
        return self

    def undo(self) -> None:
        self.state.revert()
        self.writes.restore()
        with torch.no_grad():
            for b, saved in self.buffers:
                if b.shape == saved.shape and not torch.equal(b, saved):
                    b.copy_(saved)

    def __exit__(self, *exc) -> bool:
        try:
            self.undo()
        finally:
            for m, training in self.modes:
                m.training = training
            torch.random.set_rng_state(self.rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state_all(self.cuda_rng)
        return False


# ---------------------------------------------------------------------------------------------
# the recorded forward pass

class _Recorder(TorchFunctionMode):
    """Which modules ran, who produced each tensor, and every detach with its input; calls of
    ``Tensor.register_hook`` register nothing (the user's hooks do not see the pass)."""

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

    def install(self) -> None:
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
        name = getattr(func, "__name__", "")
        if name == "register_hook" and args and isinstance(args[0], torch.Tensor) \
                and not is_torch_hook(args[1] if len(args) > 1 else (kwargs or {}).get("hook")):
            return RemovableHandle(OrderedDict())  # the user's tensor hook: not for this pass
        out = func(*args, **(kwargs or {}))
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


def _forward(model: nn.Module, input_to_model: Any, rec: _Recorder,
             restore: Restore) -> Tuple[Any, str]:
    """Runs the forward in training mode, else in evaluation mode; returns (output, mode).
    What the failed attempt changed is put back before the second one."""
    try:
        model.train()
        with torch.enable_grad(), rec, restore.writes:
            return _call(model, input_to_model), "train"
    except Exception as e:  # noqa: BLE001 - e.g. BatchNorm on a batch of one: try eval
        first = one_line(e)
    restore.undo()
    rec.called.clear()
    rec.detaches.clear()
    model.eval()
    with torch.enable_grad(), rec, restore.writes:
        out = _call(model, input_to_model)
    return out, "eval (training mode failed: %s)" % first


# ---------------------------------------------------------------------------------------------
# the backward pass and the findings

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
            elif not g.is_meta and not bool(torch.any(g != 0)):
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
    result = build_result(_classify(model, grads, rec), _parents(model),
                          SCALAR_LOSS if loss else SCALAR_SUM, mode=mode)
    if any(p.is_meta for p in params):
        result["summary"] += "; " + META_NOTE
        result["note"] = META_NOTE
    return result


def reach(model: nn.Module, input_to_model: Any,
          loss: Optional[Callable[[Any], Any]] = None) -> Dict[str, Any]:
    """The ``gradient_reach`` object of `model` on `input_to_model` (see the module doc)."""
    model = unwrap(model)
    if not isinstance(model, nn.Module):
        return unavailable("not a torch.nn.Module: %s" % type(model).__name__)
    rec = _Recorder(model)
    with Restore(model, input_to_model) as restore, QuietHooks(model):
        rec.install()
        try:
            try:
                output, mode = _forward(model, input_to_model, rec, restore)
            except Exception as e:  # noqa: BLE001 - reported, the architecture is still written
                return unavailable("the forward pass failed: %s" % one_line(e))
            finally:
                rec.remove()
            return _backward(model, output, mode, rec, loss)
        finally:
            rec.producers.clear()
            rec.detaches.clear()
