"""Filter maximisation for PyTorch ``nn.Module`` models (the method is described in core.py).

The model is truncated at the target convolution with a forward pre-hook that captures the conv's
input and raises a private stop exception, so nothing after the layer runs (an in-place ReLU after
the conv never sees the tensor). The conv is then applied per image to that image's filter only
(a grouped convolution), giving the pre-activation; the activation module that directly consumes
the conv's output (ReLU, GELU, ...) gives the post-activation value. The model runs in eval mode
(every module's previous mode is restored afterwards), parameters are never modified and no
``.grad`` is left on them (gradients are taken with ``torch.autograd.grad`` w.r.t. the images).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tensorboard_archviz.filters import core

DEFAULT_IMAGE_SIZE = 128


class _Stop(Exception):
    """Raised by the pre-hook of the target layer to cut the forward pass short."""


def _conv_types():
    import torch.nn as nn
    return (nn.Conv2d, nn.ConvTranspose2d), (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d,
                                             nn.ConvTranspose3d)


def _activation_types():
    import torch.nn as nn
    return (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
            nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.PReLU,
            nn.Softplus)


def select_layers(model, layers: Optional[Sequence[str]], log: Callable[[str], None]
                  ) -> List[Tuple[str, Any]]:
    """(qualified name, module) of the 2-D convs to visualise; other convs are logged as skipped."""
    conv2d, other = _conv_types()
    named = [(n, m) for n, m in model.named_modules() if n]
    by_name = dict(named)
    if layers is None:
        chosen = []
        for name, mod in named:
            if isinstance(mod, conv2d):
                chosen.append((name, mod))
            elif isinstance(mod, other):
                log("archviz filters: skipped %s (%s): only 2-D convolutions are visualised"
                    % (name, type(mod).__name__))
        return chosen
    if isinstance(layers, str):
        layers = [layers]
    chosen = []
    for name in layers:
        if name not in by_name:
            convs = [n for n, m in named if isinstance(m, conv2d)]
            raise ValueError("unknown layer %r; the model's 2-D conv layers are: %s"
                             % (name, ", ".join(convs) or "(none)"))
        mod = by_name[name]
        if isinstance(mod, conv2d):
            chosen.append((name, mod))
        elif isinstance(mod, other):
            log("archviz filters: skipped %s (%s): only 2-D convolutions are visualised"
                % (name, type(mod).__name__))
        else:
            raise ValueError("layer %r is a %s, not a 2-D convolution" % (name, type(mod).__name__))
    return chosen


@contextlib.contextmanager
def inference_mode(model) -> Iterator[None]:
    """Eval mode for the duration; each module's own training flag is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _probe(model, example, targets: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """One no-grad forward pass recording, per target conv: input/output shapes, the activation
    module consuming its output, and the activation bytes per image computed before it.

    The pass stops once every target has run, so layers after them (a Linear expecting another
    input size) never run. A model that fails earlier leaves the later targets out.
    """
    import torch

    leaves = [(n, m) for n, m in model.named_modules() if len(list(m.children())) == 0]
    info: Dict[str, Dict[str, Any]] = {}
    state = {"numel": 0, "last_out": None, "last_target": None, "order": [],
             "first_conv": None}
    handles = []
    act_types = _activation_types()

    conv2d, _ = _conv_types()

    def pre_hook(name, mod):
        def fn(m, inputs):
            if state["first_conv"] is None and isinstance(m, conv2d):
                state["first_conv"] = name
            lt = state["last_target"]
            if lt is not None and inputs and state["last_out"] is not None:
                if isinstance(inputs[0], torch.Tensor) and inputs[0] is state["last_out"]:
                    if isinstance(m, act_types):
                        info[lt]["activation"] = m
                state["last_target"] = None
            if name in targets and name not in info:
                x = inputs[0]
                info[name] = {"in_shape": tuple(x.shape), "bytes_before": 4 * state["numel"],
                              "activation": None}
        return fn

    def post_hook(name, mod):
        def fn(m, inputs, output):
            if isinstance(output, torch.Tensor):
                state["numel"] += output.numel()
            if name in targets and "out_shape" not in info.get(name, {"out_shape": 0}):
                info[name]["out_shape"] = tuple(output.shape)
                state["order"].append(name)
                state["last_out"] = output
                state["last_target"] = name
            if len(state["order"]) == len(targets) and state["last_target"] is None:
                raise _Stop()
        return fn

    for n, m in leaves:
        handles.append(m.register_forward_pre_hook(pre_hook(n, m)))
        handles.append(m.register_forward_hook(post_hook(n, m)))
    error = None
    try:
        with torch.no_grad():
            model(example)
    except _Stop:
        pass
    except Exception as e:  # a model that cannot run this input: report per layer
        error = e
    finally:
        for h in handles:
            h.remove()
    for name in targets:
        if name not in info or "out_shape" not in info[name]:
            info[name] = {"error": "the model's forward pass did not reach this layer%s"
                          % (" (it raised %s: %s)" % (type(error).__name__, str(error)[:300])
                             if error else "")}
    info["__first_conv__"] = state["first_conv"]
    return info


def _activation_fn(act, torch):
    """A callable pre (B,H,W), idx (B,) -> post, and its name."""
    if act is None:
        return (lambda pre, idx: pre), None
    import torch.nn as nn
    name = type(act).__name__.lower()
    if isinstance(act, nn.PReLU) and act.weight.numel() > 1:
        w = act.weight.detach()
        return (lambda pre, idx: torch.where(pre > 0, pre, w[idx][:, None, None] * pre)), name
    if isinstance(act, nn.PReLU):
        w = act.weight.detach()
        return (lambda pre, idx: torch.where(pre > 0, pre, w * pre)), name
    return (lambda pre, idx: act(pre.clone())), name


def _make_head(mod, torch):
    """pre-activation of image b's own filter: x_in (B, Cin, H, W), idx (B,) -> (B, Ho, Wo)."""
    import torch.nn as nn
    import torch.nn.functional as F

    if isinstance(mod, nn.Conv2d):
        weight = mod.weight.detach()
        bias = None if mod.bias is None else mod.bias.detach()
        groups = mod.groups
        cout, cg = weight.shape[0], weight.shape[1]
        per_group = cout // groups
        padding = mod.padding
        pad_mode = mod.padding_mode

        def head(x, idx):
            b = x.shape[0]
            if groups > 1:
                first = (idx // per_group) * cg
                chan = first[:, None] + torch.arange(cg, device=x.device)[None, :]
                x = x[torch.arange(b, device=x.device)[:, None], chan]
            h, w = x.shape[-2:]
            xs = x.reshape(1, b * cg, h, w)
            if pad_mode != "zeros":
                xs = F.pad(xs, mod._reversed_padding_repeated_twice, mode=pad_mode)
                pad = 0
            else:
                pad = padding
            # Depthwise over the B*Cg channels, then a sum per image: on CPU this is several
            # times faster than the equivalent grouped convolution with groups=B.
            k = weight[idx].reshape(b * cg, 1, *weight.shape[2:])
            y = F.conv2d(xs, k, None, mod.stride, pad, mod.dilation, b * cg)
            y = y.reshape(b, cg, *y.shape[-2:]).sum(1)
            if bias is not None:
                y = y + bias[idx][:, None, None]
            return y
        return head

    def head(x, idx):  # ConvTranspose2d and anything else: the full layer, then select
        y = mod(x)
        return y[torch.arange(y.shape[0], device=y.device), idx]
    return head


class _Optimizer:
    """Batched optimisation of images for one layer (torch tensors, NCHW)."""

    def __init__(self, plan: core.Plan, forward, head, window: np.ndarray, device, torch,
                 dtype=None):
        self.torch, self.plan, self.forward, self.head = torch, plan, forward, head
        self.dtype = dtype or torch.float32
        bases = core.make_bases(plan)
        t = lambda a: None if a is None else torch.as_tensor(a, device=device, dtype=self.dtype)
        self.dh, self.dw, self.spec, self.color = (t(bases.dct_h), t(bases.dct_w),
                                                   t(bases.spectrum_scale), t(bases.color))
        if self.dh is not None:
            self.dh_t = self.dh.t().contiguous()
        self.window = t(window)
        self.device = device

    def render(self, z):
        torch = self.torch
        if self.dh is not None:
            z = torch.matmul(torch.matmul(self.dh_t, z * self.spec), self.dw)
        if self.color is not None:
            z = torch.einsum("ij,bjhw->bihw", self.color, z)
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
        return x

    def final_images(self, z):
        j = self.plan.jitter
        return self.to_model(self.render(z), (j, j), None)

    def pre(self, x, idx):
        return self.head(self.forward(x), idx)

    def run(self, indices: Sequence[int], steps: int, z0: Optional[np.ndarray] = None,
            seed_offset: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Optimise images for ``indices`` from the logits ``z0`` (default: a fresh init).

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
        sched = core.make_schedule(plan, steps, seed_offset)
        m = torch.zeros_like(z)
        v = torch.zeros_like(z)
        support = torch.zeros(plan.image_hw, device=self.device, dtype=self.dtype)
        b1, b2, eps = 0.9, 0.999, 1e-8
        for t in range(steps):
            aff = None if sched.affines is None else sched.affines[t]
            with torch.enable_grad():     # also when called under torch.no_grad()
                x = self.to_model(self.render(z), sched.offsets[t], aff)
                obj = (self.pre(x, idx) * self.window).sum()
                g, gx = torch.autograd.grad(obj, (z, x))
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


def _forward_to(model, mod, torch):
    """A function images -> the input tensor of ``mod`` (the forward pass stops there)."""
    captured = {}

    def hook(m, inputs):
        captured["x"] = inputs[0]
        raise _Stop()

    def forward(x):
        handle = mod.register_forward_pre_hook(hook)
        try:
            model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if "x" not in captured:
            raise RuntimeError("the forward pass did not reach the layer")
        return captured.pop("x")
    return forward


def infer_input_shape(model, targets) -> Tuple[int, int, int]:
    """(C, H, W): C from the first conv's in_channels, H = W = DEFAULT_IMAGE_SIZE."""
    conv2d, _ = _conv_types()
    for _, m in model.named_modules():
        if isinstance(m, conv2d):
            return (int(m.in_channels), DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    raise ValueError("cannot infer input_shape: the model has no 2-D convolution; pass input_shape")


def make_grids(model, layers: Optional[Sequence[str]] = None, *,
               input_shape: Optional[Sequence[int]] = None, time_budget: Optional[float] = None,
               log: Optional[Callable[[str], None]] = None, **options) -> Iterator[core.GridResult]:
    """Yield one ``GridResult`` per 2-D conv layer of a PyTorch model (node id = qualified name).

    ``input_shape`` is (C, H, W) of one input image; by default C is the first conv's
    ``in_channels`` and H = W = 128 (``image_size=`` also sets H, W). The value range is [0, 1]
    unless ``value_range=(lo, hi)`` is given. ``time_budget`` (seconds per call) stops starting
    new layers once spent. Options: see ``core.Options``.
    """
    import torch
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError("make_grids expects a torch.nn.Module, got %s" % type(model).__name__)
    # Node ids as in the architecture: look through (Distributed)DataParallel and torch.compile.
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            break
    opts = core.resolve_options(options)
    budget = core.Budget(time_budget, log)
    targets = select_layers(model, layers, budget.log)
    if not targets:
        budget.log("archviz filters: no 2-D conv layer to visualise")
        return
    if input_shape is None:
        c, h, w = infer_input_shape(model, targets)
        if opts.image_size is not None:
            h, w = opts.image_size
    else:
        if len(tuple(input_shape)) != 3:
            raise ValueError("input_shape must be (C, H, W), got %r" % (tuple(input_shape),))
        c, h, w = (int(v) for v in input_shape)
    value_range = opts.value_range or (0.0, 1.0)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32

    with inference_mode(model):
        info = _probe(model, torch.zeros((1, c, h, w), dtype=dtype, device=device), dict(targets))
    first_conv = info.pop("__first_conv__")
    names = [n for n, _ in targets]
    started = 0
    for k, (name, mod) in enumerate(targets):
        if budget.exhausted(started, names[k:]):
            return
        li = info[name]
        if "error" in li:
            budget.log("archviz filters: skipped %s: %s" % (name, li["error"]))
            continue
        t0 = time.perf_counter()
        started += 1
        n_total = int(li["out_shape"][1])
        plan = core.make_plan(name, type(mod).__name__, n_total, c, (h, w), value_range,
                              name == first_conv, opts)
        budget.log("archviz filters [%d/%d] %s" % (k + 1, len(targets), plan.describe()))
        try:
            with inference_mode(model):
                result = _run_layer(model, mod, plan, li, opts, device, torch, budget, dtype)
        except Exception as e:  # one bad layer must not cost the others their grids
            budget.log("archviz filters [%d/%d] %s failed: %s: %s"
                       % (k + 1, len(targets), name, type(e).__name__, str(e)[:300]))
            continue
        result.tiles["seconds"] = round(time.perf_counter() - t0, 3)
        budget.log("archviz filters [%d/%d] %s done in %.1f s (%d dead)"
                   % (k + 1, len(targets), name, result.tiles["seconds"],
                      sum(t["dead"] for t in result.tiles["tiles"])))
        yield result


def _run_layer(model, mod, plan: core.Plan, li: Dict[str, Any], opts: core.Options, device, torch,
               budget: core.Budget, dtype=None) -> core.GridResult:
    ho, wo = li["out_shape"][-2:]
    window = core.center_window((ho, wo), plan.center)
    act, act_name = _activation_fn(li["activation"], torch)
    opt = _Optimizer(plan, _forward_to(model, mod, torch), _make_head(mod, torch), window,
                     device, torch, dtype)
    hc, wc = plan.canvas_hw
    per_image = 3.0 * (li["bytes_before"] + 4 * int(np.prod(li["in_shape"][1:]))) \
        + 4 * 8 * plan.channels * hc * wc

    def post_fn(pre: np.ndarray, indices) -> np.ndarray:
        with torch.no_grad():
            idx = torch.as_tensor(list(indices), dtype=torch.long, device=device)
            p = torch.as_tensor(pre, device=device, dtype=opt.dtype)
            return act(p, idx).float().cpu().numpy()

    key = ("torch", id(model), plan.node_id, plan.image_hw, plan.channels, plan.parametrization)
    return core.optimise_layer(plan, opts, window, opt.run, post_fn, act_name, per_image, key,
                               budget.log)
