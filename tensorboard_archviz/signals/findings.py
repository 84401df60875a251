"""Findings in words over a run's layer signals: ``find(arch_or_None, steps, series)``.

``series`` is the ``signals`` route's ``{key: {node id: [value per step]}}`` (stored encoding:
numbers, "NaN" / "Infinity" / "-Infinity", null) and ``steps`` its steps. Each finding is
``{"kind", "severity", "signal", "step", "step_string", "nodes", "text"}``; the thresholds
(``THRESHOLDS``, returned with them and shown by the views) are:

- ``vanishing``: at the latest step with gradients, layers whose gradient RMS is below
  ``vanishing_ratio`` (1e-4) x the head's (the last layer with a gradient in model order; an
  exactly-zero gradient is not counted here: a dead layer is told by ``dead``);
- ``exploding``: gradient RMS above ``exploding_ratio`` (1e4) x the head's, or above
  ``exploding_rms`` (1e3);
- ``dead``: ``activations.zero_fraction`` >= ``dead_fraction`` (0.9): units zero on every
  example of the example batch;
- ``saturated``: ``activations.saturated_fraction`` >= ``saturated_fraction`` (0.9);
- ``update_high``: ``updates.ratio`` per training step above ``update_high`` (1e-2: ten
  times the usual ``update_usual`` 1e-3 per step), at each layer's peak step. A ratio written
  every k steps spans k updates (``update_steps``), so ratio / k is compared: a lower bound on
  the mean per-step ratio (``‖ΣΔ‖ ≤ Σ‖Δ‖``), never a false alarm from writing rarely;
- ``collapsed``: the output layer's (the last layer with activations, in model order)
  activation std is at most ``collapsed_ratio`` (0.05) x its |mean|: the prediction is nearly
  the same for every example (a softmax stuck at the uniform distribution);
- ``frozen``: ``updates.ratio`` exactly ``frozen`` (0) over a run of written steps (one
  finding per run: "did not change between steps 0 and 2"; the outermost unchanged container is
  named, not each of its layers); the text says "frozen or
  zero learning rate", or "its gradient is zero or vanishing" when the layer's latest gradient
  RMS is 0 or below the vanishing limit (float32 weights then do not move either);
- ``nonfinite``: any NaN / Inf value of any signal (the first step where one appears; the
  layers in model order, so the first is where it started);
- ``slowest`` (info): the layer with the largest ``time.forward_ms`` at the latest step.

Model order ("toward the input") is the architecture's node order when given, else the order
of the ids in ``series``. Layers are the nodes that are not containers (a container holds the
figure of its whole subtree); ``frozen`` and ``dead`` prefer the outermost node.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from tensorboard_archviz.signals.catalog import SATURATION_MARGIN, decode, describe
from tensorboard_archviz.util import strip_control

__all__ = ["find", "THRESHOLDS", "MAX_LISTED"]

THRESHOLDS: Dict[str, float] = {
    "vanishing_ratio": 1e-4,
    "exploding_ratio": 1e4,
    "exploding_rms": 1e3,
    "dead_fraction": 0.9,
    "saturated_fraction": 0.9,
    "saturation_margin": SATURATION_MARGIN,
    "update_high": 1e-2,
    "update_usual": 1e-3,
    "frozen": 0.0,
    "collapsed_ratio": 0.05,
}
MAX_LISTED = 10  # findings of one kind listed one by one; the rest in one more finding


def fmt(v: float) -> str:
    """A value as people write it: 0.0312 -> 0.031, 3.1e-05 -> 3.1e-5."""
    if v == 0 or (1e-3 <= abs(v) < 1e4):
        return "%.3g" % v
    m, e = ("%.1e" % v).split("e")
    return "%se%d" % (m.rstrip("0").rstrip("."), int(e))


def _q(nid: str) -> str:
    return "`%s`" % strip_control(nid)


class _Model:
    """Order, parents and containers of the nodes (from the architecture, else from the ids)."""

    def __init__(self, arch: Any, series: Dict[str, Dict[str, List[Any]]]):
        nodes = _arch_nodes(arch)
        self.order: Dict[str, int] = {}
        self.parent: Dict[str, Optional[str]] = {}
        self.kind: Dict[str, str] = {}
        for nid, parent, kind in nodes:
            self.order.setdefault(nid, len(self.order))
            self.parent[nid] = parent
            self.kind[nid] = kind
        ids: List[str] = []
        for per in series.values():
            for nid in per:
                if nid not in self.order:
                    self.order[nid] = len(self.order)
                    ids.append(nid)
        self.containers = {p for p in self.parent.values() if p}
        if ids:  # ids the architecture does not know: containment from their spelling
            prefixes = {o[:i] for o in self.order for i, ch in enumerate(o) if ch in "./"}
            self.containers.update(nid for nid in ids if nid in prefixes)

    def sort(self, ids: Iterable[str]) -> List[str]:
        return sorted(ids, key=lambda n: self.order.get(n, 1 << 30))

    def ancestors(self, nid: str) -> List[str]:
        out, seen = [], {nid}
        cur = self.parent.get(nid)
        while cur and cur not in seen:
            out.append(cur)
            seen.add(cur)
            cur = self.parent.get(cur)
        if not out:  # spelled containment
            for sep in ".", "/":
                parts = nid.split(sep)
                out += [sep.join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                        if sep.join(parts[:i]) in self.order]
        return out

    def outermost(self, ids: Iterable[str]) -> List[str]:
        chosen = set(ids)
        return self.sort(n for n in chosen if not any(a in chosen for a in self.ancestors(n)))


def _arch_nodes(arch: Any) -> List[Tuple[str, Optional[str], str]]:
    if arch is None:
        return []
    nodes = arch.get("nodes", []) if isinstance(arch, dict) else getattr(arch, "nodes", [])
    out = []
    for n in nodes or []:
        get = n.get if isinstance(n, dict) else (lambda k, n=n: getattr(n, k, None))
        nid = get("id")
        if isinstance(nid, str):
            kind = " ".join(str(get(k) or "") for k in ("class_name", "activation")).lower()
            out.append((nid, get("parent"), kind))
    return out


def _latest(steps: Sequence[int], per_node: Dict[str, List[Any]]) -> Optional[int]:
    """Index of the latest step at which any node has a (non-null) value."""
    for i in range(len(steps) - 1, -1, -1):
        if any(i < len(v) and v[i] is not None for v in per_node.values()):
            return i
    return None


def _at(per_node: Dict[str, List[Any]], i: int) -> Dict[str, float]:
    out = {}
    for nid, vals in per_node.items():
        if i < len(vals):
            d = decode(vals[i])
            if d is not None:
                out[nid] = d
    return out


def _finding(kind: str, signal: str, steps: Sequence[int], i: int, nodes: List[str],
             text: str, severity: str = "warning") -> Dict[str, Any]:
    return {"kind": kind, "severity": severity, "signal": signal, "step": int(steps[i]),
            "step_string": str(int(steps[i])), "nodes": list(nodes), "text": text}


def _span(model: _Model, ids: List[str], all_layers: List[str]) -> str:
    """`a`…`b` when `ids` are consecutive layers in model order, else a short list."""
    ids = model.sort(ids)
    if len(ids) == 1:
        return _q(ids[0])
    pos = [all_layers.index(n) for n in ids if n in all_layers]
    if len(pos) == len(ids) and pos == list(range(pos[0], pos[0] + len(pos))):
        return "%s\u2026%s (%d layers)" % (_q(ids[0]), _q(ids[-1]), len(ids))
    shown = ", ".join(_q(n) for n in ids[:5])
    return shown + (" and %d more" % (len(ids) - 5) if len(ids) > 5 else "")


def _gradient_findings(model: _Model, steps, per_node, t) -> List[Dict[str, Any]]:
    i = _latest(steps, per_node)
    if i is None:
        return []
    values = {n: v for n, v in _at(per_node, i).items()
              if n not in model.containers and math.isfinite(v)}
    layers = model.sort(values)
    head = next((n for n in reversed(layers) if values[n] > 0), None)
    if head is None:
        return []
    ref = values[head]
    out = []
    low = [n for n in layers if 0 < values[n] < t["vanishing_ratio"] * ref]
    if low:
        out.append(_finding("vanishing", "gradients.rms", steps, i, low, (
            "gradients in %s are below %s \u00d7 the head's (%s, %s) at step %d (vanishing)"
            % (_span(model, low, layers), fmt(t["vanishing_ratio"]), _q(head), fmt(ref),
               steps[i]))))
    high = [n for n in layers if values[n] > t["exploding_ratio"] * ref
            or values[n] > t["exploding_rms"]]
    if high:
        out.append(_finding("exploding", "gradients.rms", steps, i, high, (
            "gradients in %s are above %s \u00d7 the head's or %s (largest %s) at step %d "
            "(exploding)" % (_span(model, high, layers), fmt(t["exploding_ratio"]),
                             fmt(t["exploding_rms"]), fmt(max(values[n] for n in high)),
                             steps[i]))))
    return out


def _listed(found: List[Dict[str, Any]], kind: str, what: str) -> List[Dict[str, Any]]:
    if len(found) <= MAX_LISTED:
        return found
    rest = found[MAX_LISTED:]
    nodes = [n for f in rest for n in f["nodes"]]
    extra = dict(rest[0], nodes=nodes, text="and %d more layers %s" % (len(nodes), what))
    return found[:MAX_LISTED] + [extra]


def _fraction_findings(model: _Model, steps, per_node, key: str, t) -> List[Dict[str, Any]]:
    i = _latest(steps, per_node)
    if i is None:
        return []
    dead = key == "activations.zero_fraction"
    limit = t["dead_fraction"] if dead else t["saturated_fraction"]
    values = _at(per_node, i)
    hit = model.outermost(n for n, v in values.items() if math.isfinite(v) and v >= limit)
    found = []
    for n in hit:
        if dead:
            label = "dead ReLU" if "relu" in model.kind.get(n, n.lower()) else "dead units"
            text = "%s: %.0f %% of units are zero on every example of the example batch (%s)" \
                % (_q(n), 100 * values[n], label)
        else:
            text = "%s: %.0f %% of outputs are saturated on the example batch (saturated)" \
                % (_q(n), 100 * values[n])
        found.append(_finding("dead" if dead else "saturated", key, steps, i, [n], text))
    return _listed(found, "dead" if dead else "saturated",
                   "are dead" if dead else "are saturated")


def _peak(vals: List[Any], n_steps: int) -> Optional[Tuple[float, int]]:
    """(largest finite value, its step index) of one node's series, or None."""
    best = None
    for k, v in enumerate(vals[:n_steps]):
        d = decode(v)
        if d is not None and math.isfinite(d) and (best is None or d > best[0]):
            best = (d, k)
    return best


def _spans(steps: List[int], update_steps: Optional[Sequence[Optional[int]]]) -> List[int]:
    """The training steps each step's ``updates.ratio`` spans: the writer's ``update_steps``,
    else the gap to the previous written step (1 for the first)."""
    given = list(update_steps or [])
    out = []
    for i, step in enumerate(steps):
        span = given[i] if i < len(given) else None
        if not (type(span) is int and span > 0):
            span = max(1, step - steps[i - 1]) if i else 1
        out.append(span)
    return out


def _rate(value: Any, span: int) -> Optional[float]:
    """A stored ratio per training step (None: no finite value)."""
    d = decode(value)
    return None if d is None or not math.isfinite(d) else d / span


def _update_findings(model: _Model, steps, series, t,
                     update_steps: Optional[Sequence[Optional[int]]] = None
                     ) -> List[Dict[str, Any]]:
    """Update ratios far above the usual per step at their peak step; then frozen runs. A
    ratio spanning k training steps is compared as ratio / k: a lower bound on the mean
    per-step ratio (the norm of a sum is at most the sum of the norms), so a layer is only
    named when its steps were certainly large on average."""
    out: List[Dict[str, Any]] = []
    per_node = series["updates.ratio"]
    spans = _spans(steps, update_steps)
    per_step = {n: [_rate(v, spans[k]) for k, v in enumerate(vals[:len(steps)])]
                for n, vals in per_node.items() if n not in model.containers}
    peaks = {n: p for n, p in ((n, _peak(v, len(steps))) for n, v in per_step.items())
             if p and p[0] > t["update_high"]}
    for n in sorted(peaks, key=lambda n: -peaks[n][0]):
        rate, i = peaks[n]
        ratio, span = decode(per_node[n][i]), spans[i]
        if span == 1:
            text = ("%s update ratio %s at step %d, far above the usual %s per step (learning "
                    "rate too high?)" % (_q(n), fmt(ratio), steps[i], fmt(t["update_usual"])))
        else:
            text = ("%s update ratio %s over the %d training steps up to step %d: at least %s "
                    "per step on average, far above the usual %s (learning rate too high?)"
                    % (_q(n), fmt(ratio), span, steps[i], fmt(rate), fmt(t["update_usual"])))
        out.append(_finding("update_high", "updates.ratio", steps, i, [n], text))
    out = _listed(out, "update_high", "have update ratios far above the usual")
    return out + _frozen(model, steps, per_node, series.get("gradients.rms") or {}, t)


def _collapsed(model: _Model, steps, series, t) -> List[Dict[str, Any]]:
    """Model outputs (layers without successors... the last layers in model order that have
    activations) whose values are nearly the same everywhere: std <= collapsed_ratio x |mean|."""
    means, stds = series["activations.mean"], series["activations.std"]
    i = _latest(steps, stds)
    if i is None:
        return []
    m, sd = _at(means, i), _at(stds, i)
    layers = [n for n in model.sort(sd) if n not in model.containers and n in m]
    out = []
    for n in layers[-1:]:  # the output layer
        mean, std = m[n], sd[n]
        if math.isfinite(mean) and math.isfinite(std) and mean != 0 and \
                std <= t["collapsed_ratio"] * abs(mean):
            out.append(_finding("collapsed", "activations.std", steps, i, [n], (
                "%s: the output is nearly the same for every example and unit (std %s around "
                "%s at step %d): the model's prediction barely depends on its input"
                % (_q(n), fmt(std), fmt(mean), steps[i]))))
    return out


def _starved(grads: List[Any], t, head: Optional[float]) -> bool:
    """Whether a layer's latest gradient is zero or vanishing (so it cannot change)."""
    g = _last_known(grads)
    if g is None:
        return False
    return g == 0 or (head is not None and head > 0 and g < t["vanishing_ratio"] * head)


def _head_gradient(model: _Model, grads: Dict[str, List[Any]]) -> Optional[float]:
    layers = model.sort(n for n in grads if n not in model.containers)
    for n in reversed(layers):
        g = _last_known(grads[n])
        if g is not None and math.isfinite(g) and g > 0:
            return g
    return None


def _last_known(vals: List[Any]) -> Optional[float]:
    return next((decode(v) for v in reversed(vals) if decode(v) is not None), None)


def _zero_runs(vals: List[Any], zero: float) -> List[Tuple[int, int]]:
    """(index of the step before, index of the last step) of each maximal run of written
    ratios equal to `zero` (null steps are skipped over, not breaking a run)."""
    runs, start, last, prev = [], None, None, None
    for k, v in enumerate(vals):
        d = decode(v)
        if d is None:
            continue
        if d == zero:
            if start is None:
                start = prev if prev is not None else max(k - 1, 0)
            last = k
        elif start is not None:
            runs.append((start, last))
            start = None
        prev = k
    if start is not None:
        runs.append((start, last))
    return runs


def _frozen(model: _Model, steps, per_node, grads, t) -> List[Dict[str, Any]]:
    """Nodes whose update ratio is exactly 0 at every step: frozen (no gradient, or a gradient
    that is not applied: zero learning rate) or starved (zero / vanishing gradient)."""
    spans: Dict[Tuple[int, int, bool], List[str]] = {}
    head = _head_gradient(model, grads)
    zero = t["frozen"]
    for n, vals in per_node.items():
        if zero not in vals:  # most layers: one C-speed scan
            continue
        for a, b in _zero_runs(vals[:len(steps)], zero):
            starved = _starved(grads.get(n, [])[:b + 1], t, head)
            spans.setdefault((a, b, starved), []).append(n)
    layers = model.sort(per_node)
    out = []
    for (a, b, starved), ids in sorted(spans.items()):
        ids = model.outermost(ids)
        when = "between steps %d and %d" % (steps[a], steps[b]) if a != b else \
            "since the write before step %d" % steps[b]
        why = "its gradient is zero or vanishing" if starved else \
            "frozen or zero learning rate"
        if len(ids) > 1 and starved:
            why = "their gradients are zero or vanishing"
        text = "%s did not change %s (%s)" % (_span(model, ids, layers), when, why)
        out.append(_finding("frozen", "updates.ratio", steps, b, ids, text))
    return out


_NONFINITE = ("NaN", "Infinity", "-Infinity")
_NONFINITE_SET = frozenset(_NONFINITE)


def _first_nonfinite(vals: List[Any], n_steps: int) -> Optional[int]:
    try:
        present = _NONFINITE_SET.intersection(vals)  # one C-speed pass
    except TypeError:  # an unhashable stored value: not a number either
        present = {s for s in _NONFINITE if s in vals}
    found = [vals.index(s) for s in present]
    first = min(found) if found else None
    return first if first is not None and first < n_steps else None


def _nonfinite(model: _Model, steps, series) -> List[Dict[str, Any]]:
    out = []
    for key, per_node in series.items():
        first = {n: k for n, k in ((n, _first_nonfinite(v, len(steps)))
                                   for n, v in per_node.items()) if k is not None}
        if not first:
            continue
        i = min(first.values())
        bad = model.sort(n for n, k in first.items() if k == i)
        try:
            label = describe(key)["label"]
        except KeyError:
            label = key
        out.append(_finding("nonfinite", key, steps, i, bad, (
            "%s is NaN or infinite in %s from step %d (first in model order: %s)"
            % (label, _span(model, bad, model.sort(per_node)), steps[i], _q(bad[0])))))
    return out


def _slowest(model: _Model, steps, per_node) -> List[Dict[str, Any]]:
    i = _latest(steps, per_node)
    if i is None:
        return []
    values = {n: v for n, v in _at(per_node, i).items()
              if n not in model.containers and math.isfinite(v)}
    if not values:
        return []
    top = max(values, key=lambda n: values[n])
    total = sum(values.values())
    share = " (%.2g %% of the layers' %s ms)" % (100 * values[top] / total, fmt(total)) \
        if total > 0 else ""
    return [_finding("slowest", "time.forward_ms", steps, i, [top], (
        "%s is the slowest layer: %s ms forward at step %d%s" % (
            _q(top), fmt(values[top]), steps[i], share)), severity="info")]


def find(arch: Any, steps: Sequence[int], series: Dict[str, Dict[str, List[Any]]],
         thresholds: Optional[Dict[str, float]] = None,
         update_steps: Optional[Sequence[Optional[int]]] = None
         ) -> Tuple[List[Dict[str, Any]], Dict[str, float]]:
    """``(findings, thresholds)`` of a run (see the module). `arch`: the architecture
    (``schema.Architecture`` or its dict) whose node order and nesting are used, or None.
    `update_steps`: per step, the training steps its ``updates.ratio`` spans (the writers'
    ``meta.update_steps``; None where unknown: the gap to the previous step)."""
    t = dict(THRESHOLDS, **(thresholds or {}))
    steps = list(steps)
    series = {k: v for k, v in (series or {}).items() if isinstance(v, dict)}
    if not steps or not series:
        return [], t
    model = _Model(arch, series)
    found = _nonfinite(model, steps, series)
    if "gradients.rms" in series:
        found += _gradient_findings(model, steps, series["gradients.rms"], t)
    for key in ("activations.zero_fraction", "activations.saturated_fraction"):
        if key in series:
            found += _fraction_findings(model, steps, series[key], key, t)
    if "updates.ratio" in series:
        found += _update_findings(model, steps, series, t, update_steps)
    if "activations.std" in series and "activations.mean" in series:
        found += _collapsed(model, steps, series, t)
    if "time.forward_ms" in series:
        found += _slowest(model, steps, series["time.forward_ms"])
    return found, t
