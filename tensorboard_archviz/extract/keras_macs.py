"""Per-example MACs of one call of a Keras layer or ``keras.ops`` operation.

The convention is ``schema.MACS_CONVENTION``: multiply-accumulates for one example (batch 1).
Counted: every matrix product (Dense and EinsumDense at every position of an N-D input,
``keras.ops.matmul`` / ``einsum`` / ``dot`` / ``tensordot`` / ``dot_product_attention``, the
``Dot`` layer), convolutions of every rank (grouped, depthwise, separable, transposed), attention
(``MultiHeadAttention`` and ``GroupedQueryAttention``: the q/k/v projections, QK^T, AV and the
output projection; ``Attention``: QK^T and AV) and recurrent cells once per time step (``LSTM``: 4
gates, ``GRU``: 3, ``SimpleRNN``: 1; ``Bidirectional`` both directions; ``ConvLSTM1D/2D/3D``: the
input and the recurrent kernel at every output position, 4 gates). Biases, activations,
normalisation, pooling, merging by adds, reshapes, dropout, preprocessing and ``Embedding`` lookups
are elementwise or data movement: a true 0. Any other layer (a custom ``Layer``, a ``Sequential``,
functional or subclassed model called inside one, a ``Lambda``, an RNN cell called on its own or a
custom cell inside ``RNN`` (one step traced, times the steps), a helper layer of
``keras.applications`` such as InceptionResNetV2's ``CustomScaleLayer``) is counted by running its
``call()`` once on symbolic inputs of the call's shapes and adding up the layers and ops it runs
(the graph nodes this records are removed again). Anything else (a custom ``Operation``, a layer
wrapping another framework's code (``JaxLayer``, ``TFSMLayer``, ``TorchModuleWrapper``), a call
whose trace fails, an unknown dimension, a call with non-tensor arguments that cannot be replayed)
has no figure: ``(None, reason)``.

``call_macs`` receives the shapes of the call: ``ins`` / ``outs`` (lists of shapes, batch first)
and ``args`` (``{"args": [...], "kwargs": {...}}`` with tensors replaced by their shapes), so
MultiHeadAttention knows which input is the query, the key and the value.
"""
from __future__ import annotations

import functools
import string
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
from keras.src.layers.attention.additive_attention import AdditiveAttention
from keras.src.layers.attention.attention import Attention
from keras.src.layers.convolutional.base_conv import BaseConv
from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv
from keras.src.layers.rnn.conv_lstm import ConvLSTM
from keras.src.layers.rnn.rnn import RNN
from keras.src.ops.function import make_node_key, map_graph

from tensorboard_archviz.util import one_line, product

Macs = Tuple[Optional[int], Optional[str]]
Shape = Optional[List[Optional[int]]]

# Keras layer packages whose layers do no multiply-accumulate work (elementwise / data movement).
_ZERO_PACKAGES = ("activations", "normalization", "pooling", "reshaping", "regularization",
                  "preprocessing", "merging")
_ZERO_CORE = ("Embedding", "InputLayer", "Identity", "Masking",
              # elementwise layers of keras.applications (ConvNeXt, EfficientNetV2, ...)
              "LayerScale", "StochasticDepth")
# keras.ops products without a rule here: null with a reason instead of a silent 0.
_PRODUCT_OPS = ("Inner", "Outer", "Vdot", "Kron", "Correlate", "Convolve",
                "SeparableConv", "Fft", "Fft2", "Rfft", "Irfft", "Stft", "Istft", "Lstsq",
                "Solve", "Inv", "Cholesky", "Qr", "Svd", "Eig", "Eigh", "Det", "Lu")


def _keras_base(op: Any) -> type:
    """The first class in ``op``'s MRO defined by Keras itself (what the layer extends)."""
    for cls in type(op).__mro__:
        if cls.__module__.startswith("keras."):
            return cls
    return type(op)


def _kshape(var: Any) -> Optional[List[int]]:
    shape = getattr(var, "shape", None)
    return None if shape is None else [int(d) for d in tuple(shape)]


def _kernel_elems(*variables: Any) -> Optional[int]:
    total = 0
    for v in variables:
        s = _kshape(v)
        if s is None:
            return None
        total += product(s)
    return total


def _spatial(shape: Sequence[Optional[int]], data_format: Optional[str]) -> list:
    return list(shape[2:]) if data_format == "channels_first" else list(shape[1:-1])


def _per_example(shape: Shape) -> Shape:
    """A shape without its batch dimension."""
    return None if shape is None else list(shape[1:])


def _unknown(what: str) -> Macs:
    return None, "%s unknown (dynamic or missing shape)" % what


def _dense(op: Any, ins: list, outs: list) -> Macs:
    x = ins[0] if ins else None
    if x is None or len(x) < 2:
        return _unknown("input shape")
    pos, units = product(x[1:-1]), getattr(op, "units", None)
    if pos is None or x[-1] is None or units is None:
        return _unknown("input shape")
    return pos * x[-1] * int(units), None


def einsum_macs(equation: str, operands: List[Shape], out: Shape,
                batch_operands: Sequence[int]) -> Macs:
    """MACs of an einsum: the product of every index's size (output x contracted indices).

    The first dimension of the operands listed in ``batch_operands`` is the batch: counted as 1.
    """
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    specs = lhs.split(",")
    if len(specs) != len(operands) or any(s is None for s in operands):
        return _unknown("operand shape")
    free = [c for c in string.ascii_letters if c not in equation]
    sizes: Dict[str, Optional[int]] = {}
    for i, (spec, shape) in enumerate(zip(specs, operands)):
        if "..." in spec:
            n = len(shape) - (len(spec) - 3)
            spec = spec.replace("...", "".join(free[:n]))
        if len(spec) != len(shape):
            return None, "einsum %r does not match shape %s" % (equation, shape)
        for j, (letter, dim) in enumerate(zip(spec, shape)):
            if dim is None and j == 0 and i in batch_operands:
                dim = 1
            if sizes.get(letter) is None:
                sizes[letter] = dim
    total = product(sizes.values())
    return (total, None) if total is not None else _unknown("einsum dimension")


def _einsum_dense(op: Any, ins: list, outs: list) -> Macs:
    kernel = _kshape(getattr(op, "kernel", None))
    if kernel is None:
        return None, "EinsumDense kernel not built"
    return einsum_macs(op.equation, [ins[0] if ins else None, kernel],
                       outs[0] if outs else None, (0,))


def _conv(op: Any, ins: list, outs: list) -> Macs:

    fmt = getattr(op, "data_format", None)
    if isinstance(op, BaseSeparableConv):
        k = _kernel_elems(op.depthwise_kernel, op.pointwise_kernel)
    else:
        k = _kernel_elems(getattr(op, "kernel", None))
    if k is None:
        return None, "convolution kernel not built"
    # a transposed convolution multiplies the whole kernel at every INPUT position
    ref = (ins if isinstance(op, BaseConvTranspose) else outs)
    pos = product(_spatial(ref[0], fmt)) if ref and ref[0] is not None else None
    return (pos * k, None) if pos is not None else _unknown("spatial shape")


def _named(args: Optional[dict], index: int, name: str, default: Shape = None) -> Shape:
    """The shape of call argument ``name`` (positional ``index`` or keyword)."""
    if not args:
        return default
    pos, kw = args.get("args") or [], args.get("kwargs") or {}
    if name in kw and isinstance(kw[name], ShapeSpec):
        return kw[name]
    if index < len(pos) and isinstance(pos[index], ShapeSpec):
        return pos[index]
    return default


def _mha(op: Any, ins: list, outs: list, args: Optional[dict]) -> Macs:
    """Projections (q, k, v, output) + QK^T + AV, per example (MultiHeadAttention / GQA)."""
    q = _named(args, 0, "query", ins[0] if ins else None)
    v = _named(args, 1, "value", ins[1] if len(ins) > 1 else q)
    k = _named(args, 2, "key", v)
    dense = [getattr(op, a, None) for a in ("_query_dense", "_key_dense", "_value_dense",
                                            "_output_dense")]
    kernels = [_kernel_elems(getattr(d, "kernel", None)) if d is not None else None
               for d in dense]
    if None in (q, k, v) or None in kernels:
        return None, "attention shapes or projection kernels unknown"
    heads = getattr(op, "num_query_heads", None) or getattr(op, "num_heads", None)
    key_dim = getattr(op, "head_dim", None) or getattr(op, "key_dim", None)
    value_dim = getattr(op, "head_dim", None) or getattr(op, "value_dim", None) or key_dim
    axes = getattr(op, "attention_axes", None) or tuple(range(1, len(q) - 1))
    tq, tk, tv = product(q[1:-1]), product(k[1:-1]), product(v[1:-1])
    attended = product(k[a] for a in axes)  # key positions each query position attends to
    if None in (tq, tk, tv, attended, heads, key_dim):
        return _unknown("sequence length")
    proj = tq * kernels[0] + tk * kernels[1] + tv * kernels[2] + tq * kernels[3]
    scores = heads * tq * attended * key_dim
    mix = heads * tq * attended * value_dim
    return proj + scores + mix, None


def _attention(op: Any, ins: list, outs: list) -> Macs:
    """keras.layers.Attention / AdditiveAttention: QK^T (dot scores only) and AV."""
    if len(ins) < 2 or ins[0] is None or ins[1] is None:
        return _unknown("query/value shape")
    q, v = ins[0], ins[1]
    k = ins[2] if len(ins) > 2 and ins[2] is not None else v
    tq, tv = product(q[1:-1]), product(v[1:-1])
    if None in (tq, tv, q[-1], v[-1]):
        return _unknown("sequence length")
    dot_scores = getattr(op, "score_mode", "dot") == "dot" and \
        type(op).__name__ != "AdditiveAttention"
    return (tq * tv * k[-1] if dot_scores else 0) + tq * tv * v[-1], None


def _cell_step(cell: Any) -> Optional[int]:
    """MACs of one time step of an RNN cell: input kernel + recurrent kernel (all gates)."""
    cells = getattr(cell, "cells", None)
    if isinstance(cells, (list, tuple)):  # StackedRNNCells
        steps = [_cell_step(c) for c in cells]
        return None if None in steps else sum(steps)
    if getattr(cell, "kernel", None) is None or getattr(cell, "recurrent_kernel", None) is None:
        return None
    return _kernel_elems(cell.kernel, cell.recurrent_kernel)


def _rnn(op: Any, ins: list, outs: list) -> Macs:

    if isinstance(op, ConvLSTM):
        return _conv_lstm(op, ins, outs)
    x = ins[0] if ins else None
    if x is None or len(x) < 3 or x[1] is None:
        return _unknown("number of time steps")
    cell = getattr(op, "cell", None)
    step = _cell_step(cell)
    if step is None:
        return _traced_step(cell, x)
    return x[1] * step, None


def _traced_step(cell: Any, x: list) -> Macs:
    """A custom recurrent cell (no ``kernel`` / ``recurrent_kernel``): its ``call()`` traced for
    one step (input [B, features...], states of its ``state_size``), times the steps."""
    why = "recurrent cell %s without kernel/recurrent_kernel" % type(cell).__name__
    sizes = getattr(cell, "state_size", None)
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
    states = []
    for size in sizes:
        dims = [size] if isinstance(size, int) else list(size) if isinstance(
            size, (list, tuple)) else None
        if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
            return None, why + ", and its state_size is not a list of sizes"
        states.append(ShapeSpec([None] + dims))
    if not isinstance(cell, keras.layers.Layer):
        return None, why
    step_input = ShapeSpec([x[0]] + list(x[2:]))
    m, reason = traced_macs(cell, {"args": [step_input, ArgList(states, list)], "kwargs": {}}, 1)
    return (x[1] * m, None) if m is not None else (None, "%s: %s" % (why, reason))


def _conv_lstm(op: Any, ins: list, outs: list) -> Macs:
    """ConvLSTM1D/2D/3D: at each time step, at every output position, the input kernel and the
    recurrent kernel ('same' padding, stride 1, over the output grid), all four gates."""
    x, y = (ins[0] if ins else None), (outs[0] if outs else None)
    cell = getattr(op, "cell", None)
    kernel, recurrent = getattr(cell, "kernel", None), getattr(cell, "recurrent_kernel", None)
    if x is None or len(x) < 3 or x[1] is None:
        return _unknown("number of time steps")
    if y is None or kernel is None or recurrent is None:
        return _unknown("output shape")
    rank = len(_kshape(kernel)) - 2
    grid = y[2:] if getattr(op, "return_sequences", False) else y[1:]  # without the batch
    fmt = getattr(cell, "data_format", None)
    grid = grid[1:] if fmt == "channels_first" else grid[:-1]
    if len(grid) != rank or product(grid) is None:
        return _unknown("output shape")
    return x[1] * product(grid) * _kernel_elems(kernel, recurrent), None


def _bidirectional(op: Any, ins: list, outs: list) -> Macs:
    total = 0
    for layer in (op.forward_layer, op.backward_layer):
        m, why = _rnn(layer, ins, outs)
        if m is None:
            return m, why
        total += m
    return total, None


def _time_distributed(op: Any, ins: list, outs: list) -> Macs:
    x, y = (ins[0] if ins else None), (outs[0] if outs else None)
    if x is None or y is None or len(x) < 2 or x[1] is None:
        return _unknown("number of time steps")
    m, why = call_macs(op.layer, [[x[0]] + list(x[2:])], [[y[0]] + list(y[2:])], None)
    return (None, why) if m is None else (m * x[1], None)


def _dot_layer(op: Any, ins: list, outs: list) -> Macs:
    """keras.layers.Dot: every output element is a dot product over the contracted axis."""
    if len(ins) < 2 or ins[0] is None or not outs or outs[0] is None:
        return _unknown("input shape")
    axes = op.axes if isinstance(op.axes, (list, tuple)) else (op.axes, op.axes)
    a = ins[0]
    n = a[axes[0] if axes[0] >= 0 else len(a) + axes[0]]
    per_out = product(outs[0][1:])
    return (per_out * n, None) if None not in (n, per_out) else _unknown("dimension")


def _op_macs(op: Any, ins: list, outs: list) -> Macs:
    """A keras.ops operation recorded in the graph (not a Layer). ``ins``: its operands."""
    name = type(op).__name__
    if not type(op).__module__.startswith("keras."):
        return None, "no MACs rule for %s (a custom operation)" % name
    out = outs[0] if outs else None
    if name == "Matmul":
        if len(ins) < 2 or ins[0] is None or out is None:
            return _unknown("operand shape")
        per_out = product(out[1:] if out and out[0] is None else out)
        k = ins[0][-1]
        return (per_out * k, None) if None not in (per_out, k) else _unknown("dimension")
    if name == "Einsum":
        batch = [i for i, s in enumerate(ins) if s and s[0] is None]
        return einsum_macs(op.subscripts, ins, out, batch)
    if name in ("Conv", "DepthwiseConv", "ConvTranspose") and len(ins) >= 2:
        fmt = getattr(op, "data_format", None)
        ref = ins[0] if name == "ConvTranspose" else out
        pos = product(_spatial(ref, fmt)) if ref else None
        k = product(ins[1]) if ins[1] is not None else None
        return (pos * k, None) if None not in (pos, k) else _unknown("shape")
    if name in ("Dot", "Tensordot") and len(ins) >= 2 and None not in ins[:2] and out is not None:
        a, b = ins[:2]
        if name == "Dot":  # numpy's dot: the last axis of a with the second-to-last of b
            contracted = [a[-1]] if a and b else None
        else:
            contracted = _tensordot_axes(op, a)
        per_out = product(out[1:] if out and out[0] is None else out)
        k = None if contracted is None else product(contracted)
        return (per_out * k, None) if None not in (per_out, k) else _unknown("dimension")
    if name == "DotProductAttention" and len(ins) >= 3 and None not in ins[:3]:
        q, k, v = ins[:3]  # [B, T, H, D], [B, S, K, D], [B, S, K, Dv]
        n = product([q[1], k[1], q[2]])
        return (n * (q[3] + v[3]), None) if None not in (n, q[3], v[3]) \
            else _unknown("sequence length")
    if name in _PRODUCT_OPS or name in ("Matmul", "Einsum", "Conv", "DotProductAttention",
                                         "Dot", "Tensordot"):
        return None, "keras.ops.%s: no MACs rule" % name.lower()
    return 0, None  # elementwise / shape ops


def _tensordot_axes(op: Any, a: list) -> Optional[list]:
    """The dimensions of operand `a` that ``keras.ops.tensordot`` contracts (its ``axes``: the
    last n, or the listed ones)."""
    axes = getattr(op, "axes", None)
    if isinstance(axes, int):
        return list(a[len(a) - axes:]) if 0 <= axes <= len(a) else None
    if isinstance(axes, (list, tuple)) and len(axes) == 2:
        first = axes[0]
        first = [first] if isinstance(first, int) else list(first)
        try:
            return [a[i] for i in first]
        except (IndexError, TypeError):
            return None
    return None


@functools.lru_cache(maxsize=1)
def _rules() -> tuple:
    """(layer classes, rule) in the order they are tried (subclasses before their bases)."""
    return (
        (keras.layers.Dense, _dense), (keras.layers.EinsumDense, _einsum_dense),
        ((BaseConv, BaseConvTranspose, BaseDepthwiseConv, BaseSeparableConv), _conv),
        (RNN, _rnn), (keras.layers.Bidirectional, _bidirectional),
        (keras.layers.TimeDistributed, _time_distributed), (keras.layers.Dot, _dot_layer),
        ((Attention, AdditiveAttention), _attention),
    )


def call_macs(op: Any, ins: list, outs: list, args: Optional[dict], depth: int = 0) -> Macs:
    """``(macs, None)`` of one call (per example), or ``(None, reason)``."""

    if not isinstance(op, keras.layers.Layer):
        # operands in call order, constants (e.g. keras.ops.ones((6, 3))) included
        operands = [a for a in (args or {}).get("args") or [] if isinstance(a, ShapeSpec)]
        return _op_macs(op, operands if len(operands) >= len(ins) else ins, outs)
    rules = _rules()
    if isinstance(op, (keras.layers.MultiHeadAttention, keras.layers.GroupQueryAttention)):
        return _mha(op, ins, outs, args)
    for classes, rule in rules:
        if isinstance(op, classes):
            return rule(op, ins, outs)
    base = _keras_base(op)
    if base.__name__ == "ReversibleEmbedding" and args and \
            (args.get("kwargs") or {}).get("reverse") is True:
        x = ins[0] if ins else None
        pos = product(x[1:]) if x else None
        dim = getattr(op, "input_dim", None)
        return (pos * dim, None) if None not in (pos, dim) else _unknown("input shape")
    package = base.__module__.split(".")
    keras_zero = base.__name__ in _ZERO_CORE and base.__module__.startswith("keras.")
    if keras_zero or base.__name__ == "ReversibleEmbedding" or (
            len(package) > 3 and package[2] == "layers" and package[3] in _ZERO_PACKAGES):
        return 0, None
    if base.__name__ not in _FOREIGN_CODE and args is not None and depth < MAX_TRACE_DEPTH:
        return traced_macs(op, args, depth + 1)
    return None, "no MACs rule for %s (a custom or unsupported layer)" % type(op).__name__


# Keras layers that run code of another framework (a JAX function, a SavedModel, a torch
# module): their call() cannot run on symbolic inputs, so they are never traced.
_FOREIGN_CODE = frozenset({"JaxLayer", "FlaxLayer", "TFSMLayer", "TorchModuleWrapper",
                           "Wrapper"})


MAX_TRACE_DEPTH = 8


class ShapeSpec(list):
    """A call argument that was a tensor: its shape (a list), with its dtype."""

    def __init__(self, shape: List[Optional[int]], dtype: Any = None, constant: bool = False):
        super().__init__(shape)
        self.dtype = dtype
        self.constant = constant  # a concrete array passed to the call (no batch dimension)


def _symbolic(value: Any, made: List[Any], one: bool = False) -> Any:
    """A symbolic stand-in for a tensor argument (constants too: nothing is allocated), also
    inside a list or tuple of them (``Add()([a, b])``, InceptionResNetV2's scale layer);
    `one`: an unknown batch dimension becomes 1 (one example)."""
    if isinstance(value, ArgList):
        items = [_symbolic(v, made, one) for v in value]
        return tuple(items) if value.kind is tuple else items
    if isinstance(value, ShapeSpec):
        shape = tuple(value)
        if one and shape and shape[0] is None and not value.constant:
            shape = (1,) + shape[1:]
        # a name of our own: Keras' automatic names (input_layer_N) stay as the user expects
        t = keras.Input(batch_shape=shape, dtype=value.dtype or "float32",
                        name="archviz_trace_input_%d" % len(made))
        made.append(t)
        return t
    return value


def _traced_ops(layer: Any, args: dict, one: bool = False
                ) -> List[Tuple[Any, list, list, dict, list]]:
    """(operation, input shapes, output shapes, argument shapes, output dtypes) of what
    ``layer.call`` runs on symbolic inputs (`one`: of one example, see ``_symbolic``); the
    nodes this records on the layer's sublayers are removed again."""
    from keras import tree

    made: List[Any] = []
    call_args = [_symbolic(a, made, one) for a in args.get("args") or []]
    call_kwargs = {k: _symbolic(v, made, one) for k, v in (args.get("kwargs") or {}).items()}
    touched = [(l, len(l._inbound_nodes), len(l._outbound_nodes))
               for l in layer._flatten_layers(include_self=False, recursive=True)]
    try:
        with keras.StatelessScope():  # a weight the call assigns to keeps its value
            returned = layer.call(*call_args, **call_kwargs)
        outputs = [o for o in tree.flatten(returned) if isinstance(o, keras.KerasTensor)]
        keys, _, operations, _ = map_graph(made, outputs)
        found = []
        for op in operations:
            for i, kn in enumerate(op._inbound_nodes):
                if make_node_key(op, i) in keys and not kn.is_input:
                    found.append((op, [_shape_of(t) for t in kn.input_tensors],
                                  [_shape_of(t) for t in kn.outputs], arg_shapes(kn),
                                  [getattr(t, "dtype", None) for t in kn.outputs]))
        return found
    finally:
        for l, n_in, n_out in touched:
            del l._inbound_nodes[n_in:]
            del l._outbound_nodes[n_out:]


def traced_calls(layer: Any, args: dict) -> Tuple[Optional[list], Optional[str]]:
    """(the calls ``layer.call`` makes on symbolic inputs of `args`: (operation, input shapes,
    output shapes, argument shapes, output dtypes) each, None) or (None, why not)."""
    if any(_opaque(v) for v in list(args.get("args") or []) +
           list((args.get("kwargs") or {}).values())):
        return None, ("no MACs rule for %s, and its call() takes arguments that are not "
                      "tensors" % type(layer).__name__)
    try:
        found = _traced_ops(layer, args)
    except Exception as e:  # noqa: BLE001 - any failure: no figure, with the reason
        failed = e
    else:  # inside a trace of one example (below), the same check of what it counted
        if not _of_one_example(args) or all(_one_example(op, i, o) for op, i, o, _, _ in found):
            return found, None
        return None, ("no MACs rule for %s, and its call() folds something into the batch "
                      "dimension of one example" % type(layer).__name__)
    # A call() that needs the batch as a number (``ops.broadcast_to(w, ops.shape(x))``, a
    # reshape by the batch, a causal mask) is traced again on one example. Its figures are
    # per example as they stand when every counted call ran on that one example (dimension 0
    # is 1); a call that folded something into dimension 0 (windows) keeps the failure.
    try:
        found = _traced_ops(layer, args, one=True)
    except Exception:  # noqa: BLE001 - the first failure is the one to tell
        found = None
    if found is not None and all(_one_example(op, ins, outs) for op, ins, outs, _, _ in found):
        return found, None
    return None, "no MACs rule for %s, and tracing its call() failed: %s" % (
        type(layer).__name__, one_line(failed, 160))


def _of_one_example(args: dict) -> bool:
    """Whether a call's tensor arguments are of one example (dimension 0 is 1)."""
    specs = [v for v in list(args.get("args") or []) + list((args.get("kwargs") or {}).values())
             for v in (v if isinstance(v, ArgList) else [v])]
    return any(isinstance(v, ShapeSpec) and not v.constant and v and v[0] == 1 for v in specs)


# keras.ops products whose rules count dimension 0 when it is a number (the whole operands)
_WHOLE_OPERANDS = {"Matmul", "Einsum", "Dot", "Tensordot"}


def _one_example(op: Any, ins: list, outs: list) -> bool:
    """Whether a call traced on one example gives its per-example figure: a keras.ops product
    that counts whole operands, an operation of 0 MACs, or a call whose inputs and outputs all
    have 1 in dimension 0 (the layer rules and convolution / attention ops leave it out)."""
    if not isinstance(op, keras.layers.Layer):
        if type(op).__name__ in _WHOLE_OPERANDS or _op_macs(op, ins, outs)[0] == 0:
            return True
    return all(not s or s[0] == 1 for s in list(ins) + list(outs) if s is not None)


def traced_macs(layer: Any, args: dict, depth: int) -> Macs:
    """A custom layer (no rule of its own): the sum over the layers and ops its call() runs."""
    found, why = traced_calls(layer, args)
    if found is None:
        return None, why
    total = 0
    for op, ins, outs, op_args, _ in found:
        m, why = call_macs(op, ins, outs, op_args, depth)
        if m is None:
            return None, "%s: %s" % (getattr(op, "name", type(op).__name__), why)
        total += m
    return total, None


def _shape_of(t: Any) -> Optional[List[Optional[int]]]:
    shape = getattr(t, "shape", None)
    try:
        return None if shape is None else [None if d is None else int(d) for d in shape]
    except (TypeError, ValueError):
        return None


class ArgList(list):
    """A call argument that was a list or tuple (``kind``) holding tensors: its items as
    ``arg_shapes`` gives them."""

    def __init__(self, items: List[Any], kind: type):
        super().__init__(items)
        self.kind = kind


def _opaque(v: Any) -> bool:
    """Whether a call argument (as ``arg_shapes`` gives it) cannot be replayed."""
    return v == "<value>" if isinstance(v, str) else (
        isinstance(v, ArgList) and any(_opaque(x) for x in v))


def arg_shapes(kn: Any) -> Optional[Dict[str, Any]]:
    """A call's arguments with tensors replaced by ``ShapeSpec`` (a list or tuple holding
    tensors by an ``ArgList`` of its items; other simple values kept, anything else
    ``"<value>"``)."""
    arguments = getattr(kn, "arguments", None)
    if arguments is None:
        return None

    def conv(v: Any) -> Any:
        if isinstance(v, keras.KerasTensor):
            shape = _shape_of(v)
            return None if shape is None else ShapeSpec(shape, getattr(v, "dtype", None))
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if hasattr(v, "shape") and hasattr(v, "dtype"):  # a constant array: no batch dim
            shape = _shape_of(v)
            return "<value>" if shape is None else ShapeSpec(shape, str(v.dtype), constant=True)
        if type(v) in (list, tuple) and 0 < len(v) <= 64 and any(
                isinstance(x, keras.KerasTensor) for x in v):
            return ArgList([conv(x) for x in v], type(v))
        return "<value>"

    return {"args": [conv(a) for a in getattr(arguments, "args", ())],
            "kwargs": {k: conv(v) for k, v in (getattr(arguments, "kwargs", {}) or {}).items()}}
