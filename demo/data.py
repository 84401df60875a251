"""Offline data for the demos and tests: scikit-learn's handwritten digits, upsampled to 28x28.

``load_digits_28x28()`` needs no download: ``sklearn.datasets.load_digits`` ships 1,797 real 8x8
digit images inside scikit-learn. Each is resized (bicubic) to 20x20 and centred in a 28x28 frame,
like MNIST's layout, with values scaled to [0, 1]. ``load_dataset("fashion_mnist")`` is the online
alternative through ``keras.datasets`` (downloads on first use).

    python demo/data.py [--dataset digits|fashion_mnist]     # prints the shapes
"""

from __future__ import annotations

import argparse
from typing import Tuple

import numpy as np

Arrays = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
DATASETS = ("digits", "fashion_mnist")


def load_digits_28x28(test_fraction: float = 0.2, seed: int = 0) -> Arrays:
    """(x_train, y_train, x_test, y_test): float32 images (N, 28, 28, 1) in [0, 1], int64 labels.

    The split is a fixed seeded shuffle (``seed``), so every call returns the same arrays.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1, got %r" % (test_fraction,))
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0          # (1797, 8, 8), values 0..16
    out = np.zeros((len(images), 28, 28, 1), dtype=np.float32)
    for i, img in enumerate(images):
        big = Image.fromarray(img, mode="F").resize((20, 20), Image.BICUBIC)
        out[i, 4:24, 4:24, 0] = np.asarray(big, dtype=np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(out))
    n_test = int(round(len(out) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return out[train], labels[train], out[test], labels[test]


def load_fashion_mnist() -> Arrays:
    """Fashion-MNIST through ``keras.datasets`` (needs internet the first time)."""
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()

    def prep(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / 255.0)[..., None]

    return prep(x_train), y_train.astype(np.int64), prep(x_test), y_test.astype(np.int64)


def load_dataset(name: str = "digits") -> Arrays:
    """``"digits"`` (offline, the default) or ``"fashion_mnist"`` (online)."""
    if name == "digits":
        return load_digits_28x28()
    if name == "fashion_mnist":
        return load_fashion_mnist()
    raise ValueError("unknown dataset %r; expected one of %s" % (name, ", ".join(DATASETS)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    args = parser.parse_args(argv)
    x_train, y_train, x_test, y_test = load_dataset(args.dataset)
    print("%s: train %s %s, test %s %s, range [%.3f, %.3f], classes %d" % (
        args.dataset, x_train.shape, x_train.dtype, x_test.shape, y_test.dtype,
        float(x_train.min()), float(x_train.max()), len(np.unique(y_train))))


if __name__ == "__main__":
    main()
