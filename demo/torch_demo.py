"""PyTorch demo: trains an MLP and a small residual CNN briefly and writes them for Arch Viz.

    python demo/torch_demo.py [--logdir logs] [--epochs 3] [--dataset digits|fashion_mnist]
                              [--writer torch|tensorboardX] [--filters auto|yes|no]
    tensorboard --logdir logs        # then open the "Arch Viz" tab

Runs ``torch_mlp`` (the PyTorch quickstart network: Flatten, Linear 784-512, ReLU, Linear
512-512, ReLU, Linear 512-10; 669,706 parameters) and ``torch_resnet`` (a stem conv, one residual
block, a strided conv, a linear head). Each run gets a ``SummaryWriter`` at
``<logdir>/<name>`` with training loss / test accuracy scalars and ``add_architecture`` at the
first and the last step; for the CNN, ``add_filter_grids`` writes its conv layers' filter grids
after training when ``tensorboard_archviz.filters.torch_backend`` is available. The default data
set is scikit-learn's digits upsampled to 28x28 (no download).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)                       # data.py
sys.path.insert(1, os.path.dirname(HERE))      # the package, when not installed


def load_data(name: str):
    """(x_train, y_train, x_test, y_test) as torch tensors, images N x 1 x 28 x 28 in [0, 1]."""
    import numpy as np
    import torch

    try:
        from data import load_dataset
    except ImportError:  # demo/data.py missing: the same offline digits, made here
        if name != "digits":
            raise
        load_dataset = _load_digits
    x_train, y_train, x_test, y_test = load_dataset(name)

    def images(x):
        return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)), np.float32))

    return (images(x_train), torch.from_numpy(y_train.astype(np.int64)),
            images(x_test), torch.from_numpy(y_test.astype(np.int64)))


def _load_digits(_name="digits"):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = np.zeros((len(d.images), 28, 28, 1), np.float32)
    for i, img in enumerate(d.images.astype(np.float32) / 16.0):
        out[i, 4:24, 4:24, 0] = np.asarray(Image.fromarray(img, mode="F").resize((20, 20)))
    np.clip(out, 0, 1, out=out)
    order = np.random.default_rng(0).permutation(len(out))
    test, train = order[:360], order[360:]
    return out[train], d.target[train], out[test], d.target[test]


def build_models():
    import torch.nn.functional as F
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.linear_relu_stack = nn.Sequential(
                nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 10))

        def forward(self, x):
            return self.linear_relu_stack(self.flatten(x))

    class ResidualBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + x)  # the skip connection

    class ResidualCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16),
                                      nn.ReLU(), nn.MaxPool2d(2))
            self.block = ResidualBlock(16)
            self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(32 * 7 * 7, 10)

        def forward(self, x):
            x = self.block(self.stem(x))
            x = F.relu(self.down(x))
            return self.fc(self.flatten(x))

    return {"torch_mlp": MLP(), "torch_resnet": ResidualCNN()}


def _filters_available() -> bool:
    try:
        import tensorboard_archviz.filters.torch_backend  # noqa: F401
    except ImportError:
        return False
    return True


def make_writer(kind: str, logdir: str):
    if kind == "tensorboardX":
        from tensorboardX import SummaryWriter
    else:
        from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter(logdir)


def train(name, model, data, logdir, epochs, writer_kind="torch", filters=False,
          batch_size=64, lr=1e-3):
    """Train with Adam, logging scalars and the architecture into <logdir>/<name>."""
    import torch
    import torch.nn.functional as F

    from tensorboard_archviz import add_architecture, add_filter_grids

    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = data
    run_dir = os.path.join(logdir, name)
    writer = make_writer(writer_kind, run_dir)
    example = x_train[:1]
    start = time.time()
    try:
        arch = add_architecture(writer, model, example, global_step=0)
        print("%s: %s, %d params, %d nodes, %d edges (extraction: %s)"
              % (name, arch.model.class_name, arch.model.total_params, len(arch.nodes),
                 len(arch.edges), arch.extraction["method"]))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        step = 0
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(x_train))
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step % 5 == 0:
                    writer.add_scalar("train/loss", loss.item(), step)
            model.eval()
            with torch.no_grad():
                acc = (model(x_test).argmax(1) == y_test).float().mean().item()
            writer.add_scalar("test/accuracy", acc, step)
            print("%s: epoch %d, loss %.3f, test accuracy %.3f" % (name, epoch + 1, loss.item(), acc))
        add_architecture(writer, model, example, global_step=step)
        if filters:
            written = add_filter_grids(writer, model, global_step=step,
                                       input_shape=(1, 28, 28), time_budget=120,
                                       log=print, fast=True)
            print("%s: filter grids for %s" % (name, ", ".join(written) or "no layer"))
    finally:
        writer.close()
    print("%s: done in %.1f s -> %s" % (name, time.time() - start, run_dir))
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", choices=("digits", "fashion_mnist"), default="digits")
    parser.add_argument("--writer", choices=("torch", "tensorboardX"), default="torch")
    parser.add_argument("--filters", choices=("auto", "yes", "no"), default="auto",
                        help="filter grids for the CNN (auto: when the backend is installed)")
    args = parser.parse_args(argv)
    filters = {"yes": True, "no": False, "auto": _filters_available()}[args.filters]
    data = load_data(args.dataset)
    for name, model in build_models().items():
        train(name, model, data, args.logdir, args.epochs, args.writer,
              filters=filters and name == "torch_resnet",
              lr=3e-3 if name == "torch_resnet" else 1e-3)
    print("tensorboard --logdir %s   # then open the Arch Viz tab" % args.logdir)


if __name__ == "__main__":
    main()
