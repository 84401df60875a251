"""Layer signals of a ``keras.Model`` (Keras 3 on TensorFlow, torch or JAX): ``compute_keras``.

Node ids are the architecture's (``extract.keras.layer_node_ids``: ``dense_1``, nested models'
layers ``inner/dense_1``); a nested model (container) gets the figures of its whole subtree.

- ``weights.rms`` / ``updates.ratio``: over the variables each layer created trainable
  (a frozen layer's too, so a frozen layer shows an update ratio of exactly 0), computed on the
  device (``keras.ops``); the update sample is ``state.UpdateTracker``'s (at most 4096 elements
  per variable). On JAX the callback's state is synced into the variables first
  (``model.jax_state_sync()``, what Keras does at every epoch end).
- ``gradients.rms``: ONE extra gradient computation on the held batch ``(x, y[, sample_weight])``
  per write: the model's compiled loss (``model.compute_loss``; ``compute_loss_and_updates`` on
  JAX) in training mode, differentiated with ``tf.GradientTape`` / ``torch.autograd.grad`` /
  ``jax.grad``. Cost: one forward + backward pass on that batch, eager (not the compiled train
  step). Non-trainable variables (BatchNormalization statistics, dropout seeds) and the metrics'
  variables are restored afterwards; no gradient is applied. Without targets (a batch ``x``
  alone) no gradient is computed (a note says so).
- ``activations.*`` / ``time.forward_ms``: the layers' ``call`` are wrapped for one inference
  pass ``model(x, training=False)`` (eager; then unwrapped), recording each layer's outputs
  (statistics in numpy) — and, for time, ``catalog.TIME_REPEATS`` more passes timing each call
  (eager per-layer time: a compiled train step fuses layers and can be faster). Bounded
  activations are recognised by the layer's ``activation`` (sigmoid, tanh, softmax, ...) or
  class (``Softmax``).
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from tensorboard_archviz.signals import state as st
from tensorboard_archviz.signals.activations import activation_signals
from tensorboard_archviz.signals.catalog import DEFAULT_GROUPS, SATURATION_MARGIN, TIME_REPEATS
from tensorboard_archviz.util import one_line

__all__ = ["compute_keras", "KerasSignalState", "split_batch"]

BOUNDED = {"sigmoid": "unit", "hard_sigmoid": "unit", "tanh": "symmetric",
           "hard_tanh": "symmetric", "softsign": "symmetric", "softmax": "softmax"}


class KerasSignalState:
    """What one callback keeps between writes: the update tracker and the node ids."""

    def __init__(self) -> None:
        self.tracker = st.UpdateTracker()
        self._ids: Optional[Tuple[Tuple[int, ...], Dict[str, Any]]] = None

    def use(self, model: Any, layers: Dict[str, Any]) -> None:
        """Take ``{node id: layer}`` from the caller's own extraction (no second walk)."""
        key = tuple(id(l) for l in model._flatten_layers(include_self=False, recursive=True))
        self._ids = (key, dict(layers))

    def node_layers(self, model: Any) -> Dict[str, Any]:
        """``{node id: layer}`` (cached while the model's layers stay the same)."""
        key = tuple(id(l) for l in model._flatten_layers(include_self=False, recursive=True))
        if self._ids is None or self._ids[0] != key:
            from tensorboard_archviz.extract.keras import layer_node_ids

            self._ids = (key, layer_node_ids(model))
        return self._ids[1]


def split_batch(batch: Any) -> Tuple[Any, Any, Any]:
    """``(x, y, sample_weight)`` of a batch as ``fit()`` takes data: a tuple of 2 or 3 is
    ``(x, y[, sample_weight])``; anything else (an array, a list or dict of inputs) is ``x``."""
    if isinstance(batch, tuple) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    if isinstance(batch, tuple) and len(batch) == 1:
        return batch[0], None, None
    return batch, None, None


def _own_variables(layer: Any, node_ids: set) -> List[Any]:
    """Variables `layer` (and its sub-layers that are not nodes) created trainable."""
    out = list(getattr(layer, "_trainable_variables", []))
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        if id(sub) not in node_ids:
            out.extend(_own_variables(sub, node_ids))
    return out


def _parents(layers: Dict[str, Any]) -> Callable[[str], List[str]]:
    return lambda nid: [a for a in st.ancestors(nid, "/") if a in layers]


def _variables(layers: Dict[str, Any]) -> List[Tuple[str, Any]]:
    node_ids = {id(l) for l in layers.values()}
    seen, out = set(), []
    for nid, layer in layers.items():
        for v in _own_variables(layer, node_ids):
            if id(v) not in seen:
                seen.add(id(v))
                out.append((nid, v))
    return out


def _to_numpy(x: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


def _param_signals(model, layers, groups, state: KerasSignalState, grads, notes):
    ops = keras.ops
    pairs = _variables(layers)
    weights, gsums, deltas, norms = st.Sums(), st.Sums(), st.Sums(), st.Sums()
    if pairs:
        sq = _to_numpy(ops.stack([ops.sum(ops.square(ops.cast(v.value, "float32")))
                                  for _, v in pairs]))
    for k, (nid, v) in enumerate(pairs):
        n = int(np.prod(v.shape)) if len(v.shape) else 1
        weights.add(nid, float(sq[k]), n)
        g = grads.get(id(v)) if grads is not None else None
        if g is not None:
            gsums.add(nid, float(g), n)
        if "updates" in groups and n:
            key = "%s|%s" % (nid, v.path)
            idx = state.tracker.indices(key, n)
            flat = ops.reshape(v.value, (-1,))
            sample = _to_numpy(flat if idx is None else ops.take(flat, idx)).astype(np.float64)
            seen = state.tracker.observe(key, sample)
            if seen is not None:
                deltas.add(nid, seen[0], 1)
                norms.add(nid, seen[1], 1)
    if "updates" in groups:
        state.tracker.finish()
    parents = _parents(layers)
    out = {}
    if "weights" in groups:
        out["weights.rms"] = weights.rms(parents)
    if grads is not None:
        out["gradients.rms"] = gsums.rms(parents)
    if "updates" in groups:
        out["updates.ratio"] = deltas.ratio(norms, parents)
    return out


# ---------------------------------------------------------------------------------------------
# gradients on the held batch


def _convert(value: Any) -> Any:
    return keras.tree.map_structure(
        lambda a: a if a is None else keras.ops.convert_to_tensor(a), value)


def _grads_tensorflow(model, x, y, sw, train_vars):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw, training=True)
    return tape.gradient(loss, [v.value for v in train_vars])


def _grads_torch(model, x, y, sw, train_vars):
    import torch

    with torch.enable_grad():
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw, training=True)
        params = [v.value for v in train_vars]
        if not params or not loss.requires_grad:
            return [None] * len(params)
        return list(torch.autograd.grad(loss, params, allow_unused=True))


def _grads_jax(model, x, y, sw, train_vars):
    import jax

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]
    mv = [v.value for v in model.metrics_variables]
    optimizer = getattr(model, "optimizer", None)
    ov = [v.value for v in optimizer.variables] if optimizer is not None else None

    def f(values):
        loss, _aux = model.compute_loss_and_updates(values, ntv, mv, x, y, sw, training=True,
                                                    optimizer_variables=ov)
        return loss

    found = dict(zip([id(v) for v in model.trainable_variables], jax.grad(f)(tv)))
    return [found.get(id(v)) for v in train_vars]


_GRADS = {"tensorflow": _grads_tensorflow, "torch": _grads_torch, "jax": _grads_jax}


def _restoring(variables: Sequence[Any]):
    saved = [(v, _to_numpy(v.value).copy()) for v in variables]

    def restore() -> None:
        for v, value in saved:
            if not np.array_equal(_to_numpy(v.value), value, equal_nan=value.dtype.kind == "f"):
                v.assign(value)
    return restore


def _gradient_sums(model, batch, notes) -> Optional[Dict[int, float]]:
    """{id(variable): Σg²} on the held batch, or None (with a note) when not computable."""
    x, y, sw = split_batch(batch)
    if y is None:
        notes.append("gradients not measured: the held batch has no targets (pass "
                     "example_input=(x, y))")
        return None
    fn = _GRADS.get(keras.backend.backend())
    if fn is None:
        notes.append("gradients not measured on the %s backend" % keras.backend.backend())
        return None
    train_vars = list(model.trainable_variables)
    restore = _restoring(list(model.non_trainable_variables) + list(model.metrics_variables))
    try:
        grads = fn(model, _convert(x), _convert(y), _convert(sw), train_vars)
    finally:
        restore()
    ops = keras.ops
    present = [(v, g) for v, g in zip(train_vars, grads) if g is not None]
    if not present:
        return {}
    sq = _to_numpy(ops.stack([ops.sum(ops.square(ops.cast(g, "float32"))) for _, g in present]))
    return {id(v): float(s) for (v, _), s in zip(present, sq)}


# ---------------------------------------------------------------------------------------------
# activations and time: one wrapped inference pass


def _bounded(layer: Any) -> Tuple[Optional[str], int]:
    if type(layer).__name__ == "Softmax":
        axis = getattr(layer, "axis", -1)
        return "softmax", axis if isinstance(axis, int) else -1
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) if callable(act) else act
    return BOUNDED.get(str(name).lower()) if name else None, -1


def _activation_row(a: np.ndarray, kind: Optional[str], axis: int) -> np.ndarray:
    d = a.astype(np.float64, copy=False)
    n = d.size
    zero = d == 0
    if d.ndim >= 1 and d.shape[0] > 0:
        dead, units = float(zero.all(axis=0).sum()), n // d.shape[0]
    else:
        dead, units = float(zero.sum()), max(n, 1)
    sat, sat_n = 0.0, 0
    if kind == "unit":
        sat, sat_n = float(((d < SATURATION_MARGIN) | (d > 1 - SATURATION_MARGIN)).sum()), n
    elif kind == "symmetric":
        sat, sat_n = float((np.abs(d) > 1 - SATURATION_MARGIN).sum()), n
    elif kind == "softmax" and d.ndim >= 1:
        top = d.max(axis=axis)
        sat, sat_n = float((top > 1 - SATURATION_MARGIN).sum()), top.size
    return np.array([n, d.sum(), np.square(d).sum(), dead, units, sat, sat_n], dtype=np.float64)


class _Wrapped:
    """Wraps every node layer's ``call`` for the passes (and unwraps them afterwards)."""

    def __init__(self, layers: Dict[str, Any], record: Callable[[str, Any, float], None]):
        self.layers = layers
        self.record = record

    def __enter__(self) -> "_Wrapped":
        for nid, layer in self.layers.items():
            if type(layer).__name__ != "InputLayer":
                object.__setattr__(layer, "call", self._wrap(nid, layer.call))
        return self

    def _wrap(self, nid: str, call: Any):
        @functools.wraps(call)
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            out = call(*args, **kwargs)
            self.record(nid, out, start)
            return out
        return wrapped

    def __exit__(self, *exc) -> bool:
        for layer in self.layers.values():
            if "call" in layer.__dict__:
                object.__delattr__(layer, "call")
        return False


def _block(out: Any) -> None:
    """Wait for the device (torch CUDA, JAX async dispatch) before reading the clock."""
    backend = keras.backend.backend()
    if backend == "jax":
        for t in keras.tree.flatten(out):
            if hasattr(t, "block_until_ready"):
                t.block_until_ready()
    elif backend == "torch":
        for t in keras.tree.flatten(out):
            if getattr(t, "is_cuda", False):
                import torch

                torch.cuda.synchronize(t.device)
                return


def _float_outputs(out: Any) -> List[np.ndarray]:
    arrays = []
    for t in keras.tree.flatten(out):
        if hasattr(t, "shape") and "float" in str(keras.backend.standardize_dtype(t.dtype)):
            arrays.append(_to_numpy(t))
    return arrays


def _activation_pass(model, layers, x) -> Dict[str, np.ndarray]:
    rows: Dict[str, np.ndarray] = {}
    kinds = {nid: _bounded(layer) for nid, layer in layers.items()}

    def record(nid, out, _start):
        for a in _float_outputs(out):
            if a.size:
                row = _activation_row(a, *kinds[nid])
                rows[nid] = rows[nid] + row if nid in rows else row

    with _Wrapped(layers, record):
        model(x, training=False)
    return rows


def _timed_passes(model, layers, x, repeats) -> Dict[str, float]:
    passes = []
    for _ in range(repeats):
        spent: Dict[str, float] = {}

        def record(nid, out, start, spent=spent):
            _block(out)
            spent[nid] = spent.get(nid, 0.0) + (time.perf_counter() - start) * 1e3

        with _Wrapped(layers, record):
            model(x, training=False)
        passes.append(spent)
    keys = set().union(*passes)
    return {k: statistics.median([p.get(k, 0.0) for p in passes]) for k in keys}


def _input_signals(model, layers, x, groups, repeats, notes) -> Dict[str, Any]:
    restore = _restoring(list(model.non_trainable_variables))
    out: Dict[str, Any] = {}
    try:
        x = _convert(x)
        rows = _activation_pass(model, layers, x)  # also the untimed warm-up
        if "activations" in groups:
            out.update(activation_signals(rows, {nid: _bounded(layers[nid])[0] for nid in rows}))
        if "time" in groups:
            out["time.forward_ms"] = _timed_passes(model, layers, x, repeats)
    finally:
        restore()
    if "backward_time" in groups:
        notes.append("backward time is measured for PyTorch models only")
    return out


def _batch_size(x: Any) -> Optional[int]:
    for t in keras.tree.flatten(x):
        shape = getattr(t, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] is not None:
            return int(shape[0])
    return None


def compute_keras(model: Any, batch: Any = None, groups: Sequence[str] = DEFAULT_GROUPS,
                  state: Optional[KerasSignalState] = None,
                  repeats: int = TIME_REPEATS) -> Tuple[Dict[str, Dict[str, float]],
                                                        Dict[str, Any]]:
    """``(signals {key: {node id: float}}, meta)`` of a built Keras model (see the module).

    `batch`: the held batch, ``x`` or ``(x, y[, sample_weight])`` as ``fit()`` takes data
    (gradients need ``y``; activations and time use ``x``), or None (weights and updates only).
    """
    state = state if state is not None else KerasSignalState()
    if keras.backend.backend() == "jax" and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()  # the variables hold the values of the last train step
    layers = state.node_layers(model)
    notes: List[str] = []
    needs = [g for g in groups if g in ("gradients", "activations", "time", "backward_time")]
    if needs and batch is None:
        notes.append("%s not measured: no example batch (pass example_input=(x, y))"
                     % ", ".join(needs))
    grads = None
    if "gradients" in groups and batch is not None:
        try:
            grads = _gradient_sums(model, batch, notes)
        except Exception as e:  # noqa: BLE001 - the other signals are still written
            notes.append("gradients not measured: %s" % one_line(e))
    signals = _param_signals(model, layers, groups, state, grads, notes)
    x = split_batch(batch)[0] if batch is not None else None
    if x is not None and {"activations", "time", "backward_time"} & set(groups):
        signals.update(_input_signals(model, layers, x, groups, repeats, notes))
    meta = {"framework": "keras", "batch_size": _batch_size(x) if x is not None else None,
            "time_repeats": repeats if "time" in groups and x is not None else None,
            "notes": notes, "backend": keras.backend.backend()}
    return {k: v for k, v in signals.items() if v}, meta
