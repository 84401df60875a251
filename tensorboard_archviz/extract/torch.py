"""nn.Module + example input -> Architecture: the module-level data-flow graph of a PyTorch model.

``extract_torch(model, input_to_model)`` runs ONE real forward pass on the example input and
records what flows where:

* Nodes: one per module of ``model.named_modules()`` (id = qualified name such as
  ``layer1.0.conv1``; the root model itself is not a node, it names ``arch.model``), one per
  model input (id = the ``forward`` parameter name, e.g. ``x``; nested dict/tuple inputs get
  ``name.key`` / ``name.0``) with ``class_name`` ``"Input"``, and one per functional operation
  called outside a leaf module (``x + y`` -> ``add``, ``torch.cat`` -> ``cat``, ``F.relu`` ->
  ``relu``, ``x.view`` -> ``view``; ids numbered like torch.fx: ``add``, ``add_1``; ``parent`` =
  the module whose ``forward`` called it). A module with children (``nn.Sequential``, a block)
  is a container: its children name it as ``parent``, its params are the sum over its subtree.
* Edges connect the nodes that produce and consume each tensor (inputs, leaf modules,
  functional ops; containers are grouping only), each with the tensor's shape; one edge per
  (source, target) pair. ``arch.outputs`` are the producers of the model's output tensors
  (``model.extra["output_names"]`` maps dict keys / tuple positions / dataclass fields to them).
* Shapes are the real shapes of the example input's forward pass, the batch dimension
  included *as given* (a 16x1x28x28 input reports 16, never ``None``). A module called twice is
  one node: ``input_shapes``/``output_shapes`` list both calls in order, ``extra["calls"]`` is 2,
  both calls' edges are kept, its parameters count once.
* Params: ``trainable`` counts parameters with ``requires_grad``, ``non_trainable`` the others;
  buffers (BatchNorm running statistics, ...) are not parameters and are listed in
  ``extra["buffers"]``. Model totals count every unique parameter once (``sum(p.numel())``).
* MACs follow torchinfo's "mult-adds" convention, for the whole batch: for every parameter named
  ``weight`` or ``bias`` of a leaf module, ``numel * out[0] * prod(out[2:])`` for classes whose
  name contains ``Conv`` and ``numel * out[0]`` otherwise (``out`` = the call's first output
  shape; so the bias counts as one add per output row, e.g. Linear(784, 512) at batch 1 is
  401,920); other parameters whose name contains weight/bias (RNN ``weight_ih_l0``, attention
  ``in_proj_weight``) count ``numel * out[0] * out[1]``. Summed over calls; containers sum their
  subtree (plus their own direct parameters, counted the same way); functional ops are ``None``
  (not estimated); ``model.extra["macs"]`` is the total.

Two ways to trace, recorded in ``arch.extra["extraction"] = {"method", "reason"}``:
``"fx"`` — ``torch.fx`` symbolic tracing (leaf = a module without children, or
``nn.MultiheadAttention``), then the graph is run on the real input by an ``fx.Interpreter`` that
records shapes (containers' shapes come from the nodes they enclose); ``"hooks"`` — the
fallback when fx cannot trace (data-dependent control flow, ``*args`` forwards, hooks on
non-leaf modules, ...): forward hooks on every module plus a ``TorchFunctionMode`` that sees the
functional operations, with tensors followed by identity. Both give the same document for a
traceable model. Functional ops that only feed Python control flow (the ``x.sum() > 0`` of an
``if``) reach no other node and are dropped (counted in ``extraction["dropped_ops"]``); ops
that touch no tensor derived from the inputs (``torch.arange``, parameter reshapes) are not
nodes.

No side effects: the forward runs under ``torch.no_grad()`` in **eval mode** (so Dropout is off
and BatchNorm running statistics are not updated); every module's ``training`` flag, the
buffers, the RNG state and the MHA fast-path flag are restored afterwards; no parameter,
``requires_grad`` or ``.grad`` is touched. ``DataParallel`` / ``DistributedDataParallel`` /
``torch.compile`` wrappers are unwrapped. An input that does not fit raises ``ExtractionError``
naming the qualified name of the module whose forward failed.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import numbers
import operator
import warnings
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from tensorboard_archviz import schema

__all__ = ["ExtractionError", "extract_torch"]

METHODS = ("auto", "fx", "hooks")


class ExtractionError(RuntimeError):
    """The model could not be run on the example input; ``module`` is the failing module's
    qualified name (``None`` when the failure is in the root model's own ``forward``)."""

    def __init__(self, message: str, module: Optional[str] = None):
        super().__init__(message)
        self.module = module


# ---------------------------------------------------------------------------------------------
# small helpers

_ACTIVATIONS = {
    "ReLU": "relu", "ReLU6": "relu6", "GELU": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "SiLU": "silu", "Mish": "mish", "LeakyReLU": "leaky_relu", "ELU": "elu", "CELU": "celu",
    "SELU": "selu", "GLU": "glu", "Hardtanh": "hardtanh", "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid", "LogSigmoid": "log_sigmoid", "Softplus": "softplus",
    "Softshrink": "softshrink", "Hardshrink": "hardshrink", "Tanhshrink": "tanhshrink",
    "Softsign": "softsign", "Softmax": "softmax", "Softmax2d": "softmax", "LogSoftmax": "log_softmax",
    "Softmin": "softmin", "PReLU": "prelu", "RReLU": "rrelu", "Threshold": "threshold",
}
_ACTIVATION_CLASSES = tuple(getattr(nn, name) for name in _ACTIVATIONS if hasattr(nn, name))
_FUNCTIONAL_ACTIVATIONS = {
    "relu", "relu6", "gelu", "sigmoid", "tanh", "silu", "mish", "leaky_relu", "elu", "celu",
    "selu", "glu", "hardtanh", "hardswish", "hardsigmoid", "logsigmoid", "softplus", "softsign",
    "softmax", "log_softmax", "softmin", "prelu", "rrelu", "threshold", "tanhshrink",
}
_REFLECTED = {"radd", "rsub", "rmul", "rtruediv", "rdiv", "rfloordiv", "rmatmul", "rpow", "rmod",
              "rand", "ror", "rxor", "rlshift", "rrshift"}
_INPLACE = {"iadd", "isub", "imul", "itruediv", "idiv", "ifloordiv", "imatmul", "ipow", "imod",
            "iand", "ior", "ixor", "ilshift", "irshift"}
_WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)
_SKIP = object()


def _is_leaf(m: nn.Module) -> bool:
    """A module whose internals are not shown: no children, or MultiheadAttention (which uses
    its ``out_proj`` child's weights directly instead of calling it)."""
    return next(m.children(), None) is None or isinstance(m, nn.MultiheadAttention)


def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        if isinstance(model, _WRAPPERS):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _op_name(func: Any) -> str:
    """fx-like name of a function / method / operator: ``__add__`` -> ``add``, ``Tensor.mT``
    -> ``mT``, ``operator.iadd`` / ``add_`` -> ``add``."""
    name = getattr(func, "__name__", None)
    if name == "__get__":  # a property such as Tensor.T / Tensor.mT
        name = getattr(getattr(func, "__self__", None), "__name__", None)
    if not isinstance(name, str) or not name:
        name = type(func).__name__
    name = name.strip("_") or "op"
    if name in _REFLECTED or name in _INPLACE:
        name = name[1:]
    elif name.endswith("_") and len(name) > 1:
        name = name.rstrip("_")
    return name


def _flatten(value: Any, path: str = "", depth: int = 0) -> List[Tuple[str, torch.Tensor]]:
    """(path, tensor) for every tensor inside tensors / tuples / lists / dicts / dataclasses."""
    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if depth > 8 or value is None or isinstance(value, (str, bytes, numbers.Number)):
        return []
    sep = "." if path else ""
    out: List[Tuple[str, torch.Tensor]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_flatten(v, "%s%s%s" % (path, sep, k), depth + 1))
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            out.extend(_flatten(v, "%s%s%d" % (path, sep, i), depth + 1))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            out.extend(_flatten(getattr(value, f.name, None), "%s%s%s" % (path, sep, f.name),
                                depth + 1))
    return out


def _tensors(value: Any) -> List[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for _, t in _flatten(value)]


def _shape(t: torch.Tensor) -> List[int]:
    return [int(d) for d in t.shape]


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _prod(xs: Sequence[int]) -> int:
    p = 1
    for x in xs:
        p *= int(x)
    return p


def _json_safe(v: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a simple config value, or _SKIP."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, enum.Enum):
        return str(v.name)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        f = float(v)
        return f if math.isfinite(f) else str(f)
    if isinstance(v, str):
        return v if len(v) <= 200 else v[:200] + "..."
    if isinstance(v, (torch.dtype, torch.device)):
        return str(v)
    if isinstance(v, (tuple, list, torch.Size)):
        if depth >= 2 or len(v) > 32:
            return _SKIP
        items = [_json_safe(x, depth + 1) for x in v]
        return _SKIP if any(x is _SKIP for x in items) else items
    if isinstance(v, dict):
        if depth >= 2 or len(v) > 32 or not all(isinstance(k, str) for k in v):
            return _SKIP
        items = {k: _json_safe(x, depth + 1) for k, x in v.items()}
        return _SKIP if any(x is _SKIP for x in items.values()) else items
    if inspect.isfunction(v) or inspect.isbuiltin(v):
        return getattr(v, "__name__", _SKIP)
    return _SKIP


def _module_config(m: nn.Module) -> Dict[str, Any]:
    """Public simple attributes (in/out channels or features, kernel_size, stride, padding, ...)."""
    cfg: Dict[str, Any] = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k in ("training", "dump_patches") or isinstance(v, torch.Tensor):
            continue
        sv = _json_safe(v)
        if sv is not _SKIP:
            cfg[k] = sv
        if len(cfg) >= 40:
            break
    params = m._parameters
    if "bias" in params and "bias" not in cfg:
        cfg["bias"] = params["bias"] is not None
    return cfg


def _op_config(args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Non-tensor arguments of a functional op (e.g. ``flatten``'s start_dim)."""
    cfg: Dict[str, Any] = {}
    pos = []
    for a in args:
        if isinstance(a, torch.Tensor) or _tensors(a):
            pos.append("<tensor>")
        else:
            sa = _json_safe(a)
            pos.append(None if sa is _SKIP else sa)
    if any(p != "<tensor>" for p in pos):
        cfg["args"] = pos
    for k, v in (kwargs or {}).items():
        if str(k).startswith("_") or isinstance(v, torch.Tensor) or _tensors(v):
            continue
        sv = _json_safe(v)
        if sv is not _SKIP:
            cfg[str(k)] = sv
    return cfg


def _torchinfo_macs(m: nn.Module, class_name: str, out: Optional[List[int]], leaf: bool) -> int:
    """MACs of one call, torchinfo's convention (see the module docstring)."""
    if out is None:
        return 0
    batch = out[0] if out else 1
    macs = 0
    for name, p in (m.named_parameters() if leaf else m.named_parameters(recurse=False)):
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue
        n = p.numel()
        if name in ("weight", "bias"):
            macs += n * batch * (_prod(out[2:]) if "Conv" in class_name else 1)
        elif "weight" in name or "bias" in name:
            macs += n * _prod(out[:2])
    return int(macs)


def _param_counts(params) -> Tuple[int, int]:
    trainable = non_trainable = 0
    for p in params:
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue
        if p.requires_grad:
            trainable += p.numel()
        else:
            non_trainable += p.numel()
    return int(trainable), int(non_trainable)


# ---------------------------------------------------------------------------------------------
# the recorder shared by both paths

@dataclasses.dataclass
class _Call:
    inputs: List[List[int]]
    outputs: List[List[int]]
    dtype: Optional[str]


@dataclasses.dataclass
class _Op:
    id: str
    class_name: str
    parent: Optional[str]
    inputs: List[List[int]]
    outputs: List[List[int]]
    dtype: Optional[str]
    config: Dict[str, Any]


class _Recorder:
    """Tensor-identity bookkeeping: who produced each tensor, which calls and ops happened."""

    def __init__(self, taken: set):
        self.producers: Dict[int, Tuple[Any, str]] = {}
        self.calls: Dict[str, List[_Call]] = {}
        self.ops: List[_Op] = []
        self.edges: Dict[Tuple[str, str], Optional[List[int]]] = {}
        self.taken = set(taken)
        self.counters: Dict[str, int] = {}

    def track(self, t: torch.Tensor, node_id: str) -> None:
        self.producers[id(t)] = (weakref.ref(t), node_id)

    def producer(self, t: torch.Tensor) -> Optional[str]:
        e = self.producers.get(id(t))
        if e is not None and e[0]() is t:
            return e[1]
        return None

    def _link(self, tensors: List[torch.Tensor], target: str) -> None:
        for t in tensors:
            src = self.producer(t)
            if src is not None and (src, target) not in self.edges:
                self.edges[(src, target)] = _shape(t)

    def _new_id(self, base: str) -> str:
        n = self.counters.get(base, 0)
        while True:
            cand = base if n == 0 else "%s_%d" % (base, n)
            n += 1
            if cand not in self.taken:
                break
        self.counters[base] = n
        self.taken.add(cand)
        return cand

    def module_call(self, name: str, args: Any, kwargs: Any, output: Any, leaf: bool) -> None:
        ins = _tensors((args, kwargs))
        outs = _tensors(output)
        self.calls.setdefault(name, []).append(
            _Call([_shape(t) for t in ins], [_shape(t) for t in outs],
                  _dtype(outs[0]) if outs else None))
        if leaf:
            self._link(ins, name)
            for t in outs:
                self.track(t, name)

    def op_call(self, func: Any, parent: Optional[str], args: Any, kwargs: Any,
                output: Any) -> None:
        ins = _tensors((args, kwargs))
        if not ins or all(self.producer(t) is None for t in ins):
            return  # not part of the data flow from the inputs (e.g. torch.arange, a param)
        outs = _tensors(output)
        if not outs:
            return  # size(), dim(), shape, item(), ...
        if not isinstance(output, torch.Tensor):
            in_ids = {id(t) for t in ins}
            if all(id(t) in in_ids for t in outs):
                return  # packs its inputs into a tuple/dict/dataclass: plumbing, not an op
        node_id = self._new_id(_op_name(func))
        self.ops.append(_Op(node_id, _op_name(func), parent, [_shape(t) for t in ins],
                            [_shape(t) for t in outs], _dtype(outs[0]), _op_config(args, kwargs)))
        self._link(ins, node_id)
        for t in outs:
            self.track(t, node_id)


# ---------------------------------------------------------------------------------------------
# inputs

def _call_args(model: nn.Module, input_to_model: Any) -> Tuple[tuple, Dict[str, Any]]:
    """How the model is called, like add_graph / torchinfo: tensor -> model(x), tuple/list ->
    model(*x), dict -> model(**x)."""
    if isinstance(input_to_model, torch.Tensor):
        args, kwargs = (input_to_model,), {}
    elif isinstance(input_to_model, (tuple, list)):
        args, kwargs = tuple(input_to_model), {}
    elif isinstance(input_to_model, dict):
        if not all(isinstance(k, str) for k in input_to_model):
            raise ExtractionError("input_to_model: a dict input is passed as keyword arguments, "
                                  "so its keys must be strings; got %r"
                                  % [k for k in input_to_model if not isinstance(k, str)][:3])
        args, kwargs = (), dict(input_to_model)
    else:
        raise ExtractionError(
            "input_to_model must be a tensor, a tuple/list (passed as positional arguments) or "
            "a dict of tensors (passed as keyword arguments); got %s" % type(input_to_model).__name__)
    if not _tensors((args, kwargs)):
        raise ExtractionError("input_to_model holds no tensor")
    return args, kwargs


def _bind(model: nn.Module, args: tuple, kwargs: Dict[str, Any]):
    try:
        sig = inspect.signature(model.forward)
        bound = sig.bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None, None
    return sig, bound


def _input_names(model: nn.Module, args: tuple, kwargs: Dict[str, Any]) -> List[Tuple[str, torch.Tensor]]:
    """(node id, tensor) per input tensor, named after forward's parameters where possible."""
    sig, bound = _bind(model, args, kwargs)
    out: List[Tuple[str, torch.Tensor]] = []
    if bound is not None:
        for name, value in bound.arguments.items():
            kind = sig.parameters[name].kind
            if kind == inspect.Parameter.VAR_KEYWORD:
                out.extend(_flatten(value))
            else:
                out.extend(_flatten(value, name))
    else:
        for i, a in enumerate(args):
            out.extend(_flatten(a, "input" if i == 0 and len(args) == 1 else "input_%d" % i))
        out.extend(_flatten(kwargs))
    seen_t: set = set()
    uniq = []
    for name, t in out:
        if id(t) in seen_t:  # the same tensor passed twice is one input
            continue
        seen_t.add(id(t))
        uniq.append((name or "input", t))
    return uniq


# ---------------------------------------------------------------------------------------------
# the two tracing paths

class _FxUnsupported(Exception):
    """fx cannot be used for this model (the reason is the message)."""


class _ForwardFailed(Exception):
    def __init__(self, module: Optional[str], error: BaseException):
        super().__init__(str(error))
        self.module = module
        self.error = error


def _first_line(e: BaseException) -> str:
    text = ("%s: %s" % (type(e).__name__, e)).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 300 else line[:300] + "..."


def _run_fx(model, args, kwargs, names, leaf_ids, rec: _Recorder):
    """Symbolically trace, then interpret the graph on the real input; returns (output,
    container calls {name: [_Call]})."""
    import torch.fx as fx

    sig, bound = _bind(model, args, kwargs)
    if bound is None:
        raise _FxUnsupported("the example input does not match forward's signature")
    from torch.nn.modules import module as module_mod

    if getattr(module_mod, "_global_forward_hooks", None) or getattr(
            module_mod, "_global_forward_pre_hooks", None):
        raise _FxUnsupported("global module hooks are registered, which a traced graph skips")
    for q, m in [("", model)] + list(names.items()):
        if id(m) not in leaf_ids and (m._forward_hooks or m._forward_pre_hooks):
            raise _FxUnsupported("module %r has forward hooks, which a traced graph does not run"
                                 % (q or type(model).__name__))
    for p in sig.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise _FxUnsupported("forward takes *args/**kwargs")
    bound.apply_defaults()
    for k, v in bound.arguments.items():
        if not isinstance(v, torch.Tensor) and _tensors(v):
            # a Proxy is neither a dict nor a list: isinstance checks in forward would take
            # another branch than the real call does
            raise _FxUnsupported("argument %r is a %s of tensors, which torch.fx traces as one "
                                 "opaque value" % (k, type(v).__name__))
    concrete = {k: v for k, v in bound.arguments.items() if not _tensors(v)}

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return id(m) in leaf_ids

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = Tracer().trace(model, concrete_args=concrete or None)
    except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError, ...
        raise _FxUnsupported("torch.fx could not trace %s: %s"
                             % (type(model).__name__, _first_line(e))) from None
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(bound.arguments):
        raise _FxUnsupported("the traced graph's inputs do not match forward's signature")
    values = list(bound.arguments.values())

    shapes: Dict[Any, Tuple[List[List[int]], Optional[str]]] = {}
    CALLS = ("call_module", "call_function", "call_method")

    class Run(fx.Interpreter):
        def run_node(self, n):
            if n.op not in CALLS:
                out = super().run_node(n)
            else:
                a, kw = self.fetch_args_kwargs_from_env(n)
                try:
                    out = getattr(self, n.op)(n.target, a, kw)
                except Exception as e:
                    stack = n.meta.get("nn_module_stack") or {}
                    mod = list(stack.values())[-1][0] if stack else None
                    raise _ForwardFailed(mod, e) from e
                if n.op == "call_module":
                    rec.module_call(n.target, a, kw, out, leaf=True)
                elif not (n.target is operator.getitem and not isinstance(a[0], torch.Tensor)) \
                        and n.target is not getattr:
                    stack = n.meta.get("nn_module_stack") or {}
                    parent = list(stack.values())[-1][0] if stack else None
                    rec.op_call(n.target if n.op == "call_function" else _MethodName(n.target),
                                parent, a, kw, out)
            if n.op != "get_attr":
                ts = _tensors(out)
                shapes[n] = ([_shape(t) for t in ts], _dtype(ts[0]) if ts else None)
            return out

    output = Run(model, graph=graph).run(*values)

    # Containers never run in the graph: their calls come from nn_module_stack ("name@k" = call k).
    groups: Dict[str, List[Any]] = {}
    group_name: Dict[str, str] = {}
    for n in graph.nodes:
        for key, (qual, _cls) in (n.meta.get("nn_module_stack") or {}).items():
            if qual in names and id(names[qual]) not in leaf_ids:
                groups.setdefault(key, []).append(n)
                group_name[key] = qual
    containers: Dict[str, List[_Call]] = {}
    for key, nodes in groups.items():
        members = set(nodes)
        ins, outs, seen = [], [], set()
        dtype = None
        for n in nodes:
            for a in n.all_input_nodes:
                if a not in members and a.op != "get_attr" and a not in seen:
                    seen.add(a)
                    ins.extend(shapes.get(a, ([], None))[0])
            if any(u not in members for u in n.users) and n in shapes:
                outs.extend(shapes[n][0])
                if dtype is None:
                    dtype = shapes[n][1]
        containers.setdefault(group_name[key], []).append(_Call(ins, outs, dtype))
    return output, containers


class _MethodName:
    """Stands for a Tensor method called by name in an fx graph (``x.view(...)``)."""

    def __init__(self, name: str):
        self.__name__ = name


def _run_hooks(model, args, kwargs, names, leaf_ids, rec: _Recorder):
    """The real forward with hooks on every module and a TorchFunctionMode for functional ops."""
    from torch.overrides import TorchFunctionMode

    qualname_of = {id(m): q for q, m in names.items()}
    stack: List[str] = []
    state = {"leaf_depth": 0, "busy": False}

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if state["leaf_depth"] or state["busy"]:
                return out
            state["busy"] = True
            try:
                rec.op_call(func, stack[-1] if stack else None, args, kwargs or {}, out)
            finally:
                state["busy"] = False
            return out

    def pre_hook(module, a, kw):
        if state["busy"]:
            return None
        stack.append(qualname_of[id(module)])
        if id(module) in leaf_ids:
            state["leaf_depth"] += 1
        return None

    def post_hook(module, a, kw, out):
        if state["busy"]:
            return None
        name = qualname_of[id(module)]
        while stack and stack.pop() != name:
            pass
        leaf = id(module) in leaf_ids
        if leaf:
            state["leaf_depth"] -= 1
        if state["leaf_depth"]:
            return None  # a module called from inside a leaf: its internals are hidden too
        state["busy"] = True
        try:
            rec.module_call(name, a, kw, out, leaf=leaf)
        finally:
            state["busy"] = False
        return None

    handles = []
    try:
        for m in names.values():
            handles.append(m.register_forward_pre_hook(pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(post_hook, with_kwargs=True))
        try:
            with Mode():
                return model(*args, **kwargs)
        except Exception as e:
            raise _ForwardFailed(stack[-1] if stack else None, e) from e
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------------------------------------
# side-effect guard

class _Guard:
    """Eval mode + no_grad for the forward; restores training flags, buffers, RNG, MHA fast path."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.buffers = []
        for m in self.model.modules():
            for k, b in m._buffers.items():
                if b is not None:
                    self.buffers.append((m, k, b, b.detach().clone()))
        self.rng = torch.random.get_rng_state()
        mha = getattr(torch.backends, "mha", None)
        self.fastpath = mha.get_fastpath_enabled() if mha is not None and hasattr(
            mha, "get_fastpath_enabled") else None
        if self.fastpath is not None:
            mha.set_fastpath_enabled(False)  # keep the submodules of Transformer layers visible
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.model.eval()
        return self

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        for m, training in self.modes:
            m.training = training
        with torch.no_grad():
            for m, k, b, saved in self.buffers:
                if m._buffers.get(k) is not b:
                    m._buffers[k] = b
                if b.shape == saved.shape and not torch.equal(b, saved):
                    b.copy_(saved)
        torch.random.set_rng_state(self.rng)
        if self.fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self.fastpath)
        return False


# ---------------------------------------------------------------------------------------------
# public entry point

def extract_torch(model: nn.Module, input_to_model: Any, *, method: str = "auto") -> schema.Architecture:
    """The Architecture of `model`, from one forward pass on `input_to_model`.

    `input_to_model` is passed like ``SummaryWriter.add_graph`` / torchinfo do: a tensor as
    ``model(x)``, a tuple/list as ``model(*x)``, a dict as ``model(**x)`` (wrap a dict argument
    in a tuple: ``(batch_dict,)``). `method` is ``"auto"`` (torch.fx, falling back to hooks),
    ``"fx"`` or ``"hooks"``. Raises ``ExtractionError`` when the model cannot run on the input.
    See the module docstring for conventions (batch dimension as given, MACs as torchinfo).
    """
    if method not in METHODS:
        raise ValueError("method must be one of %s, got %r" % (METHODS, method))
    if not isinstance(model, nn.Module):
        raise ExtractionError("model must be a torch.nn.Module, got %s" % type(model).__name__)
    model = _unwrap(model)
    if isinstance(model, torch.jit.ScriptModule):
        raise ExtractionError("TorchScript modules are not supported: pass the nn.Module that "
                              "was scripted")
    args, kwargs = _call_args(model, input_to_model)
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise ExtractionError("input_to_model does not fit %s.forward%s: %s"
                                  % (type(model).__name__, sig, e)) from None

    names: Dict[str, nn.Module] = {q: m for q, m in model.named_modules() if q}
    leaf_ids = {id(m) for m in names.values() if _is_leaf(m)}
    inputs = []
    for name, t in _input_names(model, args, kwargs):
        while name in names:
            name = name + "_input"
        inputs.append((name, t))

    def new_recorder() -> _Recorder:
        rec = _Recorder(set(names) | {n for n, _ in inputs})
        for n, t in inputs:
            rec.track(t, n)
        return rec

    extraction: Dict[str, Any] = {}
    containers: Optional[Dict[str, List[_Call]]] = None
    try:
        with _Guard(model):
            output = rec = None
            if method in ("auto", "fx"):
                rec = new_recorder()
                try:
                    output, containers = _run_fx(model, args, kwargs, names, leaf_ids, rec)
                    extraction = {"method": "fx", "reason": "torch.fx symbolic trace"}
                except _FxUnsupported as e:
                    if method == "fx":
                        raise ExtractionError(str(e)) from None
                    extraction = {"method": "hooks", "reason": str(e)}
                except _ForwardFailed as e:
                    if method == "fx":
                        raise
                    extraction = {"method": "hooks",
                                  "reason": "the fx graph failed on the example input (%s)"
                                  % _first_line(e.error)}
                if extraction.get("method") == "hooks":
                    rec = None
            else:
                extraction = {"method": "hooks", "reason": "requested (method='hooks')"}
            if rec is None:
                rec = new_recorder()
                output = _run_hooks(model, args, kwargs, names, leaf_ids, rec)
            out_flat = _flatten(output)
            outputs: List[str] = []
            out_info = []
            for path, t in out_flat:
                src = rec.producer(t)
                if src is not None and src not in outputs:
                    outputs.append(src)
                out_info.append({"name": path or "output", "node": src, "shape": _shape(t)})
    except _ForwardFailed as e:
        where = ("module '%s' (%s)" % (e.module, type(names[e.module]).__name__)
                 if e.module in names else "the forward of %s itself" % type(model).__name__)
        shapes = [_shape(t) for _, t in inputs]
        raise ExtractionError("%s: the forward pass on the example input (shapes %s) failed in %s: %s"
                              % (type(model).__name__, shapes, where, _first_line(e.error)),
                              module=e.module) from e.error

    dropped = _prune_dead_ops(rec, outputs)
    if dropped:
        extraction["dropped_ops"] = dropped
    return _build(model, names, leaf_ids, inputs, rec, containers, outputs, out_info, extraction)


def _prune_dead_ops(rec: _Recorder, outputs: List[str]) -> int:
    """Drop functional ops whose results reach no module, op or model output (e.g. the
    ``x.sum() > 0`` of an ``if``): they fed Python control flow, not the data flow."""
    ops = {op.id for op in rec.ops}
    keep_out = set(outputs)
    dropped = 0
    while True:
        sources = {s for s, _ in rec.edges}
        dead = {o for o in ops if o not in sources and o not in keep_out}
        if not dead:
            return dropped
        dropped += len(dead)
        ops -= dead
        rec.ops = [op for op in rec.ops if op.id not in dead]
        rec.edges = {k: v for k, v in rec.edges.items() if k[1] not in dead}


def _build(model, names, leaf_ids, inputs, rec: _Recorder, containers, outputs, out_info,
           extraction) -> schema.Architecture:
    nodes: List[schema.Node] = []
    batch = None
    for n, t in inputs:
        if batch is None and t.dim() > 0:
            batch = int(t.shape[0])
        nodes.append(schema.Node(id=n, name=n, class_name="Input", parent=None,
                                 input_shapes=[_shape(t)], output_shapes=[_shape(t)], dtype=_dtype(t),
                                 extra={"is_input": True}))
    own_macs: Dict[str, Optional[int]] = {}
    module_nodes: Dict[str, schema.Node] = {}
    for q, m in names.items():
        leaf = id(m) in leaf_ids
        calls = rec.calls.get(q) or (containers or {}).get(q) or []
        cls = type(m).__name__
        tr, ntr = _param_counts(m.parameters())
        extra: Dict[str, Any] = {"calls": len(calls), "is_container": not leaf}
        weights = [{"name": k, "shape": list(p.shape), "trainable": bool(p.requires_grad)}
                   for k, p in m._parameters.items()
                   if p is not None and not isinstance(p, nn.parameter.UninitializedParameter)]
        if weights:
            extra["weights"] = weights
        buffers = [{"name": k, "shape": list(b.shape), "dtype": _dtype(b),
                    "persistent": k not in m._non_persistent_buffers_set}
                   for k, b in m._buffers.items() if b is not None]
        if buffers:
            extra["buffers"] = buffers
        if not calls:
            extra["reason"] = ("holds modules, has no forward of its own"
                               if isinstance(m, (nn.ModuleList, nn.ModuleDict))
                               else "not called during the forward pass")
        own = sum(_torchinfo_macs(m, cls, c.outputs[0] if c.outputs else None, leaf)
                  for c in calls) if calls else None
        own_macs[q] = own
        parent = q.rsplit(".", 1)[0] if "." in q else None
        module_nodes[q] = schema.Node(
            id=q, name=q.rsplit(".", 1)[-1], class_name=cls, parent=parent,
            input_shapes=[s for c in calls for s in c.inputs] if calls else None,
            output_shapes=[s for c in calls for s in c.outputs] if calls else None,
            dtype=calls[0].dtype if calls else None,
            params={"trainable": tr, "non_trainable": ntr},
            activation=_ACTIVATIONS.get(cls) if isinstance(m, _ACTIVATION_CLASSES) else None,
            config=_module_config(m), macs=own, extra=extra)
    # containers: MACs = own + the sum over their subtree (children before parents when reversed)
    total_macs = sum(v for v in own_macs.values() if v)
    acc = {q: (own_macs[q] or 0) for q in names}
    for q in reversed(list(names)):
        parent = module_nodes[q].parent
        if parent is not None and parent in acc:
            acc[parent] += acc[q]
    for q, node in module_nodes.items():
        if id(names[q]) not in leaf_ids and (node.macs is not None or acc[q]):
            node.macs = acc[q]
    nodes.extend(module_nodes.values())
    for op in rec.ops:
        nodes.append(schema.Node(
            id=op.id, name=op.id, class_name=op.class_name, parent=op.parent,
            input_shapes=op.inputs, output_shapes=op.outputs, dtype=op.dtype,
            activation=op.class_name if op.class_name in _FUNCTIONAL_ACTIVATIONS else None,
            config=op.config, macs=None, extra={"is_function": True}))
    edges = [schema.Edge(source=s, target=t, shape=shape) for (s, t), shape in rec.edges.items()]
    tr, ntr = _param_counts(model.parameters())
    info = schema.ModelInfo(
        name=type(model).__name__, class_name=type(model).__name__,
        total_params=tr + ntr, trainable_params=tr, non_trainable_params=ntr,
        extra={"macs": int(total_macs), "macs_convention": "torchinfo mult-adds, whole batch",
               "batch_size": batch, "output_names": out_info,
               "buffers": int(sum(b.numel() for b in model.buffers()))})
    return schema.Architecture(
        framework="torch", framework_version=str(torch.__version__), model=info,
        inputs=[n for n, _ in inputs], outputs=outputs, nodes=nodes, edges=edges,
        extra={"extraction": extraction})
