"""The inference engine: a runtime session with a chosen provider, thread count and graph
optimisation level, plus the file's deploy contract (or one derived from the graph for an ONNX
file exported by another tool). onnxruntime + NumPy only; no torch.

Two runtimes sit behind it: onnxruntime (``runtime="ort"``, the default) and OpenVINO (``"openvino"``,
extra ``[openvino]``, ``runtime/openvino.py``), which offers the slice of onnxruntime's session used here;
the contract, preprocessing and post-processing are the same whichever runs the model.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecnn import registry
from edgecnn.contract import ContractError, Overrides, check_input, from_metadata
from edgecnn.errors import EdgeCNNError, UsageError, first_line
from edgecnn.runtime.outputs import graph_contract

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
PROVIDER_CHOICES = ("auto", *PROVIDERS)  # auto: the first available of tensorrt, cuda, cpu
GRAPH_OPT = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
RUNTIMES = {"ort": "onnxruntime", "openvino": "OpenVINO"}  # --runtime value -> the runtime's name
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class EngineError(EdgeCNNError):
    """A model file that cannot be loaded or run."""


def resolve_model(model: str, export_dir: str | Path = "export") -> Path:
    """``--model``: an ONNX file path, or a zoo name meaning ``<export_dir>/<name>.onnx``.

    A zoo name whose file is missing is an error saying how to make it (``edgecnn export NAME``);
    an unknown name is the registry's did-you-mean error."""
    path = Path(model)
    if path.is_file():
        return path
    if path.suffix.lower() == ".onnx" or path.parent != Path("."):
        raise EngineError(f"model file '{model}' not found")
    exported = Path(export_dir) / f"{model}.onnx"
    if exported.is_file():
        return exported
    card = registry.get_card(model)  # raises UnknownModelError with a suggestion
    # a file whose predictions mean something: the card's published weights
    weights = f" --weights {card.pretrained[0].dataset.lower()}" if card.pretrained else ""
    raise EngineError(f"{exported} not found; make it with: edgecnn export {model}{weights}")


def choose_providers(provider: str, available: Sequence[str] | None = None) -> list[str]:
    """``auto|cpu|cuda|tensorrt`` -> the onnxruntime providers list, CPU last as the fallback for
    nodes a GPU provider does not take. An explicit provider that is not available is an error
    listing the available ones."""
    available = list(ort.get_available_providers() if available is None else available)
    if provider == "auto":
        return [p for p in PROVIDERS.values() if p in available] or ["CPUExecutionProvider"]
    if provider not in PROVIDERS:
        raise UsageError(f"unknown --provider '{provider}'; choose one of: {', '.join(PROVIDER_CHOICES)}")
    wanted = PROVIDERS[provider]
    if wanted not in available:
        short = {v: k for k, v in PROVIDERS.items()}
        names = ", ".join(short.get(p, p) for p in available if p in short) or "none"
        raise EngineError(f"provider '{provider}' ({wanted}) is not available in this onnxruntime; "
                          f"available: {names}")
    chain = list(PROVIDERS.values())
    return [p for p in chain[chain.index(wanted):] if p in available]


def session_options(threads: int | None = None, graph_opt: str = "all", spinning: bool = False,
                    affinity: bool = False, optimized_out: str | Path | None = None) -> ort.SessionOptions:
    """threads: intra-op threads (None: onnxruntime's default, one per physical core); one inter-op
    thread (CNNs are a chain). ``spinning=False`` lets idle pool threads sleep at once instead of
    busy-waiting, so they do not steal a small device's cores from image decoding between batches
    (``bench`` turns it on to measure steady-state latency). ``affinity``: pin each pool thread to its
    own physical core (``thread_affinities``; needs ``threads``). ``optimized_out``: onnxruntime writes
    the optimised graph there (host-specific at level "all": ``edgecnn tune`` caches it per host)."""
    if graph_opt not in GRAPH_OPT:
        raise UsageError(f"unknown graph optimisation level '{graph_opt}'; choose one of: {', '.join(GRAPH_OPT)}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = GRAPH_OPT[graph_opt]
    opts.intra_op_num_threads = threads or 0
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if affinity and threads and threads > 1:
        opts.add_session_config_entry("session.intra_op_thread_affinities", thread_affinities(threads))
    if optimized_out is not None:
        opts.optimized_model_filepath = str(optimized_out)
    opts.log_severity_level = 3  # onnxruntime's warnings are not the user's business; errors still raise
    return opts


def thread_affinities(threads: int) -> str:
    """onnxruntime's ``session.intra_op_thread_affinities`` for ``threads`` intra-op threads: the calling
    thread runs unpinned (it is the first of the pool), each of the ``threads - 1`` others gets its own
    physical core of those this process may use, after the first one (onnxruntime counts processors from 1)."""
    from edgecnn.threads import SYS_CPU, allowed_cpus

    firsts: dict[tuple[str, str], int] = {}  # one logical CPU per physical core: hyper-thread siblings share one
    for cpu in allowed_cpus():
        topo = SYS_CPU / f"cpu{cpu}" / "topology"
        try:
            core = ((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip())
        except OSError:
            core = ("", str(cpu))
        firsts.setdefault(core, cpu)
    cpus = list(firsts.values()) or [0]
    picked = [cpus[(i + 1) % len(cpus)] for i in range(threads - 1)]
    return ";".join(str(c + 1) for c in picked)


class Engine:
    """One loaded model.

    ``runtime``: "ort" (onnxruntime; ``provider``, ``graph_opt``, ``spinning`` are its settings) or "openvino"
    (OpenVINO's CPU plugin; ``provider`` auto or cpu; ``inference_precision`` f32, or bf16 for ``--precision
    bf16``: ``edgecnn.bf16``). ``edgecnn.runtime.choice`` turns ``--runtime auto`` into one of them.
    ``contract``: the file's contract, or one derived from the graph (``from_graph`` True); when
    its preprocessing was assumed (no contract, or an INT8 file made from such a file) ``warnings``
    say what. ``overrides`` (the options every command shares, ``edgecnn.cli.prep_options``) and the
    shorthands ``size``/``mean``/``std``/``labels``/``decode``/``task``/``layout`` edit the contract. ``run`` takes the
    preprocessed batch (N, C, H, W) float32 and returns the graph outputs by name.
    """

    def __init__(self, path: str | Path, *, provider: str = "auto", threads: int | None = None,
                 graph_opt: str = "all", spinning: bool = False, affinity: bool = False,
                 optimized_model: str | Path | None = None, size: tuple[int, int] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 labels: Sequence[str] | None = None, decode: str | None = None, task: str | None = None,
                 layout: str | None = None, overrides: Overrides | None = None, runtime: str = "ort",
                 inference_precision: str = "f32"):
        self.path = Path(path)
        if runtime not in RUNTIMES:
            raise UsageError(f"unknown --runtime '{runtime}'; choose one of: {', '.join(RUNTIMES)}, auto")
        self.runtime = runtime
        self.resolved = None  # what --runtime resolved to, and why (set by runtime.choice.open_engine)
        over = dataclasses.replace(overrides or Overrides(), **{k: v for k, v in (
            ("size", size), ("mean", None if mean is None else tuple(mean)),
            ("std", None if std is None else tuple(std)), ("labels", None if labels is None else list(labels)),
            ("decode", decode), ("task", task), ("layout", layout)) if v is not None})
        self.warnings: list[str] = []
        t0 = time.perf_counter()
        if runtime == "openvino":
            if provider not in ("auto", "cpu"):
                raise UsageError(f"--provider {provider} is onnxruntime's; --runtime openvino runs on the CPU "
                                 "(--provider auto or cpu)")
            if graph_opt != "all":
                raise UsageError(f"--graph-opt {graph_opt} is onnxruntime's; OpenVINO optimises the graph itself "
                                 "(leave --graph-opt out with --runtime openvino)")
            from edgecnn.runtime.openvino import OpenVINOSession

            providers = []
            self.session = OpenVINOSession(self.path, threads=threads, inference_precision=inference_precision)
        else:
            if inference_precision != "f32":
                raise UsageError(f"inference precision {inference_precision} is OpenVINO's; onnxruntime runs the "
                                 "file at its own precision (give --runtime openvino)")
            providers = choose_providers(provider)
            # onnxruntime's saved optimised graph of this file (``edgecnn tune`` caches it per host): already
            # optimised, so it is opened without optimising again; it carries the file's metadata (the contract)
            source, level = self.path, graph_opt
            if optimized_model is not None and Path(optimized_model).is_file() and \
                    providers[0] == "CPUExecutionProvider":
                source, level = Path(optimized_model), "disable"
            self.session = _open(source, session_options(threads, level, spinning, affinity), providers)
        self.load_s = time.perf_counter() - t0
        self.providers: list[str] = self.session.get_providers()
        if providers and provider != "auto" and self.providers[0] != providers[0]:
            raise EngineError(f"provider '{provider}' failed to start for {self.path} (onnxruntime fell back to "
                              f"{self.providers[0]}); check the CUDA/TensorRT libraries")
        self.threads, self.graph_opt, self.inference_precision = threads, graph_opt, inference_precision
        try:
            contract = from_metadata(self.session.get_modelmeta().custom_metadata_map)
        except ContractError as e:
            raise ContractError(f"{self.path}: {e}") from e
        self.from_graph = contract is None
        try:
            if contract is None:
                ins = [(i.name, list(i.shape)) for i in self.session.get_inputs()]
                outs = [(o.name, list(o.shape)) for o in self.session.get_outputs()]
                self.contract = graph_contract(self.path.stem, ins, outs, over,
                                               self.session.get_modelmeta().custom_metadata_map, where=self.path)
            else:
                self.contract = over.apply(contract)
        except ContractError as e:
            raise ContractError(f"{self.path}: {e}") from e
        if self.contract.assumed:
            said = (f"{self.path.name} has no edgecnn contract; assuming" if self.from_graph else
                    f"{self.path.name} was made from a file without a contract, which assumed")
            self.warnings.append(f"{said} {self.contract.assumed}; override with --size/--mean/--std/--labels, or "
                                 f"write the right ones into the file once with 'edgecnn contract'")
        inputs = {i.name: i for i in self.session.get_inputs()}
        if self.contract.input_name not in inputs:
            raise ContractError(f"{self.path}: the contract's input '{self.contract.input_name}' is not in the "
                                f"graph (inputs: {', '.join(inputs)})")
        graph_input = inputs[self.contract.input_name]
        self.input_name = graph_input.name
        self.input_shape = list(graph_input.shape)
        self.input_dtype = _DTYPES.get(graph_input.type)
        if self.input_dtype is None:
            raise EngineError(f"{self.path}: input '{self.input_name}' is {graph_input.type}; edgecnn feeds float "
                              "tensors")
        self.output_names = [o.name for o in self.session.get_outputs()]
        # dims as the graph declares them: ints where static, names/None where dynamic
        self.output_shapes = {o.name: list(o.shape) for o in self.session.get_outputs()}
        batch_dim = self.input_shape[0] if self.input_shape else None
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        check_input(self.contract, self.input_shape, self.path)
        if runtime == "openvino":  # compile the shape the first batch will have now, so load_s counts it
            t0 = time.perf_counter()
            self.session.compile(self.batch_shape(self.fixed_batch or 1))
            self.load_s += time.perf_counter() - t0

    def batch_shape(self, n: int) -> list[int]:
        """The graph input's shape for ``n`` images at the contract's size (NCHW or NHWC as the graph takes it)."""
        pre = self.contract.preprocess
        if self.contract.input_layout == "NHWC":
            return [n, pre.height, pre.width, pre.channels]
        return [n, pre.channels, pre.height, pre.width]

    @property
    def task(self) -> str:
        return self.contract.task

    @property
    def input_size(self) -> tuple[int, int]:
        """The network input as (width, height)."""
        return self.contract.preprocess.width, self.contract.preprocess.height

    # -- running ----------------------------------------------------------------------------------

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """(N, C, H, W) float32 -> {output name: array with leading dim N}. A graph with a fixed
        batch size is fed in chunks of that size (the last one zero-padded)."""
        x = np.asarray(batch)
        if self.contract.input_layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        n, fixed = len(x), self.fixed_batch
        if fixed is None or n == fixed:
            return self._run(x)
        parts = []
        for i in range(0, n, fixed):
            chunk = x[i:i + fixed]
            if len(chunk) < fixed:
                chunk = np.concatenate([chunk, np.zeros((fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            parts.append(self._run(chunk))
        return {k: np.concatenate([p[k] for p in parts])[:n] for k in self.output_names}

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self.output_names, {self.input_name: x})
        except Exception as e:  # onnxruntime raises its own exception types, all plain Exception
            raise EngineError(f"{self.path}: inference failed: {first_line(e)}") from e
        return dict(zip(self.output_names, values, strict=True))

    def describe(self) -> dict:
        """Session facts for reports: file, runtime, provider chain, threads, graph optimisation, load time."""
        d = {"model": str(self.path), "task": self.task, "runtime": self.runtime, "providers": self.providers,
             "threads": self.threads, "graph_opt": self.graph_opt, "load_s": round(self.load_s, 4),
             "contract": "graph" if self.from_graph else "file", "weights": self.contract.weights}
        if self.inference_precision != "f32":
            d["inference_precision"] = self.inference_precision
        return d


def _open(path: Path, opts: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    if not path.is_file():
        raise EngineError(f"model file '{path}' not found")
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as e:  # InvalidProtobuf, Fail, NoSuchFile...: all plain Exception subclasses
        raise EngineError(f"{path}: not a loadable ONNX model ({first_line(e)})") from e
