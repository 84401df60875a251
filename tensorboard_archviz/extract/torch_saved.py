"""Saved PyTorch programs -> Architecture: ``torch.export`` programs (``.pt2``) and TorchScript.

Neither is an ``nn.Module`` with its submodules any more (``ExportedProgram.module()`` keeps only
the modules that hold parameters and cannot switch to eval mode; a ``ScriptModule`` accepts no
forward hooks), so ``extract_torch`` cannot run on them. Both still record which module every
operation ran in, and this module rebuilds the same document ``extract_torch`` writes for the
original model, from one real run on the example input:

* ``extract_exported_program(program, input_to_model=None)`` — the graph of
  ``program.module()`` is interpreted on the input (the program's own ``example_inputs`` by
  default). Each ATen node's ``nn_module_stack`` names its module and call (``fc@1`` = second
  call), its ``torch_fn`` the Python function it came from (``F.relu`` -> ``relu``, ``x + y`` ->
  ``add``), so module nodes, functional-op nodes, their ids, params, edges and shapes are the
  ones ``extract_torch`` gives. Module order is ``named_modules()`` order
  (``program.module_call_graph``).
* ``extract_torchscript(module, input_to_model)`` — the inlined TorchScript graph, whose nodes
  carry their module hierarchy, is first specialised to the input (every ``if`` replaced by the
  branch this input takes, so module calls inside branches become visible), then run once with
  every intermediate value returned, which gives real shapes. Classes, params, buffers and (for
  scripted, not traced, modules) configs come from the ScriptModule itself.

What differs from ``extract_torch`` on the original model (documented, tested):

* ``config`` of modules: a ``.pt2`` keeps no module attributes; the usual keys of Conv*d,
  Linear, BatchNorm*d, pooling, Flatten, Dropout and ReLU are rebuilt from the ATen arguments and
  weight shapes (``config_source`` = ``"aten"``). A traced TorchScript module keeps only
  whether it has a bias; a scripted one keeps them all. ``config`` of functional ops holds the ATen
  arguments, not the Python call's.
* A module that never ran has ``class_name`` ``"Module"`` in a ``.pt2`` (the program records no
  class for it; ``class_known`` false). Functional ops that run as several ATen ops with no
  Python origin recorded are named after the first ATen op (TorchScript: ``F.dropout2d`` ->
  ``feature_dropout``).
* A tensor passed several times to one module call (``attn(x, x, x)``) is one input of it.
* A bare layer exported alone (``torch.export.export(nn.Linear(8, 4), ...)``) shows as its
  functional op (``linear``), not as a module node named by its class.
* MACs: a leaf of a known torch.nn class (Linear, Conv*, ConvTranspose*, MultiheadAttention,
  LSTM/GRU/RNN and their cells, Bilinear) by its rule from shapes, any other leaf and every
  functional op by the ATen ops it ran (``torch_macs``), so the figures equal ``extract_torch``'s;
  a TorchScript graph does not show the weights a leaf's ATen ops read, so an unknown leaf class
  whose products need them has ``macs`` null with a reason there.
* TorchScript: two back-to-back calls of one leaf module (``m(m(x))``) count as one call, and a
  container's repeated calls are merged; a scripted ``for`` loop that is not unrolled (over a
  range, not a ModuleList) is one node named after its first ATen op.

``arch.extraction`` is ``{"method": "torch.export" | "torchscript", "reason": ...}``.

Running a saved program from a file someone else wrote (the CLI without ``--unsafe``): inside
``without_real_storage()`` every tensor is a fake one (``FakeTensorMode``: shapes and dtypes, no
memory, no values) and every operator the program dispatches must pass ``operator_allowed`` (an
``aten``/``prims`` operator with a meta kernel, a decomposition or a composite kernel; never one
of ``NEVER_RUN`` such as ``aten::from_file``), else it raises ``RefusedOperation`` before the
operator runs. ``operator_guard()`` applies the same allowlist to real tensors (used while a
TorchScript archive is loaded: its ``__setstate__`` methods run then), and
``program_refusal(program)`` checks a ``.pt2`` graph's targets before anything runs. The
documents are the same as on real tensors (tested on the models of tests/test_torch_saved.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from tensorboard_archviz import schema
from tensorboard_archviz.extract import torch_graph as tg
from tensorboard_archviz.extract import torch_macs
from tensorboard_archviz.extract.torch_graph import ExtractionError, ForwardFailed, ModuleInfo
from tensorboard_archviz.util import one_line, product

__all__ = ["extract_exported_program", "extract_torchscript", "NEVER_RUN", "RefusedOperation",
           "operator_allowed", "operator_guard", "without_real_storage", "program_refusal"]


# ---------------------------------------------------------------------------------------------
# running a program nobody vouched for: fake tensors and an operator allowlist

# Operators never run without consent even though they are ATen ones: they open, map or write
# files (``from_file(path, shared=True)`` creates and maps a file writable).
NEVER_RUN = frozenset({"aten::from_file", "aten::_from_file", "aten::save", "aten::_save",
                       "aten::_nnapi_compile"})
# Metadata queries the fake-tensor machinery itself dispatches.
_PRIM_QUERIES = frozenset({"prim::device", "prim::layout", "prim::dtype"})
_SHAPE_KERNELS = ("Meta", "CompositeImplicitAutograd", "CompositeExplicitAutograd",
                  "CompositeExplicitAutogradNonFunctional")
# Higher-order operators whose bodies are graphs of the same program (their operators are checked
# one by one when they run).
# What FakeTensorMode raises when an operator's result depends on tensor values.
_VALUE_ERRORS = frozenset({"DataDependentOutputException", "DynamicOutputShapeException",
                           "GuardOnDataDependentSymNode"})
_GRAPH_HOPS = frozenset({"cond", "while_loop", "map_impl", "wrap_with_set_grad_enabled",
                         "wrap_with_autocast"})


class RefusedOperation(RuntimeError):
    """An operator the allowlist does not let run without consent (``op``: its schema name)."""

    def __init__(self, op: str):
        super().__init__("archviz refused to run %s without consent" % op)
        self.op = op


def operator_allowed(op: Any) -> bool:
    """Whether an ``OpOverload`` may run on a program's tensors without consent: an ``aten`` or
    ``prims`` operator that has a kernel working on shapes alone (meta, composite or a
    decomposition), never one of ``NEVER_RUN``."""
    try:
        name = op.name()
    except Exception:  # noqa: BLE001 - not an operator of the dispatcher
        return False
    if name in _PRIM_QUERIES:
        return True
    if name.split("::", 1)[0] not in ("aten", "prims") or name in NEVER_RUN \
            or name.split(".", 1)[0] in NEVER_RUN:
        return False
    from torch._decomp import decomposition_table

    return op in decomposition_table or any(
        torch._C._dispatch_has_kernel_for_dispatch_key(name, k) for k in _SHAPE_KERNELS)


def _guard_mode():
    from torch.utils._python_dispatch import TorchDispatchMode

    class OperatorGuard(TorchDispatchMode):
        """Every dispatched operator checked before it runs; the first refused one kept, and the
        first one that needed tensor values (``needs_values``: fake tensors have none)."""
        refused: Optional[str] = None
        needs_values: Optional[str] = None

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not operator_allowed(func):
                self.refused = self.refused or func.name()
                raise RefusedOperation(func.name())
            try:
                return func(*args, **(kwargs or {}))
            except Exception as e:
                if type(e).__name__ in _VALUE_ERRORS:
                    self.needs_values = self.needs_values or func.name()
                raise

    return OperatorGuard()


@contextlib.contextmanager
def operator_guard():
    """Real tensors, allowlisted operators only; yields the guard (``.refused``: the first
    operator refused, even when the caller's code wrapped the exception)."""
    guard = _guard_mode()
    with guard:
        yield guard


@contextlib.contextmanager
def without_real_storage():
    """Fake tensors (shapes and dtypes, no memory) and allowlisted operators only: a saved
    program run inside touches no real storage and no file. Yields the guard."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    guard = _guard_mode()
    with FakeTensorMode(allow_non_fake_inputs=True), guard, torch.no_grad():
        yield guard


def _python_target_allowed(target: Any) -> bool:
    """Plain Python arithmetic an exported graph may call (sizes, indexing)."""
    module = getattr(target, "__module__", None)
    if target in (operator.getitem,) or module in ("_operator", "operator"):
        return True
    if module == "math" or getattr(math, getattr(target, "__name__", ""), None) is target:
        return True
    return module in ("torch", "torch.fx.experimental.sym_node") and \
        str(getattr(target, "__name__", "")).startswith(("sym_", "_sym_"))


def program_refusal(program: Any) -> Optional[str]:
    """The first call target of an ExportedProgram's graph (its submodules' too) that may not
    run without consent, or None when every target is an allowed operator."""
    from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket

    for gm in program.graph_module.modules():
        graph = getattr(gm, "graph", None)
        for n in (graph.nodes if graph is not None else ()):
            if n.op != "call_function":
                continue
            t = n.target
            if isinstance(t, OpOverload):
                ok = operator_allowed(t)
            elif isinstance(t, OpOverloadPacket):
                ok = False
            elif isinstance(t, HigherOrderOperator):
                ok = t.name() in _GRAPH_HOPS
            else:
                ok = _python_target_allowed(t)
            if not ok:
                return str(t.name() if hasattr(t, "name") and callable(t.name) else
                           getattr(t, "__qualname__", t))
    return None


# ---------------------------------------------------------------------------------------------
# the framework-neutral middle: modules, graph nodes, values

@dataclasses.dataclass
class _GNode:
    """One operation of the graph, in execution order."""
    path: List[Tuple[str, str]]  # enclosing modules (qualname, call key), outermost first
    name: str  # the functional op's name if it is one
    group: Any  # consecutive nodes with the same group and path form one functional op
    ins: List[Any]  # keys of input values (parameters and constants excluded)
    outs: List[Any]  # keys of output values
    args: tuple = ()
    kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    plumbing: bool = False  # tuple indexing and the like: never a node of its own
    aten: Optional[str] = None  # the ATen op (for configs rebuilt from arguments)


def _short_class(path: str) -> str:
    return path.rsplit(".", 1)[-1] if path else "Module"


def _mark_leaves(modules: Dict[str, ModuleInfo]) -> None:
    """A module is a leaf when no other module lies below it (MultiheadAttention: always)."""
    for q, m in modules.items():
        m.leaf = m.class_name == "MultiheadAttention" or not any(
            o.startswith(q + ".") for o in modules)


def _leaf_call(path: List[Tuple[str, str]], modules: Dict[str, ModuleInfo]) -> Optional[Tuple[str, str]]:
    for q, key in path:
        if q in modules and modules[q].leaf:
            return q, key
    return None


def _boundary(members: List[_GNode], consumers: Dict[Any, set], member_ids: set,
              graph_outputs: set) -> Tuple[List[Any], List[Any]]:
    produced = {v for g in members for v in g.outs}
    ins, seen = [], set()
    for g in members:
        for v in g.ins:
            if v not in produced and v not in seen:
                seen.add(v)
                ins.append(v)
    outs = [v for g in members for v in g.outs
            if v in graph_outputs or (consumers.get(v, set()) - member_ids)]
    return ins, outs



def _replay(modules: Dict[str, ModuleInfo], rec: tg.Recorder, gnodes: List[_GNode],
            values: Dict[Any, Any], consumers: Dict[Any, set], graph_outputs: set) -> None:
    """Feed the recorder the calls and ops of `gnodes`, as extract_torch's paths would."""
    def vals(keys: Sequence[Any]) -> tuple:
        return tuple(values[k] for k in keys if k in values)

    def one(vs: tuple) -> Any:
        return vs[0] if len(vs) == 1 else vs

    i = 0
    while i < len(gnodes):
        g = gnodes[i]
        leaf = _leaf_call(g.path, modules)
        j = i
        if leaf is not None:
            while j + 1 < len(gnodes) and _leaf_call(gnodes[j + 1].path, modules) == leaf:
                j += 1
            ins, outs = _boundary(gnodes[i:j + 1], consumers, set(range(i, j + 1)), graph_outputs)
            counter = torch_macs.Counter()
            for k in gnodes[i:j + 1]:
                counter.observe(k.aten or k.name, k.args, k.kwargs, one(vals(k.outs)))
            rec.module_call(leaf[0], vals(ins), {}, one(vals(outs)), leaf=True, counter=counter)
        elif not g.plumbing:
            while j + 1 < len(gnodes) and gnodes[j + 1].group == g.group and g.group is not None \
                    and gnodes[j + 1].path == g.path and not gnodes[j + 1].plumbing:
                j += 1
            parent = next((q for q, _ in reversed(g.path) if q in modules), None)
            if j == i:
                args, kwargs, outs = g.args, g.kwargs, g.outs
            else:
                ins, outs = _boundary(gnodes[i:j + 1], consumers, set(range(i, j + 1)),
                                      graph_outputs)
                args, kwargs = vals(ins), {}
            rec.op_call(tg.MethodName(g.name), parent, args, kwargs, one(vals(outs)),
                        macs=_group_macs(gnodes[i:j + 1], vals))
        i = j + 1


def _group_macs(group: List[_GNode], vals) -> Tuple[Optional[int], Optional[str]]:
    """MACs of the ATen ops that make up one functional op (whole batch), or (None, why)."""
    total = 0
    for g in group:
        macs, reason = tg.op_macs(g.aten or g.name, g.args, g.kwargs,
                                  vals(g.outs)[0] if vals(g.outs) else None)
        if macs is None:
            return None, reason
        total += macs
    return total, None


def _container_calls(modules: Dict[str, ModuleInfo], gnodes: List[_GNode], values: Dict[Any, Any],
                     consumers: Dict[Any, set], graph_outputs: set) -> Dict[str, List[tg.Call]]:
    """Containers' calls from the path entries (same rule as extract_torch's fx path)."""
    groups: Dict[Tuple[str, str], List[int]] = {}
    for k, g in enumerate(gnodes):
        for q, key in g.path:
            if q in modules and not modules[q].leaf:
                groups.setdefault((q, key), []).append(k)
    containers: Dict[str, List[tg.Call]] = {}
    for (q, _key), idx in groups.items():
        ins, outs = _boundary([gnodes[k] for k in idx], consumers, set(idx), graph_outputs)
        in_shapes = [tg.shape(t) for v in ins for t in tg.tensors(values.get(v))]
        out_ts = [t for v in outs for t in tg.tensors(values.get(v))]
        containers.setdefault(q, []).append(tg.Call(
            in_shapes, [tg.shape(t) for t in out_ts], tg.dtype(out_ts[0]) if out_ts else None,
            tg.nbytes(out_ts)))
    return containers


def _assemble(root_class: str, modules: Dict[str, ModuleInfo],
              inputs: List[Tuple[str, torch.Tensor]], gnodes: List[_GNode], values: Dict[Any, Any],
              output: Any, output_keys: Sequence[Any], extraction: Dict[str, Any],
              all_params: List[tg.Param], buffer_numel: int) -> schema.Architecture:
    """The Architecture, through extract_torch's recorder and builder."""
    _mark_leaves(modules)
    for m in modules.values():
        m.activation = tg.ACTIVATIONS.get(m.class_name)
        m.holder = m.class_name in ("ModuleList", "ModuleDict")
    rec = tg.Recorder(set(modules) | {n for n, _ in inputs})
    for n, t in inputs:
        rec.track(t, n)
    consumers: Dict[Any, set] = {}
    for i, g in enumerate(gnodes):
        for v in g.ins:
            consumers.setdefault(v, set()).add(i)
    graph_outputs = set(output_keys)
    _replay(modules, rec, gnodes, values, consumers, graph_outputs)
    containers = _container_calls(modules, gnodes, values, consumers, graph_outputs)
    counts = (sum(product(p.shape) for p in all_params if p.trainable),
              sum(product(p.shape) for p in all_params if not p.trainable))
    return tg.build_architecture(root_class, modules, inputs, rec, containers, output, extraction,
                                 counts, buffer_numel)


def _input_list(arg_names: Sequence[str], args: tuple, kwargs: Dict[str, Any],
                taken: set) -> List[Tuple[str, torch.Tensor]]:
    """(node id, tensor) per input tensor, named after forward's parameters (as extract_torch)."""
    out: List[Tuple[str, torch.Tensor]] = []
    for i, a in enumerate(args):
        name = arg_names[i] if i < len(arg_names) else "input_%d" % i
        out.extend(tg.flatten(a, name))
    for k, v in kwargs.items():
        out.extend(tg.flatten(v, k))
    return tg.unique_inputs(out, taken)


# ---------------------------------------------------------------------------------------------
# torch.export

def _pairs(v: Any, n: int) -> List[int]:
    if isinstance(v, (list, tuple)):
        v = [int(x) for x in v]
        return v * n if len(v) == 1 else v
    return [int(v)] * n


def _aten_config(class_name: str, aten: Optional[str], args: tuple, kwargs: Dict[str, Any],
                 params: Dict[str, List[int]]) -> Dict[str, Any]:
    """The usual config keys of common torch.nn layers, from an ATen call and weight shapes."""
    a = list(args) + [None] * 8
    cfg: Dict[str, Any] = {}
    try:
        if aten in ("conv1d", "conv2d", "conv3d") and "weight" in params:
            w = params["weight"]
            nd = len(w) - 2
            groups = int(a[6]) if a[6] is not None else 1
            cfg.update(in_channels=w[1] * groups, out_channels=w[0], kernel_size=list(w[2:]),
                       transposed=False, output_padding=[0] * nd,
                       stride=_pairs(a[3] if a[3] is not None else 1, nd),
                       padding=a[4] if isinstance(a[4], str) else
                       _pairs(a[4] if a[4] is not None else 0, nd),
                       dilation=_pairs(a[5] if a[5] is not None else 1, nd), groups=groups,
                       bias="bias" in params)
        elif aten == "linear" and "weight" in params:
            w = params["weight"]
            cfg.update(in_features=w[1], out_features=w[0], bias="bias" in params)
        elif aten == "batch_norm":
            shape = params.get("weight") or params.get("running_mean")
            if shape:
                cfg["num_features"] = shape[0]
            if a[7] is not None:
                cfg["eps"] = float(a[7])
            if a[6] is not None:
                cfg["momentum"] = float(a[6])
            cfg["affine"] = "weight" in params
        elif aten in ("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d",
                      "avg_pool3d"):
            k = a[1]
            cfg["kernel_size"] = k[0] if isinstance(k, (list, tuple)) and len(set(k)) == 1 else k
            stride = a[2] if a[2] not in (None, []) else k
            cfg["stride"] = stride[0] if isinstance(stride, (list, tuple)) \
                and len(set(stride)) == 1 else stride
            pad = a[3] if a[3] is not None else 0
            cfg["padding"] = pad[0] if isinstance(pad, (list, tuple)) and len(set(pad)) == 1 \
                else pad
        elif aten in ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
                      "adaptive_max_pool2d"):
            size = a[1]
            cfg["output_size"] = size[0] if isinstance(size, (list, tuple)) \
                and len(set(size)) == 1 else size
        elif aten == "flatten":
            cfg.update(start_dim=int(a[1]) if a[1] is not None else 0,
                       end_dim=int(a[2]) if a[2] is not None else -1)
        elif aten in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"):
            if a[1] is not None:
                cfg["p"] = float(a[1])
        elif aten in ("relu", "relu_"):
            cfg["inplace"] = aten == "relu_"
    except (TypeError, ValueError, IndexError):
        return {}
    if cfg:
        cfg = {k: v for k, v in ((k, tg.json_safe(v)) for k, v in cfg.items())
               if v is not tg.SKIP}
        cfg["config_source"] = "aten"
    return cfg


def _aten_name(target: Any) -> str:
    name = getattr(target, "_opname", None) or getattr(target, "__name__", None) or str(target)
    return str(name).split(".")[0]


def _program_args(program: Any, input_to_model: Any) -> Tuple[tuple, Dict[str, Any]]:
    if input_to_model is not None:
        return tg.call_args(input_to_model)
    example = getattr(program, "example_inputs", None)
    if not example:
        raise ExtractionError("the exported program carries no example inputs: give an "
                              "input (e.g. --input-shape)")
    return tuple(example[0]), dict(example[1] or {})


def _owner(fqn: str) -> Tuple[str, str]:
    return tuple(fqn.rsplit(".", 1)) if "." in fqn else ("", fqn)  # type: ignore


@dataclasses.dataclass
class _ProgramState:
    """What a program holds besides its graph: modules, parameters, buffers."""
    modules: Dict[str, ModuleInfo]
    root_class: Optional[str]
    all_params: List[tg.Param]
    shapes_by_mod: Dict[str, Dict[str, List[int]]]
    buffer_numel: int = 0


def _program_modules(program: Any, gm: Any) -> _ProgramState:
    """Modules in named_modules() order, classes from the graph's module stacks, their own
    parameters and buffers from the program's state."""
    classes: Dict[str, str] = {}
    root_class = None
    for n in gm.graph.nodes:
        for q, cls in (n.meta.get("nn_module_stack") or {}).values():
            if q == "" or q == "L__self__":
                root_class = root_class or _short_class(cls)
            else:
                classes.setdefault(q, _short_class(cls))
    modules: Dict[str, ModuleInfo] = {}
    for e in program.module_call_graph or []:
        if e.fqn:
            modules[e.fqn] = ModuleInfo(e.fqn, classes.get(e.fqn, "Module"),
                                        class_known=e.fqn in classes)
    for q, cls in classes.items():
        modules.setdefault(q, ModuleInfo(q, cls))
    st = _ProgramState(modules, root_class, [], {})
    sig, state = program.graph_signature, program.state_dict
    for fqn in sig.parameters:
        p = state.get(fqn)
        if p is None:
            continue
        shape, trainable = tg.shape(p), bool(getattr(p, "requires_grad", True))
        st.all_params.append(tg.Param(fqn, shape, trainable, tg.dtype(p), fqn))
        q, name = _owner(fqn)
        if q:
            modules.setdefault(q, ModuleInfo(q, "Module", class_known=False)).params.append(
                tg.Param(name, shape, trainable, tg.dtype(p), fqn))
            st.shapes_by_mod.setdefault(q, {})[name] = shape
    non_persistent = set(getattr(sig, "non_persistent_buffers", ()) or ())
    for fqn in sig.buffers:
        b = state.get(fqn)
        if b is None:
            b = program.constants.get(fqn)
        if not isinstance(b, torch.Tensor):
            continue
        st.buffer_numel += b.numel()
        q, name = _owner(fqn)
        if q:
            modules.setdefault(q, ModuleInfo(q, "Module", class_known=False)).buffers.append(
                {"name": name, "shape": tg.shape(b), "dtype": tg.dtype(b),
                 "persistent": fqn not in non_persistent})
            st.shapes_by_mod.setdefault(q, {})[name] = tg.shape(b)
    return st


def _fx_path(n) -> List[Tuple[str, str]]:
    out = []
    for key, (q, _cls) in (n.meta.get("nn_module_stack") or {}).items():
        if q in ("", "L__self__"):
            continue
        call = key.rsplit("@", 1)[1] if "@" in key else "0"
        out.append((q, "%s@%s" % (q, call)))
    return out


def _run_program(gm: Any, flat: list, gnodes: List[_GNode], values: Dict[Any, Any]) -> Any:
    """Interpret the program's graph on `flat`, one _GNode per call_function node."""
    import torch.fx as fx

    class Run(fx.Interpreter):
        def run_node(self, n):
            try:
                out = super().run_node(n)
            except Exception as e:
                path = _fx_path(n)
                raise ForwardFailed(path[-1][0] if path else None, e) from e
            if n.op == "placeholder":
                values[n] = out
            elif n.op == "call_function":
                values[n] = out
                a, kw = self.fetch_args_kwargs_from_env(n)
                fn = n.meta.get("torch_fn")
                name, group = _aten_name(n.target), None
                if fn and isinstance(fn, (tuple, list)) and len(fn) == 2:
                    name = tg.op_name(tg.MethodName(str(fn[1]).rsplit(".", 1)[-1]))
                    group = fn[0]
                gnodes.append(_GNode(
                    path=_fx_path(n), name=name, group=group,
                    ins=[x for x in n.all_input_nodes if x.op in ("placeholder", "call_function")],
                    outs=[n], args=tuple(a), kwargs=dict(kw),
                    plumbing=n.target is operator.getitem and not isinstance(a[0], torch.Tensor),
                    aten=_aten_name(n.target)))
            return out

    # The program's train/eval behaviour was fixed when it was exported (its module refuses
    # .eval()); it runs under no_grad and never updates its state.
    with torch.no_grad():
        return Run(gm).run(*flat, enable_io_processing=False)


def _rebuild_configs(st: _ProgramState, gnodes: List[_GNode]) -> None:
    """Configs of common layers from the first ATen call of each leaf; a never-called module
    whose children are numbered is a ModuleList."""
    modules = st.modules
    _mark_leaves(modules)
    for g in gnodes:
        leaf = _leaf_call(g.path, modules)
        if leaf is None:
            continue
        m = modules[leaf[0]]
        if not m.config and m.class_known:
            m.config = _aten_config(m.class_name, g.aten, g.args, g.kwargs,
                                    st.shapes_by_mod.get(leaf[0], {}))
    for q, m in modules.items():
        kids = [o[len(q) + 1:] for o in modules if o.startswith(q + ".")
                and "." not in o[len(q) + 1:]]
        if not m.class_known and kids and all(k.isdigit() for k in kids):
            m.class_name = "ModuleList"


def extract_exported_program(program: Any, input_to_model: Any = None) -> schema.Architecture:
    """The Architecture of a ``torch.export.ExportedProgram`` (see the module docstring).

    `input_to_model` is passed like ``extract_torch``'s (tensor, tuple of args, dict of kwargs);
    default: the program's ``example_inputs``. Raises ``ExtractionError`` when the program
    cannot run on the input (e.g. a shape its guards reject), naming the module.
    """
    import torch.fx as fx
    from torch.fx import _pytree as fx_pytree
    from torch.utils import _pytree as pytree

    args, kwargs = _program_args(program, input_to_model)
    gm = program.module()
    entry = program.module_call_graph[0] if program.module_call_graph else None
    arg_names = list(getattr(getattr(entry, "signature", None), "forward_arg_names", None) or [])
    st = _program_modules(program, gm)
    info = gm.graph._codegen.pytree_info if hasattr(gm.graph._codegen, "pytree_info") else None
    try:
        flat = fx_pytree.tree_flatten_spec((args, kwargs), info.in_spec) if info \
            else list(args)
    except Exception as e:  # noqa: BLE001 - a structure that does not match the program's
        raise ExtractionError("the input does not match the exported program's inputs %s: %s"
                              % (arg_names, one_line(e))) from None
    inputs = _input_list(arg_names, args, kwargs, set(st.modules))
    gnodes: List[_GNode] = []
    values: Dict[Any, Any] = {}
    try:
        flat_out = _run_program(gm, flat, gnodes, values)
    except ForwardFailed as e:
        where = ("module '%s' (%s)" % (e.module, st.modules[e.module].class_name)
                 if e.module in st.modules else "the program's own forward")
        raise ExtractionError(
            "the exported program failed on the input (shapes %s) in %s: %s"
            % ([tg.shape(t) for _, t in inputs], where, one_line(e.error)),
            module=e.module) from None
    output_node = next(n for n in gm.graph.nodes if n.op == "output")
    out_nodes = list(pytree.tree_leaves(output_node.args[0]))
    output = pytree.tree_unflatten(list(flat_out), info.out_spec) if info else flat_out
    _rebuild_configs(st, gnodes)
    extraction = {"method": "torch.export",
                  "reason": "an ExportedProgram: its graph interpreted on the input, modules "
                            "from nn_module_stack"}
    return _assemble(st.root_class or "ExportedProgram", st.modules, inputs, gnodes, values,
                     output, [n for n in out_nodes if isinstance(n, fx.Node)], extraction,
                     st.all_params, st.buffer_numel)


# ---------------------------------------------------------------------------------------------
# TorchScript

_HIER = re.compile(r"([^.()]+)\(([^()]*)\)")
_PLUMBING_ATEN = {"aten::__getitem__", "aten::list", "aten::__is__", "aten::__isnot__",
                  "aten::size", "aten::len", "aten::dim", "aten::Int", "aten::Float",
                  "aten::ScalarImplicit", "aten::format", "aten::warn"}


def _ts_path(node, modules: Dict[str, ModuleInfo]) -> List[Tuple[str, str]]:
    """The modules a node of an inlined graph ran in, as qualified names.

    The hierarchy names each call's instance relative to its caller; modules that were never
    called (``ModuleList``, ``ModuleDict``) are missing from it, so ``layers.1`` shows as ``1``:
    such a segment is resolved to the child reached through uncalled containers (class name as
    tie-breaker).
    """
    try:
        text = node.getModuleHierarchy()
    except Exception:  # noqa: BLE001 - no hierarchy: the root's forward
        return []
    path: List[Tuple[str, str]] = []
    parent = ""
    for inst, typ in _HIER.findall(text or ""):
        if inst == "UNKNOWN_INSTANCE":
            break
        if inst in ("SELF", "TOP"):
            continue
        direct = parent + "." + inst if parent else inst
        if direct in modules:
            q = direct
        else:
            prefix = parent + "." if parent else ""
            found = [o for o in modules if o.startswith(prefix)
                     and o.rsplit(".", 1)[-1] == inst and "." in o[len(prefix):]]
            same = [o for o in found if modules[o].class_name == typ]
            found = same or found
            if not found:
                break
            q = found[0]
        path.append((q, q))
        parent = q
    return path


def _ts_config(m: Any) -> Dict[str, Any]:
    """Config of a scripted module: the constants and public attributes its class declares."""
    cls = getattr(torch.nn, str(getattr(m, "original_name", "")), None)
    keys: List[str] = []
    if isinstance(cls, type):
        for c in reversed(cls.__mro__):
            keys.extend(getattr(c, "__constants__", ()) or ())
            keys.extend(getattr(c, "__annotations__", {}) or {})
    try:
        attrs = dict(torch._C._jit_debug_module_iterators(m._c)["named_attributes"])
    except Exception:  # noqa: BLE001 - private API: the constants alone still help
        attrs = {}
    keys.extend(attrs)
    slots = {"weight", "bias"} & set(attrs)  # parameter slots (None when absent), not config
    cfg: Dict[str, Any] = {}
    for k in dict.fromkeys(keys):
        if k.startswith("_") or k in slots or k in ("training", "dump_patches",
                                                   "call_super_init"):
            continue
        try:
            v = getattr(m, k)
        except Exception:  # noqa: BLE001 - a declared name the module does not have
            continue
        if isinstance(v, torch.Tensor) or isinstance(v, torch.jit.ScriptModule):
            continue
        sv = tg.json_safe(v)
        if sv is not tg.SKIP:
            cfg[k] = sv
    if "bias" in slots:  # like extract_torch: whether the bias parameter exists
        cfg["bias"] = attrs["bias"] is not None
    return cfg


_SCALAR_KINDS = ("IntType", "FloatType", "BoolType", "NoneType", "StringType", "DeviceObjType",
                 "ClassType", "NumberType", "ComplexType", "ScalarTypeType", "LayoutType")


def _ts_keep(node) -> List[int]:
    """Indices of a node's outputs worth observing (tensors and containers that may hold them)."""
    if node.kind() in ("prim::Constant", "prim::GetAttr", "prim::Uninitialized"):
        return []
    maybe_unset = set()  # an `if` branch that returns early leaves a value uninitialized
    for b in node.blocks():
        for j, o in enumerate(b.outputs()):
            if o.node().kind() == "prim::Uninitialized":
                maybe_unset.add(j)
    return [j for j, o in enumerate(node.outputs())
            if o.type().kind() not in _SCALAR_KINDS and j not in maybe_unset]


def _ts_run(module: Any, graph, extra: List[Any], args: tuple) -> Tuple[Any, List[Any]]:
    """Run `graph` (a copy: it is changed) on `args`, also returning the `extra` values (values
    of that same graph): (the real output, [object per extra value])."""
    originals = list(graph.outputs())
    every = originals + list(extra)
    tup = graph.create("prim::TupleConstruct", every)
    tup.output().setType(torch._C.TupleType([v.type() for v in every]))
    graph.appendNode(tup)
    for _ in originals:
        graph.eraseOutput(0)
    graph.registerOutput(tup.output())
    fn = torch._C._create_function_from_graph("archviz_probe", graph)
    result = fn(module._c, *args)
    out = result[0] if len(originals) == 1 else tuple(result[:len(originals)])
    return out, list(result[len(originals):])


def _ts_specialize(module: Any, graph, args: tuple, rounds: int = 12) -> None:
    """Replace every top-level ``if`` by the branch this input takes (in place), round after
    round, so that the module calls inside branches (e.g. nn.TransformerEncoder's fast-path
    checks around its layers) become visible. The graph then describes this very run."""
    for _ in range(rounds):
        ifs = [n for n in graph.nodes() if n.kind() == "prim::If"]
        if not ifs:
            return
        copy = graph.copy()
        copy_ifs = [n for n in copy.nodes() if n.kind() == "prim::If"]
        _, conds = _ts_run(module, copy, [n.inputsAt(0) for n in copy_ifs], args)
        for n, taken in zip(ifs, conds):
            block = list(n.blocks())[0 if bool(taken) else 1]
            for inner in list(block.nodes()):
                inner.moveBefore(n)
            for out, value in zip(list(n.outputs()), list(block.outputs())):
                out.replaceAllUsesWith(value)
            n.destroy()


def _ts_probe(module: Any, graph, args: tuple) -> Tuple[Any, Dict[Tuple[int, int], Any]]:
    """Every top-level value worth observing, from one run of a copy of `graph`:
    (the real output, {(node index, output index): object})."""
    copy = graph.copy()
    keep, keys = [], []
    for i, n in enumerate(copy.nodes()):
        outs = list(n.outputs())
        for j in _ts_keep(n):
            keep.append(outs[j])
            keys.append((i, j))
    out, objects = _ts_run(module, copy, keep, args)
    return out, dict(zip(keys, objects))


def _ts_args(module: Any, input_to_model: Any) -> Tuple[tuple, List[str]]:
    """The positional arguments of the TorchScript forward (keywords placed in schema order,
    defaults filled in) and the argument names."""
    args, kwargs = tg.call_args(input_to_model)
    schema_args = [a.name for a in module.forward.schema.arguments][1:]
    if kwargs:  # TorchScript functions take positional arguments in schema order
        missing = [n for n in kwargs if n not in schema_args]
        if missing:
            raise ExtractionError("forward%s has no argument %s" % (schema_args, missing))
        args = tuple(args) + tuple(kwargs[n] for n in schema_args[len(args):] if n in kwargs)
    fill = []
    for a in module.forward.schema.arguments[1 + len(args):]:
        if not a.has_default_value():
            break
        fill.append(a.default_value)
    args = tuple(args) + tuple(fill)
    if len(args) > len(schema_args):
        raise ExtractionError("the TorchScript forward takes %d input(s) %s, got %d"
                              % (len(schema_args), schema_args, len(args)))
    return args, schema_args


def _ts_modules(module: Any) -> Dict[str, ModuleInfo]:
    modules: Dict[str, ModuleInfo] = {}
    for q, m in module.named_modules():
        if q:
            modules[q] = ModuleInfo(
                q, str(getattr(m, "original_name", type(m).__name__)),
                params=[tg.Param(k, tg.shape(p), bool(p.requires_grad), tg.dtype(p),
                                 q + "." + k) for k, p in m.named_parameters(recurse=False)],
                buffers=[{"name": k, "shape": tg.shape(b), "dtype": tg.dtype(b), "persistent": True}
                         for k, b in m.named_buffers(recurse=False)],
                config=_ts_config(m))
    _mark_leaves(modules)
    return modules


def _ts_first_aten(n) -> Optional[str]:
    for b in n.blocks():
        for inner in b.nodes():
            if inner.kind().startswith("aten::") and inner.kind() not in _PLUMBING_ATEN:
                return inner.kind().split("::", 1)[1]
            found = _ts_first_aten(inner)
            if found:
                return found
    return None


def _ts_gnodes(graph, args: tuple, observed: Dict[Tuple[int, int], Any],
               modules: Dict[str, ModuleInfo],
               root: Any = None) -> Tuple[List[_GNode], Dict[Any, Any], List[Any]]:
    """The graph's nodes as _GNodes, the observed values by key, the model's output keys."""
    key_of: Dict[int, Any] = {}
    values: Dict[Any, Any] = {}
    for k, (v, a) in enumerate(zip(list(graph.inputs())[1:], args)):
        key_of[v.unique()] = ("in", k)
        values[("in", k)] = a
    nodes = list(graph.nodes())
    for i, n in enumerate(nodes):
        outs = list(n.outputs())
        for j in _ts_keep(n):
            if (i, j) in observed and tg.tensors(observed[(i, j)]):
                key_of[outs[j].unique()] = (i, j)
                values[(i, j)] = observed[(i, j)]
    gnodes: List[_GNode] = []
    for i, n in enumerate(nodes):
        kind = n.kind()
        ins = [key_of[u] for u in dict.fromkeys(_ts_used(n)) if u in key_of]
        outs = [key_of[v.unique()] for v in n.outputs() if v.unique() in key_of]
        if not outs:
            continue  # reads tensors for Python control flow or sizes only
        name = kind.split("::", 1)[-1]
        plumbing = kind in _PLUMBING_ATEN or kind.startswith("prim::")
        if kind in ("prim::If", "prim::Loop"):  # block values used inside come from outside
            name = _ts_first_aten(n) or kind.split("::", 1)[1].lower()
            plumbing = False
            real_args = tuple(values[k] for k in ins)
        else:
            real_args = tuple(values[key_of[v.unique()]] if v.unique() in key_of
                              else _ts_const(v, root=root) for v in n.inputs())
        gnodes.append(_GNode(path=_ts_path(n, modules), name=name, group=None, ins=ins, outs=outs,
                             args=real_args, plumbing=plumbing, aten=name))
    out_keys, stack = [], list(graph.outputs())  # through the tuples / lists / dicts that pack them
    while stack:
        v = stack.pop()
        if v.unique() in key_of:
            out_keys.append(key_of[v.unique()])
        if v.node().kind() in ("prim::TupleConstruct", "prim::ListConstruct",
                               "prim::DictConstruct"):
            stack.extend(v.node().inputs())
    return gnodes, values, out_keys


def extract_torchscript(module: Any, input_to_model: Any) -> schema.Architecture:
    """The Architecture of a TorchScript module (``torch.jit.script``/``trace``, then
    ``torch.jit.save``/``load``), from one run on `input_to_model` (see the module docstring)."""
    if not isinstance(module, torch.jit.ScriptModule):
        raise ExtractionError("extract_torchscript expects a torch.jit.ScriptModule, got %s"
                              % type(module).__name__)
    args, schema_args = _ts_args(module, input_to_model)
    modules = _ts_modules(module)
    all_params = [tg.Param(k, tg.shape(p), bool(p.requires_grad), tg.dtype(p), k)
                  for k, p in module.named_parameters()]
    buffer_numel = sum(b.numel() for b in module.buffers())
    inputs = _input_list(schema_args, args, {}, set(modules))
    training = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        with torch.no_grad():
            graph = module.inlined_graph
            _ts_specialize(module, graph, args)
            output, observed = _ts_probe(module, graph, args)
    except Exception as e:  # noqa: BLE001 - TorchScript raises torch.jit.Error / RuntimeError
        raise ExtractionError("the TorchScript module %s failed on the input (shapes %s): %s"
                              % (getattr(module, "original_name", "?"),
                                 [tg.shape(t) for _, t in inputs], one_line(e))) from None
    finally:
        for m, flag in training:
            m.train(flag)
    gnodes, values, out_keys = _ts_gnodes(graph, args, observed, modules, module)
    extraction = {"method": "torchscript",
                  "reason": "a TorchScript module: its inlined graph run on the input, modules "
                            "from the graph's module hierarchy"}
    return _assemble(str(getattr(module, "original_name", "ScriptModule")), modules, inputs,
                     gnodes, values, output, out_keys, extraction, all_params, buffer_numel)


def _ts_used(node) -> List[int]:
    """Unique ids of the values a node reads, including those its blocks read."""
    out = [v.unique() for v in node.inputs()]
    for b in node.blocks():
        for inner in b.nodes():
            out.extend(_ts_used(inner))
        out.extend(v.unique() for v in b.outputs())
    return out


def _ts_attr(v, root: Any, depth: int = 0) -> Any:
    """The object a ``prim::GetAttr`` chain from the graph's ``self`` reads (a parameter or a
    buffer of `root`: the weights an operator's MACs rule needs), else None."""
    node = v.node()
    if root is None or depth > 32:
        return None
    if node.kind() == "prim::Param":
        return root
    if node.kind() != "prim::GetAttr":
        return None
    owner = _ts_attr(node.input(), root, depth + 1)
    try:
        return getattr(owner, node.s("name")) if owner is not None else None
    except Exception:  # noqa: BLE001 - an attribute TorchScript keeps but Python cannot read
        return None


def _ts_const(v, depth: int = 0, root: Any = None) -> Any:
    """The value of a constant input (lists of constants included), a parameter or buffer read
    through ``prim::GetAttr`` (tensors only), else None."""
    node = v.node()
    if node.kind() == "prim::GetAttr":
        value = _ts_attr(v, root)
        return value if isinstance(value, torch.Tensor) else None
    if node.kind() == "prim::Constant":
        try:
            return node.output().toIValue()
        except Exception:  # noqa: BLE001 - a constant Python cannot hold
            return None
    if node.kind() in ("prim::ListConstruct", "prim::TupleConstruct") and depth < 3:
        return [_ts_const(i, depth + 1, root) for i in node.inputs()]
    return None
