"""Reading an architecture stored in a logdir, for the CLI: through a TensorBoard
``DataProvider`` and the plugin's own reader (``reader.ArchitectureReader``). Local logdirs use the
package's TensorFlow-free ``event_files`` provider; remote ones (gs://, s3://) TensorBoard's event
multiplexer. Any failure while reading (a hostile event file making the decoder raise
``MemoryError``, a broken record) becomes one ``LoadError`` line."""

from __future__ import annotations

import os
from typing import Optional, Tuple

from tensorboard_archviz import schema, util
from tensorboard_archviz.loaders.common import LoadError


def open_logdir(logdir: str):
    """(DataProvider, RequestContext) over `logdir`."""
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


def _pick_run(logdir: str, runs: list, run: Optional[str]) -> str:
    if not runs:
        raise LoadError("%s holds no architecture (no run has archviz data); write one with "
                        "`archviz write MODEL --logdir %s`, ArchVizCallback or add_architecture"
                        % (logdir, logdir))
    if run is None:
        if len(runs) > 1:
            raise LoadError("%s holds architectures in several runs; pick one with --run: %s"
                            % (logdir, ", ".join(runs)))
        return runs[0]
    if run not in runs:
        raise LoadError("%s has no run %r with an architecture; runs: %s"
                        % (logdir, run, ", ".join(runs)))
    return run


def _read(logdir: str, run: Optional[str], step: Optional[int]):
    from tensorboard_archviz import reader

    data_provider, ctx = open_logdir(logdir)
    arch_reader = reader.ArchitectureReader(data_provider)
    runs = sorted(arch_reader.list_series(ctx, ""))
    run = _pick_run(logdir, runs, run)
    try:
        found_step, arch = arch_reader.load(ctx, "", run, step)
    except reader.ReadError as e:
        raise LoadError(e.message) from None
    return run, found_step, arch


def architecture_from_logdir(logdir: str, run: Optional[str],
                             step: Optional[int]) -> Tuple[str, int, schema.Architecture]:
    """(run, step, Architecture) stored in `logdir`; LoadError when there is none, the choice is
    ambiguous, or reading fails in any way (one line)."""
    if "://" not in logdir and not os.path.isdir(logdir):
        raise LoadError("%s: no such directory" % logdir)
    try:
        return _read(logdir, run, step)
    except LoadError:
        raise
    except (MemoryError, Exception) as e:  # noqa: BLE001 - a hostile logdir: one line
        where = "run %r" % run if run is not None else logdir
        raise LoadError("%s: reading %s failed: %s" % (logdir, where, util.one_line(e))) \
            from None
