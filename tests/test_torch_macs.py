"""MACs per example (schema 2, one convention for both frameworks) and memory of PyTorch models.

Hand-computed figures for every rule, then agreement with an independent counter,
``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), on ResNet-50, ConvNeXt-Tiny, ViT,
a Llama-style decoder and BERT (small inputs / tiny configs: full-size runs are in
bench/bench_torch_macs.py).

FlopCounterMode counts ATen ops. On CPU it misses three kernels this extractor counts:
* ``aten._scaled_dot_product_flash_attention_for_cpu`` (what ``F.scaled_dot_product_attention``
  runs on CPU): 0 FLOPs. We count its QK^T (rows x S x E) and AV (rows x S x Ev) products.
* ``aten._native_multi_head_attention`` (nn.MultiheadAttention's fast path in eval mode): 0
  FLOPs even for its projections. We count in-proj + QK^T + AV + out-proj.
* ``aten.lstm`` (the fused recurrent kernel): 0. We count every weight matrix once per step.
So the reference run below uses the math attention backend and switches the MHA fast path off:
then every product is an ``mm``/``bmm``/``addmm`` it counts, and the figures must agree. LSTM
has no such switch: its figure is checked by hand only.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch_models as tm
from tensorboard_archviz import schema
from tensorboard_archviz.extract.torch import extract_torch

BOTH = pytest.mark.parametrize("method", ["fx", "hooks"])


def macs(arch, node_id=None):
    return arch.model.macs if node_id is None else arch.node(node_id).macs


# ---------------------------------------------------------------------------------------------
# hand-computed figures


@BOTH
def test_linear_on_batch_time_channels(method):
    """A Linear counts every position of an N-D input: T x C_in x C_out per example."""
    arch = extract_torch(nn.Sequential(nn.Linear(16, 32)), torch.randn(2, 5, 16), method=method)
    assert macs(arch, "0") == 5 * 16 * 32 == 2_560
    assert macs(arch) == 2_560 and arch.model.batch_size == 2
    assert arch.node("0").memory == {"params_bytes": 4 * (16 * 32 + 32),
                                              "output_bytes": 4 * 5 * 32}


def test_bare_linear_is_the_model():
    """A bare layer is a node (named by its class) with its params, shapes and MACs; a 1-D input
    is one example."""
    arch = extract_torch(nn.Linear(8, 64), torch.randn(8))
    assert arch.node_ids() == ["input", "Linear"]
    lin = arch.node("Linear")
    assert lin.total_params == 576 and lin.output_shapes == [[64]] and lin.macs == 512
    assert arch.model.total_params == 576 and macs(arch) == 512
    assert arch.model.batch_size == 1
    assert arch.edge_pairs() == [("input", "Linear")] and arch.outputs == ["Linear"]
    assert arch.model.memory == {"params_bytes": 4 * 576, "buffers_bytes": 0,
                                          "activations_bytes": 4 * 64}
    batched = extract_torch(nn.Linear(8, 64), torch.randn(4, 8))
    assert batched.model.batch_size == 4 and macs(batched) == 512
    schema.from_json(arch.to_json())


@BOTH
def test_conv_with_groups_and_transposed(method):
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, groups=4),
                          nn.ConvTranspose2d(16, 6, 3, stride=2, groups=2))
    arch = extract_torch(model, torch.randn(2, 8, 10, 10), method=method)
    # grouped conv: 16x10x10 outputs, each (8 / 4) x 3 x 3 products
    assert macs(arch, "0") == 16 * 10 * 10 * 2 * 9 == 28_800
    # transposed: every input element (16x10x10) meets (6 / 2) x 3 x 3 weights
    assert arch.node("1").output_shapes == [[2, 6, 21, 21]]
    assert macs(arch, "1") == 16 * 10 * 10 * 3 * 9 == 43_200
    assert macs(arch) == 72_000


def test_conv1d_and_conv3d():
    arch = extract_torch(nn.Sequential(nn.Conv1d(3, 5, 4)), torch.randn(1, 3, 20))
    assert macs(arch, "0") == 5 * 17 * 3 * 4
    arch = extract_torch(nn.Sequential(nn.Conv3d(2, 4, 3)), torch.randn(1, 2, 5, 5, 5))
    assert macs(arch, "0") == 4 * 27 * 2 * 27


class CrossAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, q, kv):
        return self.attn(q, kv, kv, need_weights=False)[0]


def test_multihead_attention_counts_projections_and_attention():
    arch = extract_torch(CrossAttention(), (torch.randn(2, 5, 16), torch.randn(2, 7, 16)))
    in_proj = 5 * 16 * 16 + 7 * 16 * 16 + 7 * 16 * 16   # q, k, v projections: 4,864
    attention = 5 * 7 * 16 + 5 * 7 * 16                 # QK^T and AV over 4 heads of 4: 1,120
    out_proj = 5 * 16 * 16                              # 1,280
    attn = arch.node("attn")
    assert attn.self_macs == in_proj + attention
    assert attn.macs == in_proj + attention + out_proj == 7_264
    out = arch.node("attn.out_proj")  # its weights are used by the parent: not "not called"
    assert out.macs == out_proj and out.used_by == "attn"
    assert "used by its parent 'attn'" in out.reason
    assert macs(arch) == 7_264 and arch.model.macs_complete is True
    assert attn.total_params == 4 * (16 * 16 + 16)


class SdpaBlock(nn.Module):
    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class TwoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = SdpaBlock()
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.block(x))


@pytest.mark.parametrize("method", ["auto", "hooks"])
def test_sdpa_inside_a_custom_module(method):
    arch = extract_torch(TwoBlocks(), torch.randn(2, 6, 16), method=method)
    sdpa = arch.node("scaled_dot_product_attention")
    assert sdpa.parent == "block"  # the op belongs to the module whose forward called it
    assert sdpa.macs == 4 * 6 * 6 * 4 * 2 == 1_152  # heads x L x S x d, QK^T and AV
    assert macs(arch, "block.qkv") == 6 * 16 * 48
    # the container's figure includes the functional op
    assert macs(arch, "block") == 6 * 16 * 48 + 1_152 + 6 * 16 * 16 == 7_296
    assert macs(arch) == 7_296 + 6 * 16 * 3


class Functional(nn.Module):
    def forward(self, x, y):
        a = x @ y.transpose(-1, -2)                 # [2, 3, 5] x [2, 5, 3] -> 3*3*5
        b = torch.bmm(a, y)                         # [2, 3, 3] x [2, 3, 5] -> 3*5*3
        c = torch.einsum("bij,bjk->bik", b, y.transpose(1, 2))  # 3*3*5
        return c.sum() + torch.baddbmm(a, a, a).sum()  # 3*3*3


def test_functional_matrix_products():
    arch = extract_torch(Functional(), (torch.randn(2, 3, 5), torch.randn(2, 3, 5)))
    by_class = {n.class_name: n.macs for n in arch.nodes if n.is_function}
    assert by_class["matmul"] == 3 * 3 * 5
    assert by_class["bmm"] == 3 * 5 * 3
    assert by_class["einsum"] == 3 * 3 * 5
    assert by_class["baddbmm"] == 3 * 3 * 3
    assert by_class["transpose"] == 0 and by_class["sum"] == 0 and by_class["add"] == 0


def test_functional_linear_on_data():
    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 5))

        def forward(self, x):
            return F.linear(x, self.w)

    arch = extract_torch(Lin(), torch.randn(2, 3, 5))
    assert arch.node("linear").macs == 3 * 5 * 4 and macs(arch) == 60


@BOTH
def test_lstm_counts_every_time_step(method):
    model = nn.Sequential(nn.LSTM(10, 20, num_layers=2, batch_first=True))
    arch = extract_torch(model, torch.randn(3, 7, 10), method=method)
    layer1 = 4 * 20 * 10 + 4 * 20 * 20   # input and hidden weight matrices of 4 gates
    layer2 = 4 * 20 * 20 + 4 * 20 * 20
    assert macs(arch, "0") == 7 * (layer1 + layer2) == 39_200


def test_gru_cell():
    arch = extract_torch(nn.Sequential(nn.GRUCell(6, 5)), torch.randn(4, 6))
    assert macs(arch, "0") == 3 * 5 * 6 + 3 * 5 * 5


def test_unknown_macs_are_null_with_a_reason():
    class Opaque(nn.Module):
        """Holds a weight matrix but runs no operation with a MACs rule: its product is done
        by numpy, which no counter sees."""

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return torch.from_numpy(x.numpy() @ self.w.detach().numpy())

    model = nn.Sequential(nn.Linear(4, 4), Opaque())
    arch = extract_torch(model, torch.randn(2, 4))
    assert arch.node("1").macs is None
    assert "no operation with a MACs rule" in arch.node("1").macs_reason
    assert macs(arch) == 16 and arch.model.macs_complete is False
    schema.from_json(arch.to_json())


def test_a_weight_read_only_by_a_reduction_is_a_known_zero():
    """``x * self.w.sum()``: the weight is read by a reduction and an elementwise product,
    both 0 by the convention, all of it dispatched: a known 0, not unknown."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return x * self.w.sum()

    arch = extract_torch(nn.Sequential(nn.Linear(4, 4), Scaled()), torch.randn(2, 4))
    assert arch.node("1").macs == 0 and macs(arch) == 16 and arch.model.macs_complete is True


class SlicedPositions(nn.Embedding):
    """Whisper's positional embedding: rows of its own weight by slicing, not F.embedding."""

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


class PickedRows(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(10, 4))

    def forward(self, idx):
        return torch.index_select(self.table, 0, idx[0]) + self.table[idx[0]]


@pytest.mark.parametrize("method", ["auto", "hooks", "fx"])
def test_reading_rows_of_its_own_weight_is_a_lookup(method):
    """Slicing or indexing a layer's own weight is a lookup (a true 0, complete), like
    F.embedding; a layer that multiplies by it elementwise stays unknown (the test above)."""
    model = nn.Sequential(SlicedPositions(16, 4), nn.Linear(4, 3))
    arch = extract_torch(model, torch.randn(2, 5, 4), method=method)
    assert arch.node("0").macs == 0 and arch.node("0").macs_reason is None
    assert macs(arch) == 5 * 4 * 3 and arch.model.macs_complete is True
    rows = extract_torch(nn.Sequential(PickedRows()), torch.tensor([[1, 3, 3]]), method=method)
    assert rows.node("0").macs == 0 and rows.model.macs_complete is True


def test_memory_is_dtype_aware():
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)).to(torch.float64)
    arch = extract_torch(model, torch.randn(3, 8, dtype=torch.float64))
    assert arch.node("0").memory == {"params_bytes": 8 * 72, "output_bytes": 8 * 8}
    assert arch.model.memory["params_bytes"] == 8 * (72 + 16)
    assert arch.model.memory["buffers_bytes"] == 8 * 16 + 8  # + num_batches_tracked


# ---------------------------------------------------------------------------------------------
# agreement with FlopCounterMode


def flop_counter_macs(model, inp, batch):
    """FLOPs / 2 per example, from FlopCounterMode on the same forward (see the docstring for
    the attention switches)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter:
            if isinstance(inp, dict):
                model(**inp)
            else:
                model(inp)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops() / 2 / batch


def _ids(n=16):
    return torch.randint(0, 256, (2, n))


CASES = {
    "resnet50": (tm.resnet50, lambda: torch.randn(2, 3, 64, 64)),
    "convnext_tiny": (tm.convnext_tiny, lambda: torch.randn(1, 3, 64, 64)),
    "vit": (tm.hf_vit, lambda: {"pixel_values": torch.randn(2, 3, 32, 32)}),
    "llama": (tm.hf_llama, lambda: {"input_ids": _ids()}),
    "bert": (tm.hf_bert, lambda: {"input_ids": _ids(), "attention_mask": torch.ones(2, 16,
                                                                                     dtype=torch.long)}),
    "gpt2": (tm.hf_gpt2, lambda: {"input_ids": _ids()}),
    "t5": (tm.hf_t5, lambda: {"input_ids": _ids(), "decoder_input_ids": _ids(8)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_agrees_with_flop_counter(name):
    if name in ("vit", "llama", "bert", "gpt2", "t5"):
        pytest.importorskip("transformers")
    torch.manual_seed(0)
    build, make_input = CASES[name]
    model = build().eval()
    inp = make_input()
    arch = extract_torch(model, inp)
    batch = arch.model.batch_size
    assert batch == (1 if name == "convnext_tiny" else 2)
    reference = flop_counter_macs(model, inp, batch)
    got = macs(arch)
    assert arch.model.macs_complete is True, [
        (n.id, n.macs_reason) for n in arch.nodes if n.macs is None][:5]
    assert reference > 0 and abs(got - reference) / reference < 0.02, (got, reference)
    assert arch.model.total_params == sum(p.numel() for p in model.parameters())


def test_lenet_per_example_figure():
    """The figure a Keras LeNet of the same layers must show exactly (per example): conv1
    20x28x28 outputs x 25, conv2 50x14x14 x 500, fc 500 x 2450 and 10 x 500."""
    arch = extract_torch(tm.lenet(), torch.randn(3, 1, 28, 28))
    assert macs(arch) == 392_000 + 4_900_000 + 1_225_000 + 5_000 == 6_522_000


def test_batch_size_given_for_a_sequence_first_input():
    model = nn.Sequential(nn.LSTM(10, 20))  # input [T, N, C]: the first dim is time
    x = torch.randn(7, 3, 10)
    guessed = extract_torch(model, x)
    assert guessed.model.batch_size == 7  # the documented rule: the first dimension
    arch = extract_torch(model, x, batch_size=3)
    assert arch.model.batch_size == 3
    assert macs(arch, "0") == 7 * (4 * 20 * 10 + 4 * 20 * 20)
    # output [7, 3, 20], h_n and c_n [1, 3, 20]: per example 7 x 20 + 20 + 20 floats
    assert arch.node("0").memory["output_bytes"] == 4 * (7 * 20 + 20 + 20)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        extract_torch(model, x, batch_size=0)


def test_root_modules_own_parameters_and_buffers_count_in_model_memory():
    """A parameter held by the root module itself (ViT's cls_token) is in no node: it still
    counts in model.memory (8 + 32 + 4 = 44 float32 params = 176 bytes; a 3-float buffer)."""
    import torch
    from torch import nn

    from tensorboard_archviz.extract.torch import extract_torch

    class WithToken(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls = nn.Parameter(torch.zeros(8))
            self.fc = nn.Linear(8, 4)
            self.register_buffer("scale", torch.ones(3))

        def forward(self, x):
            return self.fc(x + self.cls)

    arch = extract_torch(WithToken(), torch.randn(2, 8))
    assert arch.model.total_params == 44
    mem = arch.model.memory
    assert mem["params_bytes"] == 176 and mem["buffers_bytes"] == 12
    # per example: the add's output (8 floats) and fc's output (4 floats)
    assert mem["activations_bytes"] == (8 + 4) * 4
