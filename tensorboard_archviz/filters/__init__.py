"""Filter-maximisation grids: what each 2-D conv filter responds to.

``keras_backend.make_grids`` (Keras 3, TensorFlow or torch backend) and
``torch_backend.make_grids`` (PyTorch) yield one ``core.GridResult`` (``node_id``, ``png``,
``tiles``) per conv layer; ``core`` holds the framework-neutral method and ``grid`` the PNG
tiling. Importing this package imports no framework.
"""
