"""SSD detection pieces in torch: default boxes, the box coder, IoU matching and the loss.

Conventions are torchvision's (``models/detection/ssd.py``, ``anchor_utils.py``, ``_utils.py``),
so a torchvision SSDLite checkpoint computes the same thing here:
  - boxes are ``(..., 4)`` float ``xyxy`` in network-input pixels;
  - the box coder is the center-size encoding with weights (10, 10, 5, 5); its decode is the one
    ``edgecnn.runtime.detect.decode_deltas`` does on the host (the same formula, in torch, for the
    graph);
  - anchors are ordered feature map by feature map, row-major over each map, anchors of one
    location consecutive (the order the heads' outputs are flattened in);
  - class 0 of the logits is background; ``num_classes`` counts it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
DWH_CLAMP = math.log(1000.0 / 16)  # torchvision: keeps exp() of a wild regression finite


class DefaultBoxes:
    """SSD default boxes (Liu et al. 2016, sec 2.2) with torchvision's ``DefaultBoxGenerator`` semantics.

    Feature map k of m gets scale ``s_k = min_ratio + (max_ratio - min_ratio) * k / (m - 1)`` (and
    ``s_m = 1``), and per location the boxes ``(s_k, s_k)``, ``(s'_k, s'_k)`` with
    ``s'_k = sqrt(s_k * s_{k+1})``, then ``(s_k sqrt(r), s_k / sqrt(r))`` and its transpose for every
    aspect ratio r of that map; sizes are fractions of the image width/height. ``clip`` clamps the
    sizes (not the boxes) to [0, 1], as torchvision does. ``steps`` (SSD300's 8 .. 300, in pixels of
    ``step_size``) places the centres of map k at ``(i + 0.5) * step_k`` instead of spreading them over the
    map: at an input of another size the steps scale with it.
    """

    def __init__(self, aspect_ratios: Sequence[Sequence[float]], min_ratio: float = 0.2, max_ratio: float = 0.95,
                 scales: Sequence[float] | None = None, clip: bool = True, steps: Sequence[float] | None = None,
                 step_size: int | None = None):
        m = len(aspect_ratios)
        if m < 1:
            raise ValueError("aspect_ratios needs one entry per feature map, got none")
        if scales is None:
            scales = [min_ratio + (max_ratio - min_ratio) * k / (m - 1.0) for k in range(m)] + [1.0] if m > 1 \
                else [min_ratio, max_ratio]
        if len(scales) != m + 1:
            raise ValueError(f"scales needs {m + 1} values for {m} feature maps, got {len(scales)}")
        self.aspect_ratios = [list(r) for r in aspect_ratios]
        self.scales = list(scales)
        self.clip = clip
        if steps is not None and len(steps) != m:
            raise ValueError(f"steps needs one value per feature map, got {len(steps)} for {m}")
        self.steps, self.step_size = (list(steps), step_size) if steps is not None else (None, None)
        self.wh = []
        for k, ratios in enumerate(self.aspect_ratios):
            s, s_next = self.scales[k], math.sqrt(self.scales[k] * self.scales[k + 1])
            pairs = [[s, s], [s_next, s_next]]
            for r in ratios:
                pairs += [[s * math.sqrt(r), s / math.sqrt(r)], [s / math.sqrt(r), s * math.sqrt(r)]]
            self.wh.append(torch.as_tensor(pairs, dtype=torch.float32))

    def num_anchors_per_location(self) -> list[int]:
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def __call__(self, grid_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int]) -> torch.Tensor:
        """grid_sizes: (height, width) of each feature map; image_size: (height, width) of the input.
        Returns (A, 4) xyxy anchors in input pixels (float32, computed as torchvision does)."""
        if len(grid_sizes) != len(self.wh):
            raise ValueError(f"{len(grid_sizes)} feature maps for {len(self.wh)} anchor settings")
        boxes = []
        for k, ((fh, fw), wh) in enumerate(zip(grid_sizes, self.wh, strict=True)):
            nx, ny = fw, fh  # torchvision: centres over the map, or every step pixels
            if self.steps is not None and self.step_size:  # steps scale with the input: the same tiling
                nx = ny = self.step_size / self.steps[k]
            elif self.steps is not None:
                nx, ny = image_size[1] / self.steps[k], image_size[0] / self.steps[k]
            sx = ((torch.arange(0, fw) + 0.5) / nx).to(torch.float32)
            sy = ((torch.arange(0, fh) + 0.5) / ny).to(torch.float32)
            cy, cx = torch.meshgrid(sy, sx, indexing="ij")
            centres = torch.stack((cx.reshape(-1), cy.reshape(-1)) * len(wh), dim=-1).reshape(-1, 2)
            sizes = (wh.clamp(min=0, max=1) if self.clip else wh).repeat(fh * fw, 1)
            boxes.append(torch.cat((centres, sizes), dim=1))
        b = torch.cat(boxes, dim=0)
        xy = torch.tensor([image_size[1], image_size[0]])
        return torch.cat([(b[:, :2] - 0.5 * b[:, 2:]) * xy, (b[:, :2] + 0.5 * b[:, 2:]) * xy], -1)


def encode(boxes: torch.Tensor, anchors: torch.Tensor, weights=BOX_CODER_WEIGHTS) -> torch.Tensor:
    """(P, 4) xyxy boxes against (P, 4) xyxy anchors -> (P, 4) regression targets ``dx, dy, dw, dh``
    (torchvision ``BoxCoder.encode_single``)."""
    wx, wy, ww, wh = weights
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    acx, acy = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
    gw, gh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    gcx, gcy = boxes[:, 0] + 0.5 * gw, boxes[:, 1] + 0.5 * gh
    return torch.stack([wx * (gcx - acx) / aw, wy * (gcy - acy) / ah,
                        ww * torch.log(gw / aw), wh * torch.log(gh / ah)], dim=1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor, weights=BOX_CODER_WEIGHTS) -> torch.Tensor:
    """(..., A, 4) deltas against (A, 4) xyxy anchors -> (..., A, 4) xyxy boxes; the torch twin of
    ``edgecnn.runtime.detect.decode_deltas`` (torchvision ``BoxCoder.decode_single``)."""
    wx, wy, ww, wh = weights
    aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    acx, acy = anchors[:, 0] + 0.5 * aw, anchors[:, 1] + 0.5 * ah
    cx = deltas[..., 0] / wx * aw + acx
    cy = deltas[..., 1] / wy * ah + acy
    w = torch.exp(torch.clamp(deltas[..., 2] / ww, max=DWH_CLAMP)) * aw
    h = torch.exp(torch.clamp(deltas[..., 3] / wh, max=DWH_CLAMP)) * ah
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4), (M, 4) xyxy -> (N, M) IoU (0 where the union is empty)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def match(gt_boxes: torch.Tensor, anchors: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Assign each anchor the ground truth it overlaps best if that IoU is >= ``iou_threshold``, else
    -1 (background); then every ground truth takes its best anchor whatever the IoU, so none is left
    unmatched (torchvision ``SSDMatcher``). gt_boxes (M, 4), anchors (A, 4) -> (A,) int64 in -1..M-1."""
    if len(gt_boxes) == 0:
        return torch.full((len(anchors),), -1, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # (M, A)
    best_iou, matches = iou.max(dim=0)
    matches = torch.where(best_iou >= iou_threshold, matches, torch.full_like(matches, -1))
    matches[iou.argmax(dim=1)] = torch.arange(len(gt_boxes), device=anchors.device)
    return matches


def _check_targets(targets: Sequence[dict], n: int, num_classes: int) -> None:
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for a batch of {n} images")
    for i, t in enumerate(targets):
        boxes, labels = t["boxes"], t["labels"]
        if boxes.ndim != 2 or boxes.shape[1] != 4 or labels.shape != (len(boxes),):
            raise ValueError(f"targets[{i}]: boxes {tuple(boxes.shape)} and labels {tuple(labels.shape)} must be "
                             "(M, 4) and (M,)")
        if len(labels) and (int(labels.min()) < 1 or int(labels.max()) >= num_classes):
            raise ValueError(f"targets[{i}]: labels must be in 1..{num_classes - 1} (0 is background), "
                             f"got {labels.tolist()}")
        if len(boxes) and not bool(((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()):
            raise ValueError(f"targets[{i}]: every box must be xyxy with positive width and height")


def detection_loss(deltas: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor, targets: Sequence[dict],
                   iou_threshold: float = 0.5, neg_pos_ratio: int = 3, box_loss: str = "smooth_l1"
                   ) -> dict[str, torch.Tensor]:
    """SSD's MultiBox loss (Liu et al. 2016, eq. 1), as torchvision's ``SSD.compute_loss``.

    deltas (N, A, 4) and logits (N, A, C) from ``model.raw(x)``; anchors (A, 4) xyxy;
    targets: one dict per image, ``boxes`` (M, 4) float xyxy input pixels and ``labels`` (M,) int64
    in 1..C-1 (M may be 0). Localisation: smooth-L1 on the encoded offsets (or ``box_loss="giou"``:
    1 - GIoU of the decoded boxes) over the positive anchors. Classification: cross-entropy over the
    positives and the hardest negatives, ``neg_pos_ratio`` of them per positive (3:1). Both are
    divided by the number of positives (at least 1). Returns ``{"loss", "loc", "cls"}``.
    """
    if box_loss not in ("smooth_l1", "giou"):
        raise ValueError(f"box_loss must be 'smooth_l1' or 'giou', got {box_loss!r}")
    n, a, c = logits.shape
    if deltas.shape != (n, a, 4) or anchors.shape != (a, 4):
        raise ValueError(f"deltas {tuple(deltas.shape)}, logits {tuple(logits.shape)} and anchors "
                         f"{tuple(anchors.shape)} do not match (expected (N, A, 4), (N, A, C), (A, 4))")
    _check_targets(targets, n, c)
    anchors = anchors.to(deltas)
    loc = deltas.new_zeros(())
    cls_targets = torch.zeros((n, a), dtype=torch.int64, device=logits.device)
    num_pos = 0
    for i, t in enumerate(targets):
        gt = t["boxes"].to(deltas)
        matches = match(gt, anchors, iou_threshold)
        pos = torch.where(matches >= 0)[0]
        num_pos += len(pos)
        matched = gt[matches[pos]]
        if box_loss == "smooth_l1":
            loc = loc + F.smooth_l1_loss(deltas[i, pos], encode(matched, anchors[pos]), reduction="sum")
        else:
            loc = loc + (1 - _giou(decode(deltas[i, pos], anchors[pos]), matched)).sum()
        cls_targets[i, pos] = t["labels"].to(logits.device)[matches[pos]]
    ce = F.cross_entropy(logits.reshape(-1, c), cls_targets.reshape(-1), reduction="none").view(n, a)
    positive = cls_targets > 0
    num_neg = neg_pos_ratio * positive.sum(1, keepdim=True)
    neg_loss = ce.detach().clone()
    neg_loss[positive] = -float("inf")
    order = neg_loss.sort(1, descending=True)[1]
    negative = order.sort(1)[1] < num_neg  # rank of each anchor among the negatives
    denom = max(1, num_pos)
    loc, cls = loc / denom, (ce[positive].sum() + ce[negative].sum()) / denom
    return {"loss": loc + cls, "loc": loc, "cls": cls}


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU (Rezatofighi et al. 2019) of a[k] with b[k]: (P, 4) xyxy x2 -> (P,)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    return inter / union.clamp(min=1e-7) - (hull - union) / hull.clamp(min=1e-7)
