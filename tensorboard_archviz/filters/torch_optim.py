"""The batched optimisation loop on torch tensors (NCHW), shared by the PyTorch backend and by
Keras on its torch backend. The method is described in ``core``."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

import numpy as np

from tensorboard_archviz.filters import core

def free_cores() -> Tuple[int, float]:
    """(cores this process may use, the 1-minute load average; -1 when unknown)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = -1.0
    return cores, load


def choose_threads(requested: Optional[int], torch) -> Tuple[int, str]:
    """The intra-op threads for the optimisation and why: ``requested`` (the ``threads``
    option), else torch's own setting, lowered to the cores the load average leaves free (at
    least 1). The loops run many small operations; OpenMP threads waiting for a core another
    process holds make them several times slower (8x measured at load 14 on 2 cores)."""
    own = int(torch.get_num_threads())
    if requested is not None:
        return int(requested), "threads=%d" % int(requested)
    cores, load = free_cores()
    if load < 0:
        return own, "torch's setting"
    free = max(1, int(round(cores - load)))
    if free >= own:
        return own, "torch's setting"
    return free, "load average %.1f on %d cores" % (load, cores)


@contextlib.contextmanager
def num_threads(n: int, torch) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the duration, then restored."""
    saved = int(torch.get_num_threads())
    if saved != n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if saved != n:
            torch.set_num_threads(saved)


# head(model input of the layer, idx) -> pre-activation maps (B, Ho, Wo);
# post(pre, idx) -> (normalised linear output, post-activation), both (B, Ho, Wo).
Head = Callable[[Any, Any], Any]
Post = Callable[[Any, Any], Tuple[Any, Any]]


class TorchOptimizer:
    """Batched optimisation of images for one layer (torch tensors, NCHW).

    ``forward`` (images -> the layer's input), ``head`` and ``post`` read the model's current
    weights at every call: nothing of the model is cached here.
    """

    def __init__(self, plan: core.Plan, forward, head: Head, post: Optional[Post], device, torch,
                 dtype=None):
        self.torch, self.plan, self.forward, self.head = torch, plan, forward, head
        self.post = post or (lambda pre, idx: (pre, pre))
        self.dtype = dtype or torch.float32
        bases = core.make_bases(plan)
        t = lambda a: None if a is None else torch.as_tensor(a, device=device, dtype=self.dtype)
        self.dh, self.dw, self.spec, self.color = (t(bases.dct_h), t(bases.dct_w),
                                                   t(bases.spectrum_scale), t(bases.color))
        if self.dh is not None:
            self.dh_t = self.dh.t().contiguous()
        self.device = device
        # oneDNN's CPU convolutions run channels-last (NHWC) images without reordering them at
        # every layer: about 1.2x less CPU for the forward + backward of a small ResNet.
        self.channels_last = plan.channels_last and getattr(device, "type", "cpu") == "cpu"

    def render(self, z):
        torch = self.torch
        if self.dh is not None:
            z = torch.matmul(torch.matmul(self.dh_t, z * self.spec), self.dw)
        if self.color is not None:
            z = torch.einsum("ij,bjhw->bihw", self.color, z)
        if self.plan.gain > 0:
            z = z - z.mean(dim=(1, 2, 3), keepdim=True)
            z = self.plan.gain * z * torch.rsqrt((z * z).mean(dim=(1, 2, 3), keepdim=True)
                                                 + core.GAIN_EPS)
        lo, hi = self.plan.value_range
        return lo + (hi - lo) * torch.sigmoid(z)

    def to_model(self, canvas, offset, affine):
        import torch.nn.functional as F
        ch, cw = self.plan.crop_hw
        oy, ox = int(offset[0]), int(offset[1])
        x = canvas[:, :, oy:oy + ch, ox:ox + cw]
        if affine is not None:
            theta = self.torch.as_tensor(affine, device=self.device, dtype=self.dtype)
            theta = theta[None].expand(x.shape[0], 2, 3)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                              align_corners=False)
        if self.plan.scale > 1:
            x = F.avg_pool2d(x, self.plan.scale)
        if self.channels_last:
            x = x.contiguous(memory_format=self.torch.channels_last)
        return x

    def final_images(self, z):
        j = self.plan.jitter
        return self.to_model(self.render(z), (j, j), None)

    def pre(self, x, idx):
        return self.head(self.forward(x), idx)

    def objective(self, x, idx, window, mask):
        pre = self.pre(x, idx)
        if self.plan.objective == "centre":
            return (pre * window).sum()
        lin, post = self.post(pre, idx)
        post_max = (post * mask).amax(dim=(1, 2))
        per = core.objective_terms(None, (lin * window).sum((1, 2)), (post * window).sum((1, 2)),
                                   post_max, self.plan.objective, self.torch.where)
        return per.sum()

    def run(self, indices: Sequence[int], steps: int, z0: Optional[np.ndarray],
            window: np.ndarray, seed_offset: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Optimise images for ``indices`` from the logits ``z0`` (None: a fresh init) for the
        objective weighted by ``window`` (Ho, Wo).

        Returns numpy (final images NHWC, their pre-activation maps (B, Ho, Wo), |d objective /
        d model input| summed over steps, batch and channels (H, W): the objective's support).
        """
        torch = self.torch
        plan = self.plan
        idx = torch.as_tensor(list(indices), dtype=torch.long, device=self.device)
        if z0 is None:
            z0 = core.init_params(plan, len(indices), seed_offset)
        z = torch.as_tensor(np.array(z0, np.float32), device=self.device,
                            dtype=self.dtype).requires_grad_(True)
        w = torch.as_tensor(window, device=self.device, dtype=self.dtype)
        mask = (w > 0).to(self.dtype)
        sched = core.make_schedule(plan, steps, seed_offset)
        m = torch.zeros_like(z)
        v = torch.zeros_like(z)
        support = torch.zeros(plan.image_hw, device=self.device, dtype=self.dtype)
        b1, b2, eps = 0.9, 0.999, 1e-8

        for t in range(steps):
            aff = None if sched.affines is None else sched.affines[t]
            with torch.enable_grad():     # also when called under torch.no_grad()
                x = self.to_model(self.render(z), sched.offsets[t], aff)
                g, gx = torch.autograd.grad(self.objective(x, idx, w, mask), (z, x))
            with torch.no_grad():
                support += gx.abs().sum(dim=(0, 1))
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                step = plan.lr / (1 - b1 ** (t + 1))
                denom = (v / (1 - b2 ** (t + 1))).sqrt_().add_(eps)
                z.addcdiv_(m, denom, value=step)      # ascent
        with torch.no_grad():
            final = self.final_images(z)
            pre = self.pre(final, idx)
        to_np = lambda a: a.detach().float().cpu().numpy()
        return to_np(final.permute(0, 2, 3, 1)), to_np(pre), to_np(support)
