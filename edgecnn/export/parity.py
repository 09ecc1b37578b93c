"""The parity gate: does the ONNX file compute what the PyTorch model computes?

PyTorch (fp32, eval) and onnxruntime (CPU provider, default optimisations: what the device runs) on
fresh random inputs at several batch sizes. Reported per batch: max-abs error, max-abs relative to the
output scale (max |reference|), the worst per-sample cosine similarity, and top-1 agreement. A top-1
disagreement between classes the reference itself cannot tell apart is a numerical
tie, not a defect: where the reference's two logits differ by less than twice the tolerated error
(``rel`` x output scale), the flip is counted and reported apart, not failed.

onnxruntime's CPU provider runs a float16 file in float32 (it casts around every float16 node), so on
the CPU the comparison cannot see activations that overflow float16 on a device that computes in
float16 (a GPU). For fp16 the gate therefore also records PyTorch's largest activation and fails
above float16's largest finite value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgecnn.errors import EdgeCNNError, first_line

FP16_MAX = 65504.0
# rel = max-abs / max|reference|; top1 = agreement on non-tied samples.
TOLERANCES = {
    "fp32": {"rel": 1e-4, "cosine": 0.99999, "top1": 1.0},
    "fp16": {"rel": 1e-2, "cosine": 0.999, "top1": 0.99},
}


class ParityError(EdgeCNNError):
    """The exported file disagrees with the PyTorch model beyond tolerance."""


@dataclass
class BatchParity:
    batch: int
    height: int
    width: int
    max_abs: float
    rel: float
    cosine: float
    top1: float
    ties: int


@dataclass
class ParityReport:
    precision: str
    tolerance: dict[str, float]
    batches: list[BatchParity] = field(default_factory=list)
    passed: bool = True
    failure: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def compare(ref: np.ndarray, got: np.ndarray, batch: int, tie_rel: float = 1e-4, size: tuple[int, int] = (0, 0)
            ) -> BatchParity:
    """Metrics for (N, K) outputs ``got`` against reference ``ref``; a top-1 flip between reference
    logits closer than ``2 * tie_rel * max|ref|`` is a tie."""
    ref = ref.reshape(batch, -1).astype(np.float64)
    got = got.reshape(batch, -1).astype(np.float64)
    diff = np.abs(ref - got)
    max_abs = float(diff.max())
    scale = max(float(np.abs(ref).max()), 1e-12)
    num = (ref * got).sum(1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1)
    cosine = float(np.min(np.where(den > 0, num / np.maximum(den, 1e-300), 1.0)))
    a, b = ref.argmax(1), got.argmax(1)
    rows = np.arange(batch)
    tie = (a != b) & (ref[rows, a] - ref[rows, b] <= 2 * tie_rel * scale)
    real = (a != b) & ~tie
    counted = batch - int(tie.sum())
    top1 = 1.0 if counted == 0 else 1.0 - float(real.sum()) / counted
    return BatchParity(batch, size[0], size[1], max_abs, max_abs / scale, cosine, top1, int(tie.sum()))


def check(model, onnx_bytes: bytes, channels: int, cases: list[tuple[int, int, int]], precision: str,
          seed: int = 0) -> ParityReport:
    """Run the gate on each ``(batch, height, width)`` case; returns the report (``passed`` False with a
    ``failure`` line when out of tolerance)."""
    import onnxruntime as ort
    import torch

    tol = TOLERANCES[precision]
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a failing case is reported in the gate's own line, not as an ORT log
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    gen = torch.Generator().manual_seed(seed)
    report = ParityReport(precision, dict(tol))
    peak = {"value": 0.0, "module": ""}

    def record(mod, _inp, out):
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
            v = float(out.detach().abs().nan_to_num(0.0, 0.0, 0.0).max())
            if v > peak["value"]:
                peak["value"], peak["module"] = v, names[mod]

    names = {m: n or type(m).__name__ for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(record) for m in names if precision == "fp16" and not list(m.children())]
    try:
        for n, h, w in cases:
            x = torch.randn(n, channels, h, w, generator=gen)
            with torch.no_grad():
                ref = model(x).float().numpy()
            feed = x.numpy()
            if inp.type == "tensor(float16)":
                feed = feed.astype(np.float16)
            try:
                got = sess.run(None, {inp.name: feed})[0].astype(np.float32)
            except Exception as e:  # the graph refused this shape: a dynamic axis that is not really dynamic
                report.passed, report.failure = False, f"batch {n} at {h}x{w}: onnxruntime failed ({first_line(e)})"
                return report
            if got.shape != ref.shape:
                report.passed, report.failure = False, \
                    f"batch {n}: output shape {list(got.shape)} != {list(ref.shape)}"
                return report
            report.batches.append(compare(ref, got, n, tol["rel"], (h, w)))
    finally:
        for hook in hooks:
            hook.remove()
    for b in report.batches:
        bad = []
        if not np.isfinite(b.max_abs) or b.rel > tol["rel"]:
            bad.append(f"max-abs {b.max_abs:.3g} is {b.rel:.3g} of the output scale (limit {tol['rel']:g})")
        if b.cosine < tol["cosine"]:
            bad.append(f"cosine {b.cosine:.6f} < {tol['cosine']}")
        if b.top1 < tol["top1"]:
            bad.append(f"top-1 agreement {b.top1:.1%} < {tol['top1']:.0%}")
        if bad:
            report.passed, report.failure = False, f"{precision} batch {b.batch} at {b.height}x{b.width}: " + \
                ", ".join(bad)
            break
    if report.passed and peak["value"] > FP16_MAX:
        report.passed, report.failure = False, (
            f"fp16: activations reach {peak['value']:.3g} at '{peak['module']}', beyond float16's {FP16_MAX:g}; "
            "the file would overflow where float16 is computed (onnxruntime's CPU runs it in float32)")
    return report
