"""Layer signals of a PyTorch ``nn.Module`` (``compute_torch``), per node id of its architecture.

Node ids are the ones ``extract_torch`` writes: the qualified module names of
``model.named_modules()`` (``layer1.0.conv1``; a bare ``torch.nn`` layer used as the model is
named by its class), after looking through ``DataParallel`` / ``DistributedDataParallel`` /
``torch.compile`` wrappers. Containers get the figures of their whole subtree.

- ``weights.rms``: over every element of the module's own parameters (``recurse=False``);
  a parameter shared by two modules counts for the first name, as ``named_parameters`` does.
- ``updates.ratio``: ``‖ΔW‖/‖W‖`` since the previous call with the same tracker, on a fixed
  random sample of at most 4096 elements per parameter tensor (``state.UpdateTracker``).
- ``gradients.rms``: what ``.grad`` holds when called (call after ``backward()``); parameters
  without ``.grad`` are left out, a layer with none gets no value.
- ``activations.*``: one forward pass on the example input in eval mode under ``no_grad``
  (forward hooks on every module, removed afterwards, keep the outputs until the statistics are
  taken right after the pass: memory of one example batch's activations); a module called
  several times counts every call. Functional operations (``F.relu`` inside a block) have no hook: their effect shows
  on the enclosing block. Dead units: positions (every dimension but the first, the batch) that
  are exactly zero on every example.
- ``time.forward_ms``: one untimed pass, then ``catalog.TIME_REPEATS`` timed passes with
  pre/post forward hooks (``torch.cuda.synchronize`` around each module when on CUDA); median.
- ``time.backward_ms`` (opt-in): backward pre/post hooks during ``torch.autograd.grad`` of the
  sum of the outputs (``.grad`` is not touched), median of the same number of passes.

No side effects: every forward runs under ``extract.torch_guard.Guard`` (eval mode, modes,
buffers, RNG and in-place writes restored), hooks are removed, ``.grad`` and ``requires_grad``
are never written, and the model's parameters are only read.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from tensorboard_archviz.extract import torch_graph as tg
from tensorboard_archviz.extract.torch_guard import Guard
from tensorboard_archviz.signals import state as st
from tensorboard_archviz.signals.activations import activation_signals
from tensorboard_archviz.signals.catalog import (DEFAULT_GROUPS, SATURATION_MARGIN, TIME_REPEATS)
from tensorboard_archviz.util import one_line

__all__ = ["compute_torch", "module_ids", "TorchSignalState"]

# bounded activations, by module class: the kind of saturation measured
BOUNDED = {"Sigmoid": "unit", "Hardsigmoid": "unit", "Tanh": "symmetric",
           "Hardtanh": "symmetric", "Softsign": "symmetric", "Softmax": "softmax",
           "Softmin": "softmax", "Softmax2d": "softmax"}


class TorchSignalState:
    """What one writer keeps for one model between calls: the update tracker and the index
    tensors of its samples (per device)."""

    def __init__(self) -> None:
        self.tracker = st.UpdateTracker()
        self.index_cache: Dict[Tuple[str, int, str], torch.Tensor] = {}

    def index(self, key: str, numel: int, device: torch.device) -> Optional[torch.Tensor]:
        idx = self.tracker.indices(key, numel)
        if idx is None:
            return None
        ck = (key, numel, str(device))
        cached = self.index_cache.get(ck)
        if cached is None:
            cached = torch.as_tensor(idx, device=device)
            self.index_cache[ck] = cached
        return cached


def module_ids(model: nn.Module) -> Tuple[Dict[str, nn.Module], Optional[str]]:
    """``{node id: module}`` as the architecture names them, and the bare layer's id (a single
    ``torch.nn`` layer used as the model) or None."""
    names = {q: m for q, m in model.named_modules() if q}
    if tg.is_leaf(model) and type(model).__module__.startswith("torch."):
        root = type(model).__name__
        return {root + ("." + q if q else ""): m for q, m in model.named_modules()}, root
    return names, None


def _owner(param_name: str, bare: Optional[str]) -> Optional[str]:
    if bare is not None:
        return bare + ("." + param_name.rsplit(".", 1)[0] if "." in param_name else "")
    return param_name.rsplit(".", 1)[0] if "." in param_name else None


def _parents(names: Dict[str, Any], sep: str = ".") -> Callable[[str], List[str]]:
    return lambda nid: [a for a in st.ancestors(nid, sep) if a in names]


# ---------------------------------------------------------------------------------------------
# weights, updates, gradients


def _param_stats(model: nn.Module, groups: Sequence[str], bare: Optional[str],
                 state: TorchSignalState, notes: List[str]) -> List[Tuple[str, str, int, Any]]:
    """Per parameter: (name, owner, numel, device tensor [w², g² or nan, has_grad] + sample)."""
    rows = []
    root_params = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner = _owner(name, bare)
            if owner is None:
                root_params.append(name)
                continue
            if p.is_meta or p.numel() == 0:
                continue
            w = p.detach()
            figures = [torch.linalg.vector_norm(w, dtype=torch.float32).double().square()]
            g = p.grad if "gradients" in groups else None
            if g is not None and not g.is_sparse:
                figures += [torch.linalg.vector_norm(g.detach(), dtype=torch.float32)
                            .double().square(), torch.ones((), dtype=torch.float64,
                                                           device=w.device)]
            else:
                figures += [torch.zeros((), dtype=torch.float64, device=w.device)] * 2
            if "updates" in groups:
                idx = state.index(name, w.numel(), w.device)
                flat = w.reshape(-1)
                figures.append((flat if idx is None else flat[idx]).double())
            rows.append((name, owner, w.numel(), torch.cat([f.reshape(-1) for f in figures])))
    if root_params:
        notes.append("parameters of the model itself (%s) belong to no node: not shown"
                     % ", ".join(root_params[:5]))
    return rows


def _param_signals(model: nn.Module, groups: Sequence[str], bare: Optional[str],
                   names: Dict[str, Any], state: TorchSignalState,
                   notes: List[str]) -> Dict[str, Dict[str, float]]:
    rows = _param_stats(model, groups, bare, state, notes)
    weights, grads, deltas, norms = st.Sums(), st.Sums(), st.Sums(), st.Sums()
    host = [r[3].cpu().numpy() for r in rows]  # one transfer per tensor, after all launches
    for (name, owner, numel, _), values in zip(rows, host):
        weights.add(owner, values[0], numel)
        if values[2] > 0:
            grads.add(owner, values[1], numel)
        if "updates" in groups:
            seen = state.tracker.observe(name, values[3:])
            if seen is not None:
                deltas.add(owner, seen[0], 1)
                norms.add(owner, seen[1], 1)
    if "updates" in groups:
        state.tracker.finish()
    parents = _parents(names)
    out: Dict[str, Dict[str, float]] = {}
    if "weights" in groups:
        out["weights.rms"] = weights.rms(parents)
    if "gradients" in groups:
        out["gradients.rms"] = grads.rms(parents)
        if not out["gradients.rms"] and rows:
            notes.append("no parameter had a .grad when add_layer_signals was called "
                         "(call it after backward())")
    if "updates" in groups:
        out["updates.ratio"] = deltas.ratio(norms, parents)
    return out


# ---------------------------------------------------------------------------------------------
# activations


def _float_tensors(value: Any) -> List[torch.Tensor]:
    return [t for t in tg.tensors(value) if t.is_floating_point() and not t.is_meta]


def _activation_row(t: torch.Tensor, kind: Optional[str], dim: Optional[int]) -> torch.Tensor:
    """[n, Σx, Σx², dead units, units, saturated, saturation count] of one output tensor."""
    t = t.detach()
    d = t.double()
    n = t.numel()
    zero = t == 0
    if t.dim() >= 1 and t.shape[0] > 0:
        dead, units = zero.all(dim=0).sum(), n // t.shape[0]
    else:
        dead, units = zero.sum(), max(n, 1)
    sat = torch.zeros((), device=t.device, dtype=torch.float64)
    sat_n = 0
    if kind == "unit":
        sat, sat_n = ((d < SATURATION_MARGIN) | (d > 1 - SATURATION_MARGIN)).sum(), n
    elif kind == "symmetric":
        sat, sat_n = (d.abs() > 1 - SATURATION_MARGIN).sum(), n
    elif kind == "softmax" and t.dim() >= 1:
        axis = dim if dim is not None else -1
        top = d.amax(dim=axis)
        sat, sat_n = (top > 1 - SATURATION_MARGIN).sum(), top.numel()
    return torch.stack([torch.tensor(float(n), dtype=torch.float64, device=t.device), d.sum(),
                        d.square().sum(), dead.double(),
                        torch.tensor(float(units), dtype=torch.float64, device=t.device),
                        sat.double(), torch.tensor(float(sat_n), dtype=torch.float64,
                                                   device=t.device)])


def _activation_hooks(names: Dict[str, nn.Module], outputs: List[Tuple[str, torch.Tensor]]):
    """Hooks keeping each module's floating-point outputs (detached) for the statistics, which
    are computed after the pass (outside the write guard's function mode: one pass of small ops
    instead of one per call inside the forward)."""
    handles = []
    for nid, m in names.items():
        def hook(module, args, output, nid=nid):
            outputs.extend((nid, t.detach()) for t in _float_tensors(output) if t.numel())
        handles.append(m.register_forward_hook(hook))
    return handles


def _activation_rows(names: Dict[str, nn.Module], outputs: List[Tuple[str, torch.Tensor]]):
    rows: Dict[str, List[torch.Tensor]] = {}
    for nid, t in outputs:
        m = names[nid]
        kind = BOUNDED.get(type(m).__name__)
        dim = getattr(m, "dim", None) if kind == "softmax" else None
        rows.setdefault(nid, []).append(_activation_row(t, kind, dim))
    return rows


# ---------------------------------------------------------------------------------------------
# time


def _sync(device: Optional[torch.device]) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_hooks(names: Dict[str, nn.Module], spent: Dict[str, float], device, backward: bool):
    handles, starts = [], {}

    def pre(nid):
        def f(*_a, **_k):
            _sync(device)
            starts.setdefault(nid, []).append(time.perf_counter())
        return f

    def post(nid):
        def f(*_a, **_k):
            _sync(device)
            stack = starts.get(nid)
            if stack:
                spent[nid] = spent.get(nid, 0.0) + (time.perf_counter() - stack.pop()) * 1e3
        return f

    for nid, m in names.items():
        if backward:
            handles.append(m.register_full_backward_pre_hook(pre(nid)))
            handles.append(m.register_full_backward_hook(post(nid)))
        else:
            handles.append(m.register_forward_pre_hook(pre(nid)))
            handles.append(m.register_forward_hook(post(nid)))
    return handles


def _median_times(passes: List[Dict[str, float]]) -> Dict[str, float]:
    keys = set().union(*passes) if passes else set()
    return {k: statistics.median([p.get(k, 0.0) for p in passes]) for k in keys}


def _remove(handles) -> None:
    for h in handles:
        h.remove()


def _device(model: nn.Module, inputs: List[torch.Tensor]) -> Optional[torch.device]:
    for t in inputs:
        return t.device
    for p in model.parameters():
        return p.device
    return None


def _forward_passes(model, names, args, kwargs, inputs, groups, repeats, notes):
    """The activations pass (or an untimed warm-up) and the timed forward passes."""
    outputs: List[Tuple[str, torch.Tensor]] = []
    passes: List[Dict[str, float]] = []
    device = _device(model, inputs)
    with Guard(model, inputs) as guard:
        handles = _activation_hooks(names, outputs) if "activations" in groups else []
        try:
            with guard.write_guard:
                model(*args, **kwargs)
            writes = bool(guard.write_guard.copies)
        finally:
            _remove(handles)
        rows = _activation_rows(names, outputs)
        outputs.clear()
        if "time" in groups and writes:
            notes.append("forward time not measured: the forward writes its inputs or "
                         "parameters in place")
        elif "time" in groups:
            for _ in range(repeats):
                spent: Dict[str, float] = {}
                handles = _time_hooks(names, spent, device, backward=False)
                try:
                    model(*args, **kwargs)
                finally:
                    _remove(handles)
                passes.append(spent)
    return rows, passes


def _backward_passes(model, names, args, kwargs, inputs, repeats, notes) -> List[Dict[str, float]]:
    """Timed backward passes (``torch.autograd.grad`` of the outputs' sum; .grad untouched)."""
    params = [p for p in model.parameters() if p.requires_grad]
    device = _device(model, inputs)
    passes: List[Dict[str, float]] = []
    with Guard(model, inputs) as guard:
        with torch.enable_grad():
            for i in range(repeats + 1):
                spent: Dict[str, float] = {}
                handles = _time_hooks(names, spent, device, backward=True) if i else []
                try:
                    out = _float_tensors(model(*args, **kwargs))
                    scalar = sum(t.sum() for t in out if t.requires_grad)
                    if not params or not torch.is_tensor(scalar):
                        notes.append("backward time not measured: no output depends on a "
                                     "trainable parameter")
                        return []
                    torch.autograd.grad(scalar, params, allow_unused=True)
                finally:
                    _remove(handles)
                if i:
                    passes.append(spent)
        if guard.write_guard.copies:
            notes.append("the forward wrote tensors in place during the backward timing")
    return passes


def _input_signals(model, names, input_to_model, groups, repeats, notes) -> Dict[str, Any]:
    args, kwargs = tg.call_args(input_to_model)
    inputs = tg.tensors((args, kwargs))
    rows, passes = _forward_passes(model, names, args, kwargs, inputs, groups, repeats, notes)
    out: Dict[str, Any] = {}
    if "activations" in groups:
        bounded = {nid: type(m).__name__ in BOUNDED for nid, m in names.items()}
        out.update(activation_signals(
            {nid: torch.stack(parts).sum(dim=0).cpu().numpy() for nid, parts in rows.items()},
            bounded))
    if passes:
        out["time.forward_ms"] = _median_times(passes)
    if "backward_time" in groups:
        try:
            with warnings.catch_warnings():  # "hook firing w.r.t. module outputs": expected
                warnings.filterwarnings("ignore", message="Full backward hook", category=UserWarning)
                back = _backward_passes(model, names, args, kwargs, inputs, repeats, notes)
        except RuntimeError as e:  # in-place ops under full backward hooks, ...
            back = []
            notes.append("backward time not measured: %s" % one_line(e))
        if back:
            out["time.backward_ms"] = _median_times(back)
    return out


def _batch_size(input_to_model: Any) -> Optional[int]:
    for t in tg.tensors(input_to_model):
        if t.dim() >= 1:
            return int(t.shape[0])
    return None


def compute_torch(model: nn.Module, input_to_model: Any = None,
                  groups: Sequence[str] = DEFAULT_GROUPS,
                  state: Optional[TorchSignalState] = None,
                  repeats: int = TIME_REPEATS) -> Tuple[Dict[str, Dict[str, float]],
                                                        Dict[str, Any]]:
    """``(signals {key: {node id: float}}, meta)`` of `model` now (see the module).

    `groups`: among ``catalog.GROUPS``; activations and time need `input_to_model` (a tensor,
    tuple or dict as for ``add_architecture``) and are skipped with a note without it.
    Raises ``ExtractionError`` for an input that does not fit ``call_args``.
    """
    model = tg.unwrap(model)
    if not isinstance(model, nn.Module):
        raise TypeError("model must be a torch.nn.Module, got %s" % type(model).__name__)
    state = state if state is not None else TorchSignalState()
    names, bare = module_ids(model)
    notes: List[str] = []
    signals = _param_signals(model, groups, bare, names, state, notes)
    needs_input = [g for g in groups if g in ("activations", "time", "backward_time")]
    if needs_input and input_to_model is None:
        notes.append("%s not measured: no input_to_model" % ", ".join(needs_input))
    elif needs_input:
        signals.update(_input_signals(model, names, input_to_model, groups, repeats, notes))
    meta = {"framework": "torch", "batch_size": _batch_size(input_to_model),
            "time_repeats": repeats if {"time", "backward_time"} & set(groups) else None,
            "notes": notes}
    return {k: v for k, v in signals.items() if v}, meta
