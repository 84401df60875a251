"""While training runs, TensorBoard's legacy loader (which reads a run's event files in name
order and never goes back) keeps reading Keras' own scalars next to our event file, whichever
order the two callbacks are given in."""

import time

import numpy as np
import pytest

from conftest import get_json, run_tensorboard, wait_for_run


@pytest.mark.parametrize("archviz_first", [False, True], ids=["tensorboard_first",
                                                               "archviz_first"])
def test_live_legacy_loader_sees_keras_scalars_and_architecture(tmp_path, archviz_first):
    import keras

    from tensorboard_archviz import ArchVizCallback

    logdir = tmp_path / "logs"
    logdir.mkdir()

    class Pause(keras.callbacks.Callback):
        """Gives TensorBoard time to reload between epochs, as in a long training run."""

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(2.5)

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="dense")])
    model.compile("sgd", "mse")
    x = np.random.rand(32, 8).astype("float32")
    y = np.random.rand(32, 4).astype("float32")
    callbacks = [keras.callbacks.TensorBoard(log_dir=str(logdir)),
                 ArchVizCallback(log_dir=str(logdir)), Pause()]
    if archviz_first:
        callbacks[:2] = callbacks[1::-1]
    with run_tensorboard(logdir, load_fast=False) as url:
        model.fit(x, y, epochs=3, verbose=0, callbacks=callbacks)
        wait_for_run(url, "train")
        deadline = time.time() + 30
        steps = []
        while time.time() < deadline:
            status, scalars = get_json(url + "/data/plugin/scalars/scalars?run=train&tag=epoch_loss")
            if status == 200:
                steps = [row[1] for row in scalars]
                if steps == [0, 1, 2]:
                    break
            time.sleep(0.5)
        assert steps == [0, 1, 2], "Keras' epoch_loss steps read by the legacy loader: %r" % steps
