"""The typed schema: every key the project writes is a typed field, the same keys as the
dashboard's types (frontend/src/types.ts), null and absent kept apart, and documents unchanged."""
import json
import os
import re

import pytest

from tensorboard_archviz import schema, totals

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES_TS = os.path.join(ROOT, "frontend", "src", "types.ts")

# Python dataclass -> TypeScript interface of the same JSON object
PAIRS = [(schema.Architecture, "Architecture"), (schema.ModelInfo, "ModelInfo"),
         (schema.Node, "ArchNode"), (schema.Edge, "ArchEdge")]
TYPED_DICTS = [(schema.NodeMemory, "NodeMemory")]


def ts_interface_keys(source, name):
    """The keys of `export interface <name> { ... }` (nested braces skipped, comments removed;
    the index signature ``[key: string]`` is not a key)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    source = re.sub(r"//[^\n]*", "", source)
    m = re.search(r"export\s+interface\s+%s\s*\{" % re.escape(name), source)
    if m is None:
        raise KeyError(name)
    depth, i, body = 1, m.end(), []
    while depth:
        ch = source[i]
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 1 and ch not in "{}":
            body.append(ch)  # only the interface's own level: nested object types dropped
        i += 1
    top = "".join(body)
    return {k for k in re.findall(r"(?:^|[;\n])\s*([A-Za-z_][A-Za-z0-9_]*)\??\s*:", top)}


def mismatch(py_keys, ts_keys):
    """Sentences for the keys only one side has (empty: the lists agree)."""
    out = ["%s: only in Python" % k for k in sorted(set(py_keys) - set(ts_keys))]
    out += ["%s: only in types.ts" % k for k in sorted(set(ts_keys) - set(py_keys))]
    return out


@pytest.mark.parametrize("cls,ts_name", PAIRS, ids=[p[1] for p in PAIRS])
def test_python_fields_equal_the_typescript_interface(cls, ts_name):
    source = open(TYPES_TS, encoding="utf-8").read()
    assert mismatch(schema.json_keys(cls), ts_interface_keys(source, ts_name)) == []


def test_memory_keys_equal_the_typescript_interface():
    source = open(TYPES_TS, encoding="utf-8").read()
    for td, ts_name in TYPED_DICTS:
        assert mismatch(td.__annotations__, ts_interface_keys(source, ts_name)) == []


def test_the_comparison_can_fail():
    """Control: a key renamed on one side, a key added on the other, nested objects ignored."""
    ts = """export interface ArchEdge {
      source: string;  // a comment: with a colon
      target: string;
      shape: Shape | null;
      extra_nested?: { inner: number; deeper: { x: number } };
      [key: string]: unknown;
    }"""
    keys = ts_interface_keys(ts, "ArchEdge")
    assert keys == {"source", "target", "shape", "extra_nested"}
    assert mismatch(schema.json_keys(schema.Edge), keys) == [
        "count: only in Python", "extra_nested: only in types.ts"]
    with pytest.raises(KeyError):
        ts_interface_keys(ts, "ArchNode")


def _doc():
    return {
        "schema_version": 2, "framework": "torch", "framework_version": "2",
        "model": {"name": "M", "class_name": "M", "total_params": 4, "trainable_params": 4,
                  "non_trainable_params": 0, "batch_size": None, "macs": 8,
                  "macs_complete": True, "macs_convention": schema.MACS_CONVENTION,
                  "memory": {"params_bytes": 16, "buffers_bytes": 0, "activations_bytes": 4},
                  "newer_writer_key": {"kept": [1, 2]}},
        "inputs": ["x"], "outputs": ["fc"],
        "nodes": [
            {"id": "x", "name": "x", "class_name": "Input", "parent": None,
             "input_shapes": None, "output_shapes": [[1, 2]], "dtype": "float32",
             "params": {"trainable": 0, "non_trainable": 0}, "activation": None, "config": {},
             "macs": None, "is_input": True},
            {"id": "fc", "name": "fc", "class_name": "Linear", "parent": None,
             "input_shapes": [[1, 2]], "output_shapes": [[1, 2]], "dtype": "float32",
             "params": {"trainable": 4, "non_trainable": 0}, "activation": None, "config": {},
             "macs": 8, "calls": None, "self_macs": None, "reason": "not reached: boom",
             "memory": {"params_bytes": 16, "output_bytes": 4}, "unknown_flag": True}],
        "edges": [{"source": "x", "target": "fc", "shape": [1, 2], "count": 2}],
        "extraction": {"method": "hooks", "partial": True}, "gradient_reach": {"status": "ok"},
    }


def test_round_trip_keeps_null_apart_from_absent_and_unknown_keys_in_extra():
    doc = _doc()
    arch = schema.from_dict(doc)
    x, fc = arch.nodes
    assert fc.calls is None and fc.self_macs is None and fc.reason == "not reached: boom"
    assert x.calls is schema.ABSENT and x.self_macs is schema.ABSENT and x.is_input is True
    assert arch.model.batch_size is None and arch.model.memory["activations_bytes"] == 4
    assert fc.extra == {"unknown_flag": True} and x.extra == {}
    assert arch.model.extra == {"newer_writer_key": {"kept": [1, 2]}}
    assert arch.extra == {} and arch.extraction == {"method": "hooks", "partial": True}
    assert arch.edges[0].count == 2
    assert json.dumps(arch.to_dict(), sort_keys=True) == json.dumps(doc, sort_keys=True)
    del doc["model"]["batch_size"]  # an older document: the key stays absent
    again = schema.from_dict(doc)
    assert again.model.batch_size is schema.ABSENT and "batch_size" not in again.to_dict()["model"]


@pytest.mark.parametrize("path,value,message", [
    (("nodes", 1, "calls"), "2", "nodes[1].calls: expected a non-negative integer or null"),
    (("nodes", 1, "weights"), {"a": 1}, "nodes[1].weights: expected a list"),
    (("nodes", 1, "is_container"), 1, "nodes[1].is_container: expected true or false"),
    (("nodes", 1, "reason"), 3, "nodes[1].reason: expected a string"),
    (("model", "optimizer_params"), -1, "model.optimizer_params: expected a non-negative"),
    (("edges", 0, "count"), 1.5, "edges[0].count: expected a non-negative integer"),
    (("backend",), ["tf"], "backend: expected a string"),
    (("gradient_reach",), "ok", "gradient_reach: expected an object"),
])
def test_typed_keys_are_validated_naming_the_field(path, value, message):
    doc = _doc()
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(schema.SchemaError, match=re.escape(message)):
        schema.from_dict(doc)


def test_known_keys_in_extra_go_to_their_fields_and_a_late_one_is_refused():
    n = schema.Node(id="a", name="a", class_name="Dense",
                    extra={"calls": 2, "memory": {"params_bytes": 0, "output_bytes": 4}, "x": 1})
    assert n.calls == 2 and n.memory["output_bytes"] == 4 and n.extra == {"x": 1}
    arch = schema.Architecture("keras", "3", schema.ModelInfo("m", "M"), nodes=[n])
    totals.fill_totals(arch)
    assert arch.model.memory["activations_bytes"] == 4
    n.extra["macs_reason"] = "set on extra by mistake"  # a typo'd writer fails loudly
    with pytest.raises(schema.SchemaError, match=r"macs_reason: set the typed field Node\."):
        arch.to_dict()


def test_no_package_module_reads_or_writes_a_known_key_through_extra():
    """`extra` holds unknown keys only: no `.extra["memory"]` / `.extra.get("calls")` left."""
    known = set()
    for cls, _ in PAIRS:
        known |= set(schema.optional_keys(cls))
    pattern = re.compile(r"\.extra(?:\[|\.get\(|\.pop\(|\.setdefault\()\s*[\"'](%s)[\"']"
                         % "|".join(sorted(known)))
    found = []
    for d, _, files in os.walk(os.path.join(ROOT, "tensorboard_archviz")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                for i, line in enumerate(open(path, encoding="utf-8"), 1):
                    if pattern.search(line):
                        found.append("%s:%d" % (os.path.relpath(path, ROOT), i))
    assert found == []
    assert pattern.search('node.extra.get("memory")') and pattern.search("a.extra['calls']")
