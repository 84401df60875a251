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
  (``model.output_names`` maps dict keys / tuple positions / dataclass fields to them).
* Shapes are the real shapes of the example input's forward pass, the batch dimension
  included *as given* (a 16x1x28x28 input reports 16, never ``None``). A module called twice is
  one node: ``input_shapes``/``output_shapes`` list both calls in order, ``calls`` is 2,
  both calls' edges are kept, its parameters count once.
* Params: ``trainable`` counts parameters with ``requires_grad``, ``non_trainable`` the others;
  buffers (BatchNorm running statistics, ...) are not parameters and are listed in
  ``buffers``. Model totals count every unique parameter once (``sum(p.numel())``).
* MACs (``schema.MACS_CONVENTION``) are multiply-accumulates PER EXAMPLE: the figure of the
  whole example batch divided by ``model.batch_size`` = the first dimension of the first input
  tensor of rank >= 2 (Hugging Face inputs by name first: ``input_ids``, ``inputs_embeds``,
  ``pixel_values``, ...; 1 when every input has rank <= 1: an unbatched example), or
  ``batch_size=``. When a recurrent layer or MultiheadAttention with ``batch_first=False`` ran
  on a batched input whose batch dimension says otherwise, one warning names it and
  ``batch_size=`` (``extraction["batch"]`` keeps the sentence).
  What is counted is what was dispatched: a ``TorchDispatchMode`` (``torch_macs.op_counter``)
  sees every ATen operation the forward runs, whatever Python wraps it (a ``torch.fx.wrap``-ed
  function, a custom module), and adds its figure to the module or functional op that was
  running (the fx graph and the hooks give the structure, never the arithmetic): Linear at
  every position of an N-D input, convolutions (every rank, groups, transposed), mm / bmm /
  baddbmm / einsum as run, the QK^T and AV of attention, recurrent layers per time step;
  elementwise work is 0. MultiheadAttention's out-projection is shown on its ``out_proj``
  child ("used by its parent"). Modules called inside a function fx did not step into are
  nodes with their calls and figures (global module hooks while such a node runs). An
  operation whose figure this convention does not define (an FFT, a decomposition, a custom
  operator) makes its node's ``macs`` null with ``macs_reason``, and the totals say "at
  least"; work outside every module and op (none in the usual model) is an ``unattributed``
  op node. Functional op nodes carry their own figure; containers (and ``model.macs``) are
  sums, computed by ``totals.fill_totals``. A module holding a weight matrix whose forward ran
  no operation with a rule has ``macs`` null and ``macs_reason``.
* Parameters are counted as the forward left them: a lazy layer, or a parameter created,
  replaced or materialised by hand in ``forward``; such a node's ``reason`` says so.
* Memory: per node ``memory`` = {"params_bytes" (dtype-aware), "output_bytes" (per example, all
  calls)}; ``model.memory`` = {"params_bytes", "buffers_bytes", "activations_bytes" (outputs of
  the leaf modules and ops, per example)}.
* A bare ``torch.nn`` layer used as the model (``nn.Linear(8, 64)``) is one node named by its
  class, with its params, shapes and MACs.

Two ways to record, said in ``arch.extraction = {"method", "reason"}``. ``"hooks"`` (what
``method="auto"`` does): the ONE real forward, with two global module hooks (pre and post: every
module's calls and shapes) and a ``TorchFunctionMode`` that sees the functional operations,
tensors followed by identity; a tuple unpacking of a tensor (``q, k, v = qkv``) is one
``getitem`` per item, as torch.fx shows it. ``"fx"`` — ``torch.fx`` symbolic tracing (leaf = a
module without children, or ``nn.MultiheadAttention``), then the graph run on the real input by
an ``fx.Interpreter`` that records shapes (containers' shapes come from the nodes they
enclose): "auto" uses it only for a model whose forward (or a container's) calls a
``torch.fx.wrap``-ed function, which only a trace can show as one op (``_fx_wrapped``), and
falls back to hooks when fx cannot trace (data-dependent control flow, ``*args`` forwards,
hooks on non-leaf modules, ...); ``method="fx"`` asks for it. Both give the same document
otherwise (``tests/test_torch_extract.py``, ``bench/bench_macs_agreement.py``). Functional ops
that only feed Python control flow (the ``x.sum() > 0`` of an ``if``) reach no other node and
are dropped (counted in ``extraction["dropped_ops"]``); ops that touch no tensor derived from the
inputs (``torch.arange``, parameter reshapes) are not nodes.

No side effects (``torch_guard``): the forward runs under ``torch.no_grad()`` in **eval mode**
(so Dropout is off and BatchNorm running statistics are not updated); every module's
``training`` flag, the RNG state and the MHA fast-path flag are restored; parameters, buffers
and the caller's input tensors written in place by the forward are copied just before the
write (by the same dispatch mode that counts) and restored; no torch.fx object a trace stored
in a module stays there (attributes, lists, dicts, sets, nested objects); when fx fails, the
attributes, containers and tensors the trace changed are put back before the real forward,
which runs exactly once (a tensor attribute incremented in ``forward`` is +1). No
``requires_grad`` or ``.grad`` is touched. ``DataParallel`` / ``DistributedDataParallel`` /
``torch.compile`` wrappers are unwrapped. An input that does not fit raises ``ExtractionError``
naming the qualified name of the module whose forward failed.

Cost (``bench/bench_extract_speed.py`` prints it phase by phase, next to torchinfo): the one
real forward, plus Python work per module call (the hooks), per functional op outside the leaves
(the function mode) and per ATen operation dispatched under the counting mode. To spare the
last two, an exact torch.nn layer whose figure is known without them (``torch_macs.plain_leaf``:
Linear / ConvNd by their class rule, norms, activations, pooling: 0; ``nn.MultiheadAttention``
by ``torch_macs.plain_call_macs``) runs on plain tensors with both modes set aside, and torch
functions that only run 0-MAC operations and write nothing (``torch_macs.zero_macs_function``
and ``zero_macs_args``: elementwise, views, ``cat``, ...) run outside the dispatch mode, with
the same figures (not when another dispatch mode is active, a tensor subclass is involved, or
the call could write a guarded tensor: an in-place layer whose input is a parameter, buffer or
the caller's input).
Module attributes are snapshotted only when a torch.fx trace may run. The cyclic garbage
collector is paused for the duration of ``extract_torch`` (and resumed, also on error).
"""

from __future__ import annotations

import dataclasses
import dis
import gc
import inspect
import itertools
import operator
import re
import sys
import warnings
import weakref
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from tensorboard_archviz import schema
from tensorboard_archviz.extract import torch_graph as tg
from tensorboard_archviz.extract import torch_macs
from tensorboard_archviz.extract.torch_guard import Guard
from tensorboard_archviz.extract.torch_graph import ExtractionError, ForwardFailed
from tensorboard_archviz.util import one_line

__all__ = ["ExtractionError", "extract_torch"]

METHODS = ("auto", "fx", "hooks")


# ---------------------------------------------------------------------------------------------
# inputs

_SIGNATURES: "weakref.WeakKeyDictionary[Any, inspect.Signature]" = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> inspect.Signature:
    """``inspect.signature(model.forward)``, computed once per forward function (a Hugging
    Face forward's takes milliseconds)."""
    fwd = model.forward
    fn = getattr(fwd, "__func__", None)
    if fn is None or getattr(fwd, "__self__", None) is not model:
        return inspect.signature(fwd)
    try:
        sig = _SIGNATURES.get(fn)
        if sig is None:
            sig = _SIGNATURES[fn] = inspect.signature(fwd)
        return sig
    except TypeError:  # not weak-referenceable
        return inspect.signature(fwd)


def _bind(model: nn.Module, args: tuple, kwargs: Dict[str, Any]):
    try:
        sig = _signature(model)
        bound = sig.bind(*args, **kwargs)
    except (TypeError, ValueError):
        return None, None
    return sig, bound


def _input_names(model: nn.Module, args: tuple, kwargs: Dict[str, Any],
                 taken: set) -> List[Tuple[str, torch.Tensor]]:
    """(node id, tensor) per input tensor, named after forward's parameters where possible."""
    sig, bound = _bind(model, args, kwargs)
    out: List[Tuple[str, torch.Tensor]] = []
    if bound is not None:
        for name, value in bound.arguments.items():
            kind = sig.parameters[name].kind
            out.extend(tg.flatten(value) if kind == inspect.Parameter.VAR_KEYWORD
                       else tg.flatten(value, name))
    else:
        for i, a in enumerate(args):
            out.extend(tg.flatten(a, "input" if i == 0 and len(args) == 1 else "input_%d" % i))
        out.extend(tg.flatten(kwargs))
    return tg.unique_inputs(out, taken)


# ---------------------------------------------------------------------------------------------
# the fx path

class _FxUnsupported(Exception):
    """fx cannot be used for this model (the reason is the message)."""


def _fx_checks(model, args, kwargs, names, leaf_ids):
    """Why fx cannot be used (raises _FxUnsupported), else (bound arguments, concrete args)."""
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
        if not isinstance(v, torch.Tensor) and tg.tensors(v):
            # a Proxy is neither a dict nor a list: isinstance checks in forward would take
            # another branch than the real call does
            raise _FxUnsupported("argument %r is a %s of tensors, which torch.fx traces as one "
                                 "opaque value" % (k, type(v).__name__))
    return bound, {k: v for k, v in bound.arguments.items() if not tg.tensors(v)}


def _fx_trace(model, concrete, leaf_ids, guard: Guard):
    """The fx graph; real tensors the trace writes in place are copied first
    (``guard.trace_writes``), so that a fallback to hooks can undo them."""
    import torch.fx as fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return id(m) in leaf_ids

    def on_write(targets):
        guard.write_guard.before(targets)  # parameters, buffers, inputs: restored at the end
        guard.trace_writes.before(targets)  # anything else: restored only before a fallback

    try:
        with warnings.catch_warnings(), torch_macs.op_counter(on_write):
            warnings.simplefilter("ignore")
            return Tracer().trace(model, concrete_args=concrete or None)
    except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError, ...
        raise _FxUnsupported("torch.fx could not trace %s: %s"
                             % (type(model).__name__, one_line(e))) from None


def _innermost(n) -> Optional[str]:
    stack = n.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else None


_PLAIN_TARGETS = ("torch", "_operator", "operator", "builtins", "math", "_tensor")


def _user_functions(graph) -> bool:
    """Whether the graph calls a function fx did not step into (``torch.fx.wrap``-ed code):
    modules it calls are then seen by global module hooks while it runs."""
    for n in graph.nodes:
        if n.op == "call_function" and n.target is not getattr:
            mod = getattr(n.target, "__module__", None) or ""
            if not mod.split(".")[0] in _PLAIN_TARGETS:
                return True
    return False


class _Calls:
    """Module calls seen by hooks (the hooks path, and modules called inside an fx node that
    fx did not step into): the calls of leaves (whose internals are hidden, their dispatched
    operations counted on their own counter) and of containers, recorded in `rec`."""

    def __init__(self, names, leaf_ids, rec: tg.Recorder, counter, write_guard=None):
        self.qualname_of = {id(m): q for q, m in names.items()}
        self.leaf_ids, self.rec, self.counter = leaf_ids, rec, counter
        self.stack: List[str] = []
        self.leaf_depth = 0
        self.busy = False
        self.active = True
        # plain leaves (torch_macs.plain_leaf): while one runs, the hooks path's function mode
        # runs its calls outside the dispatch mode. One that writes its input in place
        # (ReLU(inplace=True)) is plain for a call whose input the guard does not watch (a
        # parameter, buffer, the caller's input); one whose figure needs the call
        # (MultiheadAttention) gets it from torch_macs.plain_call_macs.
        self.plain_ids, self.inplace_ids, self.call_rule_ids = set(), set(), set()
        for m in names.values():
            if id(m) in leaf_ids and torch_macs.plain_leaf(m):
                if getattr(m, "inplace", False) is True:
                    self.inplace_ids.add(id(m))
                elif not getattr(m, "inplace", False):
                    self.plain_ids.add(id(m))
                    if type(m) is nn.MultiheadAttention:
                        self.call_rule_ids.add(id(m))
        self.write_guard = write_guard
        self.plain = False
        self.plain_call = None  # the plain leaf running whose figure is added at its end
        # the hooks path's function mode, set only when no caller's dispatch mode must see
        # every operation: set aside while a plain leaf runs on plain tensors (no Python call
        # per function inside it, none per operation: `set_aside`)
        self.mode = None
        self.set_aside = None

    def pre(self, module, args, kwargs=None):
        q = self.qualname_of.get(id(module))
        if self.busy or not self.active or q is None:
            return None
        self.stack.append(q)
        if id(module) in self.leaf_ids:
            self.leaf_depth += 1
            if self.leaf_depth == 1:
                self.counter.push()
                self.plain = id(module) in self.plain_ids
                if self.mode is not None:
                    self._plain_call(module, args)
        return None

    def _plain_call(self, module, args) -> None:
        """Whether this call of a leaf runs without the modes (hooks path, no caller's mode)."""
        if id(module) in self.inplace_ids:
            with torch._C.DisableTorchFunction():  # its tensor reads: no function-mode call each
                self.plain = not self.write_guard.watches(tg.tensors(args))
        if not self.plain:
            return
        plain_args = all(type(t) in _PLAIN_TYPES for t in tg.tensors(args))
        if id(module) in self.call_rule_ids:
            # every operation of the call runs outside the dispatch mode, or none does
            self.plain = plain_args
            self.plain_call = module if plain_args else None
        if plain_args:
            self._set_aside()

    def _set_aside(self) -> None:
        """While a plain leaf runs on plain tensors: no function mode (nothing inside it is
        recorded), no dispatch mode (its figure is its class rule's)."""
        top = torch._C._pop_torch_function_stack()
        if top is not self.mode:
            torch._C._push_on_torch_function_stack(top)
            return
        guard = torch._C._DisableTorchDispatch()
        guard.__enter__()
        self.set_aside = guard

    def put_back(self) -> None:
        """The modes as they were before the plain leaf (also when it raised)."""
        guard, self.set_aside = self.set_aside, None
        if guard is not None:
            guard.__exit__(None, None, None)
            torch._C._push_on_torch_function_stack(self.mode)

    def post(self, module, args, kwargs, out):
        q = self.qualname_of.get(id(module))
        if self.busy or not self.active or q is None:
            return None
        while self.stack and self.stack.pop() != q:
            pass
        leaf = id(module) in self.leaf_ids
        if leaf:
            self.leaf_depth -= 1
            self.plain = False
        if self.leaf_depth:
            return None  # a module called from inside a leaf: its internals are hidden too
        if self.set_aside is not None:
            self.put_back()
        tally = self.counter.pop() if leaf else None
        self.busy = True
        try:
            with torch._C.DisableTorchFunction():  # recording's tensor reads: no mode call each
                if leaf and self.plain_call is module:
                    self.plain_call = None
                    _add_plain_call(tally, module, args, kwargs)
                self.rec.module_call(q, args, kwargs, out, leaf=leaf, counter=tally)
        finally:
            self.busy = False
        return None


def _add_plain_call(tally: torch_macs.Counter, module, args, kwargs) -> None:
    """Add the figure of a plain leaf's call that ran outside the dispatch mode and whose
    class rule needs the call (``torch_macs.plain_call_macs``); a tensor subclass among the
    keyword arguments (whose operations were dispatched) makes it unknown, never counted
    twice."""
    if kwargs and not all(type(t) in _PLAIN_TYPES for t in tg.tensors(kwargs)):
        tally.add(None, True, "%s: called with a tensor subclass" % type(module).__name__)
        return
    try:
        tally.add(torch_macs.plain_call_macs(module, args, kwargs or {}), True, None)
    except torch_macs.MacsUnknown as e:
        tally.add(None, True, str(e))


def _op_figure(tally: torch_macs.Counter):
    return (None, tally.unknown) if tally.unknown else (tally.macs, None)


def _fx_interpret(model, graph, values, rec: tg.Recorder, counter, names, leaf_ids,
                  write_guard):
    """Run the traced graph on the real input, recording calls and ops (their MACs from the
    operations dispatched while each ran); returns (output, {fx node: (shapes, dtype)})."""
    import torch.fx as fx
    from torch.nn.modules import module as module_mod

    shapes: Dict[Any, Tuple[List[List[int]], Optional[str], int]] = {}
    calls = ("call_module", "call_function", "call_method")
    inner = _Calls(names, leaf_ids, rec, counter) if _user_functions(graph) else None
    # plain layers run outside the dispatch mode, unless another mode (the caller's) is active
    plain = {q for q, m in names.items() if id(m) in leaf_ids and torch_macs.plain_leaf(m)} \
        if torch._C._len_torch_dispatch_stack() <= 1 else set()

    def plain_call(a, kw) -> bool:
        """Plain tensors in, none of them watched by the guard (an in-place layer)."""
        ts = tg.tensors((a, kw))
        return all(type(t) is torch.Tensor for t in ts) and not write_guard.watches(ts)

    class Run(fx.Interpreter):
        def call_module(self, target, args, kwargs):
            m = names.get(target)  # no attribute walk per call
            return m(*args, **kwargs) if m is not None else super().call_module(target, args,
                                                                               kwargs)

        def run_node(self, n):
            if n.op not in calls:
                out = super().run_node(n)
            else:
                a, kw = self.fetch_args_kwargs_from_env(n)
                tally = counter.push()
                if inner is not None:
                    inner.active = n.op == "call_function"
                try:
                    if n.op == "call_module" and n.target in plain and plain_call(a, kw):
                        with torch._C._DisableTorchDispatch():  # no Python call per operation
                            out = self.call_module(n.target, a, kw)
                        if type(names[n.target]) is nn.MultiheadAttention:
                            _add_plain_call(tally, names[n.target], a, kw)
                    else:
                        out = getattr(self, n.op)(n.target, a, kw)
                except Exception as e:
                    raise ForwardFailed(_innermost(n), e) from e
                finally:
                    counter.pop()
                    if inner is not None:
                        inner.active = False
                if n.op == "call_module":
                    rec.module_call(n.target, a, kw, out, leaf=True, counter=tally)
                elif not (n.target is operator.getitem and not isinstance(a[0], torch.Tensor)) \
                        and n.target is not getattr:
                    rec.op_call(n.target if n.op == "call_function" else tg.MethodName(n.target),
                                _innermost(n), a, kw, out, macs=_op_figure(tally))
            if n.op != "get_attr":
                ts = tg.tensors(out)
                shapes[n] = ([tg.shape(t) for t in ts], tg.dtype(ts[0]) if ts else None,
                             tg.nbytes(ts))
            return out

    handles = []
    if inner is not None:
        handles = [module_mod.register_module_forward_pre_hook(inner.pre),
                   module_mod.register_module_forward_hook(inner.post, with_kwargs=True)]
    try:
        return Run(model, graph=graph).run(*values), shapes
    finally:
        for h in handles:
            h.remove()


def _fx_containers(graph, names, leaf_ids, shapes) -> Dict[str, List[tg.Call]]:
    """Containers never run in the graph: their calls come from nn_module_stack ("name@k" =
    call k), their shapes from the nodes they enclose."""
    groups: Dict[str, List[Any]] = {}
    group_name: Dict[str, str] = {}
    for n in graph.nodes:
        for key, (qual, _cls) in (n.meta.get("nn_module_stack") or {}).items():
            if qual in names and id(names[qual]) not in leaf_ids:
                groups.setdefault(key, []).append(n)
                group_name[key] = qual
    containers: Dict[str, List[tg.Call]] = {}
    for key, nodes in groups.items():
        members = set(nodes)
        ins, outs, seen = [], [], set()
        dtype, out_bytes = None, 0
        for n in nodes:
            for a in n.all_input_nodes:
                if a not in members and a.op != "get_attr" and a not in seen:
                    seen.add(a)
                    ins.extend(shapes.get(a, ([], None, 0))[0])
            if any(u not in members for u in n.users) and n in shapes:
                outs.extend(shapes[n][0])
                out_bytes += shapes[n][2] or 0
                if dtype is None:
                    dtype = shapes[n][1]
        containers.setdefault(group_name[key], []).append(tg.Call(ins, outs, dtype, out_bytes))
    return containers


def _run_fx(model, args, kwargs, names, leaf_ids, rec: tg.Recorder, guard: Guard):
    """Symbolically trace, then interpret the graph on the real input; returns (output,
    container calls {name: [Call]}, stray counter)."""
    bound, concrete = _fx_checks(model, args, kwargs, names, leaf_ids)
    graph = _fx_trace(model, concrete, leaf_ids, guard)
    guard.state.revert(only_proxies=True)  # what the trace stored in the modules
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(bound.arguments):
        raise _FxUnsupported("the traced graph's inputs do not match forward's signature")
    counter = torch_macs.op_counter(guard.write_guard.before)
    with counter:
        output, shapes = _fx_interpret(model, graph, list(bound.arguments.values()), rec,
                                       counter, names, leaf_ids, guard.write_guard)
    return output, _fx_containers(graph, names, leaf_ids, shapes), counter.stray


# ---------------------------------------------------------------------------------------------
# the hooks path

_UNBIND = torch.Tensor.unbind
_PLAIN_TYPES = frozenset((torch.Tensor, nn.Parameter))
_NOT_TENSORS = frozenset((bool, int, float, str, torch.Size, torch.dtype, torch.device))
_GETTERS = frozenset(
    [getattr(torch.Tensor, n).__get__ for n in (
        "shape", "dtype", "device", "ndim", "requires_grad", "is_cuda", "layout", "is_meta",
        "is_sparse", "is_quantized", "is_leaf") if hasattr(torch.Tensor, n)]
    + [getattr(torch.Tensor, n) for n in (
        "size", "dim", "numel", "nelement", "is_floating_point", "is_complex", "stride",
        "is_contiguous", "data_ptr", "element_size", "storage_offset", "get_device",
        "__len__") if hasattr(torch.Tensor, n)])  # they read a tensor's metadata, nothing else
_UNPACK = dis.opmap["UNPACK_SEQUENCE"]

# what the hooks path's function mode does with a function, decided once per function
_GETTER, _ZERO_MACS, _OTHER = "getter", "zero MACs", "other"
_FUNCTION_KINDS: Dict[Any, str] = {}


def _function_kind(func: Any) -> str:
    """_GETTER (reads metadata only), _ZERO_MACS (``torch_macs.zero_macs_function``) or
    _OTHER; remembered in ``_FUNCTION_KINDS`` (bounded, like ``op_name``'s names)."""
    kind = _GETTER if func in _GETTERS else _ZERO_MACS if torch_macs.zero_macs_function(func) \
        else _OTHER
    if len(_FUNCTION_KINDS) < 10000:
        _FUNCTION_KINDS[func] = kind
    return kind


def _unpacked(frame) -> bool:
    """Whether this ``unbind`` is ``Tensor.__iter__`` serving a tuple unpacking (``q, k, v =
    qkv``): torch.fx traces that as one ``getitem`` per item, and so is it recorded."""
    if frame is None or frame.f_code is not torch.Tensor.__iter__.__code__:
        return False
    caller = frame.f_back
    try:
        return caller is not None and caller.f_lasti >= 0 and \
            caller.f_code.co_code[caller.f_lasti] == _UNPACK
    except (IndexError, AttributeError):
        return False


def _code_names(fn: Any, depth: int = 0, seen: Optional[set] = None) -> set:
    """The global and attribute names the code of `fn` (its nested code, and the functions of
    its own namespace it calls by name, 3 levels deep) refers to."""
    seen = seen if seen is not None else set()
    code = getattr(fn, "__code__", None)
    if code is None or code in seen:
        return set()
    seen.add(code)
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    space = getattr(fn, "__globals__", None) or {}
    if depth < 3:
        for n in list(names):
            g = space.get(n)
            if inspect.isfunction(g):
                names |= _code_names(g, depth + 1, seen)
    return names


def _fx_wrapped(model: nn.Module, names: Dict[str, nn.Module], leaf_ids: set) -> List[str]:
    """The ``torch.fx.wrap``-ed functions a trace of `model` would keep whole: torch.fx shows
    each call of one as a single op, which only the fx path can do. Those whose name the
    forward of the model or of one of its containers refers to (a leaf's forward is never
    traced), directly or through functions of its module; torch's own registrations are not
    the model's."""
    import torch.fx._symbolic_trace as st

    if getattr(st, "_wrapped_methods_to_patch", None):
        return ["a wrapped Tensor method"]
    try:
        wrapped = {name for (_gid, name), g in getattr(st, "_wrapped_fns_to_patch", {}).items()
                   if not str(g.get("__name__", "")).startswith("torch.")}
    except (AttributeError, TypeError, ValueError):
        return []
    if not wrapped:
        return []
    used: set = set()
    classes = {type(m) for m in itertools.chain(
        [model], (m for m in names.values() if id(m) not in leaf_ids))}
    for cls in classes:
        fn = getattr(cls.forward, "__func__", cls.forward)
        try:
            fn = inspect.unwrap(fn)  # a decorated forward: the code that was written
        except ValueError:
            pass
        used |= _code_names(fn)
    return sorted(wrapped & used)


class _FunctionMode(TorchFunctionMode):
    """The hooks path's function mode: records each functional op called outside leaves (its
    figure from the dispatch mode `counter`, or 0 for a function that only runs 0-MAC
    operations), runs the metadata getters and the calls inside leaves untouched. One class
    for every run (its state on the instance): a run leaves no reference cycle behind, so its
    records are freed as soon as the document is built."""

    def __init__(self, seen: "_Calls", rec: tg.Recorder, counter, alone: bool):
        super().__init__()
        self.seen, self.rec, self.counter, self.alone = seen, rec, counter, alone
        self.failed_op: Optional[str] = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            kind = _FUNCTION_KINDS[func]
        except KeyError:
            kind = _function_kind(func)
        except TypeError:  # unhashable
            kind = _OTHER
        if kind is _GETTER:  # x.shape, x.size(), x.dim(), ...: no tensor, no operation
            return func(*args, **kwargs) if kwargs else func(*args)
        if kwargs is None:
            kwargs = {}
        seen = self.seen
        # 0 MACs and no write, or a plain layer's call (its figure by its class rule): run
        # outside the dispatch mode (no Python call per operation)
        free = self.alone and (
            seen.plain or (kind is _ZERO_MACS and _zero_macs_args(args, kwargs))
        ) and _PLAIN_TYPES.issuperset(types)
        if seen.busy or seen.leaf_depth:
            if free:
                if seen.leaf_depth and _reads_parameter(getattr(func, "__name__", ""), args):
                    self.counter.lookup()  # a leaf reading its own weight (x + self.pos, ...)
                with _no_dispatch():
                    return func(*args, **kwargs)
            return func(*args, **kwargs)
        try:
            if free:  # nothing dispatched is counted: its figure is 0
                with _no_dispatch():
                    out = func(*args, **kwargs)
                figure = _ZERO_FIGURE
            else:
                counter = self.counter
                tally = counter.push()
                try:
                    out = func(*args, **kwargs)
                finally:
                    counter.pop()
                figure = _op_figure(tally)
        except Exception:
            self.failed_op = self.failed_op or tg.op_name(func)
            raise
        if out is None or type(out) in _NOT_TENSORS:
            return out
        seen.busy = True
        try:
            with torch._C.DisableTorchFunction():
                parent = seen.stack[-1] if seen.stack else None
                if func is _UNBIND and _unpacked(sys._getframe(1)):
                    for i, item in enumerate(out):  # `q, k, v = qkv`, as torch.fx shows it
                        self.rec.op_call(operator.getitem, parent, (args[0], i), {}, item,
                                         macs=_ZERO_FIGURE)
                else:
                    self.rec.op_call(func, parent, args, kwargs, out, macs=figure)
        finally:
            seen.busy = False
        return out


_zero_macs_args, _no_dispatch = torch_macs.zero_macs_args, torch._C._DisableTorchDispatch
_ZERO_FIGURE = (0, None)
_reads_parameter = torch_macs.reads_parameter


def _run_hooks(model, args, kwargs, names, leaf_ids, rec: tg.Recorder, write_guard):
    """The real forward with hooks on every module and a TorchFunctionMode for the functional
    ops outside leaves; MACs from a dispatch mode (which also lets `write_guard` copy what an
    in-place op is about to write). Returns (output, stray counter)."""
    counter = torch_macs.op_counter(write_guard.before)
    alone = torch._C._len_torch_dispatch_stack() == 0  # no caller's mode that must see all ops
    seen = _Calls(names, leaf_ids, rec, counter, write_guard=write_guard)
    mode = _FunctionMode(seen, rec, counter, alone)
    from torch.nn.modules import module as module_mod

    handles = []
    try:  # two global hooks (they ignore modules outside the model) instead of two per module
        handles = [module_mod.register_module_forward_pre_hook(seen.pre),
                   module_mod.register_module_forward_hook(seen.post, with_kwargs=True)]
        try:
            with counter, mode:
                seen.mode = mode if alone else None
                try:
                    return model(*args, **kwargs), counter.stray
                finally:
                    seen.put_back()  # a plain leaf that raised
                    seen.mode = None  # no cycle between the mode and the hooks' state
        except Exception as e:
            failed = ForwardFailed(seen.stack[-1] if seen.stack else None, e)
            failed.partial, failed.op = rec, mode.failed_op
            raise failed from e
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------------------------------------
# public entry point

_INPUT_SUFFIXES = ("input_ids", "inputs_embeds", "pixel_values", "input_values",
                   "input_features")


def _missing_inputs_hint(model: nn.Module, args: tuple, kwargs: Dict[str, Any]) -> str:
    """"; forward also takes decoder_input_ids (not given)" when the model's forward names
    tensor inputs (Hugging Face style: ``*input_ids``, ``*inputs_embeds``, ``pixel_values``)
    of which neither form was passed — the usual cause of a failure such as T5 without
    ``decoder_input_ids``."""
    try:
        params = list(_signature(model).parameters)
    except (TypeError, ValueError):
        return ""
    given = set(kwargs) | set(params[:len(args)])
    missing, seen = [], set()
    for name in params:
        suffix = next((x for x in _INPUT_SUFFIXES if name.endswith(x)), None)
        if suffix is None or name in given:
            continue
        stem = name[:-len(suffix)]
        if suffix in ("input_ids", "inputs_embeds"):
            pair = {stem + "input_ids", stem + "inputs_embeds"}
            if pair & given or stem in seen:
                continue
            seen.add(stem)
            name = stem + "input_ids"
        missing.append(name)
    return ("; forward also takes %s (not given)" % ", ".join(missing)) if missing else ""


def _checked_call(model: Any, input_to_model: Any) -> Tuple[nn.Module, tuple, Dict[str, Any]]:
    if not isinstance(model, nn.Module):
        raise ExtractionError("model must be a torch.nn.Module, got %s" % type(model).__name__)
    model = tg.unwrap(model)
    if isinstance(model, torch.jit.ScriptModule):
        raise ExtractionError("TorchScript modules are not supported: pass the nn.Module that "
                              "was scripted")
    args, kwargs = tg.call_args(input_to_model)
    try:
        sig = _signature(model)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise ExtractionError("input_to_model does not fit %s.forward%s: %s"
                                  % (type(model).__name__, sig, e)) from None
    return model, args, kwargs


def _unattributed(rec: tg.Recorder, stray: torch_macs.Counter) -> None:
    """Operations dispatched outside every module and functional op (none in the usual
    model): one op node ``unattributed`` holds their MACs, so the totals miss nothing."""
    if stray.macs or stray.unknown:
        rec.ops.append(tg.Op(rec.new_id("unattributed"), "unattributed", None, [], [], None, {},
                             None, None if stray.unknown else stray.macs, stray.unknown))


HOOKS_REASON = "the forward run once with module hooks and a function mode"


def _trace(model, args, kwargs, names, leaf_ids, new_recorder, method: str, guard: Guard,
           wrapped: List[str]):
    """Run the model once (fx, else hooks): (recorder, output, containers, extraction);
    `wrapped`: the torch.fx.wrap-ed functions the model calls (``_fx_wrapped``)."""
    if method == "hooks" or (method == "auto" and not wrapped):
        rec = new_recorder()
        output, stray = _run_hooks(model, args, kwargs, names, leaf_ids, rec, guard.write_guard)
        _unattributed(rec, stray)
        return rec, output, {}, {"method": "hooks", "reason": "requested (method='hooks')"
                                 if method == "hooks" else HOOKS_REASON}
    rec = new_recorder()
    try:
        output, containers, stray = _run_fx(model, args, kwargs, names, leaf_ids, rec, guard)
        guard.trace_writes.copies.clear()  # the trace's in-place writes were the one forward
        _unattributed(rec, stray)
        return rec, output, containers, {"method": "fx", "reason": "torch.fx symbolic trace" + (
            " (the model calls torch.fx.wrap-ed %s, each call shown as one op)"
            % ", ".join(wrapped) if wrapped else "")}
    except _FxUnsupported as e:
        if method == "fx":
            raise ExtractionError(str(e)) from None
        extraction = {"method": "hooks", "reason": str(e)}
    except ForwardFailed as e:
        if method == "fx":
            raise
        extraction = {"method": "hooks", "reason": "the fx graph failed on the example input (%s)"
                      % one_line(e.error)}
    guard.state.revert()  # undo what the failed attempt did: the model sees one forward call
    guard.trace_writes.restore()
    guard.write_guard.restore()
    rec = new_recorder()
    output, stray = _run_hooks(model, args, kwargs, names, leaf_ids, rec, guard.write_guard)
    _unattributed(rec, stray)
    return rec, output, {}, extraction


def _is_meta_failure(model: nn.Module, inputs, e: ForwardFailed) -> bool:
    """The forward failed because an op has no meta kernel (a model on the meta device)."""
    on_meta = any(t.is_meta for _, t in inputs) or any(
        p.is_meta for p in itertools.islice(model.parameters(), 1))
    text = str(e.error).lower()
    return on_meta and isinstance(e.error, (NotImplementedError, RuntimeError)) and "meta" in text \
        and getattr(e, "partial", None) is not None


def _failed_op(e: ForwardFailed) -> str:
    found = re.search(r"\b(aten::\w+|Tensor\.\w+\(\))", str(e.error))
    if found:
        return found.group(1)
    return getattr(e, "op", None) or type(e.error).__name__


@dataclasses.dataclass
class _Plan:
    """What extract_torch knows before the run."""
    model: nn.Module
    names: Dict[str, nn.Module]
    modules: Dict[str, tg.ModuleInfo]
    leaf_ids: set
    inputs: List[Tuple[str, torch.Tensor]]
    bare: bool
    params_before: Dict[str, tuple] = dataclasses.field(default_factory=dict)
    root_counts: Optional[Tuple[int, int]] = None  # the whole model's, when known before
    batch_size: Optional[int] = None

    def _modules_now(self) -> Dict[str, tg.ModuleInfo]:
        """The modules as the forward left them: a lazy layer (``nn.LazyLinear``) is
        materialised by its first call, which changes its class and creates its parameters; a
        module may create, replace or materialise a parameter in its forward by hand. Such a
        module's parameters are counted as they ended up, and its ``reason`` says so."""
        notes = {}
        for q, m in self.names.items():
            note = _params_note(self.params_before.get(q, ()), m)
            if note:
                notes[q] = note
        if not notes and not any(type(m).__name__ != self.modules[q].class_name
                                 for q, m in self.names.items()):
            return self.modules
        paths = {id(p): k for k, p in self.model.named_parameters()}
        now = {q: tg.module_info(q, m, paths) for q, m in self.names.items()}
        for q, note in notes.items():
            now[q].note = note
        return now

    def recorder(self) -> tg.Recorder:
        rec = tg.Recorder(set(self.names) | {n for n, _ in self.inputs})
        for n, t in self.inputs:
            rec.track(t, n)
        return rec

    def build(self, rec, containers, output, extraction, stopped=None) -> schema.Architecture:
        modules = self._modules_now()
        # the plan's counts hold unless the forward changed a parameter (then count again)
        same = modules is self.modules and (self.bare or _params_state(self.model) ==
                                            self.params_before.get(""))
        counts = self.root_counts if same else None
        return tg.build_architecture(
            type(self.model).__name__, modules, self.inputs, rec, containers, output,
            extraction, counts or tg.param_counts(self.model.parameters()),
            sum(b.numel() for b in self.model.buffers()), stopped=stopped,
            batch_size=self.batch_size,
            own=None if self.bare else tg.module_info("", self.model, counts=counts),
            weights_used=tg.weights_used_by(rec, self.names))


def _plan(model: nn.Module, args: tuple, kwargs: Dict[str, Any]) -> _Plan:
    names: Dict[str, nn.Module] = {q: m for q, m in model.named_modules() if q}
    # a bare torch.nn layer as the model (nn.Linear(8, 64)): it is a node, named by its class (a
    # model class of one's own without submodules keeps its functional ops as nodes)
    bare = tg.is_leaf(model) and type(model).__module__.startswith("torch.")
    if bare:
        root = type(model).__name__
        names = {root + ("." + q if q else ""): m for q, m in model.named_modules()}
    every = list(model.named_parameters(remove_duplicate=False))  # one walk for both
    paths = tg.parameter_paths(every)
    counts = tg.subtree_counts(model, every) or {}
    prefix = len(root) + 1 if bare else 0
    hf_memo: Dict[Any, Any] = {}
    modules = {q: tg.module_info(q, m, paths, counts.get(q[prefix:], (0, 0)) if counts else None,
                                 hf_memo)
               for q, m in names.items()}
    leaf_ids = {id(names[q]) for q, info in modules.items() if info.leaf}
    return _Plan(model, names, modules, leaf_ids, _input_names(model, args, kwargs, set(names)),
                 bare, {q: _params_state(m) for q, m in [("", model)] + list(names.items())},
                 counts.get("", (0, 0)) if counts else None)


def _params_state(m: nn.Module) -> tuple:
    """(name, id, uninitialized) of a module's own parameters, to see what a forward did."""
    return tuple((k, id(p), isinstance(p, nn.parameter.UninitializedTensorMixin))
                 for k, p in m._parameters.items())


def _params_note(before: tuple, m: nn.Module) -> Optional[str]:
    """"parameters as the forward left them: ..." when the forward created, replaced or
    materialised a parameter of `m` (None: nothing changed)."""
    now = _params_state(m)
    if now == before:
        return None
    old = {k: (i, u) for k, i, u in before}
    done = []
    for k, i, u in now:
        if k not in old:
            done.append("%s created" % k)
        elif old[k][0] != i or (old[k][1] and not u):
            done.append("%s %s" % (k, "materialised" if old[k][1] else "replaced"))
    if not done:
        return None
    return "parameters counted as the forward left them (%s during the forward)" % ", ".join(done)


def _meta_partial(plan: _Plan, e: ForwardFailed) -> schema.Architecture:
    """A meta-device model whose forward calls an op with no meta kernel: the graph as far as
    the forward got, every other module with unknown shapes (never an error)."""
    op = _failed_op(e)
    where = "module '%s'" % e.module if e.module else "the model's own forward"
    msg = ("the forward on the meta device stopped in %s at %s, which has no meta kernel"
           % (where, op))
    warnings.warn("tensorboard-archviz: %s; the architecture is partial (shapes unknown after "
                  "that point)" % msg, RuntimeWarning, stacklevel=3)
    extraction = {"method": "hooks", "reason": msg, "partial": True, "failed_op": op,
                  "failed_module": e.module}
    return plan.build(e.partial, {}, None, extraction, stopped="not reached: " + msg)


def extract_torch(model: nn.Module, input_to_model: Any, *, method: str = "auto",
                  batch_size: Optional[int] = None) -> schema.Architecture:
    """The Architecture of `model`, from one forward pass on `input_to_model`.

    `input_to_model` is passed like ``SummaryWriter.add_graph`` / torchinfo do: a tensor as
    ``model(x)``, a tuple/list as ``model(*x)``, a dict as ``model(**x)`` (wrap a dict argument
    in a tuple: ``(batch_dict,)``). `method` is ``"auto"`` (one real forward with hooks; torch.fx
    first only for a model calling a ``torch.fx.wrap``-ed function), ``"fx"`` or ``"hooks"``. `batch_size`: how many examples the input holds, when it is not
    the first dimension of the first input (e.g. ``nn.LSTM``/``nn.Transformer`` with
    sequence-first inputs); MACs and output bytes are divided by it. Raises
    ``ExtractionError`` when the model cannot run on the input. A model on the meta device
    whose forward calls an op without a meta kernel gives a partial graph instead (``extraction["partial"]``, a warning names the op). See the module docstring
    for the conventions (MACs per example, memory, side effects).
    """
    if method not in METHODS:
        raise ValueError("method must be one of %s, got %r" % (METHODS, method))
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError("batch_size must be a positive integer or None, got %r" % (batch_size,))
    model, args, kwargs = _checked_call(model, input_to_model)
    collecting = gc.isenabled()
    gc.disable()  # no cyclic collection in the middle of the run (it costs up to a third)
    try:
        return _extract(model, args, kwargs, method, batch_size)
    finally:
        if collecting:
            gc.enable()


def _extract(model: nn.Module, args: tuple, kwargs: Dict[str, Any], method: str,
             batch_size: Optional[int]) -> schema.Architecture:
    plan = _plan(model, args, kwargs)
    plan.batch_size = batch_size
    method = "hooks" if plan.bare else method
    wrapped = _fx_wrapped(model, plan.names, plan.leaf_ids) if method == "auto" else []
    try:  # module attributes are snapshotted only when a torch.fx trace may run
        with Guard(model, [t for _, t in plan.inputs],
                   trace=method == "fx" or bool(wrapped)) as guard:
            rec, output, containers, extraction = _trace(
                model, args, kwargs, plan.names, plan.leaf_ids, plan.recorder, method, guard,
                wrapped)
            if plan.bare:
                extraction["reason"] = "the model is a single layer: its call recorded by hooks"
            return plan.build(rec, containers, output, extraction)
    except ForwardFailed as e:
        if _is_meta_failure(model, plan.inputs, e):
            return _meta_partial(plan, e)
        names = plan.names
        where = ("module '%s' (%s)" % (e.module, type(names[e.module]).__name__)
                 if e.module in names else "the forward of %s itself" % type(model).__name__)
        shapes = [tg.shape(t) for _, t in plan.inputs]
        raise ExtractionError("%s: the forward pass on the example input (shapes %s) failed in %s: %s%s"
                              % (type(model).__name__, shapes, where, one_line(e.error),
                                 _missing_inputs_hint(model, args, kwargs)),
                              module=e.module) from e.error
