"""MACs counted at the level where nothing hides (issue 24 items 1-3): the ATen operations
actually dispatched, attributed to the module or functional node that was running, on both
paths; parameters as the forward left them; the example batch of a sequence-first input.

The reference is ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) on the same forward.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from tensorboard_archviz import schema
from tensorboard_archviz.extract.torch import extract_torch


def reference_macs(model, x, batch):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2 // batch


@torch.fx.wrap
def mixing(x, w, proj: nn.Linear):
    """fx does not step into this: one call_function node. It multiplies by a weight matrix
    and calls a layer of the module that called it."""
    return proj(x @ w)


class Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.w = nn.Parameter(torch.randn(16, 32))
        self.proj = nn.Linear(32, 4)

    def forward(self, x):
        return mixing(self.inp(x), self.w, self.proj)


@pytest.mark.parametrize("method", ["auto", "hooks"])
def test_fx_wrapped_function_is_counted(method):
    torch.manual_seed(0)
    model, x = Wrapped(), torch.randn(3, 5, 8)
    arch = extract_torch(model, x, method=method)
    assert arch.extraction["method"] == ("fx" if method == "auto" else "hooks")
    ref = reference_macs(model, x, 3)
    # per example: inp 5x8x16, x @ w 5x16x32, proj 5x32x4
    assert ref == 5 * 8 * 16 + 5 * 16 * 32 + 5 * 32 * 4 == 3_840
    assert arch.model.macs == ref and arch.model.macs_complete is True
    proj = arch.node("proj")
    assert proj.calls == 1 and proj.reason is None and proj.macs == 5 * 32 * 4
    assert proj.input_shapes == [[3, 5, 32]] and proj.output_shapes == [[3, 5, 4]]
    if method == "auto":  # the wrapped call is one functional node holding its own work
        (op,) = [n for n in arch.nodes if n.class_name == "mixing"]
        assert op.is_function and op.macs == 5 * 16 * 32
        assert ("inp", op.id) in arch.edge_pairs()


class Opaque(nn.Module):
    def forward(self, x):
        return torch.fft.rfft(x).abs()


def test_an_operation_without_a_figure_is_unknown_never_zero():
    model = nn.Sequential(nn.Linear(8, 8), Opaque())
    arch = extract_torch(model, torch.randn(2, 8))
    node = arch.node("1")
    assert node.macs is None and "_fft_r2c" in node.macs_reason
    assert "does not define" in node.macs_reason
    assert arch.model.macs == 64 and arch.model.macs_complete is False
    schema.from_json(arch.to_json())


class Normalised(nn.Module):
    """CLIP / SigLIP-style embeddings: unit vectors (a vector norm), then a product."""

    def forward(self, x):
        u = x / x.norm(p=2, dim=-1, keepdim=True)
        v = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        return u @ v.transpose(0, 1)


class Decomposed(nn.Module):
    def forward(self, x):
        return torch.linalg.svdvals(x)


@pytest.mark.parametrize("method", ["auto", "hooks", "fx"])
def test_a_vector_norm_is_a_true_zero_a_decomposition_unknown(method):
    arch = extract_torch(nn.Sequential(Normalised()), torch.randn(3, 5), method=method)
    # [3, 5] @ [5, 3]: 45 MACs for the batch of 3, 15 per example; the norms are 0
    assert arch.model.macs == 15 and arch.model.macs_complete is True
    arch = extract_torch(nn.Sequential(Decomposed()), torch.randn(3, 5), method=method)
    assert arch.model.macs_complete is False
    assert "does not define" in arch.node("0").macs_reason


class MadeInForward(nn.Module):
    """Materialises its weight by hand in its first forward (not a Lazy* layer)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        if isinstance(self.weight, nn.UninitializedParameter):
            self.weight = nn.Parameter(torch.ones(x.shape[-1], 6))
        return self.fc(x @ self.weight)


@pytest.mark.parametrize("method", ["auto", "hooks"])
def test_parameter_made_in_forward_is_counted_after_the_call(method):
    model = MadeInForward()
    arch = extract_torch(model, torch.randn(2, 4), method=method)
    assert arch.model.total_params == 4 * 6 + 6 * 2 + 2 == 38
    assert arch.model.macs == 4 * 6 + 6 * 2
    # the root holds the weight: the model's own weights list it
    assert [w["name"] for w in arch.model.self_weights] == ["weight"]
    # as a lazy layer: the model is left as the forward left it
    assert model.weight.shape == (4, 6)


class HandMaterialised(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.UninitializedParameter()

    def forward(self, x):
        if isinstance(self.weight, nn.UninitializedParameter):
            self.weight = nn.Parameter(torch.ones(3, x.shape[-1]))
        return x @ self.weight.t()


def test_a_layers_parameter_made_in_forward_says_so():
    model = nn.Sequential(HandMaterialised(), nn.ReLU())
    arch = extract_torch(model, torch.randn(2, 5))
    node = arch.node("0")
    assert node.total_params == 15 and arch.model.total_params == 15
    assert node.macs == 15 and arch.model.macs_complete is True
    assert node.reason == ("parameters counted as the forward left them (weight materialised during "
                           "the forward)")


def test_sequence_first_lstm_warns_once_naming_the_module_and_batch_size():
    model = nn.Sequential(nn.LSTM(10, 20))  # input [T, N, C]: the first dimension is time
    x = torch.randn(7, 3, 10)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        arch = extract_torch(model, x)
    ours = [w for w in seen if "tensorboard-archviz" in str(w.message)]
    assert len(ours) == 1
    text = str(ours[0].message)
    assert "'0' (LSTM, batch_first=False) has 3 in its batch dimension" in text
    assert "pass batch_size=3" in text
    assert arch.model.batch_size == 7  # what the per-example figures were divided by
    assert arch.extraction["batch"] in text
    per_run = 7 * 3 * (4 * 20 * 10 + 4 * 20 * 20)
    assert arch.node("0").macs == per_run // 7
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        given = extract_torch(model, x, batch_size=3)
    assert not [w for w in seen if "tensorboard-archviz" in str(w.message)]
    assert given.model.batch_size == 3 and "batch" not in given.extraction
    assert given.node("0").macs == per_run // 3 == 7 * (4 * 20 * 10 + 4 * 20 * 20)


class PackedLSTM(nn.Module):
    """torchinfo's PackPaddedLSTM, smaller: token ids [T, N], packed, a sequence-first LSTM."""

    def __init__(self, batch_first=False):
        super().__init__()
        self.batch_first = batch_first
        self.embedding = nn.Embedding(60, 16)
        self.lstm = nn.LSTM(16, 8, batch_first=batch_first)

    def forward(self, tokens, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(self.embedding(tokens), lengths,
                                                   batch_first=self.batch_first)
        _, (h, _) = self.lstm(packed)
        return h[-1]


def test_lstm_on_a_packed_sequence_names_its_batch():
    """The packed data is 2-D [sum of lengths, C]: the batch is in the final state [1, N, H]."""
    lengths = torch.tensor([5, 4, 4, 2])  # 4 sequences, 15 steps in all, padded to T = 5
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        arch = extract_torch(PackedLSTM(), (torch.ones(5, 4, dtype=torch.long), lengths))
    ours = [str(w.message) for w in seen if "tensorboard-archviz" in str(w.message)]
    assert len(ours) == 1 and "'lstm' (LSTM, on a packed sequence) has 4 in its batch " \
        "dimension: pass batch_size=4" in ours[0]
    per_run = 15 * 4 * 8 * (16 + 8)  # the steps the packed LSTM ran
    assert arch.model.batch_size == 5 and arch.node("lstm").macs == round(per_run / 5)
    given = extract_torch(PackedLSTM(), (torch.ones(5, 4, dtype=torch.long), lengths),
                          batch_size=4)
    assert given.node("lstm").macs == per_run // 4 and "batch" not in given.extraction
    with warnings.catch_warnings():  # batch first: the input's first dimension is the batch
        warnings.simplefilter("error")
        arch = extract_torch(PackedLSTM(batch_first=True),
                             (torch.ones(4, 5, dtype=torch.long), lengths))
    assert arch.model.batch_size == 4 and arch.node("lstm").macs == per_run // 4


def test_batch_first_lstm_needs_no_warning():
    model = nn.Sequential(nn.LSTM(10, 20, batch_first=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arch = extract_torch(model, torch.randn(3, 7, 10))
    assert arch.model.batch_size == 3


class Hidden(nn.Module):
    """A product no torch-function hook sees (torch functions disabled around it)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 4))
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        with torch._C.DisableTorchFunction():
            y = torch.mm(x, self.w)
        return self.fc(y)


def test_work_outside_every_module_and_op_is_still_counted():
    torch.manual_seed(0)
    model, x = Hidden(), torch.randn(3, 8)
    arch = extract_torch(model, x)
    assert arch.model.macs == reference_macs(model, x, 3) == 8 * 4 + 4 * 2
    (stray,) = [n for n in arch.nodes if n.class_name == "unattributed"]
    assert stray.macs == 8 * 4 and arch.model.macs_complete is True


class Attend(nn.Module):
    def __init__(self, mha: nn.MultiheadAttention, need_weights: bool, mask: bool):
        super().__init__()
        self.mha, self.need_weights, self.mask = mha, need_weights, mask

    def forward(self, q, kv):
        mask = torch.zeros(q.shape[-2] if self.mha.batch_first or q.dim() == 2 else q.shape[0],
                           kv.shape[-2] if self.mha.batch_first or kv.dim() == 2
                           else kv.shape[0]) if self.mask else None
        return self.mha(q, kv, kv, need_weights=self.need_weights, attn_mask=mask)[0]


MHA_CASES = [  # (MultiheadAttention, query shape, key/value shape)
    (dict(embed_dim=16, num_heads=4, batch_first=True), (3, 5, 16), (3, 7, 16)),
    (dict(embed_dim=16, num_heads=4, batch_first=False), (5, 3, 16), (7, 3, 16)),
    (dict(embed_dim=16, num_heads=2, batch_first=False), (6, 2, 16), (6, 2, 16)),  # L != N
    (dict(embed_dim=16, num_heads=4, kdim=8, vdim=8, batch_first=True), (2, 5, 16), (2, 9, 8)),
    (dict(embed_dim=16, num_heads=4), (5, 16), (7, 16)),  # unbatched
    (dict(embed_dim=16, num_heads=4, add_bias_kv=True, batch_first=True), (2, 5, 16),
     (2, 7, 16)),  # one more key position: counted by what is dispatched
    (dict(embed_dim=16, num_heads=4, add_zero_attn=True), (5, 2, 16), (7, 2, 16)),
]


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("case", range(len(MHA_CASES)))
def test_multihead_attention_figure_without_dispatch_equals_the_dispatched_one(case,
                                                                                need_weights):
    """A plain nn.MultiheadAttention runs outside the dispatch mode, its figure from
    torch_macs.plain_call_macs: the same as counting what it dispatches (forced here by a hook,
    which makes the layer not plain) and, with need_weights (bmm path), FlopCounterMode / 2."""
    from tensorboard_archviz.extract import torch_macs

    cfg, qs, ks = MHA_CASES[case]
    torch.manual_seed(0)
    model = Attend(nn.MultiheadAttention(**cfg), need_weights, mask=case % 2 == 0).eval()
    x = (torch.randn(*qs), torch.randn(*ks))
    plain = torch_macs.plain_leaf(model.mha)
    assert plain == ("add_bias_kv" not in cfg and "add_zero_attn" not in cfg)
    fast = extract_torch(model, x, batch_size=1)
    handle = model.mha.register_forward_hook(lambda m, a, o: None)
    try:
        assert not torch_macs.plain_leaf(model.mha)
        counted = extract_torch(model, x, batch_size=1)
    finally:
        handle.remove()
    assert fast.node("mha").macs == counted.node("mha").macs > 0
    assert fast.node("mha.out_proj").macs == counted.node("mha.out_proj").macs > 0
    assert fast.model.macs == counted.model.macs
    if need_weights:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as reference:
            model(*x)
        assert fast.model.macs == reference.get_total_flops() // 2


def test_a_callers_dispatch_mode_still_sees_every_operation():
    """Plain layers run with the modes set aside only when no other dispatch mode is active: a
    caller's FlopCounterMode around extract_torch counts the convolutions and matrix products
    of the real forward (its figure is twice the document's), the document is unchanged."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    cases = [(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(inplace=True), nn.Flatten(),
                            nn.Linear(8 * 6 * 6, 10)), (torch.randn(2, 3, 8, 8),)),
             (Attend(nn.MultiheadAttention(16, 4, batch_first=True), True, mask=False),
              (torch.randn(2, 5, 16), torch.randn(2, 7, 16)))]
    for model, x in cases:
        model.eval()
        alone = extract_torch(model, x).to_dict()
        with FlopCounterMode(display=False) as outer:
            watched = extract_torch(model, x).to_dict()
        assert watched == alone
        batch = alone["model"]["batch_size"]
        assert outer.get_total_flops() == 2 * batch * alone["model"]["macs"] > 0


class PositionalAdd(nn.Module):
    """A leaf adding a learned [T, C] positional embedding (ViT / torchvision MViT style)."""

    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(16, 8))
        self.temporal = nn.Parameter(torch.zeros(4, 8))

    def forward(self, x):
        pe = torch.repeat_interleave(self.temporal, 4, dim=0)
        return x + self.pos + pe


class UnusedMatrix(nn.Module):
    """A leaf holding a weight matrix its forward never reads: its figure stays unknown."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        return x * 2.0


@pytest.mark.parametrize("method", ["hooks", "fx"])
def test_a_weight_matrix_only_added_is_a_known_zero(method):
    arch = extract_torch(nn.Sequential(nn.Linear(8, 8), PositionalAdd()), torch.randn(2, 16, 8),
                         method=method)
    assert arch.node("1").macs == 0 and arch.node("1").macs_reason is None
    assert arch.model.macs == 16 * 8 * 8 and arch.model.macs_complete is True
    arch = extract_torch(nn.Sequential(nn.Linear(8, 8), UnusedMatrix()), torch.randn(2, 8),
                         method=method)
    assert arch.node("1").macs is None and "holds a weight matrix" in arch.node("1").macs_reason
    assert arch.model.macs_complete is False


class Detector(nn.Module):
    """torchvision's detection models' input: a list of [C, H, W] images, batched inside."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, images):
        return self.conv(torch.stack(images) if images[0].dim() == 3 else torch.cat(images))


def test_a_list_of_unbatched_images_is_a_batch_of_that_many():
    """The batch is the number of images, not the first image's 3 channels (5 images: 5)."""
    per_image = 16 * 16 * 8 * 3 * 3 * 3
    for n in (1, 2, 5):
        a = extract_torch(Detector(), ([torch.randn(3, 16, 16) for _ in range(n)],))
        assert a.model.batch_size == n and a.model.macs == per_image
        assert a.extraction["batch"] == ("the input 'images' is a list of %d unbatched images "
                                         "[C, H, W], batched inside the model: per-example "
                                         "figures are divided by %d" % (n, n))
    # a list of batched tensors: the first dimension stays the batch
    a = extract_torch(Detector(), ([torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)],))
    assert a.model.batch_size == 4 and "batch" not in a.extraction
    assert a.model.macs == 2 * per_image


TORCHVISION_OPS = '''
import torch, torch.nn.functional as F
from torch import nn
import torch.nn.functional as F
from tensorboard_archviz.extract.torch import extract_torch

# torchvision's operators as torchvision registers them (schemas of torchvision/csrc/ops),
# with plain kernels: this environment has no torchvision
lib = torch.library.Library("torchvision", "DEF")
lib.define("deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
           "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
           "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor")
lib.define("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
           "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor")
lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
lib.impl("deform_conv2d", lambda x, w, off, mask, b, sh, sw, ph, pw, dh, dw, g, og, um:
         F.conv2d(x, w, b, (sh, sw), (ph, pw), (dh, dw), g), "CPU")
lib.impl("roi_align", lambda x, rois, s, h, w, r, a: x.new_zeros(rois.shape[0], x.shape[1], h, w),
         "CPU")
lib.impl("nms", lambda d, s, t: torch.argsort(s, descending=True), "CPU")

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 4, 3, 3))
        self.bias = nn.Parameter(torch.zeros(6))
    def forward(self, x):
        off = torch.zeros(x.shape[0], 18, x.shape[2], x.shape[3])
        y = torch.ops.torchvision.deform_conv2d(x, self.weight, off, torch.zeros(0), self.bias,
                                                1, 1, 1, 1, 1, 1, 1, 1, False)
        boxes = torch.tensor([[0, 0., 0., 4., 4.], [0, 1., 1., 6., 6.]])
        r = torch.ops.torchvision.roi_align(y, boxes, 1.0, 2, 2, 2, False)
        keep = torch.ops.torchvision.nms(boxes[:, 1:], torch.tensor([0.9, 0.8]), 0.5)
        return r[keep]

a = extract_torch(nn.Sequential(Head()), torch.randn(1, 4, 8, 8))
print(a.node("0").macs, a.node("0").macs_reason, a.model.macs_complete)
'''


def test_torchvision_operators_have_their_figures():
    """torchvision::deform_conv2d is a convolution; roi_align / nms are 0, not "a custom
    operation whose MACs this convention does not define" (detection models complete)."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: its own operators are registered already")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", TORCHVISION_OPS], check=True, timeout=300,
                         stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=repo)).stdout.split()
    assert out == [str(8 * 8 * 6 * 4 * 3 * 3), "None", "True"]


class DirectWeights(nn.Module):
    """Swin's / BEiT's attention: child Linear layers whose weights the parent's forward uses
    directly (F.linear with self.qkv.weight), never calling them."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.unused = nn.Linear(8, 8)

    def forward(self, x):
        q, k, v = F.linear(x, self.qkv.weight, self.qkv.bias).chunk(3, dim=-1)
        return F.linear(q * k + v, self.proj.weight, bias=self.proj.bias)  # a keyword too


@pytest.mark.parametrize("method", ["hooks", "fx"])
def test_a_module_whose_weights_the_parent_uses_directly_says_so(method):
    arch = extract_torch(nn.Sequential(DirectWeights()), torch.randn(2, 5, 8), method=method)
    qkv, proj, unused = arch.node("0.qkv"), arch.node("0.proj"), arch.node("0.unused")
    ops = {n.id: n for n in arch.nodes if n.is_function}
    assert qkv.used_by in ops and ops[qkv.used_by].class_name == "linear"
    assert qkv.reason == ("not called as a module: its weights are used directly by the "
                          "operation '%s' in '0'" % qkv.used_by)
    assert proj.used_by in ops and proj.used_by != qkv.used_by
    assert ops[qkv.used_by].macs == 5 * 24 * 8 and ops[proj.used_by].macs == 5 * 8 * 8
    assert unused.used_by is None and unused.reason == "not called during the forward pass"
    assert qkv.calls == 0 and arch.model.macs == 5 * 32 * 8 and arch.model.macs_complete
