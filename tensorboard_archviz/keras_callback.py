"""ArchVizCallback: writes a Keras model's Architecture (and optionally filter grids) during fit().

```python
model.fit(x, y, epochs=5, callbacks=[ArchVizCallback(log_dir="logs")])
```
Writes into ``<log_dir>/<run>`` (``<log_dir>/train`` by default: the run Keras' own
``keras.callbacks.TensorBoard`` writes its training data to, so both land in one run):

- the architecture at ``on_train_begin`` (step = epochs completed so far, 0 for a fresh fit;
  a model that is not built yet — subclassed, on the TensorFlow backend — is written with that
  step as soon as the first train step has built it);
- again at ``on_epoch_end`` (step = epoch + 1) whenever it changed — a layer frozen or unfrozen,
  weights added or reshaped — judged by a cheap fingerprint, so nothing is rewritten otherwise;
- with ``filters``: filter grids from ``tensorboard_archviz.filters.keras_backend.make_grids`` at
  ``on_train_end`` and every ``filters_every`` epochs (TensorFlow, torch and JAX backends), each
  from the weights of that moment.

- with ``layer_signals_every`` (default ``"epoch"``): layer signals (``archviz/signals``; see
  ``tensorboard_archviz.signals``) at ``on_train_begin`` (step = epochs done: the baseline of
  the update ratios) and at every epoch end (step = epoch + 1, the architecture's steps); an
  integer N writes every N training batches instead, at step = training batches seen by this
  callback (Keras' ``TensorBoard`` callback's batch steps). ``None`` writes none.
  Default signals: weight RMS and update ratios (no batch needed: one pass over the weights and
  a gather of at most 4096 values per variable per write), plus gradients and activations when
  ``example_input`` is given (``x``, or ``(x, y[, sample_weight])`` as ``fit()`` takes data;
  gradients need ``y``). Asking for ``layer_signals=[..., "gradients", "activations"]`` without
  ``example_input`` makes the callback hold the first training batch of each ``fit()``
  (``signals.keras_capture``; on TensorFlow one extra trace of the one-step function per fit).
  Cost per write: one forward + backward pass on the batch (gradients, eager), one inference
  pass (activations), ``1 + 3`` inference passes (the opt-in ``"time"``).

Never stops training: any failure inside the callback is logged as exactly one warning through
python ``logging`` (logger ``tensorboard_archviz.keras_callback``), and the part that failed
(architecture or filters; everything when the log directory cannot be written) is switched off for
the rest of that ``fit()``. In a multi-worker run only the chief writes.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Iterable, Optional, Sequence, Union

import keras

from tensorboard_archviz.util import torch_rank_is_zero

logger = logging.getLogger(__name__)

_ARCH, _FILTERS, _SIGNALS, _ALL = "architecture", "filters", "layer signals", "all"


class _WriterError(Exception):
    """The log directory cannot be written: everything is switched off."""


def is_chief() -> bool:
    """Whether this process should write: the chief of a multi-worker run, or a lone process.

    ``TF_CONFIG``: task type ``chief``, or ``worker`` with index 0 when the cluster has no chief
    (``ps`` / ``evaluator`` tasks never write). Otherwise a ``keras.distribution`` distribution's
    process id, then ``torch.distributed``'s rank (only when torch is already imported), must be 0.
    """
    raw = os.environ.get("TF_CONFIG")
    if raw:
        try:
            cfg = json.loads(raw)
        except ValueError:
            cfg = None
        if isinstance(cfg, dict):
            task = cfg.get("task") or {}
            cluster = cfg.get("cluster") or {}
            kind = task.get("type") if isinstance(task, dict) else None
            if kind:
                try:
                    index = int(task.get("index", 0) or 0)
                except (TypeError, ValueError):
                    index = 0
                if kind == "chief":
                    return True
                if kind == "worker":
                    return index == 0 and "chief" not in cluster
                return False
    try:
        dist = keras.distribution.distribution()
    except Exception:  # noqa: BLE001 - a backend without keras.distribution support
        dist = None
    if dist is not None and int(getattr(dist, "_process_id", 0) or 0) != 0:
        return False
    return torch_rank_is_zero()


def architecture_fingerprint(model: Any) -> int:
    """A cheap hash of what makes the architecture change: layers, trainable flags, weights."""
    items = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        own = list(getattr(layer, "_trainable_variables", ())) + \
            list(getattr(layer, "_non_trainable_variables", ()))
        items.append((
            layer.name, type(layer).__name__, bool(layer.trainable), bool(layer.built),
            tuple((str(v.path), tuple(v.shape), bool(v.trainable)) for v in own),
        ))
    return hash(tuple(items))


class ArchVizCallback(keras.callbacks.Callback):
    """Writes the model's architecture for the Arch Viz tab of TensorBoard (see module doc).

    Args:
        log_dir: the same ``log_dir`` as ``keras.callbacks.TensorBoard``.
        run: sub-directory (TensorBoard run) written to; ``"train"`` like Keras' callback.
        filters: ``True`` for filter grids of all conv layers, a list of layer names (or node
            ids) for those layers, ``False`` for none.
        filters_every: also write grids every N epochs (else only at the end of training).
        filters_options: extra keyword options for ``make_grids`` (e.g. ``{"steps": 32}``).
        filters_time_budget: seconds allowed per grid-making call (passed to ``make_grids``).
        gradient_reach: ``True`` adds which parameters the loss reaches to each architecture
            (one forward + backward on a random batch; see ``tensorboard_archviz.gradient_reach``).
        layer_signals_every: ``"epoch"`` (default), an integer N (every N training batches) or
            None (no layer signals); see the module doc.
        layer_signals: which signals (``tensorboard_archviz.signals.catalog.GROUPS``): None for
            the defaults (weights and updates; with ``example_input`` also gradients and
            activations), ``"all"``, or a list (``"time"``: per-layer forward time).
        example_input: the batch for gradients / activations / time: ``x`` or ``(x, y)`` /
            ``(x, y, sample_weight)``; None: the first training batch of each fit is held when
            ``layer_signals`` asks for any of them.
    """

    def __init__(self, log_dir: Union[str, os.PathLike] = "logs", run: str = "train",
                 filters: Union[bool, Sequence[str]] = False,
                 filters_every: Optional[int] = None,
                 filters_options: Optional[Dict[str, Any]] = None,
                 filters_time_budget: Optional[float] = None, gradient_reach: bool = False,
                 layer_signals_every: Union[str, int, None] = "epoch",
                 layer_signals: Union[None, str, Sequence[str]] = None,
                 example_input: Any = None):
        super().__init__()
        self.layer_signals_every, self.layer_signals = _signals_options(
            layer_signals_every, layer_signals, example_input)
        self.example_input = example_input
        self._signals_state: Any = None
        self._capture: Any = None
        self._train_batches = 0  # training batches seen by this callback (batch steps)
        self._signals_batches: Optional[int] = None  # _train_batches at the last signals write
        self.signals_steps: list = []  # steps at which layer signals were written
        if not isinstance(run, str) or not run:
            raise ValueError("ArchVizCallback: run must be a non-empty string, got %r" % (run,))
        if isinstance(filters, str):
            filters = [filters]
        if not isinstance(filters, bool):
            if not isinstance(filters, Iterable) or \
                    not all(isinstance(x, str) for x in filters):
                raise ValueError("ArchVizCallback: filters must be True, False or a list of "
                                 "layer names, got %r" % (filters,))
            filters = list(filters)
        if filters_every is not None and (isinstance(filters_every, bool)
                                          or not isinstance(filters_every, int)
                                          or filters_every < 1):
            raise ValueError("ArchVizCallback: filters_every must be a positive integer or "
                             "None, got %r" % (filters_every,))
        if filters_options is not None and not isinstance(filters_options, dict):
            raise ValueError("ArchVizCallback: filters_options must be a dict, got %r"
                             % (filters_options,))
        if filters_time_budget is not None and (isinstance(filters_time_budget, bool) or not
                                                isinstance(filters_time_budget, (int, float))
                                                or filters_time_budget <= 0):
            raise ValueError("ArchVizCallback: filters_time_budget must be a positive number "
                             "of seconds or None, got %r" % (filters_time_budget,))
        self.log_dir = os.fspath(log_dir)
        self.run = run
        self.run_dir = os.path.join(self.log_dir, run)
        self.filters = filters
        self.filters_every = filters_every
        self.filters_options = dict(filters_options or {})
        self.filters_time_budget = filters_time_budget
        self.gradient_reach = gradient_reach
        self._writer = None
        self._fingerprint: Optional[int] = None
        self._epochs_done = 0
        self._disabled: set = set()
        self._chief = True
        self._filters_step: Optional[int] = None
        self._pending_start: Optional[int] = None  # the first write waits for the model's build
        self._warned_vanished = False
        self.written_steps: list = []  # steps at which an architecture was written (for users)

    # -- the never-crash guard -----------------------------------------------------------------
    def _guarded(self, feature: str, what: str, fn, *args: Any) -> Any:
        if not self._chief or feature in self._disabled or _ALL in self._disabled:
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - the callback must never stop training
            writer_broken = isinstance(e, _WriterError)
            self._disabled.add(_ALL if writer_broken else feature)
            if feature == _ARCH and self.layer_signals_every is not None:
                # signals are placed on the architecture's node ids (the same extraction)
                self._disabled.add(_SIGNALS)
                feature = "architecture (and layer signals)"
            cause = e.__cause__ if writer_broken and e.__cause__ is not None else e
            text = str(cause).strip().splitlines()
            logger.warning(
                "ArchVizCallback: %s failed (%s: %s); %s disabled for the rest of this fit(), "
                "training continues", what, type(cause).__name__, text[0] if text else "",
                "writing to %s" % self.run_dir if writer_broken else feature)
            return None

    def _get_writer(self, sort_first: bool = False):
        if self._writer is None:
            from tensorboard_archviz.summary import ArchVizWriter

            try:
                self._writer = ArchVizWriter(self.run_dir, sort_first=sort_first)
            except Exception as e:  # noqa: BLE001 - reported by the guard as one warning
                raise _WriterError(str(e)) from e
        return self._writer

    def _write(self, method: str, *args: Any, **kwargs: Any) -> None:
        writer = self._get_writer()
        try:
            getattr(writer, method)(*args, **kwargs)
        except OSError as e:
            raise _WriterError(str(e)) from e

    # -- architecture ----------------------------------------------------------------------------
    def _write_architecture(self, step: int, only_if_changed: bool) -> None:
        model = self.model
        if model is None:
            return
        fp = architecture_fingerprint(model)
        if only_if_changed and fp == self._fingerprint:
            return
        from tensorboard_archviz.extract.keras import extract_keras_layers

        arch, layers = extract_keras_layers(model)  # one extraction, reused by gradient reach
        if self.gradient_reach:
            from tensorboard_archviz.gradient_reach import add_to
            add_to(arch, model, None, self.gradient_reach, layers=layers)
        self._write("add_architecture", arch, step=step)
        if self.layer_signals_every is not None:  # the signals' node ids: this extraction's
            self._signals().use(model, layers)
        self._fingerprint = fp
        self.written_steps.append(step)
        logger.info("ArchVizCallback: architecture of %r written to %s at step %d",
                    model.name, self.run_dir, step)

    # -- filters -----------------------------------------------------------------------------------
    def _write_filters(self, step: int) -> None:
        if not self.filters or self.model is None or self._filters_step == step:
            return
        from tensorboard_archviz.filters.keras_backend import make_grids

        layers = None if self.filters is True else list(self.filters)
        self._get_writer()
        count = 0
        run = make_grids(self.model, layers, time_budget=self.filters_time_budget,
                         log=_filters_log, **self.filters_options)
        for r in run:
            self._write("add_filter_grid", r.node_id, r.png, r.tiles, step=step)
            count += 1
            logger.info("ArchVizCallback: filter grid of %s written at step %d", r.node_id, step)
        self._write_skipped_grids(getattr(run, "skipped", ()), step)
        self._filters_step = step
        logger.info("ArchVizCallback: %d filter grid(s) written to %s at step %d",
                    count, self.run_dir, step)

    def _write_skipped_grids(self, skipped, step: int) -> None:
        """A layer left out of a make_grids call (time budget, not reached, failed) is written
        as a grid without tiles whose ``skipped`` says why (``filters.core.skipped_grid``)."""
        from tensorboard_archviz.filters.core import skipped_grid

        for s in skipped:
            self._write("add_filter_grid", s.node_id, *skipped_grid(s), step=step)

    # -- Keras hooks ---------------------------------------------------------------------------
    def set_model(self, model: Any) -> None:
        """Called by fit() before any callback's on_train_begin: open our event file now.

        Keras' TensorBoard callback creates its file in its own set_model; ours is created at the
        same moment and named to sort first (see ``ArchVizWriter(sort_first=True)``), so
        TensorBoard's legacy loader keeps reading Keras' scalars while training runs.
        """
        super().set_model(model)
        if self._writer is None:
            try:
                if is_chief():
                    self._get_writer(sort_first=True)
            except Exception:  # noqa: BLE001 - the first write reports it, as one warning
                self._writer = None

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._disabled = set()
        self._pending_start = None
        self._warned_vanished = False
        self._chief = True
        self._chief = self._guarded(_ALL, "checking the worker role", is_chief) is not False
        if not self._chief:
            logger.info("ArchVizCallback: not the chief worker; not writing")
            return
        if self.model is not None and not self.model.built:
            # Subclassed models (and Sequential without an input shape) are built by the first
            # train step on the TensorFlow backend: write as soon as the model is built.
            self._pending_start = self._epochs_done
            return
        self._guarded(_ARCH, "writing the architecture", self._write_architecture,
                      self._epochs_done, True)
        self._signals_begin()

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._pending_start is not None and self.model is not None and self.model.built:
            self._write_pending_start()
        self._batches_done()
        self._train_batches += 1

    def _write_pending_start(self) -> None:
        step, self._pending_start = self._pending_start, None
        self._guarded(_ARCH, "writing the architecture", self._write_architecture, step, True)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._pending_start is not None:
            self._write_pending_start()
        self._epochs_done = int(epoch) + 1
        self._batches_done()
        self._check_vanished()
        self._guarded(_ARCH, "writing the architecture", self._write_architecture,
                      self._epochs_done, True)
        if self.filters and self.filters_every and self._epochs_done % self.filters_every == 0:
            self._guarded(_FILTERS, "writing filter grids", self._write_filters,
                          self._epochs_done)
        if self.layer_signals_every == "epoch":
            self._guarded(_SIGNALS, "writing layer signals", self._write_signals,
                          self._epochs_done)

    # -- layer signals -------------------------------------------------------------------------
    def _signals_begin(self) -> None:
        """At on_train_begin: hold the first batch (when needed) and write the baseline."""
        if self.layer_signals_every is None or not self._chief:
            return
        from tensorboard_archviz.signals.keras_capture import BatchCapture

        needs_batch = {"gradients", "activations", "time"} & set(self.layer_signals)
        if self.example_input is None and needs_batch and self.model is not None:
            self._capture = BatchCapture()
            self._guarded(_SIGNALS, "holding a training batch", self._capture.install,
                          self.model)
        if self.model is not None and self.model.built:
            self._guarded(_SIGNALS, "writing layer signals", self._write_signals,
                          self._epochs_done if self.layer_signals_every == "epoch"
                          else self._train_batches)

    def _signals(self) -> Any:
        """The signals' state of this callback (update samples, node ids), made on first use."""
        if self._signals_state is None:
            from tensorboard_archviz.signals.keras import KerasSignalState

            self._signals_state = KerasSignalState()
        return self._signals_state

    def _batches_done(self) -> None:
        """Every N completed training batches (``layer_signals_every=N``): write the signals.

        Checked at the next batch's begin and at the epoch end, not in ``on_train_batch_end``:
        a callback with a batch-end hook switches off Keras' asynchronous batch callbacks."""
        every, done = self.layer_signals_every, self._train_batches
        if isinstance(every, int) and done > 0 and done % every == 0:
            self._guarded(_SIGNALS, "writing layer signals", self._write_signals, done)

    def _write_signals(self, step: int) -> None:
        model = self.model
        if model is None or not model.built or step in self.signals_steps[-1:]:
            return
        from tensorboard_archviz.signals.keras import compute_keras
        from tensorboard_archviz.signals.write import signals_doc, update_steps
        from tensorboard_archviz.summary import signals_pb

        batch = self.example_input
        if batch is None and self._capture is not None:
            batch = self._capture.batch
        values, meta = compute_keras(model, batch, self.layer_signals, self._signals())
        if batch is None and self._capture is not None and self._capture.reason:
            meta["notes"].append(self._capture.reason)
        if "updates.ratio" in values:  # the training batches (optimizer steps) its change spans
            meta["update_steps"] = update_steps(self._signals_batches, self._train_batches)
        self._write("add_summary", signals_pb(signals_doc(values, **meta)), step)
        self._signals_batches = self._train_batches
        self.signals_steps.append(step)

    def _check_vanished(self) -> None:
        """The event file was removed during training (its run directory deleted): write the
        architecture again, into a new file, instead of leaving the run empty."""
        writer = self._writer
        if writer is None or not self._chief or _ALL in self._disabled:
            return
        try:
            gone = writer.vanished()
        except Exception:  # noqa: BLE001 - a check only
            return
        if gone:
            if not self._warned_vanished:
                self._warned_vanished = True
                logger.warning("ArchVizCallback: the event file in %s was removed during training; "
                               "writing the architecture again into a new file", self.run_dir)
            self._fingerprint = None
            self._filters_step = None

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._capture is not None:
            self._capture.uninstall()
            self._capture = None
        if self.filters and self._filters_step != self._epochs_done:
            # A fresh (newest) event file for what is written after the last epoch, so that
            # TensorBoard's legacy loader, which never returns to an older file, reads it too.
            self._close_writer()
            self._guarded(_FILTERS, "writing filter grids", self._write_filters,
                          self._epochs_done)
        self._close_writer()

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as e:  # noqa: BLE001 - closing must not break the end of fit()
                if _ALL not in self._disabled:
                    logger.warning("ArchVizCallback: closing the event file in %s failed "
                                   "(%s: %s)", self.run_dir, type(e).__name__, e)


def _filters_log(message: Any, *args: Any) -> None:
    """Progress lines from make_grids, into this module's logger."""
    try:
        text = str(message) % args if args else str(message)
    except (TypeError, ValueError):
        text = " ".join(str(x) for x in (message,) + args)
    logger.info("ArchVizCallback filters: %s", text)


# Keras' defaults: what needs no batch. Gradients cost one extra forward + backward per write
# (eager) and activations one inference pass: on by default only with `example_input`.
KERAS_DEFAULT_SIGNALS = ("weights", "updates")


def _signals_options(every: Any, signals: Any, example_input: Any = None):
    """Checked ``(layer_signals_every, layer signal groups)``; ValueError names the bad one."""
    from tensorboard_archviz.signals.catalog import groups_of

    if signals is None:
        signals = KERAS_DEFAULT_SIGNALS + (("gradients", "activations")
                                           if example_input is not None else ())

    if every is not None and every != "epoch" and (isinstance(every, bool) or not isinstance(
            every, int) or every < 1):
        raise ValueError("ArchVizCallback: layer_signals_every must be \"epoch\", a positive "
                         "number of batches or None, got %r" % (every,))
    try:
        groups = groups_of(signals)
    except ValueError as e:
        raise ValueError("ArchVizCallback: layer_signals: %s" % e) from None
    return every, groups
