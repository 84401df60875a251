"""Gradient reach: which parameters the loss can reach.

One forward and one backward pass on the example input tell, for every parameter, whether it

- ``grad``: receives a gradient,
- ``none``: receives none although it is trainable (a branch cut by ``detach`` /
  ``stop_gradient``, a module never called, an output that reaches nothing, ``torch.no_grad``), or
- ``frozen``: is frozen on purpose (``requires_grad=False`` / ``trainable=False``).

The result goes into the architecture (``Architecture.gradient_reach``, JSON key
``gradient_reach``)::

    {"status": "ok", "summary": "3 parameters of head.aux receive no gradient: ...",
     "scalar": "...", "counts": {"grad": 10, "none": 3, "frozen": 2}, "mode": "...",
     "nodes": {node_id: {"state": "grad"|"none"|"frozen"|"mixed", "reason"?: str,
                         "params": {name: {"state", "size", "reason"?}}}}}

or ``{"status": "unavailable", "reason": "...", "summary": "gradient reach unavailable: ..."}``
when the model's outputs hold no tensor or the backward pass fails (the architecture is written
anyway). Container nodes get the combined state of their subtree (``mixed`` when it differs) and
no ``params`` of their own unless they hold some.

The scalar differentiated is the loss when one is given, else a weighted sum of every floating
output (weights in [0.5, 1.5), fixed): a plain sum would have a zero gradient behind a softmax,
whose outputs always sum to 1.

Modules: ``core`` (framework-neutral: the result object, the summary), ``torch`` and ``keras``
(one forward + backward on each framework, importing it inside). This package imports no
framework; ``compute`` picks the module from the model's class.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from tensorboard_archviz.gradient_reach.core import (FROZEN, GRAD, MIXED, NONE, SCALAR_LOSS,
                                                     SCALAR_SUM, STATES, ParamReach,
                                                     build_result, unavailable)
from tensorboard_archviz.util import one_line

__all__ = ["ParamReach", "build_result", "unavailable", "compute", "attach", "add_to", "GRAD",
           "NONE", "FROZEN", "MIXED", "STATES", "SCALAR_SUM", "SCALAR_LOSS"]


def _framework_of(model: Any) -> Optional[str]:
    for cls in type(model).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "torch":
            return "torch"
        if root in ("keras", "tf_keras"):
            return "keras"
    return None


def compute(model: Any, input_to_model: Any = None, *,
            loss: Optional[Callable[[Any], Any]] = None, arch: Any = None,
            layers: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Gradient reach of a torch ``nn.Module`` or a Keras model; never raises.

    `input_to_model`: as for ``add_architecture`` (torch); for Keras None makes a random batch
    of two from the model's input shapes. `loss`: a callable ``loss(outputs) -> scalar`` used
    instead of the weighted sum of the outputs. Keras only: `arch` and `layers` are the
    model's extraction when the caller has it (``extract.keras.extract_keras_layers``: the
    ``schema.Architecture`` and ``{node id: layer}``), so the model is not extracted again.
    """
    try:
        fw = _framework_of(model)
        if fw == "torch":
            from tensorboard_archviz.gradient_reach import torch as reach_torch

            return reach_torch.reach(model, input_to_model, loss=loss)
        if fw == "keras":
            from tensorboard_archviz.gradient_reach import keras as reach_keras

            return reach_keras.reach(model, input_to_model, loss=loss, arch=arch, layers=layers)
        return unavailable("not a torch.nn.Module or a Keras model: %s" % type(model).__name__)
    except Exception as e:  # noqa: BLE001 - an analysis must never break the caller
        return unavailable(one_line(e))


def attach(arch: Any, result: Dict[str, Any]) -> Any:
    """Put `result` into the architecture (``schema.Architecture.gradient_reach``)."""
    arch.gradient_reach = result
    return arch


def add_to(arch: Any, model: Any, input_to_model: Any = None, gradient_reach: Any = True,
           layers: Optional[Dict[str, Any]] = None) -> Any:
    """The writers' hook: compute gradient reach and attach it to `arch` (never raises).

    `gradient_reach`: the writers' option, ``True`` (weighted sum of the outputs) or a
    callable ``loss(outputs) -> scalar``. `layers`: Keras, see ``compute``.
    """
    loss = gradient_reach if callable(gradient_reach) else None
    return attach(arch, compute(model, input_to_model, loss=loss, arch=arch, layers=layers))
