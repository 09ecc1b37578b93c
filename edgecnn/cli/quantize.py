"""``edgecnn quantize FILE.onnx --calib DIR``: INT8 (static QDQ) with an agreement report. No torch."""

from __future__ import annotations

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json, human, parse_size


def print_report(r: dict) -> None:
    say = typer.echo
    t, a = r["types"], r["agreement"]
    say(f"wrote {r['path']} (INT8 QDQ, {human(r['int8_bytes'])}B vs FP32 {human(r['fp32_bytes'])}B, "
        f"{r['fp32_bytes'] / max(r['int8_bytes'], 1):.1f}x smaller)")
    say(f"types: {t['activations']} activations x {t['weights']} weights"
        f"{', reduce_range' if t['reduce_range'] else ''} — {t['reason']}")
    top1 = f"top-1 {a['top1_agreement']:.1%}"
    if a.get("fp32_classes") == 1 and a["images"] > 1:  # agreement on a constant answer proves nothing
        top1 += f" (uninformative: FP32 gives one class to all {a['images']} images)"
    line = (f"agreement with FP32 on {a['images']} calibration images: {top1}, "
            f"max-abs logits {a['max_abs_logits']:.3g} (scale {a['logit_scale']:.3g}), cosine {a['cosine_mean']:.4f}")
    say(line)
    gate = r["contract"]["parity"]
    verdict = {True: "PASSED", False: "FAILED", None: "not judged (random-init weights)"}[gate["passed"]]
    say(f"INT8 gate (top-1 agreement >= {gate['min_agreement']:.0%}): {verdict}")
    if "accuracy_fp32" in a:
        say(f"accuracy on the labelled folder: FP32 {a['accuracy_fp32']:.1%}, INT8 {a['accuracy_int8']:.1%}")
    if r.get("latency_ms"):
        lat = r["latency_ms"]
        say(f"latency (batch 1, {lat['protocol']}): FP32 {lat['fp32_p50']:.2f} ms, INT8 {lat['int8_p50']:.2f} ms "
            f"-> {lat['speedup']:.2f}x")
    ops = r["float_ops"]
    say("ops left in float: " + (", ".join(f"{k} x{v}" for k, v in ops.items()) if ops else "none"))
    for note in r.get("notes", []):
        say(f"note: {note}")


@app.command("quantize")
def quantize_cmd(
    model: str = typer.Argument(..., help="An FP32 ONNX file (ideally exported by edgecnn)."),
    calib: str = typer.Option(..., "--calib", help="Folder of calibration images (ImageFolder for accuracy)."),
    samples: int = typer.Option(64, "--samples", help="Calibration images to use."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per channel."),
    exclude: list[str] = typer.Option([], "--exclude", help="Node name to keep in float (repeatable)."),
    types: str = typer.Option("auto", "--types", help="auto (for this CPU), u8s8 or s8s8."),
    min_agreement: float = typer.Option(0.9, "--min-agreement", help="Gate: least top-1 agreement with FP32."),
    size: str = typer.Option(None, "--size", help="Input size S or HxW, for a file without a contract whose "
                                                  "graph leaves it dynamic."),
    bench: bool = typer.Option(True, "--bench/--no-bench", help="Time FP32 vs INT8 here."),
    out: str = typer.Option(None, "--out", "-o", help="Output file (default <name>.int8.onnx)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Quantize an ONNX classifier to INT8 (static QDQ via onnxruntime), calibrated on images
    preprocessed by the file's own contract; report agreement with FP32 and what stayed in float.
    Below --min-agreement top-1 agreement with FP32 the file is not written (not judged for
    random-init weights).

    Example: edgecnn quantize export/mobilenetv2.onnx --calib images/ --samples 100
    """
    check_format(fmt)
    from edgecnn.quantize import QuantizeOptions, quantize

    res = quantize(QuantizeOptions(model=model, calib=calib, out=out, samples=samples, per_channel=per_channel,
                                   exclude=exclude, types=types, bench=bench, min_agreement=min_agreement,
                                   size=parse_size(size, "--size"))).to_dict()
    if fmt == "json":
        emit_json(res)
    else:
        print_report(res)
