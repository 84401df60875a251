"""The ResNet-style PyTorch model of bench_filters.py: 10 conv layers with BatchNorm, 32x32x3."""

import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResNetStyle(nn.Module):
    """stem conv 3->16, two blocks of 16, a stride-2 conv 16->32, two blocks of 32, a head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.layer1 = nn.Sequential(Block(16), Block(16))
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(32), nn.ReLU())
        self.layer2 = nn.Sequential(Block(32), Block(32))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.down(self.layer1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


def resnet_style():
    import torch
    torch.manual_seed(0)
    return ResNetStyle()


# ----------------------------------------------------------------------------- quality on it

# What follows each conv (as the filter backend finds it): the BatchNorm, and a ReLU module for
# the stem and the stride-2 conv (the blocks apply F.relu, which is not a module).
def conv_layers(model):
    """[(node id, conv, bn, relu or None)] in model order."""
    out = [("stem.0", model.stem[0], model.stem[1], model.stem[2])]
    for stage, name in ((model.layer1, "layer1"), (None, "down"), (model.layer2, "layer2")):
        if stage is None:
            out.append(("down.0", model.down[0], model.down[1], model.down[2]))
            continue
        for b, block in enumerate(stage):
            out.append(("%s.%d.conv1" % (name, b), block.conv1, block.bn1, None))
            out.append(("%s.%d.conv2" % (name, b), block.conv2, block.bn2, None))
    return out


def digits_32(n_test_fraction=0.2):
    """The demo digits (sklearn's 8x8, upscaled as demo/data.py does) padded to 32x32, grey
    replicated to 3 channels: (x_train (N, 3, 32, 32) float32 in [0, 1], y_train)."""
    import numpy as np
    from data import load_digits_28x28
    x, y, _, _ = load_digits_28x28(n_test_fraction)
    x = np.pad(x[..., 0], ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[:, None], 3, axis=1).astype(np.float32), y


def train_resnet(epochs=3, seed=0):
    """resnet_style() trained a few epochs on the 32x32 digits (Adam, batch 64); returns
    (model in eval mode, x_train, accuracy on the training set)."""
    import numpy as np
    import torch
    torch.manual_seed(seed)
    model = resnet_style()
    x, y = digits_32()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    rng = np.random.RandomState(seed)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # a shared machine: one thread is the fastest here
    try:
        for _ in range(epochs):
            for idx in np.array_split(rng.permutation(len(x)), len(x) // 64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    return model, x, acc


def post_maps(model, node, images):
    """The post-activation maps (N, F, Ho, Wo) of conv ``node`` on images (N, 3, H, W): the
    conv's output through its BatchNorm (inference form) and ReLU module, as the filter
    backend's score sees it."""
    import torch
    conv, bn, relu = {n: (c, b, r) for n, c, b, r in conv_layers(model)}[node]
    got = {}
    h = conv.register_forward_hook(lambda m, i, o: got.__setitem__("y", o))
    try:
        with torch.no_grad():
            model(torch.as_tensor(images))
    finally:
        h.remove()
    with torch.no_grad():
        y = bn(got["y"])
        return (relu(y) if relu is not None else y).numpy()


def interior(model, node):
    """The interior window of a conv (core.interior_window on its centre's gradient support)."""
    import numpy as np
    import torch
    from tensorboard_archviz.filters import core
    conv = {n: c for n, c, _, _ in conv_layers(model)}[node]
    got = {}
    h = conv.register_forward_hook(lambda m, i, o: got.__setitem__("y", o))
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    try:
        model(x)
    finally:
        h.remove()
    y = got["y"]
    ho, wo = y.shape[-2:]
    g, = torch.autograd.grad(y[0, :, ho // 2, wo // 2].sum(), x)
    return core.interior_window((ho, wo), g.abs().sum(1)[0].numpy())
