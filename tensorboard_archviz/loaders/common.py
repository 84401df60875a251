"""What every loader shares: the options, the loaded result, the one-line error, the consent rules
for pickles (``weights_only``), example inputs, and reading a zip archive's member names."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import zipfile
from typing import Any, List, Optional, Tuple

from tensorboard_archviz import schema, util

UNSAFE_HELP = "--unsafe (alias --trust-file) if you trust the file"
TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")


class LoadError(Exception):
    """A file that cannot become an Architecture here; the message is one line for the user."""


@dataclasses.dataclass
class Options:
    """How to open a file: the example input (PyTorch shapes, batch first; dtype; tokens of a
    config.json), consent to run code from the file (``unsafe``), and the size budget of a
    config.json (``max_params`` / ``max_layers``: None = the defaults of ``hf_config``)."""
    input_shapes: List[Tuple[int, ...]] = dataclasses.field(default_factory=list)
    input_dtype: str = "float32"
    unsafe: bool = False
    seq_len: Optional[int] = None
    max_params: Optional[int] = None
    max_layers: Optional[int] = None


class Loaded:
    """A loaded model file: `framework` ("keras" | "torch"), `kind` ("keras", "module", "export",
    "script", "config"), the object, the example input used (torch) and its Architecture."""

    def __init__(self, framework: str, kind: str, model: Any, example: Any,
                 arch: schema.Architecture):
        self.framework, self.kind, self.model, self.example, self.arch = (
            framework, kind, model, example, arch)


def zip_names(path: str) -> Optional[List[str]]:
    """The member names of a zip archive, or None when the file is not one."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


def example_input(shapes: List[Tuple[int, ...]], dtype: str) -> Any:
    """Random tensors of the given shapes (zeros for integer dtypes: valid indices)."""
    import torch

    tdtype = getattr(torch, dtype)
    tensors = []
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        if tdtype.is_floating_point:
            tensors.append(torch.randn(*shape, generator=gen).to(tdtype))
        else:
            tensors.append(torch.zeros(*shape, dtype=tdtype))
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


@contextlib.contextmanager
def weights_only_loads(unsafe: bool):
    """Every torch.load inside (including those torch.export.load makes for a .pt2's example
    inputs and constants, which fall back to full unpickling on their own) reads tensors only,
    unless `unsafe`: TORCH_FORCE_WEIGHTS_ONLY_LOAD, read by torch.load at each call."""
    saved = {k: os.environ.get(k) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD",
                                            "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    if unsafe:
        os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
    else:
        os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pickled_global(e: BaseException) -> Optional[str]:
    """The class or function a refused pickle names (torch's weights-only unpickler says it)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    return found.group(1) if found else None


def unpickler_reason(e: BaseException) -> str:
    """What torch's weights-only unpickler found wrong, without its boilerplate."""
    noise = ("weights_only", "Weights only load failed", "Check the documentation",
             "Please file an issue", "arbitrary code execution")
    lines = [l.strip() for l in str(e).splitlines()
             if l.strip() and not any(n in l for n in noise)]
    return util.strip_control(lines[0] if lines else type(e).__name__)[:200]


def refused_pickle(path: str, e: BaseException, what: str) -> LoadError:
    """The one-line refusal of a file whose pickle names code (a class or function to run)."""
    named = pickled_global(e)
    return LoadError(
        "%s %s%s: loading it would run code from the file, so archviz refuses without "
        "--unsafe. Pass %s; otherwise save the model with torch.export.save (a .pt2 with tensor "
        "inputs loads without running code) or call tensorboard_archviz.add_architecture in "
        "your own script" % (path, what, " (its pickle names %s)" % named if named else "",
                             UNSAFE_HELP))


def refused_operator(path: str, what: str, op: str) -> LoadError:
    """The one-line refusal of a saved program that would run an operator outside the allowlist
    (see extract.torch_saved.without_real_storage)."""
    return LoadError(
        "%s: the %s runs %s, which archviz does not run without consent: a saved program runs "
        "on fake tensors (shapes only, no real storage, no file) with tensor operators from an "
        "allowlist, and this operator is not on it (it may read or write files, or need tensor "
        "values). Pass %s" % (path, what, op, UNSAFE_HELP))


def needs_values(path: str, what: str, op: str) -> LoadError:
    """The one-line refusal of a program that needs tensor values (a branch on a tensor's
    content, a data-dependent size): without consent it runs on fake tensors only."""
    return LoadError(
        "%s: the %s needs tensor values to run (%s), and without consent archviz runs a saved "
        "program on fake tensors only (shapes and dtypes, no values). Pass %s"
        % (path, what, op, UNSAFE_HELP))


def sandbox_refusal(path: str, what: str, guard) -> Optional[LoadError]:
    """The refusal a program's failure inside ``torch_saved.without_real_storage`` amounts to
    (an operator off the allowlist, or one that needed values), or None for any other failure."""
    if guard.refused:
        return refused_operator(path, what, guard.refused)
    if guard.needs_values:
        return needs_values(path, what, guard.needs_values)
    return None


def run_program(path: str, what: str, extract: Any, unsafe: bool) -> Any:
    """``extract()`` a saved program: on real tensors with consent (`unsafe`), otherwise on fake
    tensors with the operator allowlist (``torch_saved.without_real_storage``), a failure that
    the sandbox caused becoming its one-line refusal."""
    from tensorboard_archviz.extract import torch_saved

    if unsafe:
        return extract()
    with torch_saved.without_real_storage() as guard:
        try:
            return extract()
        except Exception:  # noqa: BLE001 - sorted out below
            refusal = sandbox_refusal(path, what, guard)
            if refusal is not None:
                raise refusal from None
            raise


def extraction_failed(path: str, e: BaseException) -> LoadError:
    return LoadError("%s: extraction failed: %s" % (path, util.one_line(e)))
