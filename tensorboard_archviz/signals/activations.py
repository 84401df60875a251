"""Activation signals from per-layer statistics, shared by every framework (no framework import).

Each backend reduces a layer's output on the example batch to seven sums, in this order:
``n`` (elements), ``sum``, ``sum of squares``, ``dead`` (units zero on every example),
``units``, ``saturated`` (elements within the margin of a bound), ``saturated_n`` (elements
checked for saturation). ``activation_signals`` turns them into the ``activations.*`` signals.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Mapping

KEYS = ("activations.mean", "activations.std", "activations.zero_fraction",
        "activations.saturated_fraction")


def activation_signals(rows: Mapping[str, Iterable[float]],
                       bounded: Mapping[str, bool]) -> Dict[str, Dict[str, float]]:
    """{signal key: {node id: value}} from each node's seven sums (see the module docstring);
    the saturated fraction only for nodes whose activation is bounded (`bounded[node id]`)."""
    out: Dict[str, Dict[str, float]] = {k: {} for k in KEYS}
    for nid, row in rows.items():
        n, s, ss, dead, units, sat, sat_n = (float(v) for v in row)
        mean = s / n
        var = ss / n - mean * mean
        out["activations.mean"][nid] = mean
        out["activations.std"][nid] = math.sqrt(max(var, 0.0)) if math.isfinite(var) \
            else float("nan")
        out["activations.zero_fraction"][nid] = dead / units if units else float("nan")
        if bounded.get(nid) and sat_n:
            out["activations.saturated_fraction"][nid] = sat / sat_n
    return out
