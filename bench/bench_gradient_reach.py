"""Gradient reach speed on ResNet-50 (tests/torch_models.py, batch 1, 224 px), side by side
with a plain forward + ``torch.autograd.grad`` of the same scalar (the floor: everything above
it is recording which modules ran, the copy-on-write guard, setting hooks aside and restoring).

    python bench/bench_gradient_reach.py [runs]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_models import resnet50  # noqa: E402

from tensorboard_archviz import gradient_reach  # noqa: E402
import timing  # noqa: E402  (bench/)


def plain(model, x):
    model.train()
    out = model(x)
    scalar = (out.reshape(-1) * (0.5 + (torch.arange(out.numel()) % 97).float() / 97)).sum()
    torch.autograd.grad(scalar, [p for p in model.parameters() if p.requires_grad],
                        allow_unused=True)
    model.eval()


timed = timing.min_and_median  # (least, median) seconds of `runs` calls


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    torch.manual_seed(0)
    model = resnet50().eval()
    x = torch.randn(2, 3, 224, 224)
    assert gradient_reach.compute(model, x)["status"] == "ok"
    base, base_med = timed(lambda: plain(model, x), runs)
    reach, reach_med = timed(lambda: gradient_reach.compute(model, x), runs)
    print("ResNet-50, batch 2, 224 px, %d runs (min / median):" % runs)
    print("  forward + autograd.grad  %.3f s / %.3f s" % (base, base_med))
    print("  gradient_reach.compute   %.3f s / %.3f s  (%.2fx the plain pass)"
          % (reach, reach_med, reach / base))


if __name__ == "__main__":
    main()
