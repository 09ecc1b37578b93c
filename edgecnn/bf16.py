"""bf16 inference: offered where the CPU computes bfloat16 natively, kept only where its answers agree with FP32.

OpenVINO's CPU plugin runs an FP32 file in bfloat16 when asked (``INFERENCE_PRECISION_HINT=bf16``,
``runtime/openvino.py``): on CPUs with AVX512_BF16 or AMX (``amx_bf16``) its convolutions and matrix products
then run on native bf16 kernels (AMX tiles), the same file, no conversion. Elsewhere (AVX2, AVX-512 without
BF16, ARM) there is no native bf16 to gain from, so edgecnn does not offer it (:func:`native`, a pure function
of the CPU's architecture and flags, so every branch is testable on any host).

bf16 keeps float32's range with 8 bits of mantissa (about 3 significant digits): a precision change, not a
faster FP32, so :func:`check` compares it with the FP32 file in onnxruntime (what ``infer`` runs) on the same
inputs before it may be chosen: the contract's preprocessing of calibration images where given, else of
``SAMPLES`` deterministic smooth random images. Judged as the export gate judges FP16 (``export.parity``):

- classifier: top-1 agreement >= ``TOLERANCE["top1"]`` (a flip between reference logits closer than
  2 x ``rel_tie`` x the output scale is a tie, counted apart) and the worst per-image cosine >= ``cosine``;
- detector: F1 of the final detections (``runtime.detect.agreement``, same class, IoU >= 0.5) >= ``f1``;
  where FP32 detects nothing on the inputs (random-init weights), the worst cosine of the raw outputs;
- anything else: the worst cosine of every output.

On random-init weights the check is numerical agreement, not accuracy: there is no accuracy to lose. Torch-free.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, first_line

NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's spelling
X86 = ("x86_64", "amd64", "i386", "i686", "x86")
TOLERANCE = {"top1": 0.99, "cosine": 0.999, "f1": 0.95, "rel_tie": 1e-2}
SAMPLES = 16
MATCH_IOU = 0.5


def native(machine: str, flags: set[str]) -> tuple[bool, str]:
    """Whether a CPU of architecture ``machine`` (``platform.machine()``) with ``flags`` has native bf16
    kernels for OpenVINO, and why (one line)."""
    have = [f for f in NATIVE_FLAGS if f in flags]
    if machine.lower() not in X86:
        return False, f"{machine or 'this CPU'}: OpenVINO's bf16 path is for x86 with AVX512_BF16 or AMX"
    if not have:
        return False, "this CPU has no native bf16 (neither avx512_bf16 nor amx_bf16): bf16 would be emulated"
    return True, f"native bf16 ({', '.join(have)})"


def host_native() -> tuple[bool, str]:
    """:func:`native` for the CPU this process runs on (CPUID where /proc/cpuinfo disagrees, as the INT8
    kernel choice reads it: an emulator's guest CPU, not the host's)."""
    from edgecnn.int8_kernel import process_flags

    return native(platform.machine(), process_flags())


class Bf16Error(EdgeCNNError):
    """The bf16 check could not run."""


def inputs(engine, calib: str | None = None, samples: int = SAMPLES) -> tuple[np.ndarray, str]:
    """(N, C, H, W) inputs through ``engine``'s contract: up to ``samples`` images of ``calib``, else
    ``samples`` smooth random images (upsampled noise, seeded); and what they are, in words."""
    pre = engine.contract.preprocess
    shape = (pre.channels, pre.height, pre.width)
    if calib is not None:
        from edgecnn.quantize import load_calibration  # quantize's calibration reader: one loader

        arrays, _, _ = load_calibration(calib, pre, shape, samples)
        return np.stack(arrays), f"{len(arrays)} images of {calib}"
    from PIL import Image

    from edgecnn.runtime.image import preprocess

    rng = np.random.default_rng(0)
    out = []
    for _ in range(samples):
        small = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((max(pre.width, 32), max(pre.height, 32)), Image.BILINEAR)
        out.append(preprocess(im, pre)[0])
    return np.stack(out), f"{samples} smooth random images (seeded; no --calib)"


def judge(ref: list[dict[str, np.ndarray]], got: list[dict[str, np.ndarray]], contract) -> dict:
    """Compare per-image outputs ``got`` (bf16) with ``ref`` (FP32), each a list of {output: (1, ...)}:
    ``passed``, ``judged_by``, ``value``, ``threshold``, ``cosine`` (worst per image over every output) and
    ``why`` (one line when it fails)."""
    from edgecnn.export.parity import compare

    n = len(ref)
    names = list(ref[0])
    cos = min(compare(np.concatenate([r[k] for r in ref]).reshape(n, -1),
                      np.concatenate([g[k] for g in got]).reshape(n, -1), n).cosine for k in names)
    res = {"images": n, "cosine": cos, "tolerance": dict(TOLERANCE)}
    task = contract.task
    if task == "classify":
        k = names[0]
        c = compare(np.concatenate([r[k] for r in ref]).reshape(n, -1),
                    np.concatenate([g[k] for g in got]).reshape(n, -1), n, TOLERANCE["rel_tie"])
        res.update(judged_by="top-1 agreement with FP32", value=c.top1, threshold=TOLERANCE["top1"], ties=c.ties)
    elif task == "detect":
        a = _detections(ref, got, contract)
        res["detections"] = a
        if a["ref"]:
            res.update(judged_by="F1 of the final detections with FP32's", value=a["f1"], threshold=TOLERANCE["f1"])
    if "judged_by" not in res:
        what = "FP32 detects nothing on these inputs: " if task == "detect" else ""
        res.update(judged_by=f"{what}worst cosine of the outputs with FP32's", value=cos,
                   threshold=TOLERANCE["cosine"])
    ok_value = res["value"] >= res["threshold"]
    ok_cos = cos >= TOLERANCE["cosine"]
    res["passed"] = bool(ok_value and ok_cos)
    if not ok_value:
        res["why"] = f"{res['judged_by']} {res['value']:.3f} < {res['threshold']} on {n} inputs"
    elif not ok_cos:
        res["why"] = f"worst cosine of the outputs with FP32's {cos:.5f} < {TOLERANCE['cosine']} on {n} inputs"
    return res


def _detections(ref, got, contract) -> dict:
    from edgecnn.contract import Detection
    from edgecnn.runtime.detect import agreement, postprocess
    from edgecnn.runtime.image import Geometry

    pre, spec = contract.preprocess, contract.detection or Detection()
    size = (pre.width, pre.height)
    geoms = [Geometry(size, (1.0, 1.0), (0.0, 0.0))]
    dets = {"ref": [], "got": []}
    for key, outs in (("ref", ref), ("got", got)):
        for out in outs:
            dets[key] += postprocess(out, geoms, spec, size)
    return agreement(dets["ref"], dets["got"], MATCH_IOU)


def check(path: str | Path, *, calib: str | None = None, samples: int = SAMPLES, threads: int | None = None,
          open_engine=None) -> dict:
    """bf16 (OpenVINO) against FP32 (onnxruntime) on ``path``'s inputs (:func:`inputs`), judged by :func:`judge`;
    ``inputs`` (what was fed) added. ``open_engine(path, runtime, inference_precision)`` opens an ``Engine``
    (a parameter so tests can give a stand-in for OpenVINO)."""
    from edgecnn.runtime.session import Engine

    def default_open(p, runtime, inference_precision):
        return Engine(p, runtime=runtime, threads=threads, inference_precision=inference_precision)

    opener = open_engine or default_open
    try:
        fp32 = opener(path, "ort", "f32")
        bf16 = opener(path, "openvino", "bf16")
    except EdgeCNNError:
        raise
    except Exception as e:  # noqa: BLE001 - OpenVINO's own exception types
        raise Bf16Error(f"{path}: bf16 check could not open the file: {first_line(e)}") from e
    x, what = inputs(fp32, calib, samples)
    ref = [fp32.run(x[i:i + 1]) for i in range(len(x))]
    got = [bf16.run(x[i:i + 1]) for i in range(len(x))]
    res = judge(ref, got, fp32.contract)
    res["inputs"] = what
    return res
