"""Filter maximisation for Keras 3 models, on the TensorFlow, torch and JAX backends.

The method is described in core.py. Keras-specific parts:

* The model is truncated at the target layer by temporarily replacing that layer's ``call`` with
  one that records its input and raises a private stop exception; this works the same for
  Sequential, Functional, nested and subclassed models. The model is called with
  ``training=False`` (BatchNorm and Dropout in inference mode); no variable is written.
* The layer is then applied per image to that image's filter only (``keras.ops``; a depthwise
  convolution plus a sum, which is what grouped convolutions cost on CPU), giving the
  pre-activation; ``layer.activation`` (or a BatchNormalization and activation layer that
  consume the conv's output) gives the post-activation. Variables are read at every call.
* Gradients: ``tf_optim.TFOptimizer`` (``tf.GradientTape`` inside one ``tf.function`` running
  the whole loop; TensorFlow),
  ``torch_optim.TorchOptimizer`` with ``torch.autograd.grad`` (torch backend), or
  ``jax_optim.JaxOptimizer`` with ``jax.grad`` in one jitted loop (JAX backend).
* Node ids are the ones the architecture uses (``extract.keras.layer_node_ids``), e.g.
  ``conv2d_1`` or ``inner_model/conv2d``. Conv1D / Conv3D are skipped with a log line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tensorboard_archviz.filters import core
from tensorboard_archviz.util import one_line

DEFAULT_IMAGE_SIZE = 128


class _Stop(Exception):
    """Raised by the patched ``call`` of the target layer to cut the forward pass short."""


# ----------------------------------------------------------------------------- layers


def _conv_classes(keras):
    L = keras.layers
    conv2d = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.Conv2DTranspose)
    other = tuple(c for c in (getattr(L, n, None) for n in (
        "Conv1D", "Conv3D", "DepthwiseConv1D", "SeparableConv1D", "Conv1DTranspose",
        "Conv3DTranspose")) if c is not None)
    return conv2d, other


def _children(layer) -> List[Any]:
    try:
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except Exception:
        return list(getattr(layer, "layers", []) or [])


def node_ids(model) -> Dict[str, Any]:
    """``{node id: layer}`` with the architecture's ids (falls back to a name-path walk)."""
    try:
        from tensorboard_archviz.extract.keras import layer_node_ids
        ids = layer_node_ids(model)
        if ids:
            return ids
    except Exception:  # the extractor is best effort here: the walk below names layers alike
        pass
    out: Dict[str, Any] = {}

    def walk(layer, prefix):
        for sub in _children(layer):
            if type(sub).__name__ == "InputLayer":
                continue
            nid = prefix + sub.name
            if nid in out:
                continue
            out[nid] = sub
            walk(sub, nid + "/")
    walk(model, "")
    return out


def select_layers(model, layers: Optional[Sequence[str]], keras, log: Callable[[str], None]
                  ) -> List[Tuple[str, Any]]:
    """(node id, layer) of the 2-D conv layers to visualise; 1-D/3-D convs are logged as skipped.

    ``layers`` may hold node ids (``inner/conv2d``) or plain layer names when unique.
    """
    conv2d, other = _conv_classes(keras)
    ids = node_ids(model)
    seen = set()
    unique: List[Tuple[str, Any]] = []
    for nid, layer in ids.items():   # a shared layer appears once, under its first id
        if id(layer) not in seen:
            seen.add(id(layer))
            unique.append((nid, layer))

    def skip(nid, layer):
        log("archviz filters: skipped %s (%s): only 2-D convolutions are visualised"
            % (nid, type(layer).__name__))

    if layers is None:
        chosen = []
        for nid, layer in unique:
            if isinstance(layer, conv2d):
                chosen.append((nid, layer))
            elif isinstance(layer, other):
                skip(nid, layer)
        return chosen
    if isinstance(layers, str):
        layers = [layers]
    by_name: Dict[str, List[Tuple[str, Any]]] = {}
    for nid, layer in unique:
        by_name.setdefault(layer.name, []).append((nid, layer))
    chosen = []
    for name in layers:
        if name in ids:
            nid, layer = name, ids[name]
        elif len(by_name.get(name, [])) == 1:
            nid, layer = by_name[name][0]
        elif len(by_name.get(name, [])) > 1:
            raise ValueError("layer name %r is ambiguous; use one of the node ids %s"
                             % (name, ", ".join(n for n, _ in by_name[name])))
        else:
            convs = [n for n, l in unique if isinstance(l, conv2d)]
            raise ValueError("unknown layer %r; the model's 2-D conv layers are: %s"
                             % (name, ", ".join(convs) or "(none)"))
        if isinstance(layer, conv2d):
            chosen.append((nid, layer))
        elif isinstance(layer, other):
            skip(nid, layer)
        else:
            raise ValueError("layer %r is a %s, not a 2-D convolution" % (name, type(layer).__name__))
    return chosen


def _leaf_layers(model) -> List[Any]:
    out, seen = [], set()

    def walk(layer):
        kids = _children(layer)
        if not kids:
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
        for k in kids:
            walk(k)
    walk(model)
    return out


@contextlib.contextmanager
def patched(wrappers: Dict[int, Tuple[Any, Callable]]) -> Iterator[None]:
    """Temporarily replace ``layer.call`` by ``make(original_call)`` for each layer."""
    saved = []
    try:
        for layer, make in wrappers.values():
            had = "call" in layer.__dict__
            saved.append((layer, had, layer.__dict__.get("call")))
            object.__setattr__(layer, "call", make(layer.call))
        yield
    finally:
        for layer, had, old in reversed(saved):
            if had:
                object.__setattr__(layer, "call", old)
            else:
                object.__delattr__(layer, "call")


def _first_input(args, kwargs):
    if args:
        return args[0]
    return kwargs.get("inputs", next(iter(kwargs.values()), None))


def _numel(x) -> int:
    try:
        return int(np.prod([int(d) for d in x.shape]))
    except Exception:
        return 0


# ----------------------------------------------------------------------------- model facts


def _input_facts(model, opts: core.Options, keras, targets) -> Tuple[int, Tuple[int, int], str]:
    """(channels, (h, w), data_format) of the image input."""
    conv2d, _ = _conv_classes(keras)
    leaves = [l for l in _leaf_layers(model) if isinstance(l, conv2d)]
    fmt = getattr(leaves[0], "data_format", None) if leaves else None
    fmt = fmt or keras.config.image_data_format()
    try:
        inputs = model.inputs
    except Exception:   # subclassed models have no symbolic inputs
        inputs = None
    shape = None
    if inputs:
        if len(inputs) != 1:
            raise _Unsupported("the model has %d inputs; filter grids need a single image input"
                               % len(inputs))
        shape = tuple(inputs[0].shape)
        if len(shape) != 4:
            raise _Unsupported("the model's input has shape %s, not an image batch (N, H, W, C)"
                               % (shape,))
    if shape is not None:
        if fmt == "channels_first":
            c, h, w = shape[1], shape[2], shape[3]
        else:
            h, w, c = shape[1], shape[2], shape[3]
    else:
        h = w = None
        c = None
        if leaves:
            first = leaves[0]
            try:
                k = first.depthwise_kernel if hasattr(first, "depthwise_kernel") else first.kernel
                if isinstance(first, keras.layers.Conv2DTranspose):
                    c = int(k.shape[3])
                elif isinstance(first, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
                    c = int(k.shape[2])
                else:
                    c = int(k.shape[2]) * int(getattr(first, "groups", 1))
            except Exception:
                c = None
    if c is None:
        raise _Unsupported("cannot tell the number of input channels; build the model with an "
                           "Input of fixed channels")
    if opts.image_size is not None:
        if h is not None and w is not None and (h, w) != tuple(opts.image_size):
            raise ValueError("image_size=%r conflicts with the model's fixed input size %r"
                             % (tuple(opts.image_size), (h, w)))
        h, w = opts.image_size
    if h is None or w is None:
        h = h or DEFAULT_IMAGE_SIZE
        w = w or DEFAULT_IMAGE_SIZE
    return int(c), (int(h), int(w)), fmt


def _value_range(model, opts: core.Options, keras) -> Tuple[float, float]:
    """The user's value_range, else [0, 255] behind a leading Rescaling layer, else [0, 1]."""
    if opts.value_range is not None:
        return opts.value_range
    layer = model
    for _ in range(8):
        kids = [k for k in _children(layer) if type(k).__name__ != "InputLayer"]
        if not kids:
            break
        layer = kids[0]
        if isinstance(layer, keras.layers.Rescaling):
            return (0.0, 255.0)
    return (0.0, 1.0)


class _Unsupported(Exception):
    pass


_ACT_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU")


def _follow(layer, xin, state, info: Dict[str, core.Probe]) -> None:
    """What consumes the last target's output: a BatchNormalization (followed further) or an
    elementwise activation layer are recorded; anything else ends the chain."""
    lt = state["last_target"]
    if lt is None:
        return
    same = xin is state["last_out"]
    li = info[lt]
    name = type(layer).__name__
    if same and name == "BatchNormalization" and li.norm is None and li.activation is None:
        li.norm = layer
        state["norm_layer"] = layer
        return
    if same and name in _ACT_LAYERS:
        li.activation = layer
    state["last_target"] = None


def _probe(model, keras, ops, x, targets: Dict[int, str]) -> Tuple[Dict[str, core.Probe], Any]:
    """One forward pass recording, per target layer, its ``core.Probe`` (input/output shapes,
    the bytes of the activations computed before it, the BatchNorm / activation layers that
    follow it); plus the id of the first 2-D conv that runs. Stops after the targets (and what
    follows the last one)."""
    conv2d, _ = _conv_classes(keras)
    leaves = _leaf_layers(model)
    state = {"numel": 0, "first_conv": None, "done": 0, "last_target": None, "last_out": None,
             "norm_layer": None}
    info: Dict[str, core.Probe] = {}

    def make_for(layer):
        def make(orig):
            def call(*args, **kwargs):
                if state["first_conv"] is None and isinstance(layer, conv2d):
                    state["first_conv"] = id(layer)
                xin = _first_input(args, kwargs)
                _follow(layer, xin, state, info)
                if state["done"] == len(targets) and state["last_target"] is None:
                    raise _Stop()
                before = state["numel"]
                out = orig(*args, **kwargs)
                state["numel"] += _numel(out) if hasattr(out, "shape") else 0
                if state["norm_layer"] is layer:
                    state["last_out"], state["norm_layer"] = out, None
                name = targets.get(id(layer))
                if name is not None and name not in info:
                    info[name] = core.Probe(in_shape=tuple(int(d) for d in xin.shape),
                                            out_shape=tuple(int(d) for d in out.shape),
                                            bytes_before=4 * before)
                    state["done"] += 1
                    state["last_target"], state["last_out"] = name, out
                return out
            return call
        return make

    error = None
    with patched({id(l): (l, make_for(l)) for l in leaves}):
        try:
            model(x, training=False)
        except _Stop:
            pass
        except Exception as e:   # reported per layer below
            error = e
    for name in targets.values():
        if name not in info:
            info[name] = core.Probe(error="the forward pass did not reach this layer%s"
                                    % (" (it raised %s)" % one_line(error) if error else ""))
    return info, state["first_conv"]


# ----------------------------------------------------------------------------- the layer itself


def same_padding(n: int, k: int, stride: int, dilation: int) -> Tuple[int, int]:
    """(before, after) zero padding of ``padding="same"`` along one axis (TensorFlow's rule,
    which Keras follows on every backend): output ``ceil(n / stride)``, the odd pixel after."""
    eff = (k - 1) * dilation + 1
    out = -(-n // stride)
    total = max((out - 1) * stride + eff - n, 0)
    return total // 2, total - total // 2


def depthwise(ops, x, kernel, strides: Tuple[int, int], padding: str, dilation):
    """``ops.depthwise_conv`` (channels-last) in a form every backend's CPU kernel runs.

    TensorFlow's plain CPU depthwise kernel refuses unequal strides ("only supports equal length
    strides in the row and column dimensions"); unequal strides are computed as explicit
    padding, a stride-1 "valid" depthwise convolution and a strided slice, which is the same
    sum at the same positions.
    """
    sh, sw = int(strides[0]), int(strides[1])
    if sh == sw:
        return ops.depthwise_conv(x, kernel, strides=(sh, sw), padding=padding,
                                  data_format="channels_last", dilation_rate=dilation)
    dil = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    if padding == "same":
        kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
        top, bottom = same_padding(int(x.shape[1]), kh, sh, dil[0])
        left, right = same_padding(int(x.shape[2]), kw, sw, dil[1])
        x = ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    y = ops.depthwise_conv(x, kernel, strides=1, padding="valid", data_format="channels_last",
                           dilation_rate=dil)
    return y[:, ::sh, ::sw, :]


def make_head(layer, keras, ops):
    """pre-activation of image b's own filter: x_in (B, H, W, C) channels-last, idx (B,) ->
    (B, Ho, Wo). Also returns the number of output channels. The layer's variables are read at
    every call (inside a traced function: at every run), never captured as constants."""
    L = keras.layers
    fmt = getattr(layer, "data_format", "channels_last")
    strides = tuple(layer.strides)
    dil = tuple(layer.dilation_rate)
    padding = layer.padding
    const = lambda v: ops.stop_gradient(ops.convert_to_tensor(v))
    has_bias = getattr(layer, "use_bias", False) and layer.bias is not None

    def to_last(x):
        x = ops.cast(x, "float32")          # mixed precision: the head runs in float32
        return ops.transpose(x, (0, 2, 3, 1)) if fmt == "channels_first" else x

    def add_bias(y, idx):
        return y + ops.take(const(layer.bias), idx)[:, None, None] if has_bias else y

    if isinstance(layer, L.SeparableConv2D):
        def head(x, idx):
            dk = const(layer.depthwise_kernel)
            pk = const(layer.pointwise_kernel)[0, 0]          # (Cin*mult, Cout)
            d = depthwise(ops, to_last(x), dk, strides, padding, dil)
            p = ops.transpose(ops.take(pk, ops.cast(idx, "int32"), axis=1))   # (B, Cin*mult)
            return add_bias(ops.sum(d * p[:, None, None, :], axis=-1), idx)
        return head, int(layer.pointwise_kernel.shape[-1])

    if isinstance(layer, L.Conv2DTranspose):
        cout = int(layer.kernel.shape[2])                 # kernel (kh, kw, Cout, Cin)

        def head(x, idx):
            y = ops.conv_transpose(to_last(x), const(layer.kernel), strides=strides, padding=padding,
                                   output_padding=layer.output_padding, data_format="channels_last",
                                   dilation_rate=dil)
            onehot = ops.one_hot(idx, cout, dtype=y.dtype)[:, None, None, :]
            return add_bias(ops.sum(y * onehot, axis=-1), idx)
        return head, cout

    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw, cin, mult = (int(d) for d in layer.kernel.shape)   # (kh, kw, Cin, mult)
        groups, cg, cout = cin, 1, cin * mult
    else:   # Conv2D
        kh, kw, cg, cout = (int(d) for d in layer.kernel.shape)    # (kh, kw, Cin/groups, Cout)
        groups = int(getattr(layer, "groups", 1))
    per_group = cout // groups

    def head(x, idx):
        full = ops.reshape(const(layer.kernel), (kh, kw, cg, cout))
        x = to_last(x)
        idx = ops.cast(idx, "int32")
        h, w, cin = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
        if groups > 1:
            b = ops.shape(x)[0]
            first = (idx // per_group) * cg
            chan = ops.reshape(first, (-1, 1)) + ops.arange(cg, dtype="int32")[None, :]
            rows = ops.reshape(ops.arange(b, dtype="int32") * cin, (-1, 1))
            flat = ops.reshape(ops.transpose(x, (0, 3, 1, 2)), (-1, h, w))
            x = ops.take(flat, ops.reshape(rows + chan, (-1,)), axis=0)       # (B*Cg, H, W)
            x = ops.transpose(ops.reshape(x, (-1, cg, h, w)), (0, 2, 3, 1))  # (B, H, W, Cg)
        xs = ops.reshape(ops.transpose(x, (1, 2, 0, 3)), (1, h, w, -1))       # (1, H, W, B*Cg)
        ks = ops.take(full, idx, axis=3)                                      # (kh, kw, Cg, B)
        ks = ops.reshape(ops.transpose(ks, (0, 1, 3, 2)), (kh, kw, -1, 1))   # (kh, kw, B*Cg, 1)
        y = depthwise(ops, xs, ks, strides, padding, dil)
        ho, wo = int(y.shape[1]), int(y.shape[2])
        y = ops.sum(ops.reshape(y, (ho, wo, -1, cg)), axis=-1)                # (Ho, Wo, B)
        return add_bias(ops.transpose(y, (2, 0, 1)), idx)
    return head, cout


def _activation_of(layer, keras):
    """(elementwise function, name) of a conv's own activation or of a following activation
    layer; (identity, None) when there is none."""
    if layer is None:
        return (lambda x: x), None
    kind = type(layer).__name__
    A = keras.activations
    if kind == "ReLU":
        return (lambda x: A.relu(x, negative_slope=layer.negative_slope,
                                 max_value=layer.max_value, threshold=layer.threshold)), "relu"
    if kind == "LeakyReLU":
        return (lambda x: A.leaky_relu(x, negative_slope=layer.negative_slope)), "leaky_relu"
    if kind == "ELU":
        return (lambda x: A.elu(x, alpha=layer.alpha)), "elu"
    act = getattr(layer, "activation", None)
    if act is None:
        return (lambda x: x), None
    name = getattr(act, "__name__", type(act).__name__)
    return act, None if name == "linear" else name


def make_post(layer, li: core.Probe, keras, ops):
    """post(pre, idx) -> (the BatchNorm's output, the activation's output) per image's own
    filter: the conv's own activation, else the BatchNormalization (inference form, variables
    read at every call) and activation layer that follow it. Also returns (norm, activation)
    names."""
    own, own_name = _activation_of(layer, keras)
    if own_name is not None:
        return (lambda pre, idx: (pre, own(pre))), (None, own_name)
    act, act_name = _activation_of(li.activation, keras)
    bn = li.norm

    def post(pre, idx):
        lin = pre
        if bn is not None:
            col = lambda v: ops.take(ops.cast(ops.stop_gradient(ops.convert_to_tensor(v)),
                                              "float32"), idx)[:, None, None]
            lin = (pre - col(bn.moving_mean)) / ops.sqrt(col(bn.moving_variance) + bn.epsilon)
            if bn.scale:
                lin = lin * col(bn.gamma)
            if bn.center:
                lin = lin + col(bn.beta)
        return lin, act(lin)
    return post, (None if bn is None else "BatchNorm", act_name)


# ----------------------------------------------------------------------------- make_grids


def make_grids(model, layers: Optional[Sequence[str]] = None, *, time_budget: Optional[float] = None,
               log: Optional[Callable[[str], None]] = None, progress: Optional[bool] = None,
               **options) -> core.GridRun:
    """Yield one ``GridResult`` per 2-D conv layer of a Keras 3 model (TensorFlow, torch or JAX
    backend).

    ``layers``: node ids or layer names (default: every Conv2D, DepthwiseConv2D, SeparableConv2D
    and Conv2DTranspose, nested models included). The image size is the model's fixed input size
    (else ``image_size=`` or 128); the value range is ``value_range=``, else [0, 255] behind a
    leading Rescaling layer, else [0, 1]. ``time_budget`` (seconds per call) stops starting new
    layers once spent; one line per layer goes to ``log`` and the ``tensorboard_archviz.filters``
    logger (a tqdm bar on a terminal). The returned iterator's ``skipped`` lists the layers that
    got no grid and why. Options: see ``core.Options``.
    """
    return core.GridRun(lambda skipped: _grids(skipped, model, layers, time_budget, log,
                                               progress, options))


def _grids(skipped: List[core.Skipped], model, layers, time_budget, log, progress, options
           ) -> Iterator[core.GridResult]:
    """The generator behind ``make_grids`` (checks run at the first ``next``)."""
    import keras
    from keras import ops

    if not isinstance(model, keras.Model):
        raise TypeError("make_grids expects a keras.Model, got %s" % type(model).__name__)
    opts = core.resolve_options(options)
    budget = core.Budget(time_budget, log, progress)
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch", "jax"):
        budget.log("archviz filters: the Keras %r backend is not supported (tensorflow, torch, "
                   "jax); no grids written" % backend)
        return
    if not model.built:
        raise ValueError("make_grids needs a built model: call it on data (or build it) first")
    targets = select_layers(model, layers, keras, budget.log)
    if not targets:
        budget.log("archviz filters: no 2-D conv layer to visualise")
        return
    try:
        c, (h, w), fmt = _input_facts(model, opts, keras, targets)
    except _Unsupported as e:
        budget.log("archviz filters: skipped all layers: %s" % e)
        return
    shape = (1, c, h, w) if fmt == "channels_first" else (1, h, w, c)
    info, first_conv = _probe(model, keras, ops, ops.zeros(shape, dtype="float32"),
                              {id(layer): nid for nid, layer in targets})
    steps = KerasSteps(model=model, keras=keras, backend=backend, fmt=fmt, channels=c,
                       image_hw=(h, w), value_range=_value_range(model, opts, keras),
                       first_conv=first_conv, threads=_torch_threads(backend, opts, budget))
    yield from core.drive(steps, [core.Target(n, l, info[n]) for n, l in targets], opts, budget,
                          skipped)


def _torch_threads(backend: str, opts: core.Options, budget: core.Budget) -> Optional[int]:
    """On the torch backend, the intra-op threads of the loops (``torch_optim.choose_threads``);
    None on TensorFlow and JAX (their thread pools are fixed once started)."""
    if backend != "torch":
        return None
    import torch
    from tensorboard_archviz.filters.torch_optim import choose_threads

    threads, why = choose_threads(opts.threads, torch)
    if threads != torch.get_num_threads():
        budget.log("archviz filters: %d torch thread(s) instead of %d (%s)"
                   % (threads, torch.get_num_threads(), why))
    return threads


@dataclasses.dataclass
class KerasSteps:
    """The Keras backend's per-layer steps for ``core.drive`` (``core.LayerSteps``)."""
    model: Any
    keras: Any                          # the keras module
    backend: str                        # "tensorflow" | "torch" | "jax"
    fmt: str                            # the model's data format
    channels: int
    image_hw: Tuple[int, int]
    value_range: Tuple[float, float]
    first_conv: Any                     # id() of the first 2-D conv layer that runs
    threads: Optional[int] = None       # torch backend: intra-op threads while a layer runs

    def plan(self, target: core.Target, opts: core.Options) -> core.Plan:
        _, n_total = make_head(target.layer, self.keras, self.keras.ops)
        return core.make_plan(target.node_id, type(target.layer).__name__, n_total,
                              self.channels, self.image_hw, self.value_range,
                              id(target.layer) == self.first_conv, opts)

    def run(self, target: core.Target, plan: core.Plan, opts: core.Options,
            log: Callable[[str], None]) -> core.GridResult:
        if self.threads is None:
            return _run_layer(self, target, plan, opts, log)
        import torch
        from tensorboard_archviz.filters.torch_optim import num_threads

        with num_threads(self.threads, torch):
            return _run_layer(self, target, plan, opts, log)


def forward_to(model, layer, fmt: str, nchw_input: bool):
    """A function images -> the input of ``layer`` (the model is cut there); the patch of the
    layer's ``call`` must be active while it runs (or is traced)."""
    captured = {}
    model_ref = weakref.ref(model)   # cached traces must not keep the model alive

    def make(orig):
        def call(*args, **kwargs):
            captured["x"] = _first_input(args, kwargs)
            raise _Stop()
        return call

    def forward(x):
        from keras import ops
        model = model_ref()
        if nchw_input and fmt != "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        elif not nchw_input and fmt == "channels_first":
            x = ops.transpose(x, (0, 3, 1, 2))
        try:
            model(x, training=False)
        except _Stop:
            pass
        if "x" not in captured:
            raise RuntimeError("the forward pass did not reach layer %r" % layer.name)
        return captured.pop("x")
    return forward, {id(layer): (layer, make)}


_TF_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _trace_key(plan: core.Plan) -> str:
    """What a traced loop depends on (not the filter indices, the steps or the seed)."""
    fields = dataclasses.asdict(plan)
    for k in ("indices", "n_total", "steps", "seed"):
        fields.pop(k)
    return repr(sorted(fields.items()))


def first_layer_kernels(layer, keras, indices) -> Optional[np.ndarray]:
    """(N, kh, kw, cin) of a plain Conv2D's kernels for the tile metadata (None otherwise)."""
    if type(layer) is not keras.layers.Conv2D or int(getattr(layer, "groups", 1)) != 1:
        return None
    k = keras.ops.convert_to_numpy(layer.kernel).astype(np.float32)   # (kh, kw, cin, cout)
    return k.transpose(3, 0, 1, 2)[list(indices)]


def _optimizer(steps: KerasSteps, layer, head, post, plan: core.Plan):
    """(optimiser, patch) for one layer on the model's Keras backend."""
    model, fmt = steps.model, steps.fmt
    if steps.backend == "torch":
        import torch
        from tensorboard_archviz.filters.torch_optim import TorchOptimizer
        forward, patch = forward_to(model, layer, fmt, nchw_input=True)
        device = torch.device("cpu")
        try:
            from keras.src.backend.torch.core import get_device
            device = torch.device(get_device())
        except Exception:  # noqa: BLE001 - an older Keras: CPU
            pass
        return TorchOptimizer(plan, forward, head, post, device, torch), patch
    # One traced/compiled loop per (model, layer, plan): a callback calling every epoch reuses
    # it. TensorFlow's trace reads the variables and JAX's loop takes their values as arguments,
    # so either sees the weights of each call.
    key = (steps.backend, plan.node_id, _trace_key(plan))
    cache = _TF_CACHE.setdefault(model, {})
    if key not in cache:
        forward, patch = forward_to(model, layer, fmt, nchw_input=False)
        if steps.backend == "jax":
            from tensorboard_archviz.filters.jax_optim import JaxOptimizer
            cache[key] = (JaxOptimizer(plan, forward, head, post, model), patch)
        else:
            from tensorboard_archviz.filters.tf_optim import TFOptimizer
            cache[key] = (TFOptimizer(plan, forward, head, post), patch)
    cache[key][0].plan = plan      # the same but for indices, steps and seed (not in the trace)
    return cache[key]


def _run_layer(steps: KerasSteps, target: core.Target, plan: core.Plan, opts: core.Options,
               log: Callable[[str], None]) -> core.GridResult:
    keras, ops = steps.keras, steps.keras.ops
    layer, li = target.layer, target.probe
    head, _ = make_head(layer, keras, ops)
    out_hw = (li.out_shape[2:4] if getattr(layer, "data_format", "channels_last")
              == "channels_first" else li.out_shape[1:3])
    post, (norm, act_name) = make_post(layer, li, keras, ops)

    def post_fn(pre: np.ndarray, indices) -> Tuple[np.ndarray, np.ndarray]:
        idx = ops.convert_to_tensor(np.asarray(indices, np.int32))
        lin, out = post(ops.convert_to_tensor(pre), idx)
        return ops.convert_to_numpy(lin), ops.convert_to_numpy(out)

    opt, patch = _optimizer(steps, layer, head, post, plan)
    facts = core.LayerFacts(activation=act_name, norm=norm,
                            kernels=first_layer_kernels(layer, keras, plan.indices)
                            if plan.first_conv else None)
    key = ("keras", steps.backend, id(steps.model), plan.node_id, plan.image_hw, plan.channels,
           plan.parametrization)
    with patched(patch):
        return core.optimise_layer(plan, opts, tuple(int(v) for v in out_hw), opt.run, post_fn,
                                   facts, li.bytes_per_image(plan), key, log)
