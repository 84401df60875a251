"""Container sums and model totals of an Architecture: the one place they are computed.

Both extractors (Keras, PyTorch, and the saved-program readers) build their nodes with each node's
OWN figures and then call `fill_totals(arch)`; readers and views never re-sum.

What an extractor gives (per node):

- a leaf (a node no other node names as parent): `params`, `macs` (per example; null + `macs_reason`
  when unknown), `memory` {"params_bytes", "output_bytes"} and, when it can, `weights`
  [{"name", "shape", "trainable", "dtype"?, "path"?}] and `buffers` [{"name", "shape", "dtype"}].
- a container (a node with children): its own `weights` / `buffers` (parameters it holds
  directly, e.g. a torch module's own `nn.Parameter`), its own work as `self_macs` (int; null when
  unknown; absent: none) and its own output as `memory.output_bytes`. Its `params`, `macs`,
  `memory.params_bytes` are overwritten here.

What `fill_totals` computes (idempotent: containers are recomputed from leaves, never read):

- container `params` and `memory.params_bytes`: every weight of its subtree once (a weight listed
  by two nodes with the same "path" is counted once; nodes without a `weights` list count their
  `params`), `memory.buffers_bytes`, `memory.activations_bytes` (sum of the leaf outputs inside).
- container `macs`: `self_macs` + the sum of its children's. When some node inside has unknown
  MACs, it is the sum of the known ones with `macs_reason` "at least: ..." and `macs_complete`
  false; null when nothing inside is known.
- `model.macs` (sum of every known figure, each node once), `model.macs_complete`,
  `model.memory` {"params_bytes", "buffers_bytes", "activations_bytes"} where activations are the
  per-example outputs of the leaf nodes that are not model inputs (`arch.inputs`, `is_input`).
  Parameters and buffers the model holds outside every node (a PyTorch root module's own
  `nn.Parameter`, a subclassed Keras model's `add_weight`) are given by the extractor as
  `model.self_weights` / `model.self_buffers` (same entries as a node's `weights` / `buffers`),
  and work it does outside every node as `model.self_macs` (as a container's `self_macs`).
  `model.macs_convention` is set to `schema.MACS_CONVENTION` when the extractor left it unset.

A node with ``calls == 0`` (not called during the forward) and a model input did no work: their
null MACs do not make the totals "at least". Model `total_params` stays what the framework counts.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Iterable, List, Optional, Tuple

from tensorboard_archviz import schema
from tensorboard_archviz.util import product

# Bytes per element of the dtypes frameworks name (torch "torch.float32" and Keras "float32").
_ITEMSIZE = {
    "float64": 8, "double": 8, "float32": 4, "float": 4, "float16": 2, "half": 2,
    "bfloat16": 2, "int64": 8, "long": 8, "uint64": 8, "int32": 4, "int": 4, "uint32": 4,
    "int16": 2, "short": 2, "uint16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8,
    "complex128": 16, "cfloat": 8, "cdouble": 16, "qint8": 1, "quint8": 1, "qint32": 4,
    "int4": 1, "uint4": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
}


def itemsize(dtype: Any) -> Optional[int]:
    """Bytes per element of a dtype name ("float32", "torch.bfloat16", "<dtype: 'float16'>")."""
    return None if dtype is None else _itemsize(str(dtype))


@functools.lru_cache(maxsize=256)
def _itemsize(name: str) -> Optional[int]:
    name = name.strip().lower()
    for junk in ("<dtype:", ">", "'", '"'):
        name = name.replace(junk, "")
    name = name.strip().rsplit(".", 1)[-1]
    return _ITEMSIZE.get(name)


def tensor_bytes(shape: Optional[Iterable[Optional[int]]], dtype: Any,
                 batch_dim: bool = True) -> Optional[int]:
    """Bytes of one example of a tensor of ``shape`` (its first dim is the batch when
    ``batch_dim``), or None when a dimension or the dtype is unknown."""
    if shape is None:
        return None
    dims = list(shape)[1:] if batch_dim else list(shape)
    n, size = product(dims), itemsize(dtype)
    return None if n is None or size is None else n * size


def _children(arch: schema.Architecture) -> Dict[Optional[str], List[schema.Node]]:
    out: Dict[Optional[str], List[schema.Node]] = {}
    for n in arch.nodes:
        out.setdefault(n.parent, []).append(n)
    return out


def _postorder(arch: schema.Architecture,
               kids: Dict[Optional[str], List[schema.Node]]) -> List[schema.Node]:
    """Nodes with every child before its parent (iterative; deep nesting is fine)."""
    out: List[schema.Node] = []
    stack: List[Tuple[schema.Node, bool]] = [(n, False) for n in reversed(kids.get(None, []))]
    seen = set()
    while stack:
        node, done = stack.pop()
        if done:
            out.append(node)
            continue
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(kids.get(node.id, [])))
    return out


def _weight_items(node: schema.Node, leaf: bool) -> List[Tuple[Any, int, bool, Optional[int]]]:
    """(identity, elements, trainable, bytes) of the parameters a node holds itself."""
    weights = node.weights
    mem = node.memory or {}
    if not isinstance(weights, list) or not weights:
        return _weight_items_from_counts(node, mem) if leaf else []
    counts = [product(w.get("shape") or []) or 0 for w in weights]
    if leaf and sum(counts) != node.total_params:
        return _weight_items_from_counts(node, mem)  # the list does not cover every parameter
    ratio = None
    if mem.get("params_bytes") is not None and node.total_params:
        ratio = mem["params_bytes"] / node.total_params
    return _listed(node.id, weights, counts, ratio)


def _listed(owner: Any, weights: List[Dict[str, Any]], counts: List[int],
            ratio: Optional[float]) -> List[Tuple[Any, int, bool, Optional[int]]]:
    """(identity, elements, trainable, bytes) of a ``weights`` list (identity: its "path")."""
    out = []
    for w, n in zip(weights, counts):
        size = itemsize(w.get("dtype"))
        nbytes = n * size if size is not None else (
            None if ratio is None else int(round(n * ratio)))
        key = w.get("path") or (owner, w.get("name"))
        out.append((key, n, bool(w.get("trainable", True)), nbytes))
    return out


def _weight_items_from_counts(node: schema.Node, mem: Dict[str, Any]) -> list:
    """A leaf's parameters from its `params` counts (no usable `weights` list)."""
    total = node.total_params
    pb = mem.get("params_bytes")
    tr = int(node.params.get("trainable", 0))
    nb = None if pb is None or total == 0 else pb * tr // total
    return [((node.id, "trainable"), tr, True, nb),
            ((node.id, "non_trainable"), total - tr, False,
             None if pb is None or nb is None else pb - nb)]


def _buffer_bytes(node: schema.Node, leaf: bool) -> int:
    """Bytes of the buffers a node holds itself (a container: its `buffers` list only, since
    its `memory.buffers_bytes` is the subtree's sum written here)."""
    mem = node.memory or {}
    buffers = node.buffers
    if not isinstance(buffers, list):
        return int(mem.get("buffers_bytes") or 0) if leaf else 0
    return _listed_buffer_bytes(buffers)


def _listed_buffer_bytes(buffers: List[Dict[str, Any]]) -> int:
    return sum(tensor_bytes(b.get("shape") or [], b.get("dtype"), batch_dim=False) or 0
               for b in buffers)


def _model_own(model: schema.ModelInfo) -> "_Sub":
    """What the model holds and does outside every node: ``self_weights`` / ``self_buffers``
    (e.g. a PyTorch root module's own ``nn.Parameter``, a subclassed Keras model's
    ``add_weight``) and ``self_macs``."""
    sub = _Sub()
    weights = model.self_weights
    if isinstance(weights, list):
        counts = [product(w.get("shape") or []) or 0 for w in weights]
        for key, n, tr, nbytes in _listed("<model>", weights, counts, None):
            sub.put(key, (n, tr, nbytes))
    buffers = model.self_buffers
    if isinstance(buffers, list):
        sub.buffers = _listed_buffer_bytes(buffers)
    own = model.self_macs  # work done outside every node (absent: none; null: unknown)
    if own is None:
        sub.unknown = 1
    elif own is not schema.ABSENT:
        sub.macs, sub.known = int(own), 1
    return sub


class _Sub:
    """Running sums over one subtree. `weights` maps each parameter's identity to (elements,
    trainable, bytes), so a parameter shared by two nodes counts once; its sums are kept as
    entries come and go (``put``), not recomputed for every container."""

    def __init__(self) -> None:
        self.weights: Dict[Any, Tuple[int, bool, Optional[int]]] = {}
        self.trainable = 0
        self.non_trainable = 0
        self.weight_bytes = 0
        self.buffers = 0
        self.activations = 0
        self.macs = 0
        self.known = 0
        self.unknown = 0

    def _count(self, entry: Tuple[int, bool, Optional[int]], sign: int) -> None:
        n, tr, nbytes = entry
        if tr:
            self.trainable += sign * n
        else:
            self.non_trainable += sign * n
        self.weight_bytes += sign * (nbytes or 0)

    def put(self, key: Any, entry: Tuple[int, bool, Optional[int]]) -> None:
        """Set one parameter's entry (a later entry for the same identity replaces it)."""
        old = self.weights.get(key)
        if old is not None:
            self._count(old, -1)
        self.weights[key] = entry
        self._count(entry, 1)

    def merge(self, other: "_Sub") -> None:
        if not self.weights:  # the usual first child: its sums as they are
            self.weights.update(other.weights)
            self.trainable, self.non_trainable = other.trainable, other.non_trainable
            self.weight_bytes = other.weight_bytes
        else:
            for key, entry in other.weights.items():
                self.put(key, entry)
        self.buffers += other.buffers
        self.activations += other.activations
        self.macs += other.macs
        self.known += other.known
        self.unknown += other.unknown

    def params(self) -> Tuple[int, int, int]:
        return self.trainable, self.non_trainable, self.weight_bytes


def _not_called(node: schema.Node) -> bool:
    return node.calls == 0


def _own(node: schema.Node, leaf: bool, inputs: set) -> _Sub:
    """A node's own contribution (leaf: everything it says; container: self_* figures)."""
    sub = _Sub()
    for key, n, tr, nbytes in _weight_items(node, leaf):
        sub.put(key, (n, tr, nbytes))
    sub.buffers = _buffer_bytes(node, leaf)
    is_input = node.id in inputs or bool(node.is_input)
    if leaf or node.self_macs is not schema.ABSENT:
        macs = node.macs if leaf else node.self_macs
        if macs is not None:
            sub.macs, sub.known = int(macs), 1
        elif not _not_called(node) and not is_input:
            sub.unknown = 1
    if leaf and not is_input:
        out = (node.memory or {}).get("output_bytes")
        sub.activations = int(out or 0)
    return sub


def _set_container(node: schema.Node, sub: _Sub) -> None:
    tr, ntr, nbytes = sub.params()
    node.params = {"trainable": tr, "non_trainable": ntr}
    node.macs = sub.macs if sub.known or not sub.unknown else None
    node.macs_complete = None
    if sub.unknown:
        node.macs_complete = False
        node.macs_reason = (
            "at least: MACs unknown for %d node(s) inside" % sub.unknown if node.macs is not None
            else "unknown: MACs unknown for every node inside")
    elif str(node.macs_reason or "").startswith(("at least:", "unknown:")):
        node.macs_reason = None
    mem = node.memory or {}
    node.memory = dict(mem, params_bytes=nbytes, output_bytes=mem.get("output_bytes"),
                       activations_bytes=sub.activations)
    if sub.buffers:
        node.memory["buffers_bytes"] = sub.buffers


def fill_totals(arch: schema.Architecture) -> None:
    """Fill container sums and model totals in place (see the module docstring)."""
    kids = _children(arch)
    inputs = set(arch.inputs)
    subs: Dict[str, _Sub] = {}
    for node in _postorder(arch, kids):
        children = kids.get(node.id, [])
        sub = _own(node, not children, inputs)
        for c in children:
            sub.merge(subs[c.id])
        if children:
            _set_container(node, sub)
        subs[node.id] = sub
    model = arch.model
    total = _model_own(model)
    for node in kids.get(None, []):
        total.merge(subs[node.id])
    model.macs = total.macs
    model.macs_complete = total.unknown == 0
    if model.macs_convention is None:
        model.macs_convention = schema.MACS_CONVENTION
    _, _, nbytes = total.params()
    model.memory = {"params_bytes": nbytes, "buffers_bytes": total.buffers,
                    "activations_bytes": total.activations}


def node_counts(arch: schema.Architecture) -> Dict[str, int]:
    """How many nodes of each kind: ``layers`` (modules/layers that are not containers, the
    "N layers" every view shows), ``ops`` (functional operations: torch ``x + y``, ``F.relu``;
    ``keras.ops`` calls), ``inputs`` and ``containers``. The dashboard's ``arch_index.countNodes``
    applies the same definition to the same document."""
    parents = {n.parent for n in arch.nodes if n.parent is not None and n.parent != n.id}
    counts = {"layers": 0, "ops": 0, "inputs": 0, "containers": 0}
    for n in arch.nodes:
        if n.id in parents or n.is_container is True:
            counts["containers"] += 1
        elif n.is_function is True or n.operation is True:
            counts["ops"] += 1
        elif n.class_name in ("Input", "InputLayer"):
            counts["inputs"] += 1
        else:
            counts["layers"] += 1
    return counts
