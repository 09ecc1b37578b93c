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

The loop over the cases (fresh seeded inputs, PyTorch, onnxruntime, its failures, the fp16 activation
range) is ``run_cases``, shared with the detector gate (``parity_detect``), which compares other outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

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


@dataclass
class Case:
    """One case of a gate: the input, PyTorch's outputs (float32) and onnxruntime's by name, or ``error``,
    the one line saying why onnxruntime could not run it."""

    batch: int
    height: int
    width: int
    x: Any  # torch.Tensor (N, C, H, W)
    ref: tuple[np.ndarray, ...]
    got: dict[str, np.ndarray] | None
    error: str = ""


def session(onnx_bytes: bytes):
    """onnxruntime's CPU provider with its default optimisations: what the device runs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # a failing case is reported in the gate's own line, not as an ORT log
    return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])


def run_cases(model, onnx_bytes: bytes, channels: int, cases: list[tuple[int, int, int]],
              seed: int = 0) -> Iterator[Case]:
    """The loop both gates share: for each ``(batch, height, width)`` a fresh input from a generator seeded
    with ``seed`` (same seed, same inputs), PyTorch's outputs and the file's (fed float16 where its input
    is), onnxruntime's failure as one line."""
    import torch

    sess = session(onnx_bytes)
    inp = sess.get_inputs()[0]
    names = [o.name for o in sess.get_outputs()]
    gen = torch.Generator().manual_seed(seed)
    for n, h, w in cases:
        x = torch.randn(n, channels, h, w, generator=gen)
        with torch.no_grad():
            out = model(x)
        ref = tuple(t.float().numpy() for t in (out if isinstance(out, (tuple, list)) else (out,)))
        feed = x.numpy().astype(np.float16) if inp.type == "tensor(float16)" else x.numpy()
        try:
            got = {k: v.astype(np.float32) for k, v in zip(names, sess.run(None, {inp.name: feed}), strict=True)}
        except Exception as e:  # the graph refused this shape: a dynamic axis that is not really dynamic
            yield Case(n, h, w, x, ref, None, f"batch {n} at {h}x{w}: onnxruntime failed ({first_line(e)})")
            return
        yield Case(n, h, w, x, ref, got)


@contextmanager
def activation_peak(model, precision: str) -> Iterator[dict]:
    """For fp16: ``{"value", "module"}``, the largest finite activation magnitude of ``model``'s leaf
    modules over the forward passes inside the block, and where; for fp32 nothing is recorded."""
    import torch

    peak = {"value": 0.0, "module": ""}

    def record(mod, _inp, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                v = float(t.detach().abs().nan_to_num(0.0, 0.0, 0.0).max())
                if v > peak["value"]:
                    peak["value"], peak["module"] = v, names[mod]

    names = {m: n or type(m).__name__ for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(record) for m in names if precision == "fp16" and not list(m.children())]
    try:
        yield peak
    finally:
        for hook in hooks:
            hook.remove()


def fp16_overflow(peak: dict) -> str:
    """The failure line when the recorded activations exceed float16's range, else ""."""
    if peak["value"] <= FP16_MAX:
        return ""
    return (f"fp16: activations reach {peak['value']:.3g} at '{peak['module']}', beyond float16's {FP16_MAX:g}; "
            "the file would overflow where float16 is computed (onnxruntime's CPU runs it in float32)")


def check(model, onnx_bytes: bytes, channels: int, cases: list[tuple[int, int, int]], precision: str,
          seed: int = 0) -> ParityReport:
    """Run the gate on each ``(batch, height, width)`` case; returns the report (``passed`` False with a
    ``failure`` line when out of tolerance)."""
    tol = TOLERANCES[precision]
    report = ParityReport(precision, dict(tol))
    with activation_peak(model, precision) as peak:
        for case in run_cases(model, onnx_bytes, channels, cases, seed):
            n, h, w = case.batch, case.height, case.width
            if case.error:
                report.passed, report.failure = False, case.error
                return report
            ref, got = case.ref[0], next(iter(case.got.values()))
            if got.shape != ref.shape:
                report.passed, report.failure = False, \
                    f"batch {n}: output shape {list(got.shape)} != {list(ref.shape)}"
                return report
            report.batches.append(compare(ref, got, n, tol["rel"], (h, w)))
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
    if report.passed and fp16_overflow(peak):
        report.passed, report.failure = False, fp16_overflow(peak)
    return report
