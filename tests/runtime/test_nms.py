"""box_iou, nms and batched_nms against slow pure-Python references, on random and adversarial
sets, in float32 and float64; malformed input raises ValueError naming the box."""

import math

import numpy as np
import pytest

from edgecnn.runtime.detect import (
    batched_nms,
    box_area,
    box_iou,
    cxcywh_to_xyxy,
    decode_deltas,
    nms,
    to_xyxy,
    xywh_to_xyxy,
)

# ---- references: the definitions, one pair at a time ----------------------------------------------


def ref_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def scalars(boxes):
    """Boxes as Python floats (float64 arithmetic), or as NumPy float32 scalars for float32 boxes, so
    the reference computes in the same precision as the code under test."""
    boxes = np.asarray(boxes)
    to = np.float32 if boxes.dtype == np.float32 else float
    return [[to(v) for v in b] for b in boxes]


def ref_nms(boxes, scores, thr, classes=None, limit=None) -> list[int]:
    boxes = scalars(boxes)
    order = sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), i))
    keep: list[int] = []
    for i in order:
        if len(keep) == limit:  # greedy: the first ``limit`` kept do not depend on what comes after
            break
        if all(ref_iou(boxes[i], boxes[j]) <= thr or (classes is not None and classes[i] != classes[j])
               for j in keep):
            keep.append(i)
    return keep


def random_boxes(rng, n, spread=100.0, max_size=40.0, decimals=None):
    xy = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(0, max_size, (n, 2))
    b = np.concatenate([xy, xy + wh], 1)
    return b.round(decimals) if decimals is not None else b


# ---- box_iou ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_iou_matches_reference_on_random_boxes(dtype):
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 30).astype(dtype), random_boxes(rng, 20).astype(dtype)
    got = box_iou(a, b)
    assert got.shape == (30, 20) and got.dtype == dtype
    want = np.array([[ref_iou(x, y) for y in scalars(b)] for x in scalars(a)], dtype)
    np.testing.assert_array_equal(got, want)
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]])).tolist() == [[1 / 7]]  # ints: float64


def test_box_iou_special_cases():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [10, 0, 20, 10], [5, 5, 5, 5], [5, 5, 5, 5]], np.float32)
    iou = box_iou(boxes, boxes)
    assert iou[0, 1] == 1.0  # identical
    assert iou[0, 2] == 0.0  # touching edges share no area
    assert iou[3, 4] == 0.0  # two zero-area boxes: union 0 -> 0, not NaN
    assert iou[0, 3] == 0.0  # a point inside a box
    assert box_iou(np.zeros((0, 4)), boxes).shape == (0, 5)
    np.testing.assert_array_equal(box_area(boxes), [100, 100, 100, 0, 0])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 5)), r"boxes1 must be \(N, 4\) xyxy, got shape \(3, 5\)"),
    (np.zeros(4), r"boxes1 must be \(N, 4\) xyxy, got shape \(4,\)"),
    (np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]]), r"boxes1\[1\] = \[0.0, nan, 1.0, 1.0\] is not finite"),
    (np.array([[0, 0, 1, np.inf]]), r"boxes1\[0\] = \[0.0, 0.0, 1.0, inf\] is not finite"),
    (np.array([[5, 0, 1, 1]]), r"boxes1\[0\] = \[5.0, 0.0, 1.0, 1.0\] has x2 < x1 or y2 < y1; expected xyxy"),
    (np.array([["a", "b", "c", "d"]]), r"boxes1 must be numeric, got dtype <U1"),
])
def test_box_iou_rejects_malformed_boxes(bad, message):
    with pytest.raises(ValueError, match=message):
        box_iou(bad, np.zeros((1, 4)))


# ---- nms / batched_nms -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nms_matches_reference_on_random_sets(seed, thr, dtype):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 120))
    # integer coordinates and few distinct scores make exact IoU ties and score ties common
    boxes = random_boxes(rng, n, spread=30, max_size=20, decimals=0).astype(dtype)
    scores = rng.integers(0, 5, n) / 4
    assert nms(boxes, scores, thr).tolist() == ref_nms(boxes, scores, thr)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_nms_matches_reference(seed, dtype):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(0, 150))
    boxes = random_boxes(rng, n, spread=40, max_size=25, decimals=1).astype(dtype)
    scores = rng.random(n).astype(np.float32)
    classes = rng.integers(0, 4, n)
    want = ref_nms(boxes, scores, 0.5, classes.tolist())
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == want
    assert batched_nms(boxes, scores, classes, 0.5, max_output=300).tolist() == want[:300]
    assert batched_nms(boxes, scores, classes, 0.5, max_output=100).tolist() == want[:100]


def test_batched_nms_equals_per_class_nms_merged_by_score():
    rng = np.random.default_rng(7)
    boxes = random_boxes(rng, 200, spread=50)
    scores, classes = rng.random(200), rng.integers(0, 5, 200)
    per_class = np.concatenate([np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], 0.45)]
                                for c in range(5)])
    merged = per_class[np.argsort(-scores[per_class], kind="stable")]
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, 0.45), merged)


ADVERSARIAL = {
    "no boxes": ([], []),
    "one box": ([[0, 0, 1, 1]], [0.5]),
    "identical boxes, tied scores": ([[0, 0, 10, 10]] * 5, [0.5] * 5),
    "identical boxes, distinct scores": ([[0, 0, 10, 10]] * 4, [0.1, 0.9, 0.5, 0.7]),
    "zero-area boxes": ([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 0], [0, 0, 10, 10]], [0.9, 0.8, 0.7, 0.6]),
    "touching boxes": ([[0, 0, 10, 10], [10, 0, 20, 10], [0, 10, 10, 20], [10, 10, 20, 20]], [0.9, 0.8, 0.7, 0.6]),
    # IoU exactly 0.5 (inter 8, union 16): the threshold keeps both; just above it drops one
    "IoU exactly at the threshold": ([[0, 0, 4, 4], [0, 0, 4, 2]], [0.9, 0.8]),
    "chain": ([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], [0.9, 0.8, 0.7]),
    "ties across the whole set": ([[i, 0, i + 10, 10] for i in range(0, 40, 3)], [0.5] * 14),
    "negative coordinates": ([[-20, -20, -10, -10], [-19, -20, -9, -10], [-5, -5, 5, 5]], [0.3, 0.9, 0.5]),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
@pytest.mark.parametrize("thr", [0.0, 0.5, 1.0])
def test_nms_adversarial_sets(name, thr):
    boxes, scores = ADVERSARIAL[name]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32)
    got = nms(boxes, scores, thr)
    assert got.dtype == np.int64
    assert got.tolist() == ref_nms(boxes, scores, thr)
    classes = np.arange(len(boxes)) % 2
    assert batched_nms(boxes, scores, classes, thr).tolist() == ref_nms(boxes, scores, thr, classes.tolist())


def test_nms_threshold_edge_and_tie_order():
    boxes = np.array([[0, 0, 4, 4], [0, 0, 4, 2]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]  # IoU == thr: kept
    assert nms(boxes, np.array([0.9, 0.8]), 0.49).tolist() == [0]
    same = np.array([[0, 0, 10, 10]] * 3, np.float32)
    assert nms(same, np.array([0.5, 0.5, 0.5]), 0.5).tolist() == [0]  # ties: the lower index wins


def test_max_output_is_a_prefix():
    rng = np.random.default_rng(3)
    boxes, scores = random_boxes(rng, 500, spread=300), rng.random(500)
    full = nms(boxes, scores, 0.5)
    assert len(full) > 20
    np.testing.assert_array_equal(nms(boxes, scores, 0.5, max_output=20), full[:20])


@pytest.mark.parametrize("call, message", [
    (lambda: nms(np.zeros((2, 4)), np.zeros(3), 0.5), r"scores must be \(2,\) to match the boxes, got shape \(3,\)"),
    (lambda: nms(np.zeros((1, 4)), np.array([np.nan]), 0.5), r"scores\[0\] = nan is not finite"),
    (lambda: nms(np.array([[0, 0, np.nan, 1]]), np.ones(1), 0.5), r"boxes\[0\] = \[0.0, 0.0, nan, 1.0\] is not finite"),
    (lambda: nms(np.zeros((1, 4)), np.ones(1), 1.5), r"iou_threshold must be in \[0, 1\], got 1.5"),
    (lambda: nms(np.zeros((1, 4)), np.ones(1), 0.5, max_output=0), r"max_output must be >= 1, got 0"),
    (lambda: batched_nms(np.zeros((2, 4)), np.ones(2), np.array([0.5, 1.0]), 0.5),
     r"classes must be \(2,\) integers, got shape \(2,\) dtype float64"),
    (lambda: batched_nms(np.zeros((2, 4)), np.ones(2), np.array([0]), 0.5),
     r"classes must be \(2,\) integers, got shape \(1,\)"),
])
def test_nms_rejects_malformed_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- box formats --------------------------------------------------------------------------------


def test_box_format_conversions():
    xyxy = np.array([[10, 20, 30, 60]], np.float32)
    np.testing.assert_array_equal(cxcywh_to_xyxy([[20, 40, 20, 40]]), xyxy)
    np.testing.assert_array_equal(xywh_to_xyxy([[10, 20, 20, 40]]), xyxy)
    np.testing.assert_array_equal(to_xyxy(xyxy[None], "xyxy"), xyxy[None])


def test_decode_deltas_like_torchvision_boxcoder():
    anchors = np.array([[0, 0, 10, 20], [10, 10, 30, 30]], np.float32)
    np.testing.assert_allclose(decode_deltas(np.zeros((1, 2, 4)), anchors), anchors[None], atol=1e-6)
    # dx = 10 shifts by one anchor width (weight 10); dw = 5 * ln 2 doubles the width (weight 5)
    out = decode_deltas(np.array([[10, 0, 5 * math.log(2), 0]]), anchors[:1])
    np.testing.assert_allclose(out, [[5, 0, 25, 20]], atol=1e-5)
    # a wild regression is clamped, never inf
    assert np.isfinite(decode_deltas(np.array([[0, 0, 1e6, 1e6]]), anchors[:1])).all()
    with pytest.raises(ValueError, match="do not match"):
        decode_deltas(np.zeros((1, 3, 4)), anchors)


# ---- the blocked implementation: block edges, long suppression chains, many boxes ---------------


@pytest.mark.parametrize("block", [1, 3, 7, 64])
@pytest.mark.parametrize("seed", range(4))
def test_block_boundaries_do_not_change_the_result(monkeypatch, block, seed):
    from edgecnn.runtime import detect

    monkeypatch.setattr(detect, "_BLOCK", block)
    rng = np.random.default_rng(200 + seed)
    boxes = random_boxes(rng, 90, spread=30, max_size=20, decimals=1).astype(np.float32)
    scores, classes = rng.integers(0, 6, 90) / 5, rng.integers(0, 3, 90)
    assert nms(boxes, scores, 0.4).tolist() == ref_nms(boxes, scores, 0.4)
    assert batched_nms(boxes, scores, classes, 0.4).tolist() == ref_nms(boxes, scores, 0.4, classes.tolist())
    assert nms(boxes, scores, 0.4, max_output=5).tolist() == ref_nms(boxes, scores, 0.4)[:5]
    for limit in (2, 5, 50):  # one pass with a class mask (limit <= 4 blocks) or class by class
        want = ref_nms(boxes, scores, 0.4, classes.tolist())[:limit]
        assert batched_nms(boxes, scores, classes, 0.4, max_output=limit).tolist() == want


@pytest.mark.parametrize("rounds", [1, 3, 32])
def test_long_suppression_chain(monkeypatch, rounds):
    # each box overlaps only its neighbours (IoU 0.25): greedy keeps every other one, and the
    # fixed-point iteration settles a few boxes a round (past its rounds the row loop takes over)
    from edgecnn.runtime import detect

    monkeypatch.setattr(detect, "_ROUNDS", rounds)
    boxes = np.array([[6 * i, 0, 6 * i + 10, 10] for i in range(120)], np.float32)
    scores = np.linspace(1, 0.5, 120)
    assert nms(boxes, scores, 0.2).tolist() == list(range(0, 120, 2)) == ref_nms(boxes, scores, 0.2)
    classes = np.arange(120) // 7 % 2  # two chains interleaved in runs of 7
    assert batched_nms(boxes, scores, classes, 0.2).tolist() == ref_nms(boxes, scores, 0.2, classes.tolist())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_boxes_across_blocks(dtype):
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, 700, spread=200, max_size=40).astype(dtype)
    scores, classes = rng.random(700), rng.integers(0, 3, 700)
    assert nms(boxes, scores, 0.5).tolist() == ref_nms(boxes, scores, 0.5)
    want = ref_nms(boxes, scores, 0.5, classes.tolist())
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == want
    assert batched_nms(boxes, scores, classes, 0.5, max_output=300).tolist() == want[:300]
    assert batched_nms(boxes, scores, classes, 0.5, max_output=100).tolist() == want[:100]
