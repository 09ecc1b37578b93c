"""OpenVINO beside onnxruntime: the one wrapper of Intel's runtime (extra ``[openvino]``) that ``Engine``
(``--runtime openvino``) and ``bench``'s OpenVINO rows both use. Torch-free.

``OpenVINOSession`` reads the same ONNX file and offers the slice of ``onnxruntime.InferenceSession`` that
``Engine`` uses (inputs, outputs, metadata, providers, ``run``), so the contract, the preprocessing and the
post-processing are the ones ``infer`` runs with onnxruntime: only the model call differs.

Settings, chosen so that OpenVINO computes what onnxruntime computes, as fast as it does it:

- ``PERFORMANCE_HINT=LATENCY`` and ``NUM_STREAMS=1``: one request at a time on all the threads
  (``benchmark_app``'s latency mode); ``INFERENCE_NUM_THREADS`` = ``threads`` (0, OpenVINO's own choice,
  when not given).
- ``INFERENCE_PRECISION_HINT=f32`` for FP32, FP16 and INT8 files. OpenVINO's CPU plugin otherwise picks
  **bf16** on its own on CPUs with AVX512_BF16 or AMX, which is a precision change (answers move beyond
  the parity tolerance), not a faster FP32; ``inference_precision="bf16"`` asks for it on purpose. FP16
  files: OpenVINO decompresses the FP16 weights and computes in f32 unless the CPU has native FP16; INT8
  QDQ files run OpenVINO's own INT8 kernels (its low-precision transformations read the Q/DQ pairs).
- Static shapes are OpenVINO's fast path: the model is reshaped to the shape of the batch it is given and
  compiled once per shape (a few shapes kept: a folder's last, smaller batch is a second one). A graph
  with a fixed shape is compiled as it is.
- OpenVINO pins its threads to cores (``ENABLE_CPU_PINNING``, on by default); onnxruntime does not.
  ``settings()`` reads the effective values back from the compiled model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, UsageError, first_line, require

PRECISION_HINTS = ("f32", "bf16", "f16")
DEVICE = "CPU"
MAX_SHAPES = 4  # compiled shapes kept per session (each holds its own compiled kernels)
# ONNX element types -> onnxruntime's type strings (what Engine reads)
_TYPES = {1: "tensor(float)", 10: "tensor(float16)", 11: "tensor(double)", 2: "tensor(uint8)", 3: "tensor(int8)",
          6: "tensor(int32)", 7: "tensor(int64)", 9: "tensor(bool)"}
SETTINGS = ("INFERENCE_NUM_THREADS", "NUM_STREAMS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
            "ENABLE_CPU_PINNING")


class OpenVINOError(EdgeCNNError):
    """OpenVINO could not read, reshape, compile or run the file."""


def available() -> bool:
    """Whether the ``[openvino]`` extra is installed (importable)."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def require_openvino(purpose: str = "--runtime openvino"):
    """The ``openvino`` module, or a one-line ``MissingDependencyError`` naming the ``[openvino]`` extra."""
    return require("openvino", "openvino", purpose)


def version() -> str:
    return require_openvino().__version__.split("-")[0]


@dataclass
class Port:
    """A graph input or output as onnxruntime describes it: dims are ints, names (dynamic) or None."""

    name: str
    shape: list
    type: str


class _Meta:
    def __init__(self, props: dict[str, str]):
        self.custom_metadata_map = props


class OpenVINOSession:
    """One ONNX file in OpenVINO, with the part of ``onnxruntime.InferenceSession``'s interface that
    ``Engine`` uses. ``compile(shape)`` compiles (and keeps) the model at one input shape; ``run`` compiles
    the shape it is fed on first use."""

    def __init__(self, path: str | Path, *, threads: int | None = None, inference_precision: str = "f32",
                 purpose: str = "--runtime openvino"):
        t0 = time.perf_counter()
        ov = require_openvino(purpose)
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}")
        if inference_precision not in PRECISION_HINTS:
            raise UsageError(f"unknown OpenVINO inference precision '{inference_precision}'; "
                             f"choose one of: {', '.join(PRECISION_HINTS)}")
        self.path = Path(path)
        if self.path.suffix.lower() != ".onnx":
            raise UsageError(f"{path}: edgecnn's OpenVINO runtime reads ONNX files (.onnx)")
        if not self.path.is_file():
            raise OpenVINOError(f"model file '{path}' not found")
        import onnx

        try:  # before OpenVINO, whose other frontends print parser noise on stderr for a file that is not ONNX
            proto = onnx.load_model(str(self.path), load_external_data=False)
        except Exception as e:
            raise OpenVINOError(f"{path} is not a readable ONNX file: {first_line(e)}") from e
        self._meta = {p.key: p.value for p in proto.metadata_props}
        if any(not o.type.tensor_type.HasField("shape") for o in proto.graph.output):
            try:  # output shapes as onnxruntime reports them: inferred where the file does not declare them
                proto = onnx.shape_inference.infer_shapes(proto)
            except Exception:  # noqa: BLE001 - inference is a courtesy; the declared (empty) shapes remain
                pass
        graph = proto.graph
        weights = {i.name for i in graph.initializer}
        self._inputs = [_port(v) for v in graph.input if v.name not in weights]
        self._outputs = [_port(v) for v in graph.output]
        del proto
        self._ov = ov
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(self.path))
        except Exception as e:
            raise OpenVINOError(f"OpenVINO cannot read {path}: {_message(e)}") from e
        self.read_s = time.perf_counter() - t0  # reading the file; compiling a shape comes on top
        self.config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads or 0,
                       "INFERENCE_PRECISION_HINT": inference_precision}
        self._compiled: dict[tuple, tuple] = {}  # shape -> (compiled model, infer request), oldest first

    # -- onnxruntime.InferenceSession's interface ----------------------------------------------------

    def get_inputs(self) -> list[Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[Port]:
        return list(self._outputs)

    def get_modelmeta(self) -> _Meta:
        return _Meta(dict(self._meta))

    def get_providers(self) -> list[str]:
        return [f"OpenVINO {self._ov.__version__.split('-')[0]} {DEVICE}"]

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``feed`` {input name: array} -> the outputs named (all when None), as onnxruntime returns them."""
        if len(feed) != 1:
            raise OpenVINOError(f"{self.path}: OpenVINO runs here take one input, got {len(feed)}")
        (name, x), = feed.items()
        compiled, request = self.compile(x.shape)
        try:
            request.infer({name: x})
        except Exception as e:
            raise OpenVINOError(f"{self.path}: inference failed: {_message(e)}") from e
        names = output_names or [o.name for o in self._outputs]
        return [np.array(request.get_tensor(compiled.output(n)).data) for n in names]  # a copy: the next call reuses

    # -- compiling -----------------------------------------------------------------------------------

    def compile(self, shape) -> tuple:
        """(compiled model, infer request) at input ``shape``, compiled on first use (the model reshaped to
        it where the graph's own shape is not static)."""
        key = tuple(int(d) for d in shape)
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        if len(self.model.inputs) != 1:
            raise OpenVINOError(f"{self.path}: OpenVINO runs here take models with one input, this one has "
                                f"{len(self.model.inputs)}")
        port = self.model.inputs[0]
        pshape = port.partial_shape
        try:
            if pshape.is_dynamic or list(pshape.to_shape()) != list(key):
                self.model.reshape({port.get_any_name(): list(key)})
            compiled = self.core.compile_model(self.model, DEVICE, self.config)
        except Exception as e:
            raise OpenVINOError(f"OpenVINO cannot compile {self.path} at {list(key)}: {_message(e)}") from e
        hit = (compiled, compiled.create_infer_request())
        if len(self._compiled) >= MAX_SHAPES:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = hit
        return hit

    def settings(self, shape) -> dict:
        """The effective settings of the model compiled at ``shape`` (read back from OpenVINO), lower-case keys."""
        compiled, _ = self.compile(shape)
        info = {}
        for key in SETTINGS:
            try:
                value = compiled.get_property(key)
                info[key.lower()] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
            except Exception:  # noqa: BLE001 - a property this OpenVINO version does not report
                pass
        return info

    def input_dtype(self):
        """NumPy dtype the model's input takes (f16 for an FP16 file that keeps FP16 inputs)."""
        return np.float16 if self.model.inputs[0].get_element_type() == self._ov.Type.f16 else np.float32


def _port(value_info) -> Port:
    t = value_info.type.tensor_type
    dims = None
    if t.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else _symbol(d.dim_param) for d in t.shape.dim]
    return Port(value_info.name, dims if dims is not None else [], _TYPES.get(t.elem_type, f"tensor({t.elem_type})"))


def _symbol(name: str) -> str | None:
    """A dynamic dim's name; None for none, or for the ``unk__N`` placeholders of ONNX's shape inference."""
    return None if not name or name.startswith("unk__") else name


def _message(e: BaseException) -> str:
    """OpenVINO's exception text starts with the C++ source location; keep the first line that says what."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith(("Exception from", "E0000"))]
    return first_line(Exception(lines[0])) if lines else first_line(e)
