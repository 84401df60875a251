"""The layer signals: fixed keys, what each means, and how a value is stored.

``SIGNALS`` maps each key to ``{"label", "unit", "scale", "description"}`` (the ``signals``
route returns these for the keys a run holds; the views show label, unit and scale).
``describe(key)`` also covers user values (``values.<name>``). ``encode(value)`` is the one
encoding of a stored value: a finite number rounded to 6 significant digits, the strings
``"NaN"`` / ``"Infinity"`` / ``"-Infinity"`` (JSON has no NaN), or ``None`` (not computable).

Groups (the ``signals=`` argument of the writers) name sets of keys: ``weights``, ``updates``,
``gradients``, ``activations``, ``time`` (forward) and ``backward_time`` (opt-in).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

__all__ = ["SIGNALS", "GROUPS", "DEFAULT_GROUPS", "ALL_GROUPS", "UPDATE_SAMPLE",
           "SATURATION_MARGIN", "TIME_REPEATS", "describe", "encode", "decode", "groups_of",
           "VALUES_PREFIX"]

# At most this many elements of each parameter tensor are kept between writes for
# ``updates.ratio`` (a fixed random sample drawn once per tensor; the whole tensor when smaller).
UPDATE_SAMPLE = 4096
# A bounded activation's output counts as saturated within this distance of a bound: sigmoid /
# hard sigmoid below 0.01 or above 0.99, tanh / hard tanh / softsign beyond +-0.99; softmax-like
# layers: an example (a position) whose largest probability is above 0.99.
SATURATION_MARGIN = 0.01
# Forward (and backward) time: the median of this many timed passes (after one untimed pass).
TIME_REPEATS = 3
VALUES_PREFIX = "values."

SIGNALS: Dict[str, Dict[str, str]] = {
    "weights.rms": {
        "label": "Weight RMS", "unit": "", "scale": "log",
        "description": "Root mean square of the layer's own parameters (all elements)."},
    "updates.ratio": {
        "label": "Update ratio \u2016\u0394W\u2016/\u2016W\u2016", "unit": "", "scale": "log",
        "description": "Norm of the change of the layer's parameters since the previous write "
                       "divided by their norm, on a fixed random sample of at most %d elements "
                       "per tensor: every training step since that write adds to it. Usually "
                       "about 1e-3 per step; 0 = did not change." % UPDATE_SAMPLE},
    "gradients.rms": {
        "label": "Gradient RMS", "unit": "", "scale": "log",
        "description": "Root mean square of the gradients of the layer's parameters on the last "
                       "backward pass (PyTorch: what .grad holds; Keras: the loss on the held "
                       "batch)."},
    "activations.mean": {
        "label": "Activation mean", "unit": "", "scale": "linear",
        "description": "Mean of the layer's output on the example batch (eval mode)."},
    "activations.std": {
        "label": "Activation std", "unit": "", "scale": "log",
        "description": "Standard deviation of the layer's output on the example batch."},
    "activations.zero_fraction": {
        "label": "Dead units (zero on every example)", "unit": "fraction", "scale": "linear",
        "description": "Fraction of output units (every position but the batch dimension) that "
                       "are exactly zero on every example of the example batch."},
    "activations.saturated_fraction": {
        "label": "Saturated units", "unit": "fraction", "scale": "linear",
        "description": "Bounded activations only (sigmoid, tanh, softmax-like, hard variants): "
                       "fraction of outputs within %g of a bound (sigmoid < 0.01 or > 0.99, "
                       "tanh beyond +-0.99; softmax: examples whose largest probability is "
                       "above %g)."
                       % (SATURATION_MARGIN, 1 - SATURATION_MARGIN)},
    "time.forward_ms": {
        "label": "Forward time", "unit": "ms", "scale": "log",
        "description": "Wall time of the layer's forward call on the example input, median of "
                       "%d timed passes (device synchronised before and after; a container "
                       "includes its children)." % TIME_REPEATS},
    "time.backward_ms": {
        "label": "Backward time", "unit": "ms", "scale": "log",
        "description": "Wall time of the layer's backward on the example input, median of %d "
                       "passes (opt-in)." % TIME_REPEATS},
}

GROUPS: Dict[str, Tuple[str, ...]] = {
    "weights": ("weights.rms",),
    "updates": ("updates.ratio",),
    "gradients": ("gradients.rms",),
    "activations": ("activations.mean", "activations.std", "activations.zero_fraction",
                    "activations.saturated_fraction"),
    "time": ("time.forward_ms",),
    "backward_time": ("time.backward_ms",),
}
ALL_GROUPS = tuple(GROUPS)
# Cheap enough to be on by default (see bench/bench_signals.py); "activations" needs an example
# input and is skipped without one; "time" and "backward_time" are opt-in.
DEFAULT_GROUPS = ("weights", "updates", "gradients", "activations")


def describe(key: str) -> Dict[str, str]:
    """``{"key", "label", "unit", "scale", "description"}`` of a signal key (``values.<name>``
    included; its scale is decided by the route from the values). Raises KeyError otherwise."""
    if key in SIGNALS:
        return dict(SIGNALS[key], key=key)
    if key.startswith(VALUES_PREFIX) and len(key) > len(VALUES_PREFIX):
        name = key[len(VALUES_PREFIX):]
        return {"key": key, "label": "%s (user values)" % name, "unit": "", "scale": "log",
                "description": "Values written with add_layer_values(writer, %r, ...)." % name}
    raise KeyError("unknown signal %r (known: %s, values.<name>)" % (key, ", ".join(SIGNALS)))


def groups_of(signals: Union[None, str, Iterable[str]]) -> Tuple[str, ...]:
    """The groups named by a writer's ``signals=`` argument: None = ``DEFAULT_GROUPS``, "all",
    one group name, or a list of groups / keys. Raises ValueError naming an unknown one."""
    if signals is None:
        return DEFAULT_GROUPS
    if isinstance(signals, str):
        signals = ALL_GROUPS if signals == "all" else (signals,)
    out: List[str] = []
    for s in signals:
        group = s if s in GROUPS else next((g for g, keys in GROUPS.items() if s in keys), None)
        if group is None:
            raise ValueError("unknown signal %r; choose among %s (or \"all\")"
                             % (s, ", ".join(ALL_GROUPS)))
        if group not in out:
            out.append(group)
    return tuple(out)


def encode(value: Any) -> Union[float, int, str, None]:
    """A stored value: finite numbers rounded to 6 significant digits, "NaN" / "Infinity" /
    "-Infinity", None for None."""
    if value is None:
        return None
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == 0:
        return 0.0
    return float("%.6g" % v)


_DECODED = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def decode(value: Any) -> Optional[float]:
    """A stored value as a float (NaN / inf for the strings), None for null or anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return _DECODED.get(value)
    return None
