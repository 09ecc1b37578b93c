"""Bench backends: what runs a configuration's model call. The core (this module's interface and the
onnxruntime backend) is torch-free.

The interface
-------------
A backend is a class registered by name in ``BACKENDS`` ("name": "module:Class", imported only when
asked for, so an optional extra is imported only when its backend is used). It subclasses ``Backend``:

``name``            the ``--backend`` value.
``providers``       the values ``Config.provider`` may take, the first being the default
                    (``--provider`` for ort, ``--device`` for torch; the CLI maps "auto").
``check()``         raise ``MissingDependencyError`` (``edgecnn.errors.require``) when its extra is
                    missing; called once before a sweep, so a missing extra is one error, not N rows.
``expand(cfg)``     one configuration -> the configurations actually measured (torch on CUDA: eager,
                    channels_last FP16, cuda_graph, compile, as ``Config.mode``); default ``[cfg]``.
``load(cfg, art)``  -> a ``Runner``. ``art`` is an ``Artifact``: the target, the ONNX file of the
                    configuration's precision (and input size), its contract (or None), the input
                    (channels, height, width). Raise an ``EdgeCNNError`` with a one-line message for a
                    configuration that cannot run (its row shows it; the sweep goes on).

A ``Runner`` is one loaded model:

``make_input(batch)``  -> a backend-native input of shape (batch, C, H, W) (random, fixed seed),
                          already where the model runs (device memory for CUDA).
``__call__(x)``        the model call timed by the protocol: it must return only once the result is
                       computed (synchronise the device).
``run_numpy(x)``       (N, C, H, W) float32 NumPy -> {output name: NumPy array}; used by the end-to-end
                       mode, where copies to and from the device count as inference.
``info``               dict merged into the row: ``device`` ("cpu", "cuda", "gpu"; floors are given
                       for "cpu" rows only), ``providers_used`` (list), ``threads_used`` (int or None),
                       and anything the backend wants to add (free-form keys under ``backend_info``).
``close()``            release the session/model.

Adding a backend: write ``edgecnn/bench/backend_<name>.py`` with a ``Backend`` subclass and add one
line to ``BACKENDS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.bench.config import Config
from edgecnn.bench.targets import BenchError, Target
from edgecnn.contract import Contract
from edgecnn.errors import UsageError

BACKENDS: dict[str, str] = {
    "ort": "edgecnn.bench.backends:OrtBackend",
    "torch": "edgecnn.bench.backend_torch:TorchBackend",
    "openvino": "edgecnn.bench.backend_openvino:OpenVinoBackend",
}


@dataclass
class Artifact:
    """What a backend loads: ``onnx_path`` at the configuration's precision and size; ``input_shape``
    (C, H, W) as the model takes it; ``contract`` None for a foreign file without one."""

    target: Target
    onnx_path: Path
    contract: Contract | None
    input_shape: tuple[int, int, int]
    layout: str = "NCHW"


class Runner:
    info: dict

    def make_input(self, batch: int) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        raise NotImplementedError

    def run_numpy(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Backend:
    name = ""
    providers: tuple[str, ...] = ()

    def check(self) -> None:
        pass

    def expand(self, cfg: Config) -> list[Config]:
        return [cfg]

    def load(self, cfg: Config, art: Artifact) -> Runner:
        raise NotImplementedError


def get_backend(name: str) -> Backend:
    """The backend registered as ``name`` (an instance)."""
    if name not in BACKENDS:
        raise UsageError(f"unknown --runtime '{name}'; choose from: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise UsageError(f"--backend {name} is not part of this edgecnn version") from e
        raise
    return getattr(mod, cls)()


def random_input(batch: int, shape: tuple[int, int, int], layout: str = "NCHW", dtype=np.float32,
                 seed: int = 0) -> np.ndarray:
    """A fixed-seed batch in [0, 1) of (batch, C, H, W) (or NHWC), contiguous."""
    x = np.random.default_rng(seed).random((batch, *shape), dtype=np.float32)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x, dtype=dtype)


# ---- onnxruntime ---------------------------------------------------------------------------------


class OrtRunner(Runner):
    def __init__(self, cfg: Config, art: Artifact):
        from edgecnn.runtime.session import Engine

        # spinning pool threads: steady-state latency, as onnxruntime_perf_test measures it; a tuned row
        # (--runtime auto) runs with the options the profile kept, as infer --runtime auto does
        options = {"spinning": True, **dict(cfg.options)}
        self.engine = Engine(art.onnx_path, provider=cfg.provider, threads=cfg.threads, size=cfg.input_size,
                             **options)
        fixed = self.engine.fixed_batch
        if fixed is not None and fixed != cfg.batch:
            raise BenchError(f"{art.onnx_path.name} has a static batch of {fixed} and cannot take {cfg.batch}; "
                             "export it with a dynamic batch (edgecnn export --batch dynamic)")
        self.session = self.engine.session
        self.art = art
        device = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}
        self.info = {"device": device.get(self.engine.providers[0], "cpu"), "providers_used": self.engine.providers,
                     "threads_used": _ort_threads(self.session, cfg.threads)}
        self._outputs = self.engine.output_names
        self._name = self.engine.input_name

    def make_input(self, batch: int) -> dict[str, np.ndarray]:
        return {self._name: random_input(batch, self.art.input_shape, self.engine.contract.input_layout,
                                         self.engine.input_dtype)}

    def __call__(self, feed: dict[str, np.ndarray]) -> Any:
        return self.session.run(self._outputs, feed)

    def run_numpy(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.engine.run(x)

    def close(self) -> None:
        self.session = self.engine = None


def _ort_threads(session, requested: int | None) -> int | None:
    if requested is not None:
        return requested
    try:
        n = int(session.get_session_options().intra_op_num_threads)
    except Exception:
        n = 0
    return n or None  # 0: onnxruntime's default (one per physical core)


class OrtBackend(Backend):
    name = "ort"
    providers = ("auto", "cpu", "cuda", "tensorrt")

    def load(self, cfg: Config, art: Artifact) -> Runner:
        if cfg.provider not in self.providers:
            raise UsageError(f"unknown --provider '{cfg.provider}' for ort; choose from: {', '.join(self.providers)}")
        return OrtRunner(cfg, art)
