"""Benchmark: extract_torch on a ResNet-152-sized model vs. its bare forward pass (target <= 2 s).

    python bench/bench_torch_extract.py [--runs 5] [--size 224] [--batch 1] [--threads 1]
                                        [--model resnet152|transformer48]

The model is tests/torch_models.py's ResNet with bottleneck blocks [3, 8, 36, 3] (torchvision's
resnet152 layout, 60,192,808 parameters, random weights, no torchvision); --model transformer48:
48 nn.TransformerEncoderLayer blocks (d_model 512, 8 heads, feed-forward 2048, batch first) on
--batch x 128 tokens (fx cannot trace it: the hooks path). Printed side by side,
measured in one process in interleaved rounds after a warm-up (median and best of --runs; the
machine is shared, so the load average is printed too):
  forward      the bare forward pass (eval mode, torch.no_grad)
  extract fx   extract_torch(method="auto"), which uses torch.fx for this model
  extract hooks extract_torch(method="hooks") (the fallback path)
  to_json / architecture_pb   serialising the result (what add_architecture also does)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))   # torch_models.py
sys.path.insert(1, ROOT)                          # the package, when not installed

TARGET_SECONDS = 2.0


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=224, help="input height = width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--model", choices=("resnet152", "transformer48"), default="resnet152")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (0: torch's default); 1 by default because "
                             "on a shared, loaded machine OpenMP threads waiting for each "
                             "other make the forward pass 10x slower and erratic")
    args = parser.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    import torch_models
    from tensorboard_archviz.extract.torch import extract_torch
    from tensorboard_archviz.summary import architecture_pb

    torch.manual_seed(0)
    if args.model == "resnet152":
        model = torch_models.resnet152()
        x = torch.randn(args.batch, 3, args.size, args.size)
        title = "ResNet-152-sized model"
    else:
        layer = torch.nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True)
        model = torch.nn.TransformerEncoder(layer, 48, enable_nested_tensor=False)
        x = torch.randn(args.batch, 128, 512)
        title = "48-block transformer encoder"
    n_params = sum(p.numel() for p in model.parameters())

    def forward():
        model.eval()
        with torch.no_grad():
            model(x)

    cases = {
        "forward": forward,
        "extract fx (auto)": lambda: extract_torch(model, x),
        "extract hooks": lambda: extract_torch(model, x, method="hooks"),
    }
    for fn in cases.values():  # warm-up
        fn()
    # Interleaved rounds, so that load from other processes hits every case alike.
    times = {name: [] for name in cases}
    load = os.getloadavg()[0]
    for _ in range(args.runs):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    arch = extract_torch(model, x)
    times["to_json"] = [timed(arch.to_json) for _ in range(args.runs)]
    times["architecture_pb"] = [timed(lambda: architecture_pb(arch)) for _ in range(args.runs)]

    print("%s: %s params, input %s, torch %s, %d threads, "
          "%d interleaved rounds, load average %.1f on %d CPUs"
          % (title, format(n_params, ","), "x".join(map(str, x.shape)), torch.__version__,
             torch.get_num_threads(), args.runs, load, os.cpu_count() or 0))
    print("extraction: method=%s, %d nodes, %d edges, %s MACs per example, JSON %.0f KB"
          % (arch.extraction["method"], len(arch.nodes), len(arch.edges),
             format(arch.model.macs, ","), len(arch.to_json()) / 1024))
    print("  %-20s %10s %10s %18s" % ("", "median", "best", "median vs forward"))
    fwd = times["forward"]
    for name, ts in times.items():
        ratio = ""
        if name.startswith("extract"):
            ratio = "%+.3f s, %.2fx" % (statistics.median(a - b for a, b in zip(ts, fwd)),
                                        statistics.median(a / b for a, b in zip(ts, fwd)))
        print("  %-20s %9.3fs %9.3fs %18s" % (name, statistics.median(ts), min(ts), ratio))
    worst = max(statistics.median(times["extract fx (auto)"]),
                statistics.median(times["extract hooks"]))
    overhead = max(statistics.median(a - b for a, b in zip(times[k], fwd))
                   for k in ("extract fx (auto)", "extract hooks"))
    if args.model != "resnet152":
        return
    print("target <= %.1f s: %s (slowest extraction path, median: %.3f s; the bare forward "
          "alone: %.3f s; extraction overhead beyond it: %.3f s)"
          % (TARGET_SECONDS, "met" if worst <= TARGET_SECONDS else "NOT met", worst,
             statistics.median(fwd), overhead))


if __name__ == "__main__":
    main()
