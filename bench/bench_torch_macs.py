"""Benchmark: per-example MACs of full-size models vs. torch.utils.flop_counter.FlopCounterMode.

    python bench/bench_torch_macs.py [--threads 1] [--tokens 128]

Models (random weights, no download, no torchvision): ResNet-50 and ConvNeXt-Tiny at 224x224
(tests/torch_models.py), ViT-B/16 (transformers' ViTConfig defaults, 224x224), BERT-base
(BertConfig defaults) and a Llama-style decoder (hidden 1024, 12 layers, 16 heads, 4 KV heads,
intermediate 2816, vocab 32000) on --tokens tokens; batch 2 (images: 1), so the per-example
division is exercised.

Printed per model: parameters, extract_torch's model.macs (per example), FlopCounterMode FLOPs / 2
per example with the math attention backend and the MHA fast path off (every product is then an
mm/bmm/addmm it counts), the relative difference (target: within 2 %), FlopCounterMode with the
default CPU kernels (what it reports out of the box: 0 for the fused CPU attention kernel), and
the published figure where there is one (ResNet-50 4.09 G, ConvNeXt-Tiny 4.46 G, ViT-B/16 17.6 G).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(1, ROOT)

PUBLISHED = {"resnet50": 4.09e9, "convnext_tiny": 4.46e9, "vit_b16": 17.56e9}


def _models(tokens: int):
    import torch

    import torch_models as tm
    from transformers import LlamaConfig, LlamaForCausalLM

    ids = torch.randint(0, 30000, (2, tokens))
    llama = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=12,
                        num_attention_heads=16, num_key_value_heads=4, vocab_size=32000)
    return [
        ("resnet50", tm.resnet50, lambda: torch.randn(1, 3, 224, 224)),
        ("convnext_tiny", tm.convnext_tiny, lambda: torch.randn(1, 3, 224, 224)),
        ("vit_b16", lambda: tm.hf_vit(tiny=False),
         lambda: {"pixel_values": torch.randn(1, 3, 224, 224)}),
        ("bert_base", lambda: tm.hf_bert(tiny=False),
         lambda: {"input_ids": ids, "attention_mask": torch.ones_like(ids)}),
        ("llama_style", lambda: LlamaForCausalLM(llama).eval(), lambda: {"input_ids": ids}),
    ]


def _flops(model, inp, math_backend: bool) -> float:
    import contextlib

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(not math_backend and fast)
    kernel = sdpa_kernel(SDPBackend.MATH) if math_backend else contextlib.nullcontext()
    try:
        with torch.no_grad(), kernel, FlopCounterMode(display=False) as counter:
            model(**inp) if isinstance(inp, dict) else model(inp)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops() / 2


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from tensorboard_archviz.extract.torch import extract_torch

    print("load average %.2f (2 shared cores)" % os.getloadavg()[0])
    print("%-14s %12s %16s %16s %8s %16s %10s %8s" % (
        "model", "params", "archviz MACs", "FlopCounter/2", "diff", "FC default/2",
        "published", "extract"))
    for name, build, make in _models(args.tokens):
        torch.manual_seed(0)
        model, inp = build().eval(), make()
        t0 = time.perf_counter()
        arch = extract_torch(model, inp)
        took = time.perf_counter() - t0
        batch = arch.model.batch_size
        ours = arch.model.macs
        ref = _flops(model, inp, True) / batch
        default = _flops(model, inp, False) / batch
        pub = PUBLISHED.get(name)
        print("%-14s %12s %16s %16s %7.2f%% %16s %10s %7.2fs" % (
            name, "{:,}".format(arch.model.total_params), "{:,}".format(ours),
            "{:,.0f}".format(ref), 100.0 * (ours - ref) / ref, "{:,.0f}".format(default),
            "%.2f G" % (pub / 1e9) if pub else "-", took))
        del model


if __name__ == "__main__":
    main()
