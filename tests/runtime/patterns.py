"""Synthetic images with known content for the preprocessing oracles (NumPy only, so the torchvision
fixture script in a scratch environment and the tests build the same pixels)."""

from __future__ import annotations

import numpy as np


def pattern(w: int, h: int) -> np.ndarray:
    """(h, w, 3) uint8: a diagonal ramp, a quadratic ripple and a checkerboard, so every filter differs."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 37 + y * 11) % 256
    g = (x * x + 3 * y * y) % 256
    b = ((x + y) % 2) * 255
    return np.stack([r, g, b], -1).astype(np.uint8)
