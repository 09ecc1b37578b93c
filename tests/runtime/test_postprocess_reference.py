"""``detect.postprocess`` (host NMS) against a slow pure-Python reference of what it promises: scores >
conf in the allowed, non-background classes; with ``candidates_per_class`` only each class's best (ties:
lower anchor first), then NMS in the order (score, then class-major position when cut, else anchor-major);
non-finite boxes dropped, swapped corners fixed. Random inputs with many exact score and IoU ties."""

import numpy as np
import pytest

from edgecnn.contract import Detection
from edgecnn.runtime import detect
from edgecnn.runtime.image import Geometry
from tests.runtime.test_nms import ref_nms

BIG = Geometry((10_000, 10_000), (1.0, 1.0), (0.0, 0.0))  # no clipping: the boxes come back as NMS left them


def ref_postprocess(boxes, scores, conf, iou, max_det, first, per_class, allowed):
    a_n, c_n = scores.shape
    cand = [(a, c) for a in range(a_n) for c in range(first, c_n)
            if scores[a, c] > conf and (allowed is None or c in allowed)]  # anchor-major
    if per_class is not None and len(cand) > per_class:
        by_class: dict[int, list[int]] = {}
        for a, c in cand:
            by_class.setdefault(c, []).append(a)
        cand = [(a, c) for c in sorted(by_class)
                for a in sorted(sorted(by_class[c], key=lambda a: (-float(scores[a, c]), a))[:per_class])]
    cand = [(a, c) for a, c in cand if np.isfinite(boxes[a]).all()]
    b = np.array([boxes[a] for a, _ in cand], np.float32).reshape(-1, 4)
    b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1)
    s = np.array([scores[a, c] for a, c in cand], np.float64)
    cls = [c for _, c in cand]
    keep = [i for i in ref_nms(b, s, iou, cls)[:max_det] if b[i, 2] > b[i, 0] and b[i, 3] > b[i, 1]]
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
    background = bool(seed % 3)
    allowed = None if seed % 5 else sorted({int(c) for c in rng.integers(0, scores.shape[1], 2)})
    spec = Detection(conf=conf, iou=iou, max_det=max_det, background_class=background,
                     candidates_per_class=per_class)
    (got,) = detect.postprocess({"boxes": boxes[None], "scores": scores[None]}, [BIG], spec, (64, 64),
                                classes=allowed)
    b, s, c = ref_postprocess(boxes, scores, conf, iou, max_det, int(background), per_class, allowed)
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

