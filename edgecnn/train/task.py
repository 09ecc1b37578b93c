"""What the training loop does differently for classification and detection, as two task objects:
the data, the datasets and their collate function, the loss of a batch, the validation metrics, the
contract of the checkpoint and the line printed per epoch. The loop (``loop.Trainer``) owns the rest:
optimizer, schedule, epochs, checkpoints, resume, DDP.

``step(model, x, targets)`` returns ``(loss, n, parts)``: the mean loss of the batch, its images, and
sums to accumulate (``parts``) that ``train_row`` turns into the epoch's log fields.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn import registry
from edgecnn.contract import Contract, Preprocess
from edgecnn.errors import UsageError
from edgecnn.train import ddp
from edgecnn.train.datasets import Data


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _epoch_line(row: dict[str, Any], epochs: int, best: bool, metrics: str) -> str:
    """``epoch 3/10  <metrics>  lr ...  img/s  seconds  [*best]``."""
    return (f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}  {metrics}  lr {row['lr']:.3g}  "
            f"{row['images_per_s']:,.0f} img/s  {row['seconds']:.1f}s" + ("  *best" if best else ""))


class ClassifyTask:
    kind = "classify"
    best_key = "val_top1"  # the validation metric best.pt is chosen by
    log_fields = ("train_loss", "train_acc", "val_loss", "val_top1", "val_top5")

    def __init__(self, label_smoothing: float = 0.0):
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def open_data(self, cfg) -> Data:
        from edgecnn.train.datasets import open_data

        return open_data(cfg.data, cfg.val_split, cfg.seed)

    def num_classes(self, data: Data) -> int:
        return len(data.classes)

    def labels(self, data: Data) -> list[str]:
        return list(data.classes)

    def datasets(self, data: Data, spec: Preprocess, cfg, cache: int):
        from edgecnn.train.augment import EvalTransform, TrainTransform
        from edgecnn.train.datasets import ImageDataset

        transform = TrainTransform(spec, cfg.seed, cfg.flip) if cfg.augment else EvalTransform(spec)
        return ImageDataset(data.train, transform, cache), ImageDataset(data.val, EvalTransform(spec), cache)

    @staticmethod
    def collate(batch: list[tuple]) -> tuple[torch.Tensor | None, torch.Tensor, list[str]]:
        """Stack the decodable samples; ``bad`` lists why the others failed (dropped, counted)."""
        good = [b for b in batch if b[0] is not None]
        bad = [b[1] for b in batch if b[0] is None]
        x = torch.from_numpy(np.stack([b[0] for b in good])) if good else None
        return x, torch.tensor([b[1] for b in good], dtype=torch.int64), bad

    def train_module(self, model: nn.Module) -> nn.Module:
        """The module the optimizer steps through (and DDP wraps): its forward gives what ``step`` needs."""
        return model

    def dummy_targets(self) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.int64)

    def to_device(self, targets, device: torch.device):
        return targets.to(device, non_blocking=True)

    def prepare_eval(self, model: nn.Module, train_loader, device: torch.device, frozen: list) -> None:
        pass

    def advise(self, model: nn.Module, data: Data, spec: Preprocess, name: str) -> list[str]:
        return []

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        logits = model(x)
        return self.criterion(logits, y), len(y), {"correct": int((logits.argmax(1) == y).sum())}

    def running(self, sums: dict[str, float], loss: float, seen: int) -> dict[str, str]:
        return {"loss": f"{loss / max(seen, 1):.4f}", "acc": f"{sums.get('correct', 0) / max(seen, 1):.1%}"}

    def train_row(self, sums: dict[str, float], loss: float, seen: int) -> dict[str, Any]:
        return {"train_loss": loss / max(seen, 1), "train_acc": sums.get("correct", 0) / max(seen, 1)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, device: torch.device, dist: ddp.Dist, data: Data) -> dict[str, Any]:
        """Validation loss, top-1, top-5 (None with 5 classes or fewer) and per-class accuracy, summed
        over ranks. Runs on the unwrapped model: ranks may hold different numbers of batches."""
        k = len(data.classes)
        model.eval()
        loss_sum, top1, top5 = 0.0, 0, 0
        class_correct, class_total = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
        for x, y, _failed in loader:
            if x is None:
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            topk = logits.topk(min(5, k), dim=1).indices
            hit1 = topk[:, 0] == y
            top1 += int(hit1.sum())
            top5 += int((topk == y[:, None]).any(1).sum())
            class_total += torch.bincount(y.cpu(), minlength=k).double()
            class_correct += torch.bincount(y.cpu()[hit1.cpu()], minlength=k).double()
        totals = ddp.sum_all(dist, torch.cat([torch.tensor([loss_sum, top1, top5], dtype=torch.float64),
                                              class_correct, class_total]))
        correct_k, total_k = totals[3:3 + k], totals[3 + k:]
        n = int(total_k.sum())
        per_class = {c: {"n": int(total_k[i]), "correct": int(correct_k[i]),
                         "acc": float(correct_k[i] / total_k[i]) if total_k[i] else None}
                     for i, c in enumerate(data.classes)}
        return {"n": n, "val_loss": float(totals[0]) / max(n, 1), "val_top1": float(totals[1]) / max(n, 1),
                "val_top5": float(totals[2]) / max(n, 1) if k > 5 else None, "per_class": per_class}

    def contract(self, model: nn.Module, name: str, spec: Preprocess, data: Data, weights: dict,
                 last_eval: dict[str, Any], versions: dict) -> Contract:
        metrics = {k: last_eval[k] for k in ("val_top1", "val_top5")}
        return Contract(task="classify", model=name, preprocess=spec, labels=self.labels(data), weights=weights,
                        metrics={**metrics, "val_images": last_eval["n"], "data": weights["data"]}, versions=versions)

    def epoch_line(self, row: dict[str, Any], epochs: int, best: bool) -> str:
        return _epoch_line(row, epochs, best, f"loss {row['train_loss']:.4f}  acc {_pct(row['train_acc'])}  "
                           f"val_loss {row['val_loss']:.4f}  top1 {_pct(row['val_top1'])}  "
                           f"top5 {_pct(row['val_top5'])}")


# Classifiers whose ``features`` the detectors' backbones re-split (``--init`` with their checkpoints).
BACKBONES = {"ssdlite_mobilenetv2": "mobilenetv2", "ssdlite320_mobilenetv3_large": "mobilenetv3_large"}
VAL_CONF, VAL_MAX_DET = 0.001, 100  # validation mAP at COCO's settings, as edgecnn eval
PRECISE_BN_IMAGES = 256


class DetectTask:
    kind = "detect"
    best_key = "val_map50"
    log_fields = ("train_loss", "train_loc", "train_cls", "val_map50", "val_map")

    def __init__(self):
        from edgecnn.errors import require

        require("pycocotools", "eval", "validation mAP of a detector")

    def open_data(self, cfg) -> Data:
        from edgecnn.train.coco import open_detection_data

        return open_detection_data(cfg.data, cfg.val_split, cfg.seed)

    def num_classes(self, data: Data) -> int:
        return len(data.classes) + 1  # + the background, column 0

    def labels(self, data: Data) -> list[str]:
        return ["background", *data.classes]

    def datasets(self, data: Data, spec: Preprocess, cfg, cache: int):
        from edgecnn.train.coco import DetectionDataset
        from edgecnn.train.detect_augment import DetectEvalTransform, DetectTrainTransform

        transform = DetectTrainTransform(spec, cfg.seed, cfg.flip) if cfg.augment else DetectEvalTransform(spec)
        return (DetectionDataset(data.train, transform, cache, train=True),
                DetectionDataset(data.val, DetectEvalTransform(spec), cache, train=False))

    @staticmethod
    def collate(batch: list[tuple]):
        from edgecnn.train.coco import collate

        return collate(batch)

    def advise(self, model: nn.Module, data: Data, spec: Preprocess, name: str) -> list[str]:
        """Warnings about the data against the model before training: training objects that no anchor covers
        at this input size (``anchor_fit.advice``)."""
        from edgecnn.train.anchor_fit import advice

        line = advice(model, data.train.images, spec, name) if hasattr(model, "anchors_for") else None
        return [line] if line else []

    def train_module(self, model: nn.Module) -> nn.Module:
        self._detector = model
        return _Raw(model)

    def dummy_targets(self) -> list[dict]:
        return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]

    def to_device(self, targets, device: torch.device):
        return [{**t, "boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]

    def step(self, model: nn.Module, x: torch.Tensor, targets: list[dict]):
        from edgecnn.nn.detection import detection_loss

        deltas, logits = model(x)  # through DDP's forward, so its gradient hooks run
        parts = detection_loss(deltas, logits, self._detector.anchors_for(x), targets)
        n = len(targets)
        return parts["loss"], n, {"loc": float(parts["loc"].detach()) * n, "cls": float(parts["cls"].detach()) * n}

    def running(self, sums: dict[str, float], loss: float, seen: int) -> dict[str, str]:
        s = max(seen, 1)
        return {"loss": f"{loss / s:.4f}", "loc": f"{sums.get('loc', 0) / s:.3f}",
                "cls": f"{sums.get('cls', 0) / s:.3f}"}

    def train_row(self, sums: dict[str, float], loss: float, seen: int) -> dict[str, Any]:
        s = max(seen, 1)
        return {"train_loss": loss / s, "train_loc": sums.get("loc", 0) / s, "train_cls": sums.get("cls", 0) / s}

    @torch.no_grad()
    def prepare_eval(self, model: nn.Module, train_loader, device: torch.device, frozen: list) -> None:
        """Precise BatchNorm: recompute the running statistics of the trainable BN layers with the final
        weights, as a plain average over up to ``PRECISE_BN_IMAGES`` training images (no gradient).

        SSDLite's BN running averages (momentum 0.1) lag the weights while they move fast, and its
        extra layers normalise 1x1 maps over a batch of a few values: measured on an over-fitted shapes
        set, eval-mode mAP@.50 was 0.03 with the running averages and 1.0 with recomputed ones (train
        mode: 1.0). The checkpoint keeps the recomputed statistics; the next epoch starts from them."""
        from edgecnn.train import transfer

        transfer.set_train_mode(model, frozen)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        seen = 0
        for x, _targets, _bad in train_loader:
            if x is None or len(x) < 2:
                continue
            model.raw(x.to(device, non_blocking=True))
            seen += len(x)
            if seen >= PRECISE_BN_IMAGES:
                break
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader, device: torch.device, dist: ddp.Dist, data: Data) -> dict[str, Any]:
        """COCO mAP on the validation split through ``edgecnn.eval.coco_map``, the code of ``edgecnn eval``:
        the model's boxes and scores go through the runtime's post-processing (``runtime.detect``) at
        conf 0.001 / 100 detections, the contract's NMS IoU."""
        from edgecnn.eval.coco_map import DetectionResults, class_map, coco_map
        from edgecnn.runtime.detect import postprocess

        model.eval()
        spec = model.detection
        size = (model.preprocess.width, model.preprocess.height)
        mapping, _ = class_map(self.labels(data), True, data.val)
        results = DetectionResults(mapping)
        for x, targets, _failed in loader:
            if x is None:
                continue
            boxes, scores = model(x.to(device, non_blocking=True))
            dets = postprocess({"boxes": boxes.float().cpu().numpy(), "scores": scores.float().cpu().numpy()},
                               [t["geometry"] for t in targets], spec, size, conf=VAL_CONF, max_det=VAL_MAX_DET)
            for t, d in zip(targets, dets, strict=True):
                results.add(t["image_id"], d.to_records())
        if dist.enabled:  # every rank evaluated a slice: gather the records, score once
            gathered: list = [None] * dist.world
            torch.distributed.all_gather_object(gathered, (results.image_ids, results.records))
            results.image_ids = [i for ids, _ in gathered for i in ids]
            results.records = [r for _, recs in gathered for r in recs]
        if not results.image_ids:
            return {"n": 0, "val_map50": 0.0, "val_map": 0.0, "per_class": {}}
        m = coco_map(data.val, results, VAL_MAX_DET)
        return {"n": m["images"], "val_map50": m["map50"] or 0.0, "val_map": m["map"] or 0.0,
                "val_map75": m["map75"], "per_class": m["per_class"]}

    def contract(self, model: nn.Module, name: str, spec: Preprocess, data: Data, weights: dict,
                 last_eval: dict[str, Any], versions: dict) -> Contract:
        return Contract(task="detect", model=name, preprocess=spec, labels=self.labels(data), weights=weights,
                        outputs=[{"name": "boxes", "kind": "boxes", "meaning": "(N, A, 4) xyxy input pixels"},
                                 {"name": "scores", "kind": "scores",
                                  "meaning": "(N, A, C) softmax probabilities, column 0 background"}],
                        detection=model.detection, versions=versions,
                        metrics={"val_map50": last_eval["val_map50"], "val_map": last_eval["val_map"],
                                 "val_images": last_eval["n"], "data": weights["data"]})

    def epoch_line(self, row: dict[str, Any], epochs: int, best: bool) -> str:
        return _epoch_line(row, epochs, best, f"loss {row['train_loss']:.4f} (loc {row['train_loc']:.3f} "
                           f"cls {row['train_cls']:.3f})  val mAP@.50 {row['val_map50']:.3f}  mAP {row['val_map']:.3f}")


class _Raw(nn.Module):
    """A detector whose forward is its ``raw`` (deltas, logits): what the loss needs, and what DDP must
    see go through ``forward`` to synchronise gradients."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model.raw(x)


def make_task(kind: str, cfg):
    if kind == "detect":
        return DetectTask()
    if kind == "classify":
        return ClassifyTask(cfg.label_smoothing)
    raise UsageError(f"edgecnn train does not train '{kind}' models")


def init_backbone(model: nn.Module, path: str, name: str) -> list[str] | None:
    """``--init`` of a detector with a classifier checkpoint (edgecnn or torchvision format) of its
    backbone (``BACKBONES``): the classifier is built, loaded, and its ``features`` tensors go into the
    detector's backbone through ``SSDLite.load_backbone`` (the same blocks, re-split). None when ``path``
    is not a checkpoint of that classifier (then it is loaded as the detector's own)."""
    from edgecnn.train import transfer
    from edgecnn.weights import read_weights

    clf_name = BACKBONES.get(name)
    wf = read_weights(path)
    if clf_name is None or wf.model == name or (wf.model is None and any(k.startswith("backbone.")
                                                                        for k in wf.state_dict)):
        return None
    clf = registry.build(clf_name, in_channels=model.preprocess.channels, width_mult=getattr(model, "width_mult", 1.0))
    notes = transfer.load_init(clf, path, clf_name)
    try:
        n = model.load_backbone(clf.state_dict())  # the model's own classifier-key -> backbone-key map
    except ValueError as e:
        raise UsageError(f"--init {path}: its {clf_name} features do not fit {name}'s backbone ({e}); "
                         f"give a {clf_name} checkpoint of the same width") from e
    return [*notes, f"backbone: {n} tensors of {clf_name}'s features; extra layers and heads fresh"]
