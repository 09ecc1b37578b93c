"""``detect.postprocess`` (host NMS) against a slow pure-Python reference of what it promises: scores >
conf in the allowed, non-background classes; with ``candidates_per_class`` only each class's best (ties:
lower anchor first), then NMS in the order (score, then class-major position when cut, else anchor-major);
at most ``pre_nms_topk`` candidates, the first in that order; non-finite boxes and scores dropped (after
the cuts), swapped corners fixed. Random inputs with many exact score and IoU ties, and SSD-shaped maps
(flat, peaked, few levels; float16/32/64) that take each of the fast paths."""

import numpy as np
import pytest

from edgecnn.contract import Detection
from edgecnn.runtime import detect
from edgecnn.runtime.image import Geometry
from tests.runtime.test_nms import ref_nms

BIG = Geometry((10_000, 10_000), (1.0, 1.0), (0.0, 0.0))  # no clipping: the boxes come back as NMS left them


def ref_postprocess(boxes, scores, conf, iou, max_det, first, per_class, allowed, pre_nms_topk=None):
    a_n, c_n = scores.shape
    cand = [(a, c) for a in range(a_n) for c in range(first, c_n)
            if scores[a, c] > conf and (allowed is None or c in allowed)]  # anchor-major
    if per_class is not None and len(cand) > per_class:
        by_class: dict[int, list[int]] = {}
        for a, c in cand:
            by_class.setdefault(c, []).append(a)
        cand = [(a, c) for c in sorted(by_class)
                for a in sorted(sorted(by_class[c], key=lambda a: (-float(scores[a, c]), a))[:per_class])]
    if pre_nms_topk is not None:  # the first ones in NMS's order: score, then the order above
        top = sorted(range(len(cand)), key=lambda i: (-float(scores[cand[i]]), i))[:pre_nms_topk]
        cand = [cand[i] for i in sorted(top)]
    cand = [(a, c) for a, c in cand if np.isfinite(boxes[a]).all() and np.isfinite(scores[a, c])]
    b = np.array([boxes[a] for a, _ in cand], np.float32).reshape(-1, 4)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1)
    s = np.array([scores[a, c] for a, c in cand], np.float64)
    cls = [c for _, c in cand]
    keep = [i for i in ref_nms(b, s, iou, cls, max_det) if b[i, 2] > b[i, 0] and b[i, 3] > b[i, 1]]
    return b[keep], s[keep], np.array(cls, np.int64)[keep]


def random_case(rng):
    a_n, c_n = int(rng.integers(1, 70)), int(rng.integers(1, 6))
    levels = int(rng.choice([2, 4, 10, 1000]))  # few levels: many exactly equal scores
    scores = (rng.integers(0, levels + 1, (a_n, c_n)) / levels).astype(np.float32)
    xy = rng.integers(0, 40, (a_n, 2))
    wh = rng.integers(0, 25, (a_n, 2))  # integer boxes: exact IoU ties, zero-area boxes
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    swap = rng.random(a_n) < 0.1
    boxes[swap] = boxes[swap][:, [2, 3, 0, 1]]
    boxes[rng.random(a_n) < 0.05, int(rng.integers(0, 4))] = np.inf  # a wild regression
    scores[rng.random((a_n, c_n)) < 0.03] = np.nan
    return boxes, scores


@pytest.mark.parametrize("block", [2, 256])
@pytest.mark.parametrize("seed", range(40))
def test_host_postprocess_matches_the_slow_reference(monkeypatch, seed, block):
    monkeypatch.setattr(detect, "_BLOCK", block)  # 2: the lazy score order and many blocks on small sets
    rng = np.random.default_rng(seed)
    boxes, scores = random_case(rng)
    conf, iou = float(rng.choice([0.0, 0.2, 0.5])), float(rng.choice([0.0, 0.3, 0.5, 0.7]))
    max_det, per_class = int(rng.choice([1, 3, 100])), [None, 1, 2, 5][seed % 4]
    topk = int(rng.choice([3, 8, 30_000]))
    background = bool(seed % 3)
    allowed = None if seed % 5 else sorted({int(c) for c in rng.integers(0, scores.shape[1], 2)})
    spec = Detection(conf=conf, iou=iou, max_det=max_det, background_class=background,
                     candidates_per_class=per_class)
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64),
                                classes=allowed, pre_nms_topk=topk)
    b, s, c = ref_postprocess(boxes, scores, conf, iou, max_det, int(background), per_class, allowed, topk)
    np.testing.assert_array_equal(got.boxes, b)
    np.testing.assert_array_equal(got.scores, s.astype(np.float32))
    np.testing.assert_array_equal(got.classes, c)


def test_per_class_cut_on_rows_of_equal_scores():
    # every score equal within a class: the cut keeps the first anchors, whatever the partition does
    scores = np.full((50, 3), 0.5, np.float32)
    scores[:, 2] = 0.0  # a column of zeros (what a quantized model leaves): below conf, never a candidate
    scores[7, 2] = 0.9
    boxes = np.array([[4 * i, 0, 4 * i + 3, 3] for i in range(50)], np.float32)  # no overlaps
    spec = Detection(conf=0.1, iou=0.5, max_det=100, candidates_per_class=4)
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64))
    assert got.classes.tolist() == [2, 0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(got.boxes[:, 0], [28, 0, 4, 8, 12, 0, 4, 8, 12])


@pytest.mark.parametrize("seed", range(6))
def test_empty_result_names_the_best_allowed_score(seed):
    rng = np.random.default_rng(seed)
    boxes, scores = random_case(rng)
    background = bool(seed % 2)
    allowed = None if seed < 3 else [int(c) for c in rng.integers(0, scores.shape[1], 2)]
    spec = Detection(conf=1.0, background_class=background)  # nothing passes
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64),
                                classes=allowed)
    cols = [c for c in range(int(background), scores.shape[1]) if allowed is None or c in allowed]
    finite = [(float(scores[a, c]), -a, -c) for a in range(len(scores)) for c in cols if np.isfinite(scores[a, c])]
    assert len(got) == 0
    if not finite:
        assert got.best is None
    else:
        s, _, neg_c = max(finite)  # the first (lowest anchor, then class) of the highest score
        assert got.best == (-neg_c, s)



# ---- SSD-shaped maps: every class of an anchor shares its box -------------------------------------------


def ssd_case(rng, kind, dtype, n_side=5, n_cls=10):
    """Anchors on a grid (3 sizes per cell, integer corners: exact IoU ties) and (A, C) scores, class 0
    background. Most of the map passes its conf (the per-class cut by row) in ``flat``, every score equal
    (a random-init SSD), and ``noisy``, all different; a tenth of it (the cut on the way) in ``peaked``, a
    few objects lighting up their class on a low background (a trained SSD), and ``levels``, few distinct
    values (a quantized one)."""
    cells = [(x, y) for y in range(n_side) for x in range(n_side)]
    boxes = np.array([[8 + 8 * x - s, 8 + 8 * y - s, 12 + 8 * x + s, 12 + 8 * y + s] for x, y in cells
                      for s in (0, 2, 5)], np.float32)
    a_n = len(boxes)
    if kind == "flat":
        scores = np.full((a_n, n_cls), 1 / n_cls)
    elif kind == "noisy":
        scores = rng.random((a_n, n_cls))
    elif kind == "peaked":
        scores = rng.random((a_n, n_cls)) * 0.02
        for _ in range(4):
            hot = rng.integers(0, a_n, 12)
            scores[hot, int(rng.integers(1, n_cls))] += rng.random(12) * 0.9
    else:
        scores = np.where(rng.random((a_n, n_cls)) < 0.15, rng.integers(1, 4, (a_n, n_cls)) / 8, 0)
    return boxes, scores.astype(dtype)


CONF = {"flat": 0.01, "noisy": 0.3, "peaked": 0.018, "levels": 0.1}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("kind", list(CONF))
@pytest.mark.parametrize("seed", range(3))
def test_ssd_shaped_maps_match_the_slow_reference(monkeypatch, kind, dtype, seed):
    # small blocks and runs: many blocks, one-class runs, results reused between classes that tie
    monkeypatch.setattr(detect, "_BLOCK", [8, 16, 256][seed])
    monkeypatch.setattr(detect, "_RUN", [4, 8, 32][seed])
    rng = np.random.default_rng(seed)
    boxes, scores = ssd_case(rng, kind, dtype)
    conf = CONF[kind]
    for per_class, max_det, topk in ((20, 25, 30_000), (20, 25, 50), (None, 25, 30_000), (20, 120, 30_000),
                                     (5, 7, 30_000)):
        spec = Detection(conf=conf, iou=0.45, max_det=max_det, background_class=True, candidates_per_class=per_class)
        (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64),
                                    pre_nms_topk=topk)
        b, s, c = ref_postprocess(boxes, scores, conf, 0.45, max_det, 1, per_class, None, topk)
        np.testing.assert_array_equal(got.boxes, b)
        np.testing.assert_array_equal(got.scores, s.astype(np.float32))
        np.testing.assert_array_equal(got.classes, c)


def test_flat_map_classes_tie_class_major_and_keep_the_same_anchors():
    # a random-init SSD: every score equal; each class keeps what the first kept, in class order
    rng = np.random.default_rng(0)
    boxes, scores = ssd_case(rng, "flat", np.float32)
    spec = Detection(conf=0.01, iou=0.45, max_det=1000, background_class=True, candidates_per_class=20)
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64))
    per_class = [got.boxes[got.classes == c] for c in range(1, 10)]
    assert got.classes.tolist() == sorted(got.classes.tolist())  # class-major
    assert len(per_class[0]) > 1 and all(np.array_equal(b, per_class[0]) for b in per_class)
    (capped,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG],
                                   Detection(conf=0.01, iou=0.45, max_det=len(per_class[0]) + 1,
                                             background_class=True, candidates_per_class=20), (64, 64))
    assert capped.classes.tolist() == [1] * len(per_class[0]) + [2]  # max_det: a prefix of the same order


@pytest.mark.parametrize("per_class", [None, 3])
def test_negative_scores_and_signed_zeros(per_class):
    # raw logits as scores with conf < 0: the keys order negative floats, and -0.0 ties with 0.0
    boxes = np.array([[10 * i, 0, 10 * i + 8, 8] for i in range(8)], np.float32)  # no overlaps
    scores = np.array([[-0.25, 0.0], [-0.0, -0.75], [0.5, -0.25], [0.0, -0.0],
                       [-0.75, -1.0], [-0.25, 0.5], [-0.0, -0.5], [1.0, -0.25]], np.float32)
    spec = Detection(conf=-0.6, iou=0.5, max_det=100, candidates_per_class=per_class)
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64))
    b, s, c = ref_postprocess(boxes, scores, -0.6, 0.5, 100, 0, per_class, None)
    np.testing.assert_array_equal(got.boxes, b)
    np.testing.assert_array_equal(got.classes, c)
    assert got.scores[:3].tolist() == [1.0, 0.5, 0.5]


def test_a_block_of_many_classes_is_not_taken_for_one_class_with_the_same_boxes(monkeypatch):
    # the boxes of a resolved one-class block come again, split between two classes: resolved anew
    monkeypatch.setattr(detect, "_BLOCK", 8)
    monkeypatch.setattr(detect, "_RUN", 4)
    boxes = np.array([[i, 0, 20 + i, 20] for i in range(8)], np.float32)  # each overlaps the next, IoU > 0.5
    scores = np.zeros((8, 4), np.float32)
    scores[:, 1] = 0.9  # class 1 first: one run, one block
    scores[np.arange(8), 2 + np.arange(8) % 2] = 0.5  # then the same anchors, classes 2, 3, 2, 3, ...
    spec = Detection(conf=0.1, iou=0.5, max_det=100)
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64))
    b, s, c = ref_postprocess(boxes, scores, 0.1, 0.5, 100, 0, None, None)
    np.testing.assert_array_equal(got.boxes, b)
    assert got.classes.tolist() == c.tolist() == [1, 1, 2, 3]  # class 1 keeps anchors 0 and 7 (the
    assert got.boxes[:, 0].tolist() == [0, 7, 0, 1]  # block as one class), classes 2 and 3 anchors 0 and 1
