"""Gradient reach, the framework-neutral core: the result object and its summary sentence.

``ParamReach`` is one parameter as one backward pass saw it; ``build_result`` turns the
per-parameter findings of a framework module (``gradient_reach.torch``, ``gradient_reach.keras``)
into the JSON-ready ``gradient_reach`` object (see the package docstring); ``unavailable`` is the
object when it could not be computed. Imports no framework.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, List, Optional

GRAD, NONE, FROZEN, MIXED = "grad", "none", "frozen", "mixed"
STATES = (GRAD, NONE, FROZEN)
SCALAR_SUM = "weighted sum of the model's outputs (weights in [0.5, 1.5))"
SCALAR_LOSS = "the given loss"
MAX_SUMMARY_GROUPS = 3

__all__ = ["ParamReach", "build_result", "unavailable", "GRAD", "NONE", "FROZEN", "MIXED",
           "STATES", "SCALAR_SUM", "SCALAR_LOSS"]


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
