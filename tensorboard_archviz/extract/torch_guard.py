"""No side effects from an extraction: what ``extract_torch`` saves before the run and restores.

``Guard(model, inputs)`` is a context manager around the whole extraction:

* the forward runs under ``torch.no_grad()`` in eval mode with the MHA fast path off (so the
  submodules of Transformer layers stay visible); every module's ``training`` flag, the RNG
  state and the fast-path flag are restored;
* buffers: each real (non-meta) buffer is copied before the run and written back when its
  version counter moved (no ``torch.equal``: nothing is read from meta tensors, and a meta buffer
  holds no data to copy); a buffer, parameter or submodule *replaced* by the forward is put back;
* parameters and the caller's input tensors are copied **on write**: ``WriteGuard`` (a
  ``TorchFunctionMode`` active during the real run) copies such a tensor just before an in-place
  operation on it (``add_``, ``x += y``, ``x[i] = v``, ``inplace=True``, ``out=``), and the copy
  is written back afterwards; nothing is copied for a model that does not write to them;
* module attributes: ``ModuleState`` snapshots every module's ``__dict__``. A torch.fx trace runs
  ``forward`` on ``Proxy`` objects, so whatever it stored (``self.last = y.detach()``) is a Proxy:
  such attributes are put back after the trace (a model can be ``torch.save``'d afterwards). When
  the trace fails and the hooks path runs the real forward, every attribute the failed trace
  changed is put back first, so the model sees exactly one forward call (a counter in
  ``forward`` is +1, not +2).

Data held outside the model (a global, a list captured by ``forward``) cannot be restored: a
failed fx trace may have run part of ``forward`` before the real run.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["Guard", "ModuleState", "WriteGuard"]

_NOT_DATA = {"requires_grad_", "share_memory_", "retain_grad", "record_stream"}


def _version(t: torch.Tensor) -> int:
    try:
        return int(t._version)
    except Exception:  # noqa: BLE001 - inference tensors have no version counter
        return -1


def _written(func: Any, args: tuple, kwargs: Dict[str, Any]) -> Any:
    """The tensor an in-place call writes to, else None."""
    name = getattr(func, "__name__", "") or ""
    if "out" in kwargs and isinstance(kwargs["out"], torch.Tensor):
        return kwargs["out"]
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    if name in _NOT_DATA:
        return None
    if (name.endswith("_") and not name.startswith("_")) or name == "__setitem__" \
            or (name.startswith("__i") and name.endswith("__")) or kwargs.get("inplace") is True:
        return args[0]
    return None


class WriteGuard(TorchFunctionMode):
    """Copies a watched tensor (parameter, caller's input) just before it is written in place."""

    def __init__(self, watched: List[torch.Tensor]):
        super().__init__()
        self.watched = {id(t): t for t in watched}
        self.versions = {id(t): _version(t) for t in watched}
        self.copies: Dict[int, torch.Tensor] = {}

    def before(self, func: Any, args: tuple, kwargs: Dict[str, Any]) -> None:
        """Copy a watched tensor that `func` is about to write (once)."""
        target = _written(func, args, kwargs)
        if target is not None and id(target) in self.watched and id(target) not in self.copies \
                and not target.is_meta:
            self.copies[id(target)] = target.detach().clone()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.before(func, args, kwargs)
        return func(*args, **kwargs)

    def restore(self) -> List[str]:
        """Write the copies back; returns how many watched tensors changed without a copy."""
        changed = []
        with torch.no_grad():
            for key, t in self.watched.items():
                if key in self.copies:
                    t.copy_(self.copies[key])
                elif _version(t) != self.versions[key] and not t.is_meta:
                    changed.append(key)
        self.copies.clear()
        return changed


def _has_proxy(v: Any, depth: int = 0) -> bool:
    import torch.fx as fx

    if isinstance(v, fx.Proxy):
        return True
    if depth >= 2:
        return False
    if isinstance(v, (list, tuple)):
        return any(_has_proxy(x, depth + 1) for x in v[:64])
    if isinstance(v, dict):
        return any(_has_proxy(x, depth + 1) for x in list(v.values())[:64])
    return False


_SLOTS = ("_parameters", "_buffers", "_modules")


class ModuleState:
    """A shallow snapshot of every module's attributes (and its parameter / buffer / submodule
    slots), to put back what a run changed."""

    def __init__(self, model: nn.Module):
        self.saved: List[Tuple[nn.Module, Dict[str, Any], Dict[str, Dict[str, Any]]]] = []
        for m in model.modules():
            self.saved.append((m, dict(m.__dict__), {k: dict(getattr(m, k)) for k in _SLOTS
                                                     if isinstance(getattr(m, k, None), dict)}))

    def revert(self, only_proxies: bool = False) -> None:
        """Put back changed attributes (``only_proxies``: those that now hold a torch.fx Proxy)
        and, always, the parameter / buffer / submodule slots."""
        for m, attrs, slots in self.saved:
            d = m.__dict__
            for k in list(d):
                if k in slots or k.startswith("_forward") or k.startswith("_backward"):
                    continue
                if (k not in attrs or attrs[k] is not d[k]) and (
                        not only_proxies or _has_proxy(d[k])):
                    if k in attrs:
                        d[k] = attrs[k]
                    else:
                        del d[k]
            if not only_proxies:
                for k in attrs:
                    if k not in d:
                        d[k] = attrs[k]
            for k, content in slots.items():
                live = d.get(k)
                if isinstance(live, dict) and (live.keys() != content.keys() or any(
                        live[n] is not v for n, v in content.items())):
                    live.clear()
                    live.update(content)


class Guard:
    """Eval mode + no_grad for the run, and everything restored afterwards (module docstring)."""

    def __init__(self, model: nn.Module, inputs: List[torch.Tensor]):
        self.model = model
        self.inputs = inputs

    def __enter__(self) -> "Guard":
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.buffers = []
        for m in self.model.modules():
            for k, b in m._buffers.items():
                if b is not None and not b.is_meta:
                    self.buffers.append((b, _version(b), b.detach().clone()))
        self.write_guard = WriteGuard(list(self.model.parameters()) + list(self.inputs))
        self.rng = torch.random.get_rng_state()
        mha = getattr(torch.backends, "mha", None)
        self.fastpath = mha.get_fastpath_enabled() if mha is not None and hasattr(
            mha, "get_fastpath_enabled") else None
        if self.fastpath is not None:
            mha.set_fastpath_enabled(False)
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.model.eval()
        self.state = ModuleState(self.model)  # after eval(): a revert keeps eval mode
        return self

    def __exit__(self, *exc) -> bool:
        self.no_grad.__exit__(*exc)
        self.state.revert(only_proxies=True)
        for m, training in self.modes:
            m.training = training
        self.write_guard.restore()
        with torch.no_grad():
            for b, version, saved in self.buffers:
                if _version(b) != version and b.shape == saved.shape:
                    b.copy_(saved)
        torch.random.set_rng_state(self.rng)
        if self.fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self.fastpath)
        return False
