"""Classification metrics from top-k predictions: top-1, top-5, per-class accuracy, confusions. NumPy only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def classification_metrics(targets: Sequence[int], topk: Sequence[Sequence[int]], classes: Sequence[str],
                           confusions: int = 10) -> dict:
    """``targets[i]``: the true class of image i; ``topk[i]``: its predicted classes, best first (indices
    into ``classes``, predictions outside them count as wrong). top-5 is None with 5 classes or fewer
    (it would be 100% by construction). ``confusion[t][p]``: images of class t predicted p (top-1);
    ``confusions``: the largest off-diagonal cells, most frequent first."""
    k = len(classes)
    n = len(targets)
    t = np.asarray(targets, dtype=np.int64)
    top1 = np.asarray([p[0] if len(p) else -1 for p in topk], dtype=np.int64)
    in5 = np.asarray([target in list(p)[:5] for target, p in zip(targets, topk, strict=True)], dtype=bool)
    confusion = np.zeros((k, k), dtype=np.int64)
    valid = (top1 >= 0) & (top1 < k)
    np.add.at(confusion, (t[valid], top1[valid]), 1)
    hit = top1 == t
    per_class = {}
    for c, name in enumerate(classes):
        m = t == c
        total = int(m.sum())
        per_class[name] = {"n": total, "correct": int(hit[m].sum()), "acc": float(hit[m].mean()) if total else None}
    off = [(int(confusion[i, j]), i, j) for i in range(k) for j in range(k) if i != j and confusion[i, j]]
    off.sort(key=lambda c: (-c[0], c[1], c[2]))
    return {"images": n, "top1": float(hit.mean()) if n else None,
            "top5": (float(in5.mean()) if n else None) if k > 5 else None,
            "per_class": per_class, "confusion": confusion.tolist(),
            "confusions": [{"true": classes[i], "predicted": classes[j], "count": c} for c, i, j in off[:confusions]]}
