"""The PyTorch graph builder shared by every torch extractor.

``extract.torch`` (a live ``nn.Module`` run once on an example input) and ``extract.torch_saved``
(``torch.export`` programs and TorchScript archives) both describe what they saw in the terms of
this module and call one ``build_architecture()``, so the promise "a saved program gives the
document ``extract_torch`` gives for the original model" is kept by construction:

* ``ModuleInfo`` — one module of the model: qualified name, class, whether it is a leaf (its
  internals not shown), its own parameters and buffers, the parameter counts of its subtree, its
  config.
* ``Recorder`` — tensor-identity bookkeeping while the model runs: which node produced each
  tensor, every module call (``Call``) and functional op (``Op``) in execution order, the edges.
* Tensor helpers (``flatten``, ``tensors``, ``shape``, ``dtype``, ``json_safe``), naming
  (``op_name``, ``MethodName``), how an example input is passed (``call_args``), ``unwrap``
  (DataParallel / DistributedDataParallel / ``torch.compile``) and ``ExtractionError``.

The conventions of the document (ids, shapes, params, MACs) are described in
``tensorboard_archviz.extract.torch``.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
import numbers
import warnings
import weakref
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

from tensorboard_archviz import schema, totals
from tensorboard_archviz.extract import torch_macs
from tensorboard_archviz.util import product

__all__ = [
    "ACTIVATIONS", "FUNCTIONAL_ACTIVATIONS", "Call", "ExtractionError", "ForwardFailed",
    "MethodName", "ModuleInfo", "Op", "Recorder", "SKIP", "build_architecture", "call_args",
    "dtype", "example_batch", "execution_order", "flatten", "is_leaf", "json_safe", "module_config", "module_info", "model_outputs",
    "nbytes", "op_macs", "op_name", "Param", "param_counts", "prune_dead_ops", "shape",
    "parameter_paths", "subtree_counts", "tensors", "unique_inputs", "unwrap",
]


class ExtractionError(RuntimeError):
    """The model could not be run on the example input; ``module`` is the failing module's
    qualified name (``None`` when the failure is in the root model's own ``forward``)."""

    def __init__(self, message: str, module: Optional[str] = None):
        super().__init__(message)
        self.module = module


class ForwardFailed(Exception):
    """The forward pass raised ``error`` inside ``module`` (qualified name, None: the root)."""

    def __init__(self, module: Optional[str], error: BaseException):
        super().__init__(str(error))
        self.module = module
        self.error = error


# ---------------------------------------------------------------------------------------------
# names

ACTIVATIONS = {
    "ReLU": "relu", "ReLU6": "relu6", "GELU": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "SiLU": "silu", "Mish": "mish", "LeakyReLU": "leaky_relu", "ELU": "elu", "CELU": "celu",
    "SELU": "selu", "GLU": "glu", "Hardtanh": "hardtanh", "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid", "LogSigmoid": "log_sigmoid", "Softplus": "softplus",
    "Softshrink": "softshrink", "Hardshrink": "hardshrink", "Tanhshrink": "tanhshrink",
    "Softsign": "softsign", "Softmax": "softmax", "Softmax2d": "softmax", "LogSoftmax": "log_softmax",
    "Softmin": "softmin", "PReLU": "prelu", "RReLU": "rrelu", "Threshold": "threshold",
}
ACTIVATION_CLASSES = tuple(getattr(nn, name) for name in ACTIVATIONS if hasattr(nn, name))
FUNCTIONAL_ACTIVATIONS = {
    "relu", "relu6", "gelu", "sigmoid", "tanh", "silu", "mish", "leaky_relu", "elu", "celu",
    "selu", "glu", "hardtanh", "hardswish", "hardsigmoid", "logsigmoid", "softplus", "softsign",
    "softmax", "log_softmax", "softmin", "prelu", "rrelu", "threshold", "tanhshrink",
}
_REFLECTED = {"radd", "rsub", "rmul", "rtruediv", "rdiv", "rfloordiv", "rmatmul", "rpow", "rmod",
              "rand", "ror", "rxor", "rlshift", "rrshift"}
_INPLACE = {"iadd", "isub", "imul", "itruediv", "idiv", "ifloordiv", "imatmul", "ipow", "imod",
            "iand", "ior", "ixor", "ilshift", "irshift"}
_WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)
SKIP = object()  # json_safe's "not a simple value"


def unwrap(model: Any) -> Any:
    """The module inside ``DataParallel`` / ``DistributedDataParallel`` / ``torch.compile``
    wrappers (layer names without the ``module.`` / ``_orig_mod.`` prefix, no DDP forward)."""
    while True:
        if isinstance(model, _WRAPPERS):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


_OP_NAMES: Dict[Any, str] = {}


def op_name(func: Any) -> str:
    """fx-like name of a function / method / operator: ``__add__`` -> ``add``, ``Tensor.mT``
    -> ``mT``, ``operator.iadd`` / ``add_`` -> ``add``."""
    try:
        return _OP_NAMES[func]
    except (KeyError, TypeError):
        pass
    name = _op_name(func)
    try:
        if len(_OP_NAMES) < 10000 and not isinstance(func, MethodName):
            _OP_NAMES[func] = name
    except TypeError:  # unhashable
        pass
    return name


def _op_name(func: Any) -> str:
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


class MethodName:
    """Stands for a function known by name only (a Tensor method of an fx graph, an ATen op)."""

    def __init__(self, name: str):
        self.__name__ = name


# ---------------------------------------------------------------------------------------------
# tensors and values

def flatten(value: Any, path: str = "", depth: int = 0) -> List[Tuple[str, torch.Tensor]]:
    """(path, tensor) for every tensor inside tensors / tuples / lists / dicts / dataclasses."""
    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if depth > 8 or value is None or isinstance(value, (str, bytes, numbers.Number)):
        return []
    sep = "." if path else ""
    out: List[Tuple[str, torch.Tensor]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(flatten(v, "%s%s%s" % (path, sep, k), depth + 1))
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            out.extend(flatten(v, "%s%s%d" % (path, sep, i), depth + 1))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            out.extend(flatten(getattr(value, f.name, None), "%s%s%s" % (path, sep, f.name),
                               depth + 1))
    return out


_SCALARS = (str, bytes, int, float, bool, type(None))


def tensors(value: Any, out: Optional[List[torch.Tensor]] = None,
            depth: int = 0) -> List[torch.Tensor]:
    """Every tensor inside `value`, in ``flatten``'s order (without building paths)."""
    if out is None:
        out = []
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        if depth <= 8:
            for v in value:
                if isinstance(v, torch.Tensor):
                    out.append(v)
                elif not isinstance(v, _SCALARS):
                    tensors(v, out, depth + 1)
    elif isinstance(value, dict):
        if depth <= 8:
            for v in value.values():
                if isinstance(v, torch.Tensor):
                    out.append(v)
                elif not isinstance(v, _SCALARS):
                    tensors(v, out, depth + 1)
    elif not isinstance(value, _SCALARS) and depth <= 8 and dataclasses.is_dataclass(value) \
            and not isinstance(value, type):
        for f in dataclasses.fields(value):
            tensors(getattr(value, f.name, None), out, depth + 1)
    return out


def _holds_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor) or (not isinstance(v, _SCALARS) and bool(tensors(v)))


def shape(t: torch.Tensor) -> List[int]:
    return list(map(int, t.shape))


_DTYPE_NAMES: Dict[Any, str] = {}


def dtype(t: torch.Tensor) -> str:
    d = t.dtype
    name = _DTYPE_NAMES.get(d)
    if name is None:
        name = _DTYPE_NAMES[d] = str(d).replace("torch.", "")
    return name


def json_safe(v: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a simple config value, or ``SKIP``."""
    t = type(v)
    if t is int or t is bool or v is None:  # the usual values first (no ABC checks)
        return v
    if t is tuple and depth < 2 and len(v) <= 32 and all(type(x) is int for x in v):
        return list(v)
    if t is float:
        return v if math.isfinite(v) else str(v)
    if t is slice or v is Ellipsis or t in _SKIPPED_TYPES:
        return SKIP
    if t is torch.dtype:
        return str(v)
    if isinstance(v, bool):
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
            return SKIP
        items = [json_safe(x, depth + 1) for x in v]
        return SKIP if any(x is SKIP for x in items) else items
    if isinstance(v, dict):
        if depth >= 2 or len(v) > 32 or not all(isinstance(k, str) for k in v):
            return SKIP
        items = {k: json_safe(x, depth + 1) for k, x in v.items()}
        return SKIP if any(x is SKIP for x in items.values()) else items
    if inspect.isfunction(v) or inspect.isbuiltin(v):
        return getattr(v, "__name__", SKIP)
    if len(_SKIPPED_TYPES) < 1000 and getattr(v, "__class__", None) is t:
        _SKIPPED_TYPES.add(t)  # every check above depends on the type alone: skip it at once
    return SKIP


# types json_safe skipped (a model config object, a module, ...): answered without the checks
_SKIPPED_TYPES: set = set()
# what every nn.Module holds (hook dicts, slots, `training`): never a constructor argument
_MODULE_ATTRS = frozenset(vars(nn.Module())) | {"training", "dump_patches"}


def module_config(m: nn.Module, hf_memo: Optional[Dict[Any, Dict[str, Any]]] = None
                  ) -> Dict[str, Any]:
    """Public simple attributes (in/out channels or features, kernel_size, stride, padding, ...);
    `hf_memo`: ``_hf_config``'s answers for one pass over a model's modules (the layers of a
    Hugging Face model share one config object)."""
    cfg: Dict[str, Any] = {}
    for k, v in vars(m).items():
        if k in _MODULE_ATTRS or k.startswith("_") or isinstance(v, torch.Tensor):
            continue
        sv = json_safe(v)
        if sv is not SKIP:
            cfg[k] = sv
        if len(cfg) >= 40:
            break
    params = m._parameters
    if "bias" in params and "bias" not in cfg:
        cfg["bias"] = params["bias"] is not None
    cfg.update({k: v for k, v in _hf_config(m, hf_memo).items() if k not in cfg})
    return cfg


# What a Hugging Face attention / MLP module is built from (its model config holds them).
_HF_KEYS = {
    "attention": (("num_attention_heads", "num_heads"), ("num_key_value_heads", None),
                  ("head_dim", None), ("hidden_size", None), ("attention_bias", None),
                  ("sliding_window", None)),
    "mlp": (("hidden_size", None), ("intermediate_size", None), ("hidden_act", None),
            ("mlp_bias", None)),
}


def _hf_config(m: nn.Module, memo: Optional[Dict[Any, Dict[str, Any]]] = None
               ) -> Dict[str, Any]:
    """Constructor arguments of a Hugging Face attention or MLP module that live in its model
    ``config`` rather than its attributes (``LlamaAttention``: num_heads, num_key_value_heads,
    head_dim, ...). `memo`: answers by (config object, kind) within one pass over a model."""
    config = vars(m).get("config")
    if config is None:
        return {}
    cls = type(m).__name__.lower()
    kind = "attention" if "attention" in cls else "mlp" if (
        "mlp" in cls or "feedforward" in cls) else None
    if memo is None:
        return _hf_config_values(config, kind)
    key = (id(config), kind)
    found = memo.get(key)
    if found is None or found[0] is not config:
        found = memo[key] = (config, _hf_config_values(config, kind))
    return found[1]


def _hf_config_values(config: Any, kind: Optional[str]) -> Dict[str, Any]:
    """The `kind` ("attention" / "mlp") keys of ``_HF_KEYS`` a Hugging Face config holds."""
    if not hasattr(config, "to_dict"):
        return {}
    out: Dict[str, Any] = {}
    for key, name in _HF_KEYS.get(kind, ()):
        v = json_safe(getattr(config, key, None))
        if v is not None and v is not SKIP:
            out[name or key] = v
    if kind == "attention" and "head_dim" not in out and "num_heads" in out \
            and isinstance(out.get("hidden_size"), int):
        out["head_dim"] = out["hidden_size"] // out["num_heads"]
    return out


def op_config(args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Non-tensor arguments of a functional op (e.g. ``flatten``'s start_dim); ``{}`` at once
    for a call of tensors only (``x + y``, ``torch.cat([a, b])``)."""
    if not kwargs and all(type(a) is torch.Tensor or type(a) is nn.Parameter or (
            type(a) in (list, tuple) and a and all(type(x) is torch.Tensor for x in a))
            for a in args):
        return {}
    cfg: Dict[str, Any] = {}
    pos = []
    for a in args:
        if _holds_tensor(a):
            pos.append("<tensor>")
        else:
            sa = json_safe(a)
            pos.append(None if sa is SKIP else sa)
    if any(p != "<tensor>" for p in pos):
        cfg["args"] = pos
    for k, v in (kwargs or {}).items():
        if str(k).startswith("_") or _holds_tensor(v):
            continue
        sv = json_safe(v)
        if sv is not SKIP:
            cfg[str(k)] = sv
    return cfg


# ---------------------------------------------------------------------------------------------
# inputs

def call_args(input_to_model: Any) -> Tuple[tuple, Dict[str, Any]]:
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
    if not tensors((args, kwargs)):
        raise ExtractionError("input_to_model holds no tensor")
    return args, kwargs


def unique_inputs(named: Sequence[Tuple[str, torch.Tensor]],
                  taken: set) -> List[Tuple[str, torch.Tensor]]:
    """(node id, tensor) per input tensor: the same tensor passed twice is one input; an empty
    name becomes ``input``; a name taken by a module gets ``_input`` appended."""
    seen, out = set(), []
    for name, t in named:
        if id(t) in seen:
            continue
        seen.add(id(t))
        name = name or "input"
        while name in taken:
            name = name + "_input"
        out.append((name, t))
    return out


# ---------------------------------------------------------------------------------------------
# the recorder

@dataclasses.dataclass
class Call:
    inputs: List[List[int]]
    outputs: List[List[int]]
    dtype: Optional[str]
    out_bytes: Optional[int] = None  # every output tensor of the call, whole batch
    macs: Optional[int] = None  # the functions it ran (whole batch); None: unknown
    macs_reason: Optional[str] = None
    recognized: bool = False  # some function with a MACs rule ran


@dataclasses.dataclass
class Op:
    id: str
    class_name: str
    parent: Optional[str]
    inputs: List[List[int]]
    outputs: List[List[int]]
    dtype: Optional[str]
    config: Dict[str, Any]
    out_bytes: Optional[int] = None
    macs: Optional[int] = None  # whole batch; None: unknown (macs_reason says why)
    macs_reason: Optional[str] = None


def nbytes(ts: Sequence[torch.Tensor]) -> Optional[int]:
    """Bytes of tensors from their shapes and dtypes (nothing read: meta tensors are fine);
    None when a tensor cannot say (e.g. a nested tensor)."""
    try:
        return int(sum(t.numel() * t.element_size() for t in ts))
    except Exception:  # noqa: BLE001 - an exotic tensor type: unknown, never a crash
        return None


def op_macs(name: str, args: Any, kwargs: Any, output: Any) -> Tuple[Optional[int], Optional[str]]:
    """(MACs of one functional call, whole batch, or None; why None)."""
    try:
        return torch_macs.function_macs(name, args, kwargs, output)[0], None
    except torch_macs.MacsUnknown as e:
        return None, str(e)


class Recorder:
    """Tensor-identity bookkeeping: who produced each tensor, which calls and ops happened."""

    def __init__(self, taken: set):
        self.producers: Dict[int, Tuple[Any, str]] = {}
        self.calls: Dict[str, List[Call]] = {}
        self.ops: List[Op] = []
        self.edges: Dict[Tuple[str, str], Optional[List[int]]] = {}
        self.taken = set(taken)
        self.counters: Dict[str, int] = {}
        self.order: Dict[str, int] = {}  # node id -> when it first ran (leaf modules, ops)
        # id(parameter) -> the first op node that took it as an argument (a module's weight
        # used directly by its parent's forward, as in F.linear(x, self.qkv.weight))
        self.weight_users: Dict[int, str] = {}

    def track(self, t: torch.Tensor, node_id: str) -> None:
        self.producers[id(t)] = (weakref.ref(t), node_id)

    def producer(self, t: torch.Tensor) -> Optional[str]:
        e = self.producers.get(id(t))
        if e is not None and e[0]() is t:
            return e[1]
        return None

    def link(self, ins: List[torch.Tensor], target: str,
             shapes: Optional[List[List[int]]] = None,
             sources: Optional[List[Optional[str]]] = None) -> None:
        """An edge from the producer of each of `ins` to `target` (their `shapes` and
        `sources`, when the caller has them already)."""
        edges = self.edges
        for i, t in enumerate(ins):
            src = self.producer(t) if sources is None else sources[i]
            if src is not None and (src, target) not in edges:
                edges[(src, target)] = shape(t) if shapes is None else list(shapes[i])

    def new_id(self, base: str) -> str:
        n = self.counters.get(base, 0)
        while True:
            cand = base if n == 0 else "%s_%d" % (base, n)
            n += 1
            if cand not in self.taken:
                break
        self.counters[base] = n
        self.taken.add(cand)
        return cand

    def module_call(self, name: str, args: Any, kwargs: Any, output: Any, leaf: bool,
                    counter: Optional[torch_macs.Counter] = None) -> None:
        ins = tensors(args)
        if kwargs:
            tensors(kwargs, ins)
        outs = [output] if type(output) is torch.Tensor else tensors(output)
        in_shapes = [shape(t) for t in ins]
        call = Call(in_shapes, [shape(t) for t in outs],
                    dtype(outs[0]) if outs else None, nbytes(outs))
        if counter is not None:
            call.recognized = counter.recognized
            call.macs = None if counter.unknown else counter.macs
            call.macs_reason = counter.unknown
        self.calls.setdefault(name, []).append(call)
        if leaf:
            self.order.setdefault(name, len(self.order))
            self.link(ins, name, in_shapes)
            for t in outs:
                self.track(t, name)

    def op_call(self, func: Any, parent: Optional[str], args: Any, kwargs: Any,
                output: Any, macs: Any = "count") -> None:
        """Record a functional op; `macs` (whole batch): "count" = from the function's rule,
        else (int | None, reason)."""
        if type(output) is torch.Tensor:
            outs = [output]
        else:
            outs = tensors(output)
            if not outs:
                return  # size(), dim(), shape, item(), ...
        ins = tensors(args)
        if kwargs:
            tensors(kwargs, ins)
        name = op_name(func)
        figure, reason = op_macs(name, args, kwargs, output) if macs == "count" else macs
        sources = [self.producer(t) for t in ins]
        if figure == 0 and not any(src is not None for src in sources):
            return  # not part of the data flow from the inputs (e.g. torch.arange, a param)
        if figure == 0 and not isinstance(output, torch.Tensor):
            in_ids = {id(t) for t in ins}
            if all(id(t) in in_ids for t in outs):
                return  # packs its inputs into a tuple/dict/dataclass: plumbing, not an op
        node_id = self.new_id(name)
        self.order[node_id] = len(self.order)
        in_shapes = [shape(t) for t in ins]
        self.ops.append(Op(node_id, name, parent, in_shapes,
                           [shape(t) for t in outs], dtype(outs[0]), op_config(args, kwargs),
                           nbytes(outs), figure, reason))
        self.link(ins, node_id, in_shapes, sources)
        for t in outs:
            self.track(t, node_id)
        for a in (*args, *kwargs.values()) if kwargs else args:
            if type(a) is nn.Parameter:
                self.weight_users.setdefault(id(a), node_id)


def weights_used_by(rec: Recorder, names: Dict[str, nn.Module]
                    ) -> Dict[str, Tuple[str, Optional[str]]]:
    """{qualified name: (op node id, the module it ran in)} of the modules never called whose
    every parameter an op took as an argument (the op that took the first): their parent's
    forward uses their weights directly (``F.linear(x, self.qkv.weight)`` in Swin's
    attention)."""
    if not rec.weight_users:
        return {}
    parents = {op.id: op.parent for op in rec.ops}
    out = {}
    for q, m in names.items():
        if q in rec.calls:
            continue
        users = [rec.weight_users.get(id(p)) for p in m._parameters.values() if p is not None]
        if users and all(users):
            out[q] = (users[0], parents.get(users[0]))
    return out


def prune_dead_ops(rec: Recorder, outputs: List[str]) -> int:
    """Drop functional ops whose results reach no module, op or model output (e.g. the
    ``x.sum() > 0`` of an ``if``): they fed Python control flow, not the data flow."""
    ops = {op.id for op in rec.ops}
    work = {op.id for op in rec.ops if op.macs != 0}  # its MACs count, whatever it feeds
    keep_out = set(outputs)
    dropped = 0
    while True:
        sources = {s for s, _ in rec.edges}
        dead = {o for o in ops if o not in sources and o not in keep_out and o not in work}
        if not dead:
            return dropped
        dropped += len(dead)
        ops -= dead
        rec.ops = [op for op in rec.ops if op.id not in dead]
        rec.edges = {k: v for k, v in rec.edges.items() if k[1] not in dead}


def model_outputs(rec: Recorder, output: Any) -> Tuple[List[str], List[Dict[str, Any]]]:
    """The producers of the model's output tensors, and ``output_names`` (path -> node, shape)."""
    outputs: List[str] = []
    info = []
    for path, t in flatten(output):
        src = rec.producer(t)
        if src is not None and src not in outputs:
            outputs.append(src)
        info.append({"name": path or "output", "node": src, "shape": shape(t)})
    return outputs, info


# ---------------------------------------------------------------------------------------------
# modules and the document

class Param(NamedTuple):
    name: str  # relative to the module that holds it
    shape: List[int]
    trainable: bool
    dtype: Optional[str] = None
    path: Optional[str] = None  # the model-wide name: a weight shared by two modules is one


@dataclasses.dataclass
class ModuleInfo:
    """One module, framework-neutral: what the builder needs of it."""
    qualname: str
    class_name: str
    params: List[Param] = dataclasses.field(default_factory=list)  # its own
    buffers: List[Dict[str, Any]] = dataclasses.field(default_factory=list)  # its own
    config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    leaf: bool = True
    class_known: bool = True
    counts: Optional[Tuple[int, int]] = None  # (trainable, non_trainable) of its subtree
    activation: Optional[str] = None
    holder: bool = False  # ModuleList / ModuleDict: holds modules, no forward of its own
    note: Optional[str] = None  # e.g. its parameters were created during the forward


def param_counts(params) -> Tuple[int, int]:
    trainable = non_trainable = 0
    for p in params:
        if isinstance(p, nn.parameter.UninitializedParameter):
            continue
        if p.requires_grad:
            trainable += p.numel()
        else:
            non_trainable += p.numel()
    return int(trainable), int(non_trainable)


def is_leaf(m: nn.Module) -> bool:
    """A module whose internals are not shown: no children, or MultiheadAttention (which uses
    its ``out_proj`` child's weights directly instead of calling it)."""
    return next(m.children(), None) is None or isinstance(m, nn.MultiheadAttention)


def parameter_paths(every: List[Tuple[str, nn.Parameter]]) -> Dict[int, str]:
    """{id(parameter): its model-wide name} from ``named_parameters(remove_duplicate=False)``:
    a shared parameter keeps its first name, as ``named_parameters()`` gives it."""
    paths: Dict[int, str] = {}
    for k, p in every:
        if id(p) not in paths:
            paths[id(p)] = k
    return paths


def subtree_counts(model: nn.Module, every: Optional[List[Tuple[str, nn.Parameter]]] = None
                   ) -> Optional[Dict[str, Tuple[int, int]]]:
    """{qualified name: (trainable, non_trainable)} of every module's subtree (modules holding
    no parameter may be absent), each module's own parameters summed into its ancestors, or
    None when a parameter or module is shared (then each module's own ``parameters()``, which
    counts a shared one once, is the rule). `every`: the model's
    ``named_parameters(remove_duplicate=False)``, when the caller has it."""
    if every is None:
        every = list(model.named_parameters(remove_duplicate=False))
    if len({id(p) for _, p in every}) != len(every):
        return None
    out: Dict[str, List[int]] = {}
    # a module reached by two names holds no parameter (checked above): it adds 0 twice
    for q, m in reversed(list(model.named_modules(remove_duplicate=False))):  # children first
        c = out.get(q)
        if c is None:
            c = out[q] = [0, 0]
        for p in m._parameters.values():
            if p is None or isinstance(p, nn.parameter.UninitializedParameter):
                continue
            c[0 if p.requires_grad else 1] += p.numel()
        if q:
            parent = q.rpartition(".")[0]
            pc = out.get(parent)
            if pc is None:
                pc = out[parent] = [0, 0]
            pc[0] += c[0]
            pc[1] += c[1]
    return {q: (int(c[0]), int(c[1])) for q, c in out.items()}


def module_info(q: str, m: nn.Module, paths: Optional[Dict[int, str]] = None,
                counts: Optional[Tuple[int, int]] = None,
                hf_memo: Optional[Dict[Any, Any]] = None) -> ModuleInfo:
    """The ModuleInfo of a live module (`paths`: id(parameter) -> its model-wide name;
    `counts`: its subtree's parameter counts when known, see ``subtree_counts``; `hf_memo`: see
    ``module_config``)."""
    cls = type(m).__name__
    prefix = q + "." if q else ""
    return ModuleInfo(
        qualname=q, class_name=cls,
        params=[Param(k, shape(p), bool(p.requires_grad), dtype(p),
                      (paths or {}).get(id(p), prefix + k))
                for k, p in m._parameters.items()
                if p is not None and not isinstance(p, nn.parameter.UninitializedParameter)],
        buffers=[{"name": k, "shape": shape(b), "dtype": dtype(b),
                  "persistent": k not in m._non_persistent_buffers_set}
                 for k, b in m._buffers.items() if b is not None],
        config=module_config(m, hf_memo), leaf=is_leaf(m),
        counts=counts if counts is not None else param_counts(m.parameters()),
        activation=ACTIVATIONS.get(cls) if isinstance(m, ACTIVATION_CLASSES) else None,
        holder=isinstance(m, (nn.ModuleList, nn.ModuleDict)))


def _descendants(modules: Dict[str, ModuleInfo]) -> Dict[str, List[str]]:
    """Every module's descendants (qualified names), in one pass over the ancestors of each."""
    out: Dict[str, List[str]] = {q: [] for q in modules}
    for o in modules:
        parts = o.split(".")
        for i in range(1, len(parts)):
            a = ".".join(parts[:i])
            if a in out:
                out[a].append(o)
    return out


def _subtree_params(modules: Dict[str, ModuleInfo], q: str, below: List[str]) -> List[Param]:
    out = list(modules[q].params)
    for o in below:
        prefix = o[len(q) + 1:] + "."
        out.extend(p._replace(name=prefix + p.name) for p in modules[o].params)
    return out


# ---------------------------------------------------------------------------------------------
# MACs and memory per node

_HF_BATCH_INPUTS = ("input_ids", "inputs_embeds", "pixel_values", "input_values",
                    "input_features", "decoder_input_ids")


def example_batch(inputs: Sequence[Tuple[str, torch.Tensor]]) -> int:
    """The example batch of an extraction: the first dimension of the first input tensor of
    rank >= 2 (Hugging Face names first: ``input_ids``, ``inputs_embeds``, ``pixel_values``,
    ``input_values``, ``input_features``, ``decoder_input_ids``); 1 when every input has rank
    0 or 1 (an unbatched example, e.g. ``nn.Linear(8, 64)`` on a tensor of shape [8]). A list
    of unbatched images: ``_image_list_batch``."""
    by_name = dict(inputs)
    for key in _HF_BATCH_INPUTS:
        t = by_name.get(key)
        if t is not None and t.dim() >= 1:
            return max(int(t.shape[0]), 1)
    for _, t in inputs:
        if t.dim() >= 2:
            return max(int(t.shape[0]), 1)
    return 1


def _image_list_batch(inputs: Sequence[Tuple[str, torch.Tensor]], rec: Recorder, guess: int,
                      extraction: Dict[str, Any]) -> int:
    """The example batch of a model called with a list of unbatched images (torchvision's
    detection and segmentation models take ``[Tensor[C, H, W], ...]``): when the first input
    of rank >= 2 is an element of a list or tuple argument whose elements are all [C, H, W],
    and a layer or op ran on [N, C, H', W'] with N the number of images, the batch is N (not
    the first input's C). Otherwise `guess`."""
    first = next(((n, t) for n, t in inputs if t.dim() >= 2), None)
    if first is None or "." not in first[0]:
        return guess
    prefix = first[0].rsplit(".", 1)[0] + "."
    members = [t for n, t in inputs if n.startswith(prefix) and n[len(prefix):].isdigit()]
    if not members or any(t.dim() != 3 for t in members):
        return guess
    n, c = len(members), int(members[0].shape[0])
    if n == guess or any(int(t.shape[0]) != c for t in members):
        return guess
    batched = [c_.inputs[0] for calls in rec.calls.values() for c_ in calls if c_.inputs] + \
        [op.inputs[0] for op in rec.ops if op.inputs]
    if not any(len(s) == 4 and s[0] == n and s[1] == c for s in batched):
        return guess
    extraction["batch"] = ("the input '%s' is a list of %d unbatched images [C, H, W], batched "
                           "inside the model: per-example figures are divided by %d"
                           % (prefix[:-1], n, n))
    return n


_RECURRENT = {"LSTM", "GRU", "RNN"}
_SEQUENCE_FIRST = _RECURRENT | {"MultiheadAttention"}


def _sequence_first_batch(modules: Dict[str, ModuleInfo], rec: Recorder, guess: int,
                          extraction: Dict[str, Any]) -> int:
    """Say when the example batch is a guess that a layer contradicts: the first recurrent
    layer or MultiheadAttention with ``batch_first=False`` that ran on a batched (3-D) input
    holds the batch in its dimension 1, and a recurrent layer that ran on a PackedSequence
    holds it in dimension 1 of its final state. When that differs from `guess` (the first dimension of
    the input), the extraction says so (``batch``) and one warning names the module and
    ``batch_size=``; `guess` stays the batch (the documented rule, the same for a saved
    program that does not know ``batch_first``)."""
    first = None
    for q, m in modules.items():
        calls = rec.calls.get(q)
        if m.class_name not in _SEQUENCE_FIRST or not calls or not calls[0].inputs:
            continue
        ins, outs = calls[0].inputs, calls[0].outputs
        if m.config.get("batch_first") is False and len(ins[0]) == 3:
            found = (int(ins[0][1]), "batch_first=False")
        elif m.class_name in _RECURRENT and len(ins[0]) == 2 and outs and len(outs[-1]) == 3:
            # a PackedSequence (its data is 2-D): the final state [layers, batch, hidden]
            found = (int(outs[-1][1]), "on a packed sequence")
        else:
            continue
        key = rec.order.get(q, len(rec.order))
        if first is None or key < first[0]:
            first = (key, q, m.class_name) + found
    if first is None or first[3] == guess:
        return guess
    _, q, cls, batch, how = first
    note = ("per-example figures are divided by %d, the first dimension of the input, but '%s' "
            "(%s, %s) has %d in its batch dimension: pass batch_size=%d if that is the batch"
            % (guess, q, cls, how, batch, batch))
    extraction["batch"] = note
    warnings.warn("tensorboard-archviz: " + note, RuntimeWarning, stacklevel=4)
    return guess


def _per_example(total: int, batch: int) -> int:
    return (int(total) + batch // 2) // batch


@dataclasses.dataclass
class _Figures:
    """A module node's figures, whole batch; `macs` None: unknown (`reason`)."""
    macs: Optional[int] = 0
    reason: Optional[str] = None
    by_child: Dict[str, int] = dataclasses.field(default_factory=dict)  # weights used by parent


def _leaf_figures(m: ModuleInfo, sub: List[Param], calls: List[Call]) -> _Figures:
    """MACs of a leaf's calls: what its forward ran (the operations counted during the call),
    else the layer's rule by class (torch_macs.module_macs: a saved program's leaf whose
    operations were not seen). MultiheadAttention's out-projection (its ``out_proj`` child's
    weights, used directly) is split off by the rule."""
    fig = _Figures()
    shapes = {p.name: list(p.shape) for p in sub}
    for c in calls:
        rule = torch_macs.module_macs(m.class_name, shapes, c.inputs, c.outputs)
        if c.macs is None and c.macs_reason:
            fig.macs, fig.reason = None, "%s: %s" % (m.class_name, c.macs_reason)
            continue
        if c.recognized and c.macs is not None:
            own, child = c.macs, min(rule[1], c.macs) if rule is not None else 0
            own -= child
        elif rule is not None:
            own, child = rule
        elif any(len(p.shape) >= 2 for p in sub):
            fig.macs = None
            fig.reason = ("%s: its forward ran no operation with a MACs rule (matrix product, "
                          "convolution, attention, recurrence, lookup), though it holds a weight "
                          "matrix" % m.class_name)
            continue
        else:
            own, child = c.macs or 0, 0
        fig.macs = None if fig.macs is None else fig.macs + own
        if child:
            fig.by_child["out_proj"] = fig.by_child.get("out_proj", 0) + child
    return fig


def _memory(params: List[Param], out_bytes: Optional[int], batch: int) -> Dict[str, Any]:
    pb = 0
    for p in params:
        size = totals.itemsize(p.dtype)
        pb += product(p.shape) * (size or 4)
    return {"params_bytes": int(pb),
            "output_bytes": None if out_bytes is None else _per_example(out_bytes, batch)}


def _input_nodes(inputs, batch: int) -> List[schema.Node]:
    return [schema.Node(id=n, name=n, class_name="Input", parent=None, input_shapes=[shape(t)],
                        output_shapes=[shape(t)], dtype=dtype(t),
                        is_input=True, memory=_memory([], nbytes([t]), batch))
            for n, t in inputs]


def _module_node(m: ModuleInfo, calls: List[Call], counts: Tuple[int, int]) -> schema.Node:
    q = m.qualname
    fields: Dict[str, Any] = {"calls": len(calls), "is_container": not m.leaf}
    if m.params:
        fields["weights"] = [{"name": p.name, "shape": list(p.shape),
                              "trainable": bool(p.trainable), "dtype": p.dtype,
                              "path": p.path or (q + "." + p.name)} for p in m.params]
    if m.buffers:
        fields["buffers"] = [dict(b) for b in m.buffers]
    if not calls:
        fields["reason"] = ("holds modules, has no forward of its own" if m.holder
                            else "not called during the forward pass")
    elif m.note:
        fields["reason"] = m.note
    if not m.class_known:
        fields["class_known"] = False
    cfg = dict(m.config)
    if "config_source" in cfg:
        fields["config_source"] = cfg.pop("config_source")
    return schema.Node(
        id=q, name=q.rsplit(".", 1)[-1], class_name=m.class_name,
        parent=q.rsplit(".", 1)[0] if "." in q else None,
        input_shapes=[s for c in calls for s in c.inputs] if calls else None,
        output_shapes=[s for c in calls for s in c.outputs] if calls else None,
        dtype=calls[0].dtype if calls else None,
        params={"trainable": int(counts[0]), "non_trainable": int(counts[1])},
        activation=m.activation, config=cfg, macs=None, **fields)


def _set_macs(node: schema.Node, macs: Optional[int], reason: Optional[str], batch: int,
              key: str = "macs") -> None:
    value = None if macs is None else _per_example(macs, batch)
    if key == "macs":
        node.macs = value
    else:
        setattr(node, key, value)
    if macs is None and reason:
        node.macs_reason = reason


def _module_nodes(modules: Dict[str, ModuleInfo], rec: Recorder,
                  containers: Dict[str, List[Call]], batch: int,
                  stopped: Optional[str],
                  weights_used: Optional[Dict[str, Tuple[str, Optional[str]]]] = None
                  ) -> Dict[str, schema.Node]:
    out: Dict[str, schema.Node] = {}
    used_by: Dict[str, Tuple[str, int]] = {}
    below = _descendants(modules)
    for q, m in modules.items():
        calls = rec.calls.get(q) or containers.get(q) or []
        # a leaf's figures and a count without `m.counts` need its subtree's parameters
        sub = _subtree_params(modules, q, below[q]) if m.leaf or m.counts is None else []
        counts = m.counts or (sum(product(p.shape) for p in sub if p.trainable),
                              sum(product(p.shape) for p in sub if not p.trainable))
        node = out[q] = _module_node(m, calls, counts)
        out_bytes = sum(c.out_bytes or 0 for c in calls) if calls else None
        node.memory = _memory(m.params if not m.leaf else sub, out_bytes, batch)
        if not calls and stopped:  # a partial run: unknown, not "not called"
            node.calls, node.reason = None, stopped
            if m.leaf:
                node.macs_reason = stopped
            continue
        if not calls:
            if q in used_by:
                parent, child_macs = used_by[q]
                node.reason = ("used by its parent '%s', which uses its weights "
                                        "directly instead of calling it" % parent)
                node.used_by = parent
                _set_macs(node, child_macs, None, batch)
            elif weights_used and q in weights_used:
                op, where = weights_used[q]
                node.reason = ("not called as a module: its weights are used directly by the "
                               "operation '%s' in %s" % (op, "'%s'" % where if where else
                                                         "the model's forward"))
                node.used_by = op
                if m.leaf:
                    node.macs_reason = node.reason
            elif m.leaf:
                node.macs_reason = node.reason
            continue
        if not m.leaf:
            continue  # fill_totals sums the nodes inside
        fig = _leaf_figures(m, sub, calls)
        children = below[q]
        if children:  # MultiheadAttention: a leaf that has child modules
            for o in children:
                used_by[o] = (q, fig.by_child.get(o[len(q) + 1:], 0))
            node.memory["params_bytes"] = _memory(m.params, None, batch)["params_bytes"]
            _set_macs(node, fig.macs, fig.reason, batch, key="self_macs")
        else:
            _set_macs(node, fig.macs, fig.reason, batch)
    return out


def _op_node(op: Op, batch: int) -> schema.Node:
    node = schema.Node(
        id=op.id, name=op.id, class_name=op.class_name, parent=op.parent,
        input_shapes=op.inputs, output_shapes=op.outputs, dtype=op.dtype,
        activation=op.class_name if op.class_name in FUNCTIONAL_ACTIVATIONS else None,
        config=op.config, macs=None, is_function=True)
    _set_macs(node, op.macs, op.macs_reason, batch)
    node.memory = _memory([], op.out_bytes, batch)
    return node


def _first_run(n: schema.Node, kids: Dict[Optional[str], List[schema.Node]],
               ran: Dict[str, int], first: Dict[str, Optional[int]]) -> Optional[int]:
    """When `n` or the first node inside it ran (into `first`; recursion depth = module
    nesting). A module-level function, not a closure: a recursive closure is a reference cycle
    that would keep every node alive until the cyclic collector runs."""
    keys = [_first_run(c, kids, ran, first) for c in kids.get(n.id, [])]
    keys = [k for k in keys if k is not None] + ([ran[n.id]] if n.id in ran else [])
    first[n.id] = min(keys) if keys else None
    return first[n.id]


def execution_order(nodes: List[schema.Node], ran: Dict[str, int]) -> List[schema.Node]:
    """Module and op nodes in the order they ran: a leaf or op where it first ran, a container
    right before the first node inside it, a module that never ran right after the modules
    listed before it (``named_modules()`` order) that did."""
    kids: Dict[Optional[str], List[schema.Node]] = {}
    for n in nodes:
        kids.setdefault(n.parent, []).append(n)
    first: Dict[str, Optional[int]] = {}
    for n in kids.get(None, []):
        _first_run(n, kids, ran, first)
    depth = {n.id: n.id.count(".") for n in nodes}
    keyed, latest = [], -1
    for idx, n in enumerate(nodes):
        k = first.get(n.id)
        if k is not None:
            latest = max(latest, k)
            keyed.append(((k, 0, depth[n.id], idx), n))
        else:
            keyed.append(((latest, 1, depth[n.id], idx), n))
    return [n for _, n in sorted(keyed, key=lambda kn: kn[0])]


def build_architecture(root_class: str, modules: Dict[str, ModuleInfo], inputs, rec: Recorder,
                       containers: Dict[str, List[Call]], output: Any,
                       extraction: Dict[str, Any], counts: Tuple[int, int],
                       buffer_numel: int, stopped: Optional[str] = None,
                       batch_size: Optional[int] = None,
                       own: Optional[ModuleInfo] = None,
                       weights_used: Optional[Dict[str, Tuple[str, Optional[str]]]] = None
                       ) -> schema.Architecture:
    """The Architecture of one run: `modules` in ``named_modules()`` order (root excluded),
    `inputs` [(node id, tensor)], `rec` the recorded run, `containers` the calls of modules that
    are not leaves where `rec` has none, `output` the model's output, `counts` the model's
    (trainable, non_trainable) parameter counts. Container sums and model totals:
    ``totals.fill_totals``. `stopped`: the run did not finish (why): modules without calls
    are "not reached", their figures unknown. `batch_size`: the example batch when the rule of
    ``example_batch`` does not find it (e.g. a sequence-first input). `own`: the root module's
    own parameters and buffers (held outside every node, e.g. ViT's ``cls_token``).
    `weights_used`: modules never called whose every weight an op took directly (module ->
    (that op's node id, the module it ran in); ``weights_used_by``)."""
    outputs, out_info = model_outputs(rec, output)
    dropped = prune_dead_ops(rec, outputs)
    if dropped:
        extraction["dropped_ops"] = dropped
    batch = batch_size or example_batch(inputs)
    if batch_size is None:
        batch = _image_list_batch(inputs, rec, batch, extraction)
        batch = _sequence_first_batch(modules, rec, batch, extraction)
    nodes = _input_nodes(inputs, batch)
    nodes.extend(execution_order(list(_module_nodes(modules, rec, containers, batch,
                                                    stopped, weights_used).values())
                                 + [_op_node(op, batch) for op in rec.ops], rec.order))
    edges = [schema.Edge(source=s, target=t, shape=sh) for (s, t), sh in rec.edges.items()]
    tr, ntr = counts
    info = schema.ModelInfo(
        name=root_class, class_name=root_class,
        total_params=int(tr + ntr), trainable_params=int(tr), non_trainable_params=int(ntr),
        macs_convention=schema.MACS_CONVENTION, batch_size=batch,
        output_names=out_info, buffers=int(buffer_numel))
    if own is not None and own.params:
        info.self_weights = _module_node(own, [], own.counts).weights
    if own is not None and own.buffers:
        info.self_buffers = [dict(b) for b in own.buffers]
    arch = schema.Architecture(
        framework="torch", framework_version=str(torch.__version__), model=info,
        inputs=[n for n, _ in inputs], outputs=outputs, nodes=nodes, edges=edges,
        extraction=extraction)
    totals.fill_totals(arch)
    return arch
