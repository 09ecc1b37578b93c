"""How well a detector's anchors cover the objects of a training set, at the input size it trains at.

SSD learns a box only from the anchors it is matched to: IoU >= 0.5 with the ground truth, plus the
single best anchor of every object whatever its IoU (``nn.detection.match``). An object that no anchor
overlaps by 0.5 gets one low-quality positive and is found late and placed loosely. The anchors of a
SSDLite sit on a stride-16 grid at best, so at a small input the grid, not the anchor sizes, is the
limit: on 128 px images of digits 15-58 px high, 30% of the objects had no anchor at IoU 0.5 at input
128, 19% at 160 (``benchmarks/results/*/digits_detect*.md``). ``train`` measures this on the training
boxes before the first epoch and says so, with the input size that would cover them, when too many are
left uncovered.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from edgecnn.contract import Preprocess
from edgecnn.runtime.image import resize

MATCH_IOU = 0.5  # SSD's (and nn.detection.match's default) positive threshold
WARN_UNCOVERED = 0.2  # say so when more than this fraction of the objects has no anchor at MATCH_IOU
MAX_BOXES = 20000  # a sample is enough to measure a fraction


def network_boxes(images, spec: Preprocess) -> np.ndarray:
    """(M, 4) xyxy boxes of ``images`` (``coco.CocoImage``s: width, height, boxes) in network-input pixels
    under the contract's resize (the geometry ``runtime.image.resize`` gives that image size)."""
    geoms: dict[tuple[int, int], tuple] = {}
    out = []
    for im in images:
        if not len(im.boxes):
            continue
        key = (int(im.width), int(im.height))
        if key not in geoms:
            _, g = resize(Image.new("L", (1, 1)).resize(key), spec)
            geoms[key] = (g.scale, g.pad)
        (sx, sy), (px, py) = geoms[key]
        b = np.asarray(im.boxes, dtype=np.float32).reshape(-1, 4)
        out.append(b * np.float32([sx, sy, sx, sy]) + np.float32([px, py, px, py]))
    boxes = np.concatenate(out) if out else np.zeros((0, 4), np.float32)
    if len(boxes) > MAX_BOXES:
        boxes = boxes[np.random.default_rng(0).choice(len(boxes), MAX_BOXES, replace=False)]
    return boxes


def coverage(boxes: np.ndarray, anchors: torch.Tensor, iou: float = MATCH_IOU) -> dict[str, float]:
    """``uncovered``: the fraction of ``boxes`` (M, 4) whose best IoU with any anchor (A, 4) is below
    ``iou``; ``positives``: the mean number of anchors at or above it per box; ``best_iou``: the median
    of each box's best IoU."""
    from edgecnn.nn.detection import box_iou

    if not len(boxes):
        return {"uncovered": 0.0, "positives": 0.0, "best_iou": 1.0, "objects": 0}
    ious = box_iou(torch.as_tensor(boxes, dtype=torch.float32), anchors.float().cpu())
    best = ious.max(dim=1).values
    return {"uncovered": float((best < iou).float().mean()), "positives": float((ious >= iou).sum(1).float().mean()),
            "best_iou": float(best.median()), "objects": len(boxes)}


def advice(model, images, spec: Preprocess, name: str) -> str | None:
    """One line when more than ``WARN_UNCOVERED`` of the training objects overlap no anchor of ``model``
    by ``MATCH_IOU`` at its input size, naming the smallest larger input (up to 2x) that halves the
    shortfall, with its figure; None when the anchors cover the objects."""
    size = spec.width
    boxes = network_boxes(images, spec)
    here = coverage(boxes, model.anchors_for(torch.zeros(1, 1, spec.height, spec.width)))
    if here["uncovered"] <= WARN_UNCOVERED:
        return None
    line = (f"{here['uncovered']:.0%} of the training objects overlap no anchor of {name} at input {size} by IoU "
            f">= {MATCH_IOU} (median object {_median_side(boxes):.0f} px; {here['positives']:.1f} matched anchors "
            "per object): they train from one loose anchor each")
    for bigger in sorted({round(size * f / 32) * 32 for f in (1.25, 1.5, 2.0)} - {size}):
        scaled = boxes * (bigger / size)
        there = coverage(scaled, model.anchors_for(torch.zeros(1, 1, bigger, bigger)))
        if there["uncovered"] <= max(WARN_UNCOVERED, here["uncovered"] / 2):
            return line + f"; --input-size {bigger} leaves {there['uncovered']:.0%}"
    a = model.anchors_for(torch.zeros(1, 1, spec.height, spec.width))
    smallest = float(((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])).sqrt().min())
    return line + (f"; its smallest anchors are {smallest:.0f} px ({smallest / size:.0%} of the input side), so a "
                   "larger input does not cover objects this small: crop or tile the images")


def _median_side(boxes: np.ndarray) -> float:
    return float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))
