"""``--backend torch``: PyTorch on the same weights as the ONNX row, the side-by-side that shows what the
export bought. Needs the ``[torch]`` extra; torch is imported inside the functions only.

Targets are zoo names (random-init weights with the seed ``edgecnn export`` uses, so both rows run the
same numbers) and edgecnn checkpoints / torchvision state dicts (``export`` reads them the same way). An
ONNX file has no PyTorch model behind it and is refused with a one-line error.

Modes (``Config.mode``), each measured as one callable that runs one batch and returns when the result
is ready:

- ``eager``: the module as written (NCHW). On CPU the only mode; ``--threads`` sets torch's intra-op pool.
- ``channels_last``: NHWC memory format (what cuDNN's tensor-core convolutions want); with ``fp16`` this
  is the "FP16 channels-last" GPU row.
- ``cuda_graph``: channels-last, captured once into a ``torch.cuda.CUDAGraph`` and replayed: one launch
  for the whole network instead of one per kernel, which is what dominates at batch 1 on a fast GPU.
  Capture follows the PyTorch rules: static input/output tensors, warm-up on a side stream before the
  capture (cuDNN autotuning and the allocator must not run inside it), new inputs ``copy_``-ed into the
  static input, no host synchronisation inside the captured region.
- ``compile``: channels-last, ``torch.compile(mode="reduce-overhead")`` (Inductor kernels replayed through
  CUDA graphs); compiled and recorded during the warm-up calls, which are excluded from the timing.

CUDA timing: every call ends with ``torch.cuda.synchronize()``, so the host clock the protocol puts
around the call brackets the GPU work (kernels are asynchronous; without the synchronisation it would
time the launch only). ``gpu_time_ms`` gives the cuda-event time of the same work for a cross-check.
The GPU modes were written from PyTorch's documentation and have NOT been run on a GPU by this
project yet (no GPU machine); ``benchmarks/gpu_rows.py`` records them on one in a single call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgecnn import registry
from edgecnn.bench.backends import Artifact, Backend, Runner, random_input
from edgecnn.bench.config import Config
from edgecnn.errors import EdgeCNNError, UsageError, require

MODES = ("eager", "channels_last", "cuda_graph", "compile")
DEVICES = ("cpu", "cuda")
# The GPU rows of the issue: eager FP32, FP16 channels-last, CUDA-graph replay, torch.compile reduce-overhead.
GPU_ROWS = (("fp32", "eager"), ("fp16", "channels_last"), ("fp16", "cuda_graph"), ("fp16", "compile"))
WARMUP_CALLS = 3  # cuda_graph: side-stream warm-up before capture; compile: compile, record, first replay


class TorchBackendError(EdgeCNNError):
    """A configuration the torch backend cannot run (reported in its row; the sweep goes on)."""


@dataclass
class TorchModel:
    model: object  # torch.nn.Module, eval mode, on the CPU
    name: str
    channels: int
    size: tuple[int, int]
    weights: str  # "random-init (seed 0)" or the weights file


def cuda_available() -> bool:
    torch = require("torch", "torch", "--backend torch")
    return bool(torch.cuda.is_available())


def check(device: str, precision: str, mode: str) -> None:
    """Raise a one-line error for a combination the torch backend cannot run here (before any work)."""
    if device not in DEVICES:
        raise UsageError(f"unknown --device '{device}' for --backend torch; choose one of: {', '.join(DEVICES)}")
    if mode not in MODES:
        raise UsageError(f"unknown torch mode '{mode}'; choose one of: {', '.join(MODES)}")
    if precision == "int8":
        raise TorchBackendError("int8 is not a torch backend precision (INT8 is onnxruntime's QDQ file); "
                                "use --backend ort")
    if precision not in ("fp32", "fp16"):
        raise UsageError(f"unknown --precision '{precision}' for --backend torch; choose fp32 or fp16")
    if device == "cpu":
        if precision == "fp16":
            raise TorchBackendError("fp16 on the CPU is not a speed mode in PyTorch (no fast FP16 kernels); "
                                    "use --device cuda or --precision fp32")
        if mode in ("cuda_graph", "compile"):
            raise TorchBackendError(f"mode {mode} is a GPU row; use --device cuda")
        return
    if not cuda_available():
        raise TorchBackendError("CUDA not available (torch.cuda.is_available() is False: no GPU, or a CPU build "
                                "of torch)")


def load_model(target: str, input_size: tuple[int, int] | None = None, seed: int = 0) -> TorchModel:
    """A zoo name or a checkpoint -> the PyTorch model in eval mode, built as ``edgecnn export`` builds it."""
    torch = require("torch", "torch", "--backend torch")
    if Path(target).suffix.lower() == ".onnx":
        raise TorchBackendError(f"{target}: --backend torch needs a zoo name or a checkpoint; an ONNX file has "
                                "no PyTorch model behind it")
    ckpt = None
    if Path(target).is_file():
        from edgecnn.weights import read_weights

        ckpt = read_weights(target)
        if ckpt.model is None:
            raise UsageError(f"{target} is a bare state dict; bench needs an edgecnn checkpoint that names "
                             "its architecture (or a zoo name)")
    name = ckpt.model if ckpt is not None else target
    card = registry.get_card(name)
    cfg = dict(ckpt.config) if ckpt is not None else {}
    channels = int(cfg.get("in_channels") or card.input_channels)
    side = int(cfg.get("input_size") or card.input_size)
    size = input_size or (side, side)
    from edgecnn.weights import build_model, model_from_weights

    torch.manual_seed(seed)
    if ckpt is not None:
        model, weights = model_from_weights(ckpt, in_channels=channels, input_size=side), str(ckpt.path)
    else:
        model, weights = build_model(name, in_channels=channels, input_size=side), f"random-init (seed {seed})"
    return TorchModel(model.eval(), name, channels, tuple(size), weights)


class TorchRunner(Runner):
    """One configuration of a PyTorch model (the bench protocol's ``Runner``): ``make_input`` makes the
    fixed-seed batch on the device and, for ``cuda_graph``/``compile``, captures or compiles at that shape;
    a call runs the batch and returns once the output is computed."""

    def __init__(self, tm: TorchModel, *, device: str = "cpu", precision: str = "fp32", mode: str = "eager",
                 threads: int | None = None, onnx_path: str | Path | None = None):
        check(device, precision, mode)
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}")
        import torch

        self.tm, self.device, self.mode, self.threads = tm, device, mode, threads
        self.onnx_path = onnx_path  # the exported file of the same model: its output names, in the model's order
        self._names: list[str] | None = None  # read from onnx_path once, not inside a timed run_numpy call
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.format = torch.preserve_format if mode == "eager" else torch.channels_last
        if device == "cpu":
            self.model = tm.model
            if threads is not None:
                torch.set_num_threads(threads)
        else:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest algorithm once
            # a copy per configuration: .half()/.to() on the shared module would change the other rows' model
            self.model = copy.deepcopy(tm.model).to(device="cuda", dtype=self.dtype, memory_format=self.format)
        self._replay: Callable | None = None
        self._static = None
        self.info = {"device": device, "providers_used": [f"torch {torch.__version__} {device}"],
                     "threads_used": torch.get_num_threads() if device == "cpu" else None,
                     "weights": tm.weights, "mode": mode, "params": sum(p.numel() for p in tm.model.parameters())}

    def _to_device(self, x):
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.format)

    def make_input(self, batch: int, seed: int = 0):
        if batch < 1:
            raise UsageError(f"--batch must be >= 1, got {batch}")
        import torch

        # the same values as the other backends' rows: [0, 1), fixed seed
        x = self._to_device(torch.from_numpy(random_input(batch, (self.tm.channels, *self.tm.size), seed=seed)))
        if self.mode == "cuda_graph":
            self._static, self._replay = _capture(self.model, x)
        elif self.mode == "compile":
            self._replay = _compile(self.model)
            for _ in range(WARMUP_CALLS):  # compile, record the CUDA graph, first replay
                self(x)
        return x

    def __call__(self, x):
        import torch

        if self.device == "cpu":
            if self.threads is not None and torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)  # process-wide: set again in case another row changed it
            with torch.inference_mode():
                return self.model(x)
        if self.mode == "cuda_graph":
            if self._replay is None:
                raise TorchBackendError("cuda_graph: make_input() captures the graph; call it first")
            if x is not self._static:
                self._static.copy_(x)  # a new frame goes into the captured input buffer
            y = self._replay()
        elif self.mode == "compile":
            torch.compiler.cudagraph_mark_step_begin()  # outputs of the previous call may be overwritten
            with torch.no_grad():
                y = self._replay(x)
        else:
            with torch.inference_mode():
                y = self.model(x)
        torch.cuda.synchronize()
        return y

    def run_numpy(self, x):
        import torch

        t = self._to_device(torch.from_numpy(x))
        if self.mode == "cuda_graph" and (self._static is None or self._static.shape != t.shape):
            self._static, self._replay = _capture(self.model, t)
        elif self.mode == "compile" and self._replay is None:
            self._replay = _compile(self.model)
        y = self(t)
        ys = y if isinstance(y, (tuple, list)) else [y]
        if self._names is None and self.onnx_path is not None:
            import onnx

            self._names = [o.name for o in onnx.load(str(self.onnx_path), load_external_data=False).graph.output]
        names = self._names or (["logits"] if len(ys) == 1 else [f"output{i}" for i in range(len(ys))])
        return {name: v.float().cpu().numpy() for name, v in zip(names, ys, strict=True)}

    def close(self) -> None:
        self.model = self._replay = self._static = None


def prepare(tm: TorchModel, *, batch: int = 1, device: str = "cpu", precision: str = "fp32", mode: str = "eager",
            threads: int | None = None) -> Callable[[], object]:
    """A zero-argument callable running one fixed (batch, C, H, W) batch in the given configuration (for
    scripts: ``timing.interleaved``); the warm-up a mode needs (capture, compilation) happens here."""
    runner = TorchRunner(tm, device=device, precision=precision, mode=mode, threads=threads)
    x = runner.make_input(batch)
    return lambda: runner(x)


def _capture(model, x):
    """(static input, replay) of ``model`` captured into a CUDA graph at x's shape."""
    import torch

    static_x = x.clone()
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: autotuning, workspace allocation
            for _ in range(WARMUP_CALLS):
                model(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = model(static_x)
    torch.cuda.synchronize()

    def replay():
        graph.replay()
        return static_y

    return static_x, replay


def _compile(model):
    import torch

    # no fullgraph: a model with Python control flow (a detector's post-processing) compiles in pieces
    # instead of failing; the pieces are still replayed through CUDA graphs
    return torch.compile(model, mode="reduce-overhead")


class TorchBackend(Backend):
    """``--backend torch``: ``--device cpu`` runs eager; ``--device cuda`` expands to the four modes."""

    name = "torch"
    providers = (*DEVICES, "auto")  # --device; auto: cuda where torch sees a GPU, else cpu (as ort's auto)

    def __init__(self):
        self._models: dict = {}

    def check(self) -> None:
        require("torch", "torch", "--backend torch")

    def expand(self, cfg: Config) -> list[Config]:
        if cfg.provider == "auto":
            cfg = replace(cfg, provider="cuda" if cuda_available() else "cpu")
        if cfg.mode != "default":
            return [cfg]
        modes = MODES if cfg.provider == "cuda" else ("eager",)
        return [replace(cfg, mode=m) for m in modes]

    def load(self, cfg: Config, art: Artifact) -> Runner:
        mode = "eager" if cfg.mode == "default" else cfg.mode
        check(cfg.provider, cfg.precision, mode)  # before building anything
        if art.target.kind == "onnx":
            raise TorchBackendError(f"{art.target.spec}: --backend torch needs a zoo name or a checkpoint; an "
                                    "ONNX file has no PyTorch model behind it")
        size = (art.input_shape[1], art.input_shape[2])
        key = (art.target.spec, size)
        if key not in self._models:
            self._models = {key: load_model(art.target.spec, input_size=size)}  # one target at a time
        return TorchRunner(self._models[key], device=cfg.provider, precision=cfg.precision, mode=mode,
                           threads=cfg.threads, onnx_path=art.onnx_path)


def gpu_time_ms(fn: Callable[[], object], runs: int = 50) -> list[float]:
    """Per-call GPU times (ms) of ``fn`` from CUDA events recorded around it: the device-side view, which
    excludes the host's launch latency that the synchronised host clock includes."""
    import torch

    out = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end))
    return out
