"""PyTorch pickles (``torch.save``): a full model (``torch.save(model)``) or a state_dict.

Read with ``weights_only=True``: a state_dict loads without running anything from the file (and is
refused as weights without a structure); a full pickled model names its classes, which unpickling
would import and run, so it needs ``--unsafe``. The model then runs one forward on a random input
of ``--input-shape`` (``extract_torch``).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from tensorboard_archviz import util
from tensorboard_archviz.loaders.common import (LoadError, Loaded, Options, example_input,
                                                extraction_failed, pickled_global, refused_pickle,
                                                unpickler_reason, weights_only_loads, zip_names)

SUFFIXES = (".pt", ".pth", ".pt2", ".ptc", ".bin", ".ckpt")
FILTERS_NOTE = None  # filter grids: yes (the modules are there)


def match(path: str) -> bool:
    """A PyTorch suffix, or a zip holding a pickle (``data.pkl``). Listed after the .pt2 and
    TorchScript loaders, which claim their archives first."""
    if path.lower().endswith(SUFFIXES):
        return True
    names = zip_names(path) or []
    return any(n.endswith("data.pkl") for n in names)


def _is_weights(obj: Any) -> bool:
    import torch

    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, dict):
        return bool(obj) and all(_is_weights(v) or isinstance(v, (int, float, str, type(None)))
                                 for v in obj.values()) and any(
            isinstance(v, (torch.Tensor, dict)) for v in obj.values())
    return False


def _describe_dict(obj: dict) -> str:
    keys = [repr(k) for k in list(obj)[:6]]
    return "(keys %s%s)" % (", ".join(keys), ", ..." if len(obj) > 6 else "")


def _module_of(path: str, obj: Any) -> Any:
    """The nn.Module a loaded file holds (a dict with one module is accepted); LoadError else."""
    import torch

    if isinstance(obj, dict):
        modules = [(k, v) for k, v in obj.items() if isinstance(v, torch.nn.Module)]
        if len(modules) == 1:
            print(util.strip_control("archviz: %s holds a dict; using the model under key %r"
                                     % (path, modules[0][0])), file=sys.stderr)
            obj = modules[0][1]
        elif _is_weights(obj):
            raise LoadError(
                "%s holds a state_dict %s: weights without the model's structure, so there is "
                "no architecture to read. Build the model in Python, load the weights with "
                "model.load_state_dict(...), then save the whole model (torch.save(model, "
                "PATH), torch.export.save(torch.export.export(model, (x,)), 'model.pt2') or "
                "torch.jit.save(torch.jit.script(model), PATH)), or call "
                "tensorboard_archviz.add_architecture(writer, model, example_input)"
                % (path, _describe_dict(obj)))
        else:
            raise LoadError("%s holds a dict %s without a model in it"
                            % (path, _describe_dict(obj)))
    if not isinstance(obj, torch.nn.Module):
        raise LoadError("%s holds a %s, not a torch.nn.Module" % (path, type(obj).__name__))
    return obj


def _class_not_importable(path: str, e: BaseException) -> LoadError:
    text = str(e)
    m = re.search(r"Can't get attribute '([^']+)' on <module '([^']+)'", text)
    if m:  # under `python -m tensorboard_archviz`, __main__ is tensorboard_archviz.__main__
        module = "__main__" if m.group(2).endswith("__main__") else m.group(2)
        what = "%s.%s" % (module, m.group(1))
    else:
        m = re.search(r"No module named '([^']+)'", text)
        what = "module %s" % m.group(1) if m else text
    if "__main__" in what:
        how = ("it was defined in the script that saved the model: pass --import "
               "path/to/that_script.py")
    else:
        how = ("run archviz from the directory of the module that defines it, or pass --import "
               "MODULE")
    return LoadError(
        "%s pickles the model's class (%s), which cannot be imported here: %s, or save the "
        "model with torch.export (a .pt2 file needs no Python class)" % (path, what, how))


def _load_full_pickle(path: str) -> Any:
    """torch.load of a whole pickled model (this runs code named by the file: --unsafe only)."""
    import torch

    try:
        with weights_only_loads(True):
            return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError, ImportError) as e:
        raise _class_not_importable(path, e) from None
    except Exception as e:  # noqa: BLE001
        raise LoadError("%s: not a loadable PyTorch file (%s)" % (path, util.one_line(e))) \
            from None


def load_module(path: str, unsafe: bool = False) -> Any:
    """The nn.Module of a pickle. Read with ``weights_only=True``; a full pickled model only with
    ``unsafe`` (it runs code)."""
    import pickle

    import torch

    try:  # weights only: a state_dict is read without running any code from the file
        with weights_only_loads(False):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if pickled_global(e) is None:
            raise LoadError("%s: not a PyTorch file (the weights-only unpickler stopped: %s)"
                            % (path, unpickler_reason(e))) from None
        if not unsafe:
            raise refused_pickle(path, e, "is a full pickled model or object") from None
        obj = _load_full_pickle(path)
    except Exception as e:  # noqa: BLE001
        raise LoadError("%s: not a loadable PyTorch file (%s)" % (path, util.one_line(e))) \
            from None
    return _module_of(path, obj)


def input_hint(module: Any) -> str:
    """An --input-shape suggestion from the first Conv / Linear / Embedding layer."""
    from torch import nn

    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            spatial = {nn.Conv1d: [128], nn.Conv2d: [224, 224], nn.Conv3d: [16, 112, 112]}
            dims = [1, m.in_channels] + spatial[type(m)]
            return ",".join(map(str, dims))
        if isinstance(m, nn.Linear):
            return "1,%d" % m.in_features
        if isinstance(m, nn.Embedding):
            return "1,16 --input-dtype int64"
    return "1,3,224,224"


def open(path: str, options: Options) -> Loaded:  # noqa: A001 - the loaders' contract
    from tensorboard_archviz.extract.torch import ExtractionError, extract_torch

    module = load_module(path, options.unsafe)
    if not options.input_shapes:
        raise LoadError("%s holds a full %s model but no example input: pass --input-shape "
                        "(batch first), e.g. --input-shape %s"
                        % (path, type(module).__name__, input_hint(module)))
    example = example_input(options.input_shapes, options.input_dtype)
    try:
        arch = extract_torch(module, example)
    except ExtractionError as e:
        raise LoadError("%s: the input does not fit the model: %s" % (path, e)) from None
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise extraction_failed(path, e) from None
    return Loaded("torch", "module", module, example, arch)
