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
import weakref
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from tensorboard_archviz import schema
from tensorboard_archviz.util import product

__all__ = [
    "ACTIVATIONS", "FUNCTIONAL_ACTIVATIONS", "Call", "ExtractionError", "ForwardFailed",
    "MethodName", "ModuleInfo", "Op", "Recorder", "SKIP", "build_architecture", "call_args",
    "dtype", "flatten", "is_leaf", "json_safe", "module_config", "module_info", "model_outputs",
    "op_name", "param_counts", "prune_dead_ops", "shape", "tensors", "unique_inputs", "unwrap",
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


def op_name(func: Any) -> str:
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


def tensors(value: Any) -> List[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for _, t in flatten(value)]


def shape(t: torch.Tensor) -> List[int]:
    return [int(d) for d in t.shape]


def dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def json_safe(v: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of a simple config value, or ``SKIP``."""
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
    return SKIP


def module_config(m: nn.Module) -> Dict[str, Any]:
    """Public simple attributes (in/out channels or features, kernel_size, stride, padding, ...)."""
    cfg: Dict[str, Any] = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k in ("training", "dump_patches") or isinstance(v, torch.Tensor):
            continue
        sv = json_safe(v)
        if sv is not SKIP:
            cfg[k] = sv
        if len(cfg) >= 40:
            break
    params = m._parameters
    if "bias" in params and "bias" not in cfg:
        cfg["bias"] = params["bias"] is not None
    return cfg


def op_config(args: Sequence[Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Non-tensor arguments of a functional op (e.g. ``flatten``'s start_dim)."""
    cfg: Dict[str, Any] = {}
    pos = []
    for a in args:
        if isinstance(a, torch.Tensor) or tensors(a):
            pos.append("<tensor>")
        else:
            sa = json_safe(a)
            pos.append(None if sa is SKIP else sa)
    if any(p != "<tensor>" for p in pos):
        cfg["args"] = pos
    for k, v in (kwargs or {}).items():
        if str(k).startswith("_") or isinstance(v, torch.Tensor) or tensors(v):
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


@dataclasses.dataclass
class Op:
    id: str
    class_name: str
    parent: Optional[str]
    inputs: List[List[int]]
    outputs: List[List[int]]
    dtype: Optional[str]
    config: Dict[str, Any]


class Recorder:
    """Tensor-identity bookkeeping: who produced each tensor, which calls and ops happened."""

    def __init__(self, taken: set):
        self.producers: Dict[int, Tuple[Any, str]] = {}
        self.calls: Dict[str, List[Call]] = {}
        self.ops: List[Op] = []
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

    def link(self, ins: List[torch.Tensor], target: str) -> None:
        for t in ins:
            src = self.producer(t)
            if src is not None and (src, target) not in self.edges:
                self.edges[(src, target)] = shape(t)

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

    def module_call(self, name: str, args: Any, kwargs: Any, output: Any, leaf: bool) -> None:
        ins = tensors((args, kwargs))
        outs = tensors(output)
        self.calls.setdefault(name, []).append(
            Call([shape(t) for t in ins], [shape(t) for t in outs], dtype(outs[0]) if outs else None))
        if leaf:
            self.link(ins, name)
            for t in outs:
                self.track(t, name)

    def op_call(self, func: Any, parent: Optional[str], args: Any, kwargs: Any,
                output: Any) -> None:
        ins = tensors((args, kwargs))
        if not ins or all(self.producer(t) is None for t in ins):
            return  # not part of the data flow from the inputs (e.g. torch.arange, a param)
        outs = tensors(output)
        if not outs:
            return  # size(), dim(), shape, item(), ...
        if not isinstance(output, torch.Tensor):
            in_ids = {id(t) for t in ins}
            if all(id(t) in in_ids for t in outs):
                return  # packs its inputs into a tuple/dict/dataclass: plumbing, not an op
        name = op_name(func)
        node_id = self.new_id(name)
        self.ops.append(Op(node_id, name, parent, [shape(t) for t in ins],
                           [shape(t) for t in outs], dtype(outs[0]), op_config(args, kwargs)))
        self.link(ins, node_id)
        for t in outs:
            self.track(t, node_id)


def prune_dead_ops(rec: Recorder, outputs: List[str]) -> int:
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

Param = Tuple[str, List[int], bool]  # (name, shape, trainable)


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


def module_info(q: str, m: nn.Module) -> ModuleInfo:
    """The ModuleInfo of a live module."""
    cls = type(m).__name__
    return ModuleInfo(
        qualname=q, class_name=cls,
        params=[(k, shape(p), bool(p.requires_grad)) for k, p in m._parameters.items()
                if p is not None and not isinstance(p, nn.parameter.UninitializedParameter)],
        buffers=[{"name": k, "shape": shape(b), "dtype": dtype(b),
                  "persistent": k not in m._non_persistent_buffers_set}
                 for k, b in m._buffers.items() if b is not None],
        config=module_config(m), leaf=is_leaf(m), counts=param_counts(m.parameters()),
        activation=ACTIVATIONS.get(cls) if isinstance(m, ACTIVATION_CLASSES) else None,
        holder=isinstance(m, (nn.ModuleList, nn.ModuleDict)))


def _subtree_params(modules: Dict[str, ModuleInfo], q: str) -> List[Param]:
    out = []
    for o, m in modules.items():
        if o == q or o.startswith(q + "."):
            prefix = o[len(q) + 1:] + "." if o != q else ""
            out.extend((prefix + name, s, tr) for name, s, tr in m.params)
    return out


def _call_macs(m: ModuleInfo, params: List[Param], out: Optional[List[int]]) -> int:
    """MACs of one call, torchinfo's convention (see extract.torch's docstring)."""
    if out is None:
        return 0
    batch = out[0] if out else 1
    macs = 0
    for name, s, _ in params:
        n = product(s)
        if name in ("weight", "bias"):
            macs += n * batch * (product(out[2:]) if "Conv" in m.class_name else 1)
        elif "weight" in name or "bias" in name:
            macs += n * product(out[:2])
    return int(macs)


def _input_nodes(inputs) -> List[schema.Node]:
    return [schema.Node(id=n, name=n, class_name="Input", parent=None, input_shapes=[shape(t)],
                        output_shapes=[shape(t)], dtype=dtype(t), extra={"is_input": True})
            for n, t in inputs]


def _module_node(m: ModuleInfo, calls: List[Call], own_macs: Optional[int],
                 counts: Tuple[int, int]) -> schema.Node:
    q = m.qualname
    extra: Dict[str, Any] = {"calls": len(calls), "is_container": not m.leaf}
    if m.params:
        extra["weights"] = [{"name": n, "shape": list(s), "trainable": bool(t)}
                            for n, s, t in m.params]
    if m.buffers:
        extra["buffers"] = [dict(b) for b in m.buffers]
    if not calls:
        extra["reason"] = ("holds modules, has no forward of its own" if m.holder
                           else "not called during the forward pass")
    if not m.class_known:
        extra["class_known"] = False
    cfg = dict(m.config)
    if "config_source" in cfg:
        extra["config_source"] = cfg.pop("config_source")
    return schema.Node(
        id=q, name=q.rsplit(".", 1)[-1], class_name=m.class_name,
        parent=q.rsplit(".", 1)[0] if "." in q else None,
        input_shapes=[s for c in calls for s in c.inputs] if calls else None,
        output_shapes=[s for c in calls for s in c.outputs] if calls else None,
        dtype=calls[0].dtype if calls else None,
        params={"trainable": int(counts[0]), "non_trainable": int(counts[1])},
        activation=m.activation, config=cfg, macs=own_macs, extra=extra)


def _op_node(op: Op) -> schema.Node:
    return schema.Node(
        id=op.id, name=op.id, class_name=op.class_name, parent=op.parent,
        input_shapes=op.inputs, output_shapes=op.outputs, dtype=op.dtype,
        activation=op.class_name if op.class_name in FUNCTIONAL_ACTIVATIONS else None,
        config=op.config, macs=None, extra={"is_function": True})


def _batch(inputs) -> Optional[int]:
    for _, t in inputs:
        if t.dim() > 0:
            return int(t.shape[0])
    return None


def build_architecture(root_class: str, modules: Dict[str, ModuleInfo], inputs, rec: Recorder,
                       containers: Dict[str, List[Call]], output: Any,
                       extraction: Dict[str, Any], totals: Tuple[int, int],
                       buffer_numel: int) -> schema.Architecture:
    """The Architecture of one run: `modules` in ``named_modules()`` order (root excluded),
    `inputs` [(node id, tensor)], `rec` the recorded run, `containers` the calls of modules that
    are not leaves where `rec` has none, `output` the model's output, `totals` the model's
    (trainable, non_trainable) parameter counts."""
    outputs, out_info = model_outputs(rec, output)
    dropped = prune_dead_ops(rec, outputs)
    if dropped:
        extraction["dropped_ops"] = dropped
    nodes = _input_nodes(inputs)
    module_nodes: Dict[str, schema.Node] = {}
    own_macs: Dict[str, int] = {}
    for q, m in modules.items():
        calls = rec.calls.get(q) or containers.get(q) or []
        sub = _subtree_params(modules, q) if m.leaf else m.params
        own = sum(_call_macs(m, sub, c.outputs[0] if c.outputs else None)
                  for c in calls) if calls else None
        own_macs[q] = own or 0
        counts = m.counts
        if counts is None:
            every = _subtree_params(modules, q)
            counts = (sum(product(s) for _, s, t in every if t),
                      sum(product(s) for _, s, t in every if not t))
        module_nodes[q] = _module_node(m, calls, own, counts)
    acc = dict(own_macs)  # containers: own + the sum over their subtree
    for q in reversed(list(modules)):
        parent = module_nodes[q].parent
        if parent is not None and parent in acc:
            acc[parent] += acc[q]
    for q, node in module_nodes.items():
        if not modules[q].leaf and (node.macs is not None or acc[q]):
            node.macs = acc[q]
    nodes.extend(module_nodes.values())
    nodes.extend(_op_node(op) for op in rec.ops)
    edges = [schema.Edge(source=s, target=t, shape=sh) for (s, t), sh in rec.edges.items()]
    tr, ntr = totals
    info = schema.ModelInfo(
        name=root_class, class_name=root_class,
        total_params=int(tr + ntr), trainable_params=int(tr), non_trainable_params=int(ntr),
        extra={"macs": int(sum(own_macs.values())),
               "macs_convention": "torchinfo mult-adds, whole batch",
               "batch_size": _batch(inputs), "output_names": out_info,
               "buffers": int(buffer_numel)})
    return schema.Architecture(
        framework="torch", framework_version=str(torch.__version__), model=info,
        inputs=[n for n, _ in inputs], outputs=outputs, nodes=nodes, edges=edges,
        extra={"extraction": extraction})
