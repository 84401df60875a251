"""schema_version 2: the new optional keys are validated, v1 documents migrate, and
`totals.fill_totals` computes container sums and model totals (hand-built architectures, hand
arithmetic)."""

import json

import pytest

from tensorboard_archviz import schema, totals


def _v1_keras():
    return {"schema_version": 1, "framework": "keras", "framework_version": "3.15.0",
            "model": {"name": "m", "class_name": "Sequential", "total_params": 4,
                      "trainable_params": 4, "non_trainable_params": 0},
            "inputs": ["in"], "outputs": ["d"],
            "nodes": [{"id": "in", "name": "in", "class_name": "InputLayer"},
                      {"id": "d", "name": "d", "class_name": "Dense", "macs": 4,
                       "params": {"trainable": 4, "non_trainable": 0}}],
            "edges": [{"source": "in", "target": "d", "shape": [None, 3]}],
            "extraction": "tracked_layers", "extraction_detail": "trace failed: x",
            "backend": "tensorflow"}


def test_v1_keras_document_migrates_extraction_and_convention():
    arch = schema.from_json(json.dumps(_v1_keras()))
    assert arch.schema_version == 2
    assert arch.extraction == {"method": "tracked_layers", "reason": "trace failed: x"}
    assert "extraction_detail" not in arch.extra
    assert arch.backend == "tensorflow"  # unknown keys kept
    assert arch.model.macs_convention == schema.MACS_CONVENTION_V1
    assert arch.node("d").macs == 4  # numbers untouched
    assert arch.model.macs is None
    out = arch.to_dict()
    assert out["schema_version"] == 2 and out["extraction"]["method"] == "tracked_layers"
    assert schema.from_dict(out) == arch  # a migrated document reads back unchanged


def test_v1_torch_document_keeps_its_numbers():
    doc = _v1_keras()
    doc.update(framework="torch", extraction={"method": "fx", "reason": "torch.fx"})
    del doc["extraction_detail"]
    doc["model"].update(macs=256, macs_convention="torchinfo mult-adds, whole batch",
                        batch_size=64)
    arch = schema.from_dict(doc)
    assert arch.model.macs == 256 and arch.model.batch_size == 64
    assert arch.model.macs_convention == schema.MACS_CONVENTION_V1
    assert arch.extraction == {"method": "fx", "reason": "torch.fx"}


def test_conventions_are_distinct_sentences():
    assert schema.SCHEMA_VERSION == 2
    assert "per example" in schema.MACS_CONVENTION
    assert schema.MACS_CONVENTION != schema.MACS_CONVENTION_V1
    assert "not comparable" in schema.MACS_CONVENTION_V1


def _v2():
    doc = _v1_keras()
    doc.update(schema_version=2, extraction={"method": "sequential_graph"})
    del doc["extraction_detail"]
    doc["model"].update(macs=4, macs_complete=True, macs_convention=schema.MACS_CONVENTION,
                        batch_size=None, memory={"params_bytes": 16, "buffers_bytes": 0,
                                                 "activations_bytes": 4})
    doc["nodes"][1].update(memory={"params_bytes": 16, "output_bytes": 4})
    doc["nodes"][0].update(memory={"params_bytes": 0, "output_bytes": None},
                           macs_reason="an input")
    return doc


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.update(extraction="fx"), "extraction: expected an object"),
    (lambda d: d.update(extraction={"reason": "x"}), "extraction.method"),
    (lambda d: d["model"].update(macs=-1), "model.macs"),
    (lambda d: d["model"].update(macs_complete="yes"), "model.macs_complete"),
    (lambda d: d["model"].update(macs_convention=3), "model.macs_convention"),
    (lambda d: d["model"].update(batch_size=0), "model.batch_size"),
    (lambda d: d["model"].update(memory=[]), "model.memory: expected an object"),
    (lambda d: d["model"]["memory"].pop("buffers_bytes"), "model.memory.buffers_bytes: missing"),
    (lambda d: d["model"]["memory"].update(params_bytes=1.5), "model.memory.params_bytes"),
    (lambda d: d["nodes"][1].update(macs_reason=None), "nodes[1].macs_reason"),
    (lambda d: d["nodes"][1]["memory"].update(output_bytes=-4), "nodes[1].memory.output_bytes"),
    (lambda d: d["nodes"][1]["memory"].pop("params_bytes"), "nodes[1].memory.params_bytes"),
])
def test_v2_fields_are_validated_and_errors_name_the_field(mutate, field):
    doc = _v2()
    arch = schema.from_dict(json.loads(json.dumps(doc)))
    assert arch.model.memory["params_bytes"] == 16
    assert arch.node("d").memory == {"params_bytes": 16, "output_bytes": 4}
    mutate(doc)
    with pytest.raises(schema.SchemaError) as e:
        schema.Architecture.from_json(json.dumps(doc))
    assert field in str(e.value)


def _node(nid, parent=None, params=0, macs=0, out=None, **extra):
    n = schema.Node(nid, nid.rsplit("/", 1)[-1], "X", parent=parent,
                    params={"trainable": params, "non_trainable": 0}, macs=macs, extra=extra)
    if "memory" not in extra:
        n.memory = {"params_bytes": 4 * params, "output_bytes": out}
    return n


def _hand_built():
    """in -> block{a, b(shared weight with a), inner{c, fn}} -> head.

    a: Dense 3->4, weights kernel [3,4] (path "block/a/kernel"), bias [4]: 16 params, 12 MACs.
    b: ties a's kernel (same path) + own bias [4]: lists 16 params, only 4 new ones; 12 MACs.
    inner/c: 10 params, 100 MACs, output 8 floats; inner/fn: functional op, 7 MACs, no params.
    block itself: self_macs 5 (work in its own forward), a direct parameter [2] (2 params).
    head: 6 params, MACs unknown (null + reason). Outputs per example: a 16 B, b 16 B,
    c 32 B, fn 32 B, head 8 B.
    """
    w = lambda name, shape, path=None: dict(  # noqa: E731
        {"name": name, "shape": shape, "trainable": True, "dtype": "float32"},
        **({"path": path} if path else {}))
    return schema.Architecture(
        "torch", "2", schema.ModelInfo("m", "Net", 38, 38, 0), inputs=["in"], outputs=["head"],
        nodes=[
            _node("in", out=12, is_input=True, macs=None),
            _node("block", out=32, self_macs=5, weights=[w("scale", [2])]),
            _node("block/a", "block", 16, 12, 16,
                  weights=[w("kernel", [3, 4], "block/a/kernel"), w("bias", [4])]),
            _node("block/b", "block", 16, 12, 16,
                  weights=[w("kernel", [3, 4], "block/a/kernel"), w("bias", [4])]),
            _node("block/inner", "block", out=32),
            _node("block/inner/c", "block/inner", 10, 100, 32),
            _node("block/inner/fn", "block/inner", 0, 7, 32, is_function=True),
            _node("head", None, 6, None, 8, macs_reason="custom op"),
            _node("unused", None, 0, None, None, calls=0),
        ])


def test_fill_totals_on_a_hand_built_architecture():
    arch = _hand_built()
    totals.fill_totals(arch)
    inner, block = arch.node("block/inner"), arch.node("block")
    assert inner.params == {"trainable": 10, "non_trainable": 0}
    assert inner.macs == 100 + 7 and inner.macs_reason is None
    assert inner.memory == {"params_bytes": 40, "output_bytes": 32,
                                     "activations_bytes": 32 + 32}
    # block: 2 own + a 16 + b's 4 new (tied kernel once) + inner 10 = 32 params, 4 bytes each
    assert block.params == {"trainable": 32, "non_trainable": 0}
    assert block.macs == 5 + 12 + 12 + 107
    assert block.memory["params_bytes"] == 128
    assert block.memory["activations_bytes"] == 16 + 16 + 32 + 32
    m = arch.model
    assert m.macs == 136 and m.macs_complete is False  # head unknown; "unused" not called
    assert m.macs_convention == schema.MACS_CONVENTION
    assert m.memory == {"params_bytes": 128 + 24, "buffers_bytes": 0,
                        "activations_bytes": 96 + 8}  # the input is not an activation
    assert arch.model.total_params == 38  # the framework's count is left alone
    before = arch.to_dict()
    totals.fill_totals(arch)  # idempotent
    assert arch.to_dict() == before
    schema.from_json(arch.to_json())  # the result is a valid document


def test_container_with_unknown_children_is_a_lower_bound():
    arch = _hand_built()
    arch.node("block/inner/c").macs = None
    arch.node("block/inner/c").macs_reason = "dynamic shape"
    arch.node("block/inner/fn").macs = None
    totals.fill_totals(arch)
    inner, block = arch.node("block/inner"), arch.node("block")
    assert inner.macs is None and inner.macs_complete is False
    assert inner.macs_reason.startswith("unknown:")
    assert block.macs == 5 + 12 + 12 and block.macs_complete is False
    assert block.macs_reason == "at least: MACs unknown for 2 node(s) inside"
    arch.node("block/inner/c").macs = 100
    arch.node("block/inner/fn").macs = 7
    totals.fill_totals(arch)  # recomputed from the leaves: the lower-bound marks go away
    assert arch.node("block").macs == 136 and arch.node("block").macs_reason is None
    assert arch.node("block").macs_complete is None


def test_buffers_and_dtypes():
    assert totals.itemsize("torch.bfloat16") == 2 and totals.itemsize("float64") == 8
    assert totals.itemsize("<dtype: 'float16'>") == 2 and totals.itemsize("weird") is None
    assert totals.tensor_bytes([None, 3, 4], "float32") == 48
    assert totals.tensor_bytes([None, None], "float32") is None
    bn = _node("bn", None, 8, 0, 16, buffers=[
        {"name": "running_mean", "shape": [4], "dtype": "torch.float32"},
        {"name": "num_batches_tracked", "shape": [], "dtype": "torch.int64"}])
    box = _node("box", out=16)
    bn.parent = "box"
    leaf_bn = _node("bn2", "box", 0, 0, 4, memory={"params_bytes": 0, "output_bytes": 4,
                                                   "buffers_bytes": 12})
    arch = schema.Architecture("torch", "2", schema.ModelInfo("m", "BN", 8, 8, 0),
                               nodes=[box, bn, leaf_bn])
    for _ in range(2):  # idempotent: the container's buffers are not read back
        totals.fill_totals(arch)
        assert arch.model.memory == {"params_bytes": 32, "buffers_bytes": 24 + 12,
                                              "activations_bytes": 16 + 4}
        assert arch.node("box").memory["buffers_bytes"] == 36
    assert arch.model.macs == 0 and arch.model.macs_complete is True


def test_model_self_weights_and_buffers_count_once():
    fc = _node("fc", None, 36, 32, 16, weights=[
        {"name": "weight", "shape": [4, 8], "trainable": True, "dtype": "torch.float32",
         "path": "fc.weight"},
        {"name": "bias", "shape": [4], "trainable": True, "dtype": "torch.float32",
         "path": "fc.bias"}])
    arch = schema.Architecture("torch", "2", schema.ModelInfo("m", "M", 44, 44, 0), nodes=[fc])
    arch.model.self_weights = [  # the root module's own nn.Parameter (bf16)
        {"name": "cls", "shape": [1, 1, 8], "trainable": True, "dtype": "torch.bfloat16"}]
    arch.model.self_buffers = [{"name": "pos", "shape": [3, 8], "dtype": "float32"}]
    totals.fill_totals(arch)
    assert arch.model.memory == {"params_bytes": 36 * 4 + 8 * 2,
                                          "buffers_bytes": 3 * 8 * 4, "activations_bytes": 16}
