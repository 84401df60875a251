"""Framework-neutral core of filter maximisation: options, plans, parametrisation bases, schedules.

The method (every backend follows it; only the gradient code differs):

* All chosen filters of one layer are optimised **together as one batch**: image ``b`` maximises
  filter ``indices[b]``. The model is truncated at the layer's input and run in inference mode;
  the layer itself is applied per image to that image's filter only (a depthwise convolution
  plus a sum), so the work at the target layer is ``1/filters`` of a plain forward pass.
* ``image = lo + (hi - lo) * sigmoid(logits)`` keeps every pixel inside the value range.
  ``logits`` is either the pixels themselves (``"pixel"``, used for the first conv layer, whose
  maximiser is its kernel pattern) or a spatially decorrelated spectrum (``"fourier"``: an
  orthonormal cosine (DCT-II) basis with 1/f amplitude scaling, as in Lucid, used deeper). RGB
  images also get Lucid's colour decorrelation.
* Adam (lr 0.05) on the logits for ``steps`` steps (128; ``fast=True``: 32), random jitter each
  step (a random crop of a slightly larger canvas), plus small random scale/rotation on images of
  64 px and more. Inputs of at most 32 px are optimised at 2x and average-pooled to the model's
  size.
* Objective: the filter's **pre-activation** at the centre of its output map (``center=0``, the
  default; ``center > 0``: a centred Gaussian window; ``None``: the plain spatial mean). A mean
  over all positions is blind to the first conv layer: for a zero-sum kernel (an edge detector)
  the mean of a linear map only sees the image border. The tiles then show the receptive field
  of that centre position (``crop`` in the metadata), so a 5x5 first-layer filter is not a
  speck in a 224 px tile.
* Reported per filter: ``score`` = the objective (pre-activation) on the final image,
  ``post_score`` = the same for the post-activation output, ``dead`` = the pre-activation is <= 0
  at every position of the filter's own optimised image (for ReLU: the output is zero
  everywhere: the filter never activates).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

METHOD = "batched-adam-fourier"

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
    steps: Optional[int] = None          # default 128, or 32 with fast=True
    fast: bool = False
    lr: float = 0.05
    max_filters: int = 64                # the first max_filters filters of a wider layer
    filters: Optional[Sequence[int]] = None   # explicit filter indices (overrides max_filters)
    value_range: Optional[Tuple[float, float]] = None
    image_size: Optional[Tuple[int, int]] = None   # (h, w) when the model does not fix it
    parametrization: str = "auto"        # "auto" | "pixel" | "fourier"
    decay: float = 1.0                   # 1/f^decay amplitude scaling of the fourier basis
    center: Optional[float] = 0.0        # 0: centre neuron; >0: Gaussian sigma / output size;
                                         # None: plain spatial mean
    crop: str = "auto"                   # "auto": tiles show the objective's receptive field
                                         # when it is smaller than the image; "off"
    jitter: Optional[int] = None         # px at the optimisation scale; None: ~4 % of the side
                                         # (1 for the pixel-parametrised first layer)
    transforms: str = "auto"             # "auto" (scale/rotate when >= 64 px) | "on" | "off"
    upsample_tiny: bool = True           # optimise inputs <= 32 px at 2x
    seed: int = 0
    chunk_size: Optional[int] = None     # images per batch; None: measured (see run_in_chunks)
    memory_mb: float = 1024.0            # memory budget of one batch
    margin: int = 2                      # px between tiles in the PNG
    tile_min: int = 64                   # tiny images are upscaled (nearest) to at least this
    max_png_side: int = 2048
    init_sd: float = 0.01

    @property
    def n_steps(self) -> int:
        if self.steps is not None:
            return int(self.steps)
        return 32 if self.fast else 128


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
    if opts.crop not in ("auto", "off"):
        raise ValueError("crop must be 'auto' or 'off', got %r" % (opts.crop,))
    if opts.chunk_size is not None and (not isinstance(opts.chunk_size, (int, np.integer))
                                        or opts.chunk_size < 1):
        raise ValueError("chunk_size must be a positive int or None, got %r" % (opts.chunk_size,))
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
        return ("%s (%s): %d of %d filters, %dx%dx%d in [%g, %g]%s, %s, %d steps"
                % (self.node_id, self.class_name, len(self.indices), self.n_total, h, w,
                   self.channels, self.value_range[0], self.value_range[1],
                   ", optimised at 2x" if self.scale == 2 else "", self.parametrization, self.steps))


def make_plan(node_id: str, class_name: str, n_total: int, channels: int, image_hw: Tuple[int, int],
              value_range: Tuple[float, float], first_conv: bool, opts: Options) -> Plan:
    """Resolve the per-layer choices (filters, scale, jitter, parametrisation, transforms)."""
    h, w = int(image_hw[0]), int(image_hw[1])
    scale = 2 if (opts.upsample_tiny and max(h, w) <= 32) else 1
    if opts.parametrization == "auto":
        param = "pixel" if first_conv else "fourier"
    else:
        param = opts.parametrization
    if opts.jitter is not None:
        jitter = int(opts.jitter)
    elif param == "pixel":
        # The first layer is linear: jitter would only blur its kernel pattern. One canvas pixel
        # (half a model pixel at 2x) is enough against aliasing.
        jitter = 1
    else:
        jitter = max(2, int(round(0.04 * scale * max(h, w))))
    transforms = {"on": True, "off": False}.get(opts.transforms, min(h, w) >= 64)
    return Plan(node_id=node_id, class_name=class_name, indices=choose_filters(n_total, opts),
                n_total=int(n_total), channels=int(channels), image_hw=(h, w),
                value_range=(float(value_range[0]), float(value_range[1])), scale=scale,
                jitter=jitter, parametrization=param, steps=opts.n_steps, lr=float(opts.lr),
                transforms=transforms, seed=int(opts.seed), init_sd=float(opts.init_sd),
                decay=float(opts.decay), center=opts.center)


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
    lo, hi = plan.value_range
    return (lo + (hi - lo) / (1.0 + np.exp(-z))).astype(np.float32)


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
        a = np.deg2rad(rng.uniform(-5.0, 5.0, size=steps))
        affines = np.zeros((steps, 2, 3), np.float32)
        affines[:, 0, 0] = s * np.cos(a)
        affines[:, 0, 1] = -s * np.sin(a)
        affines[:, 1, 0] = s * np.sin(a)
        affines[:, 1, 1] = s * np.cos(a)
    return Schedule(offsets=offsets.astype(np.int64), affines=affines)


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


def support_crop(grad_abs: np.ndarray, plan: "Plan", opts: "Options"
                 ) -> Optional[Tuple[int, int, int, int]]:
    """The square region (y0, x0, h, w) of the model input that the objective can see.

    ``grad_abs`` (H, W) is |d objective / d input| at a random image: its support is the
    receptive field of the objective's window. The crop adds the jitter (and the reach of the
    random scale/rotation), is at least 8 px, and is None (no crop) when it would cover most of the image
    or when ``crop="off"``.
    """
    if opts.crop == "off" or plan.center is None:
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
SMALL_WORK_BYTES = 96 * 2 ** 20
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


def tile_stats(pre: np.ndarray, post: np.ndarray, window: np.ndarray) -> List[Dict[str, Any]]:
    """Per image: weighted mean pre-activation (score), weighted mean post-activation, dead."""
    out = []
    for p, q in zip(pre, post):
        out.append({"score": float(np.sum(p * window)),
                    "post_score": float(np.sum(q * window)),
                    "dead": bool(np.max(p) <= 0.0)})
    return out


class Budget:
    """Time budget and logging shared by the backends' ``make_grids`` loops."""

    def __init__(self, time_budget: Optional[float], log: Optional[Callable[[str], None]]):
        if time_budget is not None and not (float(time_budget) > 0):
            raise ValueError("time_budget must be > 0 seconds or None, got %r" % (time_budget,))
        self.time_budget = None if time_budget is None else float(time_budget)
        self._log = log
        self.start = time.perf_counter()

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

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


def objective_name(center: Optional[float]) -> str:
    if center is None:
        return "pre-activation, plain spatial mean"
    if center == 0:
        return "pre-activation at the centre position"
    return "pre-activation, Gaussian window sigma=%g x output size" % center


def build_result(plan: Plan, images: np.ndarray, stats: List[Dict[str, Any]], seconds: float,
                 activation: Optional[str], chunk: int, opts: Options,
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
        tiles.append({"index": int(index), "score": st["score"], "post_score": st["post_score"],
                      "dead": st["dead"], "row": r, "col": c})
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
        "activation": activation, "scale": plan.scale, "chunk_size": int(chunk),
        "objective": objective_name(plan.center),
    }
    return GridResult(node_id=plan.node_id, png=png, tiles=meta, images=images)


def optimise_layer(plan: Plan, opts: Options, window: np.ndarray,
                   run: Callable[[Sequence[int], int, Optional[np.ndarray]],
                                 Tuple[np.ndarray, np.ndarray, np.ndarray]],
                   post_fn: Callable[[np.ndarray, Sequence[int]], np.ndarray],
                   activation: Optional[str], bytes_per_image: float, cache_key: Any = None,
                   log: Optional[Callable[[str], None]] = None) -> GridResult:
    """Optimise all of a plan's filters with a backend's ``run`` and assemble the GridResult.

    ``run(indices, steps, z0)`` optimises one batch from the logits ``z0`` and returns (final
    images (B, H, W, C), pre-activation maps (B, Ho, Wo), |d objective / d input| summed over
    steps and batch (H, W)); ``post_fn(pre, indices)`` applies the layer's activation.
    Every filter's initial logits come from one seeded draw for the whole layer and every batch
    uses the same jitter schedule, so the images do not depend on how the layer is batched.
    """
    n = len(plan.indices)
    z_all = init_params(plan, n)
    outs: List[Tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    def run_chunk(lo: int, hi: int) -> None:
        images, pre, sup = run(plan.indices[lo:hi], plan.steps, z_all[lo:hi])
        outs.append((lo, images, pre, sup))

    chunk = run_in_chunks(n, bytes_per_image, opts, run_chunk,
                          lambda: run(plan.indices[:1], 1, z_all[:1]), cache_key, log)
    outs.sort(key=lambda o: o[0])
    images = np.concatenate([o[1] for o in outs]).astype(np.float32)
    pre = np.concatenate([o[2] for o in outs]).astype(np.float32)
    support = np.sum([o[3] for o in outs], axis=0)
    post = np.asarray(post_fn(pre, plan.indices), np.float32)
    stats = tile_stats(pre, post, window)
    crop = support_crop(support, plan, opts)
    return build_result(plan, images, stats, 0.0, activation, chunk, opts, crop)
