"""Hugging Face ``Trainer``: write the model's architecture once, at the start of training.

    from transformers import Trainer, TrainingArguments
    from tensorboard_archviz.integrations.hf_trainer import ArchVizTrainerCallback

    args = TrainingArguments("out", report_to=["tensorboard"], ...)
    trainer = Trainer(model, args, train_dataset=ds, callbacks=[ArchVizTrainerCallback()])
    trainer.train()            # -> the run of the Trainer's TensorBoard writer (out/runs/<time>_<host>)

No callback hook receives a batch (``on_step_begin`` has none), and peeking at the train
dataloader would draw from its sampler's random state (changing the shuffle order) and, under
``accelerate`` on several processes, start a collective on one rank only. So at
``on_train_begin`` the callback puts a forward pre-hook on the model; the first training forward
call hands it the real first batch exactly as the Trainer feeds the model (collated, on the
device), and the hook removes itself at once. The architecture is extracted and written at the
end of that first step (outside autocast, the model back in train mode), at the step training
started from (``state.global_step`` at ``on_train_begin``, 0 for a fresh run). Label entries
(``labels``, ``args.label_names``) and the Trainer's ``num_items_in_batch`` are left out, so the
graph is the model's, not its loss's; tensors are cut to ``max_examples`` rows.

Where it is written, first that applies: `writer=` (any SummaryWriter), `log_dir=`, the
``TENSORBOARD_LOGGING_DIR`` variable the Trainer's ``TensorBoardCallback`` also reads,
``args.logging_dir`` (transformers 4), the directory of the event file this process's
``TensorBoardCallback`` opened under ``<output_dir>/runs`` (so the architecture is in the same
run as the Trainer's scalars), else a new ``<output_dir>/runs/<time>_<host>``. Our own event file
(``*.archviz``) sits beside the Trainer's. Only the main process writes
(``state.is_world_process_zero``). Never breaks training: any failure logs ONE warning (logger
``tensorboard_archviz.integrations.hf_trainer``) and training goes on.

Layer signals (opt-in): ``ArchVizTrainerCallback(layer_signals_every=100)`` writes
``add_layer_signals`` every 100 optimizer steps, in ``on_pre_optimizer_step`` (``.grad`` holds
that step's gradients; the Trainer clears them right after the step), at ``state.global_step``
(the optimizer steps done before it), into the same run (one ``ArchVizWriter`` kept open until
``on_train_end``). ``"epoch"`` writes at each epoch end (no gradients there: the Trainer has
cleared them). Activations use the first batch's first ``signals_max_examples`` (32) rows
(labels left out as above).
"""

from __future__ import annotations

import glob
import logging
import os
import socket
from typing import Any, Iterable, Optional

from transformers import TrainerCallback

from tensorboard_archviz.integrations.batch import LayerSignals, resolve_input, warn_once

__all__ = ["ArchVizTrainerCallback", "trainer_log_dir"]

LOG = logging.getLogger(__name__)
LABEL_KEYS = ("labels", "label", "label_ids", "start_positions", "end_positions",
              "num_items_in_batch")


def trainer_log_dir(args: Any) -> str:
    """The run directory of the Trainer's TensorBoard writer for `args` (see the module)."""
    env = os.environ.get("TENSORBOARD_LOGGING_DIR")
    if env:
        return os.path.expanduser(env)
    logging_dir = getattr(args, "logging_dir", None)
    if logging_dir:
        return logging_dir
    runs = os.path.join(args.output_dir, "runs")
    # torch's SummaryWriter names its file events.out.tfevents.<time>.<host>.<pid>.<n>
    pattern = os.path.join(glob.escape(runs), "*", "events.out.tfevents.*.%s.%d.*"
                           % (glob.escape(socket.gethostname()), os.getpid()))
    ours = [f for f in glob.glob(pattern) if not f.endswith(".archviz")]
    if ours:
        return os.path.dirname(max(ours, key=os.path.getmtime))
    from transformers.integrations.integration_utils import default_logdir

    return os.path.join(args.output_dir, default_logdir())


class ArchVizTrainerCallback(TrainerCallback):
    """Writes the model's architecture from the first training batch (see the module).

    `input_to_model`: None (take it from the first batch), a tensor/tuple/dict written at
    ``on_train_begin``, or a function ``batch -> input``. `max_examples`: rows kept per tensor
    (None: the whole batch). `writer` / `log_dir`: where to write (default: the Trainer's
    TensorBoard run). `method`: see ``extract_torch``. `layer_signals_every` /
    `layer_signals` / `signals_max_examples`: layer signals (see the module; off by default).
    """

    def __init__(self, input_to_model: Any = None, *, max_examples: Optional[int] = 1,
                 drop: Iterable[str] = LABEL_KEYS, writer: Any = None,
                 log_dir: Optional[str] = None, method: str = "auto",
                 layer_signals_every: Any = None, layer_signals: Any = None,
                 signals_max_examples: Optional[int] = 32):
        self.signals = LayerSignals(layer_signals_every, layer_signals, signals_max_examples)
        self._signals_writer: Any = None
        self._signals_batch: Any = None
        self.input_to_model = input_to_model
        self.max_examples = max_examples
        self.drop = tuple(drop)
        self.writer = writer
        self.log_dir = log_dir
        self.method = method
        self.written_step: Optional[int] = None
        self.written_dir: Optional[str] = None
        self._tried = False
        self._start_step = 0
        self._hook = None
        self._batch: Any = None
        self._warn_state: dict = {}

    # -- Trainer hooks ---------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self._tried or not state.is_world_process_zero or model is None:
            return
        try:
            self._start_step = int(state.global_step or 0)
            self.drop = tuple(self.drop) + tuple(getattr(args, "label_names", None) or ())
            if self.input_to_model is not None and not callable(self.input_to_model):
                self._write(args, model, None)
            else:
                self._hook = model.register_forward_pre_hook(self._capture, with_kwargs=True)
        except Exception as e:  # never break training
            self._tried = True
            warn_once(LOG, self._warn_state, "writing the architecture", e)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._write_captured(args, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._remove_hook()
        self._write_captured(args, model)
        writer, self._signals_writer = self._signals_writer, None
        if writer is not None:
            writer.close()

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self._write_signals(args, state, model, epoch_end=False)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self._write_signals(args, state, model, epoch_end=True)

    def _write_signals(self, args, state, model, epoch_end: bool) -> None:
        step = int(state.global_step or 0)
        if model is None or not state.is_world_process_zero or \
                not self.signals.due(step, epoch_end):
            return
        try:
            if self.signals.example is None:
                given = self.input_to_model if self.input_to_model is not None and \
                    not callable(self.input_to_model) else None
                if given is not None or self._signals_batch is not None:
                    self.signals.remember(model, self._signals_batch, self.input_to_model,
                                          self.drop, LOG, self._warn_state)
                    self._signals_batch = None
            self.signals.write(self._signals_out(args), model, step)
        except Exception as e:  # never break training
            self.signals.every = None
            warn_once(LOG, self._warn_state, "writing layer signals", e)

    def _signals_out(self, args) -> Any:
        if self.writer is not None:
            return self.writer
        if self._signals_writer is None:
            from tensorboard_archviz.summary import ArchVizWriter

            self._signals_writer = ArchVizWriter(self.log_dir or trainer_log_dir(args))
        return self._signals_writer

    # -- internals -------------------------------------------------------------------------------

    def _capture(self, module, args, kwargs):
        """Forward pre-hook: keep the first batch's inputs, then go away. Never raises."""
        try:
            self._remove_hook()
            self._batch = dict(kwargs) if kwargs and not args else (args[0] if len(args) == 1
                                                                      else tuple(args))
            self._signals_batch = self._batch
        except Exception as e:
            warn_once(LOG, self._warn_state, "capturing the first batch", e)
        return None

    def _remove_hook(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.remove()

    def _write_captured(self, args, model) -> None:
        if self._tried or self._batch is None or model is None:
            return
        batch, self._batch = self._batch, None
        try:
            self._write(args, model, batch)
        except Exception as e:  # never break training
            warn_once(LOG, self._warn_state, "writing the architecture", e)

    def _write(self, args, model, batch) -> None:
        from tensorboard_archviz.summary import ArchVizWriter
        from tensorboard_archviz.torch_writer import add_architecture

        self._tried = True  # one attempt per callback, success or not
        example = resolve_input(model, batch, self.input_to_model, self.drop, self.max_examples)
        if self.writer is not None:
            add_architecture(self.writer, model, example, self._start_step, method=self.method)
        else:
            log_dir = self.log_dir or trainer_log_dir(args)
            with ArchVizWriter(log_dir) as writer:
                add_architecture(writer, model, example, self._start_step, method=self.method)
            self.written_dir = log_dir
        self.written_step = self._start_step
