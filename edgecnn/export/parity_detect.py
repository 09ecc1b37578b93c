"""The parity gate for detectors: PyTorch vs onnxruntime on the raw outputs AND on the final detections.

Before NMS, ``boxes`` (N, A, 4) and ``scores`` (N, A, C) are compared as the classifier gate compares
logits (max-abs relative to the output scale, worst per-sample cosine). After NMS, the PyTorch outputs
go through ``edgecnn.runtime.detect.postprocess`` with the contract's settings and are matched to
onnxruntime's final detections (host NMS on its boxes/scores, or the graph's own ``detections``):
matched-box F1 (same class, IoU >= 0.9). Two candidates whose scores differ by less than twice the
tolerated score error are a numerical tie: NMS may keep either, so such swaps are counted apart as
``ties`` (as the classifier gate does with top-1 flips), not failed.

When PyTorch finds no detection above the contract's threshold in a batch (random-init weights score
every anchor about 1/C), an F1 of 1 over nothing would prove nothing, and a lower threshold does not
help: near-equal scores make any top-k a coin toss between PyTorch and onnxruntime. The batch is then
checked on a probe instead (``probe`` True in its row): the model's boxes with ``PROBE_SCORES`` synthetic
well-separated scores above the threshold per image, through the reference post-processing and through
the file's own NMS: for a graph-NMS file the part of its graph after ``boxes``/``scores`` (extracted with
``onnx.utils.Extractor``), for a host-NMS file its boxes through the host's. A file whose NMS or final
boxes are wrong fails there, whatever the weights.

The cases run through the classifier gate's loop (``parity.run_cases``), and for fp16 the same check of
PyTorch's activation range against float16's (``parity.activation_peak``): onnxruntime's CPU computes a
float16 file in float32, so only that range shows an overflow a float16 device would meet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from edgecnn.contract import Detection
from edgecnn.export.parity import TOLERANCES, activation_peak, compare, fp16_overflow, run_cases, session
from edgecnn.runtime.detect import agreement, postprocess
from edgecnn.runtime.image import Geometry

MIN_F1 = {"fp32": 1.0, "fp16": 0.95}
MATCH_IOU = 0.9
PROBE_SCORES = 300  # synthetic scores above the threshold per image when the model's pass none


@dataclass
class DetectionParity:
    batch: int
    height: int
    width: int
    boxes_rel: float | None  # None when the file only outputs detections (graph NMS)
    scores_rel: float | None
    scores_cosine: float | None
    detections: int  # final detections of the PyTorch model, all images
    f1: float
    mean_iou: float
    ties: int
    probe: bool = False  # detections/f1 are of the synthetic-score probe (the model's scores passed none)


@dataclass
class DetectionParityReport:
    precision: str
    tolerance: dict[str, float]
    nms: str
    batches: list[DetectionParity] = field(default_factory=list)
    passed: bool = True
    failure: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def check(model, onnx_bytes: bytes, channels: int, cases: list[tuple[int, int, int]], precision: str,
          spec: Detection, seed: int = 0) -> DetectionParityReport:
    """Gate a detector file on each ``(batch, height, width)`` case. The file outputs ``boxes`` and
    ``scores`` (host NMS) or ``detections`` (graph NMS, ``spec.nms == "graph"``)."""
    tol = {**TOLERANCES[precision], "f1": MIN_F1[precision], "match_iou": MATCH_IOU}
    host = replace(spec, nms="host")
    report = DetectionParityReport(precision, tol, spec.nms)
    nms = None  # the session of a graph-NMS file's NMS part, made when the probe first needs it
    with activation_peak(model, precision) as peak:
        for case in run_cases(model, onnx_bytes, channels, cases, seed):
            if case.error:
                report.passed, report.failure = False, case.error
                return report
            n, h, w = case.batch, case.height, case.width
            (boxes, scores), got = case.ref, case.got
            geoms = [Geometry((w, h), (1.0, 1.0), (0.0, 0.0))] * n
            ref = postprocess({"boxes": boxes, "scores": scores}, geoms, host, (w, h))
            row = DetectionParity(n, h, w, None, None, None, sum(len(d) for d in ref), 1.0, 1.0, 0)
            if "boxes" in got:
                if got["boxes"].shape != boxes.shape or got["scores"].shape != scores.shape:
                    report.passed, report.failure = False, (f"batch {n}: output shapes {list(got['boxes'].shape)}, "
                                                            f"{list(got['scores'].shape)} != {list(boxes.shape)}, "
                                                            f"{list(scores.shape)}")
                    return report
                b = compare(boxes, got["boxes"], n)
                s = compare(scores, got["scores"], n)
                row.boxes_rel, row.scores_rel, row.scores_cosine = b.rel, s.rel, s.cosine
            final = postprocess(got, geoms, spec, (w, h))
            if not row.detections:  # nothing passed the threshold: the probe (module docstring)
                row.probe = True
                probe_scores = _probe_scores(scores.shape, spec.conf, 1 if spec.background_class else 0, seed + n)
                ref = postprocess({"boxes": boxes, "scores": probe_scores}, geoms, host, (w, h))
                row.detections = sum(len(d) for d in ref)
                if "detections" in got:
                    if nms is None:
                        nms = session(_nms_part(onnx_bytes, *scores.shape[1:]))
                    got = {"detections": nms.run(None, {"boxes": boxes, "scores": probe_scores})[0]}
                else:
                    got = {"boxes": got["boxes"], "scores": probe_scores}
                final = postprocess({k: v.astype(np.float32) for k, v in got.items()}, geoms, spec, (w, h))
            # the probe's scores are equal on both sides and far apart: nothing there is a tie (a negative
            # tolerance), so a moved box cannot pass as a swap with its own score-equal twin
            a = agreement(ref, final, MATCH_IOU, tie=-1.0 if row.probe else 2 * tol["rel"])
            row.f1, row.mean_iou, row.ties = a["f1"], a["mean_iou"], a["ties"]
            report.batches.append(row)
            bad = _faults(row, a, tol)
            if bad:
                report.passed, report.failure = False, f"{precision} batch {n} at {h}x{w}: " + ", ".join(bad)
                return report
    if fp16_overflow(peak):
        report.passed, report.failure = False, fp16_overflow(peak)
    return report


def _faults(row: DetectionParity, a: dict, tol: dict) -> list[str]:
    """What is out of tolerance in one case's row (``a``: its ``agreement``)."""
    bad = []
    for label, rel in (("boxes", row.boxes_rel), ("scores", row.scores_rel)):
        if rel is not None and (not np.isfinite(rel) or rel > tol["rel"]):
            bad.append(f"{label} max-abs is {rel:.3g} of the output scale (limit {tol['rel']:g})")
    if row.scores_cosine is not None and row.scores_cosine < tol["cosine"]:
        bad.append(f"scores cosine {row.scores_cosine:.6f} < {tol['cosine']}")
    if a["ties"] * 2 > a["ref"] + a["got"]:  # a moved box beside its score-equal twin also looks like a tie
        bad.append(f"{a['ties']} of {a['ref'] + a['got']} final detections (PyTorch + onnxruntime) are unmatched "
                   f"but within score ties: too many to tell NMS swaps from wrong boxes")
    elif row.f1 < tol["f1"]:
        bad.append(f"final detections agree at F1 {row.f1:.3f} < {tol['f1']} ({a['matched']} of {a['ref']} "
                   f"PyTorch / {a['got']} onnxruntime boxes matched{' on the probe' if row.probe else ''})")
    return bad


def _probe_scores(shape: tuple[int, ...], conf: float, first: int, seed: int) -> np.ndarray:
    """(N, A, C) scores: zero but for ``PROBE_SCORES`` (anchor, class) pairs per image, drawn at random
    (classes from ``first``, past the background) with distinct scores spread over (conf, 1]."""
    n, a, c = shape
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.float32)
    k = min(PROBE_SCORES, a * (c - first))
    for i in range(n):
        flat = rng.choice(a * (c - first), size=k, replace=False)
        out[i, flat // (c - first), first + flat % (c - first)] = conf + (1 - conf) * (np.arange(1, k + 1) / k)
    return out


def _nms_part(onnx_bytes: bytes, anchors: int, classes: int) -> bytes:
    """The part of a graph-NMS file from its ``boxes`` (N, A, 4) / ``scores`` (N, A, C) tensors to
    ``detections``, as a model."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.utils import Extractor

    proto = onnx.load_from_string(onnx_bytes)
    known = {v.name for v in proto.graph.value_info}
    for name, last in (("boxes", 4), ("scores", classes)):  # no longer graph outputs: declare them
        if name not in known:
            proto.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", anchors, last]))
    return Extractor(proto).extract_model(["boxes", "scores"], ["detections"]).SerializeToString()
