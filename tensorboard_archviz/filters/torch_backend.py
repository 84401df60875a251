"""Filter maximisation for PyTorch ``nn.Module`` models (the method is described in core.py).

The model is truncated at the target convolution with a forward pre-hook that captures the conv's
input and raises a private stop exception, so nothing after the layer runs (an in-place ReLU after
the conv never sees the tensor). The conv is then applied per image to that image's filter only
(a grouped convolution), giving the pre-activation; a BatchNorm2d that directly consumes the
conv's output (in its inference form), then the activation module consuming that (ReLU, GELU,
...) give the post-activation value. Weights and statistics are read at every call. The model
runs in eval mode
(every module's previous mode is restored afterwards), parameters are never modified and no
``.grad`` is left on them (gradients are taken with ``torch.autograd.grad`` w.r.t. the images).
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tensorboard_archviz.filters import core
from tensorboard_archviz.filters.torch_optim import TorchOptimizer, choose_threads, num_threads
from tensorboard_archviz.util import one_line

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


def _norm_types():
    import torch.nn as nn
    return (nn.BatchNorm2d, nn.SyncBatchNorm)


def _probe_hooks(targets: Dict[str, Any], info: Dict[str, core.Probe], state: Dict[str, Any]):
    """The pre/post forward hooks of ``_probe``: the module that first consumes a target's output
    (a BatchNorm, then the module consuming the BatchNorm's output) is recorded as what follows
    the conv."""
    import torch

    act_types, norm_types = _activation_types(), _norm_types()
    conv2d, _ = _conv_types()

    def pre_hook(name):
        def fn(m, inputs):
            if state["first_conv"] is None and isinstance(m, conv2d):
                state["first_conv"] = name
            lt = state["last_target"]
            if lt is not None and inputs and state["last_out"] is not None:
                same = isinstance(inputs[0], torch.Tensor) and inputs[0] is state["last_out"]
                if same and isinstance(m, norm_types) and info[lt].norm is None \
                        and getattr(m, "running_mean", None) is not None:
                    info[lt].norm = m
                    state["norm_module"] = m
                    return
                if same and isinstance(m, act_types):
                    info[lt].activation = m
                state["last_target"] = None
            if name in targets and name not in info:
                info[name] = core.Probe(in_shape=tuple(inputs[0].shape),
                                        bytes_before=4 * state["numel"])
        return fn

    def post_hook(name):
        def fn(m, inputs, output):
            if isinstance(output, torch.Tensor):
                state["numel"] += output.numel()
            if state.get("norm_module") is m:
                state["last_out"], state["norm_module"] = output, None
            if name in targets and name in info and not info[name].out_shape:
                info[name].out_shape = tuple(output.shape)
                state["order"].append(name)
                state["last_out"] = output
                state["last_target"] = name
            if len(state["order"]) == len(targets) and state["last_target"] is None:
                raise _Stop()
        return fn
    return pre_hook, post_hook


def _probe(model, example, targets: Dict[str, Any]) -> Tuple[Dict[str, core.Probe], Optional[str]]:
    """One no-grad forward pass recording, per target conv, its ``core.Probe`` (input/output
    shapes, the BatchNorm and the activation module that follow it, the activation bytes per
    image computed before it); also the name of the first 2-D conv that runs.

    The pass stops once every target has run, so layers after them (a Linear expecting another
    input size) never run. A model that fails earlier leaves the later targets out.
    """
    import torch

    leaves = [(n, m) for n, m in model.named_modules() if len(list(m.children())) == 0]
    info: Dict[str, core.Probe] = {}
    state = {"numel": 0, "last_out": None, "last_target": None, "order": [], "first_conv": None}
    pre_hook, post_hook = _probe_hooks(targets, info, state)
    handles = []
    for n, m in leaves:
        handles.append(m.register_forward_pre_hook(pre_hook(n)))
        handles.append(m.register_forward_hook(post_hook(n)))
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
        if name not in info or not info[name].out_shape:
            info[name] = core.Probe(error="the model's forward pass did not reach this layer%s"
                                    % (" (it raised %s)" % one_line(error) if error else ""))
    return info, state["first_conv"]


def _activation_fn(act, torch):
    """A callable pre (B,H,W), idx (B,) -> post, and its name (weights read at every call)."""
    if act is None:
        return (lambda pre, idx: pre), None
    import torch.nn as nn
    name = type(act).__name__.lower()
    if isinstance(act, nn.PReLU):
        def prelu(pre, idx):
            w = act.weight.detach()
            w = w[idx][:, None, None] if w.numel() > 1 else w
            return torch.where(pre > 0, pre, w * pre)
        return prelu, name
    return (lambda pre, idx: act(pre.clone())), name


def make_post(norm, act, torch):
    """post(pre, idx) -> (the BatchNorm's output, the activation's output) per image's own filter,
    with the BatchNorm's running statistics and affine weights read at every call."""
    act_fn, _ = _activation_fn(act, torch)

    def post(pre, idx):
        lin = pre
        if norm is not None:
            col = lambda t: t.detach()[idx][:, None, None].to(pre.dtype)
            lin = (pre - col(norm.running_mean)) * torch.rsqrt(col(norm.running_var) + norm.eps)
            if norm.weight is not None:
                lin = lin * col(norm.weight) + col(norm.bias)
        return lin, act_fn(lin, idx)
    return post


def make_head(mod, torch):
    """pre-activation of image b's own filter: x_in (B, Cin, H, W), idx (B,) -> (B, Ho, Wo).

    The weights are read at every call (a later ``load_state_dict`` or optimiser step is seen).
    """
    import torch.nn as nn
    import torch.nn.functional as F

    if isinstance(mod, nn.Conv2d):
        def head(x, idx):
            weight = mod.weight.detach()
            bias = None if mod.bias is None else mod.bias.detach()
            groups, cg = mod.groups, weight.shape[1]
            b = x.shape[0]
            if groups > 1:
                first = (idx // (weight.shape[0] // groups)) * cg
                chan = first[:, None] + torch.arange(cg, device=x.device)[None, :]
                x = x[torch.arange(b, device=x.device)[:, None], chan]
            h, w = x.shape[-2:]
            xs = x.reshape(1, b * cg, h, w)
            pad = mod.padding
            if mod.padding_mode != "zeros":
                xs = F.pad(xs, mod._reversed_padding_repeated_twice, mode=mod.padding_mode)
                pad = 0
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


_EXAMPLE_SHAPES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def example_image_shape(example: Any) -> Optional[Tuple[int, int, int]]:
    """(C, H, W) of the image in an example input: a tensor (N, C, H, W) or (C, H, W), the first
    such tensor of a tuple/list, or of a dict's values. None when there is none."""
    import torch

    if isinstance(example, torch.Tensor):
        if example.dim() == 4:
            return tuple(int(d) for d in example.shape[1:])
        if example.dim() == 3:
            return tuple(int(d) for d in example.shape)
        return None
    items = list(example.values()) if isinstance(example, dict) else \
        list(example) if isinstance(example, (tuple, list)) else []
    for item in items:
        if isinstance(item, torch.Tensor) and item.dim() == 4:
            return tuple(int(d) for d in item.shape[1:])
    return None


def remember_input(model: Any, input_to_model: Any) -> None:
    """Record the image shape of the example input an architecture was written with, so that a
    later ``add_filter_grids`` of the same model optimises images of that size. Never raises."""
    try:
        shape = example_image_shape(input_to_model)
        if shape is not None:
            _EXAMPLE_SHAPES[unwrap(model)] = shape
    except Exception:  # noqa: BLE001 - a convenience only
        pass


def unwrap(model):
    """The module inside (Distributed)DataParallel and torch.compile wrappers (one definition:
    ``extract.torch_graph.unwrap``)."""
    from tensorboard_archviz.extract.torch_graph import unwrap as unwrap_model

    return unwrap_model(model)


def resolve_input_shape(model, input_shape, input_to_model, opts: core.Options
                        ) -> Tuple[int, int, int]:
    """(C, H, W) of the images: ``input_shape``, else the example input's, else that of the last
    architecture written for this model; ``image_size=`` overrides H, W. Never a fixed size."""
    if input_shape is not None:
        if len(tuple(input_shape)) != 3:
            raise ValueError("input_shape must be (C, H, W), got %r" % (tuple(input_shape),))
        return tuple(int(v) for v in input_shape)
    shape = None
    if input_to_model is not None:
        shape = example_image_shape(input_to_model)
        if shape is None:
            raise ValueError("input_to_model holds no image tensor (N, C, H, W); pass "
                             "input_shape=(C, H, W)")
    if shape is None:
        shape = _EXAMPLE_SHAPES.get(model)
    if shape is None and opts.image_size is not None:
        conv2d, _ = _conv_types()
        first = next((m for m in model.modules() if isinstance(m, conv2d)), None)
        if first is not None:
            shape = (int(first.in_channels),) + tuple(opts.image_size)
    if shape is None:
        raise ValueError("cannot tell the image size: pass input_to_model= (an example input, "
                         "as for add_architecture) or input_shape=(C, H, W), or write the "
                         "architecture with add_architecture first")
    c, h, w = shape
    if opts.image_size is not None:
        h, w = opts.image_size
    return int(c), int(h), int(w)


def make_grids(model, layers: Optional[Sequence[str]] = None, *,
               input_shape: Optional[Sequence[int]] = None, input_to_model: Any = None,
               time_budget: Optional[float] = None, log: Optional[Callable[[str], None]] = None,
               progress: Optional[bool] = None, **options) -> core.GridRun:
    """Yield one ``GridResult`` per 2-D conv layer of a PyTorch model (node id = qualified name).

    The image size (C, H, W) is ``input_shape``, else the size of ``input_to_model`` (an example
    input, as for ``add_architecture``), else that of the last architecture written for this
    model (``image_size=`` sets H, W). The value range is [0, 1] unless ``value_range=(lo, hi)``.
    ``time_budget`` (seconds per call) stops starting new layers once spent. One log line per
    layer (``log`` and the ``tensorboard_archviz.filters`` logger), a tqdm bar on a terminal.
    The returned iterator's ``skipped`` lists the layers that got no grid and why.
    Options: see ``core.Options``.
    """
    return core.GridRun(lambda skipped: _grids(
        skipped, model, layers, input_shape, input_to_model, time_budget, log, progress, options))


def _grids(skipped: List[core.Skipped], model, layers, input_shape, input_to_model,
           time_budget, log, progress, options) -> Iterator[core.GridResult]:
    """The generator behind ``make_grids`` (checks run at the first ``next``)."""
    import torch
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise TypeError("make_grids expects a torch.nn.Module, got %s" % type(model).__name__)
    model = unwrap(model)   # node ids as in the architecture
    opts = core.resolve_options(options)
    budget = core.Budget(time_budget, log, progress)
    targets = select_layers(model, layers, budget.log)
    if not targets:
        budget.log("archviz filters: no 2-D conv layer to visualise")
        return
    c, h, w = resolve_input_shape(model, input_shape, input_to_model, opts)
    value_range = opts.value_range or (0.0, 1.0)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    with inference_mode(model):
        info, first_conv = _probe(model, torch.zeros((1, c, h, w), dtype=dtype, device=device),
                                  dict(targets))
    threads, why = choose_threads(opts.threads, torch)
    if threads != torch.get_num_threads():
        budget.log("archviz filters: %d torch thread(s) instead of %d (%s)"
                   % (threads, torch.get_num_threads(), why))
    steps = TorchSteps(model=model, device=device, dtype=dtype, channels=c, image_hw=(h, w),
                       value_range=value_range, first_conv=first_conv, threads=threads)
    yield from core.drive(steps, [core.Target(n, m, info[n]) for n, m in targets], opts, budget,
                          skipped)


@dataclasses.dataclass
class TorchSteps:
    """The PyTorch backend's per-layer steps for ``core.drive`` (``core.LayerSteps``)."""
    model: Any
    device: Any
    dtype: Any
    channels: int
    image_hw: Tuple[int, int]
    value_range: Tuple[float, float]
    first_conv: Optional[str]          # qualified name of the first 2-D conv that runs
    threads: int = 1                   # torch intra-op threads while a layer runs

    def plan(self, target: core.Target, opts: core.Options) -> core.Plan:
        return core.make_plan(target.node_id, type(target.layer).__name__,
                              int(target.probe.out_shape[1]), self.channels, self.image_hw,
                              self.value_range, target.node_id == self.first_conv, opts)

    def run(self, target: core.Target, plan: core.Plan, opts: core.Options,
            log: Callable[[str], None]) -> core.GridResult:
        import torch

        with inference_mode(self.model), num_threads(self.threads, torch):
            return _run_layer(self, target, plan, opts, torch, log)


def first_layer_kernels(mod, indices) -> Optional[np.ndarray]:
    """(N, kh, kw, cin) of a Conv2d's kernels for the tile metadata (None for other layers)."""
    import torch.nn as nn

    if not isinstance(mod, nn.Conv2d) or mod.groups != 1:
        return None
    w = mod.weight.detach().float().cpu().numpy()[list(indices)]
    return w.transpose(0, 2, 3, 1)


def _run_layer(steps: TorchSteps, target: core.Target, plan: core.Plan, opts: core.Options,
               torch, log: Callable[[str], None]) -> core.GridResult:
    mod, li, device = target.layer, target.probe, steps.device
    post = make_post(li.norm, li.activation, torch)
    opt = TorchOptimizer(plan, _forward_to(steps.model, mod, torch), make_head(mod, torch), post,
                         device, torch, steps.dtype)

    def post_fn(pre: np.ndarray, indices) -> Tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            idx = torch.as_tensor(list(indices), dtype=torch.long, device=device)
            lin, out = post(torch.as_tensor(pre, device=device, dtype=opt.dtype), idx)
            return lin.float().cpu().numpy(), out.float().cpu().numpy()

    facts = core.LayerFacts(
        activation=_activation_fn(li.activation, torch)[1],
        norm=None if li.norm is None else type(li.norm).__name__.replace("2d", ""),
        kernels=first_layer_kernels(mod, plan.indices) if plan.first_conv else None)
    key = ("torch", id(steps.model), plan.node_id, plan.image_hw, plan.channels,
           plan.parametrization)
    return core.optimise_layer(plan, opts, tuple(li.out_shape[-2:]), opt.run, post_fn, facts,
                               li.bytes_per_image(plan), key, log)
