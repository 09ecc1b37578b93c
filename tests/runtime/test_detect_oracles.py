"""Detection post-processing against values computed by hand, written to kill the mutants of
edgecnn/runtime/detect.py that the first mutation run found alive (tests/README.md): box decoding in
y and h, areas off the origin, IoU of sub-pixel boxes, the graph-NMS path (order, strict threshold,
normalised scale, max_det), swapped corners, boxes clipped to nothing, the JSON rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgecnn.contract import ContractError, Detection
from edgecnn.runtime import detect
from edgecnn.runtime.detect import box_area, decode_deltas, nms
from edgecnn.runtime.image import Geometry

IDENTITY = Geometry((64, 64), (1.0, 1.0), (0.0, 0.0))


def test_decode_deltas_every_coordinate_by_hand():
    # torchvision BoxCoder, weights (10, 10, 5, 5): cx = acx + dx/10*aw, w = aw*exp(dw/5), likewise y, h
    anchors = np.array([[0, 0, 10, 20], [5, 5, 9, 7]], np.float64)
    deltas = np.array([[10, 20, 5 * math.log(2), 5 * math.log(3)],  # anchor 0: cx 5+10, cy 10+40, w 20, h 60
                       [-10, 0, 0, -5 * math.log(2)]])  # anchor 1: cx 7-4, cy 6, w 4, h 1
    out = decode_deltas(deltas, anchors)
    np.testing.assert_allclose(out, [[5, 20, 25, 80], [1, 5.5, 5, 6.5]], rtol=1e-6, atol=1e-5)
    assert out.dtype == np.float32  # what onnxruntime hands over, whatever the caller passed
    with pytest.raises(ValueError, match="do not match"):
        decode_deltas(np.zeros((1, 2, 4)), np.zeros((2, 5)))


def test_box_area_off_the_origin():
    np.testing.assert_array_equal(box_area(np.array([[1, 2, 4, 7], [0, 3, 2, 3]], np.float32)), [15, 0])


def test_nms_of_sub_pixel_boxes():
    """Unions below one pixel: identical boxes still have IoU 1; the third overlaps 0.16/0.34 = 0.47."""
    boxes = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.1, 0.1, 0.6, 0.6]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.5).tolist() == [0, 2]
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.45).tolist() == [0]


def test_graph_nms_rows_by_hand():
    rows = np.array([[[0.1, 0.1, 0.5, 0.5, 0.30, 1],  # exactly conf: out (scores must be > conf)
                      [0.0, 0.5, 0.25, 1.0, 0.60, 2.0000001],  # class index rounds to 2
                      [0.5, 0.0, 1.0, 0.5, 0.90, 0],
                      [0.2, 0.2, 0.4, 0.4, 0.45, 3]]], np.float32)
    spec = Detection(nms="graph", normalized=True)
    geom = Geometry((64, 32), (1.0, 1.0), (0.0, 0.0))
    (d,) = detect.postprocess({"detections": rows}, [geom], spec, (64, 32), conf=0.3)
    assert d.scores.tolist() == pytest.approx([0.9, 0.6, 0.45])  # by decreasing score, the score column
    assert d.classes.tolist() == [0, 2, 3]
    np.testing.assert_allclose(d.boxes, [[32, 0, 64, 16], [0, 16, 16, 32], [12.8, 6.4, 25.6, 12.8]], rtol=1e-5)
    (d,) = detect.postprocess({"detections": rows}, [geom], spec, (64, 32), conf=0.3, max_det=2)
    assert d.scores.tolist() == pytest.approx([0.9, 0.6])


def test_host_threshold_is_strict_and_swapped_corners_are_fixed():
    outs = {"boxes": np.array([[[30, 5, 10, 20], [0, 0, 8, 8]]], np.float32),  # box 0: x and y swapped
            "scores": np.array([[[0.9], [0.25]]], np.float32)}  # box 1 exactly at the default conf 0.25
    (d,) = detect.postprocess(outs, [IDENTITY], Detection(), (64, 64))
    np.testing.assert_array_equal(d.boxes, [[10, 5, 30, 20]])


def test_boxes_clipped_to_nothing_vanish_and_low_boxes_stay():
    outs = {"boxes": np.array([[[-10, 10, -5, 30], [10, -10, 30, -5], [5, 40, 10, 50]]], np.float32),
            "scores": np.array([[[0.9], [0.8], [0.7]]], np.float32)}
    (d,) = detect.postprocess(outs, [IDENTITY], Detection(), (64, 64))
    np.testing.assert_array_equal(d.boxes, [[5, 40, 10, 50]])  # zero width, zero height, a box below y = x


def test_records_round_boxes_to_2_and_scores_to_6_decimals():
    d = detect.Detections(np.array([[1.23456, 2.0, 3.999, 4.5]], np.float32), np.array([0.1234567], np.float32),
                          np.array([2]))
    assert d.to_records(["a", "b", "c"]) == [{"class": 2, "label": "c", "score": 0.123457,
                                              "box": [1.23, 2.0, 4.0, 4.5]}]


def test_missing_output_lists_the_outputs():
    with pytest.raises(ContractError, match=r"^the detector has no output 'boxes' \(outputs: scores, anchors\)$"):
        detect.postprocess({"scores": np.zeros((1, 2, 3)), "anchors": np.zeros((2, 4))}, [IDENTITY], Detection(),
                           (64, 64))


def test_a_long_suppression_chain_is_still_greedy():
    """30 boxes 10 wide, each 3 px right of the last: neighbours overlap 7/13 > 0.5, boxes two apart
    4/16 < 0.5. Greedy keeps 0, drops 1, keeps 2 (box 1 is gone), ...: every even index. The chain is
    longer than the block resolver's fixed-point rounds, so its row-by-row fallback decides it."""
    boxes = np.array([[3 * i, 0, 3 * i + 10, 10] for i in range(30)], np.float32)
    scores = np.linspace(1.0, 0.5, 30).astype(np.float32)
    assert nms(boxes, scores, 0.5).tolist() == list(range(0, 30, 2))
    assert detect.batched_nms(boxes, scores, np.zeros(30, np.int64), 0.5).tolist() == list(range(0, 30, 2))


def test_iou_equal_to_the_threshold_does_not_suppress():
    boxes = np.array([[0, 0, 4, 1], [0, 0, 2, 1]], np.float32)  # IoU exactly 2/4
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert detect.batched_nms(boxes, scores, np.array([3, 3]), 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [0]


def test_max_output_one_and_bad_values_named_by_index():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 8, 10]], np.float32)
    assert nms(boxes[:2], np.array([0.1, 0.9]), 0.5, max_output=1).tolist() == [1]
    with pytest.raises(ValueError, match=r"^boxes\[2\] = \[9.0, 9.0, 8.0, 10.0\] has x2 < x1"):
        nms(boxes, np.ones(3), 0.5)
    with pytest.raises(ValueError, match=r"^boxes\[1\] = \[nan, 0.0, 1.0, 1.0\] is not finite"):
        nms(np.array([[0, 0, 1, 1], [np.nan, 0, 1, 1]]), np.ones(2), 0.5)
    with pytest.raises(ValueError, match=r"^scores\[1\] = nan is not finite"):
        nms(boxes[:2], np.array([0.5, np.nan]), 0.5)
    with pytest.raises(ValueError, match=r"^boxes2 must be \(N, 4\) xyxy"):
        detect.box_iou(boxes[:2], np.zeros((2, 3)))
