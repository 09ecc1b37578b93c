"""``edgecnn eval MODEL --data DIR``: accuracy or COCO mAP of a model on a labelled split.

Thin: options -> ``edgecnn.eval.run.evaluate`` -> a table or JSON on stdout; per-file errors and
warnings on stderr; exit 1 when an image failed. Torch-free for ONNX files.
"""

from __future__ import annotations

import typer

from edgecnn.cli import threads as cli_threads
from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json
from edgecnn.cli.prep_options import Prep, prep_options
from edgecnn.tables import percent, table


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render(result: dict) -> str:
    """The ``--format table`` report of an ``EvalResult.to_dict()``."""
    m = result["metrics"]
    head = (f"{result['model']} on {result['data']} ({result['backend']}): {result['images']:,} images, "
            f"{result['failed']} failed, {result['seconds']:.1f} s")
    if result["task"] == "detect":
        rows = [("mAP@[.50:.95]", _num(m["map"])), ("mAP@.50", _num(m["map50"])), ("mAP@.75", _num(m["map75"])),
                ("AP small", _num(m["map_small"])), ("AP medium", _num(m["map_medium"])),
                ("AP large", _num(m["map_large"])), ("AR@100", _num(m["ar100"]))]
        per = [(name, f"{r['gt']:,}", _num(r["ap"]), _num(r["ap50"])) for name, r in m["per_class"].items()]
        return "\n".join([
            head + f"; COCO bbox (pycocotools), conf {m['conf']:g}, max-det {m['max_det']}, "
                   f"{m['detections']:,} detections",
            table(["metric", "value"], rows, right=["value"]), "",
            table(["class", "objects", "AP", "AP50"], per, right=["objects", "AP", "AP50"])])
    rows = [(name, f"{r['n']:,}", f"{r['correct']:,}", percent(r["acc"], 1)) for name, r in m["per_class"].items()]
    lines = [head, f"top-1 {percent(m['top1'], 1)}  top-5 {percent(m['top5'], 1)}  ({m['split']})",
             table(["class", "images", "correct", "accuracy"], rows, right=["images", "correct", "accuracy"])]
    if m["confusions"]:
        lines += ["", "most frequent confusions (true -> predicted):"]
        lines += [f"  {c['true']} -> {c['predicted']}: {c['count']:,}" for c in m["confusions"]]
    return "\n".join(lines)


@app.command("eval")
@prep_options
def eval_cmd(
    model: str = typer.Argument(..., help="An ONNX file (or zoo name: export/NAME.onnx), or an edgecnn "
                                          "checkpoint (.pt, run in PyTorch)."),
    data: str = typer.Option(..., "--data", "-d", help="Detection: a COCO root (its val split) or split folder. "
                                                       "Classification: an ImageFolder (its val/) or IDX folder."),
    batch: int = typer.Option(8, "--batch", "-b", help="Images per inference call."),
    runtime: str = typer.Option("ort", "--runtime", help="ONNX: ort (onnxruntime), openvino (needs [openvino]) or "
                                                         "auto (what 'edgecnn tune' chose for this file on this "
                                                         "host; without a profile: ort)."),
    precision: str = typer.Option(None, "--precision", help="ONNX: auto (the file of the precision 'edgecnn tune' "
                                                            "chose), fp32 or int8 (the file of that precision "
                                                            "beside MODEL), bf16 (the FP32 file in OpenVINO's "
                                                            "bf16, on CPUs with AVX512_BF16/AMX) [default: MODEL "
                                                            "as given].",
                                  show_default=False),
    provider: str = typer.Option("auto", "--provider", help="ONNX, ort: auto, cpu, cuda or tensorrt."),
    threads: int = cli_threads.option("onnxruntime intra-op threads (a checkpoint: torch threads)"),
    save_predictions: str = typer.Option(None, "--save-predictions",
                                         help="Write the predictions as JSON (detection: COCO results format)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    prep: Prep = None,
) -> None:
    """Evaluate a model on a labelled split: top-1/top-5, per-class accuracy and the most frequent
    confusions for a classifier; COCO mAP@[.50:.95], mAP@.50, mAP@.75, AP small/medium/large and
    per-class AP (computed by pycocotools, the [eval] extra) for a detector.

    Preprocessing, labels and post-processing come from the model's contract, as in 'infer' (the
    options below override it; --size evaluates a file with a dynamic input size).
    Images that cannot be read are reported, counted and left out; the exit code is then 1.

    Example: edgecnn eval export/ssdlite_mobilenetv2.onnx --data data/shapes-det --format json
    """
    check_format(fmt)
    from edgecnn.runtime.choice import check_precision, check_runtime

    check_runtime(runtime)
    check_precision(precision)
    if not (runtime == "auto" and threads is None):  # auto without --threads: the tuned profile's
        threads = cli_threads.resolve(threads)
    from edgecnn.eval.run import EvalOptions, evaluate

    over = prep.overrides()
    result = evaluate(EvalOptions(model=model, data=data, conf=over.conf, iou=over.iou, max_det=over.max_det,
                                  batch=batch, provider=provider, threads=threads, runtime=runtime,
                                  precision=precision, save_predictions=save_predictions, overrides=over),
                      on_error=lambda m: typer.echo(f"Error: {m}", err=True)).to_dict()
    if "auto" in (runtime, precision) and result["runtime"]:
        from edgecnn.runtime.choice import describe_line

        typer.echo(describe_line(result["runtime"]), err=True)
    for w in result["warnings"]:
        typer.echo(f"Warning: {w}", err=True)
    if fmt == "json":
        emit_json(result)
    else:
        typer.echo(render(result))
    if save_predictions:
        typer.echo(f"predictions -> {save_predictions}", err=True)
    if result["failed"]:
        typer.echo(f"{result['failed']} of {result['images']} images failed to decode", err=True)
        raise typer.Exit(1)
