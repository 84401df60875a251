"""Benchmark: extract_torch on meta-device LLMs (no weights allocated) vs. a real-weights ResNet-152.

    python bench/bench_meta_device.py [--runs 3] [--tokens 16] [--threads 1]

Each case runs in its own subprocess so that its peak RSS (ru_maxrss, printed) is its own:
  llama3-8b-meta    LlamaForCausalLM(Llama-3-8B config) built under torch.device("meta"),
                    input_ids [1, tokens] on meta (targets: <= 1.5 s)
  llama3-70b-meta   Llama-3-70B config (80 layers, hidden 8192, intermediate 28672, 64 heads,
                    8 KV heads, vocab 128256): params must be exactly 70,553,706,496
                    (targets: <= 5 s, <= 2 GB peak RSS)
  resnet152-real    tests/torch_models.py's ResNet-152 with real random weights, 1x3x224x224
Printed per case: build time, first extraction (cold: meta kernels and imports warm up),
median and best of --runs warm extractions, the bare forward (eval, no_grad), parameters,
nodes, MACs per example, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

LLAMA = {
    "llama3-8b-meta": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
    "llama3-70b-meta": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                            num_attention_heads=64, num_key_value_heads=8, vocab_size=128256),
}
CASES = ("llama3-8b-meta", "llama3-70b-meta", "resnet152-real")


def _case(name: str, runs: int, tokens: int, threads: int) -> dict:
    import resource
    import statistics
    import time

    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    sys.path.insert(1, ROOT)
    from tensorboard_archviz.extract.torch import extract_torch

    t0 = time.perf_counter()
    if name in LLAMA:
        from transformers import LlamaConfig, LlamaForCausalLM

        with torch.device("meta"):
            model = LlamaForCausalLM(LlamaConfig(**LLAMA[name]))
        inp = {"input_ids": torch.zeros(1, tokens, dtype=torch.long, device="meta")}
    else:
        import torch_models

        torch.manual_seed(0)
        model = torch_models.resnet152().eval()
        inp = torch.randn(1, 3, 224, 224)
    build = time.perf_counter() - t0

    def forward():
        with torch.no_grad():
            model(**inp) if isinstance(inp, dict) else model(inp)

    t0 = time.perf_counter()
    arch = extract_torch(model, inp)
    first = time.perf_counter() - t0
    warm, bare = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        extract_torch(model, inp)
        warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        forward()
        bare.append(time.perf_counter() - t0)
    return {"case": name, "build_s": build, "first_s": first,
            "median_s": statistics.median(warm), "best_s": min(warm),
            "forward_s": statistics.median(bare), "params": arch.model.total_params,
            "nodes": len(arch.nodes), "macs": arch.model.macs,
            "method": arch.extraction["method"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(_case(args.case, args.runs, args.tokens, args.threads)))
        return
    print("load average %.2f (2 shared cores)" % os.getloadavg()[0])
    print("%-16s %7s %7s %7s %7s %7s %16s %6s %18s %6s %9s" % (
        "case", "build", "first", "median", "best", "forward", "params", "nodes",
        "MACs/example", "method", "peak RSS"))
    for name in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", name, "--runs", str(args.runs),
                              "--tokens", str(args.tokens), "--threads", str(args.threads)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print("%-16s failed: %s" % (name, out.stderr.strip().splitlines()[-1:]))
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print("%-16s %6.2fs %6.2fs %6.2fs %6.2fs %6.2fs %16s %6d %18s %6s %7.0f MB" % (
            r["case"], r["build_s"], r["first_s"], r["median_s"], r["best_s"], r["forward_s"],
            "{:,}".format(r["params"]), r["nodes"], "{:,}".format(r["macs"]), r["method"],
            r["peak_rss_mb"]))
        if name == "llama3-70b-meta":
            ok = r["params"] == 70_553_706_496
            print("  70B params exactly 70,553,706,496: %s" % ("yes" if ok else "NO"))
    print("targets: 8B <= 1.5 s; 70B <= 5 s and <= 2 GB peak RSS (extraction times; first = cold)")


if __name__ == "__main__":
    main()
