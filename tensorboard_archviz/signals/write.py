"""The stored documents of layer signals and user values (see the ``signals`` route).

``signals_doc`` builds ``{"version": 1, "signals": {key: {node id: value}}, "meta": {...}}``
(``meta.update_steps``: the training steps ``updates.ratio`` spans, see ``update_steps``) and
``values_doc`` builds ``{"version": 1, "name": name, "values": {node id: value}}``; every value
goes through ``catalog.encode`` (6 significant digits, "NaN" / "Infinity" / "-Infinity", null).
``summary.signals_pb`` / ``summary.values_pb`` wrap them in Summary protos.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Dict, List, Mapping, Optional

from tensorboard_archviz.signals.catalog import SIGNALS, UPDATE_SAMPLE, encode

__all__ = ["signals_doc", "values_doc", "check_values_name", "update_steps", "VERSION"]

VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


def signals_doc(signals: Mapping[str, Mapping[str, Any]], *, framework: str,
                batch_size: Optional[int] = None, time_repeats: Optional[int] = None,
                notes: Optional[List[str]] = None, update_sample: int = UPDATE_SAMPLE,
                **meta: Any) -> Dict[str, Any]:
    """The JSON document of one step of signals; unknown keys raise ValueError."""
    out: Dict[str, Dict[str, Any]] = {}
    for key, per_node in signals.items():
        if key not in SIGNALS:
            raise ValueError("unknown signal key %r" % (key,))
        if per_node:
            out[key] = {str(nid): encode(v) for nid, v in per_node.items()}
    info = {"framework": framework, "batch_size": batch_size, "time_repeats": time_repeats,
            "update_sample": int(update_sample), "notes": list(notes or [])}
    info.update(meta)
    return {"version": VERSION, "signals": out, "meta": info}


def update_steps(previous: Optional[int], step: Optional[int]) -> Optional[int]:
    """The training steps (optimizer steps) between two writes of ``updates.ratio``, stored as
    ``meta.update_steps``: the findings compare ``ratio / update_steps`` with the usual per-step
    ratio. PyTorch: ``global_step`` (optimizer steps by TensorBoard's convention); Keras: the
    training batches the callback counted. None when either is unknown or they do not
    increase."""
    if previous is None or step is None or step <= previous:
        return None
    return step - previous


def check_values_name(name: Any) -> str:
    """The name of a user values series: 1-100 characters among letters, digits, ``_ . -``
    (it becomes part of a tag and a URL). Raises ValueError otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError("add_layer_values: name must be 1-100 characters of letters, digits, "
                         "'_', '.', '-'; got %r" % (name,))
    return name


def values_doc(name: str, values: Mapping[str, Any]) -> Dict[str, Any]:
    """The JSON document of one step of user values `name` (``{node id: number}``).

    Raises ValueError for a bad name, a non-mapping, a non-string id or a value that is not a
    number (None is kept as null: "not computable").
    """
    check_values_name(name)
    if not isinstance(values, Mapping):
        raise ValueError("add_layer_values: values must be a dict {node id: number}, got %s"
                         % type(values).__name__)
    out: Dict[str, Any] = {}
    for nid, v in values.items():
        if not isinstance(nid, str) or not nid:
            raise ValueError("add_layer_values: node ids must be non-empty strings, got %r"
                             % (nid,))
        out[nid] = encode(_number(nid, v))
    return {"version": VERSION, "name": name, "values": out}


def _number(nid: str, v: Any) -> Optional[float]:
    if v is None:
        return None
    item = getattr(v, "item", None)  # numpy / torch scalars, 0-d arrays
    if callable(item) and not isinstance(v, numbers.Number):
        try:
            v = item()
        except (TypeError, ValueError, RuntimeError):
            pass
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError("add_layer_values: the value of %r must be a number, got %r"
                         % (nid, type(v).__name__))
    v = float(v)
    return v if not math.isnan(v) else float("nan")
