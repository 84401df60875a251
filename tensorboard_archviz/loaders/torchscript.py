"""TorchScript archives (``torch.jit.save`` of a scripted or traced module).

A TorchScript archive is a program: its code runs when it is loaded (``__setstate__``) and when
it is called. Without ``--unsafe`` it loads with every dispatched operator checked against the
allowlist (``torch_saved.operator_guard``) and runs on fake tensors only
(``torch_saved.without_real_storage``: shapes and dtypes, no storage, no file); an operator off
the allowlist (``aten::from_file``, anything outside ``aten``) or a branch on tensor values is
refused with one line. With ``--unsafe`` it loads and runs on real tensors. It needs
``--input-shape``: the archive does not carry an input.
"""

from __future__ import annotations

from typing import Any

from tensorboard_archviz import util
from tensorboard_archviz.loaders.common import (LoadError, Loaded, Options, example_input,
                                                extraction_failed, refused_operator,
                                                run_program, zip_names)

WHAT = "TorchScript program"
FILTERS_NOTE = ("--filters needs the model's layers: a Keras file or a full PyTorch model "
                "(torch.save(model)); a TorchScript archive keeps no modules to run one by one")


def match(path: str) -> bool:
    """A zip with TorchScript code (``code/``) or constants (``constants.pkl``)."""
    names = zip_names(path) or []
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def _load(path: str, unsafe: bool) -> Any:
    import torch

    from tensorboard_archviz.extract import torch_saved

    guard = None
    try:
        if unsafe:
            return torch.jit.load(path, map_location="cpu")
        with torch_saved.operator_guard() as guard:
            return torch.jit.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        if guard is not None and guard.refused:
            raise refused_operator(path, WHAT, guard.refused) from None
        raise LoadError("%s: not a loadable TorchScript archive (%s)"
                        % (path, util.one_line(e))) from None


def _extract(path: str, module: Any, example: Any, unsafe: bool):
    from tensorboard_archviz.extract import torch_saved

    return run_program(path, WHAT, lambda: torch_saved.extract_torchscript(module, example), unsafe)

def open(path: str, options: Options) -> Loaded:  # noqa: A001 - the loaders' contract
    from tensorboard_archviz.extract.torch import ExtractionError

    module = _load(path, options.unsafe)
    if not options.input_shapes:
        raise LoadError("%s is a TorchScript archive, which does not carry an input shape: pass "
                        "--input-shape (batch first), e.g. --input-shape 1,3,224,224" % path)
    example = example_input(options.input_shapes, options.input_dtype)
    try:
        arch = _extract(path, module, example, options.unsafe)
    except LoadError:
        raise
    except ExtractionError as e:
        raise LoadError("%s: the input does not fit the model: %s" % (path, e)) from None
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise extraction_failed(path, e) from None
    return Loaded("torch", "script", module, example, arch)
