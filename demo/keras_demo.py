"""Keras demo: trains the MLP and the LeNet briefly and writes them for TensorBoard's Arch Viz tab.

    python demo/keras_demo.py [--logdir logs] [--epochs 3] [--dataset digits|fashion_mnist]
    tensorboard --logdir logs        # then open the "Arch Viz" tab

Runs ``keras_mlp`` and ``keras_lenet``: each fit() uses ``ArchVizCallback`` together with
Keras' own ``keras.callbacks.TensorBoard``, both writing ``<logdir>/<name>/train``. The default
data set is scikit-learn's digits upsampled to 28x28 (no download). Filter grids for LeNet's conv
layers are written at the end of training when ``tensorboard_archviz.filters`` provides them
(``--filters no`` turns them off).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)                       # data.py, keras_models.py
sys.path.insert(1, os.path.dirname(HERE))      # the package, when not installed


def _filters_available() -> bool:
    try:
        import tensorboard_archviz.filters.keras_backend  # noqa: F401
    except ImportError:
        return False
    return True


def train(name, model, data, logdir, epochs, batch_size=64, filters=False, verbose=2):
    """fit() with ArchVizCallback + keras.callbacks.TensorBoard into <logdir>/<name>."""
    import keras

    from keras_models import compile_classifier
    from tensorboard_archviz import ArchVizCallback

    x_train, y_train, x_test, y_test = data
    run_dir = os.path.join(logdir, name)
    compile_classifier(model)
    callbacks = [
        ArchVizCallback(log_dir=run_dir, filters=filters),
        keras.callbacks.TensorBoard(log_dir=run_dir),
    ]
    start = time.time()
    model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=epochs,
              batch_size=batch_size, callbacks=callbacks, verbose=verbose)
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print("%s: %d params, test accuracy %.3f after %d epochs (%.1f s) -> %s/train"
          % (name, model.count_params(), acc, epochs, time.time() - start, run_dir))
    return model


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", choices=("digits", "fashion_mnist"), default="digits")
    parser.add_argument("--filters", choices=("auto", "yes", "no"), default="auto",
                        help="filter grids for LeNet's conv layers at the end of training")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    from data import load_dataset
    from keras_models import build_lenet, build_mlp

    data = load_dataset(args.dataset)
    filters = args.filters == "yes" or (args.filters == "auto" and _filters_available())
    train("keras_mlp", build_mlp(), data, args.logdir, args.epochs)
    train("keras_lenet", build_lenet(), data, args.logdir, args.epochs, filters=filters)
    print("done: tensorboard --logdir %s" % args.logdir)


if __name__ == "__main__":
    main()
