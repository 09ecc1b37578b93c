"""How well a detector's anchors cover the objects of a training set, at the input size it trains at.

SSD learns a box only from the anchors it is matched to: IoU >= 0.5 with the ground truth, plus the
single best anchor of every object whatever its IoU (``nn.detection.match``). An object that no anchor
overlaps by 0.5 gets one low-quality positive and is found late and placed loosely. The anchors of a
SSDLite sit on a stride-16 grid at best, so at a small input the grid, not the anchor sizes, is the
limit: on 128 px images of digits 15-58 px high, 30% of the objects had no anchor at IoU 0.5 at input
128, 19% at 160 (``benchmarks/results/*/digits_detect*.md``). ``train`` measures this on the training
boxes before the first epoch and says so, with the input size that would cover them, when too many are
left uncovered. ``fit_scales`` (``train --anchors auto``) chooses the anchor scales that leave the fewest
training objects uncovered at the input size.
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
FIT_BOXES = 2000  # the sample fit_scales scores each candidate on
FIT_MIN = [round(0.04 + 0.02 * i, 2) for i in range(19)]  # smallest scale: 0.04 .. 0.40 of the input side
FIT_SPAN = [round(0.1 * i, 1) for i in range(1, 10)]  # largest - smallest: 0.1 .. 0.9


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


def linear_scales(smallest: float, largest: float, maps: int = 6) -> list[float]:
    """torchvision's spacing of SSD scales, ``smallest`` .. ``largest`` over ``maps`` feature maps, plus the
    last map's upper neighbour (one step further, at most 1)."""
    step = (largest - smallest) / (maps - 1)
    return [round(smallest + step * k, 4) for k in range(maps)] + [round(min(1.0, largest + step), 4)]


def best_iou(boxes: np.ndarray, grid: list[tuple[int, int]], size: tuple[int, int], wh: list) -> np.ndarray:
    """(M,) best IoU of each of ``boxes`` (M, 4) xyxy with the anchors ``DefaultBoxes`` makes of ``wh`` (per
    map: (K, 2) sizes, fractions of the input) on ``grid`` at ``size`` (h, w), without building them: for
    anchors of one shape the IoU only falls as the centres move apart on either axis, so the grid centre
    nearest to the box's (on each axis) has the best anchor of each shape."""
    h, w = size
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    best = np.zeros(len(boxes), np.float32)
    for (fh, fw), shapes in zip(grid, wh, strict=True):
        sx, sy = w / fw, h / fh  # centres at (i + 0.5) * stride
        ax = (np.clip(np.floor(cx / sx), 0, fw - 1) + 0.5) * sx
        ay = (np.clip(np.floor(cy / sy), 0, fh - 1) + 0.5) * sy
        aw, ah = np.clip(np.asarray(shapes, np.float32), 0, 1).T * np.float32([[w], [h]])
        ox = np.minimum(cx[:, None] + bw[:, None] / 2, ax[:, None] + aw / 2) - np.maximum(
            cx[:, None] - bw[:, None] / 2, ax[:, None] - aw / 2)
        oy = np.minimum(cy[:, None] + bh[:, None] / 2, ay[:, None] + ah / 2) - np.maximum(
            cy[:, None] - bh[:, None] / 2, ay[:, None] - ah / 2)
        inter = np.clip(ox, 0, None) * np.clip(oy, 0, None)
        iou = inter / (bw[:, None] * bh[:, None] + aw * ah - inter)
        best = np.maximum(best, iou.max(axis=1))
    return best


def fit_scales(model, images, spec: Preprocess) -> dict | None:
    """The anchor scales (``linear_scales``) that leave the fewest of the training objects in ``images``
    without an anchor at IoU >= ``MATCH_IOU`` at ``spec``'s input size (ties: the higher mean best IoU),
    on a sample of ``FIT_BOXES``. Returns ``{"scales", "fitted", "default"}`` (the coverage of both, as
    ``coverage`` gives it), or None when there are no boxes."""
    from edgecnn.nn.detection import DefaultBoxes

    boxes = network_boxes(images, spec)
    if not len(boxes):
        return None
    sample = boxes[np.random.default_rng(0).choice(len(boxes), FIT_BOXES, replace=False)] \
        if len(boxes) > FIT_BOXES else boxes
    ratios = model.box_generator.aspect_ratios
    grid, size = model._grid(spec.height, spec.width), (spec.height, spec.width)
    best_key, best = None, None
    for lo in FIT_MIN:
        for span in FIT_SPAN:
            if lo + span > 1.0:
                continue
            scales = linear_scales(lo, lo + span, len(ratios))
            top = best_iou(sample, grid, size, DefaultBoxes(ratios, scales=scales).wh)
            key = (round(float((top < MATCH_IOU).mean()), 3), -float(top.mean()))
            if best_key is None or key < best_key:
                best_key, best = key, scales
    return {"scales": best, "fitted": coverage(boxes, DefaultBoxes(ratios, scales=best)(grid, size)),
            "default": coverage(boxes, DefaultBoxes(ratios)(grid, size))}


def describe_fit(fit: dict, name: str, size: int) -> str:
    """One line: the scales ``fit_scales`` chose and the objects they and the defaults leave uncovered."""
    s, f, d = fit["scales"], fit["fitted"], fit["default"]
    return (f"anchors: scales {s[0]:.2f}-{s[-2]:.2f} of the input side, fitted to {f['objects']:,} training "
            f"objects at input {size}: {f['uncovered']:.0%} of them overlap no anchor by IoU >= {MATCH_IOU} "
            f"({f['positives']:.1f} matched anchors each; {name}'s defaults 0.20-0.95: {d['uncovered']:.0%}, "
            f"{d['positives']:.1f})")
