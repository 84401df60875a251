"""Benchmark: training-time overhead of the layer signals' defaults, Keras and PyTorch, one run.

    python bench/bench_signals.py [--repeats 2] [--samples 6000] [--epochs 3]
                                  [--torch-steps 200] [--every 100]

1. Keras: the demo's LeNet (1,256,080 params) fit for ``--epochs`` epochs on ``--samples``
   digits (scikit-learn's, upsampled to 28x28; no download), batch 32, with
   ``ArchVizCallback(layer_signals_every=None)`` (architecture only) against the default
   ``ArchVizCallback()`` (signals at on_train_begin and every epoch end: weight RMS and update
   ratios).
2. PyTorch: a ResNet-18-style network (BasicBlocks [2, 2, 2, 2], widths 16-32-64-128, 3x32x32
   inputs, batch 16, SGD) for ``--torch-steps`` steps, without signals against
   ``add_layer_signals(writer, model, step, input_to_model=x[:8])`` every ``--every`` steps
   (the defaults: weights, updates, gradients, activations on 8 examples), after backward().
3. The cost of ONE write of each signal group (opt-ins included), median of 3, on both models
   (Keras: the LeNet with a batch of 32; PyTorch: the ResNet-18-style net with 8 examples),
   beside the time of one training step: what each opt-in costs.

The arms alternate (first order flipped every repeat); each prints the median of the per-pair
wall-time ratios (signals / none; target <= 1.01) and the time spent inside the signals calls
themselves (their own cost, free of the noise other processes add on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "demo"))
sys.path.insert(1, ROOT)

import numpy as np  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Keras


def keras_data(samples: int):
    from data import load_digits_28x28

    x, y, _, _ = load_digits_28x28()
    reps = -(-samples // len(x))
    return np.tile(x, (reps, 1, 1, 1))[:samples], np.tile(y, reps)[:samples]


def keras_fit(x, y, logdir: str, signals: bool, epochs: int):
    """(wall seconds of fit, seconds inside the signal writes)."""
    from keras_models import build_lenet, compile_classifier
    from tensorboard_archviz import ArchVizCallback

    model = compile_classifier(build_lenet())
    cb = ArchVizCallback(log_dir=logdir) if signals else \
        ArchVizCallback(log_dir=logdir, layer_signals_every=None)
    inside = [0.0]
    original = cb._write_signals

    def timed(step):
        start = time.perf_counter()
        try:
            return original(step)
        finally:
            inside[0] += time.perf_counter() - start
    cb._write_signals = timed
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[cb])
    wall = time.perf_counter() - start
    assert not signals or len(cb.signals_steps) == epochs + 1, cb.signals_steps
    return wall, inside[0]


# ---------------------------------------------------------------------------------------------
# PyTorch


def resnet18_style():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet18Style(nn.Module):
        def __init__(self, widths=(16, 32, 64, 128), classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU()
            layers, cin = [], widths[0]
            for i, w in enumerate(widths):
                layers.append(nn.Sequential(Block(cin, w, 1 if i == 0 else 2), Block(w, w, 1)))
                cin = w
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.pool(x), 1))

    return ResNet18Style()


def torch_loop(logdir: str, signals: bool, steps: int, every: int):
    """(wall seconds of the loop, seconds inside add_layer_signals)."""
    import torch
    from torch import nn

    from tensorboard_archviz import add_architecture, add_layer_signals
    from tensorboard_archviz.summary import ArchVizWriter

    torch.manual_seed(0)
    model = resnet18_style()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(8, 16, 3, 32, 32, generator=g)
    ys = torch.randint(0, 10, (8, 16), generator=g)
    inside = 0.0
    with ArchVizWriter(logdir) as writer:
        add_architecture(writer, model, xs[0][:2])
        start = time.perf_counter()
        for step in range(steps):
            x, y = xs[step % 8], ys[step % 8]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if signals and step % every == 0:
                t0 = time.perf_counter()
                add_layer_signals(writer, model, step, input_to_model=x[:8])
                inside += time.perf_counter() - t0
            opt.step()
        wall = time.perf_counter() - start
    return wall, inside


# ---------------------------------------------------------------------------------------------


def pairs(run, repeats: int):
    """Alternating arms: [(none, signals)] of (wall, inside) per repeat."""
    out = []
    for i in range(repeats):
        got = {}
        for arm in ((False, True) if i % 2 == 0 else (True, False)):
            got[arm] = run(arm, i)
        out.append((got[False], got[True]))
    return out


def report(name: str, results) -> None:
    ratios = [s[0] / n[0] for n, s in results]
    for i, ((n, s), r) in enumerate(zip(results, ratios)):
        print("  %s pair %d: none %.2f s, signals %.2f s (ratio %.4f), %.1f ms inside the "
              "signal writes" % (name, i + 1, n[0], s[0], r, 1000 * s[1]))
    base = statistics.median(n[0] for n, _ in results)
    inside = statistics.median(s[1] for _, s in results)
    print("%s: wall ratio signals/none %.4f (median of %d pairs); signals' own time %.1f ms = "
          "%.3f %% of training, own-cost ratio %.4f  (target <= 1.01)"
          % (name, statistics.median(ratios), len(ratios), 1000 * inside, 100 * inside / base,
             1 + inside / base))


def median_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_write_costs(x, y) -> None:
    """One write of each group on both models, beside one training step."""
    import torch
    from torch import nn

    from keras_models import build_lenet, compile_classifier
    from tensorboard_archviz.signals import keras as sk
    from tensorboard_archviz.signals import torch as stt

    groups = ("weights", "updates", "gradients", "activations", "time", "backward_time")
    model = compile_classifier(build_lenet())
    batch = (x[:32], y[:32])
    step = median_seconds(lambda: model.train_on_batch(*batch))
    state = sk.KerasSignalState()
    cells = ["%s %.1f ms" % (g, 1e3 * median_seconds(
        lambda g=g: sk.compute_keras(model, batch, (g,), state))) for g in groups[:5]]
    print("  Keras LeNet, one write per group (batch 32; one train step %.1f ms): %s"
          % (1e3 * step, ", ".join(cells)))
    net = resnet18_style()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    xb, yb = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))

    def train_step():
        opt.zero_grad()
        nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
    step = median_seconds(train_step)
    tstate = stt.TorchSignalState()
    cells = ["%s %.1f ms" % (g, 1e3 * median_seconds(
        lambda g=g: stt.compute_torch(net, xb[:8], (g,), tstate))) for g in groups]
    print("  PyTorch ResNet-18-style, one write per group (8 examples; one train step of 16 "
          "%.1f ms): %s" % (1e3 * step, ", ".join(cells)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--torch-steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads (1: no spinning threads fighting the other "
                         "processes of a shared machine; 0 keeps torch's default)")
    args = ap.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    x, y = keras_data(args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        keras_fit(x[:256], y[:256], os.path.join(tmp, "warm_k"), True, 1)  # imports, tracing
        torch_loop(os.path.join(tmp, "warm_t"), True, 2, 1)
        k = pairs(lambda arm, i: keras_fit(x, y, os.path.join(tmp, "k%d%d" % (i, arm)), arm,
                                           args.epochs), args.repeats)
        t = pairs(lambda arm, i: torch_loop(os.path.join(tmp, "t%d%d" % (i, arm)), arm,
                                            args.torch_steps, args.every), args.repeats)
    print("Layer signals' default overhead, side by side (%d alternating pairs each):"
          % args.repeats)
    report("Keras LeNet fit, %d epochs x %d samples, ArchVizCallback() default"
           % (args.epochs, args.samples), k)
    report("PyTorch ResNet-18-style loop, %d steps, add_layer_signals every %d steps"
           % (args.torch_steps, args.every), t)
    print("What each signal group costs per write (opt-ins: gradients and activations on Keras, "
          "time, backward_time):")
    per_write_costs(x, y)


if __name__ == "__main__":
    main()
