"""Models for the benchmarks, defined in code (torchvision cannot be installed beside torch 2.13
here; no weights are downloaded): torchvision-layout MobileNetV3-Large, EfficientNet-B0 and
ViT-B/16, and a Swin-style windowed-attention vision transformer (shifted windows, relative
position bias, the attention wrapped with ``torch.fx.wrap``).

ResNet-50 and ConvNeXt-Tiny come from tests/torch_models.py.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvNormAct(nn.Sequential):
    """torchvision's Conv2dNormActivation: conv (no bias), BatchNorm, activation."""

    def __init__(self, cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout, eps=0.001, momentum=0.01)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, cin, squeeze, act=nn.ReLU, scale=nn.Hardsigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(cin, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, cin, 1)
        self.activation = act()
        self.scale_activation = scale()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x


class MobileInvertedResidual(nn.Module):
    def __init__(self, cin, k, exp, cout, se, hs, stride):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        self.use_res = stride == 1 and cin == cout
        layers = []
        if exp != cin:
            layers.append(ConvNormAct(cin, exp, 1, act=act))
        layers.append(ConvNormAct(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcitation(exp, _divisible(exp // 4)))
        layers.append(ConvNormAct(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        out = self.block(x)
        return out + x if self.use_res else out


_MBV3_LARGE = [(16, 3, 16, 16, False, False, 1), (16, 3, 64, 24, False, False, 2),
               (24, 3, 72, 24, False, False, 1), (24, 5, 72, 40, True, False, 2),
               (40, 5, 120, 40, True, False, 1), (40, 5, 120, 40, True, False, 1),
               (40, 3, 240, 80, False, True, 2), (80, 3, 200, 80, False, True, 1),
               (80, 3, 184, 80, False, True, 1), (80, 3, 184, 80, False, True, 1),
               (80, 3, 480, 112, True, True, 1), (112, 3, 672, 112, True, True, 1),
               (112, 5, 672, 160, True, True, 2), (160, 5, 960, 160, True, True, 1),
               (160, 5, 960, 160, True, True, 1)]


class MobileNetV3(nn.Module):
    """torchvision's mobilenet_v3_large layout: 5,483,032 parameters."""

    def __init__(self, num_classes=1000):
        super().__init__()
        layers = [ConvNormAct(3, 16, 3, 2, act=nn.Hardswish)]
        layers += [MobileInvertedResidual(*c) for c in _MBV3_LARGE]
        layers.append(ConvNormAct(160, 960, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2, inplace=True), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class StochasticDepth(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class MBConv(nn.Module):
    def __init__(self, expand, k, stride, cin, cout, sd):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        exp = _divisible(cin * expand)
        layers = []
        if exp != cin:
            layers.append(ConvNormAct(cin, exp, 1, act=nn.SiLU))
        layers.append(ConvNormAct(exp, exp, k, stride, groups=exp, act=nn.SiLU))
        layers.append(SqueezeExcitation(exp, max(1, cin // 4), act=partial(nn.SiLU, inplace=True),
                                        scale=nn.Sigmoid))
        layers.append(ConvNormAct(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd)

    def forward(self, x):
        out = self.block(x)
        if self.use_res:
            out = self.stochastic_depth(out) + x
        return out


_EFFNET_B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
              (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
              (6, 3, 1, 192, 320, 1)]


class EfficientNet(nn.Module):
    """torchvision's efficientnet_b0 layout: 5,288,548 parameters."""

    def __init__(self, num_classes=1000):
        super().__init__()
        layers = [ConvNormAct(3, 32, 3, 2, act=nn.SiLU)]
        total = sum(c[-1] for c in _EFFNET_B0)
        idx = 0
        for expand, k, stride, cin, cout, n in _EFFNET_B0:
            stage = []
            for i in range(n):
                stage.append(MBConv(expand, k, stride if i == 0 else 1, cin if i == 0 else cout,
                                    cout, 0.2 * idx / total))
                idx += 1
            layers.append(nn.Sequential(*stage))
        layers.append(ConvNormAct(320, 1280, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2, inplace=True), nn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class MLPBlock(nn.Sequential):
    def __init__(self, dim, hidden):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0),
                         nn.Linear(hidden, dim), nn.Dropout(0.0))


class EncoderBlock(nn.Module):
    def __init__(self, heads, dim, hidden):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, hidden)

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = self.dropout(y) + x
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq, layers, heads, dim, hidden):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(*[EncoderBlock(heads, dim, hidden) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """torchvision's vit_b_16 layout: 86,567,656 parameters."""

    def __init__(self, image=224, patch=16, layers=12, heads=12, dim=768, hidden=3072,
                 num_classes=1000):
        super().__init__()
        self.patch, self.dim = patch, dim
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder = Encoder((image // patch) ** 2 + 1, layers, heads, dim, hidden)
        self.heads = nn.Sequential(nn.Linear(dim, num_classes))

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x)
        x = x.reshape(n, self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        x = self.encoder(x)
        return self.heads(x[:, 0])


# ---------------------------------------------------------------------------------------------
# a Swin-style vision transformer: windowed attention wrapped with torch.fx.wrap


def window_partition(x, ws: int):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows, ws: int, h: int, w: int):
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


@torch.fx.wrap
def shifted_window_attention(x, qkv: nn.Linear, proj: nn.Linear, bias_table, index,
                             heads: int, ws: int, shift: int):
    """Swin's attention on [B, H, W, C]: cyclic shift, windows, multi-head attention with a
    relative position bias (and the shifted-window mask), windows merged back. torch.fx does
    not step into it (one call_function node); the projections are module calls inside."""
    b, h, w, c = x.shape
    if shift:
        x = torch.roll(x, (-shift, -shift), (1, 2))
    win = window_partition(x, ws)
    n = win.shape[1]
    q, k, v = qkv(win).reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)
    bias = bias_table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    attn = attn + bias.unsqueeze(0)
    if shift:
        attn = attn + _shift_mask(h, w, ws, shift, x.device).unsqueeze(1).repeat(b, 1, 1, 1) \
            .view(-1, 1, n, n)
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c)
    out = window_reverse(proj(out), ws, h, w)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    return out


def _shift_mask(h, w, ws, shift, device):
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    m = window_partition(img, ws).squeeze(-1)
    m = m.unsqueeze(1) - m.unsqueeze(2)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim, heads, ws, shift):
        super().__init__()
        self.heads, self.ws, self.shift = heads, ws, shift
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.randn((2 * ws - 1) ** 2, heads) * 0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
        flat = coords.flatten(1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1],
                             persistent=False)

    def forward(self, x):
        return shifted_window_attention(x, self.qkv, self.proj, self.relative_position_bias_table,
                                        self.relative_position_index, self.heads, self.ws,
                                        self.shift)


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, ws, shift):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, ws, shift)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinTiny(nn.Module):
    """A Swin-style transformer (patch 4, window 7, shifted windows every other block)."""

    def __init__(self, depths=(2, 2, 6, 2), dim=96, heads=(3, 6, 12, 24), ws=7, classes=1000):
        super().__init__()
        self.patch_embed = nn.Sequential(nn.Conv2d(3, dim, 4, 4))
        self.patch_norm = nn.LayerNorm(dim)
        stages = []
        for i, (d, h) in enumerate(zip(depths, heads)):
            blocks = [SwinBlock(dim, h, ws, 0 if j % 2 == 0 else ws // 2) for j in range(d)]
            if i < len(depths) - 1:
                blocks.append(PatchMerging(dim))
                dim *= 2
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        x = self.norm(self.stages(x))
        return self.head(x.mean((1, 2)))


def transformer48(dim: int = 512) -> nn.Module:
    layer = nn.TransformerEncoderLayer(dim, 8, 4 * dim, batch_first=True)
    return nn.TransformerEncoder(layer, 48, enable_nested_tensor=False)


def hf_llama_tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=1024, hidden_size=128, intermediate_size=344, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).eval()


def hf_llama_1b():
    """A Hugging Face Llama at the published Llama-3.2-1B shapes (16 layers, hidden 2048, 32
    query / 8 key-value heads, MLP 8192, vocabulary 128,256, tied embeddings; 1.24 B parameters,
    random weights: about 5 GB and 30 s to build)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                      num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                      head_dim=64, tie_word_embeddings=True, rope_theta=500000.0)
    return LlamaForCausalLM(cfg).eval()


def speed_cases():
    """(name, build, make input) of the issue's speed comparison."""
    import torch_models as tm

    img = lambda: torch.randn(1, 3, 224, 224)  # noqa: E731
    return [
        ("ResNet-50 224²", tm.resnet50, img),
        ("ConvNeXt-Tiny", tm.convnext_tiny, img),
        ("ViT-B/16", VisionTransformer, img),
        ("MobileNetV3-Large", MobileNetV3, img),
        ("EfficientNet-B0", EfficientNet, img),
        ("transformer 48 blocks", transformer48, lambda: torch.randn(1, 128, 512)),
        ("HF Llama (tiny)", hf_llama_tiny,
         lambda: {"input_ids": torch.randint(0, 1024, (1, 128))}),
        ("HF Llama-3.2-1B shapes", hf_llama_1b,
         lambda: {"input_ids": torch.randint(0, 128256, (1, 128))}),
    ]

