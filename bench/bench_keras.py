"""Benchmark: ArchVizCallback overhead on a 3-epoch MLP fit, and Keras extraction time.

    python bench/bench_keras.py [--repeats 5] [--samples 60000] [--extract-repeats 5]
                                [--baseline REV] [--extract-only]

1. Callback overhead: the Fashion-MNIST-style MLP (25,450 params) is fit for 3 epochs on
   ``--samples`` images (default 20,000; scikit-learn's digits upsampled to 28x28 and tiled, no
   download; ``--samples 60000`` is Fashion-MNIST's training-set size), batch 32, with and without ``ArchVizCallback`` (plus
   Keras' own TensorBoard callback in both arms, as in real use). The two arms alternate, each
   repeat builds and compiles a fresh model, and the medians of the per-pair wall-time and
   process-CPU-time ratios are reported, together with the time spent inside the callback's own
   hooks (the callback's own cost, free of the noise other processes add on a shared machine).
2. Extraction: ``extract_keras`` of ``keras.applications.ResNet152(weights=None)`` and of a
   48-block transformer (functional, and built from custom block layers), median of several,
   side by side with the extractor of git revision ``--baseline`` (loaded with ``git show``), the
   two alternating in one process (``--extract-only`` skips the fits).

Targets: overhead <= 1 %, ResNet152 extraction <= 1 s.
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


def make_data(samples: int):
    from data import load_digits_28x28

    x, y, _, _ = load_digits_28x28()
    reps = -(-samples // len(x))
    return np.tile(x, (reps, 1, 1, 1))[:samples], np.tile(y, reps)[:samples]


class TimedArchViz:
    """Wraps ArchVizCallback's hooks to add up the time spent inside them."""

    def __init__(self, cb):
        self.cb, self.seconds = cb, 0.0
        for name in ("on_train_begin", "on_epoch_end", "on_train_end"):
            setattr(cb, name, self._timed(getattr(cb, name)))

    def _timed(self, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return wrapper


def one_fit(x, y, logdir, with_archviz: bool):
    import keras

    from keras_models import build_mlp, compile_classifier
    from tensorboard_archviz import ArchVizCallback

    model = compile_classifier(build_mlp())
    callbacks = [keras.callbacks.TensorBoard(log_dir=logdir)]
    timed = None
    if with_archviz:
        timed = TimedArchViz(ArchVizCallback(log_dir=logdir))
        callbacks.append(timed.cb)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=callbacks)
    return (time.perf_counter() - start, time.process_time() - cpu,
            timed.seconds if timed else 0.0)


def bench_overhead(repeats: int, samples: int) -> None:
    x, y = make_data(samples)
    with tempfile.TemporaryDirectory() as tmp:
        one_fit(x[:512], y[:512], os.path.join(tmp, "warm"), True)   # imports, first tracing
        ratios, cpu_ratios, base, withcb, inside = [], [], [], [], []
        for i in range(repeats):
            order = (False, True) if i % 2 == 0 else (True, False)
            got = {}
            for arm in order:
                got[arm] = one_fit(x, y, os.path.join(tmp, "r%d_%d" % (i, arm)), arm)
            base.append(got[False][0])
            withcb.append(got[True][0])
            inside.append(got[True][2])
            ratios.append(got[True][0] / got[False][0])
            cpu_ratios.append(got[True][1] / got[False][1])
            print("  pair %d: wall without %.3f s, with %.3f s (ratio %.4f); CPU ratio %.4f; "
                  "%.1f ms inside the callback" % (i + 1, got[False][0], got[True][0],
                                                   ratios[-1], cpu_ratios[-1],
                                                   1000 * got[True][2]))
    med_ratio = statistics.median(ratios)
    med_cpu = statistics.median(cpu_ratios)
    med_inside = statistics.median(inside)
    med_base = statistics.median(base)
    print("callback overhead, 3-epoch MLP fit on %d samples (median of %d alternating pairs):"
          % (samples, repeats))
    print("  wall: without %.3f s, with %.3f s, ratio with/without %.4f (%+.2f %%)"
          % (med_base, statistics.median(withcb), med_ratio, 100 * (med_ratio - 1)))
    print("  process CPU time ratio with/without %.4f (%+.2f %%)" % (med_cpu,
                                                                   100 * (med_cpu - 1)))
    print("  time inside ArchVizCallback hooks: %.1f ms = %.3f %% of the fit  (target <= 1 %%)"
          % (1000 * med_inside, 100 * med_inside / med_base))
    print("  (wall and CPU ratios include the noise of other processes on this machine; the "
          "time inside the hooks is the callback's own cost)")


def load_baseline(rev: str):
    """The Keras extractor as it was at git revision ``rev`` (a module loaded from ``git show``),
    or None when git or the revision is not available."""
    import importlib.util
    import subprocess

    try:
        src = subprocess.run(["git", "-C", ROOT, "show", "%s:tensorboard_archviz/extract/keras.py"
                              % rev], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print("  (no baseline: git show %s failed: %s)" % (rev, str(e).strip()[:200]))
        return None
    path = os.path.join(tempfile.mkdtemp(prefix="archviz_bench_"), "keras_baseline.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("keras_extract_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transformer(blocks: int = 48, custom: bool = False, seq: int = 128, dim: int = 256):
    """A pre-norm transformer encoder of ``blocks`` blocks (4 heads, MLP x4) on [seq, dim]:
    functional layers, or (``custom``) each block one custom ``Layer`` (its MACs are counted by
    tracing its call())."""
    import keras
    from keras import layers

    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.n1, self.n2 = layers.LayerNormalization(), layers.LayerNormalization()
            self.att = layers.MultiHeadAttention(4, dim // 4)
            self.up, self.down = layers.Dense(4 * dim, activation="gelu"), layers.Dense(dim)

        def call(self, x):
            h = self.n1(x)
            x = x + self.att(h, h)
            return x + self.down(self.up(self.n2(x)))

    x = inp = keras.Input((seq, dim))
    for i in range(blocks):
        if custom:
            x = Block(name="block_%d" % i)(x)
            continue
        h = layers.LayerNormalization()(x)
        x = layers.Add()([x, layers.MultiHeadAttention(4, dim // 4)(h, h)])
        h = layers.Dense(4 * dim, activation="gelu")(layers.LayerNormalization()(x))
        x = layers.Add()([x, layers.Dense(dim)(h)])
    return keras.Model(inp, x, name="transformer%d%s" % (blocks, "_custom" if custom else ""))


def time_arms(model, arms, repeats: int):
    """Median seconds per arm, the arms alternating (first order flipped every repeat)."""
    times = {name: [] for name in arms}
    for fn in arms.values():  # warm-up (imports, caches)
        fn(model)
    for i in range(repeats):
        for name in (list(arms) if i % 2 == 0 else list(reversed(list(arms)))):
            start = time.perf_counter()
            arms[name](model)
            times[name].append(time.perf_counter() - start)
    return times


def bench_extraction(repeats: int, baseline_rev: str) -> None:
    """Extraction time of ResNet152 and 48-block transformers, now and at ``baseline_rev``,
    alternating in one run."""
    import keras

    from tensorboard_archviz.extract.keras import extract_keras

    arms = {"now": extract_keras}
    base = load_baseline(baseline_rev) if baseline_rev else None
    if base is not None:
        arms["baseline %s" % baseline_rev] = base.extract_keras
    models = [lambda: keras.applications.ResNet152(weights=None), transformer,
              lambda: transformer(custom=True)]
    for make in models:
        start = time.perf_counter()
        model = make()
        build = time.perf_counter() - start
        times = time_arms(model, arms, repeats)
        arch = extract_keras(model)
        start = time.perf_counter()
        size = len(arch.to_json(separators=(",", ":")))
        to_json = time.perf_counter() - start
        m = arch.model
        print("extraction, %s (built in %.2f s): %d nodes, %d edges, %d params, %s%.3f G MACs "
              "per example, JSON %d bytes, to_json %.3f s" % (
                  model.name, build, len(arch.nodes), len(arch.edges), arch.model.total_params,
                  "" if m.macs_complete else "at least ", m.macs / 1e9, size, to_json))
        for name, ts in times.items():
            print("  extract_keras %-18s median %.3f s (min %.3f, max %.3f, %d runs; "
                  "target <= 1 s)" % (name, statistics.median(ts), min(ts), max(ts), repeats))
        if len(times) == 2:
            now, old = (statistics.median(ts) for ts in times.values())
            print("  ratio now / baseline: %.3f (alternating runs in this process)" % (now / old))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternating fit pairs")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--extract-repeats", type=int, default=5)
    parser.add_argument("--baseline", default="5393311",
                        help="git revision of extract/keras.py to time side by side "
                             "(default: before per-example MACs and memory; '' to skip)")
    parser.add_argument("--extract-only", action="store_true",
                        help="only the extraction benchmark (no fits)")
    args = parser.parse_args(argv)
    import keras

    print("keras %s, backend %s" % (keras.__version__, keras.backend.backend()))
    bench_extraction(args.extract_repeats, args.baseline)
    if not args.extract_only:
        bench_overhead(args.repeats, args.samples)


if __name__ == "__main__":
    main()
