"""``task: raw``: outputs reported for what they are, with no interpretation. NumPy only.

For a model whose outputs are neither class vectors nor a known detector layout (a segmentation or
text-probability map, a sequence, an embedding...), each image gets one record per graph output:
its name, shape (with the batch dim, 1), dtype and statistics; ``save`` writes the arrays themselves.
Nothing is turned into a class.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

STAT_KEYS = ("min", "max", "mean", "std")


def describe(name: str, x: np.ndarray) -> dict:
    """One image's output (its shape without the batch dim) -> ``{"output", "shape", "dtype", "min",
    "max", "mean", "std", "argmax"}``. Statistics of numeric arrays as float (rounded to 6
    significant digits), over finite values only (``nonfinite`` counts the others when there are
    any); ``argmax``: the index of the largest value within ``shape`` (leading 0 the batch); None
    where a statistic does not apply (an empty or non-numeric array)."""
    a = np.asarray(x)
    rec: dict = {"output": name, "shape": [1, *a.shape], "dtype": str(a.dtype)}
    rec.update(dict.fromkeys(STAT_KEYS), argmax=None)
    if a.dtype.kind not in "biuf" or a.size == 0:
        return rec
    v = a.astype(np.float64, copy=False)
    finite = np.isfinite(v)
    if not finite.all():
        rec["nonfinite"] = int((~finite).sum())
        v = np.where(finite, v, np.nan)
        if not finite.any():
            return rec
    stats = (np.nanmin(v), np.nanmax(v), np.nanmean(v), np.nanstd(v))
    rec.update({k: float(f"{s:.6g}") for k, s in zip(STAT_KEYS, stats, strict=True)})
    rec["argmax"] = [0, *(int(i) for i in np.unravel_index(int(np.nanargmax(v)), a.shape))]
    return rec


def records(outputs: Mapping[str, np.ndarray], n: int) -> list[list[dict]]:
    """A batch's outputs (each with leading dim ``n``) -> per image, one ``describe`` record per output."""
    return [[describe(name, np.asarray(x)[i]) for name, x in outputs.items()] for i in range(n)]


def per_image(outputs: Mapping[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """A batch's outputs -> per image, ``{name: array with batch dim 1}`` (views, no copies)."""
    return [{name: np.asarray(x)[i:i + 1] for name, x in outputs.items()} for i in range(n)]


def save(arrays: Mapping[str, np.ndarray], target: Path) -> Path:
    """One image's outputs -> ``target`` with suffix ``.npy`` (one output) or ``.npz`` (several, keyed by
    output name), written to a temporary file and renamed. Returns the path written."""
    from edgecnn.fileio import atomic_path  # only with --save

    one = len(arrays) == 1
    path = Path(target).with_suffix(".npy" if one else ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if one:
            np.save(f, next(iter(arrays.values())))
        else:
            np.savez(f, **arrays)
    return path
