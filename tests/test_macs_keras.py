"""Keras MACs per example (schema 2 convention) and memory, checked against hand arithmetic on
real Keras layers: every figure below is written out as the products it counts."""

import json

import keras
import pytest
from keras import layers

from tensorboard_archviz import schema
from tensorboard_archviz.extract.keras import extract_keras


def extract(inputs, outputs):
    arch = extract_keras(keras.Model(inputs, outputs))
    again = schema.from_json(arch.to_json())  # every figure survives validation
    assert again.to_dict() == json.loads(arch.to_json())
    return arch


def test_dense_counts_every_position_of_an_nd_input():
    x = keras.Input((7, 12))  # [B, T=7, C=12]
    arch = extract(x, layers.Dense(5, name="d")(x))
    d = arch.node("d")
    assert d.macs == 7 * 12 * 5  # T * C * units; the bias is an add, not a MAC
    assert d.memory == {"params_bytes": (12 * 5 + 5) * 4, "output_bytes": 7 * 5 * 4}
    m = arch.model
    assert m.macs == 420 and m.macs_complete is True and m.batch_size is None
    assert m.macs_convention == schema.MACS_CONVENTION
    assert m.memory == {"params_bytes": 65 * 4, "buffers_bytes": 0,
                        "activations_bytes": 7 * 5 * 4}  # the input is not an activation
    assert arch.extraction == {"method": "functional_graph"}


def test_multi_head_attention_projections_and_products():
    q, v, k = keras.Input((6, 16)), keras.Input((10, 12)), keras.Input((10, 20))
    heads, key_dim = 4, 8  # value_dim defaults to key_dim; output dim defaults to query's (16)
    self_kv = layers.MultiHeadAttention(heads, key_dim, name="mha")
    cross = layers.MultiHeadAttention(heads, key_dim, name="mha_key")
    arch = extract([q, v, k], [self_kv(q, v), cross(q, v, key=k)])
    q_proj = 6 * 16 * (heads * key_dim)    # Tq x d_query x (H x key_dim)    = 3072
    k_proj = 10 * 12 * (heads * key_dim)   # Tk x d_key (= value's 12)       = 3840
    v_proj = 10 * 12 * (heads * key_dim)   # Tv x d_value x (H x value_dim)  = 3840
    scores = heads * 6 * 10 * key_dim      # QK^T: H x Tq x Tk x key_dim     = 1920
    mix = heads * 6 * 10 * key_dim         # AV:   H x Tq x Tv x value_dim   = 1920
    out = 6 * (heads * key_dim) * 16       # output projection               = 3072
    assert arch.node("mha").macs == q_proj + k_proj + v_proj + scores + mix + out == 17664
    k_proj_20 = 10 * 20 * (heads * key_dim)  # a separate key of width 20     = 6400
    assert arch.node("mha_key").macs == 17664 - k_proj + k_proj_20 == 20224
    assert arch.node("mha").memory["params_bytes"] == 4 * (
        (16 * 32 + 32) + 2 * (12 * 32 + 32) + (32 * 16 + 16))


@pytest.mark.parametrize("make,shape,expected", [
    # Conv2D, groups=3: kernel [3, 3, 6/3, 12] at 8 x 8 output positions
    (lambda: layers.Conv2D(12, 3, padding="same", groups=3), (8, 8, 6), 3 * 3 * 2 * 12 * 64),
    # Conv1D valid: kernel [3, 3, 4] at 8 positions
    (lambda: layers.Conv1D(4, 3), (10, 3), 3 * 3 * 4 * 8),
    # Conv3D valid: kernel [2, 2, 2, 2, 3] at 3 x 3 x 3 positions
    (lambda: layers.Conv3D(3, 2), (4, 4, 4, 2), 2 * 2 * 2 * 2 * 3 * 27),
    # transposed: the whole kernel [3, 3, 5, 3] at every one of the 4 x 4 INPUT positions
    (lambda: layers.Conv2DTranspose(5, 3, strides=2, padding="same"), (4, 4, 3),
     3 * 3 * 5 * 3 * 16),
    # depthwise: kernel [3, 3, 4, 2] at 8 x 8 positions
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (8, 8, 4),
     3 * 3 * 4 * 2 * 64),
    # separable: depthwise [3, 3, 4, 1] + pointwise [1, 1, 4, 6], both at 8 x 8 positions
    (lambda: layers.SeparableConv2D(6, 3, padding="same"), (8, 8, 4), (36 + 24) * 64),
    # channels_first Conv2D: spatial dims are the last two
    (lambda: layers.Conv2D(2, 3, data_format="channels_first"), (3, 6, 6),
     3 * 3 * 3 * 2 * 16),
    # EinsumDense "abc,cd->abd": 7 positions x 12 x 6
    (lambda: layers.EinsumDense("abc,cd->abd", output_shape=(None, 6)), (7, 12), 7 * 12 * 6),
    # recurrent cells per step x T=5 (input 3, units 4): LSTM 4 gates, GRU 3, SimpleRNN 1
    (lambda: layers.LSTM(4), (5, 3), 5 * 4 * (3 * 4 + 4 * 4)),
    (lambda: layers.GRU(4), (5, 3), 5 * 3 * (3 * 4 + 4 * 4)),
    (lambda: layers.SimpleRNN(4, return_sequences=True), (5, 3), 5 * (3 * 4 + 4 * 4)),
    (lambda: layers.Bidirectional(layers.LSTM(4)), (5, 3), 2 * 5 * 4 * (3 * 4 + 4 * 4)),
    # TimeDistributed(Dense(5)) over 7 steps of 12 features
    (lambda: layers.TimeDistributed(layers.Dense(5)), (7, 12), 7 * 12 * 5),
    # a lookup, and elementwise / data-movement layers: a true 0
    (lambda: layers.Embedding(100, 8), (9,), 0),
    (lambda: layers.LayerNormalization(), (7, 12), 0),
    (lambda: layers.BatchNormalization(), (7, 12), 0),
    (lambda: layers.Activation("gelu"), (7, 12), 0),
    (lambda: layers.MaxPooling1D(), (8, 12), 0),
    (lambda: layers.GlobalAveragePooling1D(), (8, 12), 0),
    (lambda: layers.Dropout(0.5), (8, 12), 0),
])
def test_layer_macs(make, shape, expected):
    x = keras.Input(shape)
    layer = make()
    arch = extract(x, layer(x))
    node = arch.node(layer.name)
    assert node.macs == expected, node.macs_reason
    assert arch.model.macs == expected and arch.model.macs_complete is True


def test_ops_and_merging_products():
    a, b, c = keras.Input((6, 8)), keras.Input((8, 5)), keras.Input((5, 8))
    outs = [keras.ops.matmul(a, b), layers.Dot(axes=2, name="dot")([a, c]),
            keras.ops.einsum("btc,bcd->btd", a, b), layers.Add(name="add")([a, a]),
            layers.Attention(name="att")([a, c])]
    arch = extract([a, b, c], outs)
    assert arch.node("matmul").macs == 6 * 5 * 8     # [6, 8] @ [8, 5]
    assert arch.node("dot").macs == 6 * 5 * 8        # 6 x 5 dot products of length 8
    assert arch.node("einsum").macs == 6 * 8 * 5     # letters t, c, d (b is the batch)
    assert arch.node("add").macs == 0
    assert arch.node("att").macs == 6 * 5 * 8 + 6 * 5 * 8  # QK^T + AV (value = key = c)
    assert arch.model.macs == 3 * 240 + 480


class Cube(keras.Operation):
    """A user-defined operation: no MACs rule can know what it does."""

    def call(self, x):
        return x * x * x

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, x.dtype)


class Mystery(layers.Layer):
    def call(self, x):
        return Cube(name="cube")(keras.ops.sin(x))


def test_unknown_layer_is_null_with_reason_and_totals_say_at_least():
    x = keras.Input((4,))
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="d1"),
                              Mystery(name="odd"), layers.Dense(2, name="d2")], name="inner")
    arch = extract(x, layers.Dense(6, name="head")(inner(x)))
    odd = arch.node("inner/odd")
    assert odd.macs is None  # its call() is traced: keras.ops.sin is a 0, Cube is unknown
    assert odd.macs_reason == "cube: no MACs rule for Cube (a custom operation)"
    box = arch.node("inner")
    assert box.macs == 4 * 3 + 3 * 2 and box.macs_complete is False
    assert box.macs_reason == "at least: MACs unknown for 1 node(s) inside"
    assert box.params == {"trainable": 15 + 8, "non_trainable": 0}
    assert box.memory["params_bytes"] == (15 + 8) * 4
    assert box.memory["activations_bytes"] == (3 + 3 + 2) * 4
    assert arch.model.macs == 18 + 2 * 6 and arch.model.macs_complete is False
    assert arch.model.memory["params_bytes"] == arch.model.total_params * 4


def test_mixed_precision_memory_uses_each_dtype():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x = keras.Input((7, 12))
        arch = extract(x, layers.Dense(5, name="d")(x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # float32 variables, float16 outputs
    assert arch.node("d").memory == {"params_bytes": 65 * 4, "output_bytes": 35 * 2}


def build_lenet():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(20, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(50, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(500, activation="relu"),
        layers.Dense(10, activation="softmax")])


def test_lenet_per_example_macs():
    arch = extract_keras(build_lenet())
    conv1 = 20 * 5 * 5 * 1 * 28 * 28      # 392,000
    conv2 = 50 * 5 * 5 * 20 * 14 * 14     # 4,900,000
    fc1 = 7 * 7 * 50 * 500                # 1,225,000
    fc2 = 500 * 10                        # 5,000
    assert conv1 + conv2 + fc1 + fc2 == 6_522_000
    assert arch.model.macs == 6_522_000 and arch.model.macs_complete
    assert [n.macs for n in arch.nodes] == [0, conv1, 0, conv2, 0, 0, fc1, fc2]
    acts = (28 * 28 * 20 + 14 * 14 * 20 + 14 * 14 * 50 + 7 * 7 * 50 + 2450 + 500 + 10) * 4
    assert arch.model.memory == {"params_bytes": 1256080 * 4, "buffers_bytes": 0,
                                          "activations_bytes": acts}


def test_convnext_tiny_is_complete():
    model = keras.applications.ConvNeXtTiny(weights=None)
    arch = extract_keras(model)
    unknown = [n.id for n in arch.nodes if n.macs is None]
    assert unknown == [] and arch.model.macs_complete is True
    # about 4.46 G per example at 224 x 224 (the published figure)
    assert 4.40e9 < arch.model.macs < 4.50e9


def test_nested_model_called_twice_counts_its_layers_twice():
    inner = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="d")], name="inner")
    a, b = keras.Input((4,)), keras.Input((4,))
    arch = extract([a, b], layers.Add(name="add")([inner(a), inner(b)]))
    d = arch.node("inner/d")
    assert d.container_calls == 2 and d.macs == 2 * 4 * 3
    assert d.memory == {"params_bytes": 15 * 4, "output_bytes": 2 * 3 * 4}
    assert arch.node("inner").macs == 24 and arch.model.macs == 24
    assert arch.model.memory["params_bytes"] == 60  # the weights once


class Scorer(keras.Model):
    def __init__(self):
        super().__init__()
        self.proj = layers.Dense(8, name="proj")

    def call(self, x):  # x: [B, 5, 6] -> scores [B, 5, 5]
        h = self.proj(x)
        return keras.ops.matmul(h, keras.ops.transpose(h, (0, 2, 1)))


def test_subclassed_model_trace_counts_layers_and_ops():
    model = Scorer()
    model(keras.ops.zeros((2, 5, 6)))
    arch = extract_keras(model)
    assert arch.extraction["method"] == "symbolic_trace"
    assert arch.node("proj").macs == 5 * 6 * 8
    assert arch.node("matmul").macs == 5 * 5 * 8  # [5, 8] @ [8, 5]
    assert arch.model.macs == 240 + 200 and arch.model.macs_complete


def test_nested_subclassed_model_counts_its_own_operations():
    """A subclassed model inside a functional one is read from its tracked layers (no graph):
    the matmul its call() runs between them is its container's own work (``self_macs``), per
    call; it was silently missing (a figure marked complete that was not)."""
    scorer = Scorer()
    x = keras.Input((5, 6))
    arch = extract(x, layers.Dense(3, name="head")(scorer(x)))
    box = arch.node(scorer.name)
    assert box.self_macs == 5 * 5 * 8  # [5, 8] @ [8, 5]
    assert box.macs == 240 + 200 and box.macs_complete is None
    assert arch.model.macs == 440 + 5 * 5 * 3 and arch.model.macs_complete is True
    # called twice: its layers and its own work count both calls
    twice = Scorer()
    a, b = keras.Input((5, 6)), keras.Input((5, 6))
    arch = extract([a, b], layers.Add(name="add")([twice(a), twice(b)]))
    assert arch.node(twice.name).self_macs == 2 * 200
    assert arch.model.macs == 2 * (240 + 200) and arch.model.macs_complete is True


class Twice(keras.Model):
    def __init__(self):
        super().__init__()
        self.proj = layers.Dense(6, name="proj")
        self.out = layers.Dense(4, name="out")

    def call(self, x):
        return self.out(self.proj(self.proj(x)))


def test_nested_subclassed_model_layer_called_twice_counts_both_calls():
    twice = Twice()
    x = keras.Input((5, 6))
    arch = extract(x, twice(x))
    proj = arch.node(twice.name + "/proj")
    assert proj.calls == 2 and proj.macs == 2 * 5 * 6 * 6
    assert arch.node(twice.name + "/out").macs == 5 * 6 * 4
    assert arch.model.macs == 480 and arch.model.macs_complete is True
    # the same figures as the model read on its own (symbolic trace)
    alone = Twice()
    alone(keras.ops.zeros((1, 5, 6)))
    assert extract_keras(alone).model.macs == 480


class Branchy(keras.Model):
    """Python control flow on a value: Keras cannot trace call() on symbolic inputs."""

    def __init__(self):
        super().__init__()
        self.proj = layers.Dense(8, name="proj")

    def call(self, x):
        h = self.proj(x)
        if float(keras.ops.convert_to_numpy(keras.ops.sum(h))) > 1e9:
            return h
        return keras.ops.matmul(h, keras.ops.transpose(h, (0, 2, 1)))


def test_untraceable_model_says_its_own_work_is_unknown():
    import numpy as np

    model = Branchy()
    model(np.zeros((2, 5, 6), "float32"))
    arch = extract_keras(model)
    assert arch.extraction["method"] == "tracked_layers"
    m = arch.model
    assert m.macs == 5 * 6 * 8 and m.macs_complete is False  # the layers' figure: at least
    assert m.self_macs is None and m.self_macs_reason == (
        "Branchy.call() could not be traced: the operations it runs outside its layers are "
        "not counted")
    again = schema.from_json(arch.to_json())
    assert again.model.self_macs is None and again.model.macs_complete is False
    assert json.loads(arch.to_json())["model"]["self_macs"] is None


class Block(layers.Layer):
    """A custom layer with sublayers and keras.ops: counted by tracing its call()."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(2, 4)
        self.ff = layers.Dense(6)
        self.norm = layers.LayerNormalization()

    def call(self, x):
        h = self.norm(x + self.att(x, x))
        return keras.ops.matmul(self.ff(h), keras.ops.ones((6, 3)))


def test_custom_layer_is_counted_by_tracing_its_call():
    x = keras.Input((5, 6))  # T = 5, C = 6
    block = Block(name="block")
    model = keras.Model(x, block(x))
    subs = block._flatten_layers(include_self=False, recursive=True)
    before = [(len(l._inbound_nodes), len(l._outbound_nodes)) for l in subs]
    arch = extract_keras(model)
    att = (5 * 6 * 8) * 3 + 2 * 5 * 5 * 4 * 2 + 5 * 8 * 6  # q, k, v; QK^T + AV; output
    ff = 5 * 6 * 6
    mm = 5 * 6 * 3
    node = arch.node("block")
    assert node.macs == att + ff + mm, node.macs_reason
    # the trace leaves no trace: the sublayers' graph nodes are removed again
    assert [(len(l._inbound_nodes), len(l._outbound_nodes)) for l in subs] == before
    assert [n.id for n in arch.nodes] == [arch.inputs[0], "block"]


class Elementwise(layers.Layer):
    def call(self, x):
        return keras.ops.sin(x) * 2.0


class Scaled(layers.Layer):
    def call(self, x, scale):
        return keras.ops.multiply(x, keras.ops.convert_to_tensor(scale))


def test_custom_layers_elementwise_zero_and_untraceable_null():
    x = keras.Input((4,))
    arch = extract(x, Scaled(name="scaled")(Elementwise(name="ew")(x), scale=(1.0, 2.0, 3.0, 4.0)))
    assert arch.node("ew").macs == 0  # sin and a multiply: elementwise, a true 0
    scaled = arch.node("scaled")
    assert scaled.macs is None and scaled.macs_reason == (
        "no MACs rule for Scaled, and its call() takes arguments that are not tensors")


class TransformerBlock(layers.Layer):
    """keras.io's text-classification block: its feed-forward part is a keras.Sequential."""

    def __init__(self, embed_dim, num_heads, ff_dim, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"),
                                     layers.Dense(embed_dim)])
        self.norm1 = layers.LayerNormalization(epsilon=1e-6)
        self.norm2 = layers.LayerNormalization(epsilon=1e-6)

    def call(self, x):
        h = self.norm1(x + self.att(x, x))
        return self.norm2(h + self.ffn(h))


class PairScores(layers.Layer):
    """A Sequential and a Lambda inside a custom layer; the Lambda takes a list of tensors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ffn = keras.Sequential([layers.Dense(24, activation="relu"), layers.Dense(8)])
        self.pair = layers.Lambda(
            lambda xs: keras.ops.matmul(xs[0], keras.ops.transpose(xs[1], (0, 2, 1))))

    def call(self, x):
        return self.pair([self.ffn(x), x])


class ScaledSum(layers.Layer):
    """Like InceptionResNetV2's CustomScaleLayer: called on a list of two tensors."""

    def call(self, inputs):
        return inputs[0] + inputs[1] * 0.17


def test_models_lambdas_and_list_arguments_inside_custom_layers_are_traced():
    # the sums were checked against FlopCounterMode / 2 on the torch backend (math attention)
    x = keras.Input((5, 8))  # T = 5, C = 8
    arch = extract(x, ScaledSum(name="sum")([x, PairScores(name="pairs")(x)[:, :, :1] * x]))
    pairs = arch.node("pairs")
    assert pairs.macs == 5 * 8 * 24 + 5 * 24 * 8 + 5 * 5 * 8, pairs.macs_reason  # 2,120
    assert arch.node("sum").macs == 0  # an add and a scale: elementwise, a true 0
    assert arch.model.macs == 2120 and arch.model.macs_complete is True

    tokens = keras.Input((200, 32))  # T = 200, E = 32, 2 heads of key_dim 32, ff 32
    arch = extract(tokens, TransformerBlock(32, 2, 32, name="block")(tokens))
    qkv = 3 * 200 * 32 * (2 * 32)
    scores_and_mix = 2 * (2 * 200 * 200 * 32)
    out = 200 * (2 * 32) * 32
    ffn = 2 * 200 * 32 * 32
    block = arch.node("block")
    assert block.macs == qkv + scores_and_mix + out + ffn == 7_168_000, block.macs_reason
    assert arch.model.macs_complete is True


def test_inception_resnet_v2_is_complete():
    """keras.applications' own helper layer (CustomScaleLayer, defined outside keras.layers and
    called on a list of two tensors) is traced: a true 0, so the model's figure is complete. At
    224 x 224 with 10 classes, 6,467,440,480 equals FlopCounterMode / 2 on the torch backend."""
    model = keras.applications.InceptionResNetV2(weights=None, input_shape=(224, 224, 3),
                                                 classes=10)
    arch = extract_keras(model)
    scales = [n for n in arch.nodes if n.class_name == "CustomScaleLayer"]
    assert len(scales) == 40 and all(n.macs == 0 for n in scales)
    assert [n.id for n in arch.nodes if n.macs is None] == []
    assert arch.model.macs == 6_467_440_480 and arch.model.macs_complete is True


def test_conv_lstm_counts_both_kernels_at_every_position_and_step():
    # FlopCounterMode / 2 on the torch backend gives (T + 1) / T of these: that backend runs the
    # first step once more to learn the output shape
    x = keras.Input((4, 8, 3))  # T = 4, width 8, 3 channels; valid padding -> 6 positions
    arch = extract(x, layers.ConvLSTM1D(2, 3, name="cl")(x))
    assert arch.node("cl").macs == 4 * 6 * (3 * 3 * 4 * 2 + 3 * 2 * 4 * 2)  # 2,880
    y = keras.Input((3, 9, 9, 2))  # T = 3; stride 2, same padding -> 5 x 5 positions
    arch = extract(y, layers.ConvLSTM2D(3, 3, strides=2, padding="same",
                                        return_sequences=True, name="cl2")(y))
    assert arch.node("cl2").macs == 3 * 25 * (9 * 2 * 12 + 9 * 3 * 12)  # 40,500
    assert arch.model.macs_complete is True


class MinimalRNNCell(layers.Layer):
    """keras.io's custom cell ("Working with RNNs"): no kernel / recurrent_kernel attributes."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size = units, units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.u = self.add_weight(shape=(self.units, self.units))

    def call(self, inputs, states):
        out = keras.ops.matmul(inputs, self.w) + keras.ops.matmul(states[0], self.u)
        return out, [out]


def test_custom_rnn_cell_is_traced_for_one_step_times_the_steps():
    x = keras.Input((6, 5))  # T = 6, 5 features
    arch = extract(x, layers.RNN(MinimalRNNCell(7), name="rnn")(x))
    assert arch.node("rnn").macs == 6 * (5 * 7 + 7 * 7)  # 504
    assert arch.model.macs_complete is True
    odd = layers.RNN(MinimalRNNCell(7), name="odd")
    y = keras.Input((6, 5))
    out = odd(y)
    odd.cell.state_size = "many"  # a state that cannot be replayed: unknown, with the reason
    arch = extract(y, out)
    assert arch.node("odd").macs is None
    assert arch.node("odd").macs_reason == ("recurrent cell MinimalRNNCell without "
                                           "kernel/recurrent_kernel, and its state_size is not "
                                           "a list of sizes")


def test_dot_and_tensordot_ops():
    a = keras.Input((6, 8))
    arch = extract(a, [keras.ops.dot(a, keras.ops.ones((8, 3))),
                       keras.ops.tensordot(a, keras.ops.ones((8, 3)), axes=1),
                       keras.ops.tensordot(a, keras.ops.ones((6, 8, 3)), axes=([1, 2], [0, 1]))])
    assert arch.node("dot").macs == 6 * 3 * 8
    assert arch.node("tensordot").macs == 6 * 3 * 8
    assert arch.node("tensordot_1").macs == 3 * 6 * 8  # 3 outputs, each a sum over 6 x 8
    assert arch.model.macs_complete is True


def test_conv_and_attention_ops():
    import numpy as np

    x, q, k = keras.Input((8, 8, 3)), keras.Input((6, 2, 4)), keras.Input((9, 2, 4))
    kernel = np.ones((3, 3, 3, 4), "float32")  # a constant operand
    arch = extract([x, q, k], [keras.ops.conv(x, kernel, padding="same"),
                               keras.ops.dot_product_attention(q, k, k)])
    assert arch.node("conv").macs == 8 * 8 * (3 * 3 * 3 * 4)
    # [B, T=6, H=2, D=4] x [B, S=9, H=2, D=4]: QK^T T*S*H*D + AV T*S*H*D
    assert arch.node("dot_product_attention").macs == 2 * 6 * 9 * 2 * 4


class Gated(keras.Model):
    """A subclassed model holding a variable of its own besides its layer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = layers.Dense(3, name="d")
        self.gate = self.add_weight(shape=(3,), initializer="ones", name="gate")

    def call(self, x):
        return self.d(x) * self.gate


def test_nested_model_own_variables_count_in_its_totals():
    x = keras.Input((4,))
    gated = Gated(name="gated")
    arch = extract(x, gated(x))
    box = arch.node("gated")
    assert [w["name"] for w in box.weights] == ["gate"]  # the Dense's are its own
    assert box.params == {"trainable": 15 + 3, "non_trainable": 0}
    assert box.memory["params_bytes"] == 18 * 4
    assert arch.model.memory["params_bytes"] == arch.model.total_params * 4 == 72


def test_top_level_model_own_variables_count_in_the_memory_total():
    model = Gated(name="top")
    model(keras.ops.zeros((2, 4)))
    arch = extract_keras(model)
    assert [w["name"] for w in arch.model.self_weights] == ["gate"]
    assert arch.model.memory["params_bytes"] == arch.model.total_params * 4 == 72
    schema.from_json(arch.to_json())


class PositionEmbedding(layers.Layer):
    """keras-hub's PositionEmbedding: its weight sliced and broadcast to the input's shape (the
    batch as a number: a trace with an unknown batch fails)."""

    def build(self, shape):
        self.w = self.add_weight(shape=(64, shape[-1]))

    def call(self, x):
        s = keras.ops.shape(x)
        return keras.ops.broadcast_to(
            keras.ops.slice(keras.ops.convert_to_tensor(self.w), (0, 0), (s[-2], s[-1])), s)


class MaskedMix(layers.Layer):
    """A causal mask broadcast to the batch, then a Dense and a product of two tensors."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.proj = layers.Dense(8)

    def call(self, x):
        b, t = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
        mask = keras.ops.broadcast_to(keras.ops.tril(keras.ops.ones((t, t))), (b, t, t))
        h = self.proj(x)                                   # 16 * 8 * 8
        return keras.ops.matmul(mask, h)                   # 16 * 16 * 8


class Windows(layers.Layer):
    """Swin's window partition: four windows folded into the batch dimension."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.d = layers.Dense(8)

    def call(self, x):
        b = keras.ops.shape(x)[0]
        y = self.d(keras.ops.reshape(x, (b * 4, 4, 8)))
        return keras.ops.reshape(y, (b, 16, 8))


def test_a_call_needing_the_batch_as_a_number_is_traced_on_one_example():
    x = keras.Input((16, 8))
    arch = extract(x, layers.Add()([x, PositionEmbedding(name="pos")(x)]))
    assert arch.node("pos").macs == 0 and arch.model.macs_complete is True
    arch = extract(x, MaskedMix(name="mix")(x))
    assert arch.node("mix").macs == 16 * 8 * 8 + 16 * 16 * 8 and arch.model.macs_complete
    # windows folded into dimension 0: the layer rule would count one window; unknown instead
    arch = extract(x, Windows(name="win")(x))
    assert arch.node("win").macs is None and "tracing its call() failed" in \
        arch.node("win").macs_reason and arch.model.macs_complete is False
