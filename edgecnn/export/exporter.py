"""``edgecnn export``: zoo model or checkpoint -> ONNX file with its deploy contract, parity-checked.

Everything happens in memory until the gate passes; then the file is written to a temporary name and
renamed into place, so a failed or interrupted export leaves the old file untouched and nothing
half-written.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgecnn import __version__, hub, registry
from edgecnn.contract import Contract, Detection, Preprocess, attach, read_labels
from edgecnn.errors import EdgeCNNError, UsageError, first_line
from edgecnn.export import graph_nms, parity, parity_detect
from edgecnn.fileio import atomic_path, sha256
from edgecnn.weights import WeightsError, build_model, load_into, read_weights

# The default opset: onnxruntime >= 1.14 runs it fully (this machine: 1.32, which reads up to 23),
# and the TorchScript exporter emits it natively.
DEFAULT_OPSET = 18
PARITY_BATCHES = [1, 2, 5]


class ExportError(EdgeCNNError):
    """The export itself failed (exporter error, invalid graph, failed gate)."""


@dataclass
class ExportOptions:
    model: str  # zoo name or an edgecnn checkpoint path
    weights: str | None = None  # a file, or published weights: imagenet | imagenet1k_v1 | imagenet1k_v2
    num_classes: int | None = None
    in_channels: int | None = None
    input_size: int | tuple[int, int] | None = None  # S or (H, W)
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
    # detectors: where NMS runs (host | graph) and the contract's thresholds [default: the model's]
    nms: str | None = None
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None


@dataclass
class ExportResult:
    path: Path
    contract: Contract
    size_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    quantization: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None  # the FP32/FP16 gate (an INT8 file's contract holds the INT8 gate)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "size_bytes": self.size_bytes, "timings_s": self.timings,
                "warnings": self.warnings, "contract": self.contract.to_dict(), "quantization": self.quantization,
                "parity": self.parity}


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
    if opts.out:  # an unwritable --out is refused now, not after the export and the gate
        folder = Path(opts.out).absolute().parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise ExportError(f"cannot write {opts.out}: {folder} is "
                              f"{'not a folder' if not folder.is_dir() else 'not writable'}")
    for flag, value in (("num-classes", opts.num_classes), ("in-channels", opts.in_channels)):
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be a positive integer, got {value}")
    if opts.in_channels not in (None, 1, 3):
        raise UsageError(f"--in-channels must be 1 (grayscale) or 3 (colour) for an image model, "
                         f"got {opts.in_channels}")
    if opts.input_size is not None and min(_hw(opts.input_size)) < 1:
        raise UsageError(f"--input-size must be positive, got {opts.input_size}")
    if opts.nms not in (None, "host", "graph"):
        raise UsageError(f"--nms must be host or graph, got '{opts.nms}'")
    if opts.nms == "graph" and opts.opset < 13:
        raise UsageError(f"--nms graph needs --opset 13 or newer (its NMS tail uses opset-13 ops), got {opts.opset}")
    limits = (("conf", opts.conf, 0, 1), ("iou", opts.iou, 0, 1), ("max-det", opts.max_det, 1, None))
    for flag, value, low, high in limits:
        if value is not None and (value < low or (high is not None and value > high)):
            raise UsageError(f"--{flag} must be {'in [0, 1]' if high else 'a positive integer'}, got {value}")
    if not 7 <= opts.opset <= 20:
        raise UsageError(f"--opset {opts.opset} is outside what this exporter writes (7-20); use {DEFAULT_OPSET}")


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _to_onnx(model, x, opts: ExportOptions, outputs: tuple[str, ...] = ("logits",)) -> bytes:
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
            prog = torch.onnx.export(model, (x,), None, input_names=["input"], output_names=list(outputs),
                                     opset_version=opts.opset, dynamo=True, dynamic_shapes=shapes, verbose=False)
            return prog.model_proto.SerializeToString()
        axes = {"input": names, **{o: {0: "batch"} if 0 in names else {} for o in outputs}} if names else None
        torch.onnx.export(model, (x,), buf, input_names=["input"], output_names=list(outputs),
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
    detect = card.task == "detect"
    if detect and opts.dynamic_size:
        raise UsageError(f"--dynamic-size: {name}'s anchors are built into the graph for one input size; "
                         "export each size with --input-size")
    if not detect and (opts.nms or opts.conf is not None or opts.iou is not None or opts.max_det is not None):
        raise UsageError(f"--nms/--conf/--iou/--max-det are for detectors; {name} is a classifier")
    if opts.dynamic_size and card.fixed_input:
        raise UsageError(f"--dynamic-size: {name}'s classifier width follows the input size, so the size cannot vary")
    published = fetched = None
    digest = None  # the weights file's SHA-256 once computed: the contract's provenance reuses it
    if opts.weights:
        if ckpt is not None:
            raise UsageError("give either a checkpoint as MODEL or --weights, not both")
        if hub.is_tag(opts.weights):
            published = hub.resolve(card, opts.weights)
            fetched = hub.fetch(published)
        else:
            published = hub.match_file(card, opts.weights)  # a torchvision file fetched by hand
            if published is not None:
                ok, digest = hub.hash_ok(Path(opts.weights), published.sha256_prefix)
                if not ok:
                    raise WeightsError(f"{opts.weights}: its SHA-256 does not start with {published.sha256_prefix} "
                                       "(the hash in its name): a truncated or different file; download it again")
        ckpt = read_weights(fetched.path if fetched else opts.weights)
        if ckpt.model and ckpt.model != name:
            raise WeightsError(f"{opts.weights} is a checkpoint of '{ckpt.model}', not '{name}'; "
                               f"run: edgecnn export {opts.weights}")
    cfg = dict(ckpt.config) if ckpt is not None else {}
    num_classes = _first_set(opts.num_classes, cfg.get("num_classes"), card.num_classes)
    in_channels = _first_set(opts.in_channels, cfg.get("in_channels"), card.input_channels)
    default_size = published.crop if published else card.input_size  # the size the weights were measured at
    h, w = _hw(_first_set(opts.input_size, cfg.get("input_size"), default_size))
    if card.fixed_input and h != w:
        raise UsageError(f"--input-size: {name} takes a square input (its classifier width follows the size), "
                         f"got {h}x{w}")
    size = h
    base = Contract.from_dict(ckpt.contract) if ckpt is not None and ckpt.contract else None

    torch.manual_seed(opts.seed)
    model = build_model(name, cfg, num_classes=num_classes, in_channels=in_channels, input_size=size)
    if ckpt is not None:
        replaced = load_into(model, ckpt.state_dict, str(ckpt.path), opts.replace_head)
        if replaced:
            notes.append(f"head replaced ({', '.join(replaced)} left at random init): predictions need training")
        weights: str | dict[str, str] = {"path": str(ckpt.path),
                                         "sha256": fetched.sha256 if fetched else digest or sha256(ckpt.path)}
        if published is not None:
            weights.update(url=published.url, published=f"torchvision {name} {published.tag.upper()}")
    else:
        weights = "random-init"
        notes.append(f"no --weights: exporting RANDOM-INIT weights for {name}; its predictions are meaningless")
    model.eval()

    if opts.labels:
        labels = read_labels(opts.labels, None if detect else num_classes)
        if detect:
            labels = detector_labels(labels, num_classes, opts.labels)
    else:
        labels = base.labels if base else None
    if detect and labels is None and ckpt is not None and card.torchvision and num_classes == 91:
        from edgecnn.models.ssdlite import torchvision_coco_labels

        labels = torchvision_coco_labels()  # a 91-class state dict in torchvision's layout: its COCO weights
    imagenet = published is not None and published.dataset == "ImageNet" and num_classes == 1000 and not replaced
    if imagenet and labels is None:
        labels = hub.imagenet_labels()
    if base is not None and base.preprocess.channels == in_channels:
        pre = base.preprocess.resized(h, w)  # the trained eval transform, at the export size
    elif detect:
        pre = model.preprocess.resized(h, w)  # letterbox or stretch, the model's normalisation
    elif published is not None and in_channels == 3:  # the transform these weights were measured with
        pre = Preprocess(published.crop, published.crop, resize_size=published.resize,
                         interpolation=published.interpolation).resized(h, w)
    else:
        pre = Preprocess.imagenet(size, in_channels).resized(h, w)
    metrics = base.metrics if base else None
    if imagenet:
        metrics = {"imagenet1k_top1": published.top1, "imagenet1k_top5": published.top5,
                   "measured_by": f"torchvision ({published.tag.upper()}, crop {published.crop} from "
                                  f"{published.resize}, {published.interpolation})"}
    elif published is not None and published.dataset == "COCO" and num_classes == 91 and not replaced:
        metrics = {"coco_val2017_map": published.box_map,
                   "measured_by": f"torchvision ({published.tag.upper()}, box mAP@[.50:.95] on COCO val2017 "
                                  f"at {published.crop}x{published.crop})"}

    # 2. export and validate the graph
    x = torch.randn(1 if opts.batch == "dynamic" else int(opts.batch), in_channels, h, w)
    outputs = ("boxes", "scores") if detect else ("logits",)
    try:
        data = _to_onnx(model, x, opts, outputs)
    except Exception as e:
        first = first_line(e)
        if opts.exporter != "torchscript":
            raise ExportError(f"torch.onnx.export failed for {name}: {first}") from e
        # The TorchScript exporter lacks a few lowerings (e.g. adaptive pooling to a non-divisor size,
        # as AlexNet/VGG at small inputs need); the dynamo exporter decomposes them.
        notes.append(f"the torchscript exporter failed ({first[:120]}); used the dynamo exporter")
        opts = replace(opts, exporter="dynamo")
        try:
            data = _to_onnx(model, x, opts, outputs)
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
    spec = None
    if detect:
        base_spec = base.detection if base is not None and base.detection else model.detection
        spec = replace(base_spec, **{k: v for k, v in (("nms", opts.nms), ("conf", opts.conf), ("iou", opts.iou),
                                                      ("max_det", opts.max_det)) if v is not None})
    t_export = time.perf_counter() - t0

    # 3. the gate: a detector's boxes/scores before NMS, then (--nms graph) the file's own detections after
    gate_precision = "fp16" if opts.precision == "fp16" else "fp32"
    report = None
    host_bytes = proto.SerializeToString() if opts.check else b""
    graph = spec is not None and spec.nms == "graph"
    if graph:
        graph_nms.append_nms(proto, spec)  # in place: the file's graph ends with ONNX NonMaxSuppression
    if opts.check:
        batches = PARITY_BATCHES if opts.batch == "dynamic" else [int(opts.batch)]
        cases = [(n, h, w) for n in batches]
        if opts.dynamic_size:  # other sizes too, one of them not square
            small, large = max(32, size // 2), size + 32
            cases += [(batches[0], small, small), (batches[-1], small, large)]
        if detect:
            report = parity_detect.check(model, host_bytes, in_channels, cases, gate_precision,
                                         replace(spec, nms="host"), seed=opts.seed)
        else:
            report = parity.check(model, host_bytes, in_channels, cases, gate_precision, seed=opts.seed)
        if report.passed and graph:  # before AND after the graph's NMS
            final = parity_detect.check(model, proto.SerializeToString(), in_channels, cases, gate_precision, spec,
                                        seed=opts.seed)
            report.batches += final.batches
            report.passed, report.failure, report.nms = final.passed, final.failure, "host+graph"
        if not report.passed:
            raise parity.ParityError(f"parity gate failed, no file written: {report.failure}")
    t_gate = time.perf_counter() - t0 - t_export

    contract = Contract(
        task="detect" if detect else "classify", model=name, preprocess=pre, batch=opts.batch,
        dynamic_size=opts.dynamic_size, labels=labels, detection=spec,
        outputs=detector_outputs(spec) if detect else
        [{"name": "logits", "kind": "logits", "meaning": "class logits; softmax gives probabilities"}],
        weights=weights, precision=gate_precision, metrics=metrics,
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
    return ExportResult(out, contract, out.stat().st_size, timings, notes, quant,
                        report.to_dict() if report else {"skipped": True})


def detector_labels(labels: list[str], num_classes: int, source: str) -> list[str]:
    """A detector's labels start with the background: a file of the C-1 object classes gets it prepended."""
    if len(labels) == num_classes - 1:
        return ["background", *labels]
    if len(labels) != num_classes:
        raise UsageError(f"{source} has {len(labels)} labels; the detector has {num_classes - 1} object classes "
                         f"(+ background): give {num_classes - 1} or {num_classes} lines")
    return labels


def detector_outputs(spec: Detection) -> list[dict[str, str]]:
    if spec.nms == "graph":
        return [{"name": "detections", "kind": "detections",
                 "meaning": "(N, K, 6) x1 y1 x2 y2 score class, input pixels, by decreasing score; score 0 pads"}]
    return [{"name": "boxes", "kind": "boxes", "meaning": "(N, A, 4) xyxy input pixels, decoded against the anchors"},
            {"name": "scores", "kind": "scores", "meaning": "(N, A, C) softmax probabilities, column 0 background"}]


def _first_set(*values):
    """The first value that is not None (0 stays 0: a usage error caught by validation, not a default)."""
    return next(v for v in values if v is not None)
