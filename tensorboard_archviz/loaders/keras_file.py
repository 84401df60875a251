"""Keras files: ``.keras`` (a zip of config.json + weights) and legacy ``.h5`` / ``.hdf5``.

Loaded in Keras' safe mode (no Lambda layers: Python code inside the file) unless ``--unsafe``;
custom classes must be registered first (``--import MODULE``).
"""

from __future__ import annotations

import io
import re

from tensorboard_archviz import util
from tensorboard_archviz.loaders.common import (UNSAFE_HELP, LoadError, Loaded, Options,
                                                extraction_failed, zip_names)

SUFFIXES = (".keras", ".h5", ".hdf5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FILTERS_NOTE = None  # filter grids: yes (the layers are there)


def match(path: str) -> bool:
    """A Keras suffix, an HDF5 signature, or a zip holding config.json and model.weights*."""
    if path.lower().endswith(SUFFIXES):
        return True
    with io.open(path, "rb") as f:
        if f.read(8) == HDF5_SIGNATURE:
            return True
    names = zip_names(path) or []
    return "config.json" in names and any(n.startswith("model.weights") for n in names)


def _custom_class_error(path: str, text: str):
    found = re.search(r"Could not locate (?:class|function) '([^']+)'", text) or \
        re.search(r"Unknown (?:layer|object|class|activation|loss|metric)[^:]*: '([^']+)'", text)
    if not found:
        return None
    name = "'%s'" % found.group(1)
    reg = re.search(r"'registered_name': '([^']+)'", text[found.end():])
    if reg and reg.group(1) != found.group(1):
        name += " (registered as '%s')" % reg.group(1)
    return LoadError(
        "%s: the model uses the custom class %s, which cannot be deserialised here (it is not "
        "registered in this process). Pass --import MODULE with the module that defines it "
        "(decorated with @keras.saving.register_keras_serializable()), or write the "
        "architecture from Python with ArchVizCallback" % (path, name))


def load_keras(path: str, unsafe: bool = False):
    """The keras.Model of a file (safe mode unless `unsafe`); LoadError with one line."""
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:  # noqa: BLE001 - Keras raises TypeError/ValueError/OSError/...
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        custom = _custom_class_error(path, text)
        if custom is not None:
            raise custom from None
        if "safe_mode" in text:
            raise LoadError("%s: the model holds a Lambda layer (Python code inside the file), "
                            "which Keras loads only in unsafe mode: pass %s"
                            % (path, UNSAFE_HELP)) from None
        if isinstance(e, OSError):
            raise LoadError("%s: cannot read the Keras file (%s)" % (path, util.one_line(e))) \
                from None
        raise LoadError("%s: not a loadable Keras model (%s)" % (path, util.one_line(e))) \
            from None


def open(path: str, options: Options) -> Loaded:  # noqa: A001 - the loaders' contract
    if options.input_shapes:
        raise LoadError("--input-shape is for PyTorch files; a Keras file carries its shapes")
    from tensorboard_archviz.extract.keras import extract_keras

    model = load_keras(path, options.unsafe)
    try:
        return Loaded("keras", "keras", model, None, extract_keras(model))
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise extraction_failed(path, e) from None
