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

import time
from typing import Any, List, Optional

from tensorboard_archviz import summary
from tensorboard_archviz.util import torch_rank_is_zero

__all__ = ["add_architecture", "add_filter_grids", "write_summary"]


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
    restored; see ``tensorboard_archviz.extract.torch_guard``). `method`: ``"auto"``
    (torch.fx, else hooks), ``"fx"`` or ``"hooks"``. `batch_size`: the number of examples in
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
    Returns the node ids written ([] on a non-zero distributed rank).
    """
    if not torch_rank_is_zero():
        return []
    from tensorboard_archviz.filters.torch_backend import make_grids

    model = _unwrap(model)  # node ids as in the architecture; no DDP forward on one rank alone
    protos = [(r.node_id, summary.filter_grid_pb(r.node_id, r.png, r.tiles))
              for r in make_grids(model, layers, input_to_model=input_to_model,
                                  time_budget=time_budget, **options)]
    for _, pb in protos:
        write_summary(writer, pb, global_step, walltime)
    return [node_id for node_id, _ in protos]
