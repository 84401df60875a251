"""A Hugging Face ``config.json`` -> a model on the meta device and an example input (the CLI's).

The model is built from the configuration alone (no weights, no download, nothing allocated per
parameter: ``torch.device("meta")``), with the class the config's ``architectures`` names (e.g.
``LlamaForCausalLM``) or ``AutoModel`` when it names none, in the config's dtype. The example
input follows the model's ``main_input_name``: ``input_ids`` of shape ``(1, seq_len)`` (plus
``decoder_input_ids`` for encoder-decoder models), or ``pixel_values`` ``(1, C, H, W)`` from the
config's image size; ``--input-shape`` replaces the main input's shape.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Dict, Optional, Sequence, Tuple

DEFAULT_SEQ_LEN = 16


class ConfigError(Exception):
    """A config that cannot become a model here; the message is one line for the user."""


def is_hf_config(path: str) -> bool:
    """Whether `path` is a JSON file that looks like a Hugging Face model configuration."""
    if not path.lower().endswith(".json"):
        return False
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(4 << 20).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and ("model_type" in data or "architectures" in data)


def _read(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError("%s: not a readable JSON config (%s)" % (path, e)) from None
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise ConfigError("%s: a Hugging Face config.json needs a \"model_type\" (e.g. \"llama\")"
                          % path)
    return data


def _config(path: str, data: Dict[str, Any]):
    try:
        import transformers
    except ImportError:
        raise ConfigError("%s is a Hugging Face config: building it needs the `transformers` "
                          "package (pip install transformers)" % path) from None
    try:
        return transformers, transformers.AutoConfig.for_model(**data)
    except (ValueError, KeyError, TypeError) as e:
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


def build(path: str, seq_len: int = DEFAULT_SEQ_LEN,
          shape: Optional[Sequence[int]] = None) -> Tuple[Any, Dict[str, Any], str]:
    """(model on the meta device, example input, class name) of a config.json."""
    import torch

    data = _read(path)
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
