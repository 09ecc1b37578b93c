"""anchor_fit: the training boxes in network pixels, their coverage by a detector's anchors, and the
warning train prints when the anchors at the chosen input size leave many objects uncovered."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from edgecnn import registry
from edgecnn.train.anchor_fit import WARN_UNCOVERED, advice, coverage, network_boxes


@dataclass
class Im:  # the fields of coco.CocoImage that anchor_fit reads
    width: int
    height: int
    boxes: np.ndarray


def _squares(side: float, n: int, size: int, seed: int = 0) -> list[Im]:
    """``n`` images of ``size`` px, each one square object of ``side`` px at a random place."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y = rng.uniform(0, size - side, 2)
        out.append(Im(size, size, np.array([[x, y, x + side, y + side]], np.float32)))
    return out


def test_network_boxes_follow_the_letterbox_geometry():
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=64, width_mult=0.5)
    wide = Im(200, 100, np.array([[0, 0, 200, 100], [50, 25, 100, 75]], np.float32))  # scale 0.32, 16 px pad on y
    b = network_boxes([wide, Im(10, 10, np.zeros((0, 4), np.float32))], model.preprocess)
    np.testing.assert_allclose(b, [[0, 16, 64, 48], [16, 24, 32, 40]], atol=0.5)
    stretched = replace(model.preprocess, resize="stretch")
    np.testing.assert_allclose(network_boxes([wide], stretched)[1], [16, 16, 32, 48], atol=0.5)


def test_coverage_counts_the_objects_no_anchor_matches():
    anchors = torch.tensor([[0, 0, 10, 10], [20, 20, 40, 40]], dtype=torch.float32)
    boxes = np.array([[0, 0, 10, 10], [0, 0, 11, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    c = coverage(boxes, anchors)
    assert c["uncovered"] == pytest.approx(0.5) and c["positives"] == pytest.approx(0.5) and c["objects"] == 4


def test_small_objects_at_a_small_input_get_advice_and_a_size_that_covers_them():
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=128, width_mult=0.5)
    small = _squares(20, 60, 128)
    line = advice(model, small, model.preprocess, "ssdlite_mobilenetv2")
    assert line is not None and "ssdlite_mobilenetv2 at input 128" in line and "median object 20 px" in line
    here = coverage(network_boxes(small, model.preprocess), model.anchors)
    assert here["uncovered"] > WARN_UNCOVERED and f"{here['uncovered']:.0%} of the training objects" in line
    bigger = int(re.search(r"--input-size (\d+) leaves", line).group(1))  # covers at least half of what 128 misses
    there = coverage(network_boxes(small, model.preprocess) * (bigger / 128),
                     model.anchors_for(torch.zeros(1, 3, bigger, bigger)))
    assert bigger > 128 and there["uncovered"] <= max(WARN_UNCOVERED, here["uncovered"] / 2)
    assert f"--input-size {bigger} leaves {there['uncovered']:.0%}" in line


def test_objects_below_the_smallest_anchor_are_not_sent_to_a_larger_input():
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=128, width_mult=0.5)
    line = advice(model, _squares(12, 30, 128), model.preprocess, "ssdlite_mobilenetv2")
    smallest = float(((model.anchors[:, 2:] - model.anchors[:, :2]).prod(1)).sqrt().min())
    assert line is not None and "--input-size" not in line and f"smallest anchors are {smallest:.0f} px" in line


def test_objects_the_anchors_fit_get_no_advice():
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=128, width_mult=0.5)
    # squares of the anchors' own sizes at the centres of the stride-16 grid: every one covered
    centred = [Im(128, 128, np.array([[8 + 16 * i - 13, 8 + 16 * j - 13, 8 + 16 * i + 13, 8 + 16 * j + 13]],
                                     np.float32)) for i in range(1, 7) for j in range(1, 7)]
    assert coverage(network_boxes(centred, model.preprocess), model.anchors)["uncovered"] == 0.0
    assert advice(model, centred, model.preprocess, "ssdlite_mobilenetv2") is None
