"""One loader per file format (as Netron does): each module decides whether a file is its own
(``match(path) -> bool``, cheap: the name, the first bytes or a zip's member list) and opens it
under the consent rules (``open(path, options) -> Loaded``, whose ``.arch`` is the shared
``schema.Architecture``; ``.model`` / ``.example`` serve the filter grids). ``FILTERS_NOTE`` is
None when filter grids can be made from the file, else the one-line reason why not.

``LOADERS`` is tried in order and the first match wins: the archive formats that name their
contents (``.pt2``, TorchScript) come before the PyTorch pickle, which claims every PyTorch
suffix. Adding a format is one module with ``match`` / ``open`` / ``FILTERS_NOTE`` and one line
in ``LOADERS``. Which files run code, and with which consent, is in each module's docstring
and in the README ("Which files run code").
"""

from __future__ import annotations

import os
import stat
from types import ModuleType

from tensorboard_archviz.loaders import (hf_config, keras_file, torch_export, torch_pickle,
                                         torchscript)
from tensorboard_archviz.loaders.common import LoadError, Loaded, Options

LOADERS = [
    hf_config,      # config.json (Hugging Face)
    keras_file,     # .keras, .h5
    torch_export,   # .pt2 (torch.export)
    torchscript,    # torch.jit.save archives
    torch_pickle,   # torch.save(model) and other PyTorch pickles
]

__all__ = ["LOADERS", "LoadError", "Loaded", "Options", "find", "open_file"]


def find(path: str) -> ModuleType:
    """The loader of `path`; LoadError for a missing path, a directory, a file that is not
    regular (a FIFO is never opened) or an unknown format."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LoadError("%s: no such file or directory" % path) from None
    except OSError as e:
        raise LoadError("%s: cannot read the file (%s)" % (path, e.strerror or e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise LoadError("%s is a directory, not a model file" % path)
    if not stat.S_ISREG(st.st_mode):
        raise LoadError("%s is not a regular file (a FIFO, device or socket); archviz reads "
                        "model files only" % path)
    for loader in LOADERS:
        try:
            if loader.match(path):
                return loader
        except OSError as e:
            raise LoadError("%s: cannot read the file (%s)" % (path, e.strerror or e)) from None
    raise LoadError("%s: unknown model format (expected a Keras %s file or a PyTorch %s file)"
                    % (path, "/".join(keras_file.SUFFIXES), "/".join(torch_pickle.SUFFIXES)))


def open_file(path: str, options: Options) -> Loaded:
    """Load a model file with the loader that matches it and extract its Architecture."""
    return find(path).open(path, options)
