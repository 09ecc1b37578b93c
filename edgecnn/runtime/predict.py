"""Image files -> predictions, streamed in batches through an ``Engine``.

Decoding and preprocessing use ``image`` (the contract's transform), post-processing what the
contract's task says: ``classify``, ``detect`` (``yolo`` for the YOLO layouts) or ``raw`` (each
output's statistics); ``outputs`` refuses a task the graph's outputs cannot carry. Images are
decoded ahead on a small thread pool (``pipeline``) while the model runs; a file that cannot be
decoded becomes a result with an ``error`` and the stream goes on; results come out in input order,
and only a few batches of images are held at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from edgecnn.contract import Detection
from edgecnn.errors import UsageError
from edgecnn.runtime.classify import classify, label_of, looks_like_probabilities
from edgecnn.runtime.image import REDUCED, Geometry, ImageError, load_image, load_preprocessed
from edgecnn.runtime.outputs import check, check_scores
from edgecnn.runtime.pipeline import decode_workers, ordered_map
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import ImageFile


@dataclass
class Result:
    """One image's outcome. ``predictions``: classification ``{"rank", "class", "label", "score"}``
    or detection ``{"class", "label", "score", "box"}`` records, best first, or for ``raw`` one
    ``raw.describe`` record per output; ``size``: the upright original (width, height); ``image``:
    the decoded image, and ``arrays`` (raw: the outputs by name, batch dim 1), kept only when asked
    (for ``--save``)."""

    file: ImageFile
    size: tuple[int, int] | None = None
    predictions: list[dict] = field(default_factory=list)
    error: str | None = None
    image: Image.Image | None = None
    best: dict | None = None  # detection without predictions: {"class", "label", "score"} of the best score seen
    arrays: dict[str, np.ndarray] | None = None


@dataclass
class Stats:
    """Counts and seconds spent per stage, summed over the run."""

    ok: int = 0
    failed: int = 0
    decode_s: float = 0.0  # decode + preprocess
    infer_s: float = 0.0
    post_s: float = 0.0

    @property
    def images(self) -> int:
        return self.ok + self.failed


@dataclass
class _Item:
    file: ImageFile
    image: Image.Image | None = None
    x: np.ndarray | None = None
    geom: Geometry | None = None
    error: str | None = None
    seconds: float = 0.0  # decode + preprocess


def resolve_classes(items: Sequence[str], labels: Sequence[str] | None) -> list[int]:
    """``--classes`` values (indices or labels, comma-separated or repeated) -> class indices."""
    index = {name: i for i, name in enumerate(labels or [])}
    out = []
    for item in (p.strip() for text in items for p in text.split(",")):
        if not item:
            continue
        if item.isdigit():
            out.append(int(item))
        elif item in index:
            out.append(index[item])
        else:
            known = f"; labels: {', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}" if labels else ""
            raise UsageError(f"--classes: '{item}' is neither a class index nor a label of this model{known}")
    return sorted(set(out))


def classifier_output(outputs: Sequence[dict] | None, names: Sequence[str]) -> tuple[str, bool | None]:
    """The graph output a classifier's scores come from, and whether it holds logits (True: softmax
    them), probabilities (False) or is unknown (None: decided per batch by ``looks_like_probabilities``).

    The contract's ``kind`` says it (``logits`` | ``probabilities``); an entry without ``kind`` (an
    older or third-party contract) or a file without a contract is judged on the values themselves,
    never on the prose ``meaning``."""
    entries = [o for o in outputs or [] if o.get("name") in names]
    for o in entries:
        if o.get("kind") in ("logits", "probabilities"):
            return o["name"], o["kind"] == "logits"
    return (entries[0]["name"] if entries else names[0]), None


class Predictor:
    """Runs an engine over image files. ``conf``/``iou``/``max_det`` default to the contract's
    detection settings; ``classes`` keeps only those class indices (both tasks)."""

    def __init__(self, engine: Engine, *, topk: int = 5, conf: float | None = None, iou: float | None = None,
                 max_det: int | None = None, classes: Sequence[int] | None = None):
        self.engine, self.contract = engine, engine.contract
        self.topk, self.conf, self.iou, self.max_det = topk, conf, iou, max_det
        self.classes = None if classes is None else list(classes)
        self.stats = Stats()
        self.task = self.contract.task
        self.detection = self.contract.detection or Detection()
        self._cls_output, self._logits = classifier_output(self.contract.outputs, engine.output_names)
        check(self.contract, engine.output_shapes, engine.path, self._cls_output)  # a map read as classes: no
        # the task's post-processing module, imported here (a classifier never imports detect: cold start) so
        # that the first batch's postprocess time is the work, not an import
        self._post_module = _post_module(self.task, self.detection.layout)
        self._keep_arrays, self._scores_checked = False, False
        self.num_classes = self._num_classes()
        self._check_classes(self.num_classes)
        # --classes with a class count only a run tells: results (failed files too) wait for the first
        # inference, which checks it, so a bad index is an error before any result is out
        self._unchecked = bool(self.classes) and self.num_classes is None and self.task == "classify"
        if self.classes and self.task == "raw":
            raise UsageError("--classes: a raw model has no classes; its outputs are reported as they are")

    def _num_classes(self) -> int | None:
        """The model's class count before anything runs: from the graph's output shape where it is
        static, else from the labels; None when neither says (then the first batch tells)."""
        shapes = self.engine.output_shapes
        if self.task == "raw":
            return None
        if self.task == "classify":
            dims = shapes.get(self._cls_output, [])[1:]
            if dims and all(isinstance(d, int) and d > 0 for d in dims):
                return int(np.prod(dims))
        elif self.detection.layout != "edgecnn":
            from edgecnn.runtime import yolo

            heads = [d for d in shapes.values() if len(d) == 3]
            n = yolo.class_count(self.detection.layout, heads[0]) if heads else None
            if n is not None:
                return n
        elif self.detection.nms != "graph" and "scores" in shapes:
            dims = shapes["scores"]
            if len(dims) == 3 and isinstance(dims[2], int) and dims[2] > 0:
                return dims[2]
        return len(self.contract.labels) if self.contract.labels else None

    def _check_classes(self, n: int | None) -> None:
        if self.classes and n is not None and max(self.classes) >= n:
            raise UsageError(f"--classes: class {max(self.classes)} does not exist; the model has "
                             f"{n} classes (0-{n - 1})")

    def predict(self, files: Iterable[ImageFile], batch: int = 1, keep_images: bool = False,
                workers: int | None = None) -> Iterator[Result]:
        """Results in input order. ``workers`` threads decode ahead (None: ``decode_workers()``, one per
        core beyond the first; 0: decode inline), holding at most ``2 * batch + workers`` decoded
        images besides the batch being run."""
        if batch < 1:
            raise UsageError(f"--batch must be >= 1, got {batch}")
        workers = decode_workers() if workers is None else workers
        self._keep_arrays = keep_images and self.task == "raw"  # raw --save keeps outputs, not images
        keep_images = keep_images and self.task != "raw"

        def load(f: ImageFile) -> _Item:
            t0 = time.perf_counter()
            try:
                im, x, geom = self._load(f)
                if keep_images and REDUCED in im.info:  # annotate the whole image, not the reduced decode
                    im = load_image(f.path)
                item = _Item(f, im if keep_images else None, x, geom)
            except ImageError as e:
                item = _Item(f, error=str(e))
            item.seconds = time.perf_counter() - t0
            return item

        pending: list[_Item] = []
        ready = 0
        for _, item in ordered_map(load, files, workers, depth=2 * batch + workers):
            self.stats.decode_s += item.seconds
            pending.append(item)
            ready += item.error is None
            if ready == batch or (ready == 0 and not self._unchecked):  # a full batch, or only failures wait
                yield from self._flush(pending)
                pending, ready = [], 0
        if pending:
            yield from self._flush(pending)

    def _load(self, f: ImageFile) -> tuple[Image.Image, np.ndarray, Geometry]:
        """Decode and preprocess one input (``eval`` overrides it for images held in memory, e.g. IDX)."""
        return load_preprocessed(f.path, self.contract.preprocess)

    def _flush(self, items: list[_Item]) -> Iterator[Result]:
        good = [it for it in items if it.error is None]
        preds: list[tuple[list[dict], dict | None]] = []
        arrays: list = []
        if good:
            t0 = time.perf_counter()
            outputs = self.engine.run(good[0].x[None] if len(good) == 1 else np.stack([it.x for it in good]))
            t1 = time.perf_counter()
            preds = self._post_results(outputs, [it.geom for it in good])
            self.stats.infer_s += t1 - t0
            self.stats.post_s += time.perf_counter() - t1
            if self._keep_arrays:
                arrays = self._post_module.per_image(outputs, len(good))
        it_preds, it_arrays = iter(preds), iter(arrays)
        for it in items:
            if it.error is not None:
                self.stats.failed += 1
                yield Result(it.file, error=it.error)
            else:
                self.stats.ok += 1
                records, best = next(it_preds)
                yield Result(it.file, it.geom.orig_size, records, image=it.image, best=best,
                             arrays=next(it_arrays, None))

    def postprocess(self, outputs: dict[str, np.ndarray], geoms: list[Geometry]) -> list[list[dict]]:
        """A batch's outputs -> per image, the task's records (``bench --image`` times this too)."""
        return [records for records, _ in self._post_results(outputs, geoms)]

    def _post_results(self, outputs: dict[str, np.ndarray],
                      geoms: list[Geometry]) -> list[tuple[list[dict], dict | None]]:
        """Per image: the task's records, and for a detection without any, the best score seen
        (``Result.best``)."""
        labels = self.contract.labels
        if self.task == "raw":
            return [(r, None) for r in self._post_module.records(outputs, len(geoms))]
        if self.task == "classify":
            if not self._scores_checked:  # dynamic dims: the first batch shows what the output is
                check_scores(self._cls_output, outputs[self._cls_output].shape, self.engine.path)
                self._scores_checked = True
            out = outputs[self._cls_output].reshape(len(geoms), -1)
            self._check_classes(out.shape[1])  # a dynamic class dim without labels: checked at the first batch
            self._unchecked = False
            logits = self._logits if self._logits is not None else not looks_like_probabilities(out)
            return [(p, None) for p in classify(out, self.topk, labels, logits=logits, allowed=self.classes)]
        dets = self._post_module.postprocess(outputs, geoms, self.detection, self.engine.input_size,
                                             conf=self.conf, iou=self.iou, max_det=self.max_det, classes=self.classes)
        return [(d.to_records(labels), None if d.best is None else
                 {"class": d.best[0], "label": label_of(d.best[0], labels), "score": round(d.best[1], 6)})
                for d in dets]


def _post_module(task: str, layout: str):
    """The module that post-processes ``task``'s outputs (None for classify: ``classify`` is imported)."""
    if task == "raw":
        from edgecnn.runtime import raw

        return raw
    if task == "detect":
        from edgecnn.runtime import detect

        if layout != "edgecnn":
            from edgecnn.runtime import yolo  # noqa: F401  (detect.postprocess hands it the YOLO layouts)
        return detect
    return None
