"""Compare demo: runs whose architectures differ, for the Arch Viz tab's compare mode and timeline.

    python demo/compare_demo.py [--logdir logs] [--epochs 2]

Writes:
- ``finetune/train``: a classifier on top of a small convolutional base model that is frozen for
  the first ``--epochs`` epochs, then unfrozen (and recompiled) for ``--epochs`` more — the
  timeline shows "base_model unfrozen, trainable params ... → ...". It trains at chance
  accuracy (loss 2.30 throughout), and its layer signals (written by ``ArchVizCallback`` every
  epoch: weights, update ratios, gradients and activations on the first training batch) say why: "`base_model` did not change
  between steps 0 and 2 (frozen ...)" — a random, not pretrained, base — and "`head`: the output
  is nearly the same for every example and unit (...): the model's prediction barely depends on
  its input" (see the Layers × steps view and the findings).
- ``width_32/train`` and ``width_64_deep/train``: the same MLP family with a different width and
  one more hidden layer — compare them side by side.
The data is scikit-learn's digits upsampled to 28x28 (no download).
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))


def build_base():
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((28, 28, 1), name="base_input"),
        layers.Conv2D(16, 3, activation="relu", name="base_conv1"),
        layers.MaxPooling2D(2, name="base_pool1"),
        layers.Conv2D(32, 3, activation="relu", name="base_conv2"),
        layers.GlobalAveragePooling2D(name="base_gap"),
    ], name="base_model")


def build_finetune_model():
    import keras
    from keras import layers

    base = build_base()
    inputs = keras.Input((28, 28, 1), name="image")
    x = base(inputs)
    x = layers.Dropout(0.2, name="head_dropout")(x)
    outputs = layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="finetune"), base


def build_mlp(width: int, depth: int):
    import keras
    from keras import layers

    stack = [keras.Input((28, 28, 1), name="input_layer"), layers.Flatten(name="flatten")]
    for i in range(depth):
        stack.append(layers.Dense(width, activation="relu", name="dense" if i == 0 else
                                  "dense_%d" % i))
    stack.append(layers.Dense(10, activation="softmax", name="dense_out"))
    return keras.Sequential(stack, name="mlp_w%d_d%d" % (width, depth))


def run_finetune(logdir: str, data, epochs: int, verbose: int = 2):
    """Frozen base for `epochs` epochs, then unfrozen for `epochs` more, one ArchVizCallback."""
    import keras

    from tensorboard_archviz import ArchVizCallback

    x, y, xt, yt = data
    model, base = build_finetune_model()
    run_dir = os.path.join(logdir, "finetune")
    # layer signals every epoch: weights, update ratios, and gradients + activations on the
    # first training batch (held by the callback) so that the findings can say why it fails
    archviz = ArchVizCallback(log_dir=run_dir, layer_signals=["weights", "updates", "gradients",
                                                              "activations"])
    tensorboard = keras.callbacks.TensorBoard(log_dir=run_dir)
    base.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_data=(xt, yt), epochs=epochs, batch_size=64, verbose=verbose,
              callbacks=[archviz, tensorboard])
    base.trainable = True
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, validation_data=(xt, yt), initial_epoch=epochs, epochs=2 * epochs,
              batch_size=64, verbose=verbose, callbacks=[archviz, tensorboard])
    return model, archviz


def run_widths(logdir: str, data, epochs: int, verbose: int = 2):
    import keras

    from tensorboard_archviz import ArchVizCallback

    x, y, xt, yt = data
    models = {}
    for name, width, depth in (("width_32", 32, 1), ("width_64_deep", 64, 2)):
        model = build_mlp(width, depth)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        run_dir = os.path.join(logdir, name)
        model.fit(x, y, validation_data=(xt, yt), epochs=epochs, batch_size=64,
                  verbose=verbose, callbacks=[ArchVizCallback(log_dir=run_dir),
                                              keras.callbacks.TensorBoard(log_dir=run_dir)])
        models[name] = model
    return models


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    from data import load_digits_28x28

    data = load_digits_28x28()
    run_finetune(args.logdir, data, args.epochs)
    run_widths(args.logdir, data, args.epochs)
    print("done: tensorboard --logdir %s, then Arch Viz > Compare" % args.logdir)


if __name__ == "__main__":
    main()
