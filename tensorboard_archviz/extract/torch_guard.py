"""No side effects from an extraction: what ``extract_torch`` saves before the run and restores.

``Guard(model, inputs)`` is a context manager around the whole extraction:

* the forward runs under ``torch.no_grad()`` in eval mode with the MHA fast path off (so the
  submodules of Transformer layers stay visible); every module's ``training`` flag, the RNG
  state and the fast-path flag are restored;
* parameters, buffers and the caller's input tensors are copied **on write**: ``WriteGuard``
  (called by ``torch_macs``'s dispatch mode, which also counts MACs, during the real run) copies
  such a tensor just before an ATen operation writes to its storage (``add_``, ``x += y``,
  ``x[i] = v``, ``inplace=True``, ``out=``, through a view or ``.data``), and the copy is
  written back afterwards; nothing is copied for a model that does not write to them (nothing
  is read from meta tensors); a buffer, parameter or submodule *replaced* by the forward is put
  back, except an ``UninitializedParameter`` the forward replaced (it is kept, as a lazy layer's);
* module attributes: ``ModuleState`` snapshots every module's ``__dict__`` and every mutable
  container reachable from it (lists, dicts, sets, plain objects' attributes, nested). A
  torch.fx trace runs ``forward`` on ``Proxy`` objects, so whatever it stored
  (``self.last = y.detach()``, ``self.log.append(x)``, ``self.stats[k] = x``) holds a Proxy:
  such attributes and containers are put back after the trace (a model can be
  ``torch.save``'d afterwards). Real tensors the trace wrote in place (``self.steps += 1``) are
  copied on write (``trace_writes``). When the trace fails and the hooks path runs the real
  forward, every attribute, container and tensor the failed trace changed is put back first, so
  the model sees exactly one forward call (a counter in ``forward`` is +1, not +2).

Data held outside the model (a global, a list captured by ``forward``) cannot be restored: a
failed fx trace may have run part of ``forward`` before the real run.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["Guard", "ModuleState", "WriteGuard", "is_fx_object"]

def _version(t: torch.Tensor) -> int:
    try:
        return int(t._version)
    except Exception:  # noqa: BLE001 - inference tensors have no version counter
        return -1


def _storage_key(t: torch.Tensor) -> Any:
    """The start of the storage a tensor (or a view of it, or its ``.data``) writes to; None
    for meta and storage-less tensors."""
    if t.is_meta:
        return None
    try:
        return (t.data_ptr() - t.storage_offset() * t.element_size()) or None
    except Exception:  # noqa: BLE001 - sparse, nested, wrapper subclasses: not watched
        return None


class WriteGuard:
    """Copy-on-write of watched tensors (parameters, buffers, the caller's inputs): just before
    an ATen operation writes in place to a watched tensor's storage (a view of it, ``.data``,
    ``out=`` included), the tensor is copied; ``restore()`` writes the copies back. The copy is
    made by ``before(tensors)``, called by ``torch_macs``'s dispatch mode (one Python call per
    operation for counting and guarding); ``with write_guard:`` runs such a mode on its own.
    ``watch_all``: copy any real tensor written (the fx trace: what it wrote is undone when the
    real forward has to run again)."""

    def __init__(self, watched: List[torch.Tensor], watch_all: bool = False):
        self.watched: Dict[Any, List[torch.Tensor]] = {}
        for t in watched:
            key = _storage_key(t)
            if key is not None and t.numel():
                self.watched.setdefault(key, []).append(t)
        self.watch_all = watch_all
        self.copies: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
        self._mode = None

    def before(self, targets: List[torch.Tensor]) -> None:
        """Copy the watched tensors that share storage with `targets` (once each)."""
        for t in targets:
            key = _storage_key(t)
            if key is None:
                continue
            owners = self.watched.get(key)
            if owners is None and self.watch_all:
                owners = [t if t._base is None else t._base]
            for o in owners or ():
                if id(o) not in self.copies:
                    self.copies[id(o)] = (o, o.detach().clone())

    def watches(self, tensors: List[torch.Tensor]) -> bool:
        """Whether a write to one of `tensors` could need a copy (shares a watched storage)."""
        if self.watch_all:
            return bool(tensors)
        return any(_storage_key(t) in self.watched for t in tensors)

    def __enter__(self) -> "WriteGuard":
        from tensorboard_archviz.extract import torch_macs

        self._mode = torch_macs.op_counter(self.before)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        mode, self._mode = self._mode, None
        mode.__exit__(*exc)
        return False

    def restore(self) -> int:
        """Write the copies back; returns how many tensors were restored."""
        n = len(self.copies)
        with torch.no_grad():
            for t, saved in self.copies.values():
                if t.shape == saved.shape:
                    t.copy_(saved)
        self.copies.clear()
        return n


def is_fx_object(v: Any) -> bool:
    """A torch.fx Proxy / Attribute / ParameterProxy / Node (what a symbolic trace leaves)."""
    return type(v).__module__.startswith("torch.fx")


_SIMPLE = (str, bytes, int, float, bool, complex, type(None), torch.Tensor, nn.Module, type)


def _items(v: Any) -> List[Any]:
    if isinstance(v, dict):
        return list(v.values()) + list(v.keys())
    if isinstance(v, (list, tuple, set, frozenset)):
        return list(v)
    d = getattr(v, "__dict__", None)
    if isinstance(d, dict) and not callable(v):
        return list(d.values())
    return []


def _has_proxy(v: Any, depth: int = 0, budget: Optional[List[int]] = None) -> bool:
    """Whether `v` holds a torch.fx object anywhere (containers and plain objects' attributes,
    up to 6 levels, at most 20,000 values looked at)."""
    budget = budget if budget is not None else [20000]
    if is_fx_object(v):
        return True
    if depth >= 6 or isinstance(v, _SIMPLE) or budget[0] <= 0:
        return False
    items = _items(v)
    budget[0] -= len(items)
    return any(_has_proxy(x, depth + 1, budget) for x in items)


def _mutables(v: Any, out: Dict[int, Tuple[Any, Any]], depth: int = 0) -> None:
    """Record (container, shallow copy) of the mutable containers reachable from `v` (lists,
    dicts, sets, plain objects' ``__dict__``; not modules or tensors), to undo in-place edits."""
    if depth >= 6 or isinstance(v, _SIMPLE) or id(v) in out or len(out) >= 20000:
        return
    if isinstance(v, list):
        out[id(v)] = (v, list(v))
    elif isinstance(v, dict):
        out[id(v)] = (v, dict(v))
    elif isinstance(v, set):
        out[id(v)] = (v, set(v))
    elif not isinstance(v, (tuple, frozenset)):
        d = getattr(v, "__dict__", None)
        if not isinstance(d, dict) or callable(v) or type(v).__module__ in ("builtins",):
            return
        out[id(v)] = (d, dict(d))
    for x in _items(v):
        _mutables(x, out, depth + 1)


def _put_back(container: Any, saved: Any) -> None:
    if isinstance(container, list):
        container[:] = saved
    else:
        container.clear()
        container.update(saved)


def _changed(container: Any, saved: Any) -> bool:
    if isinstance(container, dict):
        return not _same(container, saved)
    if isinstance(container, set):
        return container != saved
    return len(container) != len(saved) or not all(map(operator.is_, container, saved))


_SLOTS = ("_parameters", "_buffers", "_modules")


def _same(live: Dict[str, Any], saved: Dict[str, Any]) -> bool:
    """The same keys holding the same objects (identity, compared in C)."""
    return len(live) == len(saved) and live.keys() == saved.keys() and \
        all(map(operator.is_, live.values(), saved.values()))


def _unchanged(d: Dict[str, Any], attrs: Dict[str, Any], slots: Dict[str, Any]) -> bool:
    return _same(d, attrs) and _slots_unchanged(d, slots)


def _slots_unchanged(d: Dict[str, Any], slots: Dict[str, Any]) -> bool:
    for k, content in slots.items():
        live = d.get(k)
        if isinstance(live, dict) and not _same(live, content):
            return False
    return True


_INTERNALS: List[frozenset] = []


def _module_internals() -> frozenset:
    """The attributes every ``nn.Module`` has (hook dicts, slots, flags): not user state."""
    if not _INTERNALS:
        _INTERNALS.append(frozenset(vars(nn.Module())))
    return _INTERNALS[0]


class ModuleState:
    """A snapshot of every module's attributes (and its parameter / buffer / submodule slots),
    plus a shallow copy of every mutable container reachable from them (lists, dicts, sets,
    plain objects' attributes), to put back what a run changed."""

    def __init__(self, model: nn.Module, attributes: bool = True):
        """`attributes` False: only the parameter / buffer / submodule slots (no torch.fx trace
        will run, so no attribute can hold a Proxy, and what the one real forward does to the
        attributes is the model's own business)."""
        self.saved: List[Tuple[nn.Module, Optional[Dict[str, Any]], Dict[str, Dict[str, Any]]]]
        self.saved = []
        self.containers: Dict[int, Tuple[Any, Any]] = {}
        internal = _module_internals()
        for m in model.modules():
            d = m.__dict__
            slots = {k: dict(d[k]) for k in _SLOTS if isinstance(d.get(k), dict)}
            self.saved.append((m, dict(d) if attributes else None, slots))
            if attributes:
                for k, v in d.items():
                    if k not in internal and not isinstance(v, _SIMPLE):
                        _mutables(v, self.containers)

    def revert(self, only_proxies: bool = False) -> None:
        """Put back changed attributes and edited containers (``only_proxies``: those that now
        hold a torch.fx object) and, always, the parameter / buffer / submodule slots (a
        parameter that was an ``UninitializedParameter`` keeps what the forward made of it, as
        a lazy layer does)."""
        for container, saved in self.containers.values():
            if _changed(container, saved) and (not only_proxies or _has_proxy(container)):
                _put_back(container, saved)
        for m, attrs, slots in self.saved:
            d = m.__dict__
            if attrs is None:  # slots only
                if _slots_unchanged(d, slots):
                    continue
                attrs = d
            elif _unchanged(d, attrs, slots):
                continue  # nothing changed (the usual case): compared in C
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
                    kept = {n: live[n] for n, v in content.items() if n in live and
                            isinstance(v, nn.parameter.UninitializedTensorMixin) and
                            not _has_proxy(live[n])}
                    live.clear()
                    live.update(content)
                    live.update(kept)


class Guard:
    """Eval mode + no_grad for the run, and everything restored afterwards (module docstring)."""

    def __init__(self, model: nn.Module, inputs: List[torch.Tensor], trace: bool = True):
        """`trace` False: no torch.fx trace will run (module attributes are not snapshotted,
        see ``ModuleState``)."""
        self.model = model
        self.inputs = inputs
        self.trace = trace

    def __enter__(self) -> "Guard":
        modules = list(self.model.modules())
        self.modes = [(m, m.training) for m in modules]
        watched, seen = [], set()
        for m in modules:  # parameters and buffers, each once (as parameters() / buffers())
            for slot in (m._parameters, m._buffers):
                for t in slot.values():
                    if t is not None and id(t) not in seen:
                        seen.add(id(t))
                        watched.append(t)
        watched.extend(self.inputs)
        self.write_guard = WriteGuard(watched)
        self.trace_writes = WriteGuard([], watch_all=True)
        self.rng = torch.random.get_rng_state()
        mha = getattr(torch.backends, "mha", None)
        self.fastpath = mha.get_fastpath_enabled() if mha is not None and hasattr(
            mha, "get_fastpath_enabled") else None
        if self.fastpath is not None:
            mha.set_fastpath_enabled(False)
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        if any(training for _, training in self.modes):  # already in eval mode: no call
            self.model.eval()
        self.state = ModuleState(self.model, attributes=self.trace)  # after eval(): a revert
        # keeps eval mode
        return self

    def __exit__(self, *exc) -> bool:
        self.no_grad.__exit__(*exc)
        self.state.revert(only_proxies=True)
        for m, training in self.modes:
            if m.training is not training:  # only the flags eval() (or the run) changed
                m.training = training
        self.write_guard.restore()
        torch.random.set_rng_state(self.rng)
        if self.fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self.fastpath)
        return False
