"""Helpers shared by the filter-maximisation tests (hand-set kernels, patch correlation)."""

from __future__ import annotations

import io
from typing import List

import numpy as np


def hand_kernels() -> List[np.ndarray]:
    """5x5 kernels: horizontal edge (bright above dark), vertical edge, centre-surround.

    All three are zero-sum, so a plain spatial mean of their (linear) output could not see them.
    """
    h = np.zeros((5, 5), np.float32)
    h[:2] = 1.0
    h[3:] = -1.0
    c = np.full((5, 5), -9.0 / 16.0, np.float32)
    c[1:4, 1:4] = 1.0
    return [h, h.T.copy(), c]


def ncc_max(img: np.ndarray, k: np.ndarray) -> float:
    """Max over all valid patches of the normalised cross-correlation of patch and kernel."""
    from numpy.lib.stride_tricks import sliding_window_view

    p = sliding_window_view(np.asarray(img, np.float64), k.shape).reshape(-1, k.size)
    p = p - p.mean(axis=1, keepdims=True)
    kk = (k - k.mean()).ravel().astype(np.float64)
    norm = np.linalg.norm(p, axis=1) * np.linalg.norm(kk)
    ok = norm > 1e-9
    return float(((p @ kk)[ok] / norm[ok]).max()) if ok.any() else 0.0


def noise_baseline(k: np.ndarray, size: int = 28, n: int = 30, seed: int = 0) -> float:
    """The best ncc_max that uniform random images reach (what "noise cannot pass" means)."""
    rng = np.random.RandomState(seed)
    return max(ncc_max(rng.rand(size, size), k) for _ in range(n))


def png_image(png: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(png))
    im.load()
    return im


THRESHOLD = 0.9
