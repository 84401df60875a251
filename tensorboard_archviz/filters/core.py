"""Framework-neutral core of filter maximisation: options, plans, parametrisation bases, schedules.

The method (every backend follows it; only the gradient code differs):

* All chosen filters of one layer are optimised **together as one batch**: image ``b`` maximises
  filter ``indices[b]``. The model is truncated at the layer's input and run in inference mode;
  the layer itself is applied per image to that image's filter only (a depthwise convolution
  plus a sum), so the work at the target layer is ``1/filters`` of a plain forward pass. The
  layer's weights (and those of what follows it) are read at every call, never cached.
* What the filter's output goes through next in the model (BatchNorm in inference form, then an
  elementwise activation; ``Post``) is applied per image too: the "post-activation" of a filter.
* **First conv layer** (``objective="centre"``): ``logits`` are the pixels themselves and the
  objective is the filter's pre-activation at the centre of its output map (its maximiser is the
  kernel's sign pattern; a mean over positions would only see the border of a zero-sum kernel).
  ``image = lo + (hi - lo) * sigmoid(logits)``. Tiles show the receptive field of that centre
  position (``crop``) and the tile JSON carries the kernel itself.
* **Deeper layers** (``objective="interior"``): the mean post-activation over the *interior*
  positions of the output map (those whose receptive field lies inside the image, so nothing is
  gained from the zero padding at the border), which asks for the pattern the filter answers to
  everywhere: its preferred orientation and frequency, not one bright/dark blob. ``logits`` are a
  spatially decorrelated spectrum (an orthonormal cosine (DCT-II) basis with 1/f amplitude, as in
  Lucid; RGB also gets Lucid's colour decorrelation), normalised per image to zero mean and unit
  deviation and multiplied by a fixed gain (1.5) before the sigmoid: the image contrast is fixed,
  so the optimiser can only move *where* the image is bright, never push pixels into saturation.
  Jitter of +-2 px and a random scale of 0.95-1.05 each step keep the pattern free of
  pixel-aligned checkerboards. While no interior position fires at all, the gradient is taken
  from the linear (pre-activation, normalised) output instead, so a filter that starts below its
  threshold still moves.
* Adam (lr 0.05) on the logits: 128 steps (``fast=True``: 64), first layer and deeper alike
  (deeper layers used to take 256: twice the time for little more activation;
  bench/bench_filters.py section 5 prints both side by side).
* Reported per filter: ``score`` = the objective on the final image, ``pre_score`` /
  ``post_score`` = the conv's own output / the post-activation over the same window, and the
  firing state judged on the post-activation of its own optimised image: ``fires`` is ``"yes"``,
  ``"after_norm"`` (the conv's own output is <= 0 everywhere, but BatchNorm shifts it into the
  active range) or ``"never"`` (``dead``: the post-activation is <= 0 at every position), with
  ``dead_reason``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from tensorboard_archviz.util import one_line

METHOD = "batched-adam-fourier"
OBJECTIVES = ("auto", "centre", "interior", "mean")
DEFAULT_GAIN = 1.5
logger = logging.getLogger("tensorboard_archviz.filters")

# Lucid's colour decorrelation (square root of ImageNet's colour covariance), normalised.
_COLOR_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                            [0.27, 0.00, -0.05],
                            [0.27, -0.09, 0.03]], dtype=np.float64)
COLOR_CORRELATION = (_COLOR_SVD_SQRT / np.max(np.linalg.norm(_COLOR_SVD_SQRT, axis=0))).astype(np.float32)


@dataclass
class GridResult:
    """One layer's filter grid: ``png`` bytes plus the JSON-safe ``tiles`` metadata.

    ``images`` holds the optimised images, shape (N, H, W, C) float32 in the value range, in
    tile order (not written anywhere; for tests and callers that want the raw pixels).
    """
    node_id: str
    png: bytes
    tiles: Dict[str, Any]
    images: Optional[np.ndarray] = field(default=None, repr=False)


@dataclass
class Options:
    """Options of ``make_grids`` (every backend); unknown names are rejected."""
    steps: Optional[int] = None          # default 128 (fast: 64), first layer and deeper alike
    fast: bool = False
    lr: float = 0.05
    max_filters: int = 64                # the first max_filters filters of a wider layer
    filters: Optional[Sequence[int]] = None   # explicit filter indices (overrides max_filters)
    value_range: Optional[Tuple[float, float]] = None
    image_size: Optional[Tuple[int, int]] = None   # (h, w) when the model does not fix it
    parametrization: str = "auto"        # "auto" | "pixel" | "fourier"
    objective: str = "auto"              # "auto" (centre: first conv, interior: deeper) |
                                         # "centre" | "interior" | "mean"
    gain: Optional[float] = None         # fixed contrast: logits normalised per image x gain;
                                         # None: 1.5 for "fourier", off for "pixel"; 0: off
    decay: float = 1.0                   # 1/f^decay amplitude scaling of the fourier basis
    center: Optional[float] = 0.0        # objective "centre": 0: centre neuron; >0: Gaussian
                                         # sigma / output size; None: plain spatial mean
    crop: str = "auto"                   # "auto": tiles show the objective's receptive field
                                         # when it is smaller than the image; "off"
    jitter: Optional[int] = None         # px at the optimisation scale; None: 2 px deeper
                                         # (1 for the pixel-parametrised first layer)
    transforms: str = "auto"             # "auto" (deeper: scale 0.95-1.05, + rotation when
                                         # >= 64 px) | "on" | "off"
    upsample_tiny: bool = True           # first layer: optimise inputs <= 32 px at 2x
    seed: int = 0
    chunk_size: Optional[int] = None     # images per batch; None: measured (see run_in_chunks)
    memory_mb: float = 1024.0            # memory budget of one batch
    margin: int = 2                      # px between tiles in the PNG
    tile_min: int = 64                   # tiny images are upscaled (nearest) to at least this
    max_png_side: int = 2048
    init_sd: float = 0.01
    channels_last: bool = True           # PyTorch on CPU: feed the model channels-last images
                                         # (same numbers, less time); False: contiguous NCHW
    threads: Optional[int] = None        # PyTorch intra-op threads during the optimisation;
                                         # None: torch's setting, fewer when the load average
                                         # leaves fewer cores free (torch_optim.choose_threads)

    @property
    def n_steps(self) -> int:
        """Steps of the first conv layer (see ``steps_for``)."""
        return self.steps_for(True)

    def steps_for(self, first_conv: bool) -> int:
        """Steps of a layer: ``steps``, else 128 (``fast``: 64) for the first conv and deeper
        layers alike (``first_conv`` is kept so a default can depend on it again)."""
        if self.steps is not None:
            return int(self.steps)
        return 64 if self.fast else 128


def resolve_options(options: Dict[str, Any]) -> Options:
    """Validated Options from keyword arguments; a bad name or value raises naming it."""
    names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError("make_grids got unknown option(s) %s; valid options: %s"
                        % (", ".join(map(repr, unknown)), ", ".join(sorted(names))))
    opts = Options(**options)
    if opts.steps is not None and (not isinstance(opts.steps, (int, np.integer)) or opts.steps < 1):
        raise ValueError("steps must be a positive int, got %r" % (opts.steps,))
    if not (opts.lr > 0):
        raise ValueError("lr must be > 0, got %r" % (opts.lr,))
    if not isinstance(opts.max_filters, (int, np.integer)) or opts.max_filters < 1:
        raise ValueError("max_filters must be a positive int, got %r" % (opts.max_filters,))
    if opts.parametrization not in ("auto", "pixel", "fourier"):
        raise ValueError("parametrization must be 'auto', 'pixel' or 'fourier', got %r"
                         % (opts.parametrization,))
    if opts.transforms not in ("auto", "on", "off"):
        raise ValueError("transforms must be 'auto', 'on' or 'off', got %r" % (opts.transforms,))
    if opts.value_range is not None:
        vr = tuple(float(v) for v in opts.value_range)
        if len(vr) != 2 or not (np.isfinite(vr).all() and vr[0] < vr[1]):
            raise ValueError("value_range must be (lo, hi) with lo < hi, got %r" % (opts.value_range,))
        opts.value_range = vr
    if opts.image_size is not None:
        size = opts.image_size
        if isinstance(size, (int, np.integer)):
            size = (size, size)
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError("image_size must be (h, w) with positive ints, got %r" % (opts.image_size,))
        opts.image_size = size
    if opts.center is not None and not (opts.center >= 0):
        raise ValueError("center must be >= 0 or None, got %r" % (opts.center,))
    if opts.objective not in OBJECTIVES:
        raise ValueError("objective must be one of %s, got %r"
                         % (", ".join(map(repr, OBJECTIVES)), opts.objective))
    if opts.gain is not None and not (float(opts.gain) >= 0):
        raise ValueError("gain must be >= 0 or None, got %r" % (opts.gain,))
    if opts.crop not in ("auto", "off"):
        raise ValueError("crop must be 'auto' or 'off', got %r" % (opts.crop,))
    if opts.chunk_size is not None and (not isinstance(opts.chunk_size, (int, np.integer))
                                        or opts.chunk_size < 1):
        raise ValueError("chunk_size must be a positive int or None, got %r" % (opts.chunk_size,))
    if opts.threads is not None and (not isinstance(opts.threads, (int, np.integer))
                                     or isinstance(opts.threads, bool) or opts.threads < 1):
        raise ValueError("threads must be a positive int or None, got %r" % (opts.threads,))
    if opts.jitter is not None and (not isinstance(opts.jitter, (int, np.integer)) or opts.jitter < 0):
        raise ValueError("jitter must be an int >= 0 or None, got %r" % (opts.jitter,))
    return opts


def choose_filters(n_total: int, opts: Options) -> List[int]:
    """The filter indices to visualise, in fixed ascending order."""
    if opts.filters is not None:
        idx = sorted({int(i) for i in opts.filters})
        bad = [i for i in idx if not 0 <= i < n_total]
        if bad:
            raise ValueError("filter indices %s out of range for a layer with %d filters" % (bad, n_total))
        if not idx:
            raise ValueError("filters= selects no filter")
        return idx
    return list(range(min(n_total, int(opts.max_filters))))


# ----------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """Everything a backend needs to optimise one layer (sizes in model pixels unless noted)."""
    node_id: str
    class_name: str
    indices: List[int]
    n_total: int
    channels: int                 # image channels fed to the model
    image_hw: Tuple[int, int]     # model input size
    value_range: Tuple[float, float]
    scale: int                    # optimisation scale (2 for tiny inputs)
    jitter: int                   # canvas margin at the optimisation scale
    parametrization: str
    steps: int
    lr: float
    transforms: bool
    seed: int
    init_sd: float
    decay: float
    center: Optional[float]
    objective: str = "centre"     # "centre" | "interior" | "mean"
    gain: float = 0.0             # > 0: fixed contrast (logits normalised per image x gain)
    rotate: bool = False          # random rotation (+-5 deg) with the random scale
    first_conv: bool = False
    channels_last: bool = True    # PyTorch on CPU: images enter the model channels-last

    @property
    def crop_hw(self) -> Tuple[int, int]:
        """The optimisation-scale crop that is downsampled to the model input."""
        return self.image_hw[0] * self.scale, self.image_hw[1] * self.scale

    @property
    def canvas_hw(self) -> Tuple[int, int]:
        ch, cw = self.crop_hw
        return ch + 2 * self.jitter, cw + 2 * self.jitter

    def describe(self) -> str:
        h, w = self.image_hw
        return ("%s (%s): %d of %d filters, %dx%dx%d in [%g, %g]%s, %s, %s objective, %d steps"
                % (self.node_id, self.class_name, len(self.indices), self.n_total, h, w,
                   self.channels, self.value_range[0], self.value_range[1],
                   ", optimised at 2x" if self.scale == 2 else "", self.parametrization,
                   self.objective, self.steps))


def make_plan(node_id: str, class_name: str, n_total: int, channels: int, image_hw: Tuple[int, int],
              value_range: Tuple[float, float], first_conv: bool, opts: Options) -> Plan:
    """Resolve the per-layer choices (filters, objective, scale, jitter, parametrisation, ...)."""
    h, w = int(image_hw[0]), int(image_hw[1])
    objective = opts.objective
    if objective == "auto":
        objective = "centre" if first_conv else "interior"
    if opts.parametrization == "auto":
        param = "pixel" if objective == "centre" and first_conv else "fourier"
    else:
        param = opts.parametrization
    # The centre objective sees a small receptive field: optimise tiny inputs at 2x so its
    # pattern is not aliased. The interior objective is optimised at the model's size.
    scale = 2 if (opts.upsample_tiny and objective == "centre" and max(h, w) <= 32) else 1
    if opts.jitter is not None:
        jitter = int(opts.jitter)
    elif param == "pixel":
        # The first layer is linear: jitter would only blur its kernel pattern. One canvas pixel
        # (half a model pixel at 2x) is enough against aliasing.
        jitter = 1
    elif objective == "centre":
        jitter = max(2, int(round(0.04 * scale * max(h, w))))
    else:
        jitter = 2 * scale
    if opts.transforms == "auto":
        transforms = objective != "centre" or min(h, w) >= 64
    else:
        transforms = opts.transforms == "on"
    gain = opts.gain if opts.gain is not None else (DEFAULT_GAIN if param == "fourier" else 0.0)
    return Plan(node_id=node_id, class_name=class_name, indices=choose_filters(n_total, opts),
                n_total=int(n_total), channels=int(channels), image_hw=(h, w),
                value_range=(float(value_range[0]), float(value_range[1])), scale=scale,
                jitter=jitter, parametrization=param, steps=opts.steps_for(first_conv),
                lr=float(opts.lr), transforms=transforms, seed=int(opts.seed),
                init_sd=float(opts.init_sd), decay=float(opts.decay), center=opts.center,
                objective=objective, gain=float(gain), rotate=transforms and min(h, w) >= 64,
                first_conv=bool(first_conv), channels_last=opts.channels_last)


# ----------------------------------------------------------------------------- parametrisation


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D`` (n x n): coefficients = D @ x, x = D.T @ coefficients."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (i + 0.5) * k / n)
    d[0, :] = np.sqrt(1.0 / n)
    return d


def fourier_scale(h: int, w: int, decay: float = 1.0) -> np.ndarray:
    """1/f^decay amplitude of each cosine coefficient (h x w), as in Lucid's ``fft_image``.

    Frequencies are in cycles per pixel (``k / 2n`` for DCT index k); the lowest is clamped at
    ``1 / max(h, w)``. The result is divided by its maximum so the DC term moves at the Adam rate.
    """
    fy = np.arange(h)[:, None] / (2.0 * h)
    fx = np.arange(w)[None, :] / (2.0 * w)
    f = np.sqrt(fy ** 2 + fx ** 2)
    s = 1.0 / np.maximum(f, 1.0 / max(h, w)) ** decay
    return s / s.max()


@dataclass
class Bases:
    """Numpy constants of a plan's parametrisation (backends convert them to tensors once)."""
    dct_h: Optional[np.ndarray]      # (Hc, Hc) or None for pixel
    dct_w: Optional[np.ndarray]      # (Wc, Wc)
    spectrum_scale: Optional[np.ndarray]   # (Hc, Wc)
    color: Optional[np.ndarray]      # (3, 3) or None


def make_bases(plan: Plan) -> Bases:
    hc, wc = plan.canvas_hw
    color = COLOR_CORRELATION if plan.channels == 3 else None
    if plan.parametrization == "pixel":
        return Bases(None, None, None, color)
    # Sqrt(Hc*Wc) makes the low-frequency end of the 1/f spectrum move pixels at roughly the rate
    # of a pixel parametrisation (the basis is orthonormal, so the DC coefficient alone is spread
    # over Hc*Wc pixels).
    scale = fourier_scale(hc, wc, plan.decay) * math.sqrt(hc * wc) / 4.0
    return Bases(dct_matrix(hc).astype(np.float32), dct_matrix(wc).astype(np.float32),
                 scale.astype(np.float32), color)


def init_params(plan: Plan, n: int, seed_offset: int = 0) -> np.ndarray:
    """Initial logits/coefficients, shape (n, C, Hc, Wc) float32 (grey with faint noise)."""
    rng = np.random.RandomState((plan.seed * 1000003 + seed_offset) % (2 ** 31))
    hc, wc = plan.canvas_hw
    return (plan.init_sd * rng.randn(n, plan.channels, hc, wc)).astype(np.float32)


def render_numpy(params: np.ndarray, plan: Plan, bases: Bases) -> np.ndarray:
    """Reference (numpy) rendering of params (n, C, Hc, Wc) to canvas images in the value range."""
    z = params.astype(np.float64)
    if bases.dct_h is not None:
        z = np.einsum("hy,nchw,wx->ncyx", bases.dct_h, z * bases.spectrum_scale, bases.dct_w)
    if bases.color is not None:
        z = np.einsum("ij,njhw->nihw", bases.color, z)
    if plan.gain > 0:
        z = z - z.mean(axis=(1, 2, 3), keepdims=True)
        z = plan.gain * z / np.sqrt((z ** 2).mean(axis=(1, 2, 3), keepdims=True) + GAIN_EPS)
    lo, hi = plan.value_range
    return (lo + (hi - lo) / (1.0 + np.exp(-z))).astype(np.float32)


GAIN_EPS = 1e-8


@dataclass
class Schedule:
    """Per-step random jitter offsets (and affine transforms) of one optimisation run."""
    offsets: np.ndarray          # (steps, 2) int: crop origin (y, x) in [0, 2*jitter]
    affines: Optional[np.ndarray]  # (steps, 2, 3) float32 normalised-coordinate affine, or None


def make_schedule(plan: Plan, steps: Optional[int] = None, seed_offset: int = 0) -> Schedule:
    steps = plan.steps if steps is None else steps
    rng = np.random.RandomState((plan.seed * 7919 + 17 + seed_offset) % (2 ** 31))
    offsets = rng.randint(0, 2 * plan.jitter + 1, size=(steps, 2))
    affines = None
    if plan.transforms:
        s = rng.uniform(0.95, 1.05, size=steps)
        a = np.deg2rad(rng.uniform(-5.0, 5.0, size=steps)) if plan.rotate else np.zeros(steps)
        affines = np.zeros((steps, 2, 3), np.float32)
        affines[:, 0, 0] = s * np.cos(a)
        affines[:, 0, 1] = -s * np.sin(a)
        affines[:, 1, 0] = s * np.sin(a)
        affines[:, 1, 1] = s * np.cos(a)
    return Schedule(offsets=offsets.astype(np.int64), affines=affines)


@dataclass
class LoopInputs:
    """The numpy inputs of one traced/compiled optimisation loop (TensorFlow, JAX)."""
    z0: np.ndarray            # (B, C, Hc, Wc) float32 initial logits
    indices: np.ndarray       # (B,) int32 filter of each image
    offsets: np.ndarray       # (n, 2) int32 jitter crop origins
    transforms: np.ndarray    # (n, 8) float32 projective transforms (``keras.ops.image``'s)
    transformed: bool         # whether the transforms are used at all


def loop_inputs(plan: Plan, indices: Sequence[int], steps: int, z0: Optional[np.ndarray],
                seed_offset: int = 0, length: int = 0) -> LoopInputs:
    """The schedule of ``steps`` steps (zero-padded to ``length`` rows, so one compiled loop
    serves several step counts) and the initial logits (``z0``, else a fresh draw)."""
    sched = make_schedule(plan, steps, seed_offset)
    n = max(steps, length)
    offsets = np.zeros((n, 2), np.int32)
    offsets[:steps] = sched.offsets
    trans = np.zeros((n, 8), np.float32)
    if sched.affines is not None:
        trans[:steps] = affine_to_projective(sched.affines, plan.crop_hw)
    if z0 is None:
        z0 = init_params(plan, len(indices), seed_offset)
    return LoopInputs(np.array(z0, np.float32), np.asarray(indices, np.int32), offsets, trans,
                      sched.affines is not None)


def affine_to_projective(affines: np.ndarray, hw: Tuple[int, int]) -> np.ndarray:
    """(steps, 2, 3) normalised affines (``torch.nn.functional.affine_grid``'s convention, no
    translation) -> (steps, 8) pixel-space projective transforms (``keras.ops.image``'s), both
    mapping output points to input points about the image centre."""
    h, w = float(hw[0]), float(hw[1])
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    a, b = affines[:, 0, 0], affines[:, 0, 1]
    c, d = affines[:, 1, 0], affines[:, 1, 1]
    out = np.zeros((len(affines), 8), np.float32)
    out[:, 0] = a
    out[:, 1] = b * w / h
    out[:, 2] = cx - a * cx - b * (w / h) * cy
    out[:, 3] = c * h / w
    out[:, 4] = d
    out[:, 5] = cy - c * (h / w) * cx - d * cy
    return out


def center_window(out_hw: Tuple[int, int], center: Optional[float]) -> np.ndarray:
    """Objective weights over the filter's output map (sums to 1).

    ``center == 0``: the single centre position (the "neuron" objective); ``center > 0``: a
    centred Gaussian with sigma = center x the output size; ``None``: the plain spatial mean.
    """
    h, w = int(out_hw[0]), int(out_hw[1])
    if center is None:
        return np.full((h, w), 1.0 / (h * w), np.float32)
    if center == 0:
        g = np.zeros((h, w), np.float32)
        g[h // 2, w // 2] = 1.0
        return g
    sy, sx = max(center * h, 0.5), max(center * w, 0.5)
    y = (np.arange(h) - (h - 1) / 2.0) / sy
    x = (np.arange(w) - (w - 1) / 2.0) / sx
    g = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return (g / g.sum()).astype(np.float32)


def _interior_1d(lo: int, hi: int, n_out: int, n_in: int) -> np.ndarray:
    """Output positions whose receptive field (``[lo, hi]`` for the centre position, input
    pixels) stays inside ``[0, n_in)``; the stride is taken as the power of two nearest to
    n_in / n_out (convolution and pooling strides)."""
    stride = 2.0 ** round(math.log2(max(n_in / float(n_out), 1e-9)))
    shift = (np.arange(n_out) - n_out // 2) * stride
    ok = (lo + shift >= 0) & (hi + shift <= n_in - 1)
    if not ok.any():
        ok[n_out // 2] = True        # the receptive field is larger than the image: the centre
    return ok


def interior_window(out_hw: Tuple[int, int], support: Optional[np.ndarray]) -> np.ndarray:
    """Uniform objective weights (sum 1) over the interior of the output map.

    ``support`` (H, W) is |d (centre position) / d input|: its extent is the receptive field of
    the centre position. Without it (or when it is empty) every position counts.
    """
    ho, wo = int(out_hw[0]), int(out_hw[1])
    g = np.ones((ho, wo), np.float32)
    if support is not None:
        mask = support > 1e-6 * float(support.max() or 1.0)
        if mask.any():
            ys, xs = np.nonzero(mask)
            rows = _interior_1d(int(ys.min()), int(ys.max()), ho, support.shape[0])
            cols = _interior_1d(int(xs.min()), int(xs.max()), wo, support.shape[1])
            g = (rows[:, None] & cols[None, :]).astype(np.float32)
    return g / g.sum()


def support_crop(grad_abs: np.ndarray, plan: "Plan", opts: "Options"
                 ) -> Optional[Tuple[int, int, int, int]]:
    """The square region (y0, x0, h, w) of the model input that the objective can see.

    ``grad_abs`` (H, W) is |d objective / d input| at a random image: its support is the
    receptive field of the objective's window. The crop adds the jitter (and the reach of the
    random scale/rotation), is at least 8 px, and is None (no crop) when it would cover most of the image
    or when ``crop="off"``.
    """
    if opts.crop == "off" or plan.objective != "centre" or plan.center is None:
        return None
    h, w = grad_abs.shape
    mask = grad_abs > 1e-6 * float(grad_abs.max() or 1.0)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    pad = int(math.ceil(plan.jitter / plan.scale))
    if plan.transforms:
        # Scale (+-5 %) and rotation (+-5 deg) about the image centre move a point at distance
        # d by at most ~0.1 d.
        d = math.hypot(max(abs(ys.min() - h / 2.0), abs(ys.max() + 1 - h / 2.0)),
                       max(abs(xs.min() - w / 2.0), abs(xs.max() + 1 - w / 2.0)))
        pad += int(math.ceil(0.1 * d)) + 1
    y0, y1 = ys.min() - pad, ys.max() + 1 + pad
    x0, x1 = xs.min() - pad, xs.max() + 1 + pad
    side = max(y1 - y0, x1 - x0, min(8, h, w))
    if side >= 0.8 * min(h, w):
        return None
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    y0 = int(min(max(round(cy - side / 2.0), 0), h - side))
    x0 = int(min(max(round(cx - side / 2.0), 0), w - side))
    return (y0, x0, int(side), int(side))


# ----------------------------------------------------------------------------- batching


def affordable_chunk(n: int, bytes_per_image: float, opts: Options) -> int:
    """The largest batch that fits the memory budget (at least 1)."""
    budget = float(opts.memory_mb) * 2 ** 20
    return int(max(1, min(n, budget // max(bytes_per_image, 1.0))))


def chunk_bounds(n: int, chunk: int) -> List[Tuple[int, int]]:
    """Split n images into equal-as-possible batches of at most ``chunk``."""
    parts = int(math.ceil(n / float(max(1, chunk))))
    base, extra = divmod(n, parts)
    out, lo = [], 0
    for k in range(parts):
        hi = lo + base + (1 if k < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


# A batch whose whole working set is below this is run in one piece without timing.
SMALL_WORK_BYTES = 256 * 2 ** 20
_CHUNK_CACHE: Dict[Any, int] = {}


def run_in_chunks(n: int, bytes_per_image: float, opts: Options,
                  run_chunk: Callable[[int, int], None], warmup: Callable[[], None],
                  cache_key: Any = None, log: Optional[Callable[[str], None]] = None,
                  clock: Callable[[], float] = time.perf_counter) -> int:
    """Run ``run_chunk(lo, hi)`` over images 0..n-1 in batches; returns the batch size used.

    The size is the user's ``chunk_size``; else the whole layer when its working set is small;
    else it is measured on the real work: batches of 1, 4, 16, ... (capped by the memory budget)
    are run and timed until the per-image time stops improving, and the rest runs at the best
    size. Nothing is computed twice, and since a batch of 1 is among the sizes tried, batching is
    never slower than one filter at a time by more than the timing noise. The choice is cached
    per ``cache_key`` (a callback calls every epoch with the same shapes).
    """
    def run_fixed(lo: int, size: int) -> None:
        for a, b in chunk_bounds(n - lo, size):
            run_chunk(lo + a, lo + b)

    if opts.chunk_size is not None:
        size = int(min(n, opts.chunk_size))
        run_fixed(0, size)
        return size
    cap = affordable_chunk(n, bytes_per_image, opts)
    if cap >= n and n * bytes_per_image <= SMALL_WORK_BYTES:
        run_chunk(0, n)
        return n
    key = None if cache_key is None else (cache_key, n, cap)
    if key in _CHUNK_CACHE:
        run_fixed(0, _CHUNK_CACHE[key])
        return _CHUNK_CACHE[key]
    warmup()   # tracing / kernel selection must not be charged to the first measured batch
    lo, best, best_t, size, timings = 0, 1, float("inf"), 1, []
    while lo < n:
        size = min(size, cap, n - lo)
        t = clock()
        run_chunk(lo, lo + size)
        per_image = (clock() - t) / size
        timings.append("%d: %.3g s" % (size, per_image))
        lo += size
        if per_image < best_t:
            best, best_t = size, per_image
        if per_image > 1.15 * best_t or size >= cap:
            break         # larger batches stopped paying off (or cannot grow): settle
        size *= 4
    if lo < n:
        run_fixed(lo, best)
    if log is not None:
        log("  batch size %d of %d (memory cap %d; per image: %s)"
            % (best, n, cap, ", ".join(timings)))
    if key is not None:
        _CHUNK_CACHE[key] = best
    return best


# ----------------------------------------------------------------------------- results


def firing(pre: np.ndarray, post: np.ndarray, post_name: str) -> Tuple[str, Optional[str]]:
    """(``fires``, ``dead_reason``) of one filter on its own optimised image.

    ``"never"``: the post-activation is <= 0 at every position (dead); ``"after_norm"``: the
    conv's own output is <= 0 everywhere but the normalisation after it shifts it into the active
    range (not dead); ``"yes"``.
    """
    if float(np.max(post)) <= 0.0:
        return "never", ("never fires: %s is <= 0 at every position of its own optimised image "
                         "(max %.3g)" % (post_name, float(np.max(post))))
    if float(np.max(pre)) <= 0.0:
        return "after_norm", ("fires only after normalisation: the conv's own output is <= 0 "
                              "everywhere (max %.3g), %s is not" % (float(np.max(pre)), post_name))
    return "yes", None


def tile_stats(pre: np.ndarray, lin: np.ndarray, post: np.ndarray, window: np.ndarray,
               plan: "Plan", post_name: str) -> List[Dict[str, Any]]:
    """Per image: the objective (score), pre- and post-activation over the window, firing."""
    out = []
    for p, l, q in zip(pre, lin, post):
        pre_s, post_s = float(np.sum(p * window)), float(np.sum(q * window))
        if plan.objective == "centre":
            score = pre_s
        elif np.max(q[window > 0]) > 0 or np.array_equal(l, q):
            score = post_s
        else:
            score = float(np.sum(l * window))
        fires, reason = firing(p, q, post_name)
        out.append({"score": score, "pre_score": pre_s, "post_score": post_s,
                    "dead": fires == "never", "fires": fires, "dead_reason": reason})
    return out


def post_description(norm: Optional[str], activation: Optional[str]) -> str:
    """How the post-activation is named in the reasons, e.g. "the output after BatchNorm + relu"."""
    parts = [p for p in (norm, activation) if p]
    return "the output after %s" % " + ".join(parts) if parts else "the conv's output"


class Budget:
    """Time budget, logging and the progress bar shared by the backends' ``make_grids`` loops.

    Every line goes to the ``tensorboard_archviz.filters`` logger (INFO) and to ``log`` if given;
    a ``tqdm`` bar over the layers is shown when stderr is a terminal and tqdm is installed
    (``progress=False`` turns it off).
    """

    def __init__(self, time_budget: Optional[float], log: Optional[Callable[[str], None]],
                 progress: Optional[bool] = None):
        if time_budget is not None and not (float(time_budget) > 0):
            raise ValueError("time_budget must be > 0 seconds or None, got %r" % (time_budget,))
        self.time_budget = None if time_budget is None else float(time_budget)
        self._log = log
        self.start = time.perf_counter()
        self.progress = progress
        self.bar: Any = None

    def log(self, line: str) -> None:
        logger.info("%s", line)
        if self._log is not None:
            self._log(line)

    def open_bar(self, total: int) -> None:
        """A tqdm bar over ``total`` layers, when wanted and possible."""
        want = self.progress
        if want is None:
            try:
                want = sys.stderr is not None and sys.stderr.isatty()
            except (AttributeError, ValueError):
                want = False
        if not want or total < 1:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, desc="archviz filters", unit="layer", leave=False)

    def advance(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def skip_reason(self, done: int, total: int) -> str:
        """The sentence a layer skipped for the budget carries (see ``skipped_grid``)."""
        return ("not computed at this step: the time budget of %g s was spent after %d of %d "
                "layers (%.1f s); a larger time_budget (None: no limit) computes every layer"
                % (self.time_budget or 0.0, done, total, self.elapsed()))

    def exhausted(self, done: int, remaining: Sequence[str]) -> bool:
        """True (and says so) when the budget is spent and layers remain. The first layer is
        always started, so every call yields at least one grid."""
        if self.time_budget is None or not remaining or done == 0 \
                or self.elapsed() <= self.time_budget:
            return False
        self.log("archviz filters: time budget of %g s spent after %d layer(s) (%.1f s); "
                 "skipped %d layer(s): %s" % (self.time_budget, done, self.elapsed(),
                                              len(remaining), ", ".join(remaining)))
        return True


def objective_name(plan: "Plan") -> str:
    if plan.objective == "interior":
        return "post-activation, mean over the interior positions"
    if plan.objective == "mean":
        return "post-activation, mean over all positions"
    if plan.center is None:
        return "pre-activation, plain spatial mean"
    if plan.center == 0:
        return "pre-activation at the centre position"
    return "pre-activation, Gaussian window sigma=%g x output size" % plan.center


def kernel_json(kernel: np.ndarray) -> List[Any]:
    """A (kh, kw, cin) kernel as nested lists with 5 significant digits."""
    return [[[float("%.5g" % v) for v in px] for px in row] for row in np.asarray(kernel)]


@dataclass
class LayerFacts:
    """What a backend knows of one layer beyond its plan (for the tile metadata)."""
    activation: Optional[str] = None        # name of the activation after the conv
    norm: Optional[str] = None              # "BatchNorm" when one follows the conv
    kernels: Optional[np.ndarray] = None    # first layer: (N, kh, kw, cin), in tile order


def build_result(plan: Plan, images: np.ndarray, stats: List[Dict[str, Any]], seconds: float,
                 facts: LayerFacts, chunk: int, opts: Options,
                 crop: Optional[Tuple[int, int, int, int]] = None) -> GridResult:
    """Tile the images (N, H, W, C) (cut to ``crop`` if given) into a PNG and assemble the tiles
    metadata."""
    from tensorboard_archviz.filters import grid

    shown = images
    if crop is not None:
        y0, x0, ch, cw = crop
        shown = images[:, y0:y0 + ch, x0:x0 + cw]
    png, layout = grid.encode_grid(shown, plan.value_range, margin=opts.margin,
                                   tile_min=opts.tile_min, max_side=opts.max_png_side)
    tiles = []
    for k, (index, st) in enumerate(zip(plan.indices, stats)):
        r, c = divmod(k, layout["cols"])
        tile = dict(st, index=int(index), row=r, col=c)
        if facts.kernels is not None:
            tile["kernel"] = kernel_json(facts.kernels[k])
        tiles.append(tile)
    meta = {
        "tile_size": layout["tile_size"], "margin": layout["margin"], "rows": layout["rows"],
        "cols": layout["cols"], "channels": layout["channels"],
        "value_range": [plan.value_range[0], plan.value_range[1]],
        "image_size": [plan.image_hw[0], plan.image_hw[1]], "steps": plan.steps, "method": METHOD,
        "parametrization": plan.parametrization, "seconds": round(float(seconds), 3),
        "tiles": tiles,
        # Extra keys (not in the minimal contract).
        "crop": None if crop is None else [int(v) for v in crop],
        "filters_total": plan.n_total, "layer_class": plan.class_name,
        "activation": facts.activation, "norm": facts.norm,
        "post": post_description(facts.norm, facts.activation),
        "scale": plan.scale, "chunk_size": int(chunk),
        "objective": objective_name(plan), "objective_kind": plan.objective,
        "gain": plan.gain, "first_layer": plan.first_conv,
    }
    if facts.kernels is not None:
        meta["kernel_shape"] = [int(d) for d in facts.kernels.shape[1:]]
    return GridResult(node_id=plan.node_id, png=png, tiles=meta, images=images)


RunFn = Callable[[Sequence[int], int, Optional[np.ndarray], np.ndarray],
                 Tuple[np.ndarray, np.ndarray, np.ndarray]]


def objective_window(plan: Plan, out_hw: Tuple[int, int], run: RunFn, z0: np.ndarray,
                     batch: int) -> np.ndarray:
    """The objective's weights over the output map; for "interior", one gradient of the centre
    position (one step of ``run`` on the first ``batch`` images) measures the receptive field."""
    if plan.objective == "centre":
        return center_window(out_hw, plan.center)
    if plan.objective == "mean":
        return center_window(out_hw, None)
    # A batch of the size the layer runs at (not one image): a traced/compiled loop is reused.
    _, _, support = run(plan.indices[:batch], 1, z0[:batch], center_window(out_hw, 0.0))
    return interior_window(out_hw, support)


def optimise_layer(plan: Plan, opts: Options, out_hw: Tuple[int, int], run: RunFn,
                   post_fn: Callable[[np.ndarray, Sequence[int]], Tuple[np.ndarray, np.ndarray]],
                   facts: LayerFacts, bytes_per_image: float, cache_key: Any = None,
                   log: Optional[Callable[[str], None]] = None) -> GridResult:
    """Optimise all of a plan's filters with a backend's ``run`` and assemble the GridResult.

    ``run(indices, steps, z0, window)`` optimises one batch from the logits ``z0`` for the
    objective weighted by ``window`` and returns (final images (B, H, W, C), pre-activation maps
    (B, Ho, Wo), |d objective / d input| summed over steps and batch (H, W));
    ``post_fn(pre, indices)`` returns (the normalised linear output, the post-activation).
    Every filter's initial logits come from one seeded draw for the whole layer and every batch
    uses the same jitter schedule, so the images do not depend on how the layer is batched.
    """
    n = len(plan.indices)
    z_all = init_params(plan, n)
    probe = affordable_chunk(n, bytes_per_image, opts)
    if opts.chunk_size is not None:
        probe = min(probe, int(opts.chunk_size))
    window = objective_window(plan, out_hw, run, z_all, probe)
    outs: List[Tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    def run_chunk(lo: int, hi: int) -> None:
        images, pre, sup = run(plan.indices[lo:hi], plan.steps, z_all[lo:hi], window)
        outs.append((lo, images, pre, sup))

    chunk = run_in_chunks(n, bytes_per_image, opts, run_chunk,
                          lambda: run(plan.indices[:1], 1, z_all[:1], window), cache_key, log)
    outs.sort(key=lambda o: o[0])
    images = np.concatenate([o[1] for o in outs]).astype(np.float32)
    pre = np.concatenate([o[2] for o in outs]).astype(np.float32)
    support = np.sum([o[3] for o in outs], axis=0)
    lin, post = post_fn(pre, plan.indices)
    stats = tile_stats(pre, np.asarray(lin, np.float32), np.asarray(post, np.float32), window,
                       plan, post_description(facts.norm, facts.activation))
    crop = support_crop(support, plan, opts)
    return build_result(plan, images, stats, 0.0, facts, chunk, opts, crop)


def objective_terms(pre_w: Any, lin_w: Any, post_w: Any, post_max: Any, objective: str,
                    where: Callable[[Any, Any, Any], Any]) -> Any:
    """Per-image objective from window-weighted sums (any framework's tensors): the centre
    objective is the pre-activation; otherwise the post-activation, or, while no position of the
    window fires yet, the normalised linear output (so the gradient never vanishes)."""
    if objective == "centre":
        return pre_w
    return where(post_max > 0, post_w, lin_w)


# ----------------------------------------------------------------------------- the driver


@dataclass
class Probe:
    """What one forward pass learnt of a target layer (every backend fills the same fields)."""
    in_shape: Tuple[int, ...] = ()
    out_shape: Tuple[int, ...] = ()
    bytes_before: int = 0             # activation bytes per image computed before the layer
    norm: Any = None                  # the BatchNorm layer/module that consumes its output
    activation: Any = None            # the activation layer/module after it (or after the norm)
    error: Optional[str] = None       # why the layer cannot be visualised (e.g. not reached)

    def bytes_per_image(self, plan: Plan) -> float:
        """Working-set estimate of one image in a batch: the activations up to the layer (kept
        for the backward pass, about 3x) plus the image's parametrisation and Adam state."""
        hc, wc = plan.canvas_hw
        return 3.0 * (self.bytes_before + 4 * int(np.prod(self.in_shape[1:]))) \
            + 4 * 8 * plan.channels * hc * wc


@dataclass
class Target:
    """One layer to visualise: its node id, the backend's layer object and its probe."""
    node_id: str
    layer: Any
    probe: Probe


@dataclass
class Skipped:
    """A layer that got no grid in a call, and why (``kind``: "time_budget", "unreached",
    "failed"; ``reason``: one sentence)."""
    node_id: str
    kind: str
    reason: str
    layer_class: str = ""


class LayerSteps(Protocol):
    """The per-layer steps a backend gives the driver (its model, images and framework are
    fields of the implementing object)."""

    def plan(self, target: Target, opts: Options) -> Plan:
        """The layer's plan (filters, objective, scale, ...; ``make_plan``)."""

    def run(self, target: Target, plan: Plan, opts: Options,
            log: Callable[[str], None]) -> GridResult:
        """Optimise the plan's filters and assemble the grid (``optimise_layer``)."""


class GridRun:
    """What ``make_grids`` returns: an iterator of ``GridResult`` (made lazily, one layer at a
    time) whose ``skipped`` list names, as the run goes, the layers that got no grid and why
    (writers record them with ``skipped_grid`` so the Filters view can say so)."""

    def __init__(self, make: Callable[[List[Skipped]], Iterator[GridResult]]):
        self.skipped: List[Skipped] = []
        self._it = make(self.skipped)

    def __iter__(self) -> "GridRun":
        return self

    def __next__(self) -> GridResult:
        return next(self._it)

    def close(self) -> None:
        self._it.close()


def drive(steps: LayerSteps, targets: Sequence[Target], opts: Options, budget: "Budget",
          skipped: List[Skipped]) -> Iterator[GridResult]:
    """The one per-layer loop of every backend: time budget, skips (recorded in ``skipped``),
    plan, log lines, timing, and a failed layer costing no other layer its grid."""
    budget.open_bar(len(targets))
    try:
        started = 0
        for k, target in enumerate(targets):
            remaining = targets[k:]
            if budget.exhausted(started, [t.node_id for t in remaining]):
                reason = budget.skip_reason(started, len(targets))
                skipped.extend(Skipped(t.node_id, "time_budget", reason,
                                       type(t.layer).__name__) for t in remaining)
                return
            if target.probe.error is not None:
                budget.log("archviz filters: skipped %s: %s" % (target.node_id, target.probe.error))
                skipped.append(Skipped(target.node_id, "unreached", target.probe.error,
                                       type(target.layer).__name__))
                budget.advance(target.node_id)
                continue
            started += 1
            result = _drive_one(steps, target, opts, budget, "[%d/%d]" % (k + 1, len(targets)),
                                skipped)
            budget.advance(target.node_id)
            if result is not None:
                yield result
    finally:
        budget.close()


def _drive_one(steps: LayerSteps, target: Target, opts: Options, budget: "Budget", pos: str,
               skipped: List[Skipped]) -> Optional[GridResult]:
    """Plan and run one layer with its log lines and timing; None (logged, recorded) if it
    failed."""
    t0 = time.perf_counter()
    plan = steps.plan(target, opts)   # a bad option (e.g. filters= out of range) raises
    budget.log("archviz filters %s %s" % (pos, plan.describe()))
    try:
        result = steps.run(target, plan, opts, budget.log)
    except Exception as e:  # one bad layer must not cost the others their grids
        budget.log("archviz filters %s %s failed: %s" % (pos, target.node_id, one_line(e)))
        skipped.append(Skipped(target.node_id, "failed", "making its grid failed: %s"
                               % one_line(e), type(target.layer).__name__))
        return None
    result.tiles["seconds"] = round(time.perf_counter() - t0, 3)
    budget.log("archviz filters %s %s done in %.1f s (%d dead)"
               % (pos, target.node_id, result.tiles["seconds"],
                  sum(t["dead"] for t in result.tiles["tiles"])))
    return result


_BLANK_PNG: List[bytes] = []


def skipped_grid(skip: Skipped) -> Tuple[bytes, Dict[str, Any]]:
    """(png, tiles) recording a layer that got no grid in a call: a 1x1 white PNG and tile
    metadata with no tiles, ``skipped`` = the sentence saying why and ``skip_kind``. Written
    like a grid (same tag), so the Filters view lists the layer and says why at that step."""
    if not _BLANK_PNG:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("L", (1, 1), 255).save(buf, format="PNG")
        _BLANK_PNG.append(buf.getvalue())
    tiles = {"skipped": skip.reason, "skip_kind": skip.kind, "tiles": [], "tile_size": 1,
             "margin": 0, "rows": 1, "cols": 1, "channels": 1, "method": METHOD,
             "layer_class": skip.layer_class}
    return _BLANK_PNG[0], tiles
