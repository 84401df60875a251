"""tensorboard-archviz: see what a deep-learning model is, inside TensorBoard.

Importing this package imports neither TensorFlow, Keras nor torch; each public name loads its
framework on first use::

    from tensorboard_archviz import ArchVizCallback                      # Keras
    from tensorboard_archviz import add_architecture, add_filter_grids   # PyTorch SummaryWriter
    from tensorboard_archviz import add_layer_signals, add_layer_values  # layer signals (PyTorch)
    from tensorboard_archviz import ArchVizLightningCallback             # PyTorch Lightning
    from tensorboard_archviz import ArchVizTrainerCallback               # Hugging Face Trainer
"""

__version__ = "0.3.0"

_LAZY = {
    "ArchVizCallback": ("tensorboard_archviz.keras_callback", "ArchVizCallback"),
    "add_architecture": ("tensorboard_archviz.torch_writer", "add_architecture"),
    "add_filter_grids": ("tensorboard_archviz.torch_writer", "add_filter_grids"),
    "add_layer_signals": ("tensorboard_archviz.torch_writer", "add_layer_signals"),
    "add_layer_values": ("tensorboard_archviz.torch_writer", "add_layer_values"),
    "ArchVizLightningCallback": ("tensorboard_archviz.integrations.lightning",
                                 "ArchVizLightningCallback"),
    "ArchVizTrainerCallback": ("tensorboard_archviz.integrations.hf_trainer",
                               "ArchVizTrainerCallback"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError("module 'tensorboard_archviz' has no attribute %r" % name)


def __dir__():
    return __all__
