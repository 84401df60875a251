"""``torch.export`` programs (``.pt2``): the graph and weights of a model, with its example input.

Without ``--unsafe`` nothing in the file runs for real:

* an archive holding native code (``data/aotinductor/...`` or any ``.so`` / ``.dll`` /
  ``.dylib`` / ``.pyd`` member, which ``torch.export.load`` would ``dlopen``, running its
  constructors) is refused from its member list (as Python's zip reader and as PyTorch's own
  reader list it), before ``torch.export.load`` is called;
* pickled parts (example inputs, constants) are read with ``weights_only`` (tensors only);
* every call target of the graph must be an allowlisted tensor operator
  (``torch_saved.program_refusal``), and the graph is interpreted on fake tensors
  (``torch_saved.without_real_storage``: shapes and dtypes, no storage, no file).

With ``--unsafe`` the program loads as PyTorch loads it and runs on real tensors.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, List, Optional

from tensorboard_archviz import util
from tensorboard_archviz.loaders.common import (UNSAFE_HELP, LoadError, Loaded, Options,
                                                example_input, extraction_failed, pickled_global,
                                                refused_operator, refused_pickle, run_program,
                                                weights_only_loads, zip_names)

WHAT = "torch.export program"
FILTERS_NOTE = ("--filters needs the model's layers: a Keras file or a full PyTorch model "
                "(torch.save(model)); a torch.export program keeps no modules to run one by one")
NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".pyd")


def match(path: str) -> bool:
    """A zip with a serialized exported program (``models/``, ``archive_format``), or a
    ``.pt2`` file that is not a zip (an older or broken one: reported by ``open``)."""
    names = zip_names(path)
    if names is None:
        return path.lower().endswith(".pt2")
    return any(n.endswith("serialized_exported_program.json") or "/models/" in n
               or n.endswith("archive_format") for n in names)


def native_members(names: List[str]) -> List[str]:
    """Members of a .pt2 that are native code (loading the archive would load them)."""
    return [n for n in names if "data/aotinductor/" in n.replace("\\", "/")
            or n.lower().endswith(NATIVE_SUFFIXES) or ".so." in n.lower().rsplit("/", 1)[-1]]


def _all_members(path: str) -> List[List[str]]:
    """The members as Python's zipfile lists them, then as PyTorch's own reader (the one
    torch.export.load uses) does: a file the two parsers read differently cannot hide a library
    from one. LoadError when neither can list it (nothing could then be checked)."""
    import torch

    names = zip_names(path)
    try:
        records = list(torch._C.PyTorchFileReader(path).get_all_records())
    except Exception:  # noqa: BLE001 - not an archive PyTorch can read
        records = None
    if names is None and records is None:
        raise LoadError("%s: not a torch.export archive (neither Python's zip reader nor "
                        "PyTorch's can list its members)" % path)
    return [names or [], records or []]


@contextlib.contextmanager
def _quiet_torch_export():
    """torch.export.load logs a traceback as a warning before it raises: the CLI says one line."""
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load(path: str, unsafe: bool) -> Any:
    import pickle

    import torch

    from tensorboard_archviz.extract import torch_saved

    native = [] if unsafe else next(
        (found for found in map(native_members, _all_members(path)) if found), [])
    if native:
        raise LoadError("%s: the %s holds native code (%s%s), which loading it would run; archviz "
                        "refuses without --unsafe. Pass %s"
                        % (path, WHAT, native[0], " and %d more" % (len(native) - 1)
                           if len(native) > 1 else "", UNSAFE_HELP))
    guard = None
    try:
        with weights_only_loads(unsafe), _quiet_torch_export():
            if unsafe:
                return torch.export.load(path)
            with torch_saved.operator_guard() as guard:
                return torch.export.load(path)
    except Exception as e:  # noqa: BLE001 - torch raises many types here
        if guard is not None and guard.refused:
            raise refused_operator(path, WHAT, guard.refused) from None
        if isinstance(e, pickle.UnpicklingError) or pickled_global(e):
            raise refused_pickle(path, e, "is a torch.export program whose pickled parts "
                                 "(example inputs, constants) hold more than tensors") from None
        raise LoadError("%s: not a loadable torch.export program (%s)"
                        % (path, util.one_line(e))) from None


def _extract(path: str, program: Any, example: Any, unsafe: bool):
    from tensorboard_archviz.extract import torch_saved

    if not unsafe:
        refused = torch_saved.program_refusal(program)
        if refused:
            raise refused_operator(path, WHAT, refused)
    return run_program(path, WHAT, lambda: torch_saved.extract_exported_program(program, example),
                       unsafe)

def open(path: str, options: Options) -> Loaded:  # noqa: A001 - the loaders' contract
    from tensorboard_archviz.extract.torch import ExtractionError

    program = _load(path, options.unsafe)
    example: Optional[Any] = None
    if options.input_shapes:
        example = example_input(options.input_shapes, options.input_dtype)
    try:
        arch = _extract(path, program, example, options.unsafe)
    except LoadError:
        raise
    except ExtractionError as e:
        hint = ""
        if example is not None:
            hint = (" (a .pt2 accepts only the shapes it was exported for, unless it was "
                    "exported with dynamic_shapes; leave out --input-shape to use its own)")
        raise LoadError("%s: the input does not fit the model: %s%s" % (path, e, hint)) from None
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise extraction_failed(path, e) from None
    if example is None:
        example = getattr(program, "example_inputs", None)
    return Loaded("torch", "export", program, example, arch)
