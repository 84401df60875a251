"""Benchmark: extract_torch vs torchinfo.summary (the tool people would use instead), same model,
same input, same process (issue 25 item 1: target ratio <= 1.0 for every model).

    python bench/bench_extract_speed.py [--runs 3] [--threads 1] [--only NAME] [--no-profile]
                                        [--cpu] [--baseline DIR]

Models (bench/bench_models.py, random weights): ResNet-50 224², ConvNeXt-Tiny, ViT-B/16,
MobileNetV3-Large, EfficientNet-B0 (torchvision layouts, batch 1 at 224²), a 48-block
transformer encoder (d_model 512, 128 tokens) and a Hugging Face Llama twice, 128 tokens each: a
tiny config (4 layers, hidden 128: a 5 ms forward, where the per-operation cost shows most) and
the published Llama-3.2-1B shapes (a 4 s forward on one thread; 5 GB, 30 s to build).
Per model, interleaved rounds after a warm-up, medians of --runs: the bare forward (eval,
no_grad), ``torchinfo.summary(model, input_data=..., verbose=0)``, ``extract_torch(model,
input)``; the ratio archviz / torchinfo (the median of the per-round ratios). Then, unless
--no-profile, where extract_torch's time goes: its phases timed by wrappers, the least of 3
extractions per phase (the real forward is inside "hooks run", or "fx run" for a model traced
with torch.fx; "(module records)" and "(op records)" are the recording of module calls and
functional ops inside it, timed by wrappers that add their own cost).

--cpu times with the process's CPU clock instead of the wall clock (on a loaded machine the
wall clock mostly measures the other processes). --baseline DIR adds an "archviz before" column
(and its ratio) from an older copy of the package, imported as ``tensorboard_archviz_old`` from
DIR, made e.g. with::

    mkdir -p /tmp/old && git archive HEAD tensorboard_archviz | tar -x -C /tmp/old
    cd /tmp/old && mv tensorboard_archviz tensorboard_archviz_old && grep -rl tensorboard_archviz \
        tensorboard_archviz_old | xargs sed -i 's/\btensorboard_archviz\b/tensorboard_archviz_old/g'
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
sys.path.insert(1, HERE)                          # bench_models.py
sys.path.insert(2, ROOT)

# extract_torch's phases, timed by wrapping these functions (module, attribute, label)
PHASES = [
    ("extract.torch", "_plan", "plan"),
    ("extract.torch_guard", "Guard.__enter__", "guard save"),
    ("extract.torch", "_fx_trace", "fx trace"),
    ("extract.torch_guard", "ModuleState.revert", "state revert"),
    ("extract.torch", "_fx_interpret", "fx run"),
    ("extract.torch", "_run_hooks", "hooks run"),
    ("extract.torch", "_Calls.post", "(module records)"),
    ("extract.torch_graph", "Recorder.op_call", "(op records)"),
    ("extract.torch", "_fx_containers", "containers"),
    ("extract.torch_graph", "build_architecture", "build"),
    ("extract.torch_graph", "_module_nodes", "(module nodes)"),
    ("totals", "fill_totals", "(totals)"),
    ("extract.torch_guard", "Guard.__exit__", "guard restore"),
]
_clock = time.perf_counter


def _call(model, inp):
    return model(**inp) if isinstance(inp, dict) else model(inp)


def _profile(extract, model, inp) -> None:
    """Extractions with each phase wrapped by a timer: the least seconds per phase over 3 runs
    (the phases in parentheses are inside "build"; the forward is inside "fx run" / "hooks
    run")."""
    import importlib

    spent = {}
    saved = []

    def wrap(owner, attr, label):
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t0 = _clock()
            try:
                return fn(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + _clock() - t0
        setattr(owner, attr, timed)
        saved.append((owner, attr, fn))

    for mod, attr, label in PHASES:
        owner = importlib.import_module("tensorboard_archviz." + mod)
        *path, name = attr.split(".")
        for p in path:
            owner = getattr(owner, p)
        wrap(owner, name, label)
    best = {}
    try:
        for _ in range(3):
            spent.clear()
            t0 = _clock()
            extract(model, inp)
            spent["total"] = _clock() - t0
            for k, v in spent.items():
                best[k] = min(best.get(k, v), v)
    finally:
        for owner, attr, fn in reversed(saved):
            setattr(owner, attr, fn)
    spent, total = best, best["total"]
    parts = ["%s %.3f" % (label, spent[label]) for _m, _a, label in PHASES if label in spent]
    print("    where the time goes (s, total %.3f): %s" % (total, ", ".join(parts)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=None, help="run the models whose name contains this")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="time with the process CPU clock")
    parser.add_argument("--baseline", default=None, help="dir holding tensorboard_archviz_old")
    args = parser.parse_args(argv)
    global _clock
    _clock = time.process_time if args.cpu else time.perf_counter

    import torch
    import torchinfo

    import bench_models
    from tensorboard_archviz.extract.torch import extract_torch

    before = None
    if args.baseline:
        sys.path.insert(0, args.baseline)
        from tensorboard_archviz_old.extract.torch import extract_torch as before
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print("torch %s, torchinfo %s, %d thread(s), medians of %d interleaved rounds (%s clock), "
          "load average %.1f on %d CPUs" % (torch.__version__, torchinfo.__version__,
                                             torch.get_num_threads(), args.runs,
                                             "CPU" if args.cpu else "wall",
                                             os.getloadavg()[0], os.cpu_count() or 0))
    print("%-22s %10s %10s %10s %7s %12s %6s%s" % (
        "model", "forward", "torchinfo", "archviz", "ratio", "archviz/fwd", "nodes",
        "   archviz before (ratio)" if before else ""))
    ratios = []
    for name, build, make in bench_models.speed_cases():
        if args.only and args.only.lower() not in name.lower():
            continue
        torch.manual_seed(0)
        model, inp = build().eval(), make()
        ratios.append(_compare(name, model, inp, torchinfo, extract_torch, before, args.runs))
        if not args.no_profile:
            _profile(extract_torch, model, inp)
        del model
    if ratios:
        print("target ratio <= 1.0 for every model: %s (worst %.2fx)"
              % ("met" if max(ratios) <= 1.0 else "NOT met", max(ratios)))


def _compare(name, model, inp, torchinfo, extract_torch, before, runs) -> float:
    """One model's row: interleaved rounds of the forward, torchinfo and extract_torch (and the
    baseline's); returns the ratio archviz / torchinfo."""
    import torch

    def forward():
        with torch.no_grad():
            _call(model, inp)

    cases = {
        "forward": forward,
        "torchinfo": lambda: torchinfo.summary(model, input_data=inp, verbose=0),
        "archviz": lambda: extract_torch(model, inp),
    }
    if before is not None:
        cases["before"] = lambda: before(model, inp)
    for fn in cases.values():
        fn()
    times = {k: [] for k in cases}
    for _ in range(runs):
        for k, fn in cases.items():
            t0 = _clock()
            fn()
            times[k].append(_clock() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    arch = extract_torch(model, inp)

    def ratio(k):  # the ratio of each interleaved round, then the median: load hits both alike
        return statistics.median(a / b for a, b in zip(times[k], times["torchinfo"]))

    extra = "   %9.3fs (%.2fx)" % (med["before"], ratio("before")) if before else ""
    print("%-22s %9.3fs %9.3fs %9.3fs %6.2fx %11.2fx %6d   (%s)%s" % (
        name, med["forward"], med["torchinfo"], med["archviz"], ratio("archviz"),
        med["archviz"] / med["forward"], len(arch.nodes),
        (getattr(arch, "extraction", None) or arch.extra.get("extraction", {}))["method"], extra))
    return ratio("archviz")


if __name__ == "__main__":
    main()
