"""Benchmark: batched filter maximisation (tensorboard_archviz.filters) vs the seed's method.

Run:  python bench/bench_filters.py [--quick]     (Keras on TensorFlow; prints its figures and
writes sample grids to bench/out/). Not part of the test suite.

1. LeNet (28x28x1; Conv2D 20 5x5 same relu; MaxPool 2; Conv2D 50 5x5 same relu; MaxPool 2;
   Flatten; Dense 500 relu; Dense 10 softmax), trained briefly on scikit-learn's digits upsampled
   to 28x28. Work: the 50 filters of conv2d_1, 20 steps each.
   - seed: the classic Keras "visualizing what convnets learn" loop: per filter, a freshly traced
     tf.function running 20 steps of RMS-normalised gradient ascent (step 1.0) on the mean of the
     layer's (post-ReLU) output, from grey noise.
   - batched: ``keras_backend.make_grids(..., steps=20)`` end to end (tracing included).
2. Step time of the batched loop vs the floor: one plain forward+backward of the model cut after
   conv2d_1 (full layer) on the same batch of 50 images; also vs the forward+backward of the
   exact computation the loop differentiates (the model cut at conv2d_1's input + the per-image
   filter), so the overhead of parametrisation, jitter and Adam is visible on its own.
3. Quality of both on the same layer: the fraction of pixels outside the value range, the
   image span relative to the range, and the fraction of spectral power above half-Nyquist.
4. VGG-like model at 128x128x3: one filter at a time (chunk_size=1) vs the whole layer in one
   batch vs the adaptive choice (measured chunk size).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "bench", "out")

import numpy as np  # noqa: E402


def lenet(keras):
    from keras import layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(20, 5, padding="same", activation="relu", name="conv2d"),
        layers.MaxPooling2D(2),
        layers.Conv2D(50, 5, padding="same", activation="relu", name="conv2d_1"),
        layers.MaxPooling2D(2), layers.Flatten(),
        layers.Dense(500, activation="relu"), layers.Dense(10, activation="softmax")],
        name="lenet")


def digits_28():
    import tensorflow as tf
    from sklearn.datasets import load_digits
    d = load_digits()
    x = tf.image.resize(d.images[..., None].astype("float32") / 16.0, (28, 28)).numpy()
    return x, d.target


def vgg_like(keras, width=16):
    from keras import layers
    x = inp = keras.Input((128, 128, 3))
    for b, ch in enumerate((width, 2 * width, 4 * width), start=1):
        x = layers.Conv2D(ch, 3, padding="same", activation="relu", name="block%d_conv1" % b)(x)
        x = layers.Conv2D(ch, 3, padding="same", activation="relu", name="block%d_conv2" % b)(x)
        x = layers.MaxPooling2D(2, name="block%d_pool" % b)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x), name="vgg_like")


# ----------------------------------------------------------------------------- the seed's method


def seed_method(tf, model, layer_name, n_filters, steps=20, seed=0):
    """Per filter: trace a new tf.function that runs `steps` normalised-gradient-ascent steps."""
    import keras
    extractor = keras.Model(model.inputs, model.get_layer(layer_name).output)
    rng = np.random.RandomState(seed)
    images, losses = [], []
    for f in range(n_filters):
        @tf.function
        def ascend(img, filter_index=f):
            loss = tf.constant(0.0)
            for _ in range(steps):
                with tf.GradientTape() as tape:
                    tape.watch(img)
                    loss = tf.reduce_mean(extractor(img)[..., filter_index])
                grads = tape.gradient(loss, img)
                grads = grads / (tf.sqrt(tf.reduce_mean(tf.square(grads))) + 1e-5)
                img = img + 1.0 * grads
            return loss, img

        init = (0.4 + 0.2 * rng.rand(1, 28, 28, 1)).astype("float32")   # grey noise in [0, 1]
        loss, img = ascend(tf.constant(init))
        images.append(img.numpy()[0])
        losses.append(float(loss))
    return np.stack(images), np.array(losses)


def seed_grid_png(images, losses, path):
    """The textbook presentation: drop loss <= 0, keep the top 36, per-tile contrast stretch."""
    from PIL import Image
    keep = [i for i in np.argsort(-losses) if losses[i] > 0][:36]
    tiles = []
    for i in keep:
        x = images[i, :, :, 0].astype(np.float64)
        x = (x - x.mean()) / (x.std() + 1e-5) * 0.15 + 0.5
        tiles.append(np.clip(x * 255, 0, 255).astype(np.uint8))
    n = int(np.ceil(np.sqrt(max(1, len(tiles)))))
    canvas = np.full((n * 30 + 2, n * 30 + 2), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, n)
        canvas[2 + r * 30:2 + r * 30 + 28, 2 + c * 30:2 + c * 30 + 28] = t
    Image.fromarray(canvas).resize((canvas.shape[1] * 3, canvas.shape[0] * 3), Image.NEAREST) \
        .save(path)
    return len(keep)


# ----------------------------------------------------------------------------- quality


def quality(images, lo=0.0, hi=1.0):
    """(fraction of pixels outside [lo, hi], span / range, fraction of power above half-Nyquist)."""
    x = images[..., 0].astype(np.float64) if images.ndim == 4 else images
    outside = float(np.mean((x < lo) | (x > hi)))
    span = float((x.max() - x.min()) / (hi - lo))
    h, w = x.shape[-2:]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    high = np.sqrt(fy ** 2 + fx ** 2) > 0.25            # cycles/pixel; Nyquist is 0.5
    p = np.abs(np.fft.fft2(x - x.mean(axis=(-2, -1), keepdims=True))) ** 2
    hf = float(np.sum(p[..., high]) / max(np.sum(p), 1e-30))
    return outside, span, hf


# ----------------------------------------------------------------------------- timing helpers


def interleaved_best(fns, repeat):
    """{name: best time} running the functions in turn, `repeat` rounds."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller VGG work, fewer repeats")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    import keras
    import tensorflow as tf
    if keras.backend.backend() != "tensorflow":
        sys.exit("run with KERAS_BACKEND=tensorflow (the seed's method is TensorFlow code)")
    from tensorboard_archviz.filters import core, keras_backend

    print("machine: %d CPU(s) visible, load average %s" % (os.cpu_count(),
                                                         "%.1f %.1f %.1f" % os.getloadavg()))
    keras.utils.set_random_seed(0)
    model = lenet(keras)
    x, y = digits_28()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    print("LeNet trained on digits (28x28): params %d, train accuracy %.3f"
          % (model.count_params(), hist.history["accuracy"][-1]))

    # -- 1. seed vs batched on the same work ---------------------------------------------------
    t = time.perf_counter()
    seed_imgs, seed_losses = seed_method(tf, model, "conv2d_1", 50, steps=20)
    t_seed = time.perf_counter() - t
    kept = seed_grid_png(seed_imgs, seed_losses, os.path.join(OUT, "lenet_conv2d_1_seed.png"))

    t = time.perf_counter()
    ours20 = next(keras_backend.make_grids(model, ["conv2d_1"], steps=20))
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ours20b = next(keras_backend.make_grids(model, ["conv2d_1"], steps=20))
    t_ours_warm = time.perf_counter() - t
    open(os.path.join(OUT, "lenet_conv2d_1_batched_20steps.png"), "wb").write(ours20.png)
    print()
    print("1. LeNet conv2d_1, 50 filters x 20 steps (end to end, tracing included)")
    print("   seed (a traced tf.function per filter): %8.2f s  (%d filters kept of 50)"
          % (t_seed, kept))
    print("   batched make_grids(steps=20):           %8.2f s   -> %.1fx faster"
          % (t_ours, t_seed / t_ours))
    print("   batched, second call (same process):    %8.2f s   -> %.1fx faster"
          % (t_ours_warm, t_seed / t_ours_warm))

    # -- 2. step time vs the floor -------------------------------------------------------------
    layer = model.get_layer("conv2d_1")
    head, n = keras_backend._make_head(layer, keras, keras.ops)
    opts = core.resolve_options({"steps": 20})
    plan = core.make_plan("conv2d_1", "Conv2D", n, 1, (28, 28), (0.0, 1.0), False, opts)
    window = core.center_window((14, 14), plan.center)
    fwd, patch = keras_backend._forward_to(model, layer, "channels_last", False)
    xb = tf.constant(np.random.RandomState(1).rand(50, 28, 28, 1).astype("float32"))
    idx = tf.constant(np.arange(50, dtype=np.int32))
    cut = keras.Model(model.inputs, layer.output)   # plain model through conv2d_1 (post-ReLU)
    cut_pre = keras.Model(model.inputs, layer.input)
    wt = tf.constant(window)

    def plain_obj(xx):
        out = cut(xx, training=False)                                        # (50, 14, 14, 50)
        sel = tf.gather(tf.transpose(out, (0, 3, 1, 2)), idx, axis=1, batch_dims=1)
        return tf.reduce_sum(sel * wt)

    def path_obj(xx):
        return tf.reduce_sum(head(cut_pre(xx, training=False), idx) * wt)

    def fwd_bwd_loop(objective):
        """n forward+backward passes in the same kind of tf.while_loop as the optimiser."""
        def run(xx, n):
            def body(t, xx):
                with tf.GradientTape() as tape:
                    tape.watch(xx)
                    obj = objective(xx)
                return t + 1, xx + 1e-9 * tape.gradient(obj, xx)   # a real dependency
            return tf.while_loop(lambda t, _: t < n, body, [tf.constant(0), xx])[1]
        return tf.function(run, autograph=False)

    plain_loop, path_loop = fwd_bwd_loop(plain_obj), fwd_bwd_loop(path_obj)
    plain_loop(xb, tf.constant(1))   # traced before conv2d_1's call is patched to stop there
    path_loop(xb, tf.constant(1))
    with keras_backend._patched(patch):
        opt = keras_backend._TFOptimizer(plan, fwd, head, window)
        opt.run(list(range(50)), 2)
        # Per-step costs are slopes (time at 60 steps - time at 20 steps) / 40, each the best of
        # N interleaved rounds: the machine is shared, and fixed costs cancel out.
        fns = {"ours20": lambda: opt.run(list(range(50)), 20),
               "ours60": lambda: opt.run(list(range(50)), 60),
               "plain20": lambda: plain_loop(xb, tf.constant(20)).numpy(),
               "plain60": lambda: plain_loop(xb, tf.constant(60)).numpy(),
               "path20": lambda: path_loop(xb, tf.constant(20)).numpy(),
               "path60": lambda: path_loop(xb, tf.constant(60)).numpy()}
        best = interleaved_best(fns, 5 if args.quick else 12)
    step = (best["ours60"] - best["ours20"]) / 40.0
    floor = (best["plain60"] - best["plain20"]) / 40.0
    same = (best["path60"] - best["path20"]) / 40.0
    print()
    print("2. batched step (50 images: render + jitter + 2x downsample + model + Adam): %.2f ms"
          % (step * 1e3))
    print("   floor: plain forward+backward of the model cut after conv2d_1, same batch: "
          "%.2f ms  -> step/floor = %.2fx" % (floor * 1e3, step / floor))
    print("   forward+backward of the exact path (cut at the input + per-image filter): "
          "%.2f ms  -> step/path = %.2fx" % (same * 1e3, step / same))

    # -- 3. quality ----------------------------------------------------------------------------
    ours128 = next(keras_backend.make_grids(model, ["conv2d_1"]))
    first = next(keras_backend.make_grids(model, ["conv2d"]))
    open(os.path.join(OUT, "lenet_conv2d_1.png"), "wb").write(ours128.png)
    open(os.path.join(OUT, "lenet_conv2d.png"), "wb").write(first.png)
    print()
    print("3. quality on LeNet conv2d_1 (value range [0, 1]; half-Nyquist = 0.25 cycles/px)")
    print("   %-34s %12s %12s %18s" % ("", "outside", "span/range", "power > Nyq/2"))
    for name, ims in (("seed (20 steps)", seed_imgs), ("batched (20 steps)", ours20.images),
                      ("batched (default, %d steps)" % ours128.tiles["steps"], ours128.images)):
        o, s, hf = quality(ims)
        print("   %-34s %11.1f%% %11.1fx %17.1f%%" % (name, 100 * o, s, 100 * hf))
    print("   default run: %.1f s, %d dead of 50; first conv layer: %.1f s"
          % (ours128.tiles["seconds"], sum(t["dead"] for t in ours128.tiles["tiles"]),
             first.tiles["seconds"]))

    # -- 4. VGG-like at 128x128: chunking vs per-filter ---------------------------------------
    keras.utils.set_random_seed(0)
    vgg = vgg_like(keras)   # untrained: for timing only
    target = "block3_conv2"
    nf = 16 if args.quick else 32
    steps = 8 if args.quick else 16
    common = dict(steps=steps, max_filters=nf)
    print()
    rounds = 2 if args.quick else 4
    print("4. VGG-like 128x128x3, %s, %d filters x %d steps (end to end; %d interleaved rounds;"
          " the adaptive size is measured in round 1, then reused from the cache)"
          % (target, nf, steps, rounds))
    variants = (("one filter at a time (chunk_size=1)", {"chunk_size": 1}),
                ("whole layer in one batch (chunk_size=%d)" % nf, {"chunk_size": nf}),
                ("adaptive (measured on the real work)", {}))
    timings = {label: [] for label, _ in variants}
    for rnd in range(rounds):
        # Rotate the order each round: the load of a shared machine drifts within a round.
        for label, extra in variants[rnd % 3:] + variants[:rnd % 3]:
            lines = []
            t = time.perf_counter()
            r = next(keras_backend.make_grids(vgg, [target], log=lines.append, **common, **extra))
            timings[label].append(time.perf_counter() - t)
            if rnd == 0:
                for l in lines:
                    if "batch size" in l:
                        print("     " + l.strip())
    for label, _ in variants:
        print("   %-40s %s" % (label, "  ".join("%6.2f s" % v for v in timings[label])))
    one = timings[variants[0][0]]
    whole = timings[variants[1][0]]
    adapt = timings[variants[2][0]]
    ratio = lambda a, b: float(np.median([x / y for x, y in zip(a, b)]))
    vgg_adaptive = ratio(one, adapt)
    print("   median over rounds of the per-round ratio (same load): adaptive vs one at a time "
          "%.2fx (round 1, measuring: %.2fx); whole batch vs one at a time %.2fx"
          % (vgg_adaptive, one[0] / adapt[0], ratio(one, whole)))
    vgg_grid = next(keras_backend.make_grids(vgg, ["block1_conv1"], steps=64, max_filters=16))
    open(os.path.join(OUT, "vgg_block1_conv1.png"), "wb").write(vgg_grid.png)
    open(os.path.join(OUT, "vgg_%s.png" % target), "wb").write(r.png)

    print()
    print("SUMMARY")
    print("  speed-up over the seed's method (LeNet conv2d_1, 50 x 20): %.1fx (target >= 25x)"
          % (t_seed / t_ours))
    print("  batched step / plain forward+backward floor:                 %.2fx (target <= 1.2x)"
          % (step / floor))
    print("  adaptive chunking vs one filter at a time (VGG-like 128px):  %.2fx (must be >= ~1)"
          % vgg_adaptive)
    print("  sample grids in %s" % OUT)


if __name__ == "__main__":
    main()
