"""Diff engine: what was added, removed and changed between two architectures.

Matching, in order:
1. Nodes are aligned along their (topological) order with a weighted longest-common-subsequence:
   two nodes may match only when their class names are equal; a match scores more when the ids
   are equal, and more again when the ids' base names (Keras' automatic ``_N`` suffix removed)
   or the configs are equal. So ``dense_3`` in one Keras session matches ``dense_7`` in
   another (a *rename*), and a spurious equal id in another position does not win over the
   structure.
2. For very large graphs (more than ``MAX_DP_CELLS`` cells) equal ids anchor the alignment and
   only the gaps between anchors are aligned.
Matched nodes are compared field by field (class, shapes, params, config, trainable, dtype,
activation); unmatched ones are added (only in B) or removed (only in A). Edges are compared
through the matching. The result is the JSON of the ``diff`` route (see http_api.md).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tensorboard_archviz import schema, totals

MAX_DP_CELLS = 1_500_000
_SUFFIX = re.compile(r"_\d+$")


@functools.lru_cache(maxsize=65536)  # called for every cell of the alignment: ids repeat
def _base_name(node_id: str) -> str:
    parts = node_id.split("/")
    return "/".join(_SUFFIX.sub("", p) for p in parts)


def _score(a: schema.Node, b: schema.Node) -> int:
    if a.class_name != b.class_name:
        return 0
    score = 4
    if a.id == b.id:
        score += 4
    elif _base_name(a.id) == _base_name(b.id):
        score += 1
    if a.config == b.config:
        score += 1
    if a.output_shapes == b.output_shapes:
        score += 1
    return score


def _align(xs: Sequence[schema.Node], ys: Sequence[schema.Node]) -> List[Tuple[int, int]]:
    """Weighted LCS of two node sequences; returns matched index pairs in order."""
    n, m = len(xs), len(ys)
    if n == 0 or m == 0:
        return []
    # dp[i][j] = best score aligning xs[i:] and ys[j:]
    dp = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = dp[i], dp[i + 1]
        x = xs[i]
        for j in range(m - 1, -1, -1):
            best = below[j] if below[j] >= row[j + 1] else row[j + 1]
            s = _score(x, ys[j])
            if s and below[j + 1] + s > best:
                best = below[j + 1] + s
            row[j] = best
    pairs = []
    i = j = 0
    while i < n and j < m:
        s = _score(xs[i], ys[j])
        if s and dp[i][j] == dp[i + 1][j + 1] + s:
            pairs.append((i, j))
            i += 1
            j += 1
        elif dp[i + 1][j] >= dp[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _greedy(xs: Sequence[schema.Node], ys: Sequence[schema.Node]) -> List[Tuple[int, int]]:
    """Fallback for huge gaps: the k-th unmatched node of a class matches the k-th of B."""
    by_class: Dict[str, List[int]] = {}
    for j, y in enumerate(ys):
        by_class.setdefault(y.class_name, []).append(j)
    pairs = []
    for i, x in enumerate(xs):
        queue = by_class.get(x.class_name)
        if queue:
            pairs.append((i, queue.pop(0)))
    return pairs


def _increasing_anchors(pairs: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """Longest chain of pairs increasing in both indices (patience sorting on j)."""
    import bisect

    pairs = sorted(pairs)
    tails: List[int] = []
    tails_idx: List[int] = []
    prev = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect.bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tails_idx.append(k)
        else:
            tails[pos] = j
            tails_idx[pos] = k
        prev[k] = tails_idx[pos - 1] if pos > 0 else -1
    out = []
    k = tails_idx[-1] if tails_idx else -1
    while k >= 0:
        out.append(pairs[k])
        k = prev[k]
    return out[::-1]


def match_nodes(a: schema.Architecture, b: schema.Architecture) -> List[Tuple[str, str]]:
    """Pairs (id in A, id in B) of nodes that are the same layer."""
    xs, ys = a.nodes, b.nodes
    if len(xs) * len(ys) <= MAX_DP_CELLS:
        pairs = _align(xs, ys)
    else:
        index_b = {n.id: j for j, n in enumerate(ys)}
        anchors = _increasing_anchors(
            [(i, index_b[n.id]) for i, n in enumerate(xs)
             if n.id in index_b and ys[index_b[n.id]].class_name == n.class_name])
        pairs = []
        last_i = last_j = -1
        for ai, aj in anchors + [(len(xs), len(ys))]:
            gx, gy = xs[last_i + 1:ai], ys[last_j + 1:aj]
            gap = _align(gx, gy) if len(gx) * len(gy) <= MAX_DP_CELLS else _greedy(gx, gy)
            pairs.extend((last_i + 1 + i, last_j + 1 + j) for i, j in gap)
            if ai < len(xs):
                pairs.append((ai, aj))
            last_i, last_j = ai, aj
    return [(xs[i].id, ys[j].id) for i, j in pairs]


# ---------------------------------------------------------------------------------------------

def _trainable_state(n: schema.Node) -> Optional[str]:
    t, nt = n.params.get("trainable", 0), n.params.get("non_trainable", 0)
    if t + nt == 0:
        return None
    if nt == 0:
        return "trainable"
    if t == 0:
        return "frozen"
    return "partly trainable"


def node_changes(a: schema.Node, b: schema.Node,
                 compare_macs: bool = True) -> Dict[str, Dict[str, Any]]:
    """Changed fields of two matched nodes: {"field": {"a": ..., "b": ...}}. Per-example MACs
    are compared only when both documents use the current convention (``compare_macs``)."""
    fields: Dict[str, Dict[str, Any]] = {}

    def cmp(name: str, va: Any, vb: Any) -> None:
        if va != vb:
            fields[name] = {"a": va, "b": vb}

    cmp("class_name", a.class_name, b.class_name)
    cmp("input_shapes", a.input_shapes, b.input_shapes)
    cmp("output_shapes", a.output_shapes, b.output_shapes)
    cmp("params.trainable", a.params.get("trainable", 0), b.params.get("trainable", 0))
    cmp("params.non_trainable", a.params.get("non_trainable", 0),
        b.params.get("non_trainable", 0))
    cmp("trainable", _trainable_state(a), _trainable_state(b))
    cmp("dtype", a.dtype, b.dtype)
    cmp("activation", a.activation, b.activation)
    if compare_macs:
        cmp("macs", a.macs, b.macs)
    for key in sorted(set(a.config) | set(b.config)):
        if key == "name":
            continue
        cmp("config." + key, a.config.get(key), b.config.get(key))
    return fields


def _fmt(n: int) -> str:
    return "{:,}".format(n)


def _plural(n: int, word: str) -> str:
    return "%s %s%s" % (_fmt(n), word, "" if n == 1 else "s")


def _signed(n: int) -> str:
    return ("+" if n > 0 else "\u2212" if n < 0 else "\u00b1") + _fmt(abs(n))


def summarize(added: int, removed: int, changed: int, total_a: int, total_b: int,
              renamed: int = 0) -> str:
    """One line, e.g. "+2 layers, −1 layer, 3 changed, 1 renamed, params +118,272 (+9.4 %)"."""
    parts = []
    if added:
        parts.append("+" + _plural(added, "layer"))
    if removed:
        parts.append("\u2212" + _plural(removed, "layer"))
    if changed:
        parts.append("%s changed" % _fmt(changed))
    if renamed:
        parts.append("%s renamed" % _fmt(renamed))
    delta = total_b - total_a
    if delta:
        pct = (" (%+.1f %%)" % (100.0 * delta / total_a)).replace("-", "\u2212") if total_a else ""
        parts.append("params %s%s" % (_signed(delta), pct))
    return ", ".join(parts) if parts else "no changes"


def _highlights(a: schema.Architecture, b: schema.Architecture,
                changed: List[Dict[str, Any]]) -> List[str]:
    """Human sentences for the timeline: frozen/unfrozen layers, trainable totals."""
    out = []
    by_b = {n.id: n for n in b.nodes}
    toggled = {c["id_b"]: c["fields"]["trainable"] for c in changed
               if "trainable" in c["fields"]}
    for node_id, change in toggled.items():
        node = by_b[node_id]
        # Name the outermost container that changed, not each of its children.
        if node.parent is not None and toggled.get(node.parent) == change:
            continue
        word = {"frozen": "frozen", "trainable": "unfrozen"}.get(change["b"],
                                                                 "made %s" % change["b"])
        out.append("%s %s" % (node.name, word))
    ta, tb = a.model.trainable_params, b.model.trainable_params
    if ta != tb:
        out.append("trainable params %s \u2192 %s" % (_fmt(ta), _fmt(tb)))
    return out


def _model_macs(arch: schema.Architecture) -> Optional[int]:
    """The model's per-example MACs when they are in the current convention, else None (a
    schema-1 document's figures are not comparable)."""
    if arch.model.macs_convention != schema.MACS_CONVENTION:
        return None
    macs = arch.model.macs
    return macs if isinstance(macs, int) else None


def model_totals(a: schema.Architecture, b: schema.Architecture) -> Dict[str, Dict[str, Any]]:
    """Params totals of A and B with their deltas, and per-example MACs (delta None when either
    side's figure is unknown or in the old convention)."""
    totals: Dict[str, Dict[str, Any]] = {}
    for key in ("total_params", "trainable_params", "non_trainable_params"):
        va, vb = getattr(a.model, key), getattr(b.model, key)
        totals[key] = {"a": va, "b": vb, "delta": vb - va}
    ma, mb = _model_macs(a), _model_macs(b)
    totals["macs"] = {"a": ma, "b": mb,
                      "delta": None if ma is None or mb is None else mb - ma}
    return totals


def diff_architectures(a: schema.Architecture, b: schema.Architecture) -> Dict[str, Any]:
    """The diff of A → B as a JSON-ready dict (route ``diff``; see http_api.md)."""
    pairs = match_nodes(a, b)
    comparable = all(x.model.macs_convention == schema.MACS_CONVENTION
                     for x in (a, b))
    a_to_b = dict(pairs)
    matched_b = set(a_to_b.values())
    by_a = {n.id: n for n in a.nodes}
    by_b = {n.id: n for n in b.nodes}
    removed = [n.id for n in a.nodes if n.id not in a_to_b]
    added = [n.id for n in b.nodes if n.id not in matched_b]
    changed, renamed = [], []
    for ia, ib in pairs:
        if ia != ib:
            renamed.append({"id_a": ia, "id_b": ib})
        fields = node_changes(by_a[ia], by_b[ib], comparable)
        if fields:
            changed.append({"id_a": ia, "id_b": ib, "fields": fields})
    edges_a = {(a_to_b.get(e.source), a_to_b.get(e.target)): (e.source, e.target)
               for e in a.edges}
    edges_b = {(e.source, e.target) for e in b.edges}
    edges_added = [{"source": s, "target": t} for (s, t) in
                   sorted(edges_b - set(edges_a), key=lambda p: (p[0], p[1]))]
    edges_removed = [{"source": orig[0], "target": orig[1]}
                     for mapped, orig in edges_a.items() if mapped not in edges_b]

    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "renamed": renamed,
        "edges_added": edges_added,
        "edges_removed": edges_removed,
        "totals": model_totals(a, b),
        "summary": summarize(len(added), len(removed), len(changed),
                             a.model.total_params, b.model.total_params, len(renamed)),
        "highlights": _highlights(a, b, changed),
        "identical": not (added or removed or changed or renamed or edges_added
                          or edges_removed),
    }


# ---------------------------------------------------------------------------------------------
# sentences for people (the timeline and any other view show these as they are)

MAX_NAMES = 6


def _names(ids: List[str]) -> str:
    shown = ", ".join(ids[:MAX_NAMES])
    return "%s and %d more" % (shown, len(ids) - MAX_NAMES) if len(ids) > MAX_NAMES else shown


def format_value(v: Any) -> str:
    """A changed field's value: shapes as (None, 28, 28), lists of shapes, anything else as
    compact JSON."""
    import json

    def shape(s: Any) -> str:
        if not isinstance(s, list):
            return "?"
        dims = ["None" if d is None else str(d) for d in s]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    if isinstance(v, list) and v and all(d is None or isinstance(d, int) for d in v):
        return shape(v)
    if isinstance(v, list) and v and all(s is None or isinstance(s, list) for s in v):
        return " ".join(shape(s) for s in v)
    if v is None:
        return "\u2014"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)


def field_lines(fields: Dict[str, Dict[str, Any]]) -> List[str]:
    """"key a → b" for every changed field; objects are compared key by key."""
    out = []
    for key, change in fields.items():
        a, b = change.get("a"), change.get("b")
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    out.append("%s.%s %s \u2192 %s" % (key, k, format_value(a.get(k)),
                                                        format_value(b.get(k))))
        else:
            out.append("%s %s \u2192 %s" % (key, format_value(a), format_value(b)))
    return out


def counts(d: Dict[str, Any]) -> Dict[str, int]:
    """How many layers were added, removed, changed, renamed and edges added/removed."""
    return {k: len(d[k]) for k in ("added", "removed", "changed", "renamed", "edges_added",
                                   "edges_removed")}


def describe(d: Dict[str, Any]) -> List[str]:
    """The lines a person reads about a diff: highlights, param totals, names, fields, edges."""
    out = list(d["highlights"])
    labels = {"total_params": "total params", "trainable_params": "trainable params",
              "non_trainable_params": "non-trainable params"}
    for key, label in labels.items():
        t = d["totals"][key]
        if t["a"] != t["b"] and not any(l.startswith(label + " ") for l in out):
            out.append("%s %s \u2192 %s (%s)" % (label, _fmt(t["a"]), _fmt(t["b"]),
                                                 _signed(t["delta"])))
    macs = d["totals"].get("macs") or {}
    if macs.get("delta"):
        out.append("MACs per example %s \u2192 %s (%s)" % (_fmt(macs["a"]), _fmt(macs["b"]),
                                                         _signed(macs["delta"])))
    for key in ("added", "removed"):
        if d[key]:
            out.append("%s: %s" % (key, _names(d[key])))
    if d["renamed"]:
        out.append("renamed: %s" % _names(["%s \u2192 %s" % (r["id_a"], r["id_b"])
                                           for r in d["renamed"]]))
    for c in d["changed"][:MAX_NAMES]:
        out.append("%s: %s" % (c["id_b"], "; ".join(field_lines(c["fields"])) or "changed"))
    if len(d["changed"]) > MAX_NAMES:
        out.append("\u2026 and %d more changed layers" % (len(d["changed"]) - MAX_NAMES))
    if d["edges_added"] or d["edges_removed"]:
        out.append("connections: +%d / \u2212%d" % (len(d["edges_added"]),
                                                    len(d["edges_removed"])))
    return out


def first_entry(arch: schema.Architecture) -> Dict[str, Any]:
    """The timeline entry of a run's first architecture."""
    m = arch.model
    return {"first": True, "identical": False, "counts": None, "highlights": [], "details": [],
            "summary": "first architecture written: %s (%s), %s, %s params (%s trainable)"
            % (m.name, m.class_name, _plural(totals.node_counts(arch)["layers"], "layer"),
               _fmt(m.total_params),
               _fmt(m.trainable_params))}


def timeline_entry(a: schema.Architecture, b: schema.Architecture) -> Dict[str, Any]:
    """The timeline entry of B: what changed since A (the diff route's facts, and sentences)."""
    d = diff_architectures(a, b)
    return {"first": False, "identical": d["identical"], "summary": d["summary"],
            "counts": counts(d), "highlights": d["highlights"], "details": describe(d),
            "totals": d["totals"]}


def unchanged_entry(a: schema.Architecture) -> Dict[str, Any]:
    """The timeline entry of a step whose stored architecture equals the previous one byte for
    byte (no diff needed)."""
    totals = model_totals(a, a)
    return {"first": False, "identical": True, "summary": summarize(0, 0, 0, 0, 0),
            "counts": dict.fromkeys(("added", "removed", "changed", "renamed", "edges_added",
                                     "edges_removed"), 0),
            "highlights": [], "details": [], "totals": totals}
