"""A Hugging Face ``config.json`` -> a model on the meta device and an example input (the CLI's).

The model is built from the configuration alone (no weights, no download, nothing allocated per
parameter: ``torch.device("meta")``), with the class the config's ``architectures`` names (e.g.
``LlamaForCausalLM``) or ``AutoModel`` when it names none, in the config's dtype. The example
input follows the model's ``main_input_name``: ``input_ids`` of shape ``(1, seq_len)`` (plus
``decoder_input_ids`` for encoder-decoder models), or ``pixel_values`` ``(1, C, H, W)`` from the
config's image size; ``--input-shape`` replaces the main input's shape.

A config.json is untrusted input, checked before anything is built (``read_config``):

* only a regular file is read (``os.stat`` before ``open``: a FIFO or a device is refused at
  once), at most ``MAX_CONFIG_BYTES``;
* malformed JSON is reported as JSON (the decoder's message, line and column);
* every size field (``SIZE_FIELDS``, at any nesting such as ``text_config``) must be a positive
  integer, and no number may be infinite (``1e400``) or NaN: one line naming the field;
* a budget: the layers the config asks for (``LAYER_FIELDS`` summed over the config and its
  sub-configs) at most ``max_layers`` (default ``MAX_LAYERS``), and its parameters, estimated from
  the sizes (``estimate_params``), at most ``max_params`` (default ``MAX_PARAMS``); the CLI's
  ``--max-layers`` / ``--max-params`` raise them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

DEFAULT_SEQ_LEN = 16
MAX_CONFIG_BYTES = 16 << 20
MAX_LAYERS = 256  # the deepest published models have ~130 blocks (Llama 3.1 405B: 126)
MAX_PARAMS = 2 * 10 ** 12  # a meta-device model costs per module, not per parameter
LAYER_FIELDS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers",
                "decoder_layers", "num_decoder_layers", "num_encoder_layers")
SIZE_FIELDS = LAYER_FIELDS + (
    "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
    "vocab_size", "max_position_embeddings", "n_embd", "n_head", "n_inner", "n_positions",
    "d_model", "d_ff", "d_kv", "num_heads", "encoder_ffn_dim", "decoder_ffn_dim",
    "encoder_attention_heads", "decoder_attention_heads", "image_size", "patch_size",
    "num_channels", "head_dim", "num_experts", "num_local_experts", "moe_intermediate_size")


class ConfigError(Exception):
    """A config that cannot become a model here; the message is one line for the user."""


class _Number(float):
    """A JSON number that is not an integer, keeping its text (``1e400`` reads as inf)."""
    text = ""


def _number(text: str) -> float:
    n = _Number(text)
    n.text = text
    return n


def _constant(text: str) -> float:  # NaN, Infinity, -Infinity: not JSON, accepted by Python
    return _number(text)


def _read_bytes(path: str) -> bytes:
    """The file's bytes: a regular file only (checked before opening), bounded."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError("%s: cannot read the file (%s)" % (path, e.strerror or e)) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("%s is not a regular file (a FIFO, device or socket): a config.json "
                          "is read only from a regular file" % path)
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError("%s is %d bytes; a config.json over %d MiB is refused"
                          % (path, st.st_size, MAX_CONFIG_BYTES >> 20))
    try:
        with open(path, "rb") as f:
            return f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError("%s: cannot read the file (%s)" % (path, e.strerror or e)) from None


def _walk(data: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """(dotted field name, value) of every value in nested dicts and lists (iterative)."""
    todo: List[Tuple[str, Any]] = [(prefix, data)]
    while todo:
        name, value = todo.pop()
        if isinstance(value, dict):
            todo.extend(((name + "." if name else "") + str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend(("%s[%d]" % (name, i), v) for i, v in enumerate(value))
        else:
            yield name, value


def _shown(value: Any) -> str:
    text = value.text if isinstance(value, _Number) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_values(path: str, data: Dict[str, Any]) -> None:
    """One line naming the first field with a wrong value (see the module docstring)."""
    for name, value in _walk(data):
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError("%s: %s: %s is not a finite number" % (path, name, _shown(value)))
        if leaf in SIZE_FIELDS and value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError("%s: %s: %s is not a positive integer" % (path, name, _shown(value)))


def read_config(path: str) -> Dict[str, Any]:
    """The config's JSON object, checked (regular file, JSON, values); ConfigError else."""
    raw = _read_bytes(path)
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=_number, parse_constant=_constant)
    except UnicodeDecodeError as e:
        raise ConfigError("%s: not UTF-8 text (byte %d)" % (path, e.start)) from None
    except json.JSONDecodeError as e:
        raise ConfigError("%s: invalid JSON: %s (line %d, column %d)"
                          % (path, e.msg, e.lineno, e.colno)) from None
    except RecursionError:
        raise ConfigError("%s: invalid JSON: nested too deeply" % path) from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ConfigError("%s: a Hugging Face config.json needs a \"model_type\" (e.g. \"llama\")"
                          % path)
    check_values(path, data)
    return json.loads(json.dumps(data))  # plain floats again (every number is finite now)


def _configs(data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The config and its sub-configs (``text_config``, ``encoder``, ...), iteratively."""
    out, todo = [], [data]
    while todo:
        d = todo.pop()
        out.append(d)
        todo.extend(v for v in d.values() if isinstance(v, dict))
    return out


def _size(d: Dict[str, Any], *keys: str) -> int:
    return next((d[k] for k in keys if isinstance(d.get(k), int)), 0)


def count_layers(data: Dict[str, Any]) -> int:
    """The layers (blocks) a config asks for: its LAYER_FIELDS summed over every sub-config."""
    return sum(_size(d, k) for d in _configs(data) for k in LAYER_FIELDS)


def estimate_params(data: Dict[str, Any]) -> int:
    """Parameters by the config's sizes: per block attention 4·h² plus an MLP of 3·h·i (i: the
    intermediate size, default 4·h; times the experts of a mixture), embeddings and head
    2·vocab·h; summed over sub-configs. An estimate, for the budget only."""
    total = 0
    for d in _configs(data):
        h = _size(d, "hidden_size", "n_embd", "d_model")
        i = _size(d, "intermediate_size", "n_inner", "d_ff", "encoder_ffn_dim") or 4 * h
        experts = max(1, _size(d, "num_local_experts", "num_experts"))
        layers = sum(_size(d, k) for k in LAYER_FIELDS)
        total += layers * (4 * h * h + 3 * h * i * experts) + 2 * _size(d, "vocab_size") * h
    return total


def check_budget(path: str, data: Dict[str, Any], max_layers: Optional[int] = None,
                 max_params: Optional[int] = None) -> None:
    """ConfigError naming the budget when the config asks for more than it allows."""
    max_layers = MAX_LAYERS if max_layers is None else max_layers
    max_params = MAX_PARAMS if max_params is None else max_params
    layers = count_layers(data)
    if layers > max_layers:
        raise ConfigError("%s asks for {:,} layers, over the layer budget of {:,}; pass "
                          "--max-layers N to build it anyway".format(layers, max_layers) % path)
    params = estimate_params(data)
    if params > max_params:
        raise ConfigError("%s asks for about {:,} parameters (estimated from its sizes), over the "
                          "parameter budget of {:,}; pass --max-params N to build it anyway"
                          .format(params, max_params) % path)


def _config(path: str, data: Dict[str, Any]):
    try:
        import transformers
    except ImportError:
        raise ConfigError("%s is a Hugging Face config: building it needs the `transformers` "
                          "package (pip install transformers)" % path) from None
    try:
        return transformers, transformers.AutoConfig.for_model(**data)
    except Exception as e:  # noqa: BLE001 - transformers raises many types for bad values
        reason = (str(e).splitlines() or [type(e).__name__])[0].split(". ")[0][:200]
        raise ConfigError("%s: transformers %s cannot build model_type %r (%s)"
                          % (path, transformers.__version__, data["model_type"], reason)) \
            from None


def _model_class(path: str, transformers, config):
    names = list(getattr(config, "architectures", None) or [])
    if not names:
        return transformers.AutoModel, "AutoModel"
    cls = getattr(transformers, names[0], None) if isinstance(names[0], str) else None
    if not isinstance(cls, type):
        raise ConfigError("%s names an unknown architecture %r (transformers %s has no such "
                          "class); remove \"architectures\" to build the base model"
                          % (path, names[0], transformers.__version__))
    return cls, names[0]


@contextlib.contextmanager
def _default_dtype(dtype):
    import torch

    saved = torch.get_default_dtype()
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def _dtype(config):
    import torch

    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def example_input(model, config, seq_len: int,
                  shape: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Keyword tensors on the meta device for the model's main input."""
    import torch

    name = getattr(model, "main_input_name", "input_ids")
    if name == "pixel_values":
        size = getattr(config, "image_size", 224)
        size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
        dims = tuple(shape or (1, getattr(config, "num_channels", 3)) + size)
        return {name: torch.zeros(dims, dtype=_dtype(config) or torch.float32, device="meta")}
    if name != "input_ids":
        if not shape:
            raise ConfigError("the model's input %r has no default shape: pass --input-shape"
                              % name)
        return {name: torch.zeros(tuple(shape), device="meta")}
    ids = torch.zeros(tuple(shape or (1, seq_len)), dtype=torch.long, device="meta")
    out = {"input_ids": ids}
    if getattr(config, "is_encoder_decoder", False):
        out["decoder_input_ids"] = ids
    return out


def build(path: str, seq_len: int = DEFAULT_SEQ_LEN, shape: Optional[Sequence[int]] = None,
          max_layers: Optional[int] = None,
          max_params: Optional[int] = None) -> Tuple[Any, Dict[str, Any], str]:
    """(model on the meta device, example input, class name) of a config.json, checked and
    within the budget first (see the module docstring)."""
    data = read_config(path)
    check_budget(path, data, max_layers, max_params)
    import torch
    transformers, config = _config(path, data)
    cls, name = _model_class(path, transformers, config)
    try:
        with torch.device("meta"), _default_dtype(_dtype(config)):
            model = cls.from_config(config) if name == "AutoModel" else cls(config)
    except Exception as e:  # noqa: BLE001 - transformers raises many types for bad configs
        raise ConfigError("%s: transformers could not build %s from it (%s: %s)"
                          % (path, name, type(e).__name__, str(e).splitlines()[0][:200])) \
            from None
    model.eval()
    return model, example_input(model, config, seq_len, shape), name
