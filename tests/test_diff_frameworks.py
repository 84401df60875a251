"""Diff engine on architectures extracted from real Keras and PyTorch models."""

import numpy as np


def test_torch_vs_torch_width_and_inserted_layer():
    import torch
    from torch import nn

    from tensorboard_archviz.diff import describe, diff_architectures
    from tensorboard_archviz.extract.torch import extract_torch

    def mlp(hidden, dropout=False):
        layers = [nn.Flatten(), nn.Linear(784, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.1))
        layers += [nn.Linear(hidden, 10)]
        return nn.Sequential(*layers)

    x = torch.randn(1, 1, 28, 28)
    a = extract_torch(mlp(512), x)
    assert diff_architectures(a, extract_torch(mlp(512), x))["identical"] is True
    d = diff_architectures(a, extract_torch(mlp(256), x))
    fields = {c["id_a"]: c["fields"] for c in d["changed"]}
    assert set(fields) == {"1", "2", "3"}  # both Linear layers and the ReLU's shapes
    assert fields["1"]["params.trainable"] == {"a": 401920, "b": 200960}
    assert fields["1"]["config.out_features"] == {"a": 512, "b": 256}
    assert d["totals"]["total_params"] == {"a": 407050, "b": 203530, "delta": -203520}
    # per-example MACs: 784*512 + 512*10 = 406,528 -> 784*256 + 256*10 = 203,264
    assert d["totals"]["macs"] == {"a": 406528, "b": 203264, "delta": -203264}
    assert fields["1"]["macs"] == {"a": 401408, "b": 200704}
    assert "MACs per example 406,528 \u2192 203,264 (\u2212203,264)" in describe(d)
    # Inserting a Dropout renumbers the last Linear ("3" -> "4"): matched by structure.
    d = diff_architectures(a, extract_torch(mlp(512, dropout=True), x))
    assert d["added"] == ["3"] and d["removed"] == [] and d["changed"] == []
    assert d["renamed"] == [{"id_a": "3", "id_b": "4"}]
    assert d["summary"] == "+1 layer, 1 renamed"


def test_keras_second_session_names_and_unfreeze():
    import keras

    from tensorboard_archviz.diff import diff_architectures
    from tensorboard_archviz.extract.keras import extract_keras

    def build():  # automatic names: dense_N, with N different in each "session"
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
                                 keras.layers.Dense(4)])

    first, second = build(), build()
    a, b = extract_keras(first), extract_keras(second)
    assert [n.id for n in a.nodes] != [n.id for n in b.nodes]
    d = diff_architectures(a, b)
    assert d["identical"] is False and d["added"] == d["removed"] == d["changed"] == []
    assert [r["id_b"] for r in d["renamed"]] == [n.id for n in b.nodes]  # input + 2 Dense
    assert d["summary"] == "3 renamed"
    second.layers[0].trainable = False
    d = diff_architectures(a, extract_keras(second))
    [change] = d["changed"]
    assert change["fields"]["trainable"] == {"a": "trainable", "b": "frozen"}
    assert change["fields"]["params.non_trainable"] == {"a": 0, "b": 144}
    assert d["highlights"] == ["%s frozen" % second.layers[0].name,
                               "trainable params 212 \u2192 68"]
    assert np.isclose(d["totals"]["trainable_params"]["delta"], -144)


def test_layer_count_is_one_definition_for_the_timeline():
    """"N layers": non-container modules, not inputs, not functional ops (the header and graph
    count the same way, arch_index.countNodes)."""
    import torch
    from torch import nn

    from tensorboard_archviz.diff import first_entry
    from tensorboard_archviz.extract.torch import extract_torch
    from tensorboard_archviz.totals import node_counts

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 3, 3, padding=1)
            self.c2 = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.c2(self.c1(x)) + x)

    arch = extract_torch(nn.Sequential(Block(), nn.Flatten(), nn.Linear(48, 2)),
                         torch.randn(1, 3, 4, 4))
    assert node_counts(arch) == {"layers": 4, "ops": 2, "inputs": 1, "containers": 1}
    assert ", 4 layers, " in first_entry(arch)["summary"]
