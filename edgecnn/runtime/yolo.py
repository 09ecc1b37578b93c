"""Ultralytics YOLO heads: one output per image holding every anchor's box and class scores, decoded
and put through ``detect.batched_nms`` as Ultralytics' own predictor does. NumPy only.

Layouts (A anchors, C classes; boxes ``cx, cy, w, h`` in network-input pixels):
  - ``yolov8`` (YOLOv8, YOLO11, YOLOv5u...): ``(N, 4 + C, A)``, class scores already sigmoided, no
    objectness; A = sum over the strides 8, 16, 32 (and 64 for P6 models) of (H/s) x (W/s)
    (8400 at 640x640);
  - ``yolov5`` (YOLOv5, YOLOv7): ``(N, A, 5 + C)``, columns box, objectness, class probabilities; a
    class's score is objectness x class probability; three anchors per cell (25200 at 640x640).

Each anchor keeps its best class (Ultralytics' ``multi_label=False``); anchors scoring above ``conf``
go to class-aware NMS (IoU > ``iou`` suppresses), then boxes map back to the original image through
the contract's resize (``Geometry``: Ultralytics' letterbox is centred, padded with 114).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgecnn.contract import ContractError
from edgecnn.contract import Detection as DetectionSpec
from edgecnn.runtime.image import Geometry

LAYOUTS = ("yolov8", "yolov5")
STRIDES = ((8, 16, 32), (8, 16, 32, 64))  # P3-P5 and P3-P6 models
CELL_ANCHORS = {"yolov8": 1, "yolov5": 3}
BOX_COLUMNS = {"yolov8": 4, "yolov5": 5}  # values per anchor before the class scores


def metadata_labels(metadata: dict[str, str]) -> list[str] | None:
    """Class names from an Ultralytics export's metadata (``names``: a Python dict literal
    ``{0: 'person', 1: 'bicycle', ...}``), or None when the file has none that reads as such."""
    import ast

    try:
        names = ast.literal_eval(metadata.get("names", ""))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))) or not names:
        return None
    return [str(names[i]) for i in range(len(names))]


def anchor_counts(layout: str, height: int, width: int) -> set[int]:
    """The anchor counts a ``layout`` head has for an ``height x width`` input, one per stride set
    (a stride that does not divide the size rounds up, as the convolutions' padding does)."""
    per_cell = CELL_ANCHORS[layout]
    return {per_cell * sum(-(-height // s) * -(-width // s) for s in strides) for strides in STRIDES}


def class_count(layout: str, shape: Sequence) -> int | None:
    """The number of classes a ``layout`` output of ``shape`` holds, or None when the dim is not static."""
    dim = shape[1] if layout == "yolov8" else shape[2]
    return dim - BOX_COLUMNS[layout] if isinstance(dim, int) and dim > BOX_COLUMNS[layout] else None


def matches(layout: str, shape: Sequence, height: int, width: int) -> bool:
    """True when a graph output of ``shape`` (ints where static) is a ``layout`` head for an
    ``height x width`` input: rank 3, its anchor dim one of ``anchor_counts``, at least one class."""
    if len(shape) != 3:
        return False
    anchors = shape[2] if layout == "yolov8" else shape[1]
    return isinstance(anchors, int) and anchors in anchor_counts(layout, height, width) \
        and class_count(layout, shape) is not None


def head_output(outputs: dict[str, np.ndarray], layout: str) -> np.ndarray:
    """The head among a batch's outputs: the first of rank 3 (Ultralytics names it ``output0``)."""
    for x in outputs.values():
        if np.ndim(x) == 3:
            return np.asarray(x)
    shapes = ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in outputs.items())
    raise ContractError(f"a {layout} detector has one output (N, {'4+C, A' if layout == 'yolov8' else 'A, 5+C'}); "
                        f"this file's outputs: {shapes}")


def decode(head: np.ndarray, layout: str, allowed: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """One image's head (``(4 + C, A)`` yolov8, ``(A, 5 + C)`` yolov5) -> boxes (A, 4) xyxy in network
    units, each anchor's best class (A,) and its score (A,) (yolov5: objectness x class probability).
    ``allowed``: only these class indices compete (None: all)."""
    x = np.asarray(head)
    if layout == "yolov8":
        if x.ndim != 2 or x.shape[0] < 5:
            raise ContractError(f"a yolov8 head is (4 + C, A) per image; got {x.shape}")
        box, scores, axis = x[:4].T, x[4:], 0  # scores (C, A): reduced along C where it is contiguous
    elif layout == "yolov5":
        if x.ndim != 2 or x.shape[1] < 6:
            raise ContractError(f"a yolov5 head is (A, 5 + C) per image; got {x.shape}")
        box, scores, axis = x[:, :4], x[:, 5:] * x[:, 4:5], 1
    else:
        raise ContractError(f"unknown YOLO layout '{layout}'; expected one of {LAYOUTS}")
    classes = np.arange(scores.shape[axis])
    if allowed is not None:
        classes = allowed[(allowed >= 0) & (allowed < scores.shape[axis])]
        scores = scores[classes] if axis == 0 else scores[:, classes]
    n = len(box)
    if not len(classes):
        best, s = np.zeros(n, np.int64), np.zeros(n, np.float32)
    else:
        i = scores.argmax(axis=axis)
        s = scores[i, np.arange(n)] if axis == 0 else scores[np.arange(n), i]
        best = classes[i]
    half = box[:, 2:] / 2
    return np.concatenate([box[:, :2] - half, box[:, :2] + half], axis=1), best, s


def postprocess(outputs: dict[str, np.ndarray], geometries: Sequence[Geometry], spec: DetectionSpec,
                input_size: tuple[int, int], *, conf: float, iou: float, max_det: int,
                allowed: np.ndarray | None, pre_nms_topk: int) -> list:
    """A YOLO detector's outputs for a batch -> one ``detect.Detections`` per image (called by
    ``detect.postprocess``, which resolves the thresholds). ``allowed``: class indices that compete
    for an anchor's best class (None: all)."""
    from edgecnn.runtime import detect

    head = head_output(outputs, spec.layout)
    if len(head) != len(geometries):
        raise ContractError(f"the {spec.layout} head has {len(head)} images for {len(geometries)} inputs")
    scale = np.asarray(input_size * 2, dtype=np.float32) if spec.normalized else None
    results = []
    for h, geom in zip(head, geometries, strict=True):
        boxes, best, s = decode(h, spec.layout, allowed)
        s_all = s
        a = np.flatnonzero(s > conf)
        if len(a) > pre_nms_topk:
            a = a[np.argpartition(-s[a], pre_nms_topk - 1)[:pre_nms_topk]]
        b, s, cls = boxes[a].astype(np.float32), s[a], best[a].astype(np.int64)
        finite = np.isfinite(b).all(axis=1) & np.isfinite(s)
        b, s, cls = b[finite], s[finite], cls[finite]
        b = np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)
        if scale is not None:
            b *= scale
        keep = detect.batched_nms(b, s, cls, iou, max_det) if len(s) else np.empty(0, np.int64)
        out = detect.to_detections(b[keep], s[keep], cls[keep], geom)
        if not len(out):  # what the model saw below --conf (infer names it)
            finite_s = np.where(np.isfinite(s_all), s_all, -np.inf)
            i = int(np.argmax(finite_s)) if len(finite_s) else -1
            out.best = (int(best[i]), float(finite_s[i])) if i >= 0 and np.isfinite(finite_s[i]) else None
        results.append(out)
    return results
