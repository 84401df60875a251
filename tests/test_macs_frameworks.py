"""Keras and PyTorch agree on MACs per example (schema 2 convention): the same LeNet gives exactly
equal figures in both extractors and in the diff; Keras' ConvNeXt-Tiny and a PyTorch ConvNeXt-Tiny
(written here, no torchvision) agree within 2 %.

The ConvNeXt pair builds two 28 M-parameter models and runs one 224 x 224 forward (about 9 s on
the 2-core CI machine); at the time of writing both give 4,455,531,264, as does
``torch.utils.flop_counter.FlopCounterMode`` / 2 on the PyTorch forward.
"""

import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tensorboard_archviz import schema  # noqa: E402
from tensorboard_archviz.diff import diff_architectures  # noqa: E402
from tensorboard_archviz.extract.keras import extract_keras  # noqa: E402
from tensorboard_archviz.extract.torch import extract_torch  # noqa: E402

LENET_MACS = (20 * 5 * 5 * 1 * 28 * 28      # conv 1: 392,000
              + 50 * 5 * 5 * 20 * 14 * 14   # conv 2: 4,900,000
              + 7 * 7 * 50 * 500            # dense 1: 1,225,000
              + 500 * 10)                   # dense 2: 5,000


def keras_lenet():
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(20, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(50, 5, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(500, activation="relu"),
        layers.Dense(10, activation="softmax")], name="lenet")


def torch_lenet():
    return nn.Sequential(
        nn.Conv2d(1, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2450, 500), nn.ReLU(), nn.Linear(500, 10), nn.Softmax(dim=1))


def test_lenet_exactly_equal_in_keras_and_torch():
    assert LENET_MACS == 6_522_000
    k = extract_keras(keras_lenet())
    # a batch of 8: the figures are per example whatever the batch
    t = extract_torch(torch_lenet().eval(), torch.randn(8, 1, 28, 28))
    for arch in (k, t):
        m = arch.model
        assert m.macs == LENET_MACS and m.macs_complete is True
        assert m.macs_convention == schema.MACS_CONVENTION
    assert t.model.batch_size == 8 and k.model.batch_size is None
    assert k.model.total_params == t.model.total_params == 1_256_080
    per_layer = lambda arch: sorted(n.macs for n in arch.nodes if n.macs)  # noqa: E731
    assert per_layer(k) == per_layer(t) == [5_000, 392_000, 1_225_000, 4_900_000]
    assert k.model.memory["params_bytes"] == t.model.memory["params_bytes"]
    assert k.model.memory["params_bytes"] == 1_256_080 * 4


def test_diff_of_keras_and_torch_lenet_shows_equal_macs():
    d = diff_architectures(extract_keras(keras_lenet()),
                           extract_torch(torch_lenet().eval(), torch.randn(2, 1, 28, 28)))
    if "macs" not in d["totals"]:
        pytest.skip("diff_architectures has no MACs total yet (needs totals['macs'])")
    assert d["totals"]["macs"] == {"a": LENET_MACS, "b": LENET_MACS, "delta": 0}
    # the matched layers carry equal MACs: no "macs" field among the changes
    assert not [c for c in d["changed"] if "macs" in c["fields"]]


# -- ConvNeXt-Tiny -------------------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)   # applied at every one of H x W positions
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4),
                                  LayerNorm2d(dims[0], eps=1e-6))
        self.stages = nn.ModuleList()
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            down = [] if i == 0 else [LayerNorm2d(dims[i - 1], eps=1e-6),
                                      nn.Conv2d(dims[i - 1], dim, 2, stride=2)]
            self.stages.append(nn.Sequential(*down, *[Block(dim) for _ in range(depth)]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(self.norm(x.mean(dim=(2, 3))))


def test_convnext_tiny_keras_and_torch_within_2_percent():
    k = extract_keras(keras.applications.ConvNeXtTiny(weights=None))
    with torch.no_grad():
        t = extract_torch(ConvNeXtTiny().eval(), torch.randn(1, 3, 224, 224))
    km, tm = k.model.macs, t.model.macs
    assert k.model.macs_complete and t.model.macs_complete
    assert abs(km - tm) / km < 0.02, (km, tm)
    assert k.model.total_params == t.model.total_params == 28_589_128
    assert 4.4e9 < km < 4.5e9  # the published 4.46 G per 224 x 224 example
