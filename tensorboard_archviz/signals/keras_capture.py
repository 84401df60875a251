"""Hold the first training batch of a Keras ``fit()`` (for ``ArchVizCallback``'s layer signals).

Keras 3 gives callbacks no batch. ``BatchCapture.install(model)`` (at ``on_train_begin``) wraps
``model.train_function`` for ONE call: that call takes the batch the train step is about to
consume, keeps it, and trains on exactly that batch; the wrapper then puts the original
function back. Nothing is skipped or repeated:

- torch backend: ``train_function(data)`` receives the batch itself (a list of one batch);
- JAX: ``train_function(state, iterator)``: the batch is taken with ``next(iterator)`` and the
  step is given an iterator that yields it first, then the rest;
- TensorFlow: ``train_function(iterator)``: for a plain ``tf.data`` iterator the batch is taken
  with ``get_next()`` and the step runs on it through the train function's per-batch path,
  which costs one extra trace of Keras' one-step function (once per ``fit``; pass
  ``example_input=(x, y)`` to avoid it). Under a distribution strategy nothing is captured.

The held batch is the whole first batch (x, y, sample_weight), on the device it came on.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

import keras

__all__ = ["BatchCapture"]


class _Untouched(Exception):
    """The capture failed before taking anything from the data."""


class BatchCapture:
    """Installs the one-call wrapper; ``batch`` holds the captured batch (None until then)."""

    def __init__(self) -> None:
        self.batch: Any = None
        self.reason: Optional[str] = None
        self._model: Any = None
        self._original: Any = None
        self._wrapper: Any = None

    def install(self, model: Any) -> bool:
        """Wrap ``model.train_function``; False (with ``reason``) when that is not possible."""
        original = getattr(model, "train_function", None)
        if original is None or not callable(original):
            self.reason = "the model has no train function yet"
            return False
        self._model, self._original = model, original
        self._wrapper = self._call  # one bound method: compared by identity on uninstall
        model.train_function = self._wrapper
        return True

    def uninstall(self) -> None:
        """Put the original train function back (idempotent)."""
        model, original = self._model, self._original
        self._model = self._original = None
        if model is not None and model.__dict__.get("train_function") is self._wrapper:
            model.train_function = original
        self._wrapper = None

    def _call(self, *args: Any) -> Any:
        original = self._original
        self.uninstall()
        try:
            return self._capture(original, args)
        except _Untouched as e:  # nothing was taken from the data: train as if never wrapped
            self.reason = "the batch could not be taken (%s)" % e
            return original(*args)

    def _capture(self, original: Any, args: tuple) -> Any:
        backend = keras.backend.backend()
        if backend == "torch" and len(args) == 1:
            data = args[0]  # a list of steps_per_execution batches
            self.batch = data[0] if isinstance(data, list) and data else data
            return original(*args)
        if backend not in ("jax", "tensorflow"):
            raise _Untouched("the %s backend" % backend)
        if backend == "jax" and len(args) == 2:
            state, iterator = args
            data = next(iterator)  # StopIteration propagates exactly as the step's own next()
            self.batch = data
            return original(state, itertools.chain([data], iterator))
        if backend == "tensorflow" and len(args) == 1:
            return self._tensorflow(original, args[0])
        self.reason = "unsupported train function call on the %s backend" % backend
        return original(*args)

    def _tensorflow(self, original: Any, iterator: Any) -> Any:
        import tensorflow as tf

        if not isinstance(iterator, tf.data.Iterator) or \
                isinstance(iterator, tf.distribute.DistributedIterator):
            self.reason = "the batch could not be taken (distributed input)"
            return original(iterator)
        data = iterator.get_next()  # end of data propagates exactly as the step's own would
        try:
            self.batch = tf.nest.map_structure(
                lambda t: None if isinstance(t, tf.experimental.Optional) else t, data)
        except Exception as e:  # noqa: BLE001 - keep the batch for training all the same
            self.batch, self.reason = None, "the batch could not be held (%s)" % e
        return original(iter([data]))
