"""Benchmark: the architecture route's cached bytes (issue 25) and the signals route at scale
(issue 23), against a real TensorBoard (Rust loader).

    python bench/bench_routes.py [--requests 20] [--steps 1000] [--layers 80] [--skip-70b]

1. Architecture: the Llama-3-70B document (LlamaForCausalLM with the Llama-3-70B config built on
   the meta device, extracted with extract_torch: about 3,700 nodes, 2 MB of JSON; as in
   bench/bench_meta_device.py) is written to a run. Printed: the first (cold) request, then
   ``--requests`` warm requests each way — gzip accepted, identity (no gzip), and a reload with
   ``If-None-Match`` (304) — median and p95 in ms and bytes on the wire. Target: <= 50 ms warm.
2. Signals: a run of an 80-layer Llama-style model (10 nodes per layer: about 800 node ids) with
   the default signal groups (weights, updates, gradients on the 9 parameterised nodes of each
   layer; activations mean/std/zero/saturated on all) at ``--steps`` steps, written with
   ``summary.signals_pb``; served with ``--samples_per_plugin=archviz=<steps>``. Printed: the
   first request (cold: one bounded read, decode, findings), warm requests with and without
   ``signal=``, the answer's steps / total / downsampled and its bytes.

Client and server share the (two-core, busy) machine: figures are a floor.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_load import PLUGIN, TensorBoard  # noqa: E402

from tensorboard_archviz import summary  # noqa: E402

LLAMA_70B = dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                 num_attention_heads=64, num_key_value_heads=8, vocab_size=128256)
SUBLAYERS = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
             "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
             "mlp.down_proj", "mlp.act_fn")


def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            body, status, hdrs = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        body, status, hdrs = e.read(), e.code, dict(e.headers)
    return status, body, hdrs, (time.perf_counter() - t0) * 1000


def llama70b_arch():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tensorboard_archviz.extract.torch import extract_torch

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**LLAMA_70B))
    inp = {"input_ids": torch.zeros(1, 16, dtype=torch.long, device="meta")}
    return extract_torch(model, inp)


def signals_doc(step, layers, rng):
    params = ["layers.%d.%s" % (i, s) for i in range(layers) for s in SUBLAYERS[:9]]
    nodes = ["layers.%d.%s" % (i, s) for i in range(layers) for s in SUBLAYERS]

    def v(scale):
        return float("%.6g" % (scale * (0.5 + rng.random())))

    return {"version": 1, "meta": {"framework": "torch", "notes": []}, "signals": {
        "weights.rms": {n: v(0.02) for n in params},
        "updates.ratio": {n: v(1e-3) for n in params},
        "gradients.rms": {n: v(1e-4 * (1 + step / 1000)) for n in params},
        "activations.mean": {n: v(0.1) for n in nodes},
        "activations.std": {n: v(1.0) for n in nodes},
        "activations.zero_fraction": {n: v(0.01) for n in nodes},
        "activations.saturated_fraction": {n: 0.0 for n in nodes}}}


def stats(ms):
    ms = sorted(ms)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def bench_architecture(url, run, n):
    base = url + PLUGIN + "/architecture?run=" + run
    status, body, hdrs, cold = fetch(base, {"Accept-Encoding": "gzip"})
    assert status == 200, body[:200]
    etag = hdrs["ETag"]
    plain = fetch(base)[1]
    assert gzip.decompress(body) == plain
    print("architecture route, %s: %s bytes of JSON, %s gzipped; cold first request %.0f ms"
          % (run, format(len(plain), ","), format(len(body), ","), cold))
    print("  %-34s %9s %9s %12s" % ("warm request", "median", "p95", "bytes"))
    for label, headers, code in (
            ("gzip accepted, no ETag", {"Accept-Encoding": "gzip"}, 200),
            ("identity (no gzip), no ETag", {}, 200),
            ("reload with If-None-Match (304)", {"Accept-Encoding": "gzip",
                                                 "If-None-Match": etag}, 304)):
        times, size = [], 0
        for _ in range(n):
            status, body, _, ms = fetch(base, headers)
            assert status == code, (status, body[:200])
            times.append(ms)
            size = len(body)
        med, p95 = stats(times)
        print("  %-34s %7.1f ms %7.1f ms %12s" % (label, med, p95, format(size, ",")))
    print("  target: <= 50 ms warm for the 2 MB document")


def bench_signals(url, run, n, steps):
    base = url + PLUGIN + "/signals?run=" + run
    status, body, hdrs, cold = fetch(base, {"Accept-Encoding": "gzip"})
    assert status == 200, body[:300]
    answer = json.loads(gzip.decompress(body) if hdrs.get("Content-Encoding") == "gzip" else body)
    nodes = len({n for rows in answer["series"].values() for n in rows})
    print("signals route, %s: %d node ids, %d steps written; answer: %d steps of %d "
          "(downsampled %s), %d findings, notes %r"
          % (run, nodes, steps, len(answer["steps"]), answer["total_steps"],
             answer["downsampled"], len(answer["findings"]), answer["notes"]))
    print("  cold first request (all keys) %.0f ms, %s bytes gzipped" % (cold, format(len(body), ",")))
    print("  %-34s %10s %9s %9s %12s %6s" % ("request", "first", "median", "p95",
                                              "bytes (gzip)", "steps"))
    for label, query in (("all keys", ""), ("signal=gradients.rms", "&signal=gradients.rms"),
                         ("signal=gradients.rms&max_steps=200",
                          "&signal=gradients.rms&max_steps=200")):
        times, size = [], 0
        for _ in range(n + 1):
            status, body, hdrs, ms = fetch(base + query, {"Accept-Encoding": "gzip"})
            assert status == 200, body[:200]
            times.append(ms)
            size = len(body)
        shown = len(json.loads(gzip.decompress(body))["steps"])
        med, p95 = stats(times[1:])
        print("  %-34s %7.0f ms %6.1f ms %6.1f ms %12s %6d" % (label, times[0], med, p95,
                                                             format(size, ","), shown))
    print("  first = cold for that query (read, decode, findings, JSON); then served from the "
          "cache")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--skip-70b", action="store_true")
    args = parser.parse_args(argv)
    print("load average %.2f (2 shared cores)" % os.getloadavg()[0])
    root = tempfile.mkdtemp(prefix="bench_routes_")
    try:
        t0 = time.perf_counter()
        if not args.skip_70b:
            arch = llama70b_arch()
            with summary.ArchVizWriter(os.path.join(root, "llama70b")) as w:
                w.add_architecture(arch, step=0)
            print("Llama-3-70B document: %d nodes, extracted and written in %.1f s"
                  % (len(arch.nodes), time.perf_counter() - t0))
        t0 = time.perf_counter()
        rng = random.Random(0)
        with summary.ArchVizWriter(os.path.join(root, "signals")) as w:
            for k in range(args.steps):
                w.add_summary(summary.signals_pb(signals_doc(k, args.layers, rng)), step=100 * k)
        size = sum(os.path.getsize(os.path.join(root, "signals", f))
                   for f in os.listdir(os.path.join(root, "signals")))
        print("signals run: %d layers x %d steps written in %.1f s (%.0f MB of event file)"
              % (args.layers, args.steps, time.perf_counter() - t0, size / 1e6))
        tb = TensorBoard(root, load_fast=True, samples=max(100, args.steps))
        try:
            t0 = time.perf_counter()
            while True:
                try:
                    status, body, _, _ = fetch(tb.url + PLUGIN + "/runs")
                except OSError:  # not listening yet
                    status, body = 0, b""
                runs = json.loads(body) if status == 200 else {}
                if runs.get("signals", {}).get("signals") and (
                        args.skip_70b or runs.get("llama70b", {}).get("steps")):
                    status, body, _, _ = fetch(tb.url + PLUGIN + "/signals?run=signals&max_steps=1")
                    if status == 200 and json.loads(body)["total_steps"] >= args.steps:
                        break
                if time.perf_counter() - t0 > 900:
                    raise RuntimeError("TensorBoard did not load the runs in 900 s")
                time.sleep(2)
            print("TensorBoard loaded the runs in %.0f s" % (time.perf_counter() - t0))
            if not args.skip_70b:
                bench_architecture(tb.url, "llama70b", args.requests)
            bench_signals(tb.url, "signals", max(3, args.requests // 4), args.steps)
        finally:
            tb.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
