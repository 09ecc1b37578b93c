"""``--backend openvino``: the same ONNX file through Intel's OpenVINO runtime (extra ``[openvino]``), the
runtime x86 users pick instead of onnxruntime, so the table shows where edgecnn stands against it.
Torch-free.

Settings, chosen so that the row compares like with like against onnxruntime's:

- ``PERFORMANCE_HINT=LATENCY`` and ``NUM_STREAMS=1``: one request at a time on all the threads
  (``benchmark_app``'s latency mode); ``INFERENCE_NUM_THREADS`` = ``--threads`` (0, OpenVINO's own
  choice, when not given).
- ``INFERENCE_PRECISION_HINT=f32`` for FP32, FP16 and INT8 files. OpenVINO's CPU plugin otherwise
  picks **bf16** on its own on CPUs with AVX512_BF16 or AMX (this host: yes), which is a precision
  change, not a faster FP32; ``inference_precision="bf16"`` asks for it on purpose (a separate row).
  FP16 files: OpenVINO decompresses the FP16 weights and computes in f32 unless the CPU has native
  FP16 (AVX512_FP16 / AMX-FP16); INT8 QDQ files run OpenVINO's own INT8 kernels (its low-precision
  transformations read the Q/DQ pairs).
- The model is reshaped to the static (batch, C, H, W) of the row before compiling: static shapes are
  OpenVINO's fast path, and onnxruntime's row runs the same shape.
- OpenVINO pins its threads to cores (``ENABLE_CPU_PINNING``, on by default); onnxruntime does not. The
  row's ``info`` records the effective settings read back from the compiled model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, UsageError, first_line, require

PRECISION_HINTS = ("f32", "bf16", "f16")
DEVICE = "CPU"


class OpenVINOError(EdgeCNNError):
    """OpenVINO could not read, reshape or compile the file."""


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _ov():
    return require("openvino", "openvino", "--backend openvino")


@dataclass
class OpenVINORunner:
    run: Callable[[], object]  # one batch through the compiled model
    load_s: float  # read + reshape + compile
    first_s: float  # first inference
    input: np.ndarray  # the random batch every call runs
    info: dict = field(default_factory=dict)


def compile_file(path: str | Path, *, batch: int = 1, threads: int | None = None,
                 size: tuple[int, int] | None = None, inference_precision: str = "f32",
                 seed: int = 0) -> OpenVINORunner:
    """Read ``path`` (ONNX), reshape it to (batch, C, H, W), compile it for the CPU and return a runner on a
    random input. ``size`` (height, width) is needed when the file's height/width are dynamic."""
    ov = _ov()
    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if inference_precision not in PRECISION_HINTS:
        raise UsageError(f"unknown OpenVINO inference precision '{inference_precision}'; "
                         f"choose one of: {', '.join(PRECISION_HINTS)}")
    if Path(path).suffix.lower() != ".onnx":
        raise UsageError(f"{path}: --backend openvino reads ONNX files (.onnx)")
    import onnx

    try:  # before OpenVINO, whose other frontends print parser noise on stderr for a file that is not ONNX
        onnx.load_model(str(path), load_external_data=False)
    except Exception as e:
        raise OpenVINOError(f"{path} is not a readable ONNX file: {first_line(e)}") from e
    core = ov.Core()
    t0 = time.perf_counter()
    try:
        model = core.read_model(str(path))
    except Exception as e:
        raise OpenVINOError(f"OpenVINO cannot read {path}: {_message(e)}") from e
    if len(model.inputs) != 1:
        raise OpenVINOError(f"{path}: OpenVINO rows take models with one image input, this one has "
                            f"{len(model.inputs)}")
    port = model.inputs[0]
    pshape = port.partial_shape
    if pshape.rank.is_dynamic or pshape.rank.get_length() != 4:
        raise OpenVINOError(f"{path}: the input is not an image batch (N, C, H, W): shape {pshape}")
    dims = [d.get_length() if d.is_static else None for d in pshape]
    if dims[1] is None:
        raise OpenVINOError(f"{path}: the input's channel count is dynamic; export it with a fixed one")
    hw = size or (dims[2], dims[3])
    if hw[0] is None or hw[1] is None:
        raise UsageError(f"{path}: the input's height/width are dynamic; give --input-size")
    if dims[0] is not None and dims[0] != batch:
        raise OpenVINOError(f"{path}: the file's batch is fixed at {dims[0]}; it cannot run batch {batch}")
    shape = [batch, dims[1], int(hw[0]), int(hw[1])]
    try:
        model.reshape({port.get_any_name(): shape})
        compiled = core.compile_model(model, DEVICE, {
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads or 0, "INFERENCE_PRECISION_HINT": inference_precision})
    except Exception as e:
        raise OpenVINOError(f"OpenVINO cannot compile {path} at {shape}: {_message(e)}") from e
    load_s = time.perf_counter() - t0
    request = compiled.create_infer_request()
    dtype = np.float16 if port.get_element_type() == ov.Type.f16 else np.float32
    x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype)

    def run():
        return request.infer({0: x}, share_inputs=True)

    t1 = time.perf_counter()
    run()
    first_s = time.perf_counter() - t1
    info = {"openvino": ov.__version__.split("-")[0], "device": DEVICE, "input_shape": shape}
    for key in ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                "ENABLE_CPU_PINNING"):
        try:
            value = compiled.get_property(key)
            info[key.lower()] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        except Exception:  # noqa: BLE001 - a property this OpenVINO version does not report
            pass
    return OpenVINORunner(run, load_s, first_s, x, info)


def _message(e: BaseException) -> str:
    """OpenVINO's exception text starts with the C++ source location; keep the first line that says what."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith(("Exception from", "E0000"))]
    return first_line(Exception(lines[0])) if lines else first_line(e)
