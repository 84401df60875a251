"""Multiply-accumulates of PyTorch operations, in the one convention of ``schema.MACS_CONVENTION``.

Counted: every matrix product (``linear`` at every position of an N-D input, ``matmul``, ``mm``,
``bmm``, ``baddbmm``, ``addmm``, ``addbmm``, ``mv``, ``dot``, ``einsum``, ``bilinear``),
convolutions (every rank, groups, transposed), attention (the QK^T and AV products of
``scaled_dot_product_attention``; ``multi_head_attention_forward`` with its in/out projections)
and recurrent layers and cells (every weight matrix once per time step and example). Everything
else (norms, activations, adds, pooling, lookups) is 0 MACs — a true 0, not "unknown"; a
``Parameter`` read by such an operation (a layer indexing rows of its own weight, or adding a
learned positional embedding) makes the layer's 0 a known figure.

The figures here are for the whole call (every example of the batch); the builder divides by the
example batch. Two entry points:

* ``function_macs(name, args, kwargs, output)`` — one function call (a ``torch`` / ``F`` /
  ``Tensor`` function seen at run time, or an ATen op of a saved program, by name). Returns
  ``(macs, recognized)``; ``recognized`` says whether a rule (MACs or a lookup) applied; raises
  ``MacsUnknown`` when the rule applies but the figure cannot be computed.
* ``module_macs(class_name, params, inputs, outputs)`` — a call of a torch.nn layer known by class
  name and shapes only (saved programs, whose leaf internals may not show weights). Returns
  ``None`` for a class without a rule.

``op_counter()`` is the ``TorchDispatchMode`` live models run under: every ATen operation
dispatched is counted (the rules above by ATen name, plus ``FlopCounterMode``'s registry for
kernels without one: its FLOPs / 2) into the innermost open ``Counter`` (a leaf module call or a
functional op), so any code, built-in, custom or ``torch.fx.wrap``-ed, is counted by what it
actually runs; FFTs, decompositions and custom operators are unknown (null with the reason),
never 0. The same callback lets ``torch_guard`` copy a tensor just before it is written.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from tensorboard_archviz.util import product

__all__ = ["Counter", "MacsUnknown", "function_macs", "mha_macs", "module_macs", "op_counter",
           "plain_call_macs", "plain_leaf", "zero_macs_args", "zero_macs_function"]


class MacsUnknown(Exception):
    """A rule applies but cannot give a figure (the message says why)."""


def _t(args: Sequence[Any], i: int, kwargs: Dict[str, Any], key: str) -> Optional[torch.Tensor]:
    v = args[i] if i < len(args) else kwargs.get(key)
    return v if isinstance(v, torch.Tensor) else None


def _need(*ts: Optional[torch.Tensor]) -> None:
    if any(t is None for t in ts):
        raise MacsUnknown("an operand's shape is not known")


def _out(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise MacsUnknown("the output's shape is not known")


def _product_rule(a_pos: int, a_key: str):
    """numel(out) x the contracted size (the last dim of operand `a_pos`)."""
    def rule(args, kwargs, output):
        a = _t(args, a_pos, kwargs, a_key)
        _need(a)
        return _out(output).numel() * (int(a.shape[-1]) if a.dim() else 1)
    return rule


def _linear(args, kwargs, output):
    x, w = _t(args, 0, kwargs, "input"), _t(args, 1, kwargs, "weight")
    k = int(w.shape[-1]) if w is not None else (int(x.shape[-1]) if x is not None else None)
    if k is None:
        raise MacsUnknown("linear: the input's shape is not known")
    return _out(output).numel() * k


def _bilinear(args, kwargs, output):
    a, b = _t(args, 0, kwargs, "input1"), _t(args, 1, kwargs, "input2")
    _need(a, b)
    return _out(output).numel() * int(a.shape[-1]) * int(b.shape[-1])


def _conv(args, kwargs, output):
    w = _t(args, 1, kwargs, "weight")
    if w is None:
        raise MacsUnknown("convolution: the weight's shape is not known")
    return _out(output).numel() * product(w.shape[1:])


def _conv_transpose(args, kwargs, output):
    x, w = _t(args, 0, kwargs, "input"), _t(args, 1, kwargs, "weight")
    _need(x, w)
    return x.numel() * product(w.shape[1:])


def _convolution(args, kwargs, output):
    transposed = args[6] if len(args) > 6 else kwargs.get("transposed", False)
    return (_conv_transpose if transposed else _conv)(args, kwargs, output)


def _addbmm(args, kwargs, output):
    b1, b2 = _t(args, 1, kwargs, "batch1"), _t(args, 2, kwargs, "batch2")
    _need(b1, b2)
    return b1.numel() * int(b2.shape[-1])


def _dot(args, kwargs, output):
    a = _t(args, 0, kwargs, "input")
    _need(a)
    return a.numel()


def _sdpa(args, kwargs, output):
    """QK^T: every query position against every key position, AV: the same with the values."""
    q, k, v = (_t(args, 0, kwargs, "query"), _t(args, 1, kwargs, "key"),
               _t(args, 2, kwargs, "value"))
    _need(q, k, v)
    rows = q.numel() // max(int(q.shape[-1]), 1)  # batch x heads x query positions
    s = int(k.shape[-2])
    return rows * s * int(q.shape[-1]) + rows * s * int(v.shape[-1])


def mha_macs(q: Sequence[int], k: Sequence[int], v: Sequence[int], embed: int,
             out_shape: Sequence[int]) -> Tuple[int, int]:
    """nn.MultiheadAttention on query/key/value shapes ([L, N, E] or batch-first [N, L, E] or
    unbatched [L, E]): (in-projections + QK^T + AV, the out-projection)."""
    if len(q) == 3:
        if q[1] == k[1] and q[0] != k[0]:
            n, lq, s = q[1], q[0], k[0]  # sequence first
        else:
            n, lq, s = q[0], q[1], k[1]  # batch first (or both readings agree)
    else:
        n, lq, s = 1, q[0], k[0]
    in_proj = (product(q) + product(k) + product(v)) * embed
    attention = 2 * n * lq * s * embed
    return in_proj + attention, product(out_shape) * embed


def _mha_function(args, kwargs, output):
    q, k, v = (_t(args, 0, kwargs, "query"), _t(args, 1, kwargs, "key"),
               _t(args, 2, kwargs, "value"))
    _need(q, k, v)
    embed = int(args[3] if len(args) > 3 else kwargs.get("embed_dim_to_check"))
    a, b = mha_macs(q.shape, k.shape, v.shape, embed, _out(output).shape)
    return a + b


def _tokens(x: torch.Tensor) -> int:
    return x.numel() // max(int(x.shape[-1]), 1) if x.dim() else 1


def _rnn(args, kwargs, output):
    """aten lstm / gru / rnn_*: every weight matrix once per time step and example."""
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    _need(x)
    weights = next((a for a in args if isinstance(a, (list, tuple)) and a
                    and all(isinstance(w, torch.Tensor) for w in a)), None)
    if weights is None:
        raise MacsUnknown("recurrent layer: its weights are not known")
    per_token = sum(w.numel() for w in weights if w.dim() == 2)
    packed = len(args) > 1 and isinstance(args[1], torch.Tensor) and args[1].dim() == 1 \
        and args[1].dtype == torch.int64  # (data, batch_sizes, ...): data is [tokens, features]
    return (int(x.shape[0]) if packed else _tokens(x)) * per_token


def _rnn_cell(args, kwargs, output):
    x, w_ih, w_hh = (_t(args, 0, kwargs, "input"), _t(args, 2, kwargs, "w_ih"),
                     _t(args, 3, kwargs, "w_hh"))
    _need(x, w_ih, w_hh)
    return _tokens(x) * (w_ih.numel() + w_hh.numel())


_EQ = re.compile(r"\s+")


def _einsum(args, kwargs, output):
    """Operands contracted left to right: each pairwise product costs the product of the sizes of
    every index of the two operands."""
    eq = args[0] if args and isinstance(args[0], str) else kwargs.get("equation")
    ops = list(args[1:])
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = list(ops[0])
    if not isinstance(eq, str) or not ops or not all(isinstance(o, torch.Tensor) for o in ops):
        raise MacsUnknown("einsum: equation or operands not known")
    eq = _EQ.sub("", eq)
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ops):
        raise MacsUnknown("einsum: %d operands for %r" % (len(ops), eq))
    sizes: Dict[str, int] = {}
    subs: List[str] = []
    for term, op in zip(terms, ops):
        if "..." in term:
            extra = op.dim() - (len(term) - 3)
            term = term.replace("...", "".join(chr(0x100 + i) for i in range(extra)))
        for ch, d in zip(term, op.shape):
            sizes[ch] = max(sizes.get(ch, 1), int(d))
        subs.append(term)
    out_idx = set(rhs.replace("...", "")) | {c for c in sizes if ord(c) >= 0x100}
    if len(subs) == 1:
        return 0
    macs, cur = 0, subs[0]
    for i, nxt in enumerate(subs[1:], start=1):
        both = set(cur) | set(nxt)
        macs += product(sizes[c] for c in both)
        later = set("".join(subs[i + 1:])) | out_idx
        cur = "".join(c for c in both if c in later)
    return macs


def _zero(args, kwargs, output):
    return 0


def _trilinear(args, kwargs, output):
    """aten._trilinear (nn.Bilinear): every product of the three broadcast operands once."""
    ops = [a for a in args[:3]]
    expands = [list(e) for e in args[3:6]]
    if not all(isinstance(o, torch.Tensor) for o in ops) or len(expands) != 3:
        raise MacsUnknown("_trilinear: operands not known")
    rank = ops[0].dim() + len(expands[0])
    sizes = [1] * rank
    for op, exp in zip(ops, expands):
        dims = iter(op.shape)
        for i in range(rank):
            if i not in exp:
                sizes[i] = max(sizes[i], int(next(dims)))
    return product(sizes)


_RULES = {
    "linear": _linear, "bilinear": _bilinear,
    "matmul": _product_rule(0, "input"), "mm": _product_rule(0, "input"),
    "bmm": _product_rule(0, "input"), "mv": _product_rule(0, "input"),
    "baddbmm": _product_rule(1, "batch1"), "addmm": _product_rule(1, "mat1"),
    "addmv": _product_rule(1, "mat"), "addbmm": _addbmm,
    "dot": _dot, "vdot": _dot, "inner": _product_rule(0, "input"),
    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "cudnn_convolution": _conv,
    "conv_transpose1d": _conv_transpose, "conv_transpose2d": _conv_transpose,
    "conv_transpose3d": _conv_transpose, "convolution": _convolution,
    "_convolution": _convolution,
    "scaled_dot_product_attention": _sdpa,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa,
    "_scaled_dot_product_flash_attention": _sdpa, "_scaled_dot_product_efficient_attention": _sdpa,
    "_scaled_dot_product_cudnn_attention": _sdpa, "_scaled_dot_product_attention_math": _sdpa,
    "multi_head_attention_forward": _mha_function,
    "lstm": _rnn, "gru": _rnn, "rnn_tanh": _rnn, "rnn_relu": _rnn,
    "lstm_cell": _rnn_cell, "gru_cell": _rnn_cell, "rnn_tanh_cell": _rnn_cell,
    "rnn_relu_cell": _rnn_cell,
    "einsum": _einsum,
    "embedding": _zero, "embedding_bag": _zero, "_embedding_bag": _zero,
    # kernels seen at the ATen level (a TorchDispatchMode) besides the ones above
    "mkldnn_rnn_layer": lambda a, k, o: _rnn((a[0], list(a[1:3])), k, o),
    "_trilinear": lambda a, k, o: _trilinear(a, k, o),
    "_addmm_activation": _product_rule(1, "mat1"), "_scaled_mm": _product_rule(0, "self"),
    "_int_mm": _product_rule(0, "self"), "mkldnn_linear": _linear,
    "mkldnn_convolution": _conv, "_slow_conv2d_forward": _conv, "slow_conv3d_forward": _conv,
    "_conv_depthwise2d": _conv, "slow_conv_dilated2d": _conv, "slow_conv_dilated3d": _conv,
    "_nnpack_spatial_convolution": _conv, "convolution_overrideable": _convolution,
    "slow_conv_transpose2d": _conv_transpose, "slow_conv_transpose3d": _conv_transpose,
}


def function_macs(name: str, args: Sequence[Any], kwargs: Optional[Dict[str, Any]],
                  output: Any) -> Tuple[int, bool]:
    """(MACs of one call of the function `name`, whether a rule applied); see the docstring."""
    rule = _RULES.get(name)
    if rule is None:
        return 0, False
    try:
        return int(rule(tuple(args), dict(kwargs or {}), output)), True
    except MacsUnknown:
        raise
    except Exception as e:  # noqa: BLE001 - odd argument forms: unknown, never a crash
        raise MacsUnknown("%s: %s" % (name, type(e).__name__)) from None


class Counter:
    """MACs of the functions one leaf module call ran (see ``function_macs``)."""

    def __init__(self) -> None:
        self.macs = 0
        self.recognized = False
        self.unknown: Optional[str] = None

    def observe(self, name: str, args: Sequence[Any], kwargs: Optional[Dict[str, Any]],
                output: Any) -> None:
        try:
            macs, known = function_macs(name, args, kwargs, output)
        except MacsUnknown as e:
            self.unknown = self.unknown or str(e)
            self.recognized = True
            return
        self.macs += macs
        self.recognized = self.recognized or known


    def add(self, macs: Optional[int], known: bool, unknown: Optional[str]) -> None:
        """Add one operation's figure (``macs`` None: unknown, ``unknown`` says why)."""
        if macs is None:
            self.unknown = self.unknown or unknown
        else:
            self.macs += macs
        self.recognized = self.recognized or known


# ---------------------------------------------------------------------------------------------
# counting at the ATen level: every operation actually dispatched

# ATen ops doing arithmetic this convention does not define (no figure: unknown, never 0); a
# vector norm (``linalg_vector_norm``, what ``x.norm(dim=-1)`` runs) is a reduction like ``sum``:
# a true 0, as the convention says of norms
_UNDEFINED = re.compile(r"^_?(fft_|linalg_(?!vector_norm$)|cholesky|qr$|svd|lu|"
                        r"triangular_solve|geqrf|ormqr|cudnn_rnn|miopen_rnn|_thnn_fused|stft|"
                        r"istft|cdist_forward|sparse_.*mm|sspaddmm|_?flash_attention_forward|"
                        r"_?efficient_attention_forward)")
# operations of other libraries that this convention defines (by qualified name): torchvision's
# deformable convolution is a convolution at sampled positions (the bilinear sampling: 0, like
# interpolation); RoI pooling / alignment pool (0), non-maximum suppression compares (0)
_NAMESPACED_RULES = {
    "torchvision::deform_conv2d": _conv,
    "torchvision::roi_align": _zero, "torchvision::roi_pool": _zero,
    "torchvision::ps_roi_align": _zero, "torchvision::ps_roi_pool": _zero,
    "torchvision::nms": _zero,
}
_PLAIN_NAMESPACES = {"aten", "prims", "_c10d_functional", "c10d", "profiler", "rngprims",
                     "debugprims", "_quantized_decomposed"}



class _OpInfo:
    """What the counter needs of one ATen overload (computed once per overload)."""
    __slots__ = ("func", "name", "rule", "undefined", "registry", "writes", "reads")

    def __init__(self, func: Any):
        self.func = func
        qual = str(getattr(func, "_schema", None) and func._schema.name or func)
        ns, _, name = qual.partition("::")
        self.name = name or qual
        self.rule = _NAMESPACED_RULES.get(qual) or _RULES.get(self.name)
        self.registry = None
        self.undefined: Optional[str] = None
        if self.rule is None:
            try:
                from torch.utils.flop_counter import flop_registry
                self.registry = flop_registry.get(getattr(func, "overloadpacket", None))
            except Exception:  # noqa: BLE001 - older torch: no registry
                self.registry = None
            if self.registry is None and (ns not in _PLAIN_NAMESPACES or
                                          _UNDEFINED.match(self.name)):
                self.undefined = ("%s: %s operation whose MACs this convention does not define"
                                  % (qual, "a custom" if ns not in _PLAIN_NAMESPACES else "an"))
        self.reads = self.name not in COPY_NAMES  # a Parameter among its arguments is read
        writes = []
        for i, a in enumerate(getattr(getattr(func, "_schema", None), "arguments", ())):
            if a.alias_info is not None and a.alias_info.is_write:
                writes.append((i, a.name))
        self.writes = tuple(writes)

    def figure(self, args, kwargs, out) -> Tuple[Optional[int], bool, Optional[str]]:
        """(MACs of the whole call or None, recognized, why unknown)."""
        if self.undefined:
            return None, True, self.undefined
        if self.rule is not None:
            try:
                return int(self.rule(tuple(args), dict(kwargs or {}), out)), True, None
            except MacsUnknown as e:
                return None, True, str(e)
            except Exception as e:  # noqa: BLE001 - odd argument forms: unknown, never a crash
                return None, True, "%s: %s" % (self.name, type(e).__name__)
        try:
            return int(self.registry(*args, **(kwargs or {}), out_val=out)) // 2, True, None
        except Exception as e:  # noqa: BLE001
            return None, True, "%s: %s" % (self.name, type(e).__name__)


_INFOS: Dict[int, _OpInfo] = {}


def _make_dispatch_mode():
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounter(TorchDispatchMode):
        """While active, adds the MACs of every ATen operation dispatched to the innermost open
        ``Counter`` (``push`` / ``pop``; operations outside any go to ``stray``), and calls
        ``on_write(tensors)`` with the tensors an operation is about to write in place (the
        side-effect guard's copy-on-write), both in one Python call per operation."""

        def __init__(self, on_write=None):
            super().__init__()
            self.stack: List[Counter] = []
            self.stray = Counter()
            self.on_write = on_write

        def push(self) -> Counter:
            c = Counter()
            self.stack.append(c)
            return c

        def pop(self) -> Counter:
            return self.stack.pop()

        def lookup(self) -> None:
            """A Parameter was read by an operation without multiply-accumulates (rows of it
            looked up, or it was added, reshaped, concatenated: a learned positional embedding):
            0 MACs, a rule that applied."""
            (self.stack[-1] if self.stack else self.stray).add(0, True, None)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            info = _INFOS.get(id(func))  # OpOverloads live as long as the process
            if info is None or info.func is not func:
                info = _INFOS[id(func)] = _OpInfo(func)
            if info.writes and self.on_write is not None:
                self.on_write(_written(info.writes, args, kwargs))
            out = func(*args, **(kwargs or {}))
            if info.rule is not None or info.registry is not None or info.undefined:
                macs, known, why = info.figure(args, kwargs, out)
                (self.stack[-1] if self.stack else self.stray).add(macs, known, why)
            elif info.reads:
                for a in args:
                    if type(a) is _PARAMETER:
                        self.lookup()  # a weight read by an operation without MACs (x + self.pos)
                        break
            return out

    return OpCounter


_PARAMETER = torch.nn.Parameter


# operations that copy, detach or hand out a tensor's data (ATen and Python names): a weight
# passed to them may leave for code the counter does not see (``w.detach().numpy()``), so they
# never make a layer's 0 known
COPY_NAMES = frozenset({
    "detach", "detach_", "alias", "clone", "_to_copy", "to", "cpu", "cuda", "copy", "copy_",
    "_copy_from", "_copy_from_and_resize", "lift_fresh", "lift_fresh_copy", "contiguous",
    "numpy", "tolist", "item", "__array__", "__deepcopy__", "__reduce_ex__", "data_ptr",
    "storage", "untyped_storage", "_local_scalar_dense"})


def reads_parameter(name: str, args) -> bool:
    """Whether operation `name` reads a Parameter (a layer's own weight) among its positional
    arguments for arithmetic or indexing: not a copy or detach of it (``COPY_NAMES``)."""
    if name in COPY_NAMES:
        return False
    for a in args:
        if type(a) is _PARAMETER:
            return True
    return False


def _written(writes, args, kwargs) -> List[torch.Tensor]:
    out = []
    for i, name in writes:
        v = args[i] if i < len(args) else (kwargs or {}).get(name)
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.extend(t for t in v if isinstance(t, torch.Tensor))
    return out


_MODE_CLASS: List[Any] = []


def op_counter(on_write=None):
    """A new ``OpCounter`` (a ``TorchDispatchMode``; see its docstring): ``with op_counter() as
    c: c.push(); ...; c.pop()``."""
    if not _MODE_CLASS:
        _MODE_CLASS.append(_make_dispatch_mode())
    return _MODE_CLASS[0](on_write)


# ---------------------------------------------------------------------------------------------
# torch.nn layers by class name (saved programs)

_LINEAR = {"Linear", "LazyLinear", "NonDynamicallyQuantizableLinear"}
_CONV = {"Conv1d", "Conv2d", "Conv3d", "LazyConv1d", "LazyConv2d", "LazyConv3d"}
_CONV_T = {"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}
_RNN = {"LSTM", "GRU", "RNN"}
_CELLS = {"LSTMCell", "GRUCell", "RNNCell"}


def module_macs(class_name: str, params: Dict[str, List[int]], inputs: List[List[int]],
                outputs: List[List[int]]) -> Optional[Tuple[int, int]]:
    """(MACs of one call of a torch.nn layer, the part done with a child's weights — the
    out-projection of MultiheadAttention), from its parameter shapes (``{name: shape}``, the
    subtree's, e.g. ``out_proj.weight``) and the call's tensor shapes; None: no rule for it."""
    if not inputs or not outputs:
        return None
    w = params.get("weight")
    if class_name in _LINEAR and w:
        return product(outputs[0]) * w[-1], 0
    if class_name == "Bilinear" and w:
        return product(outputs[0]) * w[1] * w[2], 0
    if class_name in _CONV and w:
        return product(outputs[0]) * product(w[1:]), 0
    if class_name in _CONV_T and w:
        return product(inputs[0]) * product(w[1:]), 0
    if class_name in _RNN or class_name in _CELLS:
        per_token = sum(product(s) for k, s in params.items() if k.startswith("weight_")
                        and len(s) == 2)
        x = inputs[0]
        return (product(x[:-1]) if x else 1) * per_token, 0
    if class_name == "MultiheadAttention":
        embed = (params.get("out_proj.weight") or [None])[0]
        if embed is None:
            return None
        q = inputs[0]
        k = inputs[1] if len(inputs) > 1 and len(inputs[1]) == len(q) else q
        v = inputs[2] if len(inputs) > 2 and len(inputs[2]) == len(q) else k
        return mha_macs(q, k, v, embed, outputs[0])
    return None


# ---------------------------------------------------------------------------------------------
# plain layers: run without the dispatch mode (its Python call per operation is most of the cost)

_PLAIN_RULE = {"Linear", "Conv1d", "Conv2d", "Conv3d"}  # module_macs gives the figure exactly
_PLAIN_ZERO = {  # run no operation with a rule or registry entry: 0 MACs, as counted
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "ReLU", "ReLU6",
    "Hardswish", "Hardsigmoid", "SiLU", "GELU", "Sigmoid", "Tanh", "LeakyReLU", "Softmax",
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "Identity", "Flatten", "MaxPool1d",
    "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d"}


def plain_leaf(m: torch.nn.Module) -> bool:
    """Whether the call of `m` may run outside ``op_counter`` with the same figures: exactly a
    torch.nn layer (not a subclass) in eval mode, with no hooks or replaced forward, plain
    tensors as parameters and buffers, whose operations either have no MACs rule (norms,
    activations, pooling: 0) or add up to ``module_macs``'s figure (Linear, ConvNd: the builder
    uses that rule for a call whose operations were not counted)."""
    cls = type(m)
    if cls is torch.nn.MultiheadAttention:
        return _plain_mha(m)
    if cls.__module__.split(".")[:3] != ["torch", "nn", "modules"] or m.training:
        return False
    if cls.__name__ not in _PLAIN_RULE and cls.__name__ not in _PLAIN_ZERO:
        return False
    if m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__ or m._modules:
        return False
    if cls.__name__ in _PLAIN_RULE and getattr(m, "padding_mode", "zeros") != "zeros":
        return False
    return _plain_tensors(m)


def _plain_tensors(m: torch.nn.Module) -> bool:
    return all(type(t) in (torch.Tensor, torch.nn.Parameter) for t in
               list(m._parameters.values()) + list(m._buffers.values()) if t is not None)


def _plain_mha(m: torch.nn.Module) -> bool:
    """nn.MultiheadAttention whose call's figure ``plain_call_macs`` gives exactly: eval mode,
    no hooks or replaced forward, no bias_k / bias_v / zero attention (they add a key
    position), its ``out_proj`` only used through its weight."""
    if m.training or m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__:
        return False
    if getattr(m, "bias_k", None) is not None or getattr(m, "bias_v", None) is not None or \
            getattr(m, "add_zero_attn", True):
        return False
    out = m._modules.get("out_proj")
    if list(m._modules) != ["out_proj"] or out is None or out._modules:
        return False
    return _plain_tensors(m) and _plain_tensors(out)


def plain_call_macs(m: torch.nn.Module, args: Sequence[Any],
                    kwargs: Dict[str, Any]) -> Optional[int]:
    """The MACs of one call of a plain leaf whose figure its class rule cannot give from
    shapes alone, whole batch: nn.MultiheadAttention (``batch_first`` says where the batch is):
    the in-projections of query, key and value, QK^T and AV over every head, and the
    out-projection — what the operations it dispatches add up to. None for other layers."""
    if type(m) is not torch.nn.MultiheadAttention:
        return None
    q = _t(args, 0, kwargs, "query")
    k = _t(args, 1, kwargs, "key")
    v = _t(args, 2, kwargs, "value")
    _need(q, k, v)
    embed = int(m.embed_dim)
    if q.dim() == 3:
        b, l = (0, 1) if m.batch_first else (1, 0)
        n, lq, s = int(q.shape[b]), int(q.shape[l]), int(k.shape[l])
    else:
        n, lq, s = 1, int(q.shape[0]), int(k.shape[0])
    in_proj = (q.numel() + k.numel() + v.numel()) * embed
    return in_proj + 2 * n * lq * s * embed + n * lq * embed * embed


def _zero_functions() -> frozenset:
    """torch functions / Tensor methods that dispatch only operations without a MACs rule or
    registry entry and write nothing in place (``out=`` / ``inplace=True`` calls excluded)."""
    import torch.nn.functional as F

    T = torch.Tensor
    names = ["add", "sub", "mul", "div", "neg", "pow", "rsqrt", "sqrt", "exp", "cos", "sin",
             "mean", "sum", "cat", "stack", "transpose", "permute", "reshape", "view",
             "unsqueeze", "squeeze", "flatten", "expand", "contiguous", "float", "to",
             "sigmoid", "tanh", "softmax", "chunk", "split", "clone", "type_as", "masked_fill"]
    funcs = {getattr(T, n) for n in names if hasattr(T, n)}
    funcs |= {getattr(torch, n) for n in names if hasattr(torch, n)}
    funcs |= {getattr(T, "__%s__" % n) for n in ("add", "radd", "sub", "rsub", "mul", "rmul",
                                                 "truediv", "rtruediv", "neg", "pow",
                                                 "getitem")}
    funcs |= {F.silu, F.relu, F.gelu, F.softmax, F.dropout}
    return frozenset(funcs)


_ZERO: List[frozenset] = []


def zero_macs_function(func: Any) -> bool:
    """Whether `func` is one of the torch functions / Tensor methods that dispatch only
    operations this convention counts as 0 MACs (``zero_macs_args`` adds the call's check: a
    call of both may run outside ``op_counter``)."""
    if not _ZERO:
        _ZERO.append(_zero_functions())
    try:
        return func in _ZERO[0]
    except TypeError:  # unhashable
        return False


def zero_macs_args(args: Sequence[Any], kwargs: Optional[Dict[str, Any]]) -> bool:
    """Whether a call of a ``zero_macs_function`` writes nothing (no ``out=``, no
    ``inplace=True``, not ``F.relu(x, True)``)."""
    if kwargs and ("out" in kwargs or kwargs.get("inplace")):
        return False
    return not (len(args) > 1 and args[-1] is True)  # F.relu(x, True): in place
