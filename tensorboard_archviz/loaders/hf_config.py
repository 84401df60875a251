"""Hugging Face ``config.json``: the model built on the meta device from its configuration (no
weights, nothing runs from the file: transformers' own classes build it), then ``extract_torch``
on an example input (``tensorboard_archviz.hf_config``). The file is checked first: a regular
file, valid JSON, sane values, within the layer / parameter budget (``--max-layers`` /
``--max-params``)."""

from __future__ import annotations

from tensorboard_archviz import hf_config, util
from tensorboard_archviz.loaders.common import LoadError, Loaded, Options

FILTERS_NOTE = ("--filters needs trained weights; a config.json model has none (it is built on "
                "the meta device)")


def match(path: str) -> bool:
    """Any ``.json`` file (a malformed one is reported as JSON by ``open``)."""
    return path.lower().endswith(".json")


def open(path: str, options: Options) -> Loaded:  # noqa: A001 - the loaders' contract
    shapes = options.input_shapes
    if shapes and len(shapes) > 1:
        raise LoadError("--input-shape: a config.json model takes one main input shape")
    if options.seq_len is not None and options.seq_len <= 0:
        raise LoadError("--seq-len must be a positive integer, got %d" % options.seq_len)
    try:
        model, example, name = hf_config.build(
            path, options.seq_len or hf_config.DEFAULT_SEQ_LEN, shapes[0] if shapes else None,
            max_layers=options.max_layers, max_params=options.max_params)
    except hf_config.ConfigError as e:
        raise LoadError(str(e)) from None
    from tensorboard_archviz.extract.torch import extract_torch

    try:
        arch = extract_torch(model, example)
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise LoadError("%s: extraction of %s on the meta device failed: %s"
                        % (path, name, util.one_line(e))) from None
    return Loaded("torch", "config", model, example, arch)
