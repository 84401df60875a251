"""The batched optimisation loop for Keras 3 on the JAX backend (``jax.grad``; see ``core``).

The whole loop of one batch is one jitted function. The model's variables are passed to it as
arguments and mapped onto the model with ``keras.StatelessScope`` inside the trace, so a compiled
loop is reused across calls and always sees the current weights (never constants of the trace).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from tensorboard_archviz.filters import core


class JaxOptimizer:
    """Batched optimisation of images for one layer (jax arrays, NHWC)."""

    def __init__(self, plan: core.Plan, forward, head, post, model):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp, self.plan = jax, jnp, plan
        self.forward, self.head = forward, head
        self.post = post or (lambda pre, idx: (pre, pre))
        self.variables = list(model.variables)
        bases = core.make_bases(plan)
        c = lambda a: None if a is None else jnp.asarray(a)
        self.dh, self.dw, self.spec, self.color = (c(bases.dct_h), c(bases.dct_w),
                                                   c(bases.spectrum_scale), c(bases.color))
        self._loop = jax.jit(self._run_py, static_argnums=(7,))

    def render(self, z):
        """Logits (B, C, Hc, Wc) -> canvas images (B, Hc, Wc, C) in the value range."""
        jnp = self.jnp
        if self.dh is not None:
            z = jnp.einsum("hy,bchw,wx->bcyx", self.dh, z * self.spec, self.dw)
        if self.color is not None:
            z = jnp.einsum("ij,bjhw->bihw", self.color, z)
        if self.plan.gain > 0:
            z = z - z.mean(axis=(1, 2, 3), keepdims=True)
            z = self.plan.gain * z / jnp.sqrt((z * z).mean(axis=(1, 2, 3), keepdims=True)
                                              + core.GAIN_EPS)
        lo, hi = self.plan.value_range
        return jnp.transpose(lo + (hi - lo) * self.jax.nn.sigmoid(z), (0, 2, 3, 1))

    def to_model(self, canvas, offset, transform):
        from keras import ops
        ch, cw = self.plan.crop_hw
        b, _, _, c = canvas.shape
        x = self.jax.lax.dynamic_slice(canvas, (0, offset[0], offset[1], 0), (b, ch, cw, c))
        if transform is not None:
            transform = self.jnp.broadcast_to(transform[None], (b, 8))
            x = ops.image.affine_transform(x, transform, interpolation="bilinear",
                                           fill_mode="reflect", data_format="channels_last")
        s = self.plan.scale
        if s > 1:
            x = x.reshape(b, ch // s, s, cw // s, s, c).mean(axis=(2, 4))
        return x

    def _objective(self, x, idx, window):
        jnp = self.jnp
        pre = self.head(self.forward(x), idx)
        if self.plan.objective == "centre":
            return jnp.sum(pre * window)
        lin, post = self.post(pre, idx)
        mask = (window > 0).astype(post.dtype)
        per = core.objective_terms(None, jnp.sum(lin * window, (1, 2)),
                                   jnp.sum(post * window, (1, 2)),
                                   jnp.max(post * mask, (1, 2)), self.plan.objective, jnp.where)
        return jnp.sum(per)

    def _run_py(self, values, z, idx, offsets, transforms, window, steps, with_transforms: bool):
        import keras
        jax, jnp, plan = self.jax, self.jnp, self.plan
        b1, b2, eps = 0.9, 0.999, 1e-8
        with keras.StatelessScope(state_mapping=list(zip(self.variables, values))):
            def body(t, carry):
                z, m, v, support = carry
                x, pullback = jax.vjp(lambda zz: self.to_model(
                    self.render(zz), offsets[t], transforms[t] if with_transforms else None), z)
                gx = jax.grad(self._objective)(x, idx, window)
                (g,) = pullback(gx)
                support = support + jnp.sum(jnp.abs(gx), axis=(0, 3))
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                tt = (t + 1).astype(jnp.float32)
                z = z + plan.lr * (m / (1 - b1 ** tt)) / (jnp.sqrt(v / (1 - b2 ** tt)) + eps)
                return z, m, v, support

            init = (z, jnp.zeros_like(z), jnp.zeros_like(z), jnp.zeros(plan.image_hw, jnp.float32))
            z, _, _, support = jax.lax.fori_loop(0, steps, body, init)
            j = plan.jitter
            final = self.to_model(self.render(z), (j, j), None)
            pre = self.head(self.forward(final), idx)
        return final, pre, support

    def run(self, indices: Sequence[int], steps: int, z0: Optional[np.ndarray],
            window: np.ndarray, seed_offset: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Optimise images for ``indices`` from the logits ``z0`` (None: a fresh init) for the
        objective weighted by ``window``; returns numpy (final images NHWC, pre-activation maps,
        support (H, W))."""
        jnp = self.jnp
        # The schedule is padded to the plan's length and the step count is traced: one compiled
        # loop serves the 1-step probe and the full run.
        li = core.loop_inputs(self.plan, indices, steps, z0, seed_offset, self.plan.steps)
        values = [v.value for v in self.variables]
        final, pre, support = self._loop(
            values, jnp.asarray(li.z0), jnp.asarray(li.indices), jnp.asarray(li.offsets),
            jnp.asarray(li.transforms), jnp.asarray(np.asarray(window, np.float32)),
            jnp.asarray(steps, jnp.int32), li.transformed)
        to_np: Any = lambda a: np.asarray(a, np.float32)
        return to_np(final), to_np(pre), to_np(support)
