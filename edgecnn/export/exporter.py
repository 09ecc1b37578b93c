"""``edgecnn export``: zoo model or checkpoint -> ONNX file with its deploy contract, parity-checked.

Everything happens in memory until the gate passes; then the file is written to a temporary name and
renamed into place, so a failed or interrupted export leaves the old file untouched and nothing
half-written.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecnn import __version__, registry
from edgecnn.contract import Contract, Preprocess, attach, read_labels
from edgecnn.errors import EdgeCNNError, UsageError, first_line
from edgecnn.export import parity
from edgecnn.export.weights import WeightsError, load_into, read_weights
from edgecnn.fileio import atomic_path, sha256

# The default opset: onnxruntime >= 1.14 runs it fully (this machine: 1.32, which reads up to 23),
# and the TorchScript exporter emits it natively.
DEFAULT_OPSET = 18
PARITY_BATCHES = [1, 2, 5]


class ExportError(EdgeCNNError):
    """The export itself failed (exporter error, invalid graph, failed gate)."""


@dataclass
class ExportOptions:
    model: str  # zoo name or an edgecnn checkpoint path
    weights: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: int | None = None
    labels: str | None = None  # file, one label a line
    opset: int = DEFAULT_OPSET
    batch: str | int = "dynamic"
    dynamic_size: bool = False  # height and width dynamic too (models whose head does not fix the size)
    out: str | None = None
    precision: str = "fp32"
    calib: str | None = None
    check: bool = True
    replace_head: bool = False
    exporter: str = "torchscript"
    seed: int = 0


@dataclass
class ExportResult:
    path: Path
    contract: Contract
    size_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    quantization: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        return {"path": str(self.path), "size_bytes": self.size_bytes, "timings_s": self.timings,
                "warnings": self.warnings, "contract": self.contract.to_dict(), "quantization": self.quantization}


def _validate(opts: ExportOptions) -> None:
    if opts.precision not in ("fp32", "fp16", "int8"):
        raise UsageError(f"--precision must be fp32, fp16 or int8, got '{opts.precision}'")
    if opts.precision == "int8" and not opts.calib:
        raise UsageError("--precision int8 needs calibration images: add --calib DIR")
    if opts.exporter not in ("torchscript", "dynamo"):
        raise UsageError(f"--exporter must be torchscript or dynamo, got '{opts.exporter}'")
    if opts.batch != "dynamic" and (not isinstance(opts.batch, int) or opts.batch < 1):
        raise UsageError(f"--batch must be 'dynamic' or a positive integer, got '{opts.batch}'")
    if opts.out and Path(opts.out).suffix != ".onnx":
        raise UsageError(f"--out {opts.out}: the output file must end in .onnx")
    if not 7 <= opts.opset <= 20:
        raise UsageError(f"--opset {opts.opset} is outside what this exporter writes (7-20); use {DEFAULT_OPSET}")


def _to_onnx(model, x, opts: ExportOptions) -> bytes:
    import torch

    names = {0: "batch"} if opts.batch == "dynamic" else {}
    if opts.dynamic_size:
        names.update({2: "height", 3: "width"})
    buf = io.BytesIO()
    # torch.onnx warns about every torchvision op it cannot register (torchvision is not a dependency)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if opts.exporter == "dynamo":
            shapes = ({axis: torch.export.Dim.DYNAMIC for axis in names},) if names else None
            prog = torch.onnx.export(model, (x,), None, input_names=["input"], output_names=["logits"],
                                     opset_version=opts.opset, dynamo=True, dynamic_shapes=shapes, verbose=False)
            return prog.model_proto.SerializeToString()
        axes = {"input": names, "logits": {0: "batch"} if 0 in names else {}} if names else None
        torch.onnx.export(model, (x,), buf, input_names=["input"], output_names=["logits"],
                          opset_version=opts.opset, dynamo=False, dynamic_axes=axes, do_constant_folding=True)
    return buf.getvalue()


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"edgecnn": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def export(opts: ExportOptions) -> ExportResult:
    _validate(opts)
    import onnx
    import torch

    t0 = time.perf_counter()
    notes: list[str] = []
    # 1. what to build, and with which weights
    ckpt = None
    if Path(opts.model).is_file():
        ckpt = read_weights(opts.model)
        if ckpt.model is None:
            raise UsageError(f"{opts.model} is a bare state dict; name the architecture: "
                             f"edgecnn export <model> --weights {opts.model}")
        name = ckpt.model
    else:
        name = opts.model
    card = registry.get_card(name)
    if opts.dynamic_size and card.fixed_input:
        raise UsageError(f"--dynamic-size: {name}'s classifier width follows the input size, so the size cannot vary")
    if opts.weights:
        if ckpt is not None:
            raise UsageError("give either a checkpoint as MODEL or --weights, not both")
        ckpt = read_weights(opts.weights)
        if ckpt.model and ckpt.model != name:
            raise WeightsError(f"{opts.weights} is a checkpoint of '{ckpt.model}', not '{name}'; "
                               f"run: edgecnn export {opts.weights}")
    cfg = dict(ckpt.config) if ckpt is not None else {}
    num_classes = opts.num_classes or cfg.get("num_classes") or card.num_classes
    in_channels = opts.in_channels or cfg.get("in_channels") or card.input_channels
    size = opts.input_size or cfg.get("input_size") or card.input_size
    base = Contract.from_dict(ckpt.contract) if ckpt is not None and ckpt.contract else None

    torch.manual_seed(opts.seed)
    model = registry.build(name, num_classes=num_classes, in_channels=in_channels, input_size=size)
    if ckpt is not None:
        replaced = load_into(model, ckpt.state_dict, str(ckpt.path), opts.replace_head)
        if replaced:
            notes.append(f"head replaced ({', '.join(replaced)} left at random init): predictions need training")
        weights: str | dict[str, str] = {"path": str(ckpt.path), "sha256": sha256(ckpt.path)}
    else:
        weights = "random-init"
        notes.append(f"no --weights: exporting RANDOM-INIT weights for {name}; its predictions are meaningless")
    model.eval()

    labels = read_labels(opts.labels, num_classes) if opts.labels else (base.labels if base else None)
    if base is not None and base.preprocess.channels == in_channels:
        pre = base.preprocess.resized(size, size)  # the trained eval transform, at the export size
    else:
        pre = Preprocess.imagenet(size, in_channels)

    # 2. export and validate the graph
    x = torch.randn(1 if opts.batch == "dynamic" else int(opts.batch), in_channels, size, size)
    try:
        data = _to_onnx(model, x, opts)
    except Exception as e:
        first = first_line(e)
        if opts.exporter != "torchscript":
            raise ExportError(f"torch.onnx.export failed for {name}: {first}") from e
        # The TorchScript exporter lacks a few lowerings (e.g. adaptive pooling to a non-divisor size,
        # as AlexNet/VGG at small inputs need); the dynamo exporter decomposes them.
        notes.append(f"the torchscript exporter failed ({first[:120]}); used the dynamo exporter")
        opts = replace(opts, exporter="dynamo")
        try:
            data = _to_onnx(model, x, opts)
        except Exception as e2:
            raise ExportError(f"torch.onnx.export failed for {name} with both exporters: {first_line(e2)}") from e2
    proto = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(proto, full_check=True)  # full_check includes strict shape inference
    except Exception as e:
        raise ExportError(f"the exported graph is not valid ONNX: {first_line(e, 300)}") from e
    if opts.precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(proto, keep_io_types=True)
    t_export = time.perf_counter() - t0

    # 3. the gate
    gate_precision = "fp16" if opts.precision == "fp16" else "fp32"
    report = None
    if opts.check:
        batches = PARITY_BATCHES if opts.batch == "dynamic" else [int(opts.batch)]
        cases = [(n, size, size) for n in batches]
        if opts.dynamic_size:  # other sizes too, one of them not square
            small, large = max(32, size // 2), size + 32
            cases += [(batches[0], small, small), (batches[-1], small, large)]
        report = parity.check(model, proto.SerializeToString(), in_channels, cases, gate_precision, seed=opts.seed)
        if not report.passed:
            raise parity.ParityError(f"parity gate failed, no file written: {report.failure}")
    t_gate = time.perf_counter() - t0 - t_export

    contract = Contract(
        task="classify", model=name, preprocess=pre, batch=opts.batch, dynamic_size=opts.dynamic_size, labels=labels,
        outputs=[{"name": "logits", "kind": "logits", "meaning": "class logits; softmax gives probabilities"}],
        weights=weights, precision=gate_precision, metrics=(base.metrics if base else None),
        parity=report.to_dict() if report else {"skipped": True}, versions=_versions(), opset=opts.opset,
    )
    attach(proto, contract)
    out = Path(opts.out) if opts.out else Path("export") / f"{name}.onnx"

    quant = None
    if opts.precision == "int8":
        from edgecnn.quantize import QuantizeOptions, quantize

        with tempfile.TemporaryDirectory(prefix="edgecnn-export-") as td:  # quantize writes ``out`` atomically
            fp32 = Path(td) / f"{name}.fp32.onnx"
            onnx.save(proto, fp32)
            result = quantize(QuantizeOptions(model=str(fp32), calib=opts.calib, out=str(out)))
        contract, quant = result.contract, result.to_dict()
    else:
        with atomic_path(out) as tmp:
            onnx.save(proto, tmp)
    timings = {"export": round(t_export, 3), "gate": round(t_gate, 3), "total": round(time.perf_counter() - t0, 3)}
    return ExportResult(out, contract, out.stat().st_size, timings, notes, quant)
