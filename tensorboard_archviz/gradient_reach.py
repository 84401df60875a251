"""Gradient reach: which parameters the loss can reach, framework-neutral part.

One forward and one backward pass on the example input (``gradient_reach_torch`` /
``gradient_reach_keras`` do the framework work, importing their framework inside) tell, for every
parameter, whether it

- ``grad``: receives a gradient,
- ``none``: receives none although it is trainable (a branch cut by ``detach`` /
  ``stop_gradient``, a module never called, an output that reaches nothing, ``torch.no_grad``), or
- ``frozen``: is frozen on purpose (``requires_grad=False`` / ``trainable=False``).

The result goes into the architecture JSON under the top-level key ``gradient_reach``::

    {"status": "ok", "summary": "3 parameters of head.aux receive no gradient: ...",
     "scalar": "...", "counts": {"grad": 10, "none": 3, "frozen": 2},
     "nodes": {node_id: {"state": "grad"|"none"|"frozen"|"mixed", "reason"?: str,
                         "params": {name: {"state", "size", "reason"?}}}}}

or ``{"status": "unavailable", "reason": "..."}`` when the model's outputs hold no tensor or the
backward pass fails (the architecture is written anyway). Container nodes get the combined state
of their subtree (``mixed`` when it differs) and no ``params`` of their own unless they hold some.

The scalar differentiated is the loss when one is given, else a weighted sum of every floating
output (weights in [0.5, 1.5), fixed): a plain sum would have a zero gradient behind a softmax,
whose outputs always sum to 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Iterable, List, Optional

from tensorboard_archviz.util import one_line

GRAD, NONE, FROZEN, MIXED = "grad", "none", "frozen", "mixed"
STATES = (GRAD, NONE, FROZEN)
SCALAR_SUM = "weighted sum of the model's outputs (weights in [0.5, 1.5))"
SCALAR_LOSS = "the given loss"
MAX_SUMMARY_GROUPS = 3

__all__ = ["ParamReach", "build_result", "unavailable", "compute", "attach", "add_to", "GRAD", "NONE",
           "FROZEN", "MIXED"]


@dataclasses.dataclass
class ParamReach:
    """One parameter tensor as seen by one backward pass."""

    node_id: str
    name: str
    state: str
    size: int
    reason: Optional[str] = None


def unavailable(reason: str) -> Dict[str, Any]:
    """The result when gradient reach could not be computed (the architecture is still written)."""
    return {"status": "unavailable", "reason": str(reason),
            "summary": "gradient reach unavailable: %s" % reason}


def _combine(states: Iterable[str]) -> Optional[str]:
    seen = set(states)
    if not seen:
        return None
    return seen.pop() if len(seen) == 1 else MIXED


def _ancestors(node_id: str, parents: Dict[str, Optional[str]]) -> List[str]:
    out, seen = [], {node_id}
    p = parents.get(node_id)
    while p is not None and p not in seen:
        out.append(p)
        seen.add(p)
        p = parents.get(p)
    return out


def _node_entries(params: List[ParamReach], parents: Dict[str, Optional[str]]
                  ) -> Dict[str, Dict[str, Any]]:
    own: Dict[str, List[ParamReach]] = {}
    subtree: Dict[str, List[ParamReach]] = {}
    for p in params:
        own.setdefault(p.node_id, []).append(p)
        for nid in [p.node_id] + _ancestors(p.node_id, parents):
            subtree.setdefault(nid, []).append(p)
    nodes: Dict[str, Dict[str, Any]] = {}
    for nid, ps in subtree.items():
        entry: Dict[str, Any] = {"state": _combine(p.state for p in ps)}
        reasons = sorted({p.reason for p in ps if p.state == NONE and p.reason})
        if reasons:
            entry["reason"] = "; ".join(reasons)
        if nid in own:
            entry["params"] = {p.name: _param_entry(p) for p in own[nid]}
        nodes[nid] = entry
    return nodes


def _param_entry(p: ParamReach) -> Dict[str, Any]:
    out: Dict[str, Any] = {"state": p.state, "size": int(p.size)}
    if p.reason:
        out["reason"] = p.reason
    return out


def _plural(n: int, word: str) -> str:
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def _summary(params: List[ParamReach]) -> str:
    total = len(params)
    none = [p for p in params if p.state == NONE]
    frozen = [p for p in params if p.state == FROZEN]
    if total == 0:
        return "the model has no parameters"
    parts = []
    if not none:
        learn = total - len(frozen)
        parts.append("all %s receive a gradient" % _plural(learn, "trainable parameter")
                     if learn else "no trainable parameter")
    else:
        groups: Dict[tuple, List[ParamReach]] = {}
        for p in none:
            groups.setdefault((p.node_id, p.reason or "no gradient"), []).append(p)
        items = sorted(groups.items(), key=lambda kv: -len(kv[1]))
        texts = ["%s of %s receive%s no gradient: %s"
                 % (_plural(len(ps), "parameter"), nid, "s" if len(ps) == 1 else "", reason)
                 for (nid, reason), ps in items[:MAX_SUMMARY_GROUPS]]
        if len(items) > MAX_SUMMARY_GROUPS:
            texts.append("and %d more module(s)" % (len(items) - MAX_SUMMARY_GROUPS))
        parts.append("; ".join(texts))
    if frozen:
        owners = sorted({p.node_id for p in frozen})
        shown = ", ".join(owners[:MAX_SUMMARY_GROUPS]) + (
            ", ..." if len(owners) > MAX_SUMMARY_GROUPS else "")
        parts.append("%s frozen on purpose (%s)" % (_plural(len(frozen), "parameter"), shown))
    return "; ".join(parts)


def build_result(params: List[ParamReach], parents: Dict[str, Optional[str]],
                 scalar: str = SCALAR_SUM, **extra: Any) -> Dict[str, Any]:
    """The JSON-ready ``gradient_reach`` object from per-parameter findings.

    `parents`: ``{node_id: parent node id or None}`` so containers get their subtree's state.
    """
    for p in params:
        if p.state not in STATES:
            raise ValueError("state must be one of %s, got %r" % (STATES, p.state))
    counts = {s: sum(1 for p in params if p.state == s) for s in STATES}
    out: Dict[str, Any] = {"status": "ok", "summary": _summary(params), "scalar": scalar,
                           "counts": counts, "nodes": _node_entries(params, parents)}
    out.update(extra)
    return out


def _framework_of(model: Any) -> Optional[str]:
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "torch":
            return "torch"
        if root in ("keras", "tf_keras"):
            return "keras"
    return None


def compute(model: Any, example_input: Any = None, *,
            loss: Optional[Callable[[Any], Any]] = None, arch: Any = None) -> Dict[str, Any]:
    """Gradient reach of a torch ``nn.Module`` or a Keras model; never raises.

    `example_input`: as for ``add_architecture`` (torch); for Keras None makes a random batch of
    one from the model's input shapes. `loss`: a callable ``loss(outputs) -> scalar`` used
    instead of the weighted sum of the outputs. `arch`: the model's extracted
    ``schema.Architecture`` when the caller has it (Keras uses its edges to find a
    ``stop_gradient``; extracted when not given).
    """
    try:
        fw = _framework_of(model)
        if fw == "torch":
            from tensorboard_archviz.gradient_reach_torch import gradient_reach_torch

            return gradient_reach_torch(model, example_input, loss=loss)
        if fw == "keras":
            from tensorboard_archviz.gradient_reach_keras import gradient_reach_keras

            return gradient_reach_keras(model, example_input, loss=loss, arch=arch)
        return unavailable("not a torch.nn.Module or a Keras model: %s" % type(model).__name__)
    except Exception as e:  # noqa: BLE001 - an analysis must never break the caller
        return unavailable(one_line(e))


def attach(arch: Any, result: Dict[str, Any]) -> Any:
    """Put `result` into the architecture (``schema.Architecture``) under ``gradient_reach``."""
    arch.extra["gradient_reach"] = result
    return arch


def add_to(arch: Any, model: Any, example_input: Any = None, option: Any = True) -> Any:
    """The writers' hook: compute gradient reach and attach it to `arch` (never raises).

    `option`: ``True`` (weighted sum of the outputs) or a callable ``loss(outputs) -> scalar``.
    """
    loss = option if callable(option) else None
    return attach(arch, compute(model, example_input, loss=loss, arch=arch))
