"""keras.Model (Keras 3) -> schema.Architecture.

Works on every Keras backend (TensorFlow, torch, JAX): only Keras' own symbolic graph is read.

How the graph is found (recorded in ``arch.extraction["method"]``):

- ``"functional_graph"``: a Functional model, read from its node graph (``op._inbound_nodes``
  filtered by the model's own node keys). Shapes come from the graph's KerasTensors, so no layer
  is re-run (ResNet-152 takes well under a second).
- ``"sequential_graph"``: a built Sequential model, read from the Functional it builds.
- ``"symbolic_trace"``: a subclassed model that has been built: ``model.call`` is run once on
  symbolic KerasTensors of its build shapes, which makes Keras record the node graph of every layer
  and ``keras.ops`` call; the recorded nodes are removed again afterwards (no side effects on the
  model's graph).
- ``"sequential_layers"``: a Sequential model without a functional graph (e.g. a layer without
  shape inference): the layer chain, shapes computed layer by layer.
- ``"tracked_layers"``: the trace was impossible (``call`` uses backend ops, Python control flow on
  values, ...): every tracked layer is a node, with shapes from its build config, and no edges.
  ``arch.extraction["reason"]`` says why.

Ids are Keras name paths: a layer of the model is ``dense_1``; a layer of a nested model
``inner`` is ``inner/dense_1``. A nested model is a container node (``is_container``) whose
children name it as ``parent``; its params are the sum over its subtree. Edges join the
innermost nodes Keras' graph knows: an edge into a nested Functional/Sequential model ends at its
InputLayer (``inner/input_layer``) and an edge out of it starts at the layer producing its output,
so a viewer that collapses the container maps both ends onto it.

Per node: shapes of every call input/output (first call; batch dim ``null``), dtype of the first
output (``dtype_policy`` when the policy is mixed or quantized), params counted like Keras
(``trainable_weights`` / ``non_trainable_weights``: ``BatchNormalization(8)`` = 16 + 16), the
activation, the config keys that matter, ``weights``
``[{name, path, shape, trainable, dtype}]``, ``calls`` for a layer called more than once
(one node, edges from every call), ``is_input`` on InputLayers, ``container_calls`` on the
layers of a nested model called more than once (their MACs and output bytes count every call).

MACs (``macs``) are per example (batch 1) in ``schema.MACS_CONVENTION``, summed over the calls of
a shared layer; the rules per layer class are in ``extract/keras_macs.py`` (N-D Dense and
EinsumDense at every position, convolutions of every rank, MultiHeadAttention with its
projections, QK^T and AV, recurrent cells per step; elementwise layers and Embedding 0); a layer
without a rule (a custom layer, a Lambda) is counted by tracing its ``call()``, and one whose
figure cannot be known has ``macs`` null and a ``macs_reason``. A nested subclassed model (read
from its tracked layers) has its ``call()`` traced too: its layers take the calls the trace shows
and the work it does between them is its ``self_macs``; a top-level model read as
``"tracked_layers"`` says its own work is unknown (``model.self_macs`` null). ``memory`` per
node: ``params_bytes`` from the variables' own dtypes, ``output_bytes`` of every output of every
call per example (output dtype: the mixed-precision compute dtype where it applies). Containers
(nested models) and the model totals (``macs``, ``macs_complete``, ``memory``) are filled by
``totals.fill_totals``. ``model.batch_size`` is null: the graph is read symbolically, no example
batch is run.

Model totals are ``model.count_params()`` split into trainable / non-trainable weights (never
optimizer variables, which Keras' ``summary()`` adds after ``compile()``+``fit()``; those are
reported separately as ``model.optimizer_params``).

A layer whose output shape cannot be computed still appears, with null shapes and a ``reason``;
one warning (python ``logging``, logger ``tensorboard_archviz.extract.keras``) lists them.
"""

from __future__ import annotations

import logging
import math
import re
import types
from typing import Any, Dict, Iterable, List, Optional, Tuple

import keras
from keras.src.ops.function import make_node_key

from tensorboard_archviz import schema, totals
from tensorboard_archviz.extract.keras_macs import arg_shapes, call_macs, traced_calls

logger = logging.getLogger(__name__)

# Config keys worth showing (kept when the layer's get_config() has them and they are JSON-safe).
CONFIG_KEYS = (
    "units", "filters", "kernel_size", "strides", "padding", "dilation_rate", "groups",
    "depth_multiplier", "rate", "noise_shape", "axis", "pool_size", "use_bias", "data_format",
    "momentum", "epsilon", "center", "scale", "target_shape", "dims", "size", "interpolation",
    "cropping", "num_heads", "key_dim", "value_dim", "dropout", "recurrent_dropout",
    "input_dim", "output_dim", "mask_zero", "return_sequences", "return_state", "go_backwards",
    "stateful", "unroll", "recurrent_activation", "keepdims", "output_size", "negative_slope",
    "max_value", "threshold", "alpha", "batch_shape", "mean", "variance",
    "offset", "height", "width", "output_mode", "num_tokens", "equation", "output_shape",
    "bias_axes", "sequence_length", "merge_mode",
)

# Activation layers whose "activation" is their class.
_ACTIVATION_LAYERS = {
    "ReLU": "relu", "LeakyReLU": "leaky_relu", "PReLU": "prelu", "ELU": "elu",
    "Softmax": "softmax",
}


def extract_keras(model: Any) -> schema.Architecture:
    """The Architecture of a Keras 3 model (Sequential, Functional or built subclassed model)."""
    return _Extractor(model).run()


def extract_keras_layers(model: Any) -> Tuple[schema.Architecture, Dict[str, Any]]:
    """One extraction, both results: the Architecture and ``{node id: layer}`` (what
    ``layer_node_ids`` gives), for callers that need the layers behind the nodes (gradient
    reach) without walking the model twice."""
    ex = _Extractor(model)
    arch = ex.run()
    return arch, {nid: op for nid, op in ex.ops.items() if isinstance(op, keras.layers.Layer)}


def layer_node_ids(model: Any) -> Dict[str, Any]:
    """``{node id: layer}`` for every Keras layer of ``model``, with the ids ``extract_keras`` uses.

    Other modules (e.g. the filter grids) use it to name layers the way the Architecture does.
    """
    return extract_keras_layers(model)[1]


# ---------------------------------------------------------------------------------------------
# small helpers

def _shape(shape: Any) -> Optional[List[Optional[int]]]:
    """A JSON shape (list of int|None) from a Keras/TensorShape-like shape, or None."""
    if shape is None:
        return None
    try:
        return [None if d is None else int(d) for d in tuple(shape)]
    except (TypeError, ValueError):
        return None


def _tensor_shape(t: Any) -> Optional[List[Optional[int]]]:
    return _shape(getattr(t, "shape", None))


def _json_safe(v: Any, depth: int = 0) -> Any:
    """v as plain JSON data, or a sentinel ``_SKIP`` when it is not representable."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)) and depth < 3:
        out = [_json_safe(x, depth + 1) for x in v]
        return _SKIP if any(x is _SKIP for x in out) else out
    if hasattr(v, "item") and hasattr(v, "dtype"):  # numpy scalar
        try:
            return _json_safe(v.item(), depth + 1)
        except Exception:  # noqa: BLE001 - any odd scalar is just skipped
            return _SKIP
    return _SKIP


_SKIP = object()


def _count(weights: Iterable[Any]) -> int:
    return int(sum(math.prod(tuple(v.shape)) for v in weights))


def _weights_bytes(weights: Iterable[Dict[str, Any]]) -> int:
    """Bytes of a node's ``weights`` entries, from each variable's own dtype."""
    return int(sum(math.prod(w["shape"] or ()) * (totals.itemsize(w["dtype"]) or 4)
                   for w in weights))


def _weight_entries(variables: Iterable[Any], trainable_ids: set) -> List[Dict[str, Any]]:
    return [{"name": str(v.name), "path": str(getattr(v, "path", v.name)),
             "shape": _shape(v.shape), "trainable": id(v) in trainable_ids,
             "dtype": str(v.dtype)} for v in variables]


def _own_weights(model: Any) -> List[Any]:
    """The variables a model holds itself (``add_weight`` in a subclassed model), not through
    one of its layers."""
    held = {id(v) for layer in model._flatten_layers(include_self=False, recursive=True)
            for v in layer.weights}
    return [v for v in model.weights if id(v) not in held]


def _is_model(op: Any) -> bool:
    return isinstance(op, keras.Model)


def _graph_of(op: Any) -> Optional[Any]:
    """The Functional graph that describes a model (the model itself, or a Sequential's)."""
    from keras.src.models.functional import Functional

    if isinstance(op, Functional):
        return op
    if isinstance(op, keras.Sequential):
        return getattr(op, "_functional", None) or None
    return None


def _activation_name(op: Any, config: Dict[str, Any]) -> Optional[str]:
    cls = type(op).__name__
    if cls in _ACTIVATION_LAYERS:
        return _ACTIVATION_LAYERS[cls]
    act = config.get("activation")
    if isinstance(act, str):
        return act
    if isinstance(act, dict):  # a serialized custom function
        inner = act.get("config")
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
        if isinstance(act.get("class_name"), str):
            return act["class_name"]
    fn = getattr(op, "activation", None)
    if callable(fn):
        return getattr(fn, "__name__", None) or type(fn).__name__
    return None


def _dtype_policy(op: Any) -> Optional[str]:
    policy = getattr(op, "dtype_policy", None)
    name = getattr(policy, "name", None)
    if not isinstance(name, str):
        return None
    compute = getattr(policy, "compute_dtype", None)
    variable = getattr(policy, "variable_dtype", None)
    if compute != variable or name not in (compute, variable):
        return name
    return None


# ---------------------------------------------------------------------------------------------
# the extractor

class _Extractor:
    def __init__(self, model: Any):
        if not isinstance(model, keras.Model):
            raise TypeError("extract_keras expects a keras.Model, got %s" % type(model).__name__)
        self.model = model
        self.nodes: Dict[str, schema.Node] = {}
        self.ops: Dict[str, Any] = {}
        self.ids_by_op: Dict[int, str] = {}
        # node id -> [(input shapes, output shapes, output dtypes, argument shapes)] per call
        self.calls: Dict[str, List[Tuple[list, list, Any]]] = {}
        self.edges: Dict[Tuple[str, str, Any], schema.Edge] = {}
        self.failures: List[Tuple[str, str]] = []
        self.method = ""
        self.detail: Optional[str] = None
        # during a trace: (ids of the model's layers, ids of the InputLayers made for it)
        self._fresh: Optional[Tuple[set, set]] = None

    # -- entry -------------------------------------------------------------------------------
    def run(self) -> schema.Architecture:
        model = self.model
        inputs: List[str] = []
        outputs: List[str] = []
        graph = _graph_of(model)
        if graph is not None:
            self.method = "sequential_graph" if isinstance(model, keras.Sequential) \
                else "functional_graph"
            self._walk_graph(graph, "", None)
            inputs, outputs = self._io(graph)
        elif isinstance(model, keras.Sequential):
            self.method = "sequential_layers"
            self.detail = "the Sequential model has no functional graph (not built, or a " \
                          "layer without shape inference); shapes computed layer by layer"
            inputs, outputs = self._layers_mode(model, "", None, chain=True)
        else:
            traced = self._trace(model)
            if traced is None:
                self.method = "tracked_layers"
                self._layers_mode(model, "", None, chain=False)
            else:
                inputs, outputs = traced
        self._finish_calls()
        if self.failures:
            logger.warning(
                "tensorboard_archviz: output shape unknown for %d layer(s) of model %r: %s",
                len(self.failures), model.name,
                "; ".join("%s (%s)" % (nid, why) for nid, why in self.failures))
        return self._architecture(inputs, outputs)

    def _io(self, graph: Any) -> Tuple[List[str], List[str]]:
        ins = [i for i in (self._resolve_source(t) for t in graph._inputs) if i is not None]
        outs = [i for i in (self._resolve_source(t) for t in graph._outputs) if i is not None]
        return _unique(ins), _unique(outs)

    # -- nodes -------------------------------------------------------------------------------
    def _add_op(self, op: Any, prefix: str, parent: Optional[str]) -> str:
        """The node of an operation (created once per operation object; containers recurse)."""
        known = self.ids_by_op.get(id(op))
        if known is not None:
            return known
        name = str(getattr(op, "name", type(op).__name__))
        if self._fresh is not None and id(op) not in self._fresh[0] \
                and id(op) not in self._fresh[1]:
            # created by the trace itself (a keras.ops call): Keras' global name counter would
            # give it a new name each time; number it per extraction so ids stay stable.
            name = re.sub(r"_\d+$", "", name)
            nid, n = prefix + name, 0
            while nid in self.nodes:
                n += 1
                nid = "%s%s_%d" % (prefix, name, n)
        else:
            base = prefix + name
            nid, n = base, 1
            while nid in self.nodes:
                n += 1
                nid = "%s#%d" % (base, n)
        self.ids_by_op[id(op)] = nid
        self.ops[nid] = op
        node = self._describe(op, nid, parent)
        node.name = nid[len(prefix):]
        self.nodes[nid] = node
        self.calls[nid] = []
        if _is_model(op):
            node.is_container = True
            graph = _graph_of(op)
            if graph is not None:
                self._walk_graph(graph, nid + "/", nid)
            else:
                self._layers_mode(op, nid + "/", nid,
                                  chain=isinstance(op, keras.Sequential))
        return nid

    def _describe(self, op: Any, nid: str, parent: Optional[str]) -> schema.Node:
        is_layer = isinstance(op, keras.layers.Layer)
        config: Dict[str, Any] = {}
        raw: Dict[str, Any] = {}
        if is_layer:
            try:
                raw = op.get_config() or {}
            except Exception:  # noqa: BLE001 - custom layers may not serialise; config is optional
                raw = {}
            for key in CONFIG_KEYS:
                if key in raw:
                    v = _json_safe(raw[key])
                    if v is not _SKIP:
                        config[key] = v
            config["trainable"] = bool(getattr(op, "trainable", True))
        node = schema.Node(
            id=nid, name=str(getattr(op, "name", nid)), class_name=type(op).__name__,
            parent=parent, dtype=None,
            activation=_activation_name(op, raw) if is_layer else None,
            config=config, macs=None)
        if is_layer:
            tw = op.trainable_weights
            ntw = op.non_trainable_weights
            node.params = {"trainable": _count(tw), "non_trainable": _count(ntw)}
            own = _own_weights(op) if _is_model(op) else op.weights
            if own:  # a nested model lists only the variables no layer inside holds
                node.weights = _weight_entries(own, {id(v) for v in tw})
            node.dtype_policy = _dtype_policy(op)
        else:
            node.operation = True  # a keras.ops call (e.g. keras.ops.add), not a Layer
        return node

    # -- graph mode --------------------------------------------------------------------------
    def _walk_graph(self, graph: Any, prefix: str, parent: Optional[str]) -> None:
        ops = list(graph._operations)
        for op in ops:
            self._add_op(op, prefix, parent)
        keys = graph._nodes
        for op in ops:
            for i, kn in enumerate(op._inbound_nodes):
                if make_node_key(op, i) in keys:
                    self._record_call(op, kn)

    def _record_call(self, op: Any, kn: Any) -> None:
        nid = self.ids_by_op[id(op)]
        ins = list(kn.input_tensors)
        outs = list(kn.outputs)
        in_shapes = [_tensor_shape(t) for t in ins]
        out_shapes = [_tensor_shape(t) for t in outs]
        if kn.is_input:  # an InputLayer: its input is what it outputs
            in_shapes = list(out_shapes)
        self.calls[nid].append((in_shapes, out_shapes, [getattr(t, "dtype", None) for t in outs],
                                arg_shapes(kn)))
        for j, t in enumerate(ins):
            src = self._resolve_source(t)
            if src is None:
                continue
            self._add_edge(src, self._resolve_target(op, j), _tensor_shape(t))

    def _add_edge(self, src: str, tgt: str, shape: Optional[list]) -> None:
        key = (src, tgt, None if shape is None else tuple(shape))
        edge = self.edges.get(key)
        if edge is None:
            self.edges[key] = schema.Edge(source=src, target=tgt, shape=shape)
        else:  # the same tensor shape flows twice between the same nodes (e.g. Add()([x, x]))
            edge.count = (edge.count or 1) + 1

    def _resolve_source(self, t: Any) -> Optional[str]:
        """The node id producing tensor ``t`` (inside nested models when their graph is known)."""
        for _ in range(1000):
            hist = getattr(t, "_keras_history", None)
            op = getattr(hist, "operation", None)
            if op is None:
                return None
            graph = _graph_of(op) if _is_model(op) else None
            outs = list(graph._outputs) if graph is not None else []
            if graph is not None and hist.tensor_index < len(outs) \
                    and id(op) in self.ids_by_op:
                t = outs[hist.tensor_index]
                continue
            return self.ids_by_op.get(id(op))
        return None

    def _resolve_target(self, op: Any, j: int) -> str:
        graph = _graph_of(op) if _is_model(op) else None
        if graph is not None:
            ins = list(graph._inputs)
            if j < len(ins):
                inner = self._resolve_source(ins[j])
                if inner is not None:
                    return inner
        return self.ids_by_op[id(op)]

    # -- trace mode (subclassed models) --------------------------------------------------------
    def _trace(self, model: Any) -> Optional[Tuple[List[str], List[str]]]:
        """Record the node graph of ``model.call`` on symbolic inputs; None when impossible."""
        from keras.src.ops.function import map_graph

        shapes = getattr(model, "_build_shapes_dict", None)
        if not model.built or not shapes:
            self.detail = ("the model has no recorded input shape (not built yet, or Keras "
                           "could not trace its call() either)")
            return None
        touched = {}
        for layer in model._flatten_layers(include_self=True, recursive=True):
            touched[id(layer)] = (layer, len(layer._inbound_nodes), len(layer._outbound_nodes))
        try:
            args, kwargs, flat_inputs = self._symbolic_inputs(model, shapes)
            self._fresh = (set(touched), {id(t._keras_history.operation) for t in flat_inputs})
            call_kwargs = dict(kwargs)
            try:
                import inspect
                if "training" in inspect.signature(model.call).parameters:
                    call_kwargs["training"] = False
            except (TypeError, ValueError):
                pass
            with keras.StatelessScope():  # a weight the call assigns to keeps its value
                outputs = model.call(*args, **call_kwargs)
            from keras import tree
            flat_outputs = [o for o in tree.flatten(outputs)
                            if isinstance(o, keras.KerasTensor)]
            if not flat_outputs:
                raise ValueError("call() returned no symbolic tensor")
            network_nodes, _, operations, _ = map_graph(flat_inputs, flat_outputs)
            graph = types.SimpleNamespace(_operations=operations, _nodes=network_nodes,
                                          _inputs=flat_inputs, _outputs=flat_outputs)
            self._walk_graph(graph, "", None)
            io = self._io(graph)
            # tracked layers the trace did not reach still appear (without edges)
            for layer in model._flatten_layers(include_self=False, recursive=False):
                if id(layer) not in self.ids_by_op:
                    nid = self._add_op(layer, "", None)
                    self._layer_shapes(layer, nid, None)
            self.method = "symbolic_trace"
            return io
        except Exception as e:  # noqa: BLE001 - any failure means: no trace, layers only
            self.detail = "symbolic trace of call() failed: %s: %s" % (
                type(e).__name__, _short(e))
            logger.info("tensorboard_archviz: %s; reporting tracked layers without edges",
                        self.detail)
            for table in (self.nodes, self.ops, self.ids_by_op, self.calls, self.edges):
                table.clear()
            self.failures = []
            return None
        finally:
            self._fresh = None
            for layer, n_in, n_out in touched.values():
                del layer._inbound_nodes[n_in:]
                del layer._outbound_nodes[n_out:]

    def _symbolic_inputs(self, model: Any, shapes: Dict[str, Any]):
        from keras import tree

        dtype = getattr(model, "input_dtype", None) or "float32"

        def make(shape: Any, name: str) -> Any:
            shape = (None,) + tuple(shape)[1:]  # the build shape holds the batch size seen
            layer = keras.layers.InputLayer(batch_shape=shape, dtype=dtype,
                                            name=self._free_input_name(name))
            return layer.output

        flat: List[Any] = []

        def build(struct: Any, name: str) -> Any:
            def leaf(s: Any) -> Any:
                t = make(s, name)
                flat.append(t)
                return t
            return tree.map_shape_structure(leaf, struct)

        items = list(shapes.items())
        if len(items) == 1:
            name = items[0][0]
            name = "input" if name in ("input_shape", "input_shapes", "shape") else name
            return [build(items[0][1], name)], {}, flat
        kwargs = {}
        for key, value in items:
            arg = key[:-len("_shape")] if key.endswith("_shape") else key
            kwargs[arg] = build(value, arg)
        return [], kwargs, flat

    def _free_input_name(self, name: str) -> str:
        taken = {l.name for l in self.model._flatten_layers(include_self=True, recursive=True)}
        base, n, out = name, 1, name
        while out in taken:
            n += 1
            out = "%s_%d" % (base, n)
        return out

    # -- layers mode ---------------------------------------------------------------------------
    def _layers_mode(self, model: Any, prefix: str, parent: Optional[str],
                     chain: bool) -> Tuple[List[str], List[str]]:
        """Nodes for the tracked layers of a model without a graph; shapes layer by layer."""
        layers = list(model._flatten_layers(include_self=False, recursive=False))
        if chain:
            layers = list(getattr(model, "_layers", layers))
        prev_id: Optional[str] = None
        prev_out: Optional[list] = None
        first: Optional[str] = None
        for layer in layers:
            nid = self._add_op(layer, prefix, parent)
            first = first or nid
            out = self._layer_shapes(layer, nid, prev_out if chain else None)
            if chain and prev_id is not None:
                shape = prev_out
                if shape is None and self.nodes[nid].input_shapes:
                    shape = self.nodes[nid].input_shapes[0]
                self._add_edge(prev_id, nid, shape)
            prev_id, prev_out = nid, out
        if chain and first is not None:
            return [first], [prev_id]
        return [], []

    def _layer_shapes(self, layer: Any, nid: str, given_input: Optional[list]) -> Optional[list]:
        """Fill a node's shapes for a layer outside any graph; returns its output shape."""
        if isinstance(layer, keras.layers.InputLayer):
            shape = _shape(getattr(layer, "batch_shape", None))
            self.calls[nid].append(([shape], [shape], [getattr(layer, "dtype", None)], None))
            return shape
        in_shape = given_input
        build = getattr(layer, "_build_shapes_dict", None)
        if build and len(build) == 1:
            value = next(iter(build.values()))
            s = _shape(value) if _is_flat_shape(value) else None
            if s:
                in_shape = [None] + s[1:] if s else s
        if in_shape is None:  # nothing failed: the layer was never called
            self.nodes[nid].reason = "input shape unknown (the layer is not built)"
            return None
        try:
            spec = layer.compute_output_spec(
                keras.KerasTensor(tuple(in_shape), dtype=getattr(layer, "compute_dtype", None)))
            from keras import tree
            flat = tree.flatten(spec)
            outs = [_tensor_shape(t) for t in flat]
            dtypes = [getattr(t, "dtype", None) for t in flat]
        except Exception as e:  # noqa: BLE001 - a layer without shape inference still appears
            why = "compute_output_shape failed: %s: %s" % (type(e).__name__, _short(e))
            self.nodes[nid].reason = why
            self.nodes[nid].input_shapes = [in_shape]
            self.failures.append((nid, why))
            return None
        self.calls[nid].append(([in_shape], outs, dtypes, None))
        return outs[0] if len(outs) == 1 else None

    # -- finishing -----------------------------------------------------------------------------
    def _finish_calls(self) -> None:
        for nid, node in self.nodes.items():
            calls = self.calls.get(nid) or []
            op = self.ops[nid]
            if calls:
                node.input_shapes, node.output_shapes, dtypes, _ = calls[0]
                dtype = dtypes[0] if dtypes else None
                node.dtype = str(dtype) if dtype is not None else None
                if len(calls) > 1:
                    node.calls = len(calls)
                    if any(c[:2] != calls[0][:2] for c in calls[1:]):
                        node.call_shapes = [
                            {"input_shapes": c[0], "output_shapes": c[1]} for c in calls]
            if node.dtype is None and isinstance(op, keras.layers.Layer):
                dtype = getattr(op, "compute_dtype", None)
                node.dtype = str(dtype) if dtype else None
            if isinstance(op, keras.layers.InputLayer):
                node.is_input = True
            if not _is_model(op):  # containers: totals.fill_totals sums their subtree
                self._node_macs(node, op, calls)
            elif _graph_of(op) is None and not isinstance(op, keras.Sequential):
                self._traced_container(nid, node, op, calls)
            node.memory = {
                "params_bytes": _weights_bytes(node.weights or ()),
                "output_bytes": _outputs_bytes(calls)}
        self._scale_by_container_calls()

    def _scale_by_container_calls(self) -> None:
        """A nested model called k times runs its layers k times: their MACs and outputs x k.

        (Keras records the layers inside a nested model once, in the nested model's own graph.)
        """
        for nid, node in self.nodes.items():
            k, parent = 1, node.parent
            while parent is not None:
                k *= max(1, len(self.calls.get(parent) or ()))
                parent = self.nodes[parent].parent
            if _is_model(self.ops[nid]):  # its own work, summed over its calls: x its parents'
                if isinstance(node.self_macs, int):
                    node.self_macs *= k
                continue
            if k == 1:
                continue
            node.container_calls = k
            if node.macs is not None:
                node.macs *= k
            mem = node.memory
            if mem["output_bytes"] is not None:
                mem["output_bytes"] *= k

    def _traced_container(self, nid: str, node: schema.Node, op: Any, calls: list) -> None:
        """A nested subclassed model (read from its tracked layers, without a graph): its
        ``call()`` traced on each recorded call. Its layers take the calls the first trace
        shows (a layer called twice counts twice; the container's own calls multiply them, see
        ``_scale_by_container_calls``); what it runs outside them (a ``keras.ops.matmul``
        between two layers) is its ``self_macs``, summed over its calls (unknown: null and the
        reason). Processed before its children (nodes are in insertion order)."""
        if not calls:
            return
        children = {id(self.ops[c]): c for c, n in self.nodes.items() if n.parent == nid}
        seen: Dict[str, list] = {}
        own: Optional[int] = 0
        for i, (_, _, _, args) in enumerate(calls):
            found, why = traced_calls(op, args) if args is not None else (
                None, "call() of %s not recorded" % type(op).__name__)
            if found is None:
                own, node.macs_reason = None, why
                break
            for sub, ins, outs, sub_args, dtypes in found:
                child = children.get(id(sub))
                if child is not None:
                    if i == 0:
                        seen.setdefault(child, []).append((ins, outs, dtypes, sub_args))
                    continue
                m, why = call_macs(sub, ins, outs, sub_args, 1) if own is not None else (0, None)
                if m is None:
                    name = getattr(sub, "name", type(sub).__name__)
                    own, node.macs_reason = None, "its own operations: %s: %s" % (name, why)
                elif own is not None:
                    own += m
        for child, child_calls in seen.items():
            self.calls[child] = child_calls
        if own is None or own:
            node.self_macs = own

    @staticmethod
    def _node_macs(node: schema.Node, op: Any, calls: list) -> None:
        """Per-example MACs summed over the calls (a shared layer works once per call)."""
        if isinstance(op, keras.layers.InputLayer):
            node.macs = 0
            return
        if not calls:
            node.macs = None
            node.macs_reason = "input shape unknown (the layer was not called)"
            return
        total: Optional[int] = 0
        for in_shapes, out_shapes, _, args in calls:
            m, why = call_macs(op, list(in_shapes or []), list(out_shapes or []), args)
            if m is None:
                total = None
                node.macs_reason = why or "unknown"
                break
            total += m
        node.macs = total

    def _architecture(self, inputs: List[str], outputs: List[str]) -> schema.Architecture:
        model = self.model
        tw, ntw = model.trainable_weights, model.non_trainable_weights
        info = schema.ModelInfo(
            name=str(model.name), class_name=type(model).__name__,
            trainable_params=_count(tw), non_trainable_params=_count(ntw))
        info.total_params = info.trainable_params + info.non_trainable_params
        opt = getattr(model, "optimizer", None)
        if opt is not None and getattr(opt, "built", False):
            try:
                info.optimizer_params = _count(opt.variables)
            except Exception:  # noqa: BLE001 - optional information
                pass
        info.macs_convention, info.batch_size = schema.MACS_CONVENTION, None
        own = _own_weights(model)
        if own:  # variables of the model itself (add_weight): part of its memory totals
            info.self_weights = _weight_entries(own, {id(v) for v in tw})
        if self.method == "tracked_layers":  # call() unseen: its own operations are unknown
            info.self_macs = None
            info.self_macs_reason = ("%s.call() could not be traced: the operations it runs "
                                     "outside its layers are not counted" % type(model).__name__)
        extraction = schema.Extraction(method=self.method)
        if self.detail:
            extraction["reason"] = self.detail
        arch = schema.Architecture(
            framework="keras", framework_version=keras.__version__, model=info,
            inputs=inputs, outputs=outputs, nodes=list(self.nodes.values()),
            edges=list(self.edges.values()), extraction=extraction,
            backend=keras.backend.backend())
        totals.fill_totals(arch)
        return arch


def _outputs_bytes(calls: list) -> Optional[int]:
    """Bytes of every output of every call, per example (None when one is unknown)."""
    if not calls:
        return None
    total = 0
    for _, out_shapes, dtypes, _ in calls:
        for k, shape in enumerate(out_shapes or []):
            b = totals.tensor_bytes(shape, dtypes[k] if k < len(dtypes) else None)
            if b is None:
                return None
            total += b
    return total


def _is_flat_shape(value: Any) -> bool:
    if not isinstance(value, (list, tuple)) and not hasattr(value, "as_list"):
        return False
    try:
        return all(d is None or isinstance(d, int) for d in tuple(value))
    except TypeError:
        return False


def _short(e: BaseException, limit: int = 300) -> str:
    """An exception message on one line, without Keras' ANSI colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    marker = "Exception encountered when calling "
    if text.startswith(marker) and "." in text:  # Keras' wrapper: keep the original message
        text = text.split(". ", 1)[-1] if ". " in text else text
        text = text.split(" Arguments received by ")[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _unique(ids: List[str]) -> List[str]:
    seen, out = set(), []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out
