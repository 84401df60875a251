"""The batched optimisation loop for Keras 3 on the TensorFlow backend (``tf.GradientTape``
inside one traced ``tf.function``; the method is described in ``core``)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from tensorboard_archviz.filters import core


class TFOptimizer:
    """The whole optimisation loop of one layer as one traced ``tf.function`` (GradientTape).

    The trace reads the model's variables (``forward``, ``head`` and ``post`` convert them at
    call time), so a cached trace always sees the current weights.
    """

    def __init__(self, plan: core.Plan, forward, head, post=None):
        import tensorflow as tf
        self.tf, self.plan, self.forward, self.head = tf, plan, forward, head
        self.post = post or (lambda pre, idx: (pre, pre))
        bases = core.make_bases(plan)
        c = lambda a: None if a is None else tf.constant(a)
        self.dh_t = None if bases.dct_h is None else tf.constant(bases.dct_h.T.copy())
        self.dw, self.spec = c(bases.dct_w), c(bases.spectrum_scale)
        self.color_t = None if bases.color is None else tf.constant(bases.color.T.copy())
        self.color = self.color_t
        hc, wc = plan.canvas_hw
        C = plan.channels
        # autograph=False: the loop is an explicit tf.while_loop, and not converting the
        # model's Python code cuts the tracing time about threefold (Keras 3 layers never need
        # autograph: the same code runs on JAX and torch).
        self._run = tf.function(self._run_py, autograph=False, input_signature=[
            tf.TensorSpec((None, C, hc, wc), tf.float32), tf.TensorSpec((None,), tf.int32),
            tf.TensorSpec((None, 2), tf.int32), tf.TensorSpec((None, 8), tf.float32),
            tf.TensorSpec((None, None), tf.float32)])

    def render(self, z):
        """Logits (B, C, Hc, Wc) -> canvas images (B, Hc, Wc, C) in the value range.

        No broadcasting matmul: TF 2.21's oneDNN batch matmul with a broadcast rank-2 operand
        corrupts memory on CPU ("munmap_chunk(): invalid pointer"); Dh^T is tiled instead.
        """
        tf = self.tf
        hc, wc = self.plan.canvas_hw
        C = self.plan.channels
        if self.dh_t is not None:
            y = tf.reshape(z * self.spec, (-1, wc))
            y = tf.reshape(tf.matmul(y, self.dw), (-1, hc, wc))          # Y Dw
            y = tf.matmul(tf.tile(self.dh_t[None], [tf.shape(y)[0], 1, 1]), y)   # Dh^T Y Dw
            z = tf.reshape(y, (-1, C, hc, wc))
        z = tf.reshape(z, (-1, hc, wc, 1)) if C == 1 else tf.transpose(z, (0, 2, 3, 1))
        if self.color is not None:
            z = tf.reshape(tf.matmul(tf.reshape(z, (-1, C)), self.color_t), (-1, hc, wc, C))
        if self.plan.gain > 0:
            z = z - tf.reduce_mean(z, axis=[1, 2, 3], keepdims=True)
            z = self.plan.gain * z * tf.math.rsqrt(
                tf.reduce_mean(z * z, axis=[1, 2, 3], keepdims=True) + core.GAIN_EPS)
        lo, hi = self.plan.value_range
        return lo + (hi - lo) * tf.sigmoid(z)                            # NHWC

    def to_model(self, canvas, offset, transform):
        from keras import ops
        tf = self.tf
        ch, cw = self.plan.crop_hw
        x = tf.slice(canvas, tf.stack([0, offset[0], offset[1], 0]), [-1, ch, cw, -1])
        if transform is not None:
            x = ops.image.affine_transform(x, transform, interpolation="bilinear",
                                           fill_mode="reflect", data_format="channels_last")
        if self.plan.scale > 1:
            s = self.plan.scale
            x = tf.nn.avg_pool2d(x, s, s, "VALID")
        return x

    def _pre_py(self, x, idx):
        # Not a root name scope: Keras opens one named after the model, and a model named
        # like "_net" is not a valid root scope name in a traced function.
        with self.tf.name_scope("archviz"):
            return self.head(self.forward(x), idx)

    def _objective(self, x, idx, window):
        tf = self.tf
        pre = self._pre_py(x, idx)
        if self.plan.objective == "centre":
            return tf.reduce_sum(pre * window)
        lin, post = self.post(pre, idx)
        mask = tf.cast(window > 0, post.dtype)
        per = core.objective_terms(None, tf.reduce_sum(lin * window, [1, 2]),
                                   tf.reduce_sum(post * window, [1, 2]),
                                   tf.reduce_max(post * mask, [1, 2]), self.plan.objective,
                                   tf.where)
        return tf.reduce_sum(per)

    def _run_py(self, z, idx, offsets, transforms, window):
        """The whole loop (one trace): Adam ascent, then the final images, their
        pre-activation maps and the objective's support (|d objective / d input|)."""
        tf = self.tf
        plan = self.plan
        b1, b2, eps = 0.9, 0.999, 1e-8
        steps = tf.shape(offsets)[0]

        def body(t, z, m, v, support):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(z)
                x = self.to_model(self.render(z), offsets[t],
                                  transforms[t] if plan.transforms else None)
                obj = self._objective(x, idx, window)
            g, gx = tape.gradient(obj, [z, x])
            support = support + tf.reduce_sum(tf.abs(gx), axis=[0, 3])
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            tt = tf.cast(t + 1, tf.float32)
            z = z + plan.lr * (m / (1 - b1 ** tt)) / (tf.sqrt(v / (1 - b2 ** tt)) + eps)
            return t + 1, z, m, v, support

        _, z, _, _, support = tf.while_loop(
            lambda t, *_: t < steps, body,
            [tf.constant(0), z, tf.zeros_like(z), tf.zeros_like(z),
             tf.zeros(plan.image_hw, tf.float32)])
        j = plan.jitter
        final = self.to_model(self.render(z), tf.constant([j, j], tf.int32), None)
        return final, self._pre_py(final, idx), support

    def run(self, indices: Sequence[int], steps: int, z0: Optional[np.ndarray],
            window: np.ndarray, seed_offset: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Optimise images for ``indices`` from the logits ``z0`` (None: a fresh init) for the
        objective weighted by ``window``; returns numpy (final images NHWC, pre-activation maps,
        support (H, W))."""
        tf = self.tf
        li = core.loop_inputs(self.plan, indices, steps, z0, seed_offset)
        args = (tf.constant(li.z0), tf.constant(li.indices), tf.constant(li.offsets),
                tf.constant(li.transforms), tf.constant(np.asarray(window, np.float32)))
        final, pre, support = self._run(*args)
        return final.numpy(), pre.numpy(), support.numpy()
