"""COCO box mAP computed by pycocotools (the ``[eval]`` extra), the reference every paper reports.

``DetectionResults`` turns per-image ``runtime.detect.Detections`` (contract class indices, original
pixels) into COCO results records (the file's category ids, ``[x, y, w, h]``); ``coco_map`` runs
``COCOeval`` on them against the annotation file as it was read, on the images that were evaluated.
Training's validation and ``edgecnn eval`` both go through here.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence

from edgecnn.coco import CocoError, CocoSplit
from edgecnn.errors import require

STATS = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
         "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def class_map(model_labels: Sequence[str] | None, background: bool,
              split: CocoSplit) -> tuple[dict[int, int], list[str]]:
    """Model class index -> the split's category id, matched by name; warnings for what does not match.

    Without labels the model's classes are taken in the split's order (after the background column)."""
    first = 1 if background else 0
    if not model_labels:
        return {first + k: cid for k, cid in enumerate(split.category_ids)}, [
            "the model has no labels; its classes are taken to be the data's categories in id order"]
    by_name = {name: cid for name, cid in zip(split.names, split.category_ids, strict=True)}
    mapping = {i: by_name[name] for i, name in enumerate(model_labels) if i >= first and name in by_name}
    missing = [n for n in split.names if n not in set(model_labels[first:])]
    if len(missing) == len(split.names):
        raise CocoError(f"none of the categories of {split.annotation_file} ({', '.join(split.names[:6])}) is a "
                        f"label of the model ({', '.join(model_labels[first:first + 6])}...); wrong model or data")
    warnings = [f"categories the model does not know (AP 0): {', '.join(missing)}"] if missing else []
    return mapping, warnings


class DetectionResults:
    """COCO results records, built image by image. Boxes are rounded to 0.01 px and scores to 1e-6 once,
    here, so the saved file and the evaluated detections are the same numbers."""

    def __init__(self, mapping: dict[int, int]):
        self.mapping = mapping
        self.records: list[dict] = []
        self.image_ids: list[int] = []

    def add(self, image_id: int, predictions: Sequence[dict]) -> None:
        """``predictions``: one image's detection records (``Detections.to_records``: class, score, box xyxy)."""
        self.image_ids.append(image_id)
        for p in predictions:
            cid = self.mapping.get(int(p["class"]))
            if cid is None:
                continue
            x0, y0, x1, y1 = (round(float(v), 2) for v in p["box"])
            self.records.append({"image_id": image_id, "category_id": cid,
                                 "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                                 "score": round(float(p["score"]), 6)})


def _ground_truth(split: CocoSplit):
    from pycocotools.coco import COCO

    doc = copy.deepcopy(split.doc)
    for a in doc["annotations"]:  # the fields COCOeval reads that exporters sometimes leave out
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2]) * float(a["bbox"][3])
    gt = COCO()
    gt.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def coco_map(split: CocoSplit, results: DetectionResults, max_det: int = 100) -> dict:
    """COCOeval (bbox) of ``results`` on the images they cover. Returns the 12 summary numbers under
    ``STATS`` names and ``per_class``: ``{name: {"ap", "ap50", "gt"}}`` (AP None without ground truth)."""
    require("pycocotools", "eval", "COCO mAP")
    from pycocotools.cocoeval import COCOeval

    gt = _ground_truth(split)
    with contextlib.redirect_stdout(io.StringIO()):
        if results.records:
            dt = gt.loadRes(results.records)
        else:  # loadRes cannot take an empty list; an empty result set scores 0
            from pycocotools.coco import COCO

            dt = COCO()
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = sorted(set(results.image_ids))
        ev.params.maxDets = [1, 10, max_det]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {k: float(v) for k, v in zip(STATS, ev.stats, strict=True)}
    precision = ev.eval["precision"]  # (T iou thresholds, R recall points, K classes, A areas, M max dets)
    gt_count: dict[int, int] = {}
    evaluated = set(ev.params.imgIds)
    for a in gt.dataset["annotations"]:
        if a["image_id"] in evaluated and not a.get("iscrowd"):
            gt_count[a["category_id"]] = gt_count.get(a["category_id"], 0) + 1
    per_class = {}
    for k, cid in enumerate(ev.params.catIds):
        name = gt.cats[cid].get("name", str(cid))
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        per_class[name] = {"id": int(cid), "gt": gt_count.get(int(cid), 0),
                           "ap": float(p[p > -1].mean()) if (p > -1).any() else None,
                           "ap50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else None}
    stats = {k: (None if v < 0 else v) for k, v in stats.items()}  # -1: no ground truth in that range
    return {**stats, "per_class": per_class, "images": len(ev.params.imgIds), "detections": len(results.records)}
