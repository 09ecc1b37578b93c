"""``evaluate``: a model (ONNX file, or an edgecnn checkpoint run in PyTorch) on a labelled split.

Both go through ``runtime.predict.Predictor`` (the decode, preprocessing and post-processing of
``infer``), so a number here is the number the device gets. Torch-free for ONNX files.

- detection: a COCO split (``edgecnn.coco``), mAP by pycocotools (``coco_map``);
- classification: an ImageFolder split (``DIR/val/<class>/`` when present, else ``DIR/<class>/``) or
  a folder of MNIST IDX files (the ``t10k`` pair when present, else ``train``), read by
  ``edgecnn.classdata``, as training reads them.
Files that fail to decode are reported through ``on_error``, counted, and left out of the metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn import coco
from edgecnn.contract import Overrides
from edgecnn.errors import EdgeCNNError, MissingFileError, UsageError
from edgecnn.fileio import atomic_path
from edgecnn.progress import Progress
from edgecnn.runtime.image import Geometry, preprocess
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.sources import ImageFile

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


class EvalError(EdgeCNNError):
    """Data that does not fit the model (a task or classes the model does not have)."""


@dataclass
class EvalOptions:
    model: str  # ONNX file, zoo name (export/NAME.onnx) or an edgecnn checkpoint
    data: str
    conf: float | None = None  # None: 0.001, mAP-style: keep nearly everything, let the precision/recall curve decide
    iou: float | None = None  # NMS IoU [default: the contract's]
    max_det: int | None = None  # None: 100, as COCO
    batch: int = 8
    provider: str = "auto"
    threads: int | None = None
    runtime: str = "ort"  # ONNX: ort | openvino | auto (runtime.choice)
    precision: str | None = None  # ONNX: auto | fp32 | int8 (runtime.choice); None: the file as given
    save_predictions: str | None = None
    progress: bool | None = None  # None: when stderr is a terminal
    overrides: Overrides | None = None  # the shared preprocessing/task options (edit the contract)

    def __post_init__(self):
        self.conf = 0.001 if self.conf is None else self.conf
        self.max_det = 100 if self.max_det is None else self.max_det


@dataclass
class EvalResult:
    task: str
    model: str
    data: str
    backend: str  # onnxruntime provider, OpenVINO's, or "pytorch (cpu)"
    metrics: dict
    images: int
    failed: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    runtime: dict | None = None  # ONNX: what --runtime resolved to and why (runtime.choice.Resolved.describe)

    def to_dict(self) -> dict:
        return {"task": self.task, "model": self.model, "data": self.data, "backend": self.backend,
                "runtime": self.runtime,
                "images": self.images, "failed": self.failed, "seconds": round(self.seconds, 3),
                "warnings": self.warnings, "metrics": self.metrics}


def open_engine(model: str, provider: str = "auto", threads: int | None = None, overrides: Overrides | None = None,
                runtime: str = "ort", objective: str = "throughput", precision: str | None = None):
    """An ``Engine`` (``runtime``: ort, openvino or auto, ``runtime.choice``) for an ONNX file or zoo name; a
    ``TorchEngine`` for a checkpoint; the contract of either edited by ``overrides``."""
    p = Path(model)
    if p.suffix.lower() in CHECKPOINT_SUFFIXES:
        if runtime != "ort":
            raise UsageError(f"--runtime {runtime} runs ONNX files; {p} is a checkpoint, run in PyTorch")
        if precision is not None:
            raise UsageError(f"--precision {precision} picks an ONNX file; {p} is a checkpoint, run in PyTorch")
        from edgecnn.errors import require

        require("torch", "torch", f"evaluating the PyTorch checkpoint {p}")
        if threads is not None:
            from edgecnn.threads import apply_torch

            apply_torch(threads)  # the checkpoint runs in PyTorch: --threads sizes torch's pool
        from edgecnn.eval.torch_engine import TorchEngine

        return TorchEngine(p, overrides=overrides)
    from edgecnn.runtime import choice
    from edgecnn.runtime.session import resolve_model

    return choice.open_engine(resolve_model(model), runtime, precision, objective=objective, provider=provider,
                              threads=threads, overrides=overrides)


def evaluate(opts: EvalOptions, on_error: Callable[[str], None] = lambda m: None) -> EvalResult:
    if opts.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {opts.batch}")
    if not 0.0 <= opts.conf <= 1.0:
        raise UsageError(f"--conf must be in [0, 1], got {opts.conf}")
    if opts.iou is not None and not 0.0 <= opts.iou <= 1.0:
        raise UsageError(f"--iou must be in [0, 1], got {opts.iou}")
    if opts.max_det < 1:
        raise UsageError(f"--max-det must be >= 1, got {opts.max_det}")
    if not Path(opts.data).is_dir():
        raise MissingFileError(f"--data {opts.data}: no such directory")
    engine = open_engine(opts.model, opts.provider, opts.threads, opts.overrides, opts.runtime,
                         "latency" if opts.batch == 1 else "throughput", opts.precision)
    task = engine.contract.task
    if task not in ("classify", "detect"):
        raise EvalError(f"{opts.model}: eval scores classifiers and detectors; this model's task is {task} "
                        "(declare it with --task classify|detect, or 'edgecnn contract')")
    t0 = time.perf_counter()
    if task == "detect":
        metrics, stats, warnings, saved = _detect(engine, opts, on_error)
    else:
        metrics, stats, warnings, saved = _classify(engine, opts, on_error)
    if opts.save_predictions:
        with atomic_path(opts.save_predictions) as tmp:
            tmp.write_text(json.dumps(saved) + "\n")
    resolved = getattr(engine, "resolved", None)
    return EvalResult(task, str(getattr(engine, "path", opts.model)), opts.data, engine.providers[0], metrics,
                      stats.images, stats.failed, time.perf_counter() - t0, list(engine.warnings) + warnings,
                      None if resolved is None else resolved.describe())


def _run(predictor: Predictor, files: list[ImageFile], opts: EvalOptions, on_error: Callable[[str], None]):
    """Predictor results in input order, with the progress bar; errors reported as they come."""
    with Progress(len(files), "eval", enabled=opts.progress) as bar:
        for res in predictor.predict(files, batch=opts.batch):
            if res.error:
                bar.close()
                on_error(res.error)
            yield res
            bar.update(1)


# ------------------------------------------------------------------------------------------- detection


def _detect(engine, opts: EvalOptions, on_error):
    from edgecnn.eval.coco_map import DetectionResults, class_map, coco_map

    split = coco.read_split(*coco.find_split(opts.data, prefer="val"))
    if not split.images:
        raise EvalError(f"{split.annotation_file} lists no images")
    det = engine.contract.detection
    mapping, warnings = class_map(engine.contract.labels, bool(det and det.background_class), split)
    predictor = Predictor(engine, conf=opts.conf, iou=opts.iou, max_det=opts.max_det)
    results = DetectionResults(mapping)
    files = [ImageFile(img.path, Path(img.path.name)) for img in split.images]
    for img, res in zip(split.images, _run(predictor, files, opts, on_error), strict=True):
        if not res.error:
            results.add(img.id, res.predictions)
    if not results.image_ids:
        raise EvalError(f"none of the {len(files)} images of {split.annotation_file} could be read")
    metrics = coco_map(split, results, opts.max_det)
    metrics.update(conf=opts.conf, max_det=opts.max_det, annotations=str(split.annotation_file))
    return metrics, predictor.stats, split.warnings + warnings, results.records


# -------------------------------------------------------------------------------------- classification


class _MemoryPredictor(Predictor):
    """Reads ``ImageFile.rel`` = the index into an array of images (IDX data) instead of a file."""

    def __init__(self, engine, images: np.ndarray, **kw):
        super().__init__(engine, **kw)
        self.images = images

    def _load(self, f: ImageFile) -> tuple[Image.Image, np.ndarray, Geometry]:
        im = Image.fromarray(self.images[int(f.rel.name)])
        x, geom = preprocess(im, self.contract.preprocess)
        return im, x, geom


def _classification_split(root: Path) -> tuple[list[str], list, list[int], str]:
    """(class names, items: paths or one array of images, targets, what was read)."""
    from edgecnn import classdata

    mnist = classdata.find_mnist(root)
    if mnist:
        kind = "t10k" if "t10k-images" in mnist else "train"
        if kind == "t10k" and "t10k-labels" not in mnist:
            raise EvalError(f"{mnist['t10k-images']} has no labels file beside it (t10k-labels-idx1-ubyte[.gz])")
        x, y = classdata.read_idx_pair(mnist[f"{kind}-images"], mnist[f"{kind}-labels"])
        classes = [str(c) for c in range(int(y.max()) + 1)] if len(y) else []
        return classes, x, y.tolist(), str(mnist[f"{kind}-images"])
    folder = next((root / v for v in classdata.VAL_DIRS if (root / v).is_dir()), root)
    if folder == root and (root / "train").is_dir():
        raise EvalError(f"--data {root} has a train/ split but no val/ (or valid/, validation/); "
                        f"point --data at the split to evaluate")
    classes, split, skipped, _ = classdata.scan_folder(folder)
    return classes, list(split.items) + [Path(p) for p, _ in skipped], split.targets + [-1] * len(skipped), str(folder)


def _classify(engine, opts: EvalOptions, on_error):
    from edgecnn.eval.classify import classification_metrics

    classes, items, targets, where = _classification_split(Path(opts.data))
    labels = engine.contract.labels
    warnings: list[str] = []
    if labels:
        unknown = [c for c in classes if c not in labels]
        if unknown:
            raise EvalError(f"--data {where}: class(es) {', '.join(unknown[:5])} are not labels of the model "
                            f"({', '.join(labels[:8])}{'...' if len(labels) > 8 else ''})")
        to_data = {labels.index(c): i for i, c in enumerate(classes)}  # model class -> data class
    else:
        warnings.append("the model has no labels; its classes are taken to be the data's in sorted order")
        to_data = {i: i for i in range(len(classes))}
    if isinstance(items, np.ndarray):
        predictor: Predictor = _MemoryPredictor(engine, items, topk=5)
        files = [ImageFile(Path(f"{where}[{i}]"), Path(str(i))) for i in range(len(items))]
    else:
        predictor = Predictor(engine, topk=5)
        files = [ImageFile(p, Path(p.name)) for p in items]
    true, topk, saved = [], [], []
    for t, res in zip(targets, _run(predictor, files, opts, on_error), strict=True):
        if res.error or t < 0:
            continue
        true.append(t)
        topk.append([to_data.get(p["class"], -1) for p in res.predictions])  # -1: a class the data lacks
        saved.append({"image": str(res.file.path), "target": classes[t], "predictions": res.predictions})
    metrics = classification_metrics(true, topk, classes)
    metrics["split"] = where
    return metrics, predictor.stats, warnings, saved
