"""Layer signals: how each layer behaves during training, per node id and step.

One module per step of the data flow (none imports a framework at package import):

- ``catalog``  — the signal keys, their labels / units / scales, and how a value is encoded;
- ``state``    — the bounded state kept between writes (the fixed samples behind ``updates.ratio``);
- ``torch``    — the signals of a PyTorch ``nn.Module`` (``compute_torch``);
- ``keras``    — the signals of a ``keras.Model`` on the TensorFlow, torch and JAX backends;
- ``write``    — the stored documents (``signals_doc`` / ``values_doc``);
- ``findings`` — findings in words (vanishing, exploding, dead, saturated, update ratio, frozen,
  non-finite, slowest) with documented thresholds, used by the ``signals`` route.

The writers are ``tensorboard_archviz.add_layer_signals`` / ``add_layer_values`` (PyTorch),
``ArchVizCallback(layer_signals_every=...)`` (Keras) and the Lightning / Hugging Face callbacks.
"""
