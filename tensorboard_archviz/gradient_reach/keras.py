"""Gradient reach of a Keras 3 model (see the ``tensorboard_archviz.gradient_reach`` package).

One forward pass with ``training=True`` on the example input (a random batch of two built from
the model's input shapes when none is given) and one gradient of the scalar with respect to the
trainable variables, on the model's backend:

- TensorFlow: ``tf.GradientTape``; torch: ``torch.autograd.grad(..., allow_unused=True)`` (an
  unreached variable gets ``None``); JAX: ``jax.grad`` over ``model.stateless_call`` (an unreached
  variable gets zeros, so "none" there means a gradient that is exactly 0).

A variable created trainable whose layer (or an enclosing layer) has ``trainable=False`` is
``frozen``; variables created non-trainable (BatchNormalization statistics, seed states) are
state, not parameters, and are not listed. Why a trainable variable gets no gradient is told
from which layers ran (their ``call`` is wrapped for the pass and unwrapped afterwards) and from
the architecture's edges (a ``stop_gradient`` between the layer and the outputs). The values of
every variable (moving statistics, dropout seed states, a weight a ``call`` assigns to) are
restored afterwards, and the variables' gradients are not stored anywhere. The pass reuses the
caller's extraction (``arch`` and ``layers`` from ``extract.keras.extract_keras_layers``) when
given: the model is walked once. Python attributes a layer's ``call`` changes (a counter) are
not restored: Keras layers keep their own tracking state there.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, List, Optional, Set

import keras
import numpy as np

from tensorboard_archviz.gradient_reach.core import (FROZEN, GRAD, NONE, SCALAR_LOSS, SCALAR_SUM,
                                                     ParamReach, build_result, unavailable)
from tensorboard_archviz.util import one_line

_STOP = re.compile(r"stop_?gradient", re.I)
FREE_DIM = 32  # a dimension other than the batch that the model leaves open (image side, tokens)
# two examples: BatchNormalization in training mode normalises a batch of one to a constant,
# which would zero every gradient behind it
EXAMPLE_BATCH = 2


def example_batch(model: Any) -> Any:
    """A batch of two for `model` from its inputs (random floats, zero integers)."""
    rng = np.random.default_rng(0)
    specs = getattr(model, "_inputs_struct", None)
    if specs is None:
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if inputs:
            specs = inputs[0] if len(inputs) == 1 else list(inputs)
    if specs is None:
        shapes = getattr(model, "_build_shapes_dict", None) or {}
        if len(shapes) != 1:
            raise ValueError("the model has no known input shape; pass input_to_model")
        return _array(rng, list(shapes.values())[0], "float32")
    return keras.tree.map_structure(
        lambda t: _array(rng, t.shape, getattr(t, "dtype", "float32")), specs)


def _array(rng: Any, shape: Any, dtype: Any) -> np.ndarray:
    dims = [EXAMPLE_BATCH] + [FREE_DIM if d is None else int(d) for d in list(shape)[1:]]
    dtype = str(dtype)
    if "int" in dtype or "bool" in dtype:
        return np.zeros(dims, dtype=dtype)
    return rng.standard_normal(dims).astype(dtype)


def _own_variables(layer: Any, nodes: Set[int]) -> List[Any]:
    """Variables created trainable by `layer` and its sub-layers that are not nodes themselves."""
    out = list(getattr(layer, "_trainable_variables", []))
    for sub in layer._flatten_layers(include_self=False, recursive=False):
        if id(sub) not in nodes:
            out.extend(_own_variables(sub, nodes))
    return out


def _scalar(outputs: Any, loss: Optional[Callable[[Any], Any]]) -> Any:
    ops = keras.ops
    if loss is not None:
        return ops.reshape(loss(outputs), ())
    total = None
    for t in keras.tree.flatten(outputs):
        if not hasattr(t, "shape") or "float" not in str(keras.backend.standardize_dtype(t.dtype)):
            continue
        n = int(np.prod([int(d) for d in t.shape]))
        w = (0.5 + (np.arange(n) % 97) / 97.0).astype(keras.backend.standardize_dtype(t.dtype))
        term = ops.sum(ops.reshape(t, (-1,)) * ops.convert_to_tensor(w))
        total = term if total is None else total + term
    if total is None:
        raise TypeError("the model's outputs hold no floating-point tensor (got %s)"
                        % type(outputs).__name__)
    return total


def _grads_tensorflow(model, x, train_vars, loss):
    import tensorflow as tf

    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for v in train_vars:
            tape.watch(v.value)
        scalar = _scalar(model(x, training=True), loss)
    return tape.gradient(scalar, [v.value for v in train_vars])


def _grads_torch(model, x, train_vars, loss):
    import torch

    with torch.enable_grad():
        scalar = _scalar(model(x, training=True), loss)
        params = [v.value for v in train_vars]
        if not params or not scalar.requires_grad:
            return [None] * len(params)
        return list(torch.autograd.grad(scalar, params, allow_unused=True))


def _grads_jax(model, x, train_vars, loss):
    import jax

    tvals = [v.value for v in model.trainable_variables]
    ntvals = [v.value for v in model.non_trainable_variables]

    def f(values):
        kwargs = {"training": True} if getattr(model, "_call_has_training_arg", True) else {}
        out, _ = model.stateless_call(values, ntvals, x, **kwargs)
        return _scalar(out, loss)

    found = dict(zip([id(v) for v in model.trainable_variables], jax.grad(f)(tvals)))
    return [found.get(id(v)) for v in train_vars]


_BACKENDS = {"tensorflow": _grads_tensorflow, "torch": _grads_torch, "jax": _grads_jax}


class _CallRecorder:
    """Wraps every node layer's ``call`` for one pass: which node ids ran."""

    def __init__(self, layers: Dict[str, Any]):
        self.layers = layers
        self.called: Set[str] = set()

    def __enter__(self):
        for nid, layer in self.layers.items():
            object.__setattr__(layer, "call", self._wrap(nid, layer.call))
        return self

    def _wrap(self, nid: str, call: Any):
        @functools.wraps(call)
        def wrapped(*args, **kwargs):
            self.called.add(nid)
            return call(*args, **kwargs)
        return wrapped

    def __exit__(self, *exc):
        for layer in self.layers.values():
            if "call" in layer.__dict__:
                object.__delattr__(layer, "call")
        return False


def _stop_after(arch: Any, nid: str) -> Optional[str]:
    """The stop_gradient node that cuts `nid` from the model's outputs: None when some path
    from `nid` reaches an output without passing through a stop_gradient."""
    if arch is None:
        return None
    classes = {n.id: n.class_name for n in arch.nodes}
    succ: Dict[str, List[str]] = {}
    for s, t in arch.edge_pairs():
        succ.setdefault(s, []).append(t)
    outputs = set(arch.outputs)
    seen, todo, stop = {nid}, list(succ.get(nid, [])), None
    while todo:
        cur = todo.pop(0)
        if cur in seen:
            continue
        seen.add(cur)
        if _STOP.search(classes.get(cur, "")):
            stop = stop or cur
            continue
        if cur in outputs:
            return None
        todo.extend(succ.get(cur, []))
    return stop


def _none_reason(nid: str, grad: Any, called: Set[str], arch: Any) -> str:
    if nid not in called:
        return "%s is not called in the forward pass (unused layer)" % nid
    stop = _stop_after(arch, nid)
    if stop is not None:
        return "the branch is detached at %s" % stop
    if grad is None:
        return "%s's output does not reach the model's outputs" % nid
    return "the gradient is exactly 0 on the example input"


def _is_zero(g: Any) -> bool:
    return not bool(np.any(keras.ops.convert_to_numpy(g) != 0))


def _classify(model, layers, grads, called, arch) -> List[ParamReach]:
    node_ids = {id(l) for l in layers.values()}
    trainable = {id(v) for v in model.trainable_variables}
    out = []
    for nid, layer in layers.items():
        taken: Set[str] = set()
        for v in _own_variables(layer, node_ids):
            name = v.name if v.name not in taken else v.path
            taken.add(name)
            size = int(np.prod([int(d) for d in v.shape]))
            if id(v) not in trainable:
                out.append(ParamReach(nid, name, FROZEN, size))
                continue
            g = grads.get(id(v))
            if g is None or _is_zero(g):
                out.append(ParamReach(nid, name, NONE, size, _none_reason(nid, g, called, arch)))
            else:
                out.append(ParamReach(nid, name, GRAD, size))
    return out


def _run(model, x, loss, layers):
    backend = keras.backend.backend()
    fn = _BACKENDS.get(backend)
    if fn is None:
        raise RuntimeError("the %s backend is not supported" % backend)
    train_vars = list(model.trainable_variables)
    state = [(v, np.array(keras.ops.convert_to_numpy(v.value))) for v in model.variables]
    try:
        with _CallRecorder(layers) as rec:
            found = fn(model, x, train_vars, loss)
    finally:
        for v, saved in state:
            if not np.array_equal(keras.ops.convert_to_numpy(v.value), saved):
                v.assign(saved)
    return {id(v): g for v, g in zip(train_vars, found)}, rec.called


def reach(model: Any, input_to_model: Any = None,
          loss: Optional[Callable[[Any], Any]] = None, arch: Any = None,
          layers: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``gradient_reach`` object of a Keras model (see the module doc). `arch` and `layers`:
    the model's extraction (``extract.keras.extract_keras_layers``) when the caller has it;
    extracted here (once) when either is missing."""
    if not getattr(model, "built", False):
        return unavailable("the model is not built yet")
    try:
        x = example_batch(model) if input_to_model is None else input_to_model
    except Exception as e:  # noqa: BLE001
        return unavailable("no example input: %s" % one_line(e))
    if arch is None or layers is None:
        from tensorboard_archviz.extract.keras import extract_keras_layers

        extracted, found = extract_keras_layers(model)
        arch = extracted if arch is None else arch
        layers = found if layers is None else layers
    try:
        grads, called = _run(model, x, loss, layers)
    except Exception as e:  # noqa: BLE001 - reported, the architecture is still written
        return unavailable("the forward or backward pass failed: %s" % one_line(e))
    parents = {n.id: n.parent for n in arch.nodes}
    return build_result(_classify(model, layers, grads, called, arch), parents,
                        SCALAR_LOSS if loss else SCALAR_SUM, mode="training=True")
