"""``edgecnn export MODEL``: ONNX with a deploy contract, parity-gated (torch + onnx)."""

from __future__ import annotations

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json, parse_size
from edgecnn.errors import UsageError, require
from edgecnn.tables import human, table


def _batch(value: str) -> str | int:
    if value == "dynamic":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise UsageError(f"--batch must be 'dynamic' or a positive integer, got '{value}'")


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="A zoo name, or an edgecnn checkpoint from 'edgecnn train'."),
    weights: str = typer.Option(None, "--weights", help="imagenet (torchvision's published weights, downloaded "
                                "once and cached; also imagenet1k_v1/_v2), coco (a detector's), an edgecnn "
                                "checkpoint, or a torchvision-format state dict .pth."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes of the head."),
    in_channels: int = typer.Option(None, "--in-channels", help="Input channels."),
    input_size: str = typer.Option(None, "--input-size", help="Input size: S (square), HxW or H,W."),
    labels: str = typer.Option(None, "--labels", help="Text file, one label a line."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset."),
    batch: str = typer.Option("dynamic", "--batch", help="'dynamic' or a fixed batch size N."),
    dynamic_size: bool = typer.Option(False, "--dynamic-size", help="Let height and width vary too (gated at "
                                                                    "two more sizes)."),
    out: str = typer.Option(None, "--out", "-o", help="Output .onnx (default export/<name>.onnx)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, fp16 or int8 (int8 needs --calib)."),
    calib: str = typer.Option(None, "--calib", help="Calibration image folder for int8."),
    check: bool = typer.Option(True, "--check/--no-check", help="Run the parity gate (default on)."),
    replace_head: bool = typer.Option(False, "--replace-head", help="Allow a head of another size in --weights."),
    exporter: str = typer.Option("torchscript", "--exporter", help="torchscript (fast) or dynamo."),
    nms: str = typer.Option(None, "--nms", help="Detectors: 'host' (outputs boxes + scores, runtime NMS) or "
                            "'graph' (ONNX NonMaxSuppression in the file, outputs detections) [default: host]."),
    conf: float = typer.Option(None, "--conf", help="Detectors: score threshold in the contract (baked in with "
                               "--nms graph) [default: the model's]."),
    iou: float = typer.Option(None, "--iou", help="Detectors: NMS IoU threshold [default: the model's]."),
    max_det: int = typer.Option(None, "--max-det", help="Detectors: most detections per image [default: the "
                                "model's]."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Export a model to ONNX with its deploy contract, then check it against PyTorch.

    The parity gate runs PyTorch and onnxruntime on fresh random inputs (batch 1, 2, 5 when the
    batch is dynamic); out of tolerance, the export fails and no file is written. Detectors are
    gated on boxes and scores before NMS and on the final detections after it.

    Example: edgecnn export mobilenetv2 --weights imagenet
    (a detector: edgecnn export ssdlite_mobilenetv2 --weights best.pt --nms graph)
    """
    check_format(fmt)
    require("torch", "torch", "edgecnn export")
    from edgecnn.export.exporter import ExportOptions, export

    res = export(ExportOptions(model=model, weights=weights, num_classes=num_classes, in_channels=in_channels,
                               input_size=parse_size(input_size), labels=labels, opset=opset, batch=_batch(batch),
                               out=out, dynamic_size=dynamic_size,
                               precision=precision, calib=calib, check=check, replace_head=replace_head,
                               exporter=exporter, nms=nms, conf=conf, iou=iou, max_det=max_det))
    for note in res.warnings:
        typer.echo(f"Warning: {note}", err=True)
    if fmt == "json":
        emit_json(res.to_dict())
        return
    c = res.contract
    typer.echo(f"wrote {res.path} ({human(res.size_bytes)}B, {c.precision}, opset {c.opset}, batch {c.batch}) "
               f"in {res.timings['total']:.1f}s")
    if isinstance(c.weights, dict) and c.weights.get("published"):
        p, m = c.preprocess, c.metrics or {}
        top1 = f", ImageNet top-1 {m['imagenet1k_top1']:.2f}%" if "imagenet1k_top1" in m else ""
        if "coco_val2017_map" in m:
            top1 = f", COCO val2017 box mAP {m['coco_val2017_map']:.1f} (published)"
        typer.echo(f"weights: {c.weights['published']}{top1} ({c.weights['path']}, "
                   f"sha256 {c.weights['sha256'][:12]}...)")
        size = (f"resize {p.resize_size}, center crop {p.height}x{p.width}, {p.interpolation}"
                if p.resize == "resize_crop" else
                f"{p.resize} to {p.height}x{p.width}, {p.interpolation}, mean {list(p.mean)} std {list(p.std)}")
        typer.echo(f"preprocess: {size}; labels: "
                   f"{len(c.labels or []):,}" + (f" ({c.labels[0]}, {c.labels[1]}, ...)" if c.labels else ""))
    parity = res.parity or {}
    if parity.get("skipped"):
        typer.echo("parity gate: SKIPPED (--no-check)")
    elif parity.get("batches") and "f1" in parity["batches"][0]:
        _print_detection_parity(parity, c)
    elif parity.get("batches"):
        rows = [(b["batch"], f"{b['height']}x{b['width']}", f"{b['max_abs']:.2e}", f"{b['rel']:.2e}",
                 f"{b['cosine']:.7f}", f"{b['top1']:.0%}", b["ties"]) for b in parity["batches"]]
        typer.echo(f"parity gate ({parity['precision']}, onnxruntime CPU vs PyTorch): PASSED")
        typer.echo(table(["batch", "input", "max-abs", "rel", "cosine", "top-1", "ties"], rows,
                         right=["batch", "max-abs", "rel", "cosine", "top-1", "ties"]))
    if res.quantization:
        from edgecnn.cli.quantize import print_report

        print_report(res.quantization)


def _print_detection_parity(parity: dict, c) -> None:
    def num(v, f):
        return "-" if v is None else format(v, f)

    rows = [(b["batch"], f"{b['height']}x{b['width']}", num(b["boxes_rel"], ".2e"), num(b["scores_rel"], ".2e"),
             num(b["scores_cosine"], ".7f"), f"{b['detections']}{'*' if b.get('probe') else ''}", f"{b['f1']:.3f}",
             f"{b['mean_iou']:.4f}", b["ties"]) for b in parity["batches"]]
    d = c.detection
    typer.echo(f"parity gate ({parity['precision']}, onnxruntime CPU vs PyTorch, boxes/scores then final detections "
               f"with NMS on the {d.nms}: conf {d.conf:g}, IoU {d.iou:g}, max {d.max_det}): PASSED")
    head = ["batch", "input", "boxes rel", "scores rel", "scores cos", "dets", "det F1", "mean IoU", "ties"]
    typer.echo(table(head, rows, right=head[2:]))
    if any(b.get("probe") for b in parity["batches"]):
        typer.echo(f"* no detection of the model passed conf {d.conf:g} (random weights score every box about the "
                   "same): its NMS and final boxes were checked on the model's boxes with synthetic scores instead")
