"""`archviz` command line: write saved models into a logdir, print an architecture as a table.

    archviz write MODEL_FILE --logdir logs [--run NAME] [--step N] [--input-shape 1,3,32,32]
                  [--filters [LAYER ...]] [--import MODULE] [--seq-len N] [--unsafe]
    archviz summary MODEL_FILE|LOGDIR [--run NAME] [--step N] [--json] [--width N]

Also `python -m tensorboard_archviz`. This module is argument parsing and dispatch: model files
are opened by `loaders` (one module per format: Keras `.keras`/`.h5`, PyTorch pickles, `.pt2`,
TorchScript, Hugging Face `config.json`), logdirs read by `loaders.logdir` (the plugin's reader
over a TensorBoard `DataProvider`), the table formatted by `table_text`. A `.pt2` carries its
example input; the other PyTorch files need `--input-shape` (batch first; repeat it for several
inputs). `--import` loads the module that defines custom Keras layers or a pickled model's class.

No file runs code without `--unsafe` (alias `--trust-file`); the README's "Which files run code"
and each loader's docstring say exactly what that covers (pickles read `weights_only`, Keras in
safe mode, saved programs on fake tensors with an operator allowlist, archives with native code
refused). Every printed string is stripped of control characters, bidi controls, newlines and
terminal escape sequences.

Every error is one line on stderr (`archviz: error: ...`), exit code 1, and nothing is written;
an unforeseen exception too (`ARCHVIZ_DEBUG=1` re-raises it with its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from typing import List, Optional, Sequence, Tuple

from tensorboard_archviz import loaders, util
from tensorboard_archviz.loaders import LoadError, Loaded, Options
from tensorboard_archviz.loaders.common import TORCH_DTYPES
from tensorboard_archviz.loaders.logdir import architecture_from_logdir, open_logdir
from tensorboard_archviz.table_text import (HEADER, default_width, fmt_bytes, footer_lines,
                                            render_table, table_rows)

__all__ = ["main", "build_parser", "extract_file", "architecture_from_logdir", "open_logdir",
           "render_table", "table_rows", "footer_lines", "fmt_bytes", "HEADER", "CliError",
           "Loaded"]

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An error shown to the user as one line, with a non-zero exit code."""


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


def _options(args) -> Options:
    for flag in ("max_params", "max_layers"):
        value = getattr(args, flag, None)
        if value is not None and value <= 0:
            raise CliError("--%s must be a positive integer, got %d"
                           % (flag.replace("_", "-"), value))
    return Options(input_shapes=_parse_shapes(args.input_shape), input_dtype=args.input_dtype,
                   unsafe=args.unsafe, seq_len=args.seq_len, max_params=args.max_params,
                   max_layers=args.max_layers)


def extract_file(path: str, input_shapes: Optional[List[Tuple[int, ...]]] = None,
                 input_dtype: str = "float32", unsafe: bool = False,
                 seq_len: Optional[int] = None) -> Loaded:
    """Load a saved model file and extract its Architecture (``loaders.open_file``)."""
    return loaders.open_file(path, Options(input_shapes=list(input_shapes or []),
                                           input_dtype=input_dtype, unsafe=unsafe,
                                           seq_len=seq_len))


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
    else:  # a full PyTorch model (the loaders' FILTERS_NOTE refused every other kind)
        from tensorboard_archviz.filters.torch_backend import make_grids

        ex = loaded.example
        if hasattr(ex, "dim") and ex.dim() == 4:
            options["input_shape"] = tuple(int(d) for d in ex.shape[1:])
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


def cmd_write(args) -> int:
    options = _options(args)
    _import_modules(args.imports)
    if os.path.exists(args.logdir) and not os.path.isdir(args.logdir):
        raise CliError("--logdir %s exists and is not a directory" % args.logdir)
    loader = loaders.find(args.model)
    if args.filters is not None and loader.FILTERS_NOTE:  # before any work
        raise CliError(loader.FILTERS_NOTE)
    loaded = loader.open(args.model, options)
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
        options = _options(args)
        _import_modules(args.imports)
        arch = loaders.open_file(args.source, options).arch
    if args.json:
        print(arch.to_json(indent=1))
    else:
        print(render_table(arch, args.width if args.width else default_width()))
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", action="append", metavar="SHAPE",
                   help="PyTorch input shape, batch first, e.g. 1,3,32,32 (repeat for several "
                        "inputs); needed for torch.save(model) and TorchScript files")
    p.add_argument("--seq-len", type=int, metavar="N",
                   help="tokens of the example input of a Hugging Face config.json (default 16)")
    p.add_argument("--input-dtype", default="float32", choices=TORCH_DTYPES,
                   help="dtype of the generated PyTorch input (default float32)")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import this module (or .py file) first: it defines custom Keras layers "
                        "or the model's PyTorch classes")
    p.add_argument("--unsafe", "--trust-file", dest="unsafe", action="store_true",
                   help="let files run code: full pickled PyTorch models (torch.save(model)), "
                        ".pt2 programs whose pickled parts hold more than tensors or that hold "
                        "native code, TorchScript and .pt2 programs on real tensors with any "
                        "operator, Keras Lambda layers (.keras and .h5). Only for files you trust")
    p.add_argument("--max-layers", type=int, metavar="N",
                   help="layer budget of a config.json (default 256)")
    p.add_argument("--max-params", type=int, metavar="N",
                   help="parameter budget of a config.json, estimated from its sizes "
                        "(default 2,000,000,000,000)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archviz", description=__doc__.split("\n\n")[0],
        epilog="Files that would run code (full pickled PyTorch models, Keras Lambda layers, "
               "native code in a .pt2, operators of saved programs outside the allowlist) are "
               "refused unless you pass --unsafe (alias --trust-file).")
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
    except (CliError, LoadError) as e:
        print("archviz: error: %s" % util.strip_control(str(e).replace("\n", " ")),
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
    except (MemoryError, Exception) as e:  # noqa: BLE001 - anything unforeseen: still one line
        print("archviz: error: unexpected %s (ARCHVIZ_DEBUG=1 shows the traceback)"
              % util.one_line(e), file=sys.stderr)
        if os.environ.get("ARCHVIZ_DEBUG"):
            raise
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
