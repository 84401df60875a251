"""Benchmark: a saved program read the CLI's default way (fake tensors + operator allowlist,
``torch_saved.without_real_storage``) vs. on real tensors (``--unsafe``), side by side.

    python bench/bench_saved_programs.py [--runs 3] [--threads 1]

Models (tests/torch_models.py, random weights): ResNet-50 (batch 1, 224x224) as a torch.export
program and as a scripted TorchScript module, and a 6-layer nn.TransformerEncoder scripted (batch
2 x 64 tokens). For each: the extraction time on real tensors, under the sandbox, the ratio, and
whether the two documents are equal (they must be). Median of --runs after a warm-up; the load
average is printed because the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(1, ROOT)


def _median_time(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _cases():
    import torch
    from torch import nn

    import torch_models as tm

    torch.manual_seed(0)
    resnet, x = tm.resnet50().eval(), torch.randn(1, 3, 224, 224)
    layer = nn.TransformerEncoderLayer(128, 4, 256, batch_first=True)
    trf = nn.TransformerEncoder(layer, 6, enable_nested_tensor=False).eval()
    tokens = torch.randn(2, 64, 128)
    return [("resnet50 .pt2", "export", torch.export.export(resnet, (x,)), None),
            ("resnet50 script", "script", torch.jit.script(resnet), x),
            ("transformer6 script", "script", torch.jit.script(trf), tokens)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from tensorboard_archviz.extract import torch_saved

    torch.set_num_threads(args.threads)
    print("load average %.2f %.2f %.2f; torch %s; %d thread(s)"
          % (os.getloadavg() + (torch.__version__, args.threads)))
    print("%-22s %10s %10s %7s %s" % ("model", "real s", "sandbox s", "ratio", "same document"))
    for name, kind, program, x in _cases():
        def real():
            if kind == "export":
                return torch_saved.extract_exported_program(program, x)
            return torch_saved.extract_torchscript(program, x)

        def sandboxed():
            with torch_saved.without_real_storage():
                return real()

        real(), sandboxed()  # warm-up
        t_real, a = _median_time(real, args.runs)
        t_fake, b = _median_time(sandboxed, args.runs)
        print("%-22s %10.2f %10.2f %7.2f %s" % (name, t_real, t_fake, t_fake / t_real,
                                                a.to_dict() == b.to_dict()))


if __name__ == "__main__":
    main()
