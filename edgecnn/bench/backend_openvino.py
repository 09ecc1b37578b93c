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
from pathlib import Path

import numpy as np

from edgecnn.bench.backends import Artifact, Backend, Runner
from edgecnn.bench.config import Config
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


class OpenVINORunner(Runner):
    """A compiled model at one static shape (the bench protocol's ``Runner``)."""

    def __init__(self, request, shape: list[int], dtype, load_s: float, info: dict, output_names: list[str]):
        self.request, self.shape, self.dtype = request, shape, dtype
        self.load_s, self.info, self.output_names = load_s, info, output_names

    def make_input(self, batch: int, seed: int = 0) -> np.ndarray:
        if batch != self.shape[0]:
            raise OpenVINOError(f"compiled for batch {self.shape[0]}, asked for {batch}")
        x = np.random.default_rng(seed).random(self.shape, dtype=np.float32)  # [0, 1) as the other backends
        return x.astype(self.dtype)

    def __call__(self, x: np.ndarray):
        return self.request.infer({0: x}, share_inputs=True)

    def run_numpy(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self.request.infer({0: np.ascontiguousarray(x, dtype=self.dtype)})
        return {name: np.asarray(out[name]) for name in self.output_names}  # the ONNX file's output names

    def close(self) -> None:
        self.request = None


def compile_file(path: str | Path, *, batch: int = 1, threads: int | None = None,
                 size: tuple[int, int] | None = None, inference_precision: str = "f32",
                 layout: str = "NCHW") -> OpenVINORunner:
    """Read ``path`` (ONNX), reshape it to (batch, C, H, W) (``layout`` NHWC: (batch, H, W, C)), compile it
    for the CPU. ``size`` (height, width) is needed when the file's height/width are dynamic."""
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
    c_at, hw_at = (3, (1, 2)) if layout == "NHWC" else (1, (2, 3))
    if dims[c_at] is None:
        raise OpenVINOError(f"{path}: the input's channel count is dynamic; export it with a fixed one")
    hw = size or (dims[hw_at[0]], dims[hw_at[1]])
    if hw[0] is None or hw[1] is None:
        raise UsageError(f"{path}: the input's height/width are dynamic; give --input-size")
    if dims[0] is not None and dims[0] != batch:
        raise OpenVINOError(f"{path}: the file's batch is fixed at {dims[0]}; it cannot run batch {batch}")
    shape = [batch, int(hw[0]), int(hw[1]), dims[3]] if layout == "NHWC" else [batch, dims[1], int(hw[0]), int(hw[1])]
    try:
        model.reshape({port.get_any_name(): shape})
        compiled = core.compile_model(model, DEVICE, {
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads or 0, "INFERENCE_PRECISION_HINT": inference_precision})
    except Exception as e:
        raise OpenVINOError(f"OpenVINO cannot compile {path} at {shape}: {_message(e)}") from e
    load_s = time.perf_counter() - t0
    dtype = np.float16 if port.get_element_type() == ov.Type.f16 else np.float32
    info = {"device": "cpu", "providers_used": [f"OpenVINO {ov.__version__.split('-')[0]} {DEVICE}"],
            "input_shape": shape}
    for key in ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                "ENABLE_CPU_PINNING"):
        try:
            value = compiled.get_property(key)
            info[key.lower()] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        except Exception:  # noqa: BLE001 - a property this OpenVINO version does not report
            pass
    threads_used = int(info.get("inference_num_threads", 0) or 0)
    info["threads_used"] = threads_used or None
    names = [o.get_any_name() for o in compiled.outputs]
    return OpenVINORunner(compiled.create_infer_request(), shape, dtype, load_s, info, names)


class OpenVinoBackend(Backend):
    """``--backend openvino``: ``mode`` "default" runs with the f32 precision hint, "bf16" with bf16."""

    name = "openvino"
    providers = ("cpu", "auto")  # --device; both mean OpenVINO's CPU plugin

    def check(self) -> None:
        _ov()

    def load(self, cfg: Config, art: Artifact) -> Runner:
        if cfg.mode not in ("default", "bf16"):
            raise UsageError(f"unknown OpenVINO mode '{cfg.mode}'; choose default or bf16")
        return compile_file(art.onnx_path, batch=cfg.batch, threads=cfg.threads,
                              size=(art.input_shape[1], art.input_shape[2]),  # (C, H, W) whatever the layout
                              inference_precision="bf16" if cfg.mode == "bf16" else "f32", layout=art.layout)


def _message(e: BaseException) -> str:
    """OpenVINO's exception text starts with the C++ source location; keep the first line that says what."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith(("Exception from", "E0000"))]
    return first_line(Exception(lines[0])) if lines else first_line(e)
