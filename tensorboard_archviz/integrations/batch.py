"""Example inputs taken from a training batch, shared by the Lightning and Trainer callbacks.

A batch is whatever the data loader yields: a tensor, a ``(inputs, targets)`` tuple, a dict of
keyword tensors (Hugging Face ``BatchEncoding`` included). ``example_input`` turns it into the
``input_to_model`` of ``add_architecture``; ``first_examples`` keeps the first example(s) of every
tensor, so the extraction's extra forward pass costs a fraction of a training step.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any, Iterable, Optional

from tensorboard_archviz import util

__all__ = ["LayerSignals", "example_input", "first_examples", "forward_parameters",
           "resolve_input", "warn_once"]


def first_examples(value: Any, n: Optional[int]) -> Any:
    """`value` with every tensor of rank >= 1 cut to its first `n` rows (None: unchanged).

    Dicts, lists and tuples (named tuples too) are walked; everything else is left as it is.
    """
    if n is None:
        return value
    if hasattr(value, "dim") and hasattr(value, "shape"):  # a torch.Tensor, without importing torch
        return value[:n] if value.dim() > 0 else value
    if isinstance(value, Mapping):
        return {k: first_examples(v, n) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(first_examples(v, n) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(first_examples(v, n) for v in value)
    return value


def forward_parameters(model: Any):
    """(names of ``model.forward``'s named parameters, whether it takes ``**kwargs``, number of
    positional parameters without a default)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return set(), True, 1
    kinds = inspect.Parameter
    named = {p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    var_kw = any(p.kind == kinds.VAR_KEYWORD for p in params)
    required = sum(1 for p in params
                   if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
                   and p.default is p.empty)
    return named, var_kw, required


def example_input(model: Any, batch: Any, drop: Iterable[str] = ()) -> Any:
    """``input_to_model`` for ``add_architecture`` from one training batch.

    - a tensor: the tensor (``model(x)``);
    - a dict: the entries ``model.forward`` names as arguments (as the HF Trainer keeps
      columns), or all of them when none matches and it takes ``**kwargs``; never the keys in
      `drop` (labels: the architecture is the model's, not the loss's) -> ``model(**inputs)``;
    - a tuple/list: ``(inputs, targets, ...)`` -> its first item when ``forward`` takes one
      required argument, else as many leading items as ``forward`` requires.
    Raises ``ValueError`` / ``TypeError`` with one line saying what did not fit.
    """
    if hasattr(batch, "dim") and hasattr(batch, "shape"):
        return batch
    named, var_kw, required = forward_parameters(model)
    if isinstance(batch, Mapping):
        kept = {k: v for k, v in batch.items() if k not in set(drop)}
        items = {k: v for k, v in kept.items() if k in named}
        if not items and var_kw:
            items = kept
        if not items:
            raise ValueError("the batch's keys %s match none of %s.forward's arguments %s"
                             % (sorted(map(str, batch)), type(model).__name__, sorted(named)))
        return items
    if isinstance(batch, (list, tuple)) and len(batch) > 0:
        if required <= 1:
            return batch[0]
        if required > len(batch):
            raise ValueError("%s.forward needs %d inputs; the batch has %d items"
                             % (type(model).__name__, required, len(batch)))
        return tuple(batch[:required])
    raise TypeError("cannot take an example input from a batch of type %s; pass input_to_model="
                    % type(batch).__name__)


def warn_once(logger: logging.Logger, state: dict, what: str, error: BaseException) -> None:
    """Log ONE warning per callback (`state` remembers it): training goes on without the part
    that failed."""
    if state.get("warned"):
        return
    state["warned"] = True
    logger.warning("tensorboard_archviz: %s failed, training continues without it: %s",
                   what, util.one_line(error))


def resolve_input(model: Any, batch: Any, input_to_model: Any, drop: Iterable[str],
                  max_examples: Optional[int]) -> Any:
    """The example input: `input_to_model` when given (a callable gets the batch), else taken
    from `batch` by ``example_input``; then cut to `max_examples` rows."""
    if input_to_model is None:
        value = example_input(model, batch, drop)
    elif callable(input_to_model) and not hasattr(input_to_model, "dim"):
        value = input_to_model(batch)
    else:
        value = input_to_model
    return first_examples(value, max_examples)



class LayerSignals:
    """The ``layer_signals_every`` option of the Lightning and Trainer callbacks.

    `every`: None (off), a positive number N (every N optimizer steps, called just before the
    optimizer step so ``.grad`` holds the step's gradients) or ``"epoch"`` (at each epoch end;
    ``.grad`` then holds the epoch's last gradients unless they were cleared). `signals`: as
    ``add_layer_signals``. The example input for activations is taken once from the first
    training batch (`max_examples` rows, default 32). Written through ``add_layer_signals``
    (never raises; one warning, then off).
    """

    def __init__(self, every: Any, signals: Any, max_examples: Optional[int] = 32):
        from tensorboard_archviz.signals.catalog import groups_of

        if every is not None and every != "epoch" and (isinstance(every, bool) or not isinstance(
                every, int) or every < 1):
            raise ValueError("layer_signals_every must be None, \"epoch\" or a positive number "
                             "of optimizer steps, got %r" % (every,))
        self.every = every
        self.signals = signals
        groups_of(signals)  # a bad name raises here, not during training
        self.max_examples = max_examples
        self.example: Any = None
        self.written: list = []  # steps written

    @property
    def on(self) -> bool:
        return self.every is not None

    def due(self, step: int, epoch_end: bool = False) -> bool:
        """Whether to write at optimizer step `step` (or at an epoch end)."""
        if self.every is None or (self.written and self.written[-1] == step):
            return False
        return epoch_end if self.every == "epoch" else (not epoch_end and step % self.every == 0)

    def remember(self, model: Any, batch: Any, input_to_model: Any, drop: Iterable[str],
                 logger: logging.Logger, state: dict) -> None:
        """Keep the example input for activations from the first batch (once)."""
        if not self.on or self.example is not None:
            return
        try:
            self.example = resolve_input(model, batch, input_to_model, drop, self.max_examples)
        except Exception as e:  # noqa: BLE001 - the signals without activations still work
            self.example = False
            warn_once(logger, state, "taking an example input for layer signals", e)

    def write(self, writer: Any, model: Any, step: int) -> None:
        from tensorboard_archviz.torch_writer import add_layer_signals

        example = self.example if self.example is not False else None
        if add_layer_signals(writer, model, step, input_to_model=example,
                             signals=self.signals) is not None:
            self.written.append(step)
