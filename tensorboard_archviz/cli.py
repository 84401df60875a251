"""`archviz` command line: write saved models into a logdir, print an architecture as a table.

    archviz write MODEL_FILE --logdir logs [--run NAME] [--step N] [--input-shape 1,3,32,32]
                  [--filters [LAYER ...]] [--import MODULE] [--seq-len N] [--unsafe]
    archviz summary MODEL_FILE|LOGDIR [--run NAME] [--step N] [--json] [--width N]

Also `python -m tensorboard_archviz`. Model files: Keras `.keras` and legacy `.h5`; PyTorch
full-model files (`torch.save(model)`), TorchScript archives (`torch.jit.save`) and `torch.export`
programs (`.pt2`); a Hugging Face `config.json` (the model is built on the meta device: no
weights, example `input_ids` of `--seq-len` tokens, default 16). A `.pt2` carries its example
input; the other PyTorch files need `--input-shape` (batch first; repeat it for several inputs).
`--import` loads the module that defines custom Keras layers or a pickled model's class first.

No file runs code when loaded unless you pass `--unsafe` (alias `--trust-file`): PyTorch pickles
are read with `weights_only=True` (a full pickled model, or a `.pt2` whose pickled example inputs
hold more than tensors, is refused with a one-line reason), Keras loads in safe mode (no Lambda
layers) for `.keras` and `.h5` alike. Every printed string is stripped of control characters and
terminal escape sequences.

What is written equals what ArchVizCallback / add_architecture write for the live model: an
`.h5` gives the identical document; a `.keras` differs only in Keras' variable paths (a loaded
model creates its variables outside its name scope: `conv2d/kernel`, not `lenet/conv2d/kernel`);
`.pt2` and TorchScript files are read by `extract.torch_saved`, whose docstring lists the few
fields they cannot carry (module configs of a `.pt2`, functional ops' ATen arguments).

Every error is one line on stderr (`archviz: error: ...`), exit code 1, and nothing is written:
a missing file, an unknown format, a `state_dict` (weights without a structure), a custom layer
or a pickled class that cannot be loaded here, an input that does not fit the model, a logdir
without architectures, several runs without `--run`, a file that would run code without
`--unsafe`. Logdirs are read by the plugin's own reader (`reader.ArchitectureReader`) over a
TensorBoard `DataProvider`: for local logdirs the package's TensorFlow-free `event_files`
provider (no TensorFlow import), for remote ones TensorBoard's event multiplexer.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import sys
import textwrap
import zipfile
from typing import Any, List, Optional, Sequence, Tuple

from tensorboard_archviz import schema, util

EXIT_ERROR = 1
EXIT_USAGE = 2

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".ptc", ".bin", ".ckpt")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")


class CliError(Exception):
    """An error shown to the user as one line, with a non-zero exit code."""


class Loaded:
    """A loaded model file: `framework` ("keras" | "torch"), `kind` ("keras", "module",
    "export", "script"), the object, the example input used (torch) and its Architecture."""

    def __init__(self, framework: str, kind: str, model: Any, example: Any,
                 arch: schema.Architecture):
        self.framework, self.kind, self.model, self.example, self.arch = (
            framework, kind, model, example, arch)


# ---------------------------------------------------------------------------------------------
# inputs and options

def _parse_shape(text: Optional[str]) -> Optional[Tuple[int, ...]]:
    if not text:
        return None
    try:
        dims = tuple(int(x) for x in re.split(r"[,x\s]+", text.strip()) if x)
    except ValueError:
        raise CliError("--input-shape must be integers separated by commas, batch first, e.g. "
                       "1,3,32,32; got %r" % text) from None
    if not dims or any(d <= 0 for d in dims):
        raise CliError("--input-shape must be positive integers, got %r" % text)
    return dims


def _parse_shapes(texts: Optional[Sequence[str]]) -> List[Tuple[int, ...]]:
    return [s for s in (_parse_shape(t) for t in (texts or [])) if s is not None]


def _example_input(shapes: List[Tuple[int, ...]], dtype: str) -> Any:
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


def _import_modules(names: Optional[Sequence[str]]) -> None:
    """--import: modules that define (and register) custom layers or model classes."""
    if os.getcwd() not in sys.path:  # like `python -m`: the current directory is importable
        sys.path.insert(0, os.getcwd())
    for name in names or []:
        try:
            if name.endswith(".py") and os.path.isfile(name):
                spec = importlib.util.spec_from_file_location(
                    os.path.splitext(os.path.basename(name))[0], name)
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
                # a model pickled by a script names its class __main__.Name: offer the
                # script's classes there too (its `if __name__ == "__main__":` part never runs)
                main = sys.modules.get("__main__")
                for key, value in vars(module).items():
                    if isinstance(value, type) and value.__module__ == spec.name \
                            and main is not None and not hasattr(main, key):
                        setattr(main, key, value)
            else:
                importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any import failure is the user's to fix
            raise CliError("--import %s failed: %s: %s" % (name, type(e).__name__, e)) from None


# ---------------------------------------------------------------------------------------------
# detecting and loading model files

def detect_framework(path: str) -> str:
    """"keras" or "torch", from the suffix, else from the file's first bytes."""
    lower = path.lower()
    if lower.endswith(KERAS_SUFFIXES):
        return "keras"
    if lower.endswith(TORCH_SUFFIXES):
        return "torch"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CliError("%s: cannot read the file (%s)" % (path, e.strerror or e)) from None
    if head == _HDF5_SIGNATURE:
        return "keras"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if "config.json" in names and any(n.startswith("model.weights") for n in names):
            return "keras"
        if any(n.endswith("data.pkl") or n.endswith(".json") or "/code/" in n for n in names):
            return "torch"
    raise CliError("%s: unknown model format (expected a Keras %s file or a PyTorch %s file)"
                   % (path, "/".join(KERAS_SUFFIXES), "/".join(TORCH_SUFFIXES)))


def load_keras(path: str, unsafe: bool = False):
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:  # noqa: BLE001 - Keras raises TypeError/ValueError/OSError/...
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
        found = re.search(r"Could not locate (?:class|function) '([^']+)'", text) or \
            re.search(r"Unknown (?:layer|object|class|activation|loss|metric)[^:]*: '([^']+)'",
                      text)
        if found:
            name = "'%s'" % found.group(1)
            reg = re.search(r"'registered_name': '([^']+)'", text[found.end():])
            if reg and reg.group(1) != found.group(1):
                name += " (registered as '%s')" % reg.group(1)
            raise CliError(
                "%s: the model uses the custom class %s, which cannot be deserialised here "
                "(it is not registered in this process). Pass --import MODULE with the module "
                "that defines it (decorated with @keras.saving.register_keras_serializable()), "
                "or write the architecture from Python with ArchVizCallback" % (path, name)
            ) from None
        if "safe_mode" in text:
            raise CliError("%s: the model holds a Lambda layer (Python code inside the file), "
                           "which Keras loads only in unsafe mode: pass %s" % (path, UNSAFE_HELP)) \
                from None
        if isinstance(e, OSError):
            raise CliError("%s: cannot read the Keras file (%s)" % (path, util.one_line(e))) from None
        raise CliError("%s: not a loadable Keras model (%s)" % (path, util.one_line(e))) \
            from None


def _torch_kind(path: str) -> str:
    """'export', 'script' or 'pickle' from the archive's contents."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("serialized_exported_program.json") or "/models/" in n
               or n.endswith("archive_format") for n in names):
            return "export"
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "script"
    elif path.lower().endswith(".pt2"):
        return "export"
    return "pickle"


def _input_hint(module: Any) -> str:
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


def _describe_dict(obj: dict) -> str:
    keys = [repr(k) for k in list(obj)[:6]]
    return "(keys %s%s)" % (", ".join(keys), ", ..." if len(obj) > 6 else "")


def _is_weights(obj: Any) -> bool:
    import torch

    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, dict):
        return bool(obj) and all(_is_weights(v) or isinstance(v, (int, float, str, type(None)))
                                 for v in obj.values()) and any(
            isinstance(v, (torch.Tensor, dict)) for v in obj.values())
    return False


UNSAFE_HELP = "--unsafe (alias --trust-file) if you trust the file"


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


def _pickled_global(e: BaseException) -> Optional[str]:
    """The class or function a refused pickle names (torch's weights-only unpickler says it)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    return found.group(1) if found else None


def _unpickler_reason(e: BaseException) -> str:
    """What torch's weights-only unpickler found wrong, without its boilerplate."""
    noise = ("weights_only", "Weights only load failed", "Check the documentation",
             "Please file an issue", "arbitrary code execution")
    lines = [l.strip() for l in str(e).splitlines()
             if l.strip() and not any(n in l for n in noise)]
    return util.strip_control(lines[0] if lines else type(e).__name__)[:200]


def _refused_pickle(path: str, e: BaseException, what: str) -> CliError:
    """The one-line refusal of a file whose pickle names code (a class or function to run)."""
    named = _pickled_global(e)
    return CliError(
        "%s %s%s: loading it would run code from the file, so archviz refuses without "
        "--unsafe. Pass %s; otherwise save the model with torch.export.save (a .pt2 with tensor "
        "inputs loads without running code) or call tensorboard_archviz.add_architecture in "
        "your own script" % (path, what, " (its pickle names %s)" % named if named else "",
                             UNSAFE_HELP))


def _load_export(path: str, unsafe: bool) -> Any:
    import pickle

    import torch

    try:
        with weights_only_loads(unsafe):
            return torch.export.load(path)
    except Exception as e:  # noqa: BLE001 - torch raises many types here
        if isinstance(e, pickle.UnpicklingError) or _pickled_global(e):
            raise _refused_pickle(path, e, "is a torch.export program whose pickled parts "
                                  "(example inputs, constants) hold more than tensors") from None
        raise CliError("%s: not a loadable torch.export program (%s)"
                       % (path, util.one_line(e))) from None


def load_torch(path: str, unsafe: bool = False) -> Tuple[str, Any]:
    """("module" | "export" | "script", object) of a PyTorch file. Pickles are read with
    ``weights_only=True``; a full pickled model only with ``unsafe`` (it runs code)."""
    import pickle

    import torch

    kind = _torch_kind(path)
    if kind == "export":
        return "export", _load_export(path, unsafe)
    if kind == "script":
        try:
            return "script", torch.jit.load(path, map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise CliError("%s: not a loadable TorchScript archive (%s)"
                           % (path, util.one_line(e))) from None
    try:  # weights only: a state_dict is read without running any code from the file
        with weights_only_loads(False):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if _pickled_global(e) is None:
            raise CliError("%s: not a PyTorch file (the weights-only unpickler stopped: %s)"
                           % (path, _unpickler_reason(e))) from None
        if not unsafe:
            raise _refused_pickle(path, e, "is a full pickled model or object") from None
        obj = _load_full_pickle(path)
    except Exception as e:  # noqa: BLE001
        raise CliError("%s: not a loadable PyTorch file (%s)" % (path, util.one_line(e))) from None
    return "module", _module_of(path, obj)


def _module_of(path: str, obj: Any) -> Any:
    """The nn.Module a loaded file holds (a dict with one module is accepted); CliError else."""
    import torch

    if isinstance(obj, dict):
        modules = [(k, v) for k, v in obj.items() if isinstance(v, torch.nn.Module)]
        if len(modules) == 1:
            print(util.strip_control("archviz: %s holds a dict; using the model under key %r"
                                     % (path, modules[0][0])), file=sys.stderr)
            obj = modules[0][1]
        elif _is_weights(obj):
            raise CliError(
                "%s holds a state_dict %s: weights without the model's structure, so there is "
                "no architecture to read. Build the model in Python, load the weights with "
                "model.load_state_dict(...), then save the whole model (torch.save(model, "
                "PATH), torch.export.save(torch.export.export(model, (x,)), 'model.pt2') or "
                "torch.jit.save(torch.jit.script(model), PATH)), or call "
                "tensorboard_archviz.add_architecture(writer, model, example_input)"
                % (path, _describe_dict(obj)))
        else:
            raise CliError("%s holds a dict %s without a model in it" % (path, _describe_dict(obj)))
    if not isinstance(obj, torch.nn.Module):
        raise CliError("%s holds a %s, not a torch.nn.Module" % (path, type(obj).__name__))
    return obj


def _load_full_pickle(path: str) -> Any:
    """torch.load of a whole pickled model (this runs code named by the file: --unsafe only)."""
    import torch

    try:
        with weights_only_loads(True):
            return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError, ImportError) as e:
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
            how = ("run archviz from the directory of the module that defines it, or pass "
                   "--import MODULE")
        raise CliError(
            "%s pickles the model's class (%s), which cannot be imported here: %s, or save the "
            "model with torch.export (a .pt2 file needs no Python class)" % (path, what, how)
        ) from None
    except Exception as e:  # noqa: BLE001
        raise CliError("%s: not a loadable PyTorch file (%s)" % (path, util.one_line(e))) \
            from None


def _extract_config(path: str, input_shapes: Optional[List[Tuple[int, ...]]],
                    seq_len: Optional[int]) -> Loaded:
    """A Hugging Face config.json: its model built on the meta device (no weights), extracted."""
    from tensorboard_archviz import hf_config
    from tensorboard_archviz.extract.torch import extract_torch

    if input_shapes and len(input_shapes) > 1:
        raise CliError("--input-shape: a config.json model takes one main input shape")
    if seq_len is not None and seq_len <= 0:
        raise CliError("--seq-len must be a positive integer, got %d" % seq_len)
    try:
        model, example, name = hf_config.build(
            path, seq_len or hf_config.DEFAULT_SEQ_LEN, input_shapes[0] if input_shapes else None)
    except hf_config.ConfigError as e:
        raise CliError(str(e)) from None
    try:
        arch = extract_torch(model, example)
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise CliError("%s: extraction of %s on the meta device failed: %s"
                       % (path, name, util.one_line(e))) from None
    return Loaded("torch", "config", model, example, arch)


def extract_file(path: str, input_shapes: Optional[List[Tuple[int, ...]]] = None,
                 input_dtype: str = "float32", unsafe: bool = False,
                 seq_len: Optional[int] = None) -> Loaded:
    """Load a saved model file and extract its Architecture; CliError on any problem."""
    if not os.path.exists(path):
        raise CliError("%s: no such file or directory" % path)
    if os.path.isdir(path):
        raise CliError("%s is a directory, not a model file" % path)
    from tensorboard_archviz import hf_config

    if hf_config.is_hf_config(path):
        return _extract_config(path, input_shapes, seq_len)
    framework = detect_framework(path)
    if framework == "keras":
        if input_shapes:
            raise CliError("--input-shape is for PyTorch files; a Keras file carries its shapes")
        from tensorboard_archviz.extract.keras import extract_keras

        model = load_keras(path, unsafe)
        try:
            return Loaded("keras", "keras", model, None, extract_keras(model))
        except Exception as e:  # noqa: BLE001 - shown as one line
            raise CliError("%s: extraction failed: %s" % (path, util.one_line(e))) from None

    from tensorboard_archviz.extract import torch_saved
    from tensorboard_archviz.extract.torch import ExtractionError, extract_torch

    kind, obj = load_torch(path, unsafe)
    example = _example_input(input_shapes, input_dtype) if input_shapes else None
    if example is None and kind == "module":
        raise CliError("%s holds a full %s model but no example input: pass --input-shape "
                       "(batch first), e.g. --input-shape %s"
                       % (path, type(obj).__name__, _input_hint(obj)))
    if example is None and kind == "script":
        raise CliError("%s is a TorchScript archive, which does not carry an input shape: pass "
                       "--input-shape (batch first), e.g. --input-shape 1,3,224,224" % path)
    try:
        if kind == "module":
            arch = extract_torch(obj, example)
        elif kind == "export":
            arch = torch_saved.extract_exported_program(obj, example)
        else:
            arch = torch_saved.extract_torchscript(obj, example)
    except ExtractionError as e:
        hint = ""
        if kind == "export" and example is not None:
            hint = (" (a .pt2 accepts only the shapes it was exported for, unless it was "
                    "exported with dynamic_shapes; leave out --input-shape to use its own)")
        raise CliError("%s: the input does not fit the model: %s%s" % (path, e, hint)) from None
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise CliError("%s: extraction failed: %s" % (path, util.one_line(e))) from None
    if example is None and kind == "export":
        example = getattr(obj, "example_inputs", None)
    return Loaded("torch", kind, obj, example, arch)


# ---------------------------------------------------------------------------------------------
# reading a logdir (through a TensorBoard DataProvider and the plugin's reader)

def open_logdir(logdir: str):
    """(DataProvider, RequestContext) over `logdir`: local logdirs are read with the package's
    TensorFlow-free event-file provider; remote ones (gs://, s3://) with TensorBoard's event
    multiplexer, which needs TensorFlow's file systems anyway."""
    from tensorboard import context as tb_context

    if "://" not in logdir:
        from tensorboard_archviz.event_files import LocalEventFilesProvider

        return LocalEventFilesProvider(logdir), tb_context.RequestContext()
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    from tensorboard_archviz import metadata

    mux = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    return data_provider.MultiplexerDataProvider(mux, logdir), tb_context.RequestContext()


def architecture_from_logdir(logdir: str, run: Optional[str], step: Optional[int]):
    """(run, step, Architecture) stored in `logdir`; CliError when there is none or the choice
    is ambiguous."""
    from tensorboard_archviz import reader

    if "://" not in logdir and not os.path.isdir(logdir):
        raise CliError("%s: no such directory" % logdir)
    data_provider, ctx = open_logdir(logdir)
    arch_reader = reader.ArchitectureReader(data_provider)
    runs = sorted(arch_reader.list_series(ctx, ""))
    if not runs:
        raise CliError("%s holds no architecture (no run has archviz data); write one with "
                       "`archviz write MODEL --logdir %s`, ArchVizCallback or add_architecture"
                       % (logdir, logdir))
    if run is None:
        if len(runs) > 1:
            raise CliError("%s holds architectures in several runs; pick one with --run: %s"
                           % (logdir, ", ".join(runs)))
        run = runs[0]
    elif run not in runs:
        raise CliError("%s has no run %r with an architecture; runs: %s"
                       % (logdir, run, ", ".join(runs)))
    try:
        found_step, arch = arch_reader.load(ctx, "", run, step)
    except reader.ReadError as e:
        raise CliError(e.message) from None
    return run, found_step, arch


# ---------------------------------------------------------------------------------------------
# the table

HEADER = ["Layer (type)", "Output shape", "Params", "MACs", "Connected to"]
GAP = 2


def _fmt_shape(shapes: Optional[List[Optional[List[Optional[int]]]]]) -> str:
    """Shapes as text; inside one shape the spaces are non-breaking (a shape wraps as a unit)."""
    if shapes is None:
        return "?"
    parts = []
    for s in shapes:
        if s is None:
            parts.append("?")
        else:
            dims = ",\u00a0".join("None" if d is None else str(d) for d in s)
            parts.append("(" + dims + (",)" if len(s) == 1 else ")"))
    return " ".join(parts) if parts else "-"


def _fmt_params(node: schema.Node) -> str:
    t, nt = int(node.params.get("trainable", 0)), int(node.params.get("non_trainable", 0))
    text = "{:,}".format(t + nt)
    return text + " ({:,} NT)".format(nt) if nt else text


def _fmt_macs(node: schema.Node) -> str:
    if node.macs is None:
        return "?"  # unknown (node.macs_reason says why): never shown as 0
    at_least = node.extra.get("macs_complete") is False
    return ("at least " if at_least else "") + "{:,}".format(node.macs)


def _depths(arch: schema.Architecture) -> dict:
    """Nesting depth of every node from its `parent` chain (not from its position)."""
    parent = {n.id: n.parent for n in arch.nodes}
    depth: dict = {}
    for n in arch.nodes:
        chain, cur = [], n.id
        while cur is not None and cur not in depth and len(chain) <= len(parent):
            chain.append(cur)
            cur = parent.get(cur)
        base = depth.get(cur, -1) if cur is not None else -1
        for k, node_id in enumerate(reversed(chain)):
            depth[node_id] = base + 1 + k
    return depth


def table_rows(arch: schema.Architecture) -> List[List[str]]:
    """One row of cells per node, in the order the JSON lists them (execution order): layer
    id (indented by its parent chain), output shapes, params, MACs per example, inputs."""
    depth = _depths(arch)
    incoming: dict = {}
    for e in arch.edges:
        incoming.setdefault(e.target, []).append(e.source)
    rows = []
    for n in arch.nodes:
        label = n.id if n.name == n.id or n.id.endswith(n.name) else "%s [%s]" % (n.id, n.name)
        cells = ["  " * depth[n.id] + "%s (%s)" % (label, n.class_name),
                 _fmt_shape(n.output_shapes), _fmt_params(n), _fmt_macs(n),
                 ", ".join(incoming.get(n.id, []))]
        rows.append([util.strip_control(c) for c in cells])
    return rows


def fmt_bytes(n: Optional[int]) -> str:
    """Bytes in decimal units as torchinfo prints them: 512 B, 1.23 MB, 44.6 MB."""
    if n is None:
        return "?"
    v, unit = float(n), 0
    units = ["B", "kB", "MB", "GB", "TB"]
    while abs(v) >= 1000 and unit < len(units) - 1:
        v /= 1000
        unit += 1
    if unit == 0:
        return "%d B" % n
    return ("%.0f" if v >= 100 else "%.1f" if v >= 10 else "%.2f") % v + " " + units[unit]


def _macs_line(arch: schema.Architecture) -> Optional[str]:
    """The MACs footer line: the model's per-example figure ("at least" when some node's is
    unknown); a schema 1 document says its figures are in the old convention."""
    m = arch.model.extra
    macs, complete = m.get("macs"), m.get("macs_complete", True)
    if not isinstance(macs, int) or isinstance(macs, bool):
        parents = {n.parent for n in arch.nodes}
        leaves = [n for n in arch.nodes if n.id not in parents]
        macs = sum(n.macs for n in leaves if n.macs is not None)
        complete = all(n.macs is not None for n in leaves)
        if not macs:
            return None
    text = "{}{:,}".format("" if complete is not False else "at least ", macs)
    if m.get("macs_convention") == schema.MACS_CONVENTION_V1:
        return "MACs: %s (%s)" % (text, schema.MACS_CONVENTION_V1)
    return "MACs per example: " + text


def footer_lines(arch: schema.Architecture) -> List[str]:
    """Totals under the table: params, MACs per example, memory (params / buffers /
    activations per example) when the document has them."""
    m = arch.model
    out = ["Total params: {:,}".format(m.total_params),
           "Trainable params: {:,}".format(m.trainable_params),
           "Non-trainable params: {:,}".format(m.non_trainable_params)]
    macs = _macs_line(arch)
    if macs:
        out.append(macs)
    mem = m.extra.get("memory")
    if isinstance(mem, dict):
        out.append("Memory: params %s, buffers %s, activations %s per example" % (
            fmt_bytes(mem.get("params_bytes")), fmt_bytes(mem.get("buffers_bytes")),
            fmt_bytes(mem.get("activations_bytes"))))
    if isinstance(m.extra.get("optimizer_params"), int):
        out.append("Optimizer variables (not counted above): {:,}".format(
            m.extra["optimizer_params"]))
    return out


def _tokens_width(cell: str) -> int:
    """The narrowest a cell can be wrapped to without breaking a word (its indent included)."""
    indent = len(cell) - len(cell.lstrip(" "))
    words = re.split(r" +", cell.strip(" "))
    return indent + max((len(w) for w in words), default=0)


def _wrap(cell: str, width: int) -> List[str]:
    if len(cell) <= width:
        return [cell]
    indent = len(cell) - len(cell.lstrip(" "))
    sub = " " * min(indent + 2, max(0, width - 1))
    return textwrap.wrap(cell, width, subsequent_indent=sub, break_long_words=True,
                         break_on_hyphens=False) or [""]


def _default_width() -> Optional[int]:
    """The terminal's width; None (no wrapping) when stdout is not a terminal and COLUMNS is
    not set."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return None


def render_table(arch: schema.Architecture, width: Optional[int] = None) -> str:
    """A model.summary()-like table. Every line fits `width` (None: no limit); cells wrap at
    spaces, never truncated; when even the narrowest columns do not fit, each layer becomes a
    block of "key: value" lines. A word longer than the whole width is the only thing ever split.
    """
    rows = table_rows(arch)
    natural = [max([len(HEADER[i])] + [len(r[i]) for r in rows]) for i in range(len(HEADER))]
    minimum = [max([_tokens_width(HEADER[i])] + [_tokens_width(r[i]) for r in rows])
               for i in range(len(HEADER))]
    limit = width if width else sum(natural) + GAP * (len(HEADER) - 1)
    gap = GAP if sum(minimum) + GAP * (len(HEADER) - 1) <= limit else 1
    gaps = gap * (len(HEADER) - 1)
    m = arch.model
    title = util.strip_control('Model: "%s" (%s, %s %s)' % (
        m.name, m.class_name, arch.framework, arch.framework_version))
    out: List[str] = []
    if sum(minimum) + gaps <= limit:
        widths = list(natural)
        while sum(widths) + gaps > limit:
            i = max(range(len(widths)), key=lambda k: widths[k] - minimum[k])
            widths[i] -= 1
        total_w = sum(widths) + gaps

        def line(cells: Sequence[str]) -> List[str]:
            wrapped = [_wrap(c, w) for c, w in zip(cells, widths)]
            height = max(len(x) for x in wrapped)
            return [(" " * gap).join((x[k] if k < len(x) else "").ljust(w)
                                     for x, w in zip(wrapped, widths)).rstrip()
                    .replace("\u00a0", " ") for k in range(height)]

        out += _wrap(title, limit)
        out.append("=" * total_w)
        out += line(HEADER)
        out.append("=" * total_w)
        for r in rows:
            out += line(r)
    else:  # one block per layer
        total_w = limit
        out += _wrap(title, limit)
        out.append("=" * total_w)
        for k, r in enumerate(rows):
            if k:
                out.append("-" * total_w)
            pad = " " * min(len(r[0]) - len(r[0].lstrip(" ")), limit // 3)
            out += _wrap(pad + r[0].lstrip(" "), limit)
            for key, value in zip(("output", "params", "MACs", "from"), r[1:]):
                if value:
                    out += _wrap("%s  %s: %s" % (pad, key, value), limit)
    out = [l.replace("\u00a0", " ") for l in out]
    out.append("=" * total_w)
    for f in footer_lines(arch):
        out += _wrap(util.strip_control(f), limit)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# commands

def _progress(line: str) -> None:
    print(util.strip_control(line), file=sys.stderr, flush=True)


def _make_grids(loaded: Loaded, layers: Optional[List[str]], args) -> list:
    """Filter grids of the loaded model (progress lines on stderr); CliError on failure."""
    options = {}
    if args.filter_steps is not None:
        options["steps"] = args.filter_steps
    if args.filter_max is not None:
        options["max_filters"] = args.filter_max
    if loaded.kind == "keras":
        from tensorboard_archviz.filters.keras_backend import make_grids
    elif loaded.kind == "module":
        from tensorboard_archviz.filters.torch_backend import make_grids

        ex = loaded.example
        if hasattr(ex, "dim") and ex.dim() == 4:
            options["input_shape"] = tuple(int(d) for d in ex.shape[1:])
    else:
        raise _no_filters(loaded.kind)
    _progress("archviz: computing filter grids of %s ..."
              % (", ".join(layers) if layers else "every 2-D convolution"))
    try:
        grids = list(make_grids(loaded.model, layers, log=_progress,
                                time_budget=args.filter_time_budget, **options))
    except Exception as e:  # noqa: BLE001 - one line, nothing written
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CliError("filter grids failed: %s" % (util.strip_control(first)
                                                   if isinstance(e, ValueError) and first
                                                   else util.one_line(e))) from None
    return grids


def _no_filters(kind: str) -> CliError:
    if kind == "config":
        return CliError("--filters needs trained weights; a config.json model has none (it is "
                        "built on the meta device)")
    return CliError("--filters needs the model's layers: a Keras file or a full PyTorch model "
                    "(torch.save(model)); a %s keeps no modules to run one by one"
                    % ("torch.export program" if kind == "export" else "TorchScript archive"))


def _check_filters_possible(path: str) -> None:
    """Refuse --filters before any work for files whose model cannot make filter grids."""
    from tensorboard_archviz import hf_config

    if hf_config.is_hf_config(path):
        raise _no_filters("config")
    if detect_framework(path) == "torch" and _torch_kind(path) != "pickle":
        raise _no_filters(_torch_kind(path))


def cmd_write(args) -> int:
    shapes = _parse_shapes(args.input_shape)
    _import_modules(args.imports)
    if os.path.exists(args.logdir) and not os.path.isdir(args.logdir):
        raise CliError("--logdir %s exists and is not a directory" % args.logdir)
    if args.filters is not None and os.path.isfile(args.model):
        _check_filters_possible(args.model)
    loaded = extract_file(args.model, shapes, args.input_dtype, args.unsafe, args.seq_len)
    grids = []
    if args.filters is not None:
        grids = _make_grids(loaded, args.filters or None, args)
    run = args.run or os.path.splitext(os.path.basename(args.model))[0]
    if not run.strip() or os.path.isabs(run) or ".." in run.replace("\\", "/").split("/"):
        raise CliError("--run must be a relative run name inside the logdir, got %r" % run)
    from tensorboard_archviz import summary

    protos = [summary.architecture_pb(loaded.arch)]  # validated before anything is written
    protos += [summary.filter_grid_pb(g.node_id, g.png, g.tiles) for g in grids]
    target = os.path.join(args.logdir, run)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as e:
        raise CliError("cannot create %s: %s" % (target, e.strerror or e)) from None
    if not os.access(target, os.W_OK):
        raise CliError("cannot write to %s: permission denied" % target)
    with summary.ArchVizWriter(target) as w:
        for pb in protos:
            w.add_summary(pb, args.step)
    arch = loaded.arch
    grids_text = (" and %d filter grid%s" % (len(grids), "" if len(grids) == 1 else "s")
                  if grids else "")
    print(util.strip_control("wrote the architecture of %s (%s, %s params)%s to %s (run %r, "
                             "step %d)" % (args.model, arch.model.class_name,
                                           "{:,}".format(arch.model.total_params), grids_text,
                                           target, run, args.step)))
    return 0


def cmd_summary(args) -> int:
    if args.width is not None and args.width < 20:
        raise CliError("--width must be at least 20, got %d" % args.width)
    if os.path.isdir(args.source):
        if args.input_shape:
            raise CliError("--input-shape is for model files, not logdirs")
        _, _, arch = architecture_from_logdir(args.source, args.run, args.step)
    else:
        if args.run is not None or args.step is not None:
            raise CliError("--run/--step select what to read in a logdir; %s is not a directory"
                           % args.source)
        _import_modules(args.imports)
        arch = extract_file(args.source, _parse_shapes(args.input_shape), args.input_dtype,
                            args.unsafe, args.seq_len).arch
    if args.json:
        print(arch.to_json(indent=1))
    else:
        print(render_table(arch, args.width if args.width else _default_width()))
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", action="append", metavar="SHAPE",
                   help="PyTorch input shape, batch first, e.g. 1,3,32,32 (repeat for several "
                        "inputs); needed for torch.save(model) and TorchScript files")
    p.add_argument("--seq-len", type=int, metavar="N",
                   help="tokens of the example input of a Hugging Face config.json (default 16)")
    p.add_argument("--input-dtype", default="float32", choices=_TORCH_DTYPES,
                   help="dtype of the generated PyTorch input (default float32)")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import this module (or .py file) first: it defines custom Keras layers "
                        "or the model's PyTorch classes")
    p.add_argument("--unsafe", "--trust-file", dest="unsafe", action="store_true",
                   help="load files that run code when loaded: full pickled PyTorch models "
                        "(torch.save(model)), .pt2 programs whose pickled parts hold more than "
                        "tensors, Keras Lambda layers (.keras and .h5). Only for files you trust")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archviz", description=__doc__.split("\n\n")[0],
        epilog="Files that run code when loaded (full pickled PyTorch models, Keras Lambda "
               "layers) are refused unless you pass --unsafe (alias --trust-file).")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write a saved model's architecture into a logdir")
    w.add_argument("model", help="a .keras/.h5 file, or a PyTorch .pt/.pth/.pt2 file")
    w.add_argument("--logdir", required=True)
    w.add_argument("--run", help="run name (default: the file's name without extension)")
    w.add_argument("--step", type=int, default=0)
    w.add_argument("--filters", nargs="*", metavar="LAYER",
                   help="also write filter grids (every 2-D conv layer, or the given ones)")
    w.add_argument("--filter-steps", type=int, metavar="N",
                   help="optimisation steps per filter (default 128)")
    w.add_argument("--filter-max", type=int, metavar="N",
                   help="at most N filters per layer (default 64)")
    w.add_argument("--filter-time-budget", type=float, metavar="SECONDS",
                   help="stop starting new layers after this many seconds")
    _add_model_options(w)
    w.set_defaults(func=cmd_write)
    s = sub.add_parser("summary", help="print a model file's or a logdir's architecture")
    s.add_argument("source", help="a model file or a TensorBoard logdir")
    s.add_argument("--run", help="run to read in a logdir (needed when there are several)")
    s.add_argument("--step", type=int, help="step to read (default: the latest)")
    s.add_argument("--json", action="store_true", help="print the raw architecture JSON")
    s.add_argument("--width", type=int,
                   help="table width (default: the terminal's; no limit when piped)")
    _add_model_options(s)
    s.set_defaults(func=cmd_summary)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        return args.func(args)
    except CliError as e:
        print("archviz: error: %s" % util.strip_control(str(e)).replace("\n", " "),
              file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("archviz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `archviz summary ... | head`: the reader has gone
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
