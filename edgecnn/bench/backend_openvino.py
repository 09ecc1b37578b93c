"""``--runtime openvino`` rows (old spelling ``--backend openvino``): the same ONNX file through Intel's
OpenVINO runtime (extra ``[openvino]``), the runtime x86 users pick instead of onnxruntime, so the table
shows where edgecnn stands against it. Torch-free.

The wrapper and its settings (latency hint, one stream, ``INFERENCE_NUM_THREADS`` = ``--threads``, the f32
precision hint and why) are ``edgecnn.runtime.openvino``'s, the one ``infer --runtime openvino`` runs: a
row compiles the model at the static (batch, C, H, W) it measures (static shapes are OpenVINO's fast
path, and onnxruntime's row runs the same shape). The row's ``info`` records the effective settings read
back from the compiled model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgecnn.bench.backends import Artifact, Backend, Runner
from edgecnn.bench.config import Config
from edgecnn.errors import UsageError
from edgecnn.runtime.openvino import (  # noqa: F401  (re-exported: the bench's names since before the runtime)
    DEVICE,
    PRECISION_HINTS,
    OpenVINOError,
    OpenVINOSession,
    available,
    require_openvino,
)


def _ov():
    return require_openvino("--runtime openvino")


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
    """Read ``path`` (ONNX), compile it for the CPU at (batch, C, H, W) (``layout`` NHWC: (batch, H, W, C)).
    ``size`` (height, width) is needed when the file's height/width are dynamic."""
    _ov()
    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    session = OpenVINOSession(path, threads=threads, inference_precision=inference_precision,
                              purpose="--runtime openvino")
    if len(session.model.inputs) != 1:
        raise OpenVINOError(f"{path}: OpenVINO rows take models with one image input, this one has "
                            f"{len(session.model.inputs)}")
    pshape = session.model.inputs[0].partial_shape
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
    t0 = time.perf_counter()
    compiled, request = session.compile(shape)
    load_s = session.read_s + time.perf_counter() - t0
    info = {"device": "cpu", "providers_used": session.get_providers(), "input_shape": shape,
            **session.settings(shape)}
    threads_used = int(info.get("inference_num_threads", 0) or 0)
    info["threads_used"] = threads_used or None
    names = [o.get_any_name() for o in compiled.outputs]
    return OpenVINORunner(request, shape, session.input_dtype(), load_s, info, names)


class OpenVinoBackend(Backend):
    """``--runtime openvino``: ``mode`` "default" runs with the f32 precision hint, "bf16" with bf16, "auto" (a
    tuned row) with the profile's (``inference_precision`` among ``cfg.options``; f32 when it has none)."""

    name = "openvino"
    providers = ("cpu", "auto")  # --device; both mean OpenVINO's CPU plugin

    def check(self) -> None:
        _ov()

    def load(self, cfg: Config, art: Artifact) -> Runner:
        if cfg.mode not in ("default", "auto", "bf16"):
            raise UsageError(f"unknown OpenVINO mode '{cfg.mode}'; choose default or bf16")
        return compile_file(art.onnx_path, batch=cfg.batch, threads=cfg.threads,
                              size=(art.input_shape[1], art.input_shape[2]),  # (C, H, W) whatever the layout
                              inference_precision=_hint(cfg), layout=art.layout)


def _hint(cfg: Config) -> str:
    if cfg.mode == "auto":
        return dict(cfg.options).get("inference_precision", "f32")
    return "bf16" if cfg.mode == "bf16" else "f32"
