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
"""

from __future__ import annotations

import glob
import logging
import os
import socket
from typing import Any, Iterable, Optional

from transformers import TrainerCallback

from tensorboard_archviz.integrations.batch import resolve_input, warn_once

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
    TensorBoard run). `method`: see ``extract_torch``.
    """

    def __init__(self, input_to_model: Any = None, *, max_examples: Optional[int] = 1,
                 drop: Iterable[str] = LABEL_KEYS, writer: Any = None,
                 log_dir: Optional[str] = None, method: str = "auto"):
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

    # -- internals -------------------------------------------------------------------------------

    def _capture(self, module, args, kwargs):
        """Forward pre-hook: keep the first batch's inputs, then go away. Never raises."""
        try:
            self._remove_hook()
            self._batch = dict(kwargs) if kwargs and not args else (args[0] if len(args) == 1
                                                                      else tuple(args))
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
