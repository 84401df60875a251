"""Benchmark: batched filter maximisation (tensorboard_archviz.filters) vs the textbook method.

Run:  python bench/bench_filters.py [--quick]     (Keras on TensorFlow, plus a PyTorch model;
prints its figures, writes sample grids to bench/out/ and the side-by-side grids to docs/).
Not part of the test suite.

1. The demo LeNet (demo/keras_models.build_lenet) trained 5 epochs on the demo digits
   (demo/data.load_digits_28x28). Work: the 50 filters of conv2d_1, 20 steps each.
   - textbook: the classic Keras "visualizing what convnets learn" loop: per filter, a freshly
     traced tf.function running 20 steps of RMS-normalised gradient ascent (step 1.0) on the
     mean of the layer's (post-ReLU) output, from grey noise.
   - batched: ``keras_backend.make_grids(..., steps=20)`` end to end (tracing included).
2. Step time of the batched loop vs the floor: one plain forward+backward of the model cut after
   conv2d_1 (full layer) on the same batch of 50 images; also vs the forward+backward of the
   exact computation the loop differentiates.
3. Quality of both methods on conv2d_1 and on the first layer (conv2d), medians per tile: pixels
   outside the value range, saturated pixels (within 2 % of an end), power above half-Nyquist,
   mean post-activation / the best training digit's (conv2d_1: mean over the interior positions;
   conv2d: the best position), tiles whose contrast sits mostly (> 50 %) in the outer 3-px
   frame, and the stability of each filter's image across two seeds (correlation of the
   amplitude spectra). The textbook's images are measured raw and as it shows them (per-tile
   contrast normalisation, clipped); for the first layer the exact maximiser of the centre
   position (the kernel's sign pattern) is the reference.
4. VGG-like model at 128x128x3: one filter at a time vs the whole layer vs the adaptive choice.
5. PyTorch: the 10-conv-layer ResNet-style model (BatchNorm, 32x32x3; bench/filters_resnet.py)
   trained 3 epochs on the digits padded to 32x32, through ``add_filter_grids`` with its
   defaults, then with the previous defaults (deeper layers 256 steps, NCHW images): wall and CPU
   time, and per layer the quality figures of section 3 (act = mean post-activation over the
   interior positions / the best training digit's, saturated share, HF power).
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


sys.path.insert(0, os.path.join(ROOT, "demo"))
DOCS = os.path.join(ROOT, "docs")


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


def textbook_batched(tf, model, layer_name, n_filters, steps=20, seed=0):
    """The textbook method's exact arithmetic (same init draws, per-image RMS normalisation),
    all filters in one traced loop: image f only feeds filter f's loss, so the results equal
    ``seed_method``'s; used for the quality figures (the per-filter version is timed in 1)."""
    import keras
    extractor = keras.Model(model.inputs, model.get_layer(layer_name).output)
    rng = np.random.RandomState(seed)
    init = np.concatenate([(0.4 + 0.2 * rng.rand(1, 28, 28, 1)).astype("float32")
                           for _ in range(n_filters)])
    onehot = tf.one_hot(np.arange(n_filters), extractor.output.shape[-1])

    @tf.function
    def ascend(img):
        loss = tf.zeros(n_filters)
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch(img)
                out = extractor(img)
                loss = tf.reduce_sum(tf.reduce_mean(out * onehot[:, None, None, :], axis=[1, 2]),
                                     axis=-1)
                total = tf.reduce_sum(loss)
            grads = tape.gradient(total, img)
            grads = grads / (tf.sqrt(tf.reduce_mean(tf.square(grads), axis=[1, 2, 3],
                                                    keepdims=True)) + 1e-5)
            img = img + 1.0 * grads
        return loss, img

    loss, img = ascend(tf.constant(init))
    return img.numpy(), loss.numpy()


def as_shown(images):
    """The textbook's display: per tile (x - mean) / std * 0.15 + 0.5, clipped to [0, 1]."""
    x = images.astype(np.float64)
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    sd = x.std(axis=(1, 2, 3), keepdims=True)
    return np.clip((x - m) / (sd + 1e-5) * 0.15 + 0.5, 0.0, 1.0).astype(np.float32)


def kernel_sign_images(model, layer_name, like):
    """The exact maximiser of a first conv layer's centre position over [0, 1]: 1 where the
    kernel is positive, 0 where negative, grey elsewhere (the reference for its HF power)."""
    k = np.asarray(model.get_layer(layer_name).kernel)[:, :, 0, :]     # (kh, kw, F)
    kh, kw, n = k.shape
    out = np.full((n,) + like.shape[1:], 0.5, np.float32)
    h, w = like.shape[1:3]
    y0, x0 = h // 2 - kh // 2, w // 2 - kw // 2
    out[:, y0:y0 + kh, x0:x0 + kw, 0] = (k.transpose(2, 0, 1) > 0).astype(np.float32)
    return out


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


def half_nyquist_power(x):
    """Fraction of an image's (mean-removed) spectral power above 0.25 cycles/px."""
    h, w = x.shape
    f = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    p = np.abs(np.fft.fft2(x - x.mean())) ** 2
    return float(p[f > 0.25].sum() / max(p.sum(), 1e-30))


def frame_share(x, px=3):
    """Share of a tile's contrast energy (squared deviation from its mean) in its outer frame."""
    d = (x - x.mean()) ** 2
    inner = d[px:-px, px:-px].sum()
    return float((d.sum() - inner) / max(d.sum(), 1e-30))


def spectrum_corr(a, b):
    """Correlation of two images' amplitude spectra (DC left out)."""
    fa = np.abs(np.fft.fft2(a - a.mean())).ravel()[1:]
    fb = np.abs(np.fft.fft2(b - b.mean())).ravel()[1:]
    return float(np.corrcoef(fa, fb)[0, 1]) if fa.std() > 0 and fb.std() > 0 else 0.0


def quality(images, other_seed, measure, best_train, lo=0.0, hi=1.0):
    """Per-tile medians (and counts) of the figures of section 3."""
    x = images[..., 0].astype(np.float64)
    span = hi - lo
    act = measure(images) / np.maximum(best_train, 1e-12)
    return {
        "outside": float(np.median(np.mean((x < lo) | (x > hi), axis=(1, 2)))),
        "saturated": float(np.median(np.mean((x <= lo + 0.02 * span) | (x >= hi - 0.02 * span),
                                             axis=(1, 2)))),
        "hf": float(np.median([half_nyquist_power(t) for t in x])),
        "act": float(np.median(act)), "act_ge1": int(np.sum(act >= 1.0)), "n": len(x),
        "frame": int(sum(frame_share(t) > 0.5 for t in x)),
        "stable": float(np.median([spectrum_corr(a, b) for a, b in
                                   zip(x, other_seed[..., 0].astype(np.float64))])),
    }


def print_quality(title, rows):
    print("   %s" % title)
    print("   %-28s %8s %10s %9s %17s %7s %8s" % ("", "outside", "saturated", "HF power",
                                                  "act / best train", "frame", "seeds"))
    for name, q in rows:
        print("   %-28s %7.1f%% %9.1f%% %8.1f%% %6.2f (%2d of %2d >=1) %7d %8.2f"
              % (name, 100 * q["outside"], 100 * q["saturated"], 100 * q["hf"], q["act"],
                 q["act_ge1"], q["n"], q["frame"], q["stable"]))


def activation_measures(keras, model, layer_name, window):
    """measure(images) -> per-filter figure (filter k on image k): the mean post-activation over
    ``window`` (interior positions) or, with window None, the best position."""
    cut = keras.Model(model.inputs, model.get_layer(layer_name).output)

    def per_image(images):
        out = np.asarray(cut(images, training=False))        # (N, Ho, Wo, F) post-ReLU
        if window is None:
            return out.max(axis=(1, 2))
        return np.einsum("nhwf,hw->nf", out, window)

    def measure(images):
        vals = per_image(images)
        return vals[np.arange(len(images)), np.arange(len(images))]
    return per_image, measure


def interior_of(tf, keras, model, layer_name):
    """The interior window of a layer (core.interior_window on the centre's gradient support)."""
    from tensorboard_archviz.filters import core
    cut = keras.Model(model.inputs, model.get_layer(layer_name).output)
    x = tf.constant(np.random.RandomState(0).rand(1, 28, 28, 1).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = cut(x, training=False)
        ho, wo = int(out.shape[1]), int(out.shape[2])
        centre = tf.reduce_sum(out[0, ho // 2, wo // 2, :])
    support = np.abs(tape.gradient(centre, x).numpy()[0, :, :, 0])
    return core.interior_window((ho, wo), support)


def side_by_side(paths, labels, out):
    """One PNG with the given images next to each other, each with a label above it."""
    from PIL import Image, ImageDraw
    ims = [Image.open(p).convert("L") for p in paths]
    h = max(im.size[1] for im in ims) + 24
    w = sum(im.size[0] for im in ims) + 16 * (len(ims) + 1)
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    x = 16
    for im, label in zip(ims, labels):
        draw.text((x, 4), label, fill=0)
        canvas.paste(im, (x, 22))
        x += im.size[0] + 16
    canvas.save(out)


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


def train_lenet(keras):
    from data import load_digits_28x28
    from keras_models import build_lenet, compile_classifier
    keras.utils.set_random_seed(0)
    x, y, xt, yt = load_digits_28x28()
    model = compile_classifier(build_lenet())
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    acc = model.evaluate(xt, yt, verbose=0)[1]
    print("demo LeNet trained 5 epochs on the demo digits (28x28): params %d, test accuracy %.3f"
          % (model.count_params(), acc))
    return model, x


def section_speed(tf, keras_backend, model):
    t = time.perf_counter()
    seed_imgs, seed_losses = seed_method(tf, model, "conv2d_1", 50, steps=20)
    t_seed = time.perf_counter() - t
    t = time.perf_counter()
    next(keras_backend.make_grids(model, ["conv2d_1"], steps=20))
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    next(keras_backend.make_grids(model, ["conv2d_1"], steps=20))
    t_warm = time.perf_counter() - t
    print()
    print("1. LeNet conv2d_1, 50 filters x 20 steps (end to end, tracing included)")
    print("   textbook (a traced tf.function per filter): %8.2f s" % t_seed)
    print("   batched make_grids(steps=20):               %8.2f s   -> %.1fx faster"
          % (t_ours, t_seed / t_ours))
    print("   batched, second call (same process):        %8.2f s   -> %.1fx faster"
          % (t_warm, t_seed / t_warm))
    return t_seed / t_ours


def section_floor(tf, keras, keras_backend, model, repeat):
    from tensorboard_archviz.filters import core, tf_optim
    layer = model.get_layer("conv2d_1")
    head, n = keras_backend.make_head(layer, keras, keras.ops)
    plan = core.make_plan("conv2d_1", "Conv2D", n, 1, (28, 28), (0.0, 1.0), False,
                          core.resolve_options({"steps": 20}))
    window = interior_of(tf, keras, model, "conv2d_1")
    post, _ = keras_backend.make_post(layer, core.Probe(), keras, keras.ops)
    fwd, patch = keras_backend.forward_to(model, layer, "channels_last", False)
    xb = tf.constant(np.random.RandomState(1).rand(50, 28, 28, 1).astype("float32"))
    idx = tf.constant(np.arange(50, dtype=np.int32))
    cut = keras.Model(model.inputs, layer.output)   # plain model through conv2d_1 (post-ReLU)
    wt = tf.constant(window)

    def plain_obj(xx):
        out = cut(xx, training=False)                                        # (50, 14, 14, 50)
        sel = tf.gather(tf.transpose(out, (0, 3, 1, 2)), idx, axis=1, batch_dims=1)
        return tf.reduce_sum(sel * wt)

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

    plain_loop = fwd_bwd_loop(plain_obj)
    plain_loop(xb, tf.constant(1))   # traced before conv2d_1's call is patched to stop there
    with keras_backend.patched(patch):
        opt = tf_optim.TFOptimizer(plan, fwd, head, post)
        opt.run(list(range(50)), 2, None, window)
        # Per-step costs are slopes (time at 60 steps - time at 20 steps) / 40, each the best of
        # N interleaved rounds: the machine is shared, and fixed costs cancel out.
        fns = {"ours20": lambda: opt.run(list(range(50)), 20, None, window),
               "ours60": lambda: opt.run(list(range(50)), 60, None, window),
               "plain20": lambda: plain_loop(xb, tf.constant(20)).numpy(),
               "plain60": lambda: plain_loop(xb, tf.constant(60)).numpy()}
        best = interleaved_best(fns, repeat)
    step = (best["ours60"] - best["ours20"]) / 40.0
    floor = (best["plain60"] - best["plain20"]) / 40.0
    print()
    print("2. batched step (50 images: render + jitter/scale + model + BatchNorm/ReLU objective +"
          " Adam): %.2f ms" % (step * 1e3))
    print("   floor: plain forward+backward of the model cut after conv2d_1, same batch: "
          "%.2f ms  -> step/floor = %.2fx" % (floor * 1e3, step / floor))
    return step / floor


def section_quality(tf, keras, keras_backend, model, x_train):
    """Both methods on conv2d_1 and conv2d; returns the figures and saves the grids."""
    out = {}
    for layer_name, window in (("conv2d_1", interior_of(tf, keras, model, "conv2d_1")),
                               ("conv2d", None)):
        n = model.get_layer(layer_name).filters
        per_image, measure = activation_measures(keras, model, layer_name, window)
        best_train = np.max(np.concatenate([per_image(x_train[i:i + 256])
                                            for i in range(0, len(x_train), 256)]), axis=0)
        ours = [next(keras_backend.make_grids(model, [layer_name], seed=s)) for s in (0, 1)]
        book = [textbook_batched(tf, model, layer_name, n, steps=20, seed=s) for s in (0, 1)]
        rows = [("textbook (20 steps), raw", quality(book[0][0], book[1][0], measure, best_train)),
                ("textbook, as shown", quality(as_shown(book[0][0]), as_shown(book[1][0]),
                                               measure, best_train)),
                ("this project (%d steps)" % ours[0].tiles["steps"],
                 quality(ours[0].images, ours[1].images, measure, best_train))]
        if window is not None:   # deeper layers took 256 steps by default before
            prev = [next(keras_backend.make_grids(model, [layer_name], seed=s, steps=256))
                    for s in (0, 1)]
            rows.append(("previous default (256 steps)",
                         quality(prev[0].images, prev[1].images, measure, best_train)))
        if window is None:
            ref = kernel_sign_images(model, layer_name, ours[0].images)
            rows.append(("kernel sign pattern (exact)", quality(ref, ref, measure, best_train)))
        print_quality("%s (%s): %d filters; act = %s" % (
            layer_name, ours[0].tiles["objective"], n,
            "mean post-ReLU over the interior positions" if window is not None
            else "post-ReLU at the best position"), rows)
        print("   this project: %.1f s, %d dead of %d"
              % (ours[0].tiles["seconds"], sum(t["dead"] for t in ours[0].tiles["tiles"]), n))
        ours_png = os.path.join(DOCS, "filters_lenet_%s.png" % layer_name)
        book_png = os.path.join(DOCS, "filters_lenet_%s_seed.png" % layer_name)
        open(ours_png, "wb").write(ours[0].png)
        seed_grid_png(book[0][0], book[0][1], book_png)
        side_by_side([book_png, ours_png], ["textbook (top 36, per-tile contrast)",
                                            "this project (all %d, one scale)" % n],
                     os.path.join(DOCS, "filters_lenet_%s_methods.png" % layer_name))
        out[layer_name] = dict(rows)
    return out


def section_vgg(keras, keras_backend, quick):
    keras.utils.set_random_seed(0)
    vgg = vgg_like(keras)   # untrained: for timing only
    target = "block3_conv2"
    nf = 16 if quick else 32
    common = dict(steps=8 if quick else 16, max_filters=nf)
    rounds = 2 if quick else 4
    print()
    print("4. VGG-like 128x128x3, %s, %d filters x %d steps (end to end; %d interleaved rounds)"
          % (target, nf, common["steps"], rounds))
    variants = (("one filter at a time (chunk_size=1)", {"chunk_size": 1}),
                ("whole layer in one batch (chunk_size=%d)" % nf, {"chunk_size": nf}),
                ("adaptive (measured on the real work)", {}))
    timings = {label: [] for label, _ in variants}
    for rnd in range(rounds):
        for label, extra in variants[rnd % 3:] + variants[:rnd % 3]:
            t = time.perf_counter()
            next(keras_backend.make_grids(vgg, [target], **common, **extra))
            timings[label].append(time.perf_counter() - t)
    for label, _ in variants:
        print("   %-40s %s" % (label, "  ".join("%6.2f s" % v for v in timings[label])))
    ratio = lambda a, b: float(np.median([p / q for p, q in zip(a, b)]))
    one, adapt = timings[variants[0][0]], timings[variants[2][0]]
    print("   adaptive vs one at a time: %.2fx" % ratio(one, adapt))
    return ratio(one, adapt)


def grids_written(run_dir):
    """{node id: (images (N, H, W, C) float in [0, 1] cut back out of the PNG, tiles)}."""
    import json
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util
    from tensorboard_archviz import metadata
    from tensorboard_archviz.filters import grid
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        node = metadata.layer_from_filters_tag(tag)
        for ev in acc.Tensors(tag) if node else ():
            png, meta = tensor_util.make_ndarray(ev.tensor_proto)[:2]
            tiles = json.loads(meta)
            if tiles.get("skipped"):
                continue
            h, w = tiles["image_size"]
            cut = [grid.decode_tile(bytes(png), tiles, k) for k in range(len(tiles["tiles"]))]
            f = tiles["tile_size"] // max(h, w)          # nearest-neighbour upscaling factor
            out[node] = (np.stack([c[::f, ::f][:h, :w] for c in cut]).reshape(
                len(cut), h, w, -1).astype(np.float32) / 255.0, tiles)
    return out


def resnet_quality(model, x_train, images):
    """Per layer (in model order): median act / best digit, filters with act >= 1, median
    saturated share and median power above half-Nyquist (grey), as in section 3."""
    from filters_resnet import conv_layers, interior, post_maps
    rows = {}
    for node, _, _, _ in conv_layers(model):
        if node not in images:
            continue
        imgs, _ = images[node]
        win = interior(model, node)
        digits = np.concatenate([post_maps(model, node, x_train[i:i + 256])
                                 for i in range(0, len(x_train), 256)])
        best = np.einsum("nfhw,hw->nf", digits, win).max(0)
        ours = np.einsum("nfhw,hw->nf", post_maps(model, node, imgs.transpose(0, 3, 1, 2)), win)
        act = ours[np.arange(len(imgs)), np.arange(len(imgs))] / np.maximum(best, 1e-12)
        g = imgs.mean(-1).astype(np.float64)
        rows[node] = {"act": float(np.median(act)), "ge1": int(np.sum(act >= 1.0)),
                      "n": len(act),
                      "sat": float(np.median(np.mean((g <= 0.02) | (g >= 0.98), axis=(1, 2)))),
                      "hf": float(np.median([half_nyquist_power(t) for t in g]))}
    return rows


def run_resnet(model, label, calls):
    """Time ``add_filter_grids`` calls (one writer); returns (wall s, CPU s, grids, skipped)."""
    import tempfile
    from tensorboard_archviz import add_filter_grids
    from tensorboard_archviz.summary import ArchVizWriter
    import torch
    with tempfile.TemporaryDirectory() as d:
        with ArchVizWriter(d) as w:
            t, c = time.perf_counter(), time.process_time()
            for extra in calls:
                add_filter_grids(w, model, global_step=0, input_to_model=torch.zeros(1, 3, 32, 32),
                                 progress=False, **extra)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
        images = grids_written(d)
    print("   %-66s %6.1f s wall, %6.1f s CPU, %2d layers (load average %.1f)"
          % (label, wall, cpu, len(images), os.getloadavg()[0]))
    return wall, cpu, images


def section_torch(fast_only):
    """5. the 10-conv ResNet-style model trained on the digits: add_filter_grids with its
    defaults vs the previous defaults (deeper layers 256 steps, NCHW images), timing and
    quality side by side."""
    import torch
    from filters_resnet import conv_layers, train_resnet
    t = time.perf_counter()
    model, x_train, acc = train_resnet()
    nodes = [n for n, _, _, _ in conv_layers(model)]
    print()
    print("5. PyTorch ResNet-style model: %d conv layers, %d params, 32x32x3, trained 3 epochs on "
          "the digits padded to 32x32 (train accuracy %.3f, %.0f s); add_filter_grids with "
          "input_to_model, all layers (torch threads: %d)"
          % (len(nodes), sum(p.numel() for p in model.parameters()), acc,
             time.perf_counter() - t, torch.get_num_threads()))
    # On a shared machine the wall time mostly measures the other processes: the CPU time of
    # this process is printed beside it (with one thread, what a free core would take).
    runs = {"now": run_resnet(model, "defaults (128 steps, channels-last, threads "
                                     "by load)", [{}])}
    if not fast_only:
        # The previous defaults also ran on torch's own thread count (2 here): at load ~12 that
        # run did not finish in 27 min, so "before" gets one thread (the steps and the memory
        # format are what is compared; the thread choice is measured in the lines above).
        threads = int(os.environ.get("BEFORE_THREADS", "1"))
        old = {"time_budget": None, "channels_last": False, "threads": threads}
        runs["before"] = run_resnet(model, "previous defaults (128 / 256 steps, NCHW), %d "
                                    "thread(s), no budget" % threads,
                                    [dict(old, layers=nodes[:1], steps=128),
                                     dict(old, layers=nodes[1:], steps=256)])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # the measurements only: one thread on a shared machine
    try:
        quality = {k: resnet_quality(model, x_train, v[2]) for k, v in runs.items()}
    finally:
        torch.set_num_threads(threads)
    print("   %-16s | %s" % ("", " | ".join("%-40s" % k for k in runs)))
    print("   %-16s | %s" % ("layer", " | ".join("%5s %5s %6s %6s %6s    " % (
        "s", "act", ">=1", "sat", "HF") for _ in runs)))
    for node in nodes:
        cells = []
        for k, (_, _, images) in runs.items():
            q = quality[k].get(node)
            if q is None:
                cells.append("%-40s" % "skipped")
                continue
            cells.append("%5.1f %5.2f %2d/%-3d %5.1f%% %5.1f%%   " % (
                images[node][1]["seconds"], q["act"], q["ge1"], q["n"], 100 * q["sat"],
                100 * q["hf"]))
        print("   %-16s | %s" % (node, " | ".join(cells)))
    return {k: (v[0], v[1], len(v[2]), quality[k]) for k, v in runs.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller VGG work, fewer repeats, "
                    "PyTorch with the current defaults only")
    ap.add_argument("--sections", default="1,2,3,4,5", help="which sections to run, e.g. 3,5")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads for section 5 (default: torch's own)")
    args = ap.parse_args()
    run = {int(x) for x in args.sections.split(",") if x.strip()}
    os.makedirs(OUT, exist_ok=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    import keras
    import tensorflow as tf
    if keras.backend.backend() != "tensorflow":
        sys.exit("run with KERAS_BACKEND=tensorflow (the textbook method is TensorFlow code)")
    from tensorboard_archviz.filters import keras_backend

    print("machine: %d CPU(s) visible, load average %s" % (os.cpu_count(),
                                                         "%.1f %.1f %.1f" % os.getloadavg()))
    model, x_train = train_lenet(keras) if run & {1, 2, 3} else (None, None)
    nan = float("nan")
    speedup = section_speed(tf, keras_backend, model) if 1 in run else nan
    floor = section_floor(tf, keras, keras_backend, model, 5 if args.quick else 12) \
        if 2 in run else nan
    if 3 in run:
        print()
        print("3. quality (value range [0, 1]; medians per tile; frame: tiles with > 50 % of "
              "their contrast in the outer 3 px; seeds: median amplitude-spectrum correlation, "
              "seeds 0/1)")
        q = section_quality(tf, keras, keras_backend, model, x_train)
    vgg = section_vgg(keras, keras_backend, args.quick) if 4 in run else nan
    if args.torch_threads:
        import torch
        torch.set_num_threads(args.torch_threads)
    torch_times = section_torch(args.quick) if 5 in run else {}
    print()
    print("SUMMARY")
    print("  speed-up over the textbook method (LeNet conv2d_1, 50 x 20): %.1fx (target >= 25x)"
          % speedup)
    print("  batched step / plain forward+backward floor:                  %.2fx (target <= 1.2x)"
          % floor)
    print("  adaptive chunking vs one filter at a time (VGG-like 128px):   %.2fx (>= ~1)" % vgg)
    for layer in ("conv2d_1", "conv2d") if 3 in run else ():
        ours = [v for k, v in q[layer].items() if k.startswith("this")][0]
        print("  %s: outside %.1f%% (0), saturated %.1f%% (<= 5), HF %.1f%% (<= 15), act >= 1 "
              "for %d of %d (>= 90 %%), frame tiles %d (0), seed stability %.2f (>= 0.8)"
              % (layer, 100 * ours["outside"], 100 * ours["saturated"], 100 * ours["hf"],
                 ours["act_ge1"], ours["n"], ours["frame"], ours["stable"]))
    for k, (wall, cpu, n, q) in torch_times.items():
        acts = [r["act"] for r in q.values()]
        print("  PyTorch ResNet-style, %-6s: %d of 10 layers in %.1f s wall / %.1f s CPU "
              "(target <= 60 s); median over layers: act %.2f, act >= 1 for %d of %d filters, "
              "saturated %.1f%%, HF %.1f%%"
              % (k, n, wall, cpu, float(np.median(acts)) if acts else float("nan"),
                 sum(r["ge1"] for r in q.values()), sum(r["n"] for r in q.values()),
                 100 * float(np.median([r["sat"] for r in q.values()] or [np.nan])),
                 100 * float(np.median([r["hf"] for r in q.values()] or [np.nan]))))
    print("  grids side by side in %s" % DOCS)


if __name__ == "__main__":
    main()
