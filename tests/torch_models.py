"""PyTorch models used by the extraction/writer tests, the integration tests and the benchmark.

Every model is defined here in code (no torchvision, no downloaded weights).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """The PyTorch quickstart network: 669,706 parameters; 668,672 MACs per example."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(),
            nn.Linear(512, 512), nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def lenet() -> nn.Sequential:
    """LeNet as in the Keras reference (padding=2 == 'same'): 1,256,080 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2450, 500), nn.ReLU(), nn.Linear(500, 10),
    )


class TorchinfoCNN(nn.Module):
    """The CNN of torchinfo's README: 21,840 parameters, 480,500 MACs per example (torchinfo:
    7,801,600 mult-adds for a batch of 16, bias adds included)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus the input (the skip connection), then relu."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class SmallResNet(nn.Module):
    """stem conv -> residual block -> global average pool -> flatten -> linear (1x28x28 in)."""

    def __init__(self, channels: int = 8, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.block = ResidualBlock(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.block(self.stem(x)))))


class DictOutput(nn.Module):
    """Returns a dict (add_graph's jit.trace fails on this)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(16, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return {"logits": self.head(h), "features": h}


class DictInput(nn.Module):
    """Called with a dict as keyword arguments: model(image=..., extra=...)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.flatten = nn.Flatten()
        self.side = nn.Linear(5, 4)
        self.fc = nn.Linear(4 * 6 * 6 + 4, 2)

    def forward(self, image, extra):
        a = self.flatten(self.conv(image))
        b = self.side(extra)
        return self.fc(torch.cat([a, b], dim=1))


@dataclasses.dataclass
class PairOutput:
    main: torch.Tensor
    aux: torch.Tensor


class DataclassOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 2)

    def forward(self, x):
        h = self.a(x)
        return PairOutput(main=self.b(h), aux=h)


class CalledTwice(nn.Module):
    """One Linear used twice: one node, two calls, both edges, its params counted once."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.fc(self.act(self.fc(x))))


class DataDependent(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it; the hooks path must."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x) if x.sum() > 0 else self.b(x)
        return self.fc(torch.relu(h)) + h


WRAPPED_CALLS = []


def wrapped_scale(x):
    """A function torch.fx keeps whole (``torch.fx.wrap`` below): one op in the fx graph."""
    WRAPPED_CALLS.append(tuple(x.shape))
    return x * 2.0


torch.fx.wrap("wrapped_scale")


class WrappedOnly(nn.Module):
    """Calls a torch.fx.wrap-ed function: extract_torch's "auto" uses the fx path."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(wrapped_scale(x))


class WrappedDataDependent(DataDependent):
    """A torch.fx.wrap-ed function and data-dependent control flow: "auto" tries fx, which
    fails at the `if`, and falls back to the hooks path."""

    def forward(self, x):
        h = wrapped_scale(x)
        return self.fc(self.a(h) if h.sum() > 0 else self.b(h))


class SideEffects(nn.Module):
    """BatchNorm + Dropout + a frozen layer, for the no-side-effect checks."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.frozen = nn.Linear(8, 4)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        h = self.drop(self.bn(self.conv(x)))
        return self.frozen(h.mean(dim=(2, 3)))


def transformer_encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


# ---------------------------------------------------------------------------------------------
# ResNet-152-sized network (torchvision's layout, bottleneck blocks [3, 8, 36, 3]), no torchvision

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, layers=(3, 8, 36, 3), num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * 4, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet152() -> ResNet:
    """60,192,808 parameters, like torchvision's resnet152."""
    return ResNet((3, 8, 36, 3))


def resnet50() -> ResNet:
    """25,557,032 parameters, like torchvision's resnet50."""
    return ResNet((3, 4, 6, 3))


# ---------------------------------------------------------------------------------------------
# ConvNeXt (torchvision's layout), no torchvision

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)   # a Linear on a 4-D (NHWC) tensor
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class ConvNeXt(nn.Module):
    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), num_classes: int = 1000):
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            layers.append(nn.Sequential(*[CNBlock(dim) for _ in range(depth)]))
            if i + 1 < len(dims):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6),
                                            nn.Conv2d(dim, dims[i + 1], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(dims[-1], eps=1e-6), nn.Flatten(1),
                                        nn.Linear(dims[-1], num_classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny() -> ConvNeXt:
    """28,589,128 parameters, like torchvision's convnext_tiny (4.46 GMACs at 224x224)."""
    return ConvNeXt()


# ---------------------------------------------------------------------------------------------
# Hugging Face transformers models from configs (random weights, never a download)

def hf_llama(tiny: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2) if tiny else LlamaConfig()
    return LlamaForCausalLM(cfg).eval()


def hf_bert(tiny: bool = True):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128) if tiny else BertConfig()
    return BertModel(cfg).eval()


def hf_vit(tiny: bool = True):
    """ViT-B/16 (transformers' defaults: 224x224, patch 16, hidden 768, 12 layers) or a tiny
    one (32x32, patch 8, hidden 64, 2 layers)."""
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=128) if tiny else ViTConfig()
    return ViTModel(cfg, add_pooling_layer=False).eval()


def hf_gpt2():
    """A tiny GPT-2 (its projections are transformers' Conv1D: torch.addmm)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256,
                                      n_positions=64, bos_token_id=0, eos_token_id=0)).eval()


def hf_t5():
    """A tiny T5 encoder-decoder (cross-attention, relative position bias)."""
    from transformers import T5Config, T5ForConditionalGeneration

    return T5ForConditionalGeneration(T5Config(vocab_size=256, d_model=64, d_kv=16, d_ff=128,
                                               num_layers=2, num_heads=4)).eval()
