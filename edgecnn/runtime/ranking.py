"""An anchor detector's scores -> the candidates of its NMS, in NMS's order, and only as far as NMS reads.

A detector's raw output holds a score for every anchor x class (ssdlite320: 3,234 x 91); at a mAP-style
threshold most of them pass, but NMS stops at ``max_det`` kept boxes after reading a few hundred. So the
candidates are ranked lazily, in chunks (the best ``chunk``, then four times as many each time), and a
chunk is sorted only when NMS asks for it (``candidates``, ``score_order``).

Equal scores are common (a random-init SSD's flat 1/91, a quantized model's few levels), and both the order
of ties and the speed must not depend on them: each float16/float32 score becomes one uint64 key, its bits
made to sort as the reversed float in the high half and its position in the low half (``_descending_keys``).
All keys differ, so a partition selects exactly and fast (NumPy's partition slows down a hundredfold on many
equal values), and a key's low half says where it came from. Other dtypes (float64) keep their own
precision through ``score_order`` and ``_best_per_row_wide``. NumPy only.
"""

from __future__ import annotations

import functools
import sys

import numpy as np


def candidates(scores: np.ndarray, first: int, conf: float, allowed: np.ndarray | None, per_class: int | None,
               pre_nms_topk: int, chunk: int):
    """Anchor x class scores (A, C) -> chunks of candidates ``(anchor, class, score)`` in the order NMS
    reads them: scores > ``conf`` in the allowed, non-background columns; with ``per_class``, only each
    class's best ``per_class`` (ties: lower anchor first); at most ``pre_nms_topk`` in all, the first
    ones in NMS's order. The first chunk holds ``chunk`` candidates, each next one four times as many:
    NMS stops asking at ``max_det`` kept boxes, and what it never asks for is never sorted.

    NMS's order: decreasing score; equal scores class-major (class, then anchor) when the per-class cut
    applies (more than ``per_class`` candidates in all), else anchor-major (anchor, then class).

    The per-class cut, float16/float32 scores: where most of the map passes (a random-init SSD's flat
    1/91: every class full) one partition per class row first (``_best_per_row``); otherwise on the way,
    as the head is ranked: in NMS's order a class's candidates come best first, so a candidate is in its
    class's best ``per_class`` exactly when fewer than ``per_class`` of its class came before it."""
    n_a, n_c = scores.shape
    off = np.ones(n_c, dtype=bool)  # columns that never compete: background, not allowed
    if allowed is None:
        off[first:] = False
    else:
        off[allowed[(allowed >= first) & (allowed < n_c)]] = False
    values = np.ascontiguousarray(scores)
    mask = values > conf  # one comparison over all anchor x class scores, in the graph's own layout
    mask[:, off] = False
    n = np.count_nonzero(mask)
    cut = per_class is not None and n > per_class
    keyed = values.dtype in (np.float16, np.float32) and values.size < 2**32  # see _descending_keys
    on_the_way = cut and keyed and 4 * n <= values.size
    if not cut or on_the_way:
        idx = np.flatnonzero(mask)  # anchor-major: a * C + c
    else:  # class-major, position c * A + a: a class's scores are one row
        values = np.ascontiguousarray(scores.T)
        mask = values > conf
        mask[off] = False
        heavy = np.flatnonzero(np.count_nonzero(mask, axis=1) > per_class)
        if len(heavy):
            rows = slice(heavy[0], heavy[-1] + 1) if heavy[-1] - heavy[0] == len(heavy) - 1 else heavy
            best = _best_per_row if keyed else _best_per_row_wide
            mask[rows] = best(values[rows], mask[rows], per_class, conf)
        idx = np.flatnonzero(mask)
    v = values.ravel()[idx]
    if on_the_way:  # the keys' low halves class-major, for the order of ties
        a, c = np.divmod(idx, n_c)
        idx = c * n_a + a
    if keyed:
        order = _ranked(_descending_keys(v, idx, conf), chunk)
    else:
        order = (idx[i] for i in score_order(v, chunk))
    counts = np.zeros(n_c, dtype=np.int64)  # on the way: candidates of each class handed on so far
    left = pre_nms_topk
    for p in order:
        major, minor = np.divmod(p, n_a if cut else n_c)
        a, cls = (minor, major) if cut else (major, minor)
        if on_the_way:
            rank = _rank_within(cls) + counts[cls]
            counts += np.bincount(cls, minlength=n_c)
            a, cls = a[rank < per_class], cls[rank < per_class]
        a, cls = a[:left], cls[:left]
        left -= len(a)
        yield a, cls, scores[a, cls]
        if left <= 0:
            return


def _rank_within(c: np.ndarray) -> np.ndarray:
    """(n,) integers -> for each, how many equal ones come before it."""
    order = np.argsort(c, kind="stable")
    sc = c[order]
    rank = np.empty(len(c), dtype=np.int64)
    rank[order] = np.arange(len(c)) - np.searchsorted(sc, sc, side="left")
    return rank


_LOW32 = np.uint64(0xFFFFFFFF)


def _descending_keys(x: np.ndarray, low: np.ndarray, conf: float, passing: np.ndarray | None = None) -> np.ndarray:
    """float16/float32 scores ``x`` > ``conf`` and whole numbers ``low`` < 2**32 (broadcast to ``x``) ->
    uint64 keys of ``x``'s shape, ascending = decreasing score, then increasing ``low``: the score's bits,
    made to sort as the reversed float, in the high half, ``low`` in the low half. Where ``passing`` is
    False, the high half is all ones: after every score that passes.

    With distinct ``low`` the keys are distinct, and a partition of them exact and fast whatever the scores
    (NumPy's partition slows down a hundredfold on many equal values: a random-init SSD's flat 1/91, a
    quantized model's few levels, the scores below ``conf``)."""
    keys = np.empty(x.shape, dtype=np.uint64)
    halves = keys.view(np.uint32).reshape(*x.shape, 2)
    lo, hi = (halves[..., 0], halves[..., 1]) if sys.byteorder == "little" else (halves[..., 1], halves[..., 0])
    if conf >= 0:  # every passing score is > 0 (so not -0.0, not NaN): its bits already sort as the float
        np.invert(np.ascontiguousarray(x, dtype=np.float32).view(np.uint32), out=hi)
    else:
        f = np.array(x, dtype=np.float32) + np.float32(0)  # -0.0 -> 0.0: equal scores, equal keys
        i = f.view(np.int32)
        i ^= (i >> 31) & np.int32(0x7FFFFFFF)  # int32 that sorts as the float
        np.invert(i, out=i)
        np.bitwise_xor(i.view(np.uint32), np.uint32(0x80000000), out=hi)  # ... reversed, as unsigned
    if passing is not None:
        np.copyto(hi, np.uint32(0xFFFFFFFF), where=~passing)
    lo[...] = low
    return keys


def _best_per_row(x: np.ndarray, passing: np.ndarray, k: int, conf: float) -> np.ndarray:
    """(R, A) float16/float32 scores and which pass (``x > conf``), more than ``k`` in each row -> (R, A)
    bool: each row's best ``k`` passing, ties taken by lower column first (what a stable sort's first
    ``k`` are): the ``k`` smallest of the row's distinct keys (``_descending_keys``), one partition per row."""
    keys = _descending_keys(x, np.arange(x.shape[1], dtype=np.uint32), conf, passing)
    keys.partition(k - 1, axis=1)  # in place: the row's k smallest first, and their low halves say where they were
    best = np.zeros(x.shape, dtype=bool)
    best[np.arange(len(x))[:, None], (keys[:, :k] & _LOW32).astype(np.intp)] = True
    return best


def _ranked(keys: np.ndarray, first: int):
    """Distinct keys (``_descending_keys``) -> their low halves (positions) in the keys' order, in chunks:
    the smallest ``first``, then four times as many each time, a partition each: what is never asked for
    is never sorted."""
    take = first
    while len(keys) > 2 * take:  # partitioned in place: the caller's keys are this generator's
        keys.partition(take - 1)
        yield (np.sort(keys[:take]) & _LOW32).astype(np.int64)
        keys = keys[take:]
        take *= 4
    if len(keys):
        yield (np.sort(keys) & _LOW32).astype(np.int64)


def _best_per_row_wide(x: np.ndarray, passing: np.ndarray, k: int, conf: float) -> np.ndarray:
    """(R, A) scores a key cannot hold (float64) and which pass (``x > conf``), more than ``k`` in each
    row -> (R, A) bool: each row's best ``k`` passing, ties at the k-th score taken by lower column first.
    The k-th largest from one partition per row, with each score that does not pass lowered by a
    distinct whole number >= 2 (so below every passing one, and all different: a partition slows down on
    many equal values), then the ties at the k-th value settled row by row."""
    a = x.shape[1]
    if x.dtype.kind == "f" and np.isnan(x).any():  # NaN never passes, but a partition takes it as the largest
        x = np.where(np.isnan(x), -np.inf, x)
    y = np.multiply(~passing, _offsets(a), dtype=np.result_type(x.dtype, np.float32))
    np.subtract(x, y, out=y)
    kth = np.partition(y, a - k, axis=1)[:, a - k, None]  # each row's k-th largest
    top = y >= kth
    for r in np.flatnonzero(np.count_nonzero(top, axis=1) > k):  # more ties at the k-th than places left
        eq = np.flatnonzero(y[r] == kth[r])
        top[r, eq[k - (np.count_nonzero(top[r]) - len(eq)):]] = False  # keep the first ones
    return top


@functools.lru_cache(maxsize=8)
def _offsets(n: int) -> np.ndarray:
    """2, 3, ..., n + 1 in a fixed scattered order (float32, read-only): see ``_best_per_row_wide``."""
    out = (2.0 + np.random.default_rng(0).permutation(n)).astype(np.float32)
    out.flags.writeable = False
    return out


def score_order(s: np.ndarray, first: int):
    """Indices of ``s`` by decreasing score, ties by lower index (``argsort(-s, kind="stable")``),
    yielded in chunks: the best ``first``, then four times as many each step. NMS that stops at
    ``max_output`` kept boxes then sorts only the head it reads, not all candidates (a 27,000-candidate
    SSD at conf 0.001 keeps its 300 from the first few hundred). A chunk is every index scoring above
    the partition value and, of those scoring exactly that, the lowest indices up to the chunk's size:
    a stable sort puts equal scores in index order, so the chunks concatenate to the full stable sort
    even when thousands of scores are equal (a random-init SSD's flat 1/91)."""
    neg = -s
    rest = np.arange(len(s))
    take = first
    while len(rest) > 2 * take:
        nr = neg[rest]
        v = np.partition(nr, take - 1)[take - 1]
        head = nr < v
        ties = np.flatnonzero(nr == v)  # ascending positions in rest, so ascending indices
        head[ties[: take - np.count_nonzero(head)]] = True
        chunk, rest = rest[head], rest[~head]
        yield chunk[np.argsort(neg[chunk], kind="stable")]
        take *= 4
    if len(rest):
        yield rest[np.argsort(neg[rest], kind="stable")]
