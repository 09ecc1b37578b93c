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
from dataclasses import dataclass
from pathlib import Path

from edgecnn import registry
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
        from edgecnn.export.weights import read_weights

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
    torch.manual_seed(seed)
    model = registry.build(name, num_classes=cfg.get("num_classes") or card.num_classes, in_channels=channels,
                           input_size=side)
    weights = f"random-init (seed {seed})"
    if ckpt is not None:
        from edgecnn.export.weights import load_into

        load_into(model, ckpt.state_dict, str(ckpt.path))
        weights = str(ckpt.path)
    return TorchModel(model.eval(), name, channels, tuple(size), weights)


def prepare(tm: TorchModel, *, batch: int = 1, device: str = "cpu", precision: str = "fp32", mode: str = "eager",
            threads: int | None = None, seed: int = 0) -> Callable[[], object]:
    """A callable running one (batch, C, H, W) batch in the given configuration; it returns once the output
    is computed (CUDA: synchronised). The warm-up that a mode needs before it can be timed (capture,
    compilation) happens here, not in the timed calls."""
    check(device, precision, mode)
    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tm.channels, *tm.size, generator=gen)
    if device == "cpu":
        model = tm.model

        def run_cpu():
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)  # process-wide: set again in case another row changed it
            with torch.inference_mode():
                return model(x)

        return run_cpu

    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest algorithm once
    dtype = torch.float16 if precision == "fp16" else torch.float32
    fmt = torch.preserve_format if mode == "eager" else torch.channels_last
    # a copy per configuration: .half()/.to() on the shared module would change the other rows' model
    model = copy.deepcopy(tm.model).to(device="cuda", dtype=dtype, memory_format=fmt).eval()
    x = x.to(device="cuda", dtype=dtype).contiguous(memory_format=fmt)

    if mode in ("eager", "channels_last"):
        def run_eager():
            with torch.inference_mode():
                y = model(x)
            torch.cuda.synchronize()
            return y

        return run_eager
    if mode == "cuda_graph":
        return _graphed(model, x)
    return _compiled(model, x)


def _graphed(model, x) -> Callable[[], object]:
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
        static_x.copy_(x)  # a new frame arrives in the captured input buffer, as a real caller's would
        graph.replay()
        torch.cuda.synchronize()
        return static_y

    return replay


def _compiled(model, x) -> Callable[[], object]:
    import torch

    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)

    def run_compiled():
        torch.compiler.cudagraph_mark_step_begin()  # outputs of the previous call may be overwritten
        with torch.no_grad():
            y = compiled(x)
        torch.cuda.synchronize()
        return y

    for _ in range(WARMUP_CALLS):  # compile, record the CUDA graph, first replay
        run_compiled()
    return run_compiled


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
