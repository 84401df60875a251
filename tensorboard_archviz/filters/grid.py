"""Tiling filter images into one PNG grid (Pillow).

Tiles keep the fixed filter order (row-major), are separated by thin white margins, and share one
global mapping of the value range ``[lo, hi]`` to 0..255 (no per-tile contrast stretching, so
tiles can be compared). Greyscale stays greyscale (PNG mode "L"). Tiny images are upscaled with
nearest-neighbour to at least ``tile_min`` px; the PNG is capped at ``max_side`` px a side by
shrinking tiles (box filter) if needed. Tile ``k`` sits at
``x = margin + col * (tile_size + margin)``, ``y = margin + row * (tile_size + margin)``.
"""

from __future__ import annotations

import io
import math
from typing import Any, Dict, Sequence, Tuple

import numpy as np

BACKGROUND = 255


def to_uint8(images: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    """Map [lo, hi] linearly to 0..255 (clipped), the same mapping for every tile."""
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError("value_range must have lo < hi, got %r" % (tuple(value_range),))
    x = (np.asarray(images, np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def layout_for(n: int, h: int, w: int, margin: int = 2, tile_min: int = 64,
               max_side: int = 2048) -> Dict[str, int]:
    """Rows, columns and the (square) tile size of a grid of n images of h x w."""
    if n < 1:
        raise ValueError("a grid needs at least one image")
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    base = max(h, w)
    tile = base * max(1, int(math.ceil(tile_min / base)))
    fit = (max_side - margin) // max(cols, rows) - margin
    if tile > fit:
        # First drop upscaling steps, then shrink below the native size if still too big.
        up = max(1, fit // base)
        tile = base * up if base * up <= fit else max(1, fit)
    return {"rows": rows, "cols": cols, "tile_size": int(tile), "margin": int(margin)}


def encode_grid(images: np.ndarray, value_range: Sequence[float], margin: int = 2,
                tile_min: int = 64, max_side: int = 2048) -> Tuple[bytes, Dict[str, Any]]:
    """PNG bytes of the grid of ``images`` (N, H, W, C) and its layout (rows, cols, tile_size,
    margin, channels, width, height)."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError("images must be (N, H, W, C), got shape %r" % (images.shape,))
    n, h, w, c = images.shape
    if c == 3:
        mode = "RGB"
    else:
        mode = "L"
        if c != 1:
            images = images.mean(axis=-1, keepdims=True)   # 2 or 4+ channels: show the mean
    u8 = to_uint8(images, value_range)
    lay = layout_for(n, h, w, margin, tile_min, max_side)
    tile, rows, cols = lay["tile_size"], lay["rows"], lay["cols"]
    width = cols * (tile + margin) + margin
    height = rows * (tile + margin) + margin
    canvas = Image.new(mode, (width, height), BACKGROUND if mode == "L" else (BACKGROUND,) * 3)
    # Size of the image inside its tile (aspect kept, centred).
    f = tile / float(max(h, w))
    th, tw = max(1, int(round(h * f))), max(1, int(round(w * f)))
    resample = Image.NEAREST if f >= 1 else Image.BOX
    for k in range(n):
        arr = u8[k, :, :, 0] if mode == "L" else u8[k]
        im = Image.fromarray(np.ascontiguousarray(arr), mode)
        if (th, tw) != (h, w):
            im = im.resize((tw, th), resample)
        r, col = divmod(k, cols)
        x0 = margin + col * (tile + margin) + (tile - tw) // 2
        y0 = margin + r * (tile + margin) + (tile - th) // 2
        canvas.paste(im, (x0, y0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False)
    lay.update({"channels": 3 if mode == "RGB" else 1, "width": width, "height": height})
    return buf.getvalue(), lay


def decode_tile(png: bytes, layout: Dict[str, Any], k: int) -> np.ndarray:
    """The pixels of tile k (row-major) cut back out of a grid PNG (for tests and tools)."""
    from PIL import Image

    im = np.asarray(Image.open(io.BytesIO(png)))
    tile, margin, cols = layout["tile_size"], layout["margin"], layout["cols"]
    r, c = divmod(k, cols)
    y0 = margin + r * (tile + margin)
    x0 = margin + c * (tile + margin)
    return im[y0:y0 + tile, x0:x0 + tile]
