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
* Gradients: ``tf.GradientTape`` inside one ``tf.function`` running the whole loop (TensorFlow),
  ``torch_optim.TorchOptimizer`` with ``torch.autograd.grad`` (torch backend), or
  ``jax_backend.JaxOptimizer`` with ``jax.grad`` in one jitted loop (JAX backend).
* Node ids are the ones the architecture uses (``extract.keras.layer_node_ids``), e.g.
  ``conv2d_1`` or ``inner_model/conv2d``. Conv1D / Conv3D are skipped with a log line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
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


def _follow(layer, xin, state, info) -> None:
    """What consumes the last target's output: a BatchNormalization (followed further) or an
    elementwise activation layer are recorded; anything else ends the chain."""
    lt = state["last_target"]
    if lt is None:
        return
    same = xin is state["last_out"]
    li = info[lt]
    name = type(layer).__name__
    if same and name == "BatchNormalization" and li["norm"] is None and li["activation"] is None:
        li["norm"] = layer
        state["norm_layer"] = layer
        return
    if same and name in _ACT_LAYERS:
        li["activation"] = layer
    state["last_target"] = None


def _probe(model, keras, ops, x, targets: Dict[int, str]) -> Dict[str, Any]:
    """One forward pass recording, per target layer, its input/output shapes, the bytes of the
    activations computed before it and the BatchNorm / activation layers that follow it; plus the
    first 2-D conv that runs. Stops after the targets (and what follows the last one)."""
    conv2d, _ = _conv_classes(keras)
    leaves = _leaf_layers(model)
    state = {"numel": 0, "first_conv": None, "done": 0, "last_target": None, "last_out": None,
             "norm_layer": None}
    info: Dict[str, Dict[str, Any]] = {}

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
                    info[name] = {"in_shape": tuple(int(d) for d in xin.shape),
                                  "out_shape": tuple(int(d) for d in out.shape),
                                  "bytes_before": 4 * before, "norm": None, "activation": None}
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
            info[name] = {"error": "the forward pass did not reach this layer%s"
                          % (" (it raised %s)" % one_line(error) if error else "")}
    info["__first_conv__"] = state["first_conv"]
    return info


# ----------------------------------------------------------------------------- the layer itself


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
            d = ops.depthwise_conv(to_last(x), dk, strides=strides, padding=padding,
                                   data_format="channels_last", dilation_rate=dil)
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
        y = ops.depthwise_conv(xs, ks, strides=strides, padding=padding,
                               data_format="channels_last", dilation_rate=dil)
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


def make_post(layer, li: Dict[str, Any], keras, ops):
    """post(pre, idx) -> (the BatchNorm's output, the activation's output) per image's own
    filter: the conv's own activation, else the BatchNormalization (inference form, variables
    read at every call) and activation layer that follow it. Also returns (norm, activation)
    names."""
    own, own_name = _activation_of(layer, keras)
    if own_name is not None:
        return (lambda pre, idx: (pre, own(pre))), (None, own_name)
    act, act_name = _activation_of(li.get("activation"), keras)
    bn = li.get("norm")

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


# ----------------------------------------------------------------------------- TensorFlow engine


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
        plan = self.plan
        sched = core.make_schedule(plan, steps, seed_offset)
        trans = np.zeros((steps, 8), np.float32)
        if sched.affines is not None:
            trans = core.affine_to_projective(sched.affines, plan.crop_hw)
        if z0 is None:
            z0 = core.init_params(plan, len(indices), seed_offset)
        args = (tf.constant(np.array(z0, np.float32)), tf.constant(np.asarray(indices, np.int32)),
                tf.constant(sched.offsets.astype(np.int32)), tf.constant(trans),
                tf.constant(np.asarray(window, np.float32)))
        final, pre, support = self._run(*args)
        return final.numpy(), pre.numpy(), support.numpy()


# ----------------------------------------------------------------------------- make_grids


def make_grids(model, layers: Optional[Sequence[str]] = None, *, time_budget: Optional[float] = None,
               log: Optional[Callable[[str], None]] = None, progress: Optional[bool] = None,
               **options) -> Iterator[core.GridResult]:
    """Yield one ``GridResult`` per 2-D conv layer of a Keras 3 model (TensorFlow, torch or JAX
    backend).

    ``layers``: node ids or layer names (default: every Conv2D, DepthwiseConv2D, SeparableConv2D
    and Conv2DTranspose, nested models included). The image size is the model's fixed input size
    (else ``image_size=`` or 128); the value range is ``value_range=``, else [0, 255] behind a
    leading Rescaling layer, else [0, 1]. ``time_budget`` (seconds per call) stops starting new
    layers once spent; one line per layer goes to ``log`` and the ``tensorboard_archviz.filters``
    logger (a tqdm bar on a terminal). Options: see ``core.Options``.
    """
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
    value_range = _value_range(model, opts, keras)
    shape = (1, c, h, w) if fmt == "channels_first" else (1, h, w, c)
    info = _probe(model, keras, ops, ops.zeros(shape, dtype="float32"),
                  {id(layer): nid for nid, layer in targets})
    first_conv = info.pop("__first_conv__")
    env = (c, (h, w), fmt, value_range, first_conv, backend)
    budget.open_bar(len(targets))
    try:
        yield from _layers(model, targets, info, env, opts, budget, keras, ops)
    finally:
        budget.close()


def _layers(model, targets, info, env, opts: core.Options, budget: core.Budget, keras, ops
            ) -> Iterator[core.GridResult]:
    c, hw, fmt, value_range, first_conv, backend = env
    names = [n for n, _ in targets]
    started = 0
    for k, (nid, layer) in enumerate(targets):
        if budget.exhausted(started, names[k:]):
            return
        li = info[nid]
        if "error" in li:
            budget.log("archviz filters: skipped %s: %s" % (nid, li["error"]))
            budget.advance(nid)
            continue
        t0 = time.perf_counter()
        started += 1
        head, n_total = make_head(layer, keras, ops)
        plan = core.make_plan(nid, type(layer).__name__, n_total, c, hw, value_range,
                              id(layer) == first_conv, opts)
        budget.log("archviz filters [%d/%d] %s" % (k + 1, len(targets), plan.describe()))
        try:
            result = _run_layer(model, layer, head, plan, li, fmt, opts, backend, budget)
        except Exception as e:  # one bad layer must not cost the others their grids
            budget.log("archviz filters [%d/%d] %s failed: %s"
                       % (k + 1, len(targets), nid, one_line(e)))
            budget.advance(nid)
            continue
        result.tiles["seconds"] = round(time.perf_counter() - t0, 3)
        budget.log("archviz filters [%d/%d] %s done in %.1f s (%d dead)"
                   % (k + 1, len(targets), nid, result.tiles["seconds"],
                      sum(t["dead"] for t in result.tiles["tiles"])))
        budget.advance(nid)
        yield result


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


def _optimizer(model, layer, head, post, plan: core.Plan, fmt: str, backend: str):
    """(optimiser, patch) for one layer on the model's Keras backend."""
    if backend == "torch":
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
    key = (backend, plan.node_id, _trace_key(plan))
    cache = _TF_CACHE.setdefault(model, {})
    if key not in cache:
        forward, patch = forward_to(model, layer, fmt, nchw_input=False)
        if backend == "jax":
            from tensorboard_archviz.filters.jax_backend import JaxOptimizer
            cache[key] = (JaxOptimizer(plan, forward, head, post, model), patch)
        else:
            cache[key] = (TFOptimizer(plan, forward, head, post), patch)
    cache[key][0].plan = plan      # the same but for indices, steps and seed (not in the trace)
    return cache[key]


def _run_layer(model, layer, head, plan: core.Plan, li: Dict[str, Any], fmt: str,
               opts: core.Options, backend: str, budget: core.Budget) -> core.GridResult:
    import keras
    from keras import ops

    out_hw = (li["out_shape"][2:4] if getattr(layer, "data_format", "channels_last")
              == "channels_first" else li["out_shape"][1:3])
    post, (norm, act_name) = make_post(layer, li, keras, ops)
    hc, wc = plan.canvas_hw
    per_image = 3.0 * (li["bytes_before"] + 4 * int(np.prod(li["in_shape"][1:]))) \
        + 4 * 8 * plan.channels * hc * wc

    def post_fn(pre: np.ndarray, indices) -> Tuple[np.ndarray, np.ndarray]:
        idx = ops.convert_to_tensor(np.asarray(indices, np.int32))
        lin, out = post(ops.convert_to_tensor(pre), idx)
        return ops.convert_to_numpy(lin), ops.convert_to_numpy(out)

    opt, patch = _optimizer(model, layer, head, post, plan, fmt, backend)
    facts = core.LayerFacts(activation=act_name, norm=norm,
                            kernels=first_layer_kernels(layer, keras, plan.indices)
                            if plan.first_conv else None)
    key = ("keras", backend, id(model), plan.node_id, plan.image_hw, plan.channels,
           plan.parametrization)
    with patched(patch):
        return core.optimise_layer(plan, opts, tuple(int(v) for v in out_hw), opt.run, post_fn,
                                   facts, per_image, key, budget.log)
