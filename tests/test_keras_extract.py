"""keras.Model -> Architecture (tensorboard_archviz.extract.keras), on the default backend.

The reference numbers (LeNet, MLP, BatchNormalization) are asserted exactly; the model builders
come from tests/fixtures/keras_models.py.
"""

import logging
import os
import sys
import time

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

from fixtures.keras_models import build_lenet, build_mlp, compile_classifier  # noqa: E402
from tensorboard_archviz import schema  # noqa: E402
from tensorboard_archviz.extract.keras import extract_keras, layer_node_ids  # noqa: E402

LOGGER = "tensorboard_archviz.extract.keras"


def params(node):
    return (node.params["trainable"], node.params["non_trainable"])


def edge_set(arch):
    return {(e.source, e.target, tuple(e.shape) if e.shape is not None else None)
            for e in arch.edges}


def roundtrip(arch):
    again = schema.from_json(arch.to_json())
    assert again.to_dict() == arch.to_dict()
    return again


def warnings_of(caplog):
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# -- reference numbers -------------------------------------------------------------------------

def test_lenet_reference_numbers_shapes_edges_macs():
    arch = roundtrip(extract_keras(build_lenet()))
    assert arch.framework == "keras" and arch.framework_version == keras.__version__
    assert arch.extraction["method"] == "sequential_graph"
    ids = ["input_layer", "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten",
           "dense", "dense_1"]
    assert arch.node_ids() == ids
    layer_params = [arch.node(i).total_params for i in ids[1:]]
    assert layer_params == [520, 0, 25050, 0, 0, 1225500, 5010]
    assert (arch.model.total_params, arch.model.trainable_params,
            arch.model.non_trainable_params) == (1256080, 1256080, 0)
    outs = {i: arch.node(i).output_shapes for i in ids}
    assert outs == {
        "input_layer": [[None, 28, 28, 1]], "conv2d": [[None, 28, 28, 20]],
        "max_pooling2d": [[None, 14, 14, 20]], "conv2d_1": [[None, 14, 14, 50]],
        "max_pooling2d_1": [[None, 7, 7, 50]], "flatten": [[None, 2450]],
        "dense": [[None, 500]], "dense_1": [[None, 10]]}
    assert arch.node("conv2d_1").input_shapes == [[None, 14, 14, 20]]
    assert arch.node("dense").input_shapes == [[None, 2450]]
    chain = [(a, b, tuple(outs[a][0])) for a, b in zip(ids, ids[1:])]
    assert sorted(edge_set(arch)) == sorted(chain) and len(arch.edges) == 7
    assert arch.inputs == ["input_layer"] and arch.outputs == ["dense_1"]
    assert all(n.parent is None for n in arch.nodes)

    conv = arch.node("conv2d")
    assert conv.class_name == "Conv2D" and conv.activation == "relu" and conv.dtype == "float32"
    assert conv.config["filters"] == 20 and conv.config["kernel_size"] == [5, 5]
    assert conv.config["padding"] == "same" and conv.config["strides"] == [1, 1]
    assert [{k: w[k] for k in ("name", "shape", "trainable")} for w in conv.weights] \
        == [{"name": "kernel", "shape": [5, 5, 1, 20], "trainable": True},
            {"name": "bias", "shape": [20], "trainable": True}]
    assert conv.weights[0]["path"].endswith("conv2d/kernel")  # Keras' variable path
    assert arch.node("max_pooling2d").config["pool_size"] == [2, 2]
    assert arch.node("dense_1").activation == "softmax"
    # MACs per example (schema 2): kernel elements x output positions; no bias, pooling 0
    assert conv.macs == (5 * 5 * 1 * 20) * 28 * 28
    assert arch.node("conv2d_1").macs == (5 * 5 * 20 * 50) * 14 * 14
    assert arch.node("max_pooling2d").macs == 0
    assert arch.node("dense").macs == 2450 * 500
    assert arch.node("flatten").macs == 0


def test_mlp_reference_numbers():
    arch = roundtrip(extract_keras(build_mlp()))
    assert arch.node_ids() == ["input_layer", "flatten", "dense", "dropout", "dense_1"]
    assert [arch.node(i).total_params for i in arch.node_ids()] == [0, 0, 25120, 0, 330]
    assert arch.model.total_params == 25450
    assert arch.node("flatten").output_shapes == [[None, 784]]
    assert arch.node("dropout").config["rate"] == 0.2
    assert arch.node("dense").activation == "relu"


def test_batchnorm_split_and_macs():
    model = keras.Sequential([keras.Input((5, 8)), layers.BatchNormalization(name="bn")])
    arch = extract_keras(model)
    bn = arch.node("bn")
    assert params(bn) == (16, 16)
    assert (arch.model.total_params, arch.model.trainable_params,
            arch.model.non_trainable_params) == (32, 16, 16)
    assert bn.macs == 0  # elementwise: not a MAC (schema 2)
    assert bn.config["axis"] == -1 and bn.config["momentum"] == 0.99
    assert {(w["name"], w["trainable"]) for w in bn.weights} == {
        ("gamma", True), ("beta", True), ("moving_mean", False), ("moving_variance", False)}


def test_totals_exclude_optimizer_variables_after_fit():
    model = compile_classifier(build_mlp())
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    y = np.arange(64) % 10
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert len(model.optimizer.variables) > 0
    opt = sum(int(np.prod(v.shape)) for v in model.optimizer.variables)
    assert opt > 2 * 25450  # Adam: two moments per weight, plus counters
    arch = extract_keras(model)
    assert arch.model.total_params == 25450 == model.count_params()
    assert arch.model.trainable_params == 25450 and arch.model.non_trainable_params == 0
    assert arch.model.optimizer_params == opt


def test_frozen_layer_counts_as_non_trainable():
    model = build_lenet()
    model.get_layer("dense").trainable = False
    arch = extract_keras(model)
    assert params(arch.node("dense")) == (0, 1225500)
    assert arch.node("dense").config["trainable"] is False
    assert all(not w["trainable"] for w in arch.node("dense").weights)
    assert (arch.model.trainable_params, arch.model.non_trainable_params) == (30580, 1225500)


# -- Functional graphs ---------------------------------------------------------------------------

def two_input_model():
    """Two inputs, a shared Dense called twice, a nested Sequential and a nested Functional."""
    inner_seq = keras.Sequential([keras.Input((16,), name="seq_in"),
                                  layers.Dense(8, activation="relu", name="d1"),
                                  layers.Dense(4, name="d2")], name="inner_seq")
    fin = keras.Input((4,), name="fin")
    inner_fn = keras.Model(fin, layers.Dense(2, activation="tanh", name="fdense")(fin),
                           name="inner_fn")
    a, b = keras.Input((16,), name="a"), keras.Input((16,), name="b")
    shared = layers.Dense(16, name="shared")
    sa, sb = shared(a), shared(b)
    added = layers.Add(name="add_layer")([sa, sb])
    plus = keras.ops.add(added, sa)                  # a keras.ops call: a node of its own
    y = inner_fn(inner_seq(plus))
    out2 = layers.Concatenate(name="concat")([y, sb])
    return keras.Model([a, b], [y, out2], name="two_in")


def test_functional_two_inputs_shared_layer_nested_models():
    model = two_input_model()
    arch = roundtrip(extract_keras(model))
    assert arch.extraction["method"] == "functional_graph"
    op = [n for n in arch.nodes if n.operation]
    assert len(op) == 1 and op[0].class_name == "Add"
    op_id = op[0].id
    assert set(arch.node_ids()) == {
        "a", "b", "shared", "add_layer", op_id, "inner_seq", "inner_seq/seq_in",
        "inner_seq/d1", "inner_seq/d2", "inner_fn", "inner_fn/fin", "inner_fn/fdense", "concat"}
    assert len(arch.nodes) == 13
    parents = {n.id: n.parent for n in arch.nodes}
    assert parents["inner_seq/d1"] == "inner_seq" and parents["inner_fn/fdense"] == "inner_fn"
    assert parents["inner_seq/seq_in"] == "inner_seq" and parents["shared"] is None
    assert arch.node("inner_seq").is_container is True
    assert arch.children("inner_fn") == [arch.node("inner_fn/fin"), arch.node("inner_fn/fdense")]

    s16 = (None, 16)
    assert edge_set(arch) == {
        ("a", "shared", s16), ("b", "shared", s16),
        ("shared", "add_layer", s16),                       # both calls' outputs, one edge
        ("add_layer", op_id, s16), ("shared", op_id, s16),
        (op_id, "inner_seq/seq_in", s16),
        ("inner_seq/seq_in", "inner_seq/d1", s16), ("inner_seq/d1", "inner_seq/d2", (None, 8)),
        ("inner_seq/d2", "inner_fn/fin", (None, 4)),
        ("inner_fn/fin", "inner_fn/fdense", (None, 4)),
        ("inner_fn/fdense", "concat", (None, 2)), ("shared", "concat", s16)}
    assert len(arch.edges) == 12
    dup = [e for e in arch.edges if (e.source, e.target) == ("shared", "add_layer")]
    assert dup[0].count == 2
    assert arch.inputs == ["a", "b"] and arch.outputs == ["inner_fn/fdense", "concat"]

    shared = arch.node("shared")
    assert shared.calls == 2 and params(shared) == (272, 0)
    assert shared.macs == 2 * 16 * 16                      # summed over both calls
    assert arch.node("add_layer").input_shapes == [[None, 16], [None, 16]]
    assert arch.node("concat").input_shapes == [[None, 2], [None, 16]]
    assert arch.node("concat").output_shapes == [[None, 18]]
    assert arch.node("inner_seq").input_shapes == [[None, 16]]
    assert arch.node("inner_seq").output_shapes == [[None, 4]]
    assert params(arch.node("inner_seq")) == (136 + 36, 0)
    assert params(arch.node("inner_fn")) == (10, 0)
    assert arch.node("inner_fn/fdense").activation == "tanh"
    # totals: shared once, containers not double-counted
    assert arch.model.total_params == 272 + 136 + 36 + 10 == model.count_params()
    leaves = [n for n in arch.nodes if not n.is_container]
    assert sum(n.total_params for n in leaves) == arch.model.total_params
    assert extract_keras(model).to_json() == arch.to_json()   # ids stable


def test_multi_output_layer_shapes():
    class Split(layers.Layer):
        def call(self, x):
            return x[:, :3], x[:, 3:]

        def compute_output_shape(self, s):
            return (s[0], 3), (s[0], s[1] - 3)

    x = keras.Input((10,), name="x")
    p, q = Split(name="split")(x)
    out = layers.Concatenate(name="cat")([layers.Dense(2, name="dp")(p),
                                          layers.Dense(5, name="dq")(q)])
    arch = extract_keras(keras.Model(x, out))
    assert arch.node("split").output_shapes == [[None, 3], [None, 7]]
    assert ("split", "dp", (None, 3)) in edge_set(arch)
    assert ("split", "dq", (None, 7)) in edge_set(arch)


def test_resnet50_residual_edges_and_speed():
    model = keras.applications.ResNet50(weights=None)
    start = time.perf_counter()
    arch = extract_keras(model)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert arch.model.total_params == model.count_params() == 25636712
    assert arch.model.non_trainable_params == 53120
    assert len(arch.nodes) == len(model.layers)
    srcs = sorted(e.source for e in arch.edges if e.target == "conv2_block1_add")
    assert srcs == ["conv2_block1_0_bn", "conv2_block1_3_bn"]
    assert arch.node("conv1_conv").macs == 7 * 7 * 3 * 64 * 112 * 112
    assert arch.node("avg_pool").macs == 0


# -- subclassed models ---------------------------------------------------------------------------

class Residual(keras.Model):
    def __init__(self):
        super().__init__(name="residual")
        self.d1 = layers.Dense(8, activation="relu", name="d1")
        self.bn = layers.BatchNormalization(name="bn")
        self.d2 = layers.Dense(8, name="d2")
        self.head = layers.Dense(3, name="head")
        self.unused = layers.Dense(5, name="unused")

    def call(self, x, training=None):
        h = self.bn(self.d1(x), training=training)
        return self.head(keras.ops.add(self.d2(h), h))


def test_subclassed_model_symbolic_trace():
    model = Residual()
    model(np.zeros((2, 8), dtype="float32"))
    sub = [l for l in model._flatten_layers(include_self=True)]
    before = [(len(l._inbound_nodes), len(l._outbound_nodes)) for l in sub]
    arch = roundtrip(extract_keras(model))
    assert [(len(l._inbound_nodes), len(l._outbound_nodes)) for l in sub] == before
    assert arch.extraction["method"] == "symbolic_trace"
    add = [n.id for n in arch.nodes if n.operation]
    assert add == ["add"]
    assert edge_set(arch) == {
        ("input", "d1", (None, 8)), ("d1", "bn", (None, 8)), ("bn", "d2", (None, 8)),
        ("d2", "add", (None, 8)), ("bn", "add", (None, 8)), ("add", "head", (None, 8))}
    assert arch.inputs == ["input"] and arch.outputs == ["head"]
    assert arch.node("head").output_shapes == [[None, 3]]
    assert params(arch.node("bn")) == (16, 16)
    unused = arch.node("unused")
    assert unused.output_shapes is None and "not built" in unused.reason
    assert arch.model.total_params == model.count_params() == 72 + 32 + 72 + 27
    assert arch.model.non_trainable_params == 16
    assert extract_keras(model).to_json() == arch.to_json()   # ids stable across traces


def test_subclassed_untraceable_falls_back_to_tracked_layers(caplog):
    class Numpyish(keras.Model):
        def __init__(self):
            super().__init__(name="numpyish")
            self.d1 = layers.Dense(4, name="n1")
            self.d2 = layers.Dense(2, name="n2")

        def build(self, input_shape):
            self.d1.build(input_shape)
            self.d2.build((None, 4))

        def call(self, x):
            h = keras.ops.convert_to_tensor(keras.ops.convert_to_numpy(self.d1(x)))
            return self.d2(h)

    model = Numpyish()
    model(np.zeros((3, 6), dtype="float32"))
    assert model.built
    with caplog.at_level(logging.INFO, logger=LOGGER):
        arch = roundtrip(extract_keras(model))
    assert arch.extraction["method"] == "tracked_layers"
    assert "symbolic trace of call() failed" in arch.extraction["reason"]
    assert arch.node_ids() == ["n1", "n2"] and arch.edges == []
    assert arch.node("n1").input_shapes == [[None, 6]]
    assert arch.node("n1").output_shapes == [[None, 4]]
    assert arch.node("n2").output_shapes == [[None, 2]]
    assert arch.model.total_params == 28 + 10
    assert warnings_of(caplog) == []


class NoShape(layers.Layer):
    def call(self, x):
        return x * 2.0

    def compute_output_shape(self, input_shape):
        raise NotImplementedError("no shape inference here")


def test_layer_without_shape_appears_with_reason_sequential(caplog):
    model = keras.Sequential([keras.Input((4,), name="sin"), layers.Dense(8, name="s1"),
                              NoShape(name="noshape"), layers.Dense(2, name="s2")])
    model(np.zeros((2, 4), dtype="float32"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        arch = roundtrip(extract_keras(model))
    assert arch.extraction["method"] == "sequential_layers"
    bad = arch.node("noshape")
    assert bad.output_shapes is None and bad.input_shapes == [[None, 8]]
    assert "no shape inference here" in bad.reason
    assert arch.node("s2").output_shapes == [[None, 2]]
    assert [(e.source, e.target) for e in arch.edges] == [
        ("sin", "s1"), ("s1", "noshape"), ("noshape", "s2")]
    assert arch.model.total_params == 40 + 18
    warned = warnings_of(caplog)
    assert len(warned) == 1 and "noshape" in warned[0].getMessage()


def test_layer_without_shape_appears_with_reason_subclassed(caplog):
    class WithBad(keras.Model):
        def __init__(self):
            super().__init__(name="with_bad")
            self.w1 = layers.Dense(8, name="w1")
            self.bad = NoShape(name="bad")
            self.w2 = layers.Dense(2, name="w2")

        def call(self, x):
            return self.w2(self.bad(self.w1(x)))

    model = WithBad()
    model(np.zeros((2, 4), dtype="float32"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        arch = roundtrip(extract_keras(model))
    assert arch.node_ids() == ["w1", "bad", "w2"]
    assert arch.node("bad").output_shapes is None and arch.node("bad").reason is not None
    assert arch.node("w2").output_shapes == [[None, 2]]
    assert len(warnings_of(caplog)) == 1


# -- dtypes, activations, ids ------------------------------------------------------------------

def test_mixed_precision_dtype_policy_and_activations():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([
            keras.Input((6,), name="min"), layers.Dense(8, name="m1"),
            layers.Activation("tanh", name="act"), layers.ReLU(name="relu_layer"),
            layers.LeakyReLU(name="leaky"), layers.Dense(2, dtype="float32", name="mout")])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    arch = extract_keras(model)
    m1 = arch.node("m1")
    assert m1.dtype == "float16" and m1.dtype_policy == "mixed_float16"
    assert m1.weights[0]["shape"] == [6, 8]
    out = arch.node("mout")
    assert out.dtype == "float32" and out.dtype_policy is None
    assert [arch.node(i).activation for i in ("m1", "act", "relu_layer", "leaky")] == [
        "linear", "tanh", "relu", "leaky_relu"]


def test_layer_node_ids_match_architecture():
    model = two_input_model()
    ids = layer_node_ids(model)
    arch = extract_keras(model)
    layer_ids = {n.id for n in arch.nodes if not n.operation}
    assert set(ids) == layer_ids
    assert ids["inner_seq/d1"] is model.get_layer("inner_seq").get_layer("d1")


def test_rejects_non_models():
    with pytest.raises(TypeError, match="keras.Model"):
        extract_keras(layers.Dense(3))
