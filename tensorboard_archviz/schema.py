"""The framework-neutral Architecture: dataclasses, JSON (de)serialisation, validation, migrations.

The JSON form is the contract between the writers (Keras callback, PyTorch helpers), the plugin
routes, the CLI and the dashboard. Reading (`from_json` / `from_dict`) migrates an older document,
validates every field and names the bad one in a `SchemaError`; unknown keys are kept (in
`extra`) so newer writers can add keys without breaking older readers.

Every key the project writes is a typed field of the dataclasses (validated on read, written
when set: None means absent, except the few fields where null is a value of its own, whose
"absent" is `ABSENT`); `extra` holds only the keys this reader does not know, kept as they are
(a known key given in `extra` to a constructor goes to its field; one put into `extra` later is
refused with a `SchemaError` when the document is written, so a misspelt writer fails loudly).
`json_keys(cls)` lists a dataclass's keys (a test checks them against frontend/src/types.ts).
schema_version 2 adds these optional keys:

- node `macs` (int | null): multiply-accumulates PER EXAMPLE in the convention `MACS_CONVENTION`;
  node `macs_reason` (str): why `macs` is null (or, on a container, that it is a lower bound);
  node `memory`: {"params_bytes": int, "output_bytes": int | null} (output per example; optional
  "buffers_bytes": int, and on containers "activations_bytes": int | null).
- model `macs` (int), `macs_complete` (bool), `macs_convention` (str), `macs_comparable` (false only
  on a migrated schema 1 document: its MACs are in the old convention), `batch_size` (int | null),
  `memory`: {"params_bytes": int, "buffers_bytes": int, "activations_bytes": int | null},
  `self_macs` (int | null: the model's own work outside every node; null unknown, with
  `self_macs_reason`; absent: none).
- `extraction`: an object {"method": str, ...} (schema 1 Keras documents had a string).

Container sums and model totals are computed in one place: `tensorboard_archviz.totals`.
A schema 1 document is migrated: its `model.macs_convention` becomes `MACS_CONVENTION_V1` (its
numbers stay as they were: views mark them as not comparable) and a string `extraction` becomes
{"method": string} (with the Keras `extraction_detail` as "reason").
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Dict, List, Optional, Tuple, TypedDict

SCHEMA_VERSION = 2
FRAMEWORKS = ("keras", "torch")

# The one MACs convention of schema_version 2 (identical for every framework).
MACS_CONVENTION = (
    "multiply-accumulates per example (batch 1): convolutions, matrix products at every "
    "position, attention QK^T and AV, recurrent cells per step; elementwise work not counted")
# What a migrated schema 1 document says about its figures.
MACS_CONVENTION_V1 = ("old convention (schema 1): Keras per example, PyTorch per example batch; "
                      "not comparable")

Shape = List[Optional[int]]


class SchemaError(ValueError):
    """An architecture document that does not follow the schema; the message names the field."""


class _Absent:
    """The value of a field the document does not have, where null is a value of its own
    (node ``calls`` null: unknown, absent: not recorded; ``self_macs`` null: unknown own work,
    absent: no own work; model ``batch_size`` null: unknown, absent: older document; model
    ``self_macs`` as a node's)."""

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class NodeMemory(TypedDict, total=False):
    """Per-node memory: ``params_bytes`` and ``output_bytes`` (per example, null: unknown);
    ``buffers_bytes`` (torch); on containers ``activations_bytes`` (sum of the leaf outputs)."""

    params_bytes: int
    output_bytes: Optional[int]
    buffers_bytes: int
    activations_bytes: Optional[int]


class ModelMemory(TypedDict, total=False):
    params_bytes: int
    buffers_bytes: int
    activations_bytes: Optional[int]


class Extraction(TypedDict, total=False):
    """How the graph was found: ``method`` (required) and, by extractor, ``reason``,
    ``partial``, ``failed_op``, ``dropped_ops``."""

    method: str
    reason: str
    partial: bool
    failed_op: str
    dropped_ops: int


@dataclasses.dataclass
class ModelInfo:
    """The model: contract fields, then the schema 2 totals (written by ``totals.fill_totals``)
    and what extractors add (``optimizer_params`` Keras; ``output_names``, ``buffers`` torch;
    ``self_weights`` / ``self_buffers``: parameters held outside every node; ``self_macs``: the
    model's own work outside every node, null when unknown (a Keras subclassed model whose
    ``call()`` could not be traced), with ``self_macs_reason``; absent: none). None: absent."""

    name: str
    class_name: str
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    macs: Optional[int] = None
    macs_complete: Optional[bool] = None
    macs_convention: Optional[str] = None
    macs_comparable: Optional[bool] = None
    batch_size: Optional[int] = ABSENT
    memory: Optional[ModelMemory] = None
    optimizer_params: Optional[int] = None
    output_names: Optional[List[Dict[str, Any]]] = None
    buffers: Optional[int] = None
    self_weights: Optional[List[Dict[str, Any]]] = None
    self_buffers: Optional[List[Dict[str, Any]]] = None
    self_macs: Optional[int] = ABSENT
    self_macs_reason: Optional[str] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _lift_known(self)


@dataclasses.dataclass
class Node:
    """One layer / module / functional op; containers are nodes whose children name them as parent.

    After the contract fields (``id`` ... ``macs``), the typed optional keys (None: absent):
    ``macs_reason`` (why ``macs`` is null, or "at least: ..." on a container),
    ``macs_complete`` (false on a container with unknown figures inside), ``memory``,
    ``self_macs`` (a container's own work), ``weights`` ([{"name", "shape", "trainable",
    "dtype"?, "path"?}]), ``buffers`` (torch: [{"name", "shape", "dtype"}]), ``reason`` (why
    shapes are null), ``dtype_policy``, ``calls`` (how many times it was called; null: unknown),
    ``call_shapes`` / ``container_calls`` (Keras shared layers / nested models), the kind flags
    ``is_container``, ``is_input``, ``is_function`` (torch functional op), ``operation``
    (a ``keras.ops`` call), and torch saved programs' ``class_known``, ``config_source``;
    ``used_by`` (a module whose weights are used directly instead of calling it: the id of
    the node that uses them, its parent layer or a functional op).
    """

    id: str
    name: str
    class_name: str
    parent: Optional[str] = None
    input_shapes: Optional[List[Optional[Shape]]] = None
    output_shapes: Optional[List[Optional[Shape]]] = None
    dtype: Optional[str] = None
    params: Dict[str, int] = dataclasses.field(
        default_factory=lambda: {"trainable": 0, "non_trainable": 0})
    activation: Optional[str] = None
    config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    macs: Optional[int] = None
    macs_reason: Optional[str] = None
    macs_complete: Optional[bool] = None
    memory: Optional[NodeMemory] = None
    self_macs: Optional[int] = ABSENT
    weights: Optional[List[Dict[str, Any]]] = None
    buffers: Optional[List[Dict[str, Any]]] = None
    reason: Optional[str] = None
    dtype_policy: Optional[str] = None
    calls: Optional[int] = ABSENT
    call_shapes: Optional[List[Any]] = None
    container_calls: Optional[int] = None
    is_container: Optional[bool] = None
    is_input: Optional[bool] = None
    is_function: Optional[bool] = None
    operation: Optional[bool] = None
    class_known: Optional[bool] = None
    config_source: Optional[str] = None
    used_by: Optional[str] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _lift_known(self)

    @property
    def total_params(self) -> int:
        return int(self.params.get("trainable", 0)) + int(self.params.get("non_trainable", 0))


@dataclasses.dataclass
class Edge:
    source: str
    target: str
    shape: Optional[Shape] = None
    count: Optional[int] = None  # Keras: how many calls connect the two nodes (absent: one)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _lift_known(self)


@dataclasses.dataclass
class Architecture:
    """The document. ``extraction`` (how the graph was found), ``backend`` (Keras backend) and
    ``gradient_reach`` (see ``tensorboard_archviz.gradient_reach``) are optional (None: absent)."""

    framework: str
    framework_version: str
    model: ModelInfo
    inputs: List[str] = dataclasses.field(default_factory=list)
    outputs: List[str] = dataclasses.field(default_factory=list)
    nodes: List[Node] = dataclasses.field(default_factory=list)
    edges: List[Edge] = dataclasses.field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    extraction: Optional[Extraction] = None
    backend: Optional[str] = None
    gradient_reach: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _lift_known(self)

    # -- convenience -----------------------------------------------------------------------
    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def node_ids(self) -> List[str]:
        return [n.id for n in self.nodes]

    def children(self, node_id: Optional[str]) -> List[Node]:
        return [n for n in self.nodes if n.parent == node_id]

    def edge_pairs(self) -> List[tuple]:
        return [(e.source, e.target) for e in self.edges]

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return to_dict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Any) -> "Architecture":
        return from_dict(data)

    @classmethod
    def from_json(cls, text: Any) -> "Architecture":
        return from_json(text)


# ---------------------------------------------------------------------------------------------
# to JSON

# The contract keys of each dataclass (always written); every other field but `extra` is an
# optional typed key, written when set (None: absent; ABSENT for the fields where null is a value).
CONTRACT_KEYS: Dict[type, Tuple[str, ...]] = {
    Architecture: ("schema_version", "framework", "framework_version", "model", "inputs",
                   "outputs", "nodes", "edges"),
    ModelInfo: ("name", "class_name", "total_params", "trainable_params", "non_trainable_params"),
    Node: ("id", "name", "class_name", "parent", "input_shapes", "output_shapes", "dtype",
           "params", "activation", "config", "macs"),
    Edge: ("source", "target", "shape"),
}


class _Spec:
    """What (de)serialisation needs to know of one dataclass, computed once: its optional
    keys in field order, those where null is a value, and each one's JSON kind."""

    def __init__(self, cls: type):
        contract = CONTRACT_KEYS[cls]
        fields = [f for f in dataclasses.fields(cls) if f.name not in contract
                  and f.name != "extra"]
        self.optional = tuple(f.name for f in fields)
        self.known = frozenset(self.optional)
        self.contract = frozenset(contract)
        self.nullable = frozenset(f.name for f in fields if f.default is ABSENT)
        self.kinds = {f.name: _kind(str(f.type)) for f in fields}


_SPECS: Dict[type, _Spec] = {}


def _spec(cls: type) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _Spec(cls)
    return spec


def optional_keys(cls: type) -> Tuple[str, ...]:
    """The optional typed keys of a schema dataclass, in field order."""
    return _spec(cls).optional


def json_keys(cls: type) -> Tuple[str, ...]:
    """Every key a schema dataclass reads and writes (contract, then optional)."""
    return CONTRACT_KEYS[cls] + optional_keys(cls)


def _kind(annotation: str) -> str:
    """The JSON kind of an optional field from its annotation: str, bool, int, list or object."""
    inner = annotation[len("Optional["):-1] if annotation.startswith("Optional[") else annotation
    for prefix, kind in (("str", "str"), ("bool", "bool"), ("int", "int"), ("List", "list")):
        if inner.startswith(prefix):
            return kind
    return "object"


def _lift_known(obj: Any) -> None:
    """Known keys handed over in `extra` go to their typed fields; `extra` keeps the rest."""
    if not obj.extra:
        return  # the usual case (typed fields given directly): nothing to look up
    known = _spec(type(obj)).known
    if not known.intersection(obj.extra):
        return
    rest = {}
    for k, v in obj.extra.items():
        if k in known:
            setattr(obj, k, v)
        else:
            rest[k] = v
    obj.extra = rest


def _write(obj: Any, contract: Dict[str, Any]) -> Dict[str, Any]:
    """Contract keys, then the optional keys that are set, then the unknown (`extra`) keys."""
    out = dict(contract)
    spec = _spec(type(obj))
    for k in spec.optional:
        v = getattr(obj, k)
        if v is None:
            if k in spec.nullable:
                out[k] = None
        elif v is not ABSENT:
            out[k] = v
    for k, v in obj.extra.items():
        if k in spec.known:
            raise SchemaError("%s: set the typed field %s.%s, not extra[%r]"
                              % (k, type(obj).__name__, k, k))
        out.setdefault(k, v)
    return out


def _node_to_dict(n: Node) -> Dict[str, Any]:
    return _write(n, {
        "id": n.id, "name": n.name, "class_name": n.class_name, "parent": n.parent,
        "input_shapes": n.input_shapes, "output_shapes": n.output_shapes, "dtype": n.dtype,
        "params": {"trainable": int(n.params.get("trainable", 0)),
                   "non_trainable": int(n.params.get("non_trainable", 0))},
        "activation": n.activation, "config": n.config, "macs": n.macs,
    })


def to_dict(arch: Architecture) -> Dict[str, Any]:
    """The JSON-ready dict of an Architecture (contract keys, typed optional keys, extras)."""
    m = arch.model
    return _write(arch, {
        "schema_version": arch.schema_version,
        "framework": arch.framework,
        "framework_version": arch.framework_version,
        "model": _write(m, {
            "name": m.name, "class_name": m.class_name,
            "total_params": int(m.total_params),
            "trainable_params": int(m.trainable_params),
            "non_trainable_params": int(m.non_trainable_params),
        }),
        "inputs": list(arch.inputs),
        "outputs": list(arch.outputs),
        "nodes": [_node_to_dict(n) for n in arch.nodes],
        "edges": [_write(e, {"source": e.source, "target": e.target, "shape": e.shape})
                  for e in arch.edges],
    })


def to_json(arch: Architecture, **kwargs: Any) -> str:
    return json.dumps(to_dict(arch), **kwargs)


# ---------------------------------------------------------------------------------------------
# from JSON: migrations, then validation

def _migrate_1_to_2(data: Dict[str, Any]) -> Dict[str, Any]:
    """Schema 1 -> 2: mark the MACs as the old convention; `extraction` becomes an object.

    The numbers are left as they were (Keras ones were per example, PyTorch ones per example
    batch): views show them marked as not comparable instead of converting them.
    """
    data = dict(data)
    model = data.get("model")
    if isinstance(model, dict):
        model = dict(model)
        model["macs_convention"] = MACS_CONVENTION_V1
        model["macs_comparable"] = False
        data["model"] = model
    extraction = data.get("extraction")
    if isinstance(extraction, str):
        obj: Dict[str, Any] = {"method": extraction}
        detail = data.pop("extraction_detail", None)
        if isinstance(detail, str):
            obj["reason"] = detail
        data["extraction"] = obj
    return data


# MIGRATIONS[v] turns a document of schema_version v into one of version v + 1.
MIGRATIONS: Dict[int, Callable[[Dict[str, Any]], Dict[str, Any]]] = {1: _migrate_1_to_2}


def migrate(data: Dict[str, Any]) -> Dict[str, Any]:
    """Bring an older document up to SCHEMA_VERSION; refuse a newer one with a clear error."""
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaError("schema_version: expected an integer, got %r" % (version,))
    if version > SCHEMA_VERSION:
        raise SchemaError(
            "schema_version: %d is newer than this tensorboard-archviz understands (%d); "
            "upgrade tensorboard-archviz" % (version, SCHEMA_VERSION))
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise SchemaError("schema_version: no migration from version %d" % version)
        data = step(data)
        version += 1
        data["schema_version"] = version
    return data


def _expect(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise SchemaError("%s: %s" % (field, msg))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(d: Dict[str, Any], key: str, where: str, optional: bool = False) -> Optional[str]:
    v = d.get(key)
    if v is None and optional:
        return None
    _expect(isinstance(v, str), "%s.%s" % (where, key), "expected a string, got %r" % (v,))
    return v


def _count(d: Dict[str, Any], key: str, where: str) -> int:
    v = d.get(key, 0)
    _expect(_is_int(v) and v >= 0, "%s.%s" % (where, key),
            "expected a non-negative integer, got %r" % (v,))
    return v


def _shape(v: Any, where: str) -> Optional[Shape]:
    if v is None:
        return None
    _expect(isinstance(v, list), where, "expected a list of dimensions or null")
    for i, d in enumerate(v):
        _expect(d is None or (_is_int(d) and d >= 0), "%s[%d]" % (where, i),
                "expected a non-negative integer or null, got %r" % (d,))
    return list(v)


def _shapes(v: Any, where: str) -> Optional[List[Optional[Shape]]]:
    if v is None:
        return None
    _expect(isinstance(v, list), where, "expected a list of shapes or null")
    return [_shape(s, "%s[%d]" % (where, i)) for i, s in enumerate(v)]


def _opt_count(d: Dict[str, Any], key: str, where: str, nullable: bool = False) -> None:
    """An optional non-negative integer key (``nullable``: null allowed)."""
    if key not in d or (nullable and d[key] is None):
        return
    v = d[key]
    _expect(_is_int(v) and v >= 0, "%s.%s" % (where, key),
            "expected a non-negative integer%s, got %r" % (" or null" if nullable else "", v))


def _check_memory(d: Dict[str, Any], where: str, required: tuple, nullable: tuple) -> None:
    if "memory" not in d:
        return
    mem = d["memory"]
    where = where + ".memory"
    _expect(isinstance(mem, dict), where, "expected an object, got %r" % (mem,))
    for key in required:
        _expect(key in mem, "%s.%s" % (where, key), "missing")
    for key in set(mem) & set(required + nullable + ("buffers_bytes", "activations_bytes")):
        _opt_count(mem, key, where, nullable=key in nullable)


def _check_node_v2(d: Dict[str, Any], where: str) -> None:
    """The optional schema 2 keys of a node: macs_reason, memory."""
    if "macs_reason" in d:
        _expect(isinstance(d["macs_reason"], str), where + ".macs_reason",
                "expected a string, got %r" % (d["macs_reason"],))
    _check_memory(d, where, ("params_bytes", "output_bytes"),
                  ("output_bytes", "activations_bytes"))


def _check_model_v2(model: Dict[str, Any]) -> None:
    """The optional schema 2 keys of the model: MACs totals, convention, batch size, memory."""
    _opt_count(model, "macs", "model", nullable=True)
    for key in ("macs_complete", "macs_comparable"):
        if key in model:
            _expect(isinstance(model[key], bool), "model." + key,
                    "expected true or false, got %r" % (model[key],))
    if "macs_convention" in model:
        _str(model, "macs_convention", "model")
    if model.get("batch_size") is not None:
        v = model["batch_size"]
        _expect(_is_int(v) and v >= 1, "model.batch_size",
                "expected a positive integer or null, got %r" % (v,))
    _check_memory(model, "model", ("params_bytes", "buffers_bytes", "activations_bytes"),
                  ("activations_bytes",))


def _check_extraction(data: Dict[str, Any]) -> None:
    if "extraction" not in data:
        return
    ex = data["extraction"]
    _expect(isinstance(ex, dict), "extraction", "expected an object, got %r" % (ex,))
    _str(ex, "method", "extraction")


_KIND_CHECKS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}


def _typed(d: Dict[str, Any], cls: type, where: str) -> Dict[str, Any]:
    """Keyword arguments for `cls` from `d`: its optional typed keys (each checked against its
    type; null is a value for the ABSENT-default fields and means absent for the others) and
    `extra` = the keys the reader does not know."""
    spec = _spec(cls)
    out: Dict[str, Any] = {}
    extra: Dict[str, Any] = {}
    for key, v in d.items():
        if key in spec.contract:
            continue
        kind = spec.kinds.get(key)
        if kind is None:
            extra[key] = v
            continue
        nullable = key in spec.nullable
        if v is None:
            if nullable:
                out[key] = None
            continue
        check, text = _KIND_CHECKS[kind]
        if not check(v):
            field = key if where == "<root>" else "%s.%s" % (where, key)
            raise SchemaError("%s: expected %s%s, got %r"
                              % (field, text, " or null" if nullable else "", v))
        out[key] = v
    out["extra"] = extra
    return out


def _node_from_dict(d: Any, where: str) -> Node:
    _expect(isinstance(d, dict), where, "expected an object")
    params = d.get("params", {"trainable": 0, "non_trainable": 0})
    _expect(isinstance(params, dict), where + ".params", "expected an object")
    config = d.get("config") or {}
    _expect(isinstance(config, dict), where + ".config", "expected an object")
    macs = d.get("macs")
    _expect(macs is None or (_is_int(macs) and macs >= 0), where + ".macs",
            "expected a non-negative integer or null, got %r" % (macs,))
    node_id = _str(d, "id", where)
    _expect(node_id != "", where + ".id", "must not be empty")
    _check_node_v2(d, where)
    return Node(
        id=node_id,
        name=_str(d, "name", where),
        class_name=_str(d, "class_name", where),
        parent=_str(d, "parent", where, optional=True),
        input_shapes=_shapes(d.get("input_shapes"), where + ".input_shapes"),
        output_shapes=_shapes(d.get("output_shapes"), where + ".output_shapes"),
        dtype=_str(d, "dtype", where, optional=True),
        params={"trainable": _count(params, "trainable", where + ".params"),
                "non_trainable": _count(params, "non_trainable", where + ".params")},
        activation=_str(d, "activation", where, optional=True),
        config=config,
        macs=macs,
        **_typed(d, Node, where),
    )


def _model_from_dict(model: Any) -> ModelInfo:
    _expect(isinstance(model, dict), "model", "expected an object")
    _check_model_v2(model)
    return ModelInfo(
        name=_str(model, "name", "model"),
        class_name=_str(model, "class_name", "model"),
        total_params=_count(model, "total_params", "model"),
        trainable_params=_count(model, "trainable_params", "model"),
        non_trainable_params=_count(model, "non_trainable_params", "model"),
        **_typed(model, ModelInfo, "model"),
    )


def _nodes_from_dict(raw_nodes: Any) -> List[Node]:
    _expect(isinstance(raw_nodes, list), "nodes", "expected a list")
    nodes = [_node_from_dict(n, "nodes[%d]" % i) for i, n in enumerate(raw_nodes)]
    ids = set()
    for i, n in enumerate(nodes):
        _expect(n.id not in ids, "nodes[%d].id" % i, "duplicate id %r" % n.id)
        ids.add(n.id)
    for i, n in enumerate(nodes):
        _expect(n.parent is None or n.parent in ids, "nodes[%d].parent" % i,
                "unknown node id %r" % n.parent)
    return nodes


def _edges_from_dict(raw_edges: Any, ids: set) -> List[Edge]:
    _expect(isinstance(raw_edges, list), "edges", "expected a list")
    edges = []
    for i, e in enumerate(raw_edges):
        where = "edges[%d]" % i
        _expect(isinstance(e, dict), where, "expected an object")
        for key in ("source", "target"):
            v = e.get(key)
            _expect(isinstance(v, str) and v in ids, "%s.%s" % (where, key),
                    "unknown node id %r" % (v,))
        edges.append(Edge(source=e["source"], target=e["target"],
                          shape=_shape(e.get("shape"), where + ".shape"),
                          **_typed(e, Edge, where)))
    return edges


def from_dict(data: Any) -> Architecture:
    """Validate (after migrating) a decoded JSON document and build an Architecture."""
    _expect(isinstance(data, dict), "<root>", "expected a JSON object")
    data = migrate(dict(data))
    fw = _str(data, "framework", "<root>")
    _expect(fw in FRAMEWORKS, "framework", "expected one of %s, got %r" % (FRAMEWORKS, fw))
    _check_extraction(data)
    info = _model_from_dict(data.get("model"))
    nodes = _nodes_from_dict(data.get("nodes"))
    ids = {n.id for n in nodes}
    edges = _edges_from_dict(data.get("edges"), ids)
    io = {}
    for key in ("inputs", "outputs"):
        v = data.get(key, [])
        _expect(isinstance(v, list), key, "expected a list of node ids")
        for i, x in enumerate(v):
            _expect(isinstance(x, str) and x in ids, "%s[%d]" % (key, i),
                    "unknown node id %r" % (x,))
        io[key] = list(v)
    return Architecture(
        schema_version=data["schema_version"], framework=fw,
        framework_version=_str(data, "framework_version", "<root>"),
        model=info, inputs=io["inputs"], outputs=io["outputs"], nodes=nodes, edges=edges,
        **_typed(data, Architecture, "<root>"),
    )


def from_json(text: Any) -> Architecture:
    """Parse, migrate and validate a JSON document (str or UTF-8 bytes)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise SchemaError("<root>: not UTF-8 (%s)" % e) from None
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise SchemaError("<root>: not valid JSON (%s)" % e) from None
    return from_dict(data)
