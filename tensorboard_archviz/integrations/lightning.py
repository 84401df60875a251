"""PyTorch Lightning: write the LightningModule's architecture once, at the start of training.

    import lightning as L
    from tensorboard_archviz.integrations.lightning import ArchVizLightningCallback

    trainer = L.Trainer(max_epochs=3, callbacks=[ArchVizLightningCallback()])   # TensorBoardLogger
    trainer.fit(model, train_loader)       # -> lightning_logs/version_N, beside the scalars

The example input is the first training batch as ``training_step`` receives it (already on the
device): a tensor, the ``x`` of an ``(x, y)`` batch, or the dict entries ``forward`` takes by
name; cut to its first example (``max_examples``) so the extra forward pass is cheap. Pass
``input_to_model`` (a tensor / tuple / dict, or a function of the batch) when ``forward`` wants
something else. Written through the ``TensorBoardLogger`` the trainer already has (its
``experiment`` writer, so the architecture is in the same run as the scalars) at
``trainer.global_step``; ``log_dir=`` writes elsewhere, or when the trainer has no TensorBoard
logger. Only global rank 0 writes. It never breaks training: any failure logs ONE warning
(logger ``tensorboard_archviz.integrations.lightning``) and training goes on.

Layer signals (opt-in): ``ArchVizLightningCallback(layer_signals_every=100)`` writes
``add_layer_signals`` every 100 optimizer steps, in ``on_before_optimizer_step`` (so ``.grad``
holds that step's gradients), at ``trainer.global_step`` (``"epoch"``: at each training epoch
end). ``layer_signals`` chooses the signals (default: weights, updates, gradients, activations);
activations use the first training batch's first ``signals_max_examples`` (32) rows.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

try:  # the unified package first, then the standalone one
    from lightning.pytorch import Callback
except ImportError:  # pragma: no cover - only one of the two is installed here
    from pytorch_lightning import Callback

from tensorboard_archviz.integrations.batch import LayerSignals, resolve_input, warn_once

__all__ = ["ArchVizLightningCallback"]

LOG = logging.getLogger(__name__)


def tensorboard_writer(trainer: Any) -> Optional[Any]:
    """The ``SummaryWriter`` of the trainer's first ``TensorBoardLogger`` (None when it has
    none). Other loggers' ``experiment`` is never touched (that would start their runs)."""
    for logger in getattr(trainer, "loggers", None) or []:
        if any(cls.__name__ == "TensorBoardLogger" for cls in type(logger).__mro__):
            return logger.experiment
    return None


class ArchVizLightningCallback(Callback):
    """Writes the LightningModule's architecture at the first training batch (see the module).

    `input_to_model`: None (take it from the first batch), a tensor/tuple/dict, or a function
    ``batch -> input``. `max_examples`: rows of each batch tensor to keep (None: the whole
    batch). `drop`: dict keys never passed to ``forward`` (targets). `log_dir`: write with an
    ``ArchVizWriter`` there instead of the TensorBoardLogger. `method`: see ``extract_torch``.
    `layer_signals_every` / `layer_signals` / `signals_max_examples`: layer signals (see the
    module; off by default).
    """

    def __init__(self, input_to_model: Any = None, *, max_examples: Optional[int] = 1,
                 drop: Iterable[str] = ("labels", "label", "target", "targets", "y"),
                 log_dir: Optional[str] = None, method: str = "auto",
                 layer_signals_every: Any = None, layer_signals: Any = None,
                 signals_max_examples: Optional[int] = 32):
        super().__init__()
        self.signals = LayerSignals(layer_signals_every, layer_signals, signals_max_examples)
        self._signals_writer: Any = None
        self.input_to_model = input_to_model
        self.max_examples = max_examples
        self.drop = tuple(drop)
        self.log_dir = log_dir
        self.method = method
        self.written_step: Optional[int] = None
        self._tried = False
        self._warn_state: dict = {}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        if self.signals.on and getattr(trainer, "is_global_zero", True):
            self.signals.remember(pl_module, batch, self.input_to_model, self.drop, LOG,
                                  self._warn_state)
        if self._tried:
            return
        self._tried = True  # one attempt per callback, success or not
        if not getattr(trainer, "is_global_zero", True):
            return
        try:
            self.write(trainer, pl_module, batch)
        except Exception as e:  # never break training
            warn_once(LOG, self._warn_state, "writing the architecture", e)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self._write_signals(trainer, pl_module, epoch_end=False)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._write_signals(trainer, pl_module, epoch_end=True)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        writer, self._signals_writer = self._signals_writer, None
        if writer is not None:
            writer.close()

    def _write_signals(self, trainer: Any, pl_module: Any, epoch_end: bool) -> None:
        step = int(getattr(trainer, "global_step", 0) or 0)
        if not self.signals.due(step, epoch_end) or not getattr(trainer, "is_global_zero", True):
            return
        try:
            self.signals.write(self._writer(trainer), pl_module, step)
        except Exception as e:  # never break training
            self.signals.every = None
            warn_once(LOG, self._warn_state, "writing layer signals", e)

    def _writer(self, trainer: Any) -> Any:
        """The TensorBoardLogger's writer, or one ArchVizWriter in `log_dir` kept open."""
        if self.log_dir is None:
            writer = tensorboard_writer(trainer)
            if writer is None:
                raise ValueError("the trainer has no TensorBoardLogger; pass log_dir= to write "
                                 "layer signals")
            return writer
        if self._signals_writer is None:
            from tensorboard_archviz.summary import ArchVizWriter

            self._signals_writer = ArchVizWriter(self.log_dir)
        return self._signals_writer

    def write(self, trainer: Any, pl_module: Any, batch: Any) -> None:
        """Extract `pl_module` on the example input from `batch` and write it (raises)."""
        from tensorboard_archviz.summary import ArchVizWriter
        from tensorboard_archviz.torch_writer import add_architecture

        example = self.example(pl_module, batch)
        step = int(getattr(trainer, "global_step", 0) or 0)
        if self.log_dir is not None:
            with ArchVizWriter(self.log_dir) as writer:
                add_architecture(writer, pl_module, example, step, method=self.method)
        else:
            writer = tensorboard_writer(trainer)
            if writer is None:
                names = [type(lg).__name__ for lg in getattr(trainer, "loggers", None) or []]
                raise ValueError("the trainer has no TensorBoardLogger (loggers: %s); pass "
                                 "log_dir= to write the architecture" % (names or "none"))
            add_architecture(writer, pl_module, example, step, method=self.method)
        self.written_step = step

    def example(self, pl_module: Any, batch: Any) -> Any:
        """The example input: from `batch`, else the module's ``example_input_array``."""
        try:
            return resolve_input(pl_module, batch, self.input_to_model, self.drop,
                                 self.max_examples)
        except (TypeError, ValueError):
            fallback = getattr(pl_module, "example_input_array", None)
            if self.input_to_model is not None or fallback is None:
                raise
            return fallback
