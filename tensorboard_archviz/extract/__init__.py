"""Extractors: a framework's model -> ``schema.Architecture`` (no framework is imported here).

- ``keras`` (+ ``keras_macs``): a built Keras 3 model, read symbolically.
- ``torch``: a live ``nn.Module`` run once on an example input (torch.fx, else forward hooks);
  ``torch_saved``: ``torch.export`` programs (.pt2) and TorchScript archives. Both describe what
  ran in the terms of ``torch_graph`` (recorder, module descriptions, ``build_architecture``),
  count MACs with ``torch_macs`` and leave the model as it was with ``torch_guard``.
"""
