"""Detection post-processing in NumPy: box formats and decoding, IoU, NMS, and a detector's raw
outputs -> per-image detections in original-image pixels.

Conventions (torchvision ``ops/boxes.py``): boxes are ``(N, 4)`` float ``xyxy`` with
``x1 <= x2`` and ``y1 <= y2``, computed in their own precision (float32 stays float32, as a graph
emits it; float64 stays float64; integers become float64). IoU of two boxes whose union is empty
(both zero-area) is 0. NMS drops a box whose IoU with a kept, higher-scoring box is *greater than*
the threshold (a pair exactly at the threshold both stay); equal scores keep the lower index
first. Malformed boxes raise ``ValueError`` naming the offending box.

Graph outputs read by ``postprocess`` (see ``edgecnn.contract.Detection``; the YOLO layouts are
decoded by ``edgecnn.runtime.yolo``):
  - host NMS: ``boxes`` (N, A, 4) in ``Detection.box_format``, ``scores`` (N, A, C) probabilities
    (class 0 background when ``background_class``); with box_format ``deltas`` also ``anchors``
    (A, 4) xyxy, the graph's prior boxes;
  - graph NMS: ``detections`` (N, K, 6) rows ``x1, y1, x2, y2, score, class``; rows with
    ``score <= 0`` are padding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.contract import ContractError
from edgecnn.contract import Detection as DetectionSpec
from edgecnn.runtime.classify import label_of
from edgecnn.runtime.image import Geometry
from edgecnn.runtime.ranking import candidates, score_order

BOX_FORMATS = ("xyxy", "cxcywh", "xywh", "deltas")
BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # torchvision's SSD/SSDLite BoxCoder
_DWH_CLAMP = math.log(1000.0 / 16)  # torchvision: keeps exp() of a wild regression finite
PRE_NMS_TOPK = 30_000  # candidates per image that reach NMS (Ultralytics' max_nms); bounds the cost


# ---- box formats -------------------------------------------------------------------------------

def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) center-x, center-y, width, height -> (..., 4) xyxy."""
    b = np.asarray(boxes)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) top-left x, y, width, height -> (..., 4) xyxy."""
    b = np.asarray(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def decode_deltas(deltas: np.ndarray, anchors: np.ndarray,
                  weights: tuple[float, float, float, float] = BOX_CODER_WEIGHTS) -> np.ndarray:
    """Regression deltas -> xyxy boxes, as torchvision's ``BoxCoder.decode_single``.

    deltas: (..., A, 4) ``dx, dy, dw, dh``; anchors: (A, 4) xyxy, same units as the result.
    ``cx = ax + dx / wx * aw``, ``w = aw * exp(min(dw / ww, log(1000/16)))`` (likewise y, h).
    """
    d = np.asarray(deltas, dtype=np.float32)
    a = np.asarray(anchors, dtype=np.float32)
    if a.ndim != 2 or a.shape[-1] != 4 or d.shape[-1] != 4 or d.shape[-2] != a.shape[0]:
        raise ValueError(f"deltas (..., A, 4) and anchors (A, 4) do not match: {d.shape} vs {a.shape}")
    aw, ah = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    acx, acy = a[:, 0] + 0.5 * aw, a[:, 1] + 0.5 * ah
    wx, wy, ww, wh = weights
    cx = acx + d[..., 0] / wx * aw
    cy = acy + d[..., 1] / wy * ah
    w = aw * np.exp(np.minimum(d[..., 2] / ww, _DWH_CLAMP))
    h = ah * np.exp(np.minimum(d[..., 3] / wh, _DWH_CLAMP))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def to_xyxy(boxes: np.ndarray, box_format: str, anchors: np.ndarray | None = None) -> np.ndarray:
    """(..., A, 4) boxes in ``box_format`` (one of ``BOX_FORMATS``) -> xyxy."""
    if box_format == "xyxy":
        return np.asarray(boxes)
    if box_format == "cxcywh":
        return cxcywh_to_xyxy(boxes)
    if box_format == "xywh":
        return xywh_to_xyxy(boxes)
    if box_format == "deltas":
        if anchors is None:
            raise ContractError("box_format 'deltas' needs an 'anchors' output (A, 4) in the graph")
        return decode_deltas(boxes, anchors)
    raise ContractError(f"unknown box_format '{box_format}'; expected one of {BOX_FORMATS}")


# ---- IoU and NMS -------------------------------------------------------------------------------

def _checked_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    """(N, 4) xyxy as float32/float64 (see the module docstring), or ValueError naming the first
    malformed box."""
    b = np.asarray(boxes)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must be (N, 4) xyxy, got shape {b.shape}")
    if b.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {b.dtype}")
    b = b.astype(_float_type(b.dtype), copy=False)
    bad = ~np.isfinite(b).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {b[i].tolist()} is not finite")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {b[i].tolist()} has x2 < x1 or y2 < y1; expected xyxy")
    return b


def _float_type(dtype: np.dtype) -> type:
    return np.float32 if dtype in (np.float16, np.float32) else np.float64


def _checked_scores(scores: np.ndarray, n: int, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores)
    if s.shape != (n,):
        raise ValueError(f"{name} must be ({n},) to match the boxes, got shape {s.shape}")
    s = s.astype(np.float64, copy=False)
    if not np.isfinite(s).all():
        i = int(np.argmax(~np.isfinite(s)))
        raise ValueError(f"{name}[{i}] = {s[i]} is not finite")
    return s


def _checked_threshold(iou_threshold: float) -> float:
    t = float(iou_threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    return t


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N,) areas."""
    b = _checked_boxes(boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _iou_matrix(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """(N, 4), (N,), (M, 4), (M,) -> (N, M) IoU; 0 where the union is empty. In place
    where possible: this is the inner loop of NMS."""
    inter = np.minimum(a[:, None, 2], b[None, :, 2])
    inter -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.maximum(inter, 0, out=inter)
    h = np.minimum(a[:, None, 3], b[None, :, 3])
    h -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(h, 0, out=h)
    inter *= h
    union = np.add(area_a[:, None], area_b[None, :], out=h)
    union -= inter
    # union 0 means two zero-area boxes, whose intersection is 0 too: leave those entries at 0
    return np.divide(inter, union, out=inter, where=union > 0)


def _areas(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _iou_pairs(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """IoU of a[k] with b[k]: (P, 4) x2 -> (P,); the same arithmetic as ``_iou_matrix``."""
    inter = (np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])).clip(min=0)
    inter *= (np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])).clip(min=0)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=inter, where=union > 0)


def _hits(a, area_a, ca, b, area_b, cb, thr: float, upper: bool = False) -> np.ndarray:
    """(len(a), len(b)) bool: a[i] would suppress b[j] (IoU > thr, and the same class when
    classes are given); ``upper`` keeps only i < j. Between many classes only the same-class pairs
    are computed: far fewer than all pairs, and found by sorting, not by comparing every pair."""
    if ca is None:
        hit = _iou_matrix(a, area_a, b, area_b) > thr
        return np.triu(hit, 1) if upper else hit
    order = np.argsort(cb, kind="stable")
    sb = cb[order]
    lo = np.searchsorted(sb, ca, side="left")
    n = np.searchsorted(sb, ca, side="right") - lo  # boxes of b in a[i]'s class
    total = int(n.sum())
    if 3 * total > len(a) * len(b):  # mostly one class: the full matrix is cheaper than gathering pairs
        hit = _iou_matrix(a, area_a, b, area_b) > thr
        hit &= ca[:, None] == cb[None, :]
        return np.triu(hit, 1) if upper else hit
    i = np.repeat(np.arange(len(a)), n)
    j = order[np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(total)]
    if upper:
        i, j = i[i < j], j[i < j]
    over = _iou_pairs(a[i], area_a[i], b[j], area_b[j]) > thr
    hit = np.zeros((len(a), len(b)), dtype=bool)
    hit[i[over], j[over]] = True
    return hit


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union.

    boxes1: (N, 4), boxes2: (M, 4), both xyxy with x1 <= x2, y1 <= y2 (any units).
    Returns (N, M) in the boxes' precision (float64 if either is); a pair whose union is zero
    (two zero-area boxes) has IoU 0.
    """
    a, b = _checked_boxes(boxes1, "boxes1"), _checked_boxes(boxes2, "boxes2")
    return _iou_matrix(a, _areas(a), b, _areas(b))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_output: int | None = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    boxes: (N, 4) xyxy; scores: (N,); a box is dropped when its IoU with a kept, higher-scoring
    box is > ``iou_threshold``. ``max_output`` stops after that many kept boxes (the result is
    the same prefix as without it, found sooner).
    Returns (K,) int64 indices into ``boxes``, by decreasing score (ties: lower index first).
    """
    b = _checked_boxes(boxes)
    return _greedy(b, _checked_scores(scores, len(b)), None, _checked_threshold(iou_threshold), max_output)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
                max_output: int | None = None) -> np.ndarray:
    """Class-aware NMS: as ``nms``, but a box only suppresses boxes of its own class.

    boxes: (N, 4) xyxy; scores: (N,); classes: (N,) integers. One pass over all classes sorted
    by score (equivalent to NMS per class, merged by score), so ``max_output`` stops it early.
    Returns (K,) int64 indices by decreasing score.
    """
    b = _checked_boxes(boxes)
    s = _checked_scores(scores, len(b))
    c = np.asarray(classes)
    if c.shape != (len(b),) or (c.size and c.dtype.kind not in "iu"):
        raise ValueError(f"classes must be ({len(b)},) integers, got shape {c.shape} dtype {c.dtype}")
    return _greedy(b, s, c, _checked_threshold(iou_threshold), max_output)


_BLOCK = 256  # boxes resolved at once: an IoU matrix of BLOCK x (kept + BLOCK) floats per step


def _greedy(b: np.ndarray, s: np.ndarray, c: np.ndarray | None, thr: float, max_output: int | None) -> np.ndarray:
    """Exact greedy NMS (class-aware when ``c`` is given) -> kept indices by decreasing score."""
    if max_output is not None and max_output < 1:
        raise ValueError(f"max_output must be >= 1, got {max_output}")
    limit = len(b) if max_output is None else max_output
    if c is not None and len(b) > _BLOCK and limit > 4 * _BLOCK:
        return _per_class(b, s, c, thr, limit)
    return _blocks(b, s, c, thr, limit)


def _per_class(b: np.ndarray, s: np.ndarray, c: np.ndarray, thr: float, limit: int) -> np.ndarray:
    """Many boxes and no small limit: each class on its own, merged by score. The one pass of
    ``_blocks`` would test every box against every box kept in any class (thousands, when many
    classes each keep their own); with a small limit it stops early and is much cheaper than
    this per-class loop (measured in benchmarks/nms_bench.py)."""
    c = np.asarray(c)
    order = np.lexsort((-s, c))  # by class, then score; stable, so ties keep the lower index first
    cuts = np.flatnonzero(np.diff(c[order])) + 1
    kept = [grp[_blocks(b[grp], s[grp], None, thr, limit)] for grp in np.split(order, cuts)]
    keep = np.concatenate(kept)
    return keep[np.lexsort((keep, -s[keep]))][:limit]


def _blocks(b: np.ndarray, s: np.ndarray, c: np.ndarray | None, thr: float, limit: int) -> np.ndarray:
    """Greedy NMS over ``b`` in the order of ``s`` (sorted lazily by ``ranking.score_order``, so what is
    never reached is never sorted) -> kept indices; see ``_greedy_chunks``."""
    c = None if c is None else np.asarray(c)
    chunks = ((order, b[order], None if c is None else c[order])
              for order in score_order(s, 4 * _BLOCK if limit < len(b) else len(b)))
    return _greedy_chunks(chunks, thr, limit, b.dtype, None if c is None else c.dtype)


def _greedy_chunks(chunks, thr: float, limit: int, box_dtype, cls_dtype) -> np.ndarray:
    """Greedy NMS vectorised by blocks of the score order: each block is first thinned by the
    boxes already kept, then resolved inside itself (``_resolve``). Python-level work is per
    block, not per box, and stops once ``limit`` boxes are kept, before asking ``chunks`` for more.

    chunks: an iterable of ``(ids, boxes (k, 4) xyxy, classes (k,) or None)``, together all the boxes
    by decreasing score (ties already broken); returns the kept ``ids`` in that order.

    A block of one class is resolved by its boxes alone, so its result is remembered by them: the
    classes of an anchor detector share their anchors' boxes, and where classes tie (a random-init SSD:
    every class the same 300 anchors) each resolves as the first did, without an IoU matrix."""
    kept: list[np.ndarray] = []  # ids
    kb, ka = np.empty((0, 4), box_dtype), np.empty(0, box_dtype)
    kc = None if cls_dtype is None else np.empty(0, dtype=cls_dtype)
    n_kept = 0
    resolved: dict[bytes, np.ndarray] = {}  # one class's block, boxes as bytes -> which it keeps
    for order, boxes, cls in chunks:
        ob = np.ascontiguousarray(boxes)
        area = _areas(ob)
        for lo, hi in _block_bounds(cls, len(ob)):
            pos = np.arange(lo, hi)
            if n_kept:
                cp = None if cls is None else cls[pos]
                pos = pos[~_hits(kb, ka, kc, ob[pos], area[pos], cp, thr).any(axis=0)]
            if not len(pos):
                continue
            cp = None if cls is None else cls[pos]
            key = None if cp is None or (cp != cp[0]).any() else ob[pos].tobytes()
            keep = resolved.get(key)
            if keep is None:
                keep = _resolve(_hits(ob[pos], area[pos], cp, ob[pos], area[pos], cp, thr, upper=True))
                if key is not None:
                    resolved[key] = keep
            pos = pos[keep][: limit - n_kept]
            kept.append(order[pos])
            n_kept += len(pos)
            if n_kept >= limit:
                return np.concatenate(kept)
            kb, ka = np.concatenate([kb, ob[pos]]), np.concatenate([ka, area[pos]])
            kc = None if cls is None else np.concatenate([kc, cls[pos]])
    return np.concatenate(kept) if kept else np.empty(0, dtype=np.int64)


_RUN = 32  # a run of at least this many boxes of one class in the score order gets blocks of its own


def _block_bounds(cls: np.ndarray | None, n: int):
    """(lo, hi) of the blocks of ``n`` boxes in score order: ``_BLOCK`` at a time, and a run of one
    class (``_RUN`` or more in a row) never shares a block with another class, so that its blocks
    resolve by their boxes alone (see ``_greedy_chunks``)."""
    bounds = [0, n]
    if cls is not None and n > _RUN:
        change = np.flatnonzero(cls[1:] != cls[:-1]) + 1
        starts, ends = np.concatenate([[0], change]), np.concatenate([change, [n]])
        long = ends - starts >= _RUN
        bounds = sorted({0, n, *starts[long].tolist(), *ends[long].tolist()})
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        for start in range(lo, hi, _BLOCK):
            yield start, min(start + _BLOCK, hi)


_ROUNDS = 32  # fixed-point rounds of _resolve before the row loop takes over


def _resolve(x: np.ndarray) -> np.ndarray:
    """Greedy NMS inside one block: x (m, m) bool, upper triangular, ``x[i, j]``: box i (higher
    score) would suppress box j. Returns the keep mask.

    Fixed-point iteration (Cluster-NMS, Zheng et al. 2021): keep j unless a *kept* i < j
    suppresses it. Box j's status is final once those of all i < j are, so the iteration reaches
    the greedy result; a crowd settles in a few rounds. Where a round changes nothing before box q,
    the boxes before q are final, and so is q (its new status came from them): later rounds leave
    them out, every round settles at least one more box, and a suppression chain (anchors of one
    class in a row, each overlapping the next) costs rounds of shrinking size. Past ``_ROUNDS``
    rounds the rest goes row by row, one vector operation per box."""
    xf = x.astype(np.float32)
    m = len(x)
    keep = np.ones(m, dtype=bool)
    done = 0  # keep[:done] is final
    for _ in range(_ROUNDS):
        new = (keep.astype(np.float32) @ xf[:, done:]) == 0
        changed = np.flatnonzero(new != keep[done:])
        keep[done:] = new
        if not len(changed):
            return keep
        done += int(changed[0]) + 1
    keep[done:] = ~x[:done, done:][keep[:done]].any(axis=0)  # what the final boxes suppress
    for i in range(done, m):
        if keep[i]:
            keep[i + 1:] &= ~x[i, i + 1:]
    return keep



# ---- raw outputs -> detections -------------------------------------------------------------------

@dataclass
class Detections:
    """One image's detections, best first. boxes: (K, 4) xyxy in original-image pixels (clipped
    to the image); scores: (K,); classes: (K,) int64 indices into the contract's labels. ``best``,
    only when there are none: ``(class, score)`` of the highest score the model gave an allowed,
    non-background class (below the threshold, or its box fell outside the image), None if it gave none."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    best: tuple[int, float] | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def to_records(self, labels: Sequence[str] | None = None) -> list[dict]:
        """``[{"class": int, "label": str, "score": float, "box": [x1, y1, x2, y2]}, ...]``."""
        boxes = np.round(self.boxes.astype(np.float64), 2).tolist()  # tolist(): Python floats, fast
        scores = np.round(self.scores.astype(np.float64), 6).tolist()
        return [{"class": c, "label": label_of(c, labels), "score": s, "box": box}
                for box, s, c in zip(boxes, scores, self.classes.tolist(), strict=True)]


def postprocess(outputs: Mapping[str, np.ndarray], geometries: Sequence[Geometry], spec: DetectionSpec,
                input_size: tuple[int, int], *, conf: float | None = None, iou: float | None = None,
                max_det: int | None = None, classes: Sequence[int] | None = None,
                pre_nms_topk: int = PRE_NMS_TOPK) -> list[Detections]:
    """A detector's outputs for a batch -> one ``Detections`` per image, in original coordinates.

    outputs: graph outputs by name (see the module docstring); geometries: one per image, from
    ``image.preprocess``; input_size: the network input (width, height), to scale normalized
    boxes. ``conf``/``iou``/``max_det`` default to the contract's; ``classes`` keeps only those
    class indices. Scores must be > ``conf`` to count.
    """
    conf = spec.conf if conf is None else conf
    iou = spec.iou if iou is None else iou
    max_det = spec.max_det if max_det is None else max_det
    allowed = None if classes is None else np.asarray(classes, dtype=np.int64)
    if spec.layout != "edgecnn":
        from edgecnn.runtime import yolo

        return yolo.postprocess(outputs, geometries, spec, input_size, conf=conf, iou=iou, max_det=max_det,
                                allowed=allowed, pre_nms_topk=pre_nms_topk)
    scale = np.asarray(input_size * 2, dtype=np.float32) if spec.normalized else None
    if spec.nms == "graph":
        dets = _output(outputs, "detections", 3)
        return [_graph_nms_image(d, g, conf, max_det, allowed, scale) for d, g in zip(dets, geometries, strict=True)]
    boxes, scores = _output(outputs, "boxes", 3), _output(outputs, "scores", 3)
    if boxes.shape[:2] != scores.shape[:2] or boxes.shape[2] != 4:
        raise ContractError(f"detector outputs boxes {boxes.shape} and scores {scores.shape} do not match "
                            "(expected (N, A, 4) and (N, A, C))")
    boxes = to_xyxy(boxes, spec.box_format, outputs.get("anchors"))
    first = 1 if spec.background_class else 0
    return [_host_nms_image(b, s, first, g, conf, iou, max_det, allowed, scale, pre_nms_topk,
                            spec.candidates_per_class) for b, s, g in zip(boxes, scores, geometries, strict=True)]


def _output(outputs: Mapping[str, np.ndarray], name: str, ndim: int) -> np.ndarray:
    if name not in outputs:
        raise ContractError(f"the detector has no output '{name}' (outputs: {', '.join(outputs)})")
    x = np.asarray(outputs[name])
    if x.ndim != ndim:
        raise ContractError(f"detector output '{name}' has shape {x.shape}; expected {ndim} dimensions")
    return x


def _host_nms_image(boxes, scores, first, geom, conf, iou, max_det, allowed, scale, pre_nms_topk,
                    per_class=None) -> Detections:
    """boxes (A, 4) xyxy network units; scores (A, C), columns before ``first`` are background;
    ``per_class``: only the best that many candidates of each class reach NMS (torchvision's SSD).

    The candidates reach NMS as a stream in NMS's order (``ranking.candidates``) and NMS stops at ``max_det``
    kept boxes, so at a mAP-style threshold (91 classes x 300 candidates) only the head is ever ranked
    and tested. Candidates whose box or score is not finite are dropped after the cuts (a wild
    regression must not kill the image)."""
    got: list[tuple[np.ndarray, ...]] = []  # (boxes, scores, classes) as NMS reads them

    def chunks():
        n = 0
        for a, cls, s in candidates(scores, first, conf, allowed, per_class, pre_nms_topk, 4 * _BLOCK):
            b, finite = _clean_boxes(boxes[a], scale)
            finite &= np.isfinite(s)
            if not finite.all():
                b, s, cls = b[finite], s[finite], cls[finite]
            got.append((b, s, cls))
            yield np.arange(n, n + len(s)), b, cls
            n += len(s)

    if max_det > 4 * _BLOCK:  # a high limit: all candidates at once, for _greedy's per-class path
        keep = None
        for _ in chunks():
            pass
    else:
        keep = _greedy_chunks(chunks(), iou, max_det, np.float32, np.int64)
    b, s, cls = (np.concatenate(x) for x in zip(*got, strict=True)) if got else \
        (np.empty((0, 4), np.float32), np.empty(0, scores.dtype), np.empty(0, np.int64))
    if keep is None:
        keep = _greedy(b, s, cls, iou, max_det)
    return _finish(b, s, cls, keep, geom, scores, first, allowed)


def _finish(b, s, cls, keep, geom, scores, first, allowed) -> Detections:
    out = to_detections(b[keep], s[keep], cls[keep], geom)
    if not len(out):
        out.best = _best_score(scores, first, allowed)
    return out


def _clean_boxes(boxes: np.ndarray, scale: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) xyxy -> a float32 copy (NMS in the graph's precision: half the traffic of float64) with
    swapped corners put in order and scaled to pixels, and which rows are finite."""
    b = np.array(boxes, dtype=np.float32)
    finite = np.isfinite(b).all(axis=1)
    for lo, hi in ((0, 2), (1, 3)):  # swapped corners fixed (only those not already in order are touched)
        bad = np.flatnonzero(~(b[:, lo] < b[:, hi]))
        b[bad, lo], b[bad, hi] = np.minimum(b[bad, lo], b[bad, hi]), np.maximum(b[bad, lo], b[bad, hi])
    if scale is not None:
        b *= scale
    return b, finite


def _best_score(scores: np.ndarray, first: int, allowed: np.ndarray | None) -> tuple[int, float] | None:
    """(A, C) scores -> (class, score) of the highest finite one in the allowed, non-background columns
    (one argmax over a copy: this runs on every image without detections, conf 0.25 on a photo of nothing)."""
    x = np.array(scores, dtype=np.result_type(scores.dtype, np.float32))  # a copy, C-contiguous
    off = np.zeros(x.shape[1], dtype=bool)
    off[:first] = True
    if allowed is not None:
        off[np.setdiff1d(np.arange(x.shape[1]), allowed)] = True
    x[:, off] = -np.inf
    i = int(np.argmax(x)) if x.size else 0
    if x.size and not np.isfinite(x.flat[i]):  # NaN (argmax's first pick) or +inf: only finite scores count
        x[~np.isfinite(x)] = -np.inf
        i = int(np.argmax(x))
    if not x.size or not np.isfinite(x.flat[i]):
        return None
    return i % x.shape[1], float(x.flat[i])


def _graph_nms_image(dets, geom, conf, max_det, allowed, scale) -> Detections:
    """dets (K, 6) rows x1 y1 x2 y2 score class, already suppressed by the graph."""
    if dets.shape[-1] != 6:
        raise ContractError(f"detector output 'detections' has rows of {dets.shape[-1]} values; expected 6 "
                            "(x1, y1, x2, y2, score, class)")
    d = dets[np.isfinite(dets).all(axis=1) & (dets[:, 4] > conf)].astype(np.float64)
    cls = d[:, 5].round().astype(np.int64)
    if allowed is not None:
        d, cls = d[np.isin(cls, allowed)], cls[np.isin(cls, allowed)]
    order = np.argsort(-d[:, 4], kind="stable")[:max_det]
    b = d[order, :4] * scale if scale is not None else d[order, :4]
    out = to_detections(b, d[order, 4], cls[order], geom)
    if not len(out):  # the best row the graph kept (rows scoring <= 0 are padding)
        rows = dets[np.isfinite(dets).all(axis=1) & (dets[:, 4] > 0)].astype(np.float64)
        rcls = rows[:, 5].round().astype(np.int64)
        if allowed is not None:
            rows, rcls = rows[np.isin(rcls, allowed)], rcls[np.isin(rcls, allowed)]
        if len(rows):
            i = int(np.argmax(rows[:, 4]))
            out.best = int(rcls[i]), float(rows[i, 4])
    return out


def to_detections(b: np.ndarray, s: np.ndarray, cls: np.ndarray, geom: Geometry) -> Detections:
    """Kept boxes (K, 4) xyxy in network pixels, scores, classes -> one image's ``Detections`` in
    original pixels, clipped; boxes left with no area (they lay in the letterbox padding or outside a
    center crop) are dropped."""
    b = geom.to_original(b)
    live = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return Detections(b[live], s[live].astype(np.float32), cls[live].astype(np.int64))


def agreement(ref: Sequence[Detections], got: Sequence[Detections], iou: float = 0.5,
              tie: float = 0.0) -> dict[str, float | int]:
    """How far two runs' final detections agree (FP32 vs INT8, PyTorch vs onnxruntime), image by image:
    each ``ref`` detection, by decreasing score, takes the best-IoU unmatched ``got`` one of its class
    (IoU >= ``iou``). An unmatched detection whose score is within ``tie`` of an unmatched one of its
    class in the other run, or of the lowest score kept in its image (the max-det or threshold cutoff),
    is a numerical tie (two near-equal boxes swapped places in NMS), counted apart as in the classifier
    gate.
    Returns ``f1`` = 2 x matched / (2 x matched + unmatched non-ties) (1.0 when nothing is left to
    compare), ``mean_iou`` and ``max_score_diff`` of the matched pairs, and the counts."""
    matched, n_ref, n_got, ties, ious, diffs = 0, 0, 0, 0, [], []
    for r, g in zip(ref, got, strict=True):
        n_ref, n_got = n_ref + len(r), n_got + len(g)
        free_r, free_g = np.ones(len(r), dtype=bool), np.ones(len(g), dtype=bool)
        if len(r) and len(g):
            m = box_iou(np.asarray(r.boxes, np.float64), np.asarray(g.boxes, np.float64))
            m[r.classes[:, None] != g.classes[None, :]] = 0
            for i in np.argsort(-r.scores, kind="stable"):
                j = int(np.argmax(np.where(free_g, m[i], -1)))
                if free_g[j] and m[i, j] >= iou:
                    free_r[i] = free_g[j] = False
                    ious.append(m[i, j])
                    diffs.append(abs(float(r.scores[i]) - float(g.scores[j])))
            matched += int((~free_g).sum())
        left_r = r.scores[free_r].astype(np.float64), r.classes[free_r]
        left_g = g.scores[free_g].astype(np.float64), g.classes[free_g]
        cutoff = min([float(x.scores.min()) for x in (r, g) if len(x)], default=0.0)
        for (mine, mine_cls), (other, other_cls) in ((left_r, left_g), (left_g, left_r)):
            near = np.abs(mine - cutoff) <= tie
            if len(other):  # a swap happens between two boxes of one class
                near |= ((np.abs(mine[:, None] - other[None, :]) <= tie) & (mine_cls[:, None] == other_cls)).any(1)
            ties += int(near.sum())
    unmatched = n_ref + n_got - 2 * matched - ties
    return {"f1": 1.0 if matched + unmatched == 0 else 2 * matched / (2 * matched + unmatched),
            "mean_iou": float(np.mean(ious)) if ious else 1.0, "max_score_diff": max(diffs, default=0.0),
            "matched": matched, "ref": n_ref, "got": n_got, "ties": ties}
