"""The sweep: targets x backend x provider x precision x batch x threads x input size.

A ``Config`` is one measured configuration (one row); a ``Sweep`` holds the comma lists of the
command line and expands them into every combination, in a stable order (the order of the lists).
Measurement order is not this order: the protocol interleaves configurations in blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from edgecnn.errors import UsageError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Config:
    """One configuration. ``provider``: where it runs, in the backend's words (ort: auto|cpu|cuda|tensorrt,
    torch: cpu|cuda, openvino: CPU|GPU|AUTO); ``threads`` None: the backend's default; ``input_size``
    (height, width) None: the model's own; ``mode``: a backend's variant of the run (torch: eager,
    channels_last, cuda_graph, compile; "auto": the tuned configuration of ``--runtime auto``); "default"
    for backends without variants."""

    target: str
    backend: str = "ort"
    provider: str = "auto"
    precision: str = "fp32"
    batch: int = 1
    threads: int | None = None
    input_size: tuple[int, int] | None = None
    mode: str = "default"
    # ``--runtime auto``: the Engine options the tuned profile kept (spinning, affinity, graph_opt, the saved
    # optimised graph) as sorted (name, value) pairs; not part of ``key`` (the mode "auto" row is one per target)
    options: tuple = ()

    @property
    def key(self) -> str:
        """A readable unique id of the configuration (also the row's ``id``)."""
        size = "x".join(map(str, self.input_size)) if self.input_size else "native"
        parts = [self.target, self.backend, self.provider, self.precision, f"b{self.batch}",
                 f"t{self.threads if self.threads is not None else 'default'}", size]
        if self.mode != "default":
            parts.append(self.mode)
        return "|".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d


@dataclass
class Sweep:
    targets: list[str]
    backends: list[str] = field(default_factory=lambda: ["ort"])
    # backend -> where it runs (ort: --provider, torch: --device); a backend not named: its default
    providers: dict[str, list[str]] = field(default_factory=dict)
    # None: each target at its own precision (an ONNX file's, read from it; fp32 for zoo names, checkpoints)
    precisions: list[str] | None = None
    batches: list[int] = field(default_factory=lambda: [1])
    threads: list[int | None] = field(default_factory=lambda: [None])
    input_sizes: list[tuple[int, int] | None] = field(default_factory=lambda: [None])
    # ``--runtime auto``: each target's tuned configuration (``auto_configs``), measured beside the others
    tuned: list[Config] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.targets:
            raise UsageError("give at least one model: an .onnx file, a zoo name or a checkpoint")
        for p in self.precisions or []:
            if p not in PRECISIONS:
                raise UsageError(f"unknown --precision '{p}'; choose from: {', '.join(PRECISIONS)}")
        for b in self.batches:
            if b < 1:
                raise UsageError(f"--batch must be >= 1, got {b}")
        for t in self.threads:
            if t is not None and t < 1:
                raise UsageError(f"--threads must be >= 1, got {t}")

    def configs(self, own_precision: Callable[[str], str] = lambda target: "fp32") -> list[Config]:
        """Every combination, targets outermost; ``provider`` "default" where the backend's was not given.
        ``own_precision(target)``: the precision a target is stored at. A target is measured at the
        precisions asked (made from FP32 on the fly), or at its own when none were asked; a file stored at
        FP16 or INT8 only at its own (nothing is made from it)."""
        out = []
        for t, be in itertools.product(_unique(self.targets), _unique(self.backends)):
            own = own_precision(t)
            precisions = self.precisions if self.precisions and own == "fp32" else [own]
            out += [Config(t, be, pr, prec, b, th, size) for pr, prec, b, th, size in itertools.product(
                _unique(self.providers.get(be) or ["default"]), _unique(precisions), _unique(self.batches),
                _unique(self.threads), _unique(self.input_sizes))]
        out += [replace(c, precision=own_precision(c.target)) for c in self.tuned]
        return _unique(out)


def auto_configs(targets: list[str], batches: list[int], threads: list[int | None],
                 input_sizes: list[tuple[int, int] | None]) -> tuple[list[Config], list[dict]]:
    """``--runtime auto``: per target, the configuration ``edgecnn tune`` chose on this host (its runtime, the
    file of its precision, threads, batch; ``mode`` "auto"), or without a profile onnxruntime at the sweep's
    batches and threads. Returns the configurations and, per target, ``runtime.choice.Resolved.describe()``
    (what each became and why). Only .onnx files have profiles; the precision is filled in by ``configs``."""
    from pathlib import Path

    from edgecnn.runtime.choice import Resolved, resolve

    out, said = [], []
    for t in _unique(targets):
        path = Path(t)
        if path.suffix.lower() == ".onnx" and path.is_file():
            res = resolve(path, "auto", precision="auto", objective="latency")
        else:
            res = Resolved("ort", path, "no profile: onnxruntime")
        said.append(res.describe())
        target = str(res.path) if res.tuned else t
        bs = [res.batch] if res.batch else batches
        ths = [res.threads] if res.tuned else threads
        opts = tuple(sorted(res.engine_kwargs().items()))
        out += [Config(target, res.runtime, "default", "fp32", b, th, size, mode="auto", options=opts)
                for b, th, size in itertools.product(_unique(bs), _unique(ths), _unique(input_sizes))]
    return out, said


def _unique(values: list) -> list:
    return list(dict.fromkeys(values))


def parse_list(text: str | None, option: str, cast=str) -> list:
    """``"1,2"`` -> [1, 2] (``cast`` applied to each item); an item that does not cast is a usage error."""
    if text is None:
        return []
    items = [p.strip() for p in str(text).split(",") if p.strip()]
    if not items:
        raise UsageError(f"{option} takes a comma-separated list, got '{text}'")
    out = []
    for item in items:
        try:
            out.append(cast(item))
        except ValueError:
            raise UsageError(f"{option}: '{item}' is not valid (comma-separated list expected, got '{text}')") from None
    return out
