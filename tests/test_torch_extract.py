"""tensorboard_archviz.extract.torch: real PyTorch models -> Architecture (counts, shapes, edges)."""

from __future__ import annotations

import copy
import gc

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch_models as tm
from tensorboard_archviz import schema, summary
from tensorboard_archviz.extract.torch import HOOKS_REASON, ExtractionError, extract_torch

BOTH = pytest.mark.parametrize("method", ["fx", "hooks"])


def params(arch, node_id):
    return arch.node(node_id).total_params


def roundtrip(arch):
    """The document survives JSON + validation unchanged (what the plugin reads)."""
    again = schema.from_json(arch.to_json())
    assert again.to_dict() == arch.to_dict()
    summary.architecture_pb(arch)  # validates too
    return again


@BOTH
def test_mlp_counts_macs_shapes_edges(method):
    arch = roundtrip(extract_torch(tm.MLP(), torch.randn(1, 1, 28, 28), method=method))
    assert arch.framework == "torch" and arch.framework_version == torch.__version__
    assert arch.extraction["method"] == method
    m = arch.model
    assert (m.name, m.class_name) == ("MLP", "MLP")
    assert (m.total_params, m.trainable_params, m.non_trainable_params) == (669_706, 669_706, 0)
    # MACs per example, matrix products only (schema 2, issue 11): 784*512 + 512*512 + 512*10.
    # The schema 1 figure was torchinfo's 669,706, which also counted one add per bias element.
    assert m.macs == 668_672 and m.batch_size == 1
    assert m.macs_complete is True and m.macs_convention == schema.MACS_CONVENTION
    assert m.memory == {"params_bytes": 4 * 669_706, "buffers_bytes": 0,
                                 "activations_bytes": 4 * (784 + 512 * 4 + 10)}
    assert arch.node_ids() == ["x", "flatten", "linear_relu_stack"] + [
        "linear_relu_stack.%d" % i for i in range(5)]
    assert [params(arch, "linear_relu_stack.%d" % i) for i in range(5)] == [
        401_920, 0, 262_656, 0, 5_130]
    assert params(arch, "linear_relu_stack") == 669_706
    assert arch.node("linear_relu_stack").macs == 668_672
    assert arch.node("linear_relu_stack.0").macs == 401_408
    assert arch.node("linear_relu_stack.1").macs == 0  # elementwise: a true 0
    assert arch.node("linear_relu_stack.0").memory == {"params_bytes": 4 * 401_920,
                                                                "output_bytes": 4 * 512}
    seq = arch.node("linear_relu_stack.0")
    assert seq.parent == "linear_relu_stack" and arch.node("linear_relu_stack").parent is None
    assert seq.input_shapes == [[1, 784]] and seq.output_shapes == [[1, 512]]
    assert seq.dtype == "float32"
    assert seq.config["in_features"] == 784 and seq.config["out_features"] == 512
    assert seq.config["bias"] is True
    assert seq.weights == [
        {"name": "weight", "shape": [512, 784], "trainable": True, "dtype": "float32",
         "path": "linear_relu_stack.0.weight"},
        {"name": "bias", "shape": [512], "trainable": True, "dtype": "float32",
         "path": "linear_relu_stack.0.bias"}]
    assert arch.node("linear_relu_stack.1").activation == "relu"
    assert arch.node("linear_relu_stack.0").activation is None
    assert arch.node("linear_relu_stack").is_container is True
    assert arch.node("x").class_name == "Input" and arch.node("x").output_shapes == [[1, 1, 28, 28]]
    assert arch.inputs == ["x"] and arch.outputs == ["linear_relu_stack.4"]
    assert [(e.source, e.target, e.shape) for e in arch.edges] == [
        ("x", "flatten", [1, 1, 28, 28]),
        ("flatten", "linear_relu_stack.0", [1, 784]),
        ("linear_relu_stack.0", "linear_relu_stack.1", [1, 512]),
        ("linear_relu_stack.1", "linear_relu_stack.2", [1, 512]),
        ("linear_relu_stack.2", "linear_relu_stack.3", [1, 512]),
        ("linear_relu_stack.3", "linear_relu_stack.4", [1, 512]),
    ]


def test_batch_dimension_is_the_example_inputs():
    arch = extract_torch(tm.MLP(), torch.randn(5, 1, 28, 28))
    assert arch.node("linear_relu_stack.4").output_shapes == [[5, 10]]
    assert arch.model.batch_size == 5
    assert arch.model.macs == 668_672  # per example, whatever the batch
    assert arch.node("linear_relu_stack.0").memory["output_bytes"] == 4 * 512


def test_lenet_per_layer_counts():
    arch = roundtrip(extract_torch(tm.lenet(), torch.randn(2, 1, 28, 28)))
    assert arch.model.total_params == 1_256_080
    per_layer = {n.id: n.total_params for n in arch.nodes if n.class_name != "Input"}
    assert per_layer == {"0": 520, "1": 0, "2": 0, "3": 25_050, "4": 0, "5": 0, "6": 0,
                         "7": 1_225_500, "8": 0, "9": 5_010}
    assert arch.node("0").output_shapes == [[2, 20, 28, 28]]
    assert arch.node("5").output_shapes == [[2, 50, 7, 7]]
    assert arch.node("6").output_shapes == [[2, 2450]]
    conv = arch.node("3").config
    assert (conv["in_channels"], conv["out_channels"], conv["kernel_size"], conv["padding"],
            conv["stride"], conv["groups"], conv["bias"]) == (20, 50, [5, 5], [2, 2], [1, 1], 1, True)


def test_lenet_agrees_with_keras():
    keras = pytest.importorskip("keras")
    from keras import layers

    km = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(20, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(50, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(500, activation="relu"),
        layers.Dense(10, activation="softmax")])
    arch = extract_torch(tm.lenet(), torch.randn(1, 1, 28, 28))
    assert arch.model.total_params == km.count_params() == 1_256_080
    keras_counts = [l.count_params() for l in km.layers if l.count_params()]
    torch_counts = [n.total_params for n in arch.nodes if n.total_params]
    assert torch_counts == keras_counts == [520, 25_050, 1_225_500, 5_010]


@BOTH
def test_torchinfo_readme_cnn(method):
    arch = roundtrip(extract_torch(tm.TorchinfoCNN(), torch.randn(16, 1, 28, 28), method=method))
    assert {k: params(arch, k) for k in ("conv1", "conv2", "conv2_drop", "fc1", "fc2")} == {
        "conv1": 260, "conv2": 5_020, "conv2_drop": 0, "fc1": 16_050, "fc2": 510}
    assert arch.model.total_params == 21_840
    # per example (torchinfo's README says 7.80M mult-adds for the batch of 16, bias adds
    # included): conv1 10x24x24 outputs x 25, conv2 20x8x8 x 250, fc1 50 x 320, fc2 10 x 50
    assert arch.model.macs == 480_500 and arch.model.batch_size == 16
    assert {k: arch.node(k).macs for k in ("conv1", "conv2", "fc1", "fc2")} == {
        "conv1": 144_000, "conv2": 320_000, "fc1": 16_000, "fc2": 500}
    # F.max_pool2d / F.relu / view / F.dropout / F.log_softmax are nodes of their own
    chain = ["x", "conv1", "max_pool2d", "relu", "conv2", "conv2_drop", "max_pool2d_1",
             "relu_1", "view", "fc1", "relu_2", "dropout", "fc2", "log_softmax"]
    assert arch.edge_pairs() == list(zip(chain, chain[1:]))
    view = arch.node("view")
    assert (view.class_name, view.parent, view.macs) == ("view", None, 0)
    assert view.input_shapes == [[16, 20, 4, 4]] and view.output_shapes == [[16, 320]]
    assert view.is_function is True
    assert arch.node("relu_1").activation == "relu"
    assert arch.node("log_softmax").config["dim"] == 1
    assert arch.outputs == ["log_softmax"]


def test_frozen_conv_is_non_trainable():
    model = nn.Sequential(nn.Conv2d(3, 8, 3))
    model.requires_grad_(False)
    arch = extract_torch(model, torch.randn(1, 3, 10, 10))
    assert arch.node("0").params == {"trainable": 0, "non_trainable": 224}
    assert (arch.model.total_params, arch.model.trainable_params,
            arch.model.non_trainable_params) == (224, 0, 224)
    assert all(w["trainable"] is False for w in arch.node("0").weights)
    assert all(p.requires_grad is False for p in model.parameters())


def test_batchnorm_params_and_buffers():
    arch = extract_torch(nn.Sequential(nn.BatchNorm2d(8)), torch.randn(2, 8, 4, 4))
    bn = arch.node("0")
    assert bn.params == {"trainable": 16, "non_trainable": 0}
    assert arch.model.total_params == 16
    assert bn.buffers == [
        {"name": "running_mean", "shape": [8], "dtype": "float32", "persistent": True},
        {"name": "running_var", "shape": [8], "dtype": "float32", "persistent": True},
        {"name": "num_batches_tracked", "shape": [], "dtype": "int64", "persistent": True}]
    assert arch.model.buffers == 17
    assert bn.config["num_features"] == 8 and bn.config["eps"] == 1e-05


RESNET_EDGES = {
    ("x", "stem"), ("stem", "block.conv1"), ("block.conv1", "block.bn1"),
    ("block.bn1", "block.relu"), ("block.relu", "block.conv2"), ("block.conv2", "block.bn2"),
    ("block.bn2", "add"), ("stem", "add"),  # <- the skip connection
    ("add", "relu"), ("relu", "pool"), ("pool", "flatten"), ("flatten", "fc"),
}


@BOTH
def test_residual_block_has_the_skip_edge(method):
    arch = roundtrip(extract_torch(tm.SmallResNet(), torch.randn(2, 1, 28, 28), method=method))
    assert set(arch.edge_pairs()) == RESNET_EDGES and len(arch.edges) == len(RESNET_EDGES)
    add = arch.node("add")
    assert (add.class_name, add.parent) == ("add", "block")
    assert add.input_shapes == [[2, 8, 28, 28], [2, 8, 28, 28]]
    assert arch.node("relu").parent == "block" and arch.node("relu").activation == "relu"
    block = arch.node("block")
    assert block.input_shapes == [[2, 8, 28, 28]] and block.output_shapes == [[2, 8, 28, 28]]
    assert {n.id for n in arch.children("block")} == {
        "block.conv1", "block.bn1", "block.relu", "block.conv2", "block.bn2", "add", "relu"}
    assert block.total_params == 2 * (8 * 8 * 9) + 2 * 16
    assert block.macs == sum(arch.node(c).macs for c in
                             ("block.conv1", "block.bn1", "block.conv2", "block.bn2"))
    edge = {(e.source, e.target): e.shape for e in arch.edges}
    assert edge[("stem", "add")] == [2, 8, 28, 28] and edge[("flatten", "fc")] == [2, 8]


def test_transformer_encoder_totals():
    model = tm.transformer_encoder()
    arch = roundtrip(extract_torch(model, torch.randn(6, 2, 32)))
    total = sum(p.numel() for p in model.parameters())
    assert arch.model.total_params == total == 17_088
    assert {n.id for n in arch.nodes if n.class_name != "Input" and not n.is_function} == {q for q, _ in model.named_modules() if q}
    assert arch.node("layers").total_params == total
    assert arch.node("layers.1").total_params == total // 2
    # one real forward with hooks (torch.fx could not trace TransformerEncoder's checks anyway)
    assert (arch.extraction["method"], arch.extraction["reason"]) == ("hooks", HOOKS_REASON)
    with pytest.raises(ExtractionError, match="torch.fx could not trace"):
        extract_torch(model, torch.randn(6, 2, 32), method="fx")
    assert arch.node("layers.0.linear1").output_shapes == [[6, 2, 64]]
    assert arch.node("layers.0.self_attn").input_shapes == [[6, 2, 32]] * 3
    assert arch.node("layers.0.self_attn.out_proj").calls == 0  # MHA uses its weights
    assert arch.node("layers.0.self_attn.out_proj").input_shapes is None
    adds = [n for n in arch.nodes if n.class_name == "add"]
    assert [(n.id, n.parent) for n in adds] == [("add", "layers.0"), ("add_1", "layers.0"),
                                                ("add_2", "layers.1"), ("add_3", "layers.1")]
    assert ("src", "add") in arch.edge_pairs()  # the residual around self-attention
    assert arch.outputs == ["layers.1.norm2"]


@BOTH
def test_dict_output(method):
    arch = roundtrip(extract_torch(tm.DictOutput(), torch.randn(3, 16), method=method))
    assert arch.outputs == ["head", "relu"]
    assert arch.model.output_names == [
        {"name": "logits", "node": "head", "shape": [3, 3]},
        {"name": "features", "node": "relu", "shape": [3, 8]}]
    assert arch.edge_pairs() == [("x", "body"), ("body", "relu"), ("relu", "head")]
    assert arch.model.total_params == 16 * 8 + 8 + 8 * 3 + 3


@BOTH
def test_dict_input(method):
    inp = {"image": torch.randn(2, 3, 8, 8), "extra": torch.randn(2, 5)}
    arch = roundtrip(extract_torch(tm.DictInput(), inp, method=method))
    assert arch.inputs == ["image", "extra"]
    assert arch.node("extra").output_shapes == [[2, 5]]
    assert set(arch.edge_pairs()) == {("image", "conv"), ("conv", "flatten"), ("extra", "side"),
                                      ("flatten", "cat"), ("side", "cat"), ("cat", "fc")}
    assert arch.node("cat").output_shapes == [[2, 148]]
    assert arch.node("cat").config == {"dim": 1}


@BOTH
def test_dataclass_output(method):
    arch = extract_torch(tm.DataclassOutput(), torch.randn(2, 4), method=method)
    assert arch.outputs == ["b", "a"]
    assert arch.edge_pairs() == [("x", "a"), ("a", "b")]


@BOTH
def test_module_called_twice(method):
    model = tm.CalledTwice()
    arch = roundtrip(extract_torch(model, torch.randn(4, 8), method=method))
    fc = arch.node("fc")
    assert fc.calls == 2 and arch.node("out").calls == 1
    assert fc.input_shapes == [[4, 8], [4, 8]] and fc.output_shapes == [[4, 8], [4, 8]]
    assert arch.edge_pairs() == [("x", "fc"), ("fc", "act"), ("act", "fc"), ("fc", "out")]
    assert fc.total_params == 72 and arch.model.total_params == 72 + 18
    assert fc.macs == 2 * 64  # both calls, per example
    assert [n.id for n in arch.nodes].count("fc") == 1


def test_shared_parameters_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(6, 6, bias=False)
            self.dec = nn.Linear(6, 6, bias=False)
            self.dec.weight = self.enc.weight

        def forward(self, x):
            return self.dec(self.enc(x))

    model = Tied()
    arch = extract_torch(model, torch.randn(1, 6))
    assert arch.model.total_params == sum(p.numel() for p in model.parameters()) == 36
    assert arch.node("enc").total_params == arch.node("dec").total_params == 36


@pytest.mark.parametrize("sign,branch", [(1.0, "a"), (-1.0, "b")])
def test_data_dependent_control_flow_falls_back_to_hooks(sign, branch):
    arch = roundtrip(extract_torch(tm.DataDependent(), torch.full((2, 4), sign)))
    assert (arch.extraction["method"], arch.extraction["reason"]) == ("hooks", HOOKS_REASON)
    assert arch.extraction["dropped_ops"] == 2  # sum, gt
    assert set(arch.edge_pairs()) == {("x", branch), (branch, "relu"), ("relu", "fc"),
                                      ("fc", "add"), (branch, "add")}
    assert len(arch.edges) == 5  # the `x.sum() > 0` feeding the `if` is not data flow
    other = "b" if branch == "a" else "a"
    assert arch.node(other).calls == 0 and arch.node(other).input_shapes is None
    assert arch.outputs == ["add"]
    with pytest.raises(ExtractionError, match="control flow"):
        extract_torch(tm.DataDependent(), torch.ones(2, 4), method="fx")


@pytest.mark.parametrize("sign,branch", [(1.0, "a"), (-1.0, "b")])
def test_auto_tries_fx_for_wrapped_functions_and_falls_back(sign, branch):
    """A model calling a torch.fx.wrap-ed function: "auto" traces with fx first (which shows
    the function as one op); fx fails at the `if`, the one real forward runs with hooks."""
    arch = roundtrip(extract_torch(tm.WrappedDataDependent(), torch.full((2, 4), sign)))
    ex = arch.extraction
    assert ex["method"] == "hooks"
    assert "torch.fx could not trace WrappedDataDependent" in ex["reason"]
    assert "control flow" in ex["reason"]
    # the real forward, seen by hooks: the wrapped function's own ops
    assert set(arch.edge_pairs()) == {("x", "mul"), ("mul", branch), (branch, "fc")}
    tm.WRAPPED_CALLS.clear()
    arch = extract_torch(tm.WrappedOnly(), torch.ones(2, 4))
    assert arch.extraction["method"] == "fx"
    assert "torch.fx.wrap-ed wrapped_scale" in arch.extraction["reason"]
    assert [n.class_name for n in arch.nodes if n.is_function] == ["wrapped_scale"]
    assert len(tm.WRAPPED_CALLS) == 1  # the trace kept it whole: only the real run called it


def test_auto_is_one_real_forward():
    """No torch.fx trace unless a wrapped function needs one: "auto" runs the model once, with
    hooks, and gives what the fx path gives."""
    model, x = tm.ResNet((1, 1, 1, 1), num_classes=7), torch.randn(2, 3, 32, 32)
    auto = extract_torch(model, x).to_dict()
    fx = extract_torch(model, x, method="fx").to_dict()
    assert auto.pop("extraction") == {"method": "hooks", "reason": HOOKS_REASON}
    assert fx.pop("extraction")["method"] == "fx"
    assert auto == fx


class Unpack(nn.Module):
    def __init__(self, iterate: bool = False):
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.iterate = iterate

    def forward(self, x):
        q, k, v = self.qkv(x).view(2, 3, 4).transpose(0, 1)
        if self.iterate:
            k = [r for r in k][0]  # iteration that is not an unpacking: one unbind
        return q * v + k


def test_tuple_unpacking_of_a_tensor_is_getitem_on_both_paths():
    docs = {m: extract_torch(Unpack(), torch.randn(2, 4), method=m).to_dict()
            for m in ("fx", "hooks")}
    assert docs["fx"].pop("extraction")["method"] == "fx"
    assert docs["hooks"].pop("extraction")["method"] == "hooks"
    assert docs["fx"] == docs["hooks"]
    ops = [(n["id"], n.get("config")) for n in docs["hooks"]["nodes"] if n.get("is_function")]
    assert ops[:5] == [("view", {"args": ["<tensor>", 2, 3, 4]}),
                       ("transpose", {"args": ["<tensor>", 0, 1]}),
                       ("getitem", {"args": ["<tensor>", 0]}),
                       ("getitem_1", {"args": ["<tensor>", 1]}),
                       ("getitem_2", {"args": ["<tensor>", 2]})]
    arch = extract_torch(Unpack(iterate=True), torch.randn(2, 4))
    assert ("getitem_1", "unbind") in arch.edge_pairs()
    assert arch.node("unbind").output_shapes == [[4], [4]]


def test_fx_and_hooks_agree():
    for model, x in [(tm.ResNet((1, 2, 1, 1), num_classes=7), torch.randn(2, 3, 64, 64)),
                     (tm.TorchinfoCNN(), torch.randn(3, 1, 28, 28)),
                     (tm.SideEffects(), torch.randn(2, 3, 9, 9))]:
        a = extract_torch(model, x, method="fx").to_dict()
        b = extract_torch(model, x, method="hooks").to_dict()
        assert a.pop("extraction")["method"] == "fx"
        assert b.pop("extraction")["method"] == "hooks"
        assert a == b


@BOTH
def test_bottleneck_resnet_inplace_add(method):
    arch = extract_torch(tm.ResNet((1, 1, 1, 1), num_classes=5), torch.randn(1, 3, 64, 64),
                         method=method)
    assert arch.extraction["method"] == method
    # `out += identity`: the downsample branch feeds the in-place add of block layer1.0
    assert ("layer1.0.downsample.1", "add") in arch.edge_pairs()
    assert ("layer1.0.bn3", "add") in arch.edge_pairs()
    assert arch.node("add").parent == "layer1.0"
    assert arch.node("layer1.0.relu").calls == 3
    assert arch.node("layer1.0.downsample").output_shapes == [[1, 256, 16, 16]]
    assert arch.node("fc").input_shapes == [[1, 2048]]


def snapshot(model):
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": {q: m.training for q, m in model.named_modules()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
    }


@pytest.mark.parametrize("method", ["auto", "hooks"])
def test_no_side_effects(method):
    torch.manual_seed(0)
    model = tm.SideEffects()
    model.train()
    model.frozen.eval()  # a mix of modes must come back exactly
    before = snapshot(model)
    x = torch.randn(4, 3, 9, 9)
    rng = torch.random.get_rng_state()
    arch = extract_torch(model, x, method=method)
    after = snapshot(model)
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    assert model.bn.num_batches_tracked.item() == 0  # the forward ran in eval mode
    assert all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()
    assert torch.equal(rng, torch.random.get_rng_state())
    assert arch.node("frozen").params == {"trainable": 0, "non_trainable": 36}
    assert arch.model.non_trainable_params == 36
    assert arch.node("drop").output_shapes == [[4, 8, 7, 7]]


@pytest.mark.parametrize("build,make,method", [
    (tm.SmallResNet, lambda: torch.randn(1, 1, 28, 28), "auto"),
    (tm.SmallResNet, lambda: torch.randn(1, 1, 28, 28), "hooks"),
    (tm.transformer_encoder, lambda: torch.randn(6, 1, 32), "auto"),
    (tm.DataDependent, lambda: torch.ones(1, 4), "auto"),
])
def test_extraction_leaves_no_reference_cycle(build, make, method):
    """What a run recorded is freed when the document is dropped (reference counting), not
    left for the cyclic collector: no object of the run is unreachable garbage afterwards (the
    one-forward path; a torch.fx trace leaves torch.fx's own cycles)."""
    torch.manual_seed(0)
    model, x = build().eval(), make()
    extract_torch(model, x, method=method)
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        arch = extract_torch(model, x, method=method)
        assert arch.nodes
        del arch
        assert gc.collect() == 0
    finally:
        if collecting:
            gc.enable()


def test_function_mode_sees_only_the_models_own_calls(monkeypatch):
    """The hooks' own tensor reads (the write guard's check before an in-place ReLU) do not go
    through the function mode: a Sequential of layers, whose forward calls no torch function
    itself, costs no function-mode call at all."""
    import tensorboard_archviz.extract.torch as et

    calls = []
    original = et._FunctionMode.__torch_function__

    def counted(self, func, types, args=(), kwargs=None):
        calls.append(func)
        return original(self, func, types, args, kwargs)

    monkeypatch.setattr(et._FunctionMode, "__torch_function__", counted)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                          nn.Conv2d(8, 8, 3), nn.ReLU(inplace=True)).eval()
    arch = extract_torch(model, torch.randn(1, 3, 10, 10))
    assert calls == []
    assert arch.node("2").macs == 0 and arch.node("3").output_shapes == [[1, 8, 6, 6]]


def test_eval_model_is_not_switched_and_flags_a_forward_flips_come_back():
    """A model already in eval mode is run as it is (its ``train`` is not called); a flag
    its forward flips is put back, and only then is a module's flag written."""
    class FlipsDropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)
            self.drop = nn.Dropout(0.5)
            self.train_calls = 0

        def train(self, mode=True):
            self.train_calls += 1
            return super().train(mode)

        def forward(self, x):
            self.drop.train()  # the forward itself changes a mode
            return self.drop(self.lin(x))

    model = FlipsDropout().eval()
    model.train_calls = 0
    arch = extract_torch(model, torch.randn(2, 3))
    assert model.train_calls == 0  # already in eval: no eval() call
    assert [m.training for m in model.modules()] == [False, False, False]
    assert arch.node("drop").output_shapes == [[2, 3]]
    model.train()
    model.train_calls = 0
    extract_torch(model, torch.randn(2, 3))
    assert model.train_calls == 1  # eval() for the run
    assert [m.training for m in model.modules()] == [True, True, True]


def test_forward_that_changes_buffers_is_undone():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("seen", torch.zeros(()))

        def forward(self, x):
            self.seen += 1
            return self.lin(x)

    model = Counter()
    extract_torch(model, torch.randn(1, 2))
    assert model.seen.item() == 0


@pytest.mark.parametrize("method", ["auto", "fx", "hooks"])
def test_wrong_input_names_the_failing_module(method):
    model = tm.MLP()
    before = snapshot(model)
    with pytest.raises(ExtractionError) as err:
        extract_torch(model, torch.randn(1, 1, 20, 20), method=method)
    assert err.value.module == "linear_relu_stack.0"
    msg = str(err.value)
    assert "'linear_relu_stack.0' (Linear)" in msg and "[[1, 1, 20, 20]]" in msg
    assert "1x400 and 784x512" in msg
    assert isinstance(err.value.__cause__, RuntimeError)
    assert snapshot(model)["training"] == before["training"] and model.training


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ExtractionError, match="must be a tensor, a tuple/list"):
        extract_torch(tm.MLP(), "an image")
    with pytest.raises(ExtractionError, match="holds no tensor"):
        extract_torch(tm.MLP(), (1, 2))
    with pytest.raises(ExtractionError, match="missing a required argument: 'extra'"):
        extract_torch(tm.DictInput(), {"image": torch.randn(2, 3, 8, 8)})
    with pytest.raises(ExtractionError, match="must be a torch.nn.Module"):
        extract_torch(lambda x: x, torch.randn(1))
    with pytest.raises(ValueError, match="method must be one of"):
        extract_torch(tm.MLP(), torch.randn(1, 784), method="jit")


def test_root_forward_failure_is_named():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            if x.shape[-1] != 3:
                raise ValueError("expected 3 features")
            return self.lin(x)

    with pytest.raises(ExtractionError, match="the forward of Picky itself: ValueError") as err:
        extract_torch(Picky(), torch.randn(1, 4))
    assert err.value.module is None


def test_dataparallel_is_unwrapped():
    arch = extract_torch(nn.DataParallel(tm.MLP()), torch.randn(2, 1, 28, 28))
    assert arch.model.class_name == "MLP"
    assert "linear_relu_stack.0" in arch.node_ids()
    assert not any(i.startswith("module") for i in arch.node_ids())


def test_tuple_input_and_functional_ops_inside_a_block():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(3, 4)

        def forward(self, x, y):
            h = torch.cat([self.a(x), self.b(y)], dim=-1)
            return h.flatten(1).softmax(-1)

    arch = extract_torch(TwoInputs(), (torch.randn(2, 4), torch.randn(2, 3)))
    assert arch.inputs == ["x", "y"]
    assert arch.edge_pairs() == [("x", "a"), ("y", "b"), ("a", "cat"), ("b", "cat"),
                                 ("cat", "flatten"), ("flatten", "softmax")]
    assert arch.node("softmax").activation == "softmax"
    assert arch.outputs == ["softmax"]


def test_ids_never_collide_with_module_names():
    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.add = nn.Identity()
            self.x = nn.Linear(2, 2)

        def forward(self, x):
            return self.add(self.x(x) + x)

    arch = roundtrip(extract_torch(Named(), torch.randn(1, 2)))
    assert arch.inputs == ["x_input"]
    assert arch.edge_pairs() == [("x_input", "x"), ("x", "add_1"), ("x_input", "add_1"),
                                 ("add_1", "add")]
    assert arch.node("add").class_name == "Identity" and arch.node("add_1").class_name == "add"


def test_deepcopy_of_model_unaffected_by_hooks():
    model = tm.SmallResNet()
    extract_torch(model, torch.randn(1, 1, 28, 28), method="hooks")
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    copy.deepcopy(model)(torch.randn(1, 1, 28, 28))


def test_functional_relu_on_root_has_no_parent():
    class Root(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return F.relu(self.lin(x))

    arch = extract_torch(Root(), torch.randn(1, 3))
    assert arch.node("relu").parent is None and arch.outputs == ["relu"]


def test_hooks_on_a_block_make_fx_step_aside():
    model = tm.SmallResNet()
    seen = []
    handle = model.block.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    try:
        arch = extract_torch(model, torch.randn(1, 1, 28, 28))
    finally:
        handle.remove()
    assert arch.extraction == {"method": "hooks", "reason": HOOKS_REASON}
    assert seen == [(1, 8, 28, 28)]  # the user's hook ran, on the real forward
    assert set(arch.edge_pairs()) == RESNET_EDGES
    handle = model.block.register_forward_hook(lambda m, a, out: None)
    try:
        with pytest.raises(ExtractionError, match="module 'block' has forward hooks"):
            extract_torch(model, torch.randn(1, 1, 28, 28), method="fx")
    finally:
        handle.remove()


def test_module_list_and_unused_modules_are_nodes_without_shapes():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            for blk in self.blocks:
                x = blk(x)
            return x

    arch = roundtrip(extract_torch(Stack(), torch.randn(3, 4)))
    assert arch.edge_pairs() == [("x", "blocks.0"), ("blocks.0", "blocks.1")]
    assert arch.node("blocks.1").parent == "blocks"
    assert arch.node("blocks").reason == "holds modules, has no forward of its own"
    assert arch.node("blocks").total_params == 40 and arch.node("blocks").macs == 2 * 16
    unused = arch.node("unused")
    assert unused.reason == "not called during the forward pass"
    assert (unused.input_shapes, unused.macs, unused.total_params) == (None, None, 20)
    assert arch.model.total_params == 60


@pytest.mark.parametrize("method", ["auto", "hooks"])
def test_a_dict_argument_is_traced_by_the_real_forward(method):
    class Batch(nn.Module):
        def __init__(self):
            super().__init__()
            self.img = nn.Linear(4, 3)
            self.txt = nn.Linear(2, 3)

        def forward(self, batch):
            if isinstance(batch, dict):
                return self.img(batch["image"]) * self.txt(batch["text"])
            return self.img(batch)

    inp = ({"image": torch.randn(2, 4), "text": torch.randn(2, 2)},)
    arch = roundtrip(extract_torch(Batch(), inp, method=method))
    assert arch.extraction["method"] == "hooks"
    if method == "auto":
        assert arch.extraction["reason"] == HOOKS_REASON
        with pytest.raises(ExtractionError, match="argument 'batch' is a dict"):
            extract_torch(Batch(), inp, method="fx")
    assert arch.inputs == ["batch.image", "batch.text"]
    assert set(arch.edge_pairs()) == {("batch.image", "img"), ("batch.text", "txt"),
                                      ("img", "mul"), ("txt", "mul")}


@BOTH
def test_nodes_are_listed_in_execution_order(method):
    """Functional ops where they ran (issue 16): a residual block's add and relu right after the
    layers that feed them, flatten before fc; a container right before its first child."""
    arch = extract_torch(tm.SmallResNet(), torch.randn(1, 1, 28, 28), method=method)
    assert arch.node_ids() == ["x", "stem", "block", "block.conv1", "block.bn1", "block.relu",
                               "block.conv2", "block.bn2", "add", "relu", "pool", "flatten", "fc"]
    arch = extract_torch(tm.TorchinfoCNN(), torch.randn(1, 1, 28, 28), method=method)
    assert arch.node_ids() == ["x", "conv1", "max_pool2d", "relu", "conv2", "conv2_drop",
                               "max_pool2d_1", "relu_1", "view", "fc1", "relu_2", "dropout", "fc2",
                               "log_softmax"]


def test_execution_order_with_unused_and_reused_modules():
    arch = extract_torch(tm.ResNet((1, 1, 1, 1), num_classes=5), torch.randn(1, 3, 32, 32))
    ids = arch.node_ids()
    block = ids[ids.index("layer1.0"):ids.index("layer2")]
    assert block == ["layer1.0", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu",
                     "layer1.0.conv2", "layer1.0.bn2", "layer1.0.conv3", "layer1.0.bn3",
                     "layer1.0.downsample", "layer1.0.downsample.0", "layer1.0.downsample.1",
                     "add"]
    assert ids[-3:] == ["avgpool", "flatten", "fc"]
    enc = extract_torch(tm.transformer_encoder(), torch.randn(4, 2, 32))
    ids = enc.node_ids()  # MHA's out_proj (used by its parent, never called) follows it
    assert ids[ids.index("layers.0.self_attn") + 1] == "layers.0.self_attn.out_proj"
