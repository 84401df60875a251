"""Filter-maximisation grids: what each 2-D conv filter responds to.

``keras_backend.make_grids`` (Keras 3 on TensorFlow, torch or JAX) and ``torch_backend.make_grids``
(PyTorch) yield one ``core.GridResult`` (``node_id``, ``png``, ``tiles``) per conv layer. ``core``
holds the framework-neutral method and the one per-layer driver (``core.drive``: budget, skips,
plan, log, timing, errors) that calls each backend's steps; the optimisation loops live in
``tf_optim``, ``torch_optim`` and ``jax_optim``; ``grid`` tiles the PNG. Importing this package
imports no framework.
"""
