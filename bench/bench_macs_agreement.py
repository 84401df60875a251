"""Agreement sweep: extract_torch's model MACs vs torch.utils.flop_counter.FlopCounterMode / 2
(an independent counter of the ATen operations run), at batch 1 (issue 24: within 0.5 %).

    python bench/bench_macs_agreement.py [--threads 1] [--full]

Models: every model the tests build (tests/torch_models.py, the models of tests/test_torch_macs.py
and tests/test_torch_dispatch_macs.py, tiny Hugging Face configs) plus bench/bench_models.py's
windowed-attention vision transformer (Swin-style: shifted windows, relative position bias, the
attention wrapped with ``torch.fx.wrap``), its ViT-B/16, MobileNetV3-Large and EfficientNet-B0
(--full adds ResNet-50 and ConvNeXt-Tiny at 224²). Both at the default method (torch.fx where it
traces) and with method="hooks".

The reference runs with the math attention backend and the MultiheadAttention fast path off, so
every product is an mm / bmm / addmm / convolution FlopCounterMode has a rule for (it has none for
the fused CPU attention kernel and for ``mkldnn_rnn_layer``: the LSTM is checked by hand instead,
7 x (4x20x10 + 4x20x20) = 16,800 per example).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(1, HERE)
sys.path.insert(2, ROOT)


def _cases(full: bool):
    import torch
    from torch import nn

    import bench_models as bm
    import test_torch_dispatch_macs as td
    import test_torch_macs as ttm
    import torch_models as tm

    img = lambda c, s: (lambda: torch.randn(1, c, s, s))  # noqa: E731
    ids = lambda n=16: (lambda: {"input_ids": torch.randint(0, 256, (1, n))})  # noqa: E731
    cases = [
        ("MLP", tm.MLP, img(1, 28)), ("LeNet", tm.lenet, img(1, 28)),
        ("TorchinfoCNN", tm.TorchinfoCNN, img(1, 28)), ("SmallResNet", tm.SmallResNet, img(1, 28)),
        ("DictOutput", tm.DictOutput, lambda: torch.randn(1, 16)),
        ("DictInput", tm.DictInput,
         lambda: {"image": torch.randn(1, 3, 8, 8), "extra": torch.randn(1, 5)}),
        ("DataclassOutput", tm.DataclassOutput, lambda: torch.randn(1, 4)),
        ("CalledTwice", tm.CalledTwice, lambda: torch.randn(1, 8)),
        ("DataDependent", tm.DataDependent, lambda: torch.ones(1, 4)),
        ("SideEffects", tm.SideEffects, img(3, 8)),
        ("TransformerEncoder", tm.transformer_encoder, lambda: torch.randn(6, 1, 32)),
        ("ResNet-50 64²", tm.resnet50, img(3, 64)), ("ConvNeXt-Tiny 64²", tm.convnext_tiny, img(3, 64)),
        ("CrossAttention", ttm.CrossAttention,
         lambda: (torch.randn(1, 5, 16), torch.randn(1, 7, 16))),
        ("TwoBlocks (sdpa)", ttm.TwoBlocks, lambda: torch.randn(1, 6, 16)),
        ("Functional", ttm.Functional, lambda: (torch.randn(1, 3, 5), torch.randn(1, 3, 5))),
        ("conv groups/transposed", lambda: nn.Sequential(
            nn.Conv2d(4, 8, 3, groups=2), nn.ConvTranspose2d(8, 4, 3, stride=2)), img(4, 9)),
        ("Wrapped (fx.wrap)", td.Wrapped, lambda: torch.randn(1, 5, 8)),
        ("MadeInForward", td.MadeInForward, lambda: torch.randn(1, 4)),
        ("HF Llama (tiny)", tm.hf_llama, ids()), ("HF BERT (tiny)", tm.hf_bert, ids()),
        ("HF ViT (tiny)", tm.hf_vit, lambda: {"pixel_values": torch.randn(1, 3, 32, 32)}),
        ("HF GPT-2 (tiny)", tm.hf_gpt2, ids()),
        ("HF T5 (tiny)", tm.hf_t5,
         lambda: {"input_ids": torch.randint(0, 256, (1, 16)),
                  "decoder_input_ids": torch.randint(0, 256, (1, 8))}),
        ("Swin-style (fx.wrap)", bm.SwinTiny, img(3, 224)),
        ("ViT-B/16", bm.VisionTransformer, img(3, 224)),
        ("MobileNetV3-Large", bm.MobileNetV3, img(3, 224)),
        ("EfficientNet-B0", bm.EfficientNet, img(3, 224)),
    ]
    if full:
        cases += [("ResNet-50 224²", tm.resnet50, img(3, 224)),
                  ("ConvNeXt-Tiny 224²", tm.convnext_tiny, img(3, 224))]
    return cases


def _reference(model, inp) -> float:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter:
            if isinstance(inp, dict):
                model(**inp)
            else:
                model(*inp) if isinstance(inp, tuple) else model(inp)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops() / 2


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from tensorboard_archviz.extract.torch import extract_torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print("%-24s %14s %14s %9s %9s %7s" % ("model (batch 1)", "archviz MACs", "FlopCounter/2",
                                          "default", "hooks", "method"))
    worst = 0.0
    for name, build, make in _cases(args.full):
        torch.manual_seed(0)
        model, inp = build().eval(), make()
        arch = extract_torch(model, inp)  # first: a lazy / made-in-forward weight exists after
        ref = _reference(model, inp) / arch.model.batch_size
        hooks = extract_torch(model, inp, method="hooks")
        ratios = [a.model.macs / ref if ref else float("nan") for a in (arch, hooks)]
        complete = all(a.model.macs_complete for a in (arch, hooks))
        worst = max([worst] + [abs(r - 1) for r in ratios if r == r])
        print("%-24s %14s %14s %9.5f %9.5f %7s%s" % (
            name, "{:,}".format(arch.model.macs), "{:,.0f}".format(ref), ratios[0], ratios[1],
            arch.extraction["method"], "" if complete else "  (at least: unknown inside)"))
    lstm = torch.nn.Sequential(torch.nn.LSTM(10, 20))
    got = extract_torch(lstm, torch.randn(7, 1, 10), batch_size=1).model.macs
    print("%-24s %14s %14s %9.5f %9s %7s" % ("LSTM (by hand)", "{:,}".format(got), "16,800",
                                            got / 16800, "-", "-"))
    worst = max(worst, abs(got / 16800 - 1))
    print("largest difference: %.3f %% (target: within 0.5 %%)" % (100 * worst))


if __name__ == "__main__":
    main()
