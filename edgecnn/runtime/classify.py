"""Classification post-processing: softmax and top-k with labels. NumPy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: ``exp(x - max)`` normalised, so logits of 1e4 do not overflow.
    Any shape; float32 in, float32 out (float64 stays float64)."""
    x = np.asarray(logits)
    x = x.astype(np.float32) if x.dtype.kind != "f" or x.dtype.itemsize < 4 else x
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def looks_like_probabilities(x: np.ndarray, atol: float = 1e-3) -> bool:
    """True when every row of ``x`` (N, C) lies in [0, 1] and sums to 1: the graph already ran
    softmax (some third-party exports do), so running it again would flatten the scores."""
    x = np.asarray(x, dtype=np.float64)
    return bool(x.size and x.min() >= 0 and x.max() <= 1 and np.allclose(x.sum(axis=-1), 1, atol=atol))


def topk(scores: np.ndarray, k: int, allowed: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best classes of each row.

    scores: (N, C). ``allowed``: only these class indices compete (``--classes``); scores keep
    their value (they are not renormalised over the allowed classes).
    Returns (indices (N, k') int64, values (N, k')) with k' = min(k, number of candidates), best
    first; equal scores rank the lower class index first, so the result is deterministic.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    candidates = np.arange(scores.shape[1]) if allowed is None else np.asarray(allowed, dtype=np.int64)
    sub = scores[:, candidates]
    order = np.argsort(-sub, axis=1, kind="stable")[:, :k]
    return candidates[order], np.take_along_axis(sub, order, axis=1)


def classify(output: np.ndarray, k: int = 5, labels: Sequence[str] | None = None, *, logits: bool = True,
             allowed: Sequence[int] | None = None) -> list[list[dict]]:
    """A classifier's output (N, C) (or (N, C, 1, 1)) -> per image, the top ``k`` as
    ``{"rank": 1.., "class": int, "label": str, "score": float}`` with softmax probabilities as
    scores, rounded to 6 decimals (``logits=False``: the output already holds probabilities)."""
    out = np.asarray(output).reshape(len(output), -1)
    probs = softmax(out) if logits else out.astype(np.float32, copy=False)
    idx, val = topk(probs, k, allowed)
    idx, val = idx.tolist(), np.round(val.astype(np.float64), 6).tolist()  # Python numbers, fast
    return [[{"rank": r + 1, "class": c, "label": label_of(c, labels), "score": s}
             for r, (c, s) in enumerate(zip(ci, si, strict=True))]
            for ci, si in zip(idx, val, strict=True)]


def label_of(index: int, labels: Sequence[str] | None) -> str:
    """The label of a class index, or the index as text when there are no (or too few) labels."""
    return labels[index] if labels is not None and 0 <= index < len(labels) else str(index)
