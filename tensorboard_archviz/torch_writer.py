"""PyTorch SummaryWriter helpers: write a model's architecture (and filter grids) next to scalars.

    from torch.utils.tensorboard import SummaryWriter      # or: from tensorboardX import SummaryWriter
    from tensorboard_archviz import add_architecture

    writer = SummaryWriter("logs/torch_mlp")
    add_architecture(writer, model, torch.randn(1, 1, 28, 28))    # mirrors writer.add_graph(...)

Works with ``torch.utils.tensorboard.SummaryWriter``, ``tensorboardX.SummaryWriter`` (whose
proto classes are its own: the summary is re-parsed into them) and
``tensorboard_archviz.summary.ArchVizWriter``. Every write is flushed to disk at once.

Errors are raised to the caller (you called the helper yourself, so you decide): the model is
extracted completely and the summary built before anything is written, so a failure leaves the
log directory as it was. Under an initialized ``torch.distributed`` process group only rank 0
extracts and writes; the other ranks return at once (call it on every rank or on rank 0 only).
``torch`` is imported only by the functions that need it.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any, Dict, Iterable, List, Optional, Union

from tensorboard_archviz import summary
from tensorboard_archviz.util import torch_rank_is_zero

__all__ = ["add_architecture", "add_filter_grids", "add_layer_signals", "add_layer_values",
           "write_summary"]


def _unwrap(model: Any) -> Any:
    """The module inside ``DataParallel`` / ``DistributedDataParallel`` / ``torch.compile``
    wrappers (as the extractor does): layer names without the ``module.`` prefix, and no DDP
    forward (whose buffer broadcast would wait for ranks that never call it)."""
    from tensorboard_archviz.extract.torch_graph import unwrap

    return unwrap(model)


def _is_tensorboardx(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "tensorboardX"


def _write_tensorboardx(file_writer: Any, summary_pb: Any, global_step: Optional[int],
                        walltime: Optional[float]) -> None:
    from tensorboardX.proto import event_pb2 as tbx_event_pb2
    from tensorboardX.proto import summary_pb2 as tbx_summary_pb2

    # tensorboardX has its own proto classes; its SummaryMetadata lacks `data_class`, which
    # survives the round trip as an unknown field and is written out unchanged.
    tbx_summary = tbx_summary_pb2.Summary.FromString(summary_pb.SerializeToString())
    event = tbx_event_pb2.Event(summary=tbx_summary)
    event.wall_time = time.time() if walltime is None else float(walltime)
    if global_step is not None:
        event.step = int(global_step)
    # tensorboardX queues events for a thread that flushes only every `flush_secs` and its
    # flush() does not drain that queue: write through its (locked) EventsWriter instead.
    events_writer = getattr(getattr(file_writer, "event_writer", None), "_ev_writer", None)
    if events_writer is not None and hasattr(events_writer, "write_event") \
            and hasattr(events_writer, "flush"):
        events_writer.write_event(event)
        events_writer.flush()
    else:
        file_writer.add_event(event, global_step, walltime)
        file_writer.flush()


def write_summary(writer: Any, summary_pb: Any, global_step: Optional[int] = None,
                  walltime: Optional[float] = None) -> None:
    """Write one ``tensorboard.compat.proto`` Summary through `writer` and flush it to disk.

    `writer`: a torch or tensorboardX ``SummaryWriter``, their ``FileWriter``, or an
    ``ArchVizWriter``. Raises ``TypeError`` for anything else.
    """
    if isinstance(writer, summary.ArchVizWriter):
        writer.add_summary(summary_pb, global_step, walltime)
        return
    get_fw = getattr(writer, "_get_file_writer", None)
    file_writer = get_fw() if callable(get_fw) else writer
    if not hasattr(file_writer, "add_summary"):
        raise TypeError("writer must be a torch.utils.tensorboard / tensorboardX SummaryWriter "
                        "(or an ArchVizWriter); got %s" % type(writer).__name__)
    if _is_tensorboardx(file_writer):
        _write_tensorboardx(file_writer, summary_pb, global_step, walltime)
    else:
        file_writer.add_summary(summary_pb, global_step, walltime)
    flush = getattr(writer, "flush", None) or getattr(file_writer, "flush", None)
    if callable(flush):
        flush()


def add_architecture(writer: Any, model: Any, input_to_model: Any,
                     global_step: Optional[int] = None, *, walltime: Optional[float] = None,
                     method: str = "auto", gradient_reach: Any = False,
                     batch_size: Optional[int] = None):
    """Extract `model` on `input_to_model` and write its architecture; mirrors ``add_graph``.

    `gradient_reach`: ``True`` (or a callable ``loss(outputs)``) adds which parameters the loss
    reaches (one more forward + backward; see ``tensorboard_archviz.gradient_reach``).

    `input_to_model`: a tensor (``model(x)``), a tuple/list (``model(*x)``) or a dict
    (``model(**x)``); one real forward pass runs on it in eval mode under ``no_grad`` and the
    model and the input are left as they were: modes, buffers, RNG, module attributes, and
    parameters or input tensors the forward writes in place (copied just before the write and
    restored; see ``tensorboard_archviz.extract.torch_guard``). `method`: ``"auto"`` (that
    one forward recorded with hooks; torch.fx first only for a model calling a
    ``torch.fx.wrap``-ed function), ``"fx"`` or ``"hooks"``. `batch_size`: the number of examples in
    the input when it is not its first dimension (MACs and memory are per example). Returns
    the written ``Architecture`` (None on a non-zero distributed rank). Raises
    ``ExtractionError`` when the model cannot run on the input, with nothing written.
    """
    if not torch_rank_is_zero():
        return None
    from tensorboard_archviz.extract.torch import extract_torch

    arch = extract_torch(model, input_to_model, method=method, batch_size=batch_size)
    if gradient_reach:
        from tensorboard_archviz.gradient_reach import add_to
        add_to(arch, model, input_to_model, gradient_reach)
    summary_pb = summary.architecture_pb(arch)  # validates before anything is written
    write_summary(writer, summary_pb, global_step, walltime)
    _remember_ids(writer, arch)
    from tensorboard_archviz.filters.torch_backend import remember_input
    remember_input(model, input_to_model)  # add_filter_grids' default image size
    return arch


DEFAULT_FILTERS_TIME_BUDGET = 120.0


def add_filter_grids(writer: Any, model: Any, layers: Optional[List[str]] = None,
                     global_step: Optional[int] = None, *, input_to_model: Any = None,
                     walltime: Optional[float] = None,
                     time_budget: Optional[float] = DEFAULT_FILTERS_TIME_BUDGET,
                     **options: Any) -> List[str]:
    """Compute filter-maximisation grids of `model`'s conv layers and write one per layer.

    `layers`: node ids (qualified module names) or None for every 2-D conv layer.
    `input_to_model`: an example input (the same argument as ``add_architecture``) giving the
    image size; by default the size of the last ``add_architecture`` call for this model (or pass
    ``input_shape=(C, H, W)``). `time_budget`: seconds per call (default 120; None: no limit):
    no new layer is started once spent. Progress: one line per layer through ``logging``
    (logger ``tensorboard_archviz.filters``; ``log=print`` also works) and a tqdm bar when stderr
    is a terminal. Other `options` go to ``tensorboard_archviz.filters.torch_backend.make_grids``.
    All grids are computed first, then written. A ``DataParallel`` /
    ``DistributedDataParallel`` wrapper is looked through, so node ids match the architecture's.
    A layer left out (time budget spent, not reached by the forward pass, failed) is written as
    a grid without tiles whose ``skipped`` says why, so the Filters view can tell.
    Returns the node ids of the grids written ([] on a non-zero distributed rank).
    """
    if not torch_rank_is_zero():
        return []
    from tensorboard_archviz.filters.core import skipped_grid
    from tensorboard_archviz.filters.torch_backend import make_grids

    model = _unwrap(model)  # node ids as in the architecture; no DDP forward on one rank alone
    run = make_grids(model, layers, input_to_model=input_to_model, time_budget=time_budget,
                     **options)
    protos = [(r.node_id, summary.filter_grid_pb(r.node_id, r.png, r.tiles)) for r in run]
    # Layers that got no grid (time budget, not reached, failed) are recorded with the reason.
    skipped = [summary.filter_grid_pb(s.node_id, *skipped_grid(s))
               for s in getattr(run, "skipped", ())]
    for pb in [pb for _, pb in protos] + skipped:
        write_summary(writer, pb, global_step, walltime)
    return [node_id for node_id, _ in protos]


# ---------------------------------------------------------------------------------------------
# layer signals and user values

LOG = logging.getLogger(__name__)
# writer -> node ids of the last architecture written through it (to report unknown ids)
_KNOWN_IDS: "weakref.WeakKeyDictionary[Any, frozenset]" = weakref.WeakKeyDictionary()
# model -> {id(writer): _SignalsState}: the update samples and the one-warning switch
_SIGNAL_STATES: "weakref.WeakKeyDictionary[Any, Dict[int, Any]]" = weakref.WeakKeyDictionary()


def _remember_ids(writer: Any, arch: Any) -> None:
    try:
        _KNOWN_IDS[writer] = frozenset(n.id for n in arch.nodes)
    except TypeError:  # a writer that cannot be weakly referenced: no check at write time
        pass


def known_node_ids(writer: Any) -> Optional[frozenset]:
    """The node ids of the last architecture `add_architecture` wrote through `writer`."""
    try:
        return _KNOWN_IDS.get(writer)
    except TypeError:
        return None


def _warn_unknown(writer: Any, what: str, ids: Iterable[str]) -> None:
    known = known_node_ids(writer)
    if known is None:
        return
    unknown = sorted(set(ids) - known)
    if unknown:
        LOG.warning("tensorboard_archviz: %s: %d node id(s) are not in the architecture written "
                    "with this writer (they are listed as unmatched by the signals route): %s",
                    what, len(unknown), ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10
                                                                 else ""))


class _SignalsState:
    def __init__(self) -> None:
        from tensorboard_archviz.signals.torch import TorchSignalState

        self.torch = TorchSignalState()
        self.off = False
        self.last_step: Optional[int] = None  # the global_step of the previous write


def _signals_state(writer: Any, model: Any) -> Any:
    try:
        per_model = _SIGNAL_STATES.setdefault(model, {})
    except TypeError:
        per_model = {}
    st = per_model.get(id(writer))
    if st is None:
        st = per_model[id(writer)] = _SignalsState()
    return st


def add_layer_signals(writer: Any, model: Any, global_step: Optional[int] = None,
                      input_to_model: Any = None,
                      signals: Union[None, str, Iterable[str]] = None, *,
                      walltime: Optional[float] = None, time_repeats: Optional[int] = None):
    """Write how each layer of `model` behaves now: one ``archviz/signals`` summary at
    `global_step` (call it in your loop after ``backward()``, e.g. every 100 steps).

    `signals`: None (the defaults: ``weights``, ``updates``, ``gradients``, and ``activations``
    when `input_to_model` is given), ``"all"``, or a list among ``weights``, ``updates``,
    ``gradients``, ``activations``, ``time`` (forward time per layer: 1 + ``time_repeats``
    (default 3) extra forward passes) and ``backward_time`` (as many forward + backward passes).
    `input_to_model`: an example batch (tensor / tuple / dict as for ``add_architecture``) for
    activations and time; without it those are skipped (a note says so).
    ``updates.ratio`` compares with the previous call for the same writer and model, on a fixed
    sample of at most 4096 elements per parameter tensor (the first call has no ratio).
    See ``tensorboard_archviz.signals.torch`` for what each figure is and how it is measured.

    Never breaks training: a failure logs ONE warning and switches the signals of this model
    off for this writer (returns None). Bad arguments raise ``ValueError`` at once. On a
    non-zero ``torch.distributed`` rank nothing is computed. Returns the written document.
    """
    from tensorboard_archviz.signals import catalog

    groups = catalog.groups_of(signals)
    if signals is None and input_to_model is None:
        groups = tuple(g for g in groups if g != "activations")
    repeats = catalog.TIME_REPEATS if time_repeats is None else int(time_repeats)
    if repeats < 1:
        raise ValueError("time_repeats must be a positive integer, got %r" % (time_repeats,))
    if not torch_rank_is_zero():
        return None
    state = _signals_state(writer, model)
    if state.off:
        return None
    try:
        return _write_signals(writer, model, global_step, input_to_model, groups, repeats,
                              state, walltime)
    except Exception as e:  # noqa: BLE001 - never break training
        state.off = True
        from tensorboard_archviz.util import one_line

        LOG.warning("tensorboard_archviz: add_layer_signals failed (%s); layer signals of this "
                    "model are off for this writer, training continues", one_line(e))
        return None


def _write_signals(writer, model, global_step, input_to_model, groups, repeats, state,
                   walltime):
    from tensorboard_archviz.signals.torch import compute_torch
    from tensorboard_archviz.signals.write import signals_doc, update_steps

    values, meta = compute_torch(_unwrap(model), input_to_model, groups, state.torch, repeats)
    step = None if global_step is None else int(global_step)
    if "updates.ratio" in values:  # the steps its change spans (the findings' per-step rate)
        meta["update_steps"] = update_steps(state.last_step, step)
    state.last_step = step
    doc = signals_doc(values, **meta)
    write_summary(writer, summary.signals_pb(doc), global_step, walltime)
    _warn_unknown(writer, "add_layer_signals", {n for per in values.values() for n in per})
    return doc


def add_layer_values(writer: Any, name: str, values: Dict[str, Any],
                     global_step: Optional[int] = None, *, walltime: Optional[float] = None):
    """Write your own per-layer numbers ``{node id: number}`` as the signal ``values.<name>``
    (quantisation error, sparsity after pruning, latency measured on a device, ...).

    `name`: 1-100 letters, digits, ``_ . -``. Values: numbers (NaN / inf are kept as such,
    None = not computable). Ids that are not in the architecture last written through this
    writer are reported in one warning line at write time (and listed as unmatched by the
    ``signals`` route); they are written all the same, never dropped. Raises ``ValueError``
    for a bad name or value. Returns the written document. Any rank may call it.
    """
    from tensorboard_archviz.signals.write import values_doc

    doc = values_doc(name, values)
    write_summary(writer, summary.values_pb(name, doc), global_step, walltime)
    _warn_unknown(writer, "add_layer_values(%r)" % name, doc["values"])
    return doc
