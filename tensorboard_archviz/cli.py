"""`archviz` command line: write saved models into a logdir, print an architecture as a table.

    archviz write MODEL_FILE --logdir logs [--run NAME] [--step N] [--input-shape 1,3,32,32]
                  [--filters [LAYER ...]]
    archviz summary MODEL_FILE|LOGDIR [--run NAME] [--step N] [--json] [--input-shape ...]

Model files: Keras `.keras` and legacy `.h5`; PyTorch full-model pickles (`torch.save(model)`),
TorchScript archives (`torch.jit.save`) and `torch.export` programs (`.pt2`). A `state_dict`
file holds weights without a structure and is refused with an explanation. Every error is one
line on stderr and a non-zero exit code, and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
import zipfile
from typing import Any, Callable, List, Optional, Sequence, Tuple

from tensorboard_archviz import schema

EXIT_USAGE = 2
EXIT_ERROR = 1

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".ptc", ".bin")


class CliError(Exception):
    """An error shown to the user as one line, with a non-zero exit code."""


# ---------------------------------------------------------------------------------------------
# loading models

def _parse_shape(text: Optional[str]) -> Optional[Tuple[int, ...]]:
    if not text:
        return None
    try:
        dims = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise CliError("--input-shape must be integers separated by commas, e.g. 1,3,32,32; "
                       "got %r" % text) from None
    if not dims or any(d <= 0 for d in dims):
        raise CliError("--input-shape must be positive integers, got %r" % text)
    return dims


def _torch_kind(path: str) -> str:
    """'export', 'script' or 'pickle' from the archive's contents."""
    if path.endswith(".pt2"):
        return "export"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "script"
        if any(n.endswith("serialized_exported_program.json") or "/models/" in n
               for n in names):
            return "export"
    return "pickle"


def load_keras(path: str):
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except (TypeError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Unknown" in msg or "custom" in msg.lower() or "Could not locate" in msg:
            raise CliError(
                "%s: the model uses custom layers or objects that cannot be deserialised "
                "(%s); import the module that defines them and register them with "
                "@keras.saving.register_keras_serializable, then use ArchVizCallback or the "
                "Python API" % (path, msg)) from None
        raise CliError("%s: not a loadable Keras model (%s)" % (path, msg)) from None
    except OSError as e:
        raise CliError("%s: cannot read the Keras file (%s)" % (path, e)) from None


def load_torch(path: str, input_shape: Optional[Tuple[int, ...]]):
    """(module, example input) for a PyTorch file."""
    import torch

    kind = _torch_kind(path)
    example = None
    if kind == "export":
        try:
            program = torch.export.load(path)
        except Exception as e:  # noqa: BLE001 - torch raises many types here
            raise CliError("%s: not a loadable torch.export program (%s)" % (path, e)) from None
        module = program.module()
        args = getattr(program, "example_inputs", None)
        if args and args[0]:
            example = args[0] if len(args[0]) > 1 else args[0][0]
    elif kind == "script":
        try:
            module = torch.jit.load(path, map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise CliError("%s: not a loadable TorchScript archive (%s)" % (path, e)) from None
    else:
        try:
            module = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise CliError("%s: not a loadable PyTorch file (%s)" % (path, e)) from None
    if isinstance(module, dict):
        looks_like_weights = all(isinstance(v, torch.Tensor) for v in module.values()) or \
            "state_dict" in module or "model_state_dict" in module
        if looks_like_weights:
            raise CliError(
                "%s holds a state_dict: weights without the model's structure. Build the model "
                "in Python, load the weights with model.load_state_dict(...), then save the "
                "whole model with torch.save(model, PATH) or torch.export, or call "
                "tensorboard_archviz.add_architecture(writer, model, example_input)" % path)
        raise CliError("%s holds a %s, not a model" % (path, type(module).__name__))
    if not isinstance(module, torch.nn.Module):
        raise CliError("%s holds a %s, not a torch.nn.Module" % (path, type(module).__name__))
    if input_shape is not None:
        example = torch.randn(*input_shape)
    if example is None:
        raise CliError("%s does not carry an input shape: pass --input-shape, e.g. "
                       "--input-shape 1,3,224,224" % path)
    return module, example


def detect_framework(path: str) -> str:
    lower = path.lower()
    if lower.endswith(KERAS_SUFFIXES):
        return "keras"
    if lower.endswith(TORCH_SUFFIXES):
        return "torch"
    raise CliError("%s: unknown model format (expected %s for Keras or %s for PyTorch)"
                   % (path, "/".join(KERAS_SUFFIXES), "/".join(TORCH_SUFFIXES)))


def extract_file(path: str, input_shape: Optional[Tuple[int, ...]] = None):
    """(framework, model, example_input, Architecture) of a saved model file."""
    if not os.path.exists(path):
        raise CliError("%s: no such file" % path)
    if os.path.isdir(path):
        raise CliError("%s is a directory, not a model file" % path)
    framework = detect_framework(path)
    if framework == "keras":
        from tensorboard_archviz.extract.keras import extract_keras

        model = load_keras(path)
        return framework, model, None, extract_keras(model)
    from tensorboard_archviz.extract.torch import extract_torch

    module, example = load_torch(path, input_shape)
    try:
        arch = extract_torch(module, example)
    except Exception as e:  # noqa: BLE001 - shown as one line
        raise CliError("%s: extraction failed: %s" % (path, e)) from None
    return framework, module, example, arch


# ---------------------------------------------------------------------------------------------
# reading a logdir (through TensorBoard's own data provider, like the plugin)

def architecture_from_logdir(logdir: str, run: Optional[str], step: Optional[int]):
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin

    from tensorboard_archviz import metadata
    from tensorboard_archviz.plugin import ArchVizPlugin, RequestError

    mux = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0})
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    plugin = ArchVizPlugin(base_plugin.TBContext(data_provider=provider, logdir=logdir))
    ctx = tb_context.RequestContext()
    runs = sorted(r for r, tags in provider.list_tensors(
        ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME).items()
        if metadata.ARCHITECTURE_TAG in tags)
    if not runs:
        raise CliError("%s holds no architecture (no run with archviz data)" % logdir)
    if run is None:
        if len(runs) > 1:
            raise CliError("%s holds several runs with architectures; pick one with --run: %s"
                           % (logdir, ", ".join(runs)))
        run = runs[0]
    try:
        found_step, arch = plugin.load_architecture(ctx, "", run, step)
    except RequestError as e:
        raise CliError(e.message) from None
    return run, found_step, arch


# ---------------------------------------------------------------------------------------------
# the table

def _fmt_shape(shapes: Optional[List[Optional[List[Optional[int]]]]]) -> str:
    if shapes is None:
        return "?"
    parts = []
    for s in shapes:
        parts.append("?" if s is None else "(" + ", ".join("None" if d is None else str(d)
                                                          for d in s) + (",)" if len(s) == 1 else ")"))
    return " ".join(parts) if parts else "-"


def table_rows(arch: schema.Architecture) -> List[List[str]]:
    depth = {}
    names = {n.id: n.name for n in arch.nodes}
    incoming = {}
    for e in arch.edges:
        incoming.setdefault(e.target, []).append(names.get(e.source, e.source))
    rows = []
    for n in arch.nodes:
        d = 0 if n.parent is None else depth.get(n.parent, 0) + 1
        depth[n.id] = d
        t, nt = n.params.get("trainable", 0), n.params.get("non_trainable", 0)
        params = "{:,}".format(t + nt)
        if nt:
            params += " ({:,} NT)".format(nt)
        rows.append(["  " * d + "%s (%s)" % (n.name, n.class_name), _fmt_shape(n.output_shapes),
                     params, "" if n.macs is None else "{:,}".format(n.macs),
                     ", ".join(incoming.get(n.id, []))])
    return rows


def render_table(arch: schema.Architecture, width: Optional[int] = None) -> str:
    """model.summary()-like table that fits `width` columns by wrapping (never truncating)."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    header = ["Layer (type)", "Output shape", "Params", "MACs", "Connected to"]
    rows = table_rows(arch)
    natural = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]
    gaps = 2 * (len(header) - 1)
    widths = list(natural)
    minimum = [12, 12, 10, 6, 12]
    while sum(widths) + gaps > width and any(w > m for w, m in zip(widths, minimum)):
        i = max(range(len(widths)), key=lambda k: widths[k] - minimum[k])
        widths[i] -= 1

    def wrap(cell: str, w: int) -> List[str]:
        if len(cell) <= w:
            return [cell]
        indent = len(cell) - len(cell.lstrip(" "))
        return textwrap.wrap(cell, w, subsequent_indent=" " * (indent + 2),
                             break_long_words=True, break_on_hyphens=False,
                             drop_whitespace=True) or [""]

    def line(cells: Sequence[str]) -> List[str]:
        wrapped = [wrap(c, w) for c, w in zip(cells, widths)]
        height = max(len(x) for x in wrapped)
        out = []
        for k in range(height):
            out.append("  ".join((x[k] if k < len(x) else "").ljust(w)
                                 for x, w in zip(wrapped, widths)).rstrip())
        return out

    total_w = min(width, sum(widths) + gaps)
    m = arch.model
    out = ['Model: "%s" (%s, %s %s)' % (m.name, m.class_name, arch.framework,
                                        arch.framework_version), "=" * total_w]
    out += line(header)
    out.append("=" * total_w)
    for r in rows:
        out += line(r)
    out.append("=" * total_w)
    out.append("Total params: {:,}".format(m.total_params))
    out.append("Trainable params: {:,}".format(m.trainable_params))
    out.append("Non-trainable params: {:,}".format(m.non_trainable_params))
    parents = {n.parent for n in arch.nodes}
    macs = sum(n.macs or 0 for n in arch.nodes if n.id not in parents)
    if macs:
        out.append("MACs: {:,}".format(macs))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# commands

def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_write(args) -> int:
    shape = _parse_shape(args.input_shape)
    framework, model, example, arch = extract_file(args.model, shape)
    grids = []
    if args.filters is not None:
        layers = args.filters or None
        if framework == "keras":
            from tensorboard_archviz.filters.keras_backend import make_grids
            gen = make_grids(model, layers, log=_progress)
        else:
            from tensorboard_archviz.filters.torch_backend import make_grids
            kwargs = {"input_shape": tuple(example.shape[1:])} if example is not None and \
                hasattr(example, "shape") else {}
            gen = make_grids(model, layers, log=_progress, **kwargs)
        try:
            grids = list(gen)
        except Exception as e:  # noqa: BLE001
            raise CliError("filter maximisation failed: %s" % e) from None
    run = args.run or os.path.splitext(os.path.basename(args.model))[0]
    target = os.path.join(args.logdir, run)
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as e:
        raise CliError("cannot create %s: %s" % (target, e)) from None
    if not os.access(target, os.W_OK):
        raise CliError("cannot write to %s: permission denied" % target)
    from tensorboard_archviz.summary import ArchVizWriter

    with ArchVizWriter(target) as w:
        w.add_architecture(arch, step=args.step)
        for g in grids:
            w.add_filter_grid(g.node_id, g.png, g.tiles, step=args.step)
    print("wrote the architecture of %s (%s, %s params)%s to %s (run %r, step %d)"
          % (args.model, arch.model.class_name, "{:,}".format(arch.model.total_params),
             " and %d filter grids" % len(grids) if grids else "", target, run, args.step))
    return 0


def cmd_summary(args) -> int:
    if os.path.isdir(args.source):
        _, _, arch = architecture_from_logdir(args.source, args.run, args.step)
    else:
        _, _, _, arch = extract_file(args.source, _parse_shape(args.input_shape))
    if args.json:
        print(arch.to_json(indent=1))
    else:
        print(render_table(arch, args.width))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="archviz", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write a saved model's architecture into a logdir")
    w.add_argument("model", help="a .keras/.h5 file, or a PyTorch .pt/.pth/.pt2 file")
    w.add_argument("--logdir", required=True)
    w.add_argument("--run", help="run name (default: the file's name without extension)")
    w.add_argument("--step", type=int, default=0)
    w.add_argument("--input-shape", help="PyTorch input shape with batch, e.g. 1,3,32,32")
    w.add_argument("--filters", nargs="*", metavar="LAYER",
                   help="also write filter grids (all conv layers, or the given ones)")
    w.set_defaults(func=cmd_write)
    s = sub.add_parser("summary", help="print a model's or a logdir's architecture")
    s.add_argument("source", help="a model file or a TensorBoard logdir")
    s.add_argument("--run", help="run to read in a logdir (needed when there are several)")
    s.add_argument("--step", type=int, help="step to read (default: the latest)")
    s.add_argument("--json", action="store_true", help="print the raw architecture JSON")
    s.add_argument("--input-shape", help="PyTorch input shape with batch, e.g. 1,3,32,32")
    s.add_argument("--width", type=int, help="table width (default: the terminal's)")
    s.set_defaults(func=cmd_summary)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print("archviz: error: %s" % e, file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("archviz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
