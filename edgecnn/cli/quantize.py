"""``edgecnn quantize FILE.onnx --calib DIR``: INT8 (static QDQ) with an agreement report. No torch."""

from __future__ import annotations

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json
from edgecnn.cli.prep_options import Prep, prep_options
from edgecnn.tables import quantize_report


def print_report(r: dict) -> None:
    for line in quantize_report(r):
        typer.echo(line)


@app.command("quantize")
@prep_options
def quantize_cmd(
    model: str = typer.Argument(..., help="An FP32 ONNX file (ideally exported by edgecnn)."),
    calib: str = typer.Option(..., "--calib", help="Folder of calibration images (ImageFolder for accuracy)."),
    samples: int = typer.Option(64, "--samples", help="Calibration images to use."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="Weight scales per channel."),
    exclude: list[str] = typer.Option([], "--exclude", help="Node name to keep in float (repeatable)."),
    kernel: str = typer.Option("auto", "--int8-kernel", help="auto (by this CPU's flags), u8s8, u8s8-reduce (7-bit "
                                                             "weights), u8u8 or s8s8."),
    min_agreement: float = typer.Option(0.9, "--min-agreement", help="Gate: least top-1 agreement with FP32."),
    bench: bool = typer.Option(True, "--bench/--no-bench", help="Time FP32 vs INT8 here."),
    islands: str = typer.Option("off", "--islands", help="auto: profile FP32 and INT8 per block on this host and "
                                                         "keep in float the blocks INT8 makes slower; off."),
    threads: int = typer.Option(None, "--threads", help="Intra-op threads for the timings (default: one per "
                                                        "physical core, as infer)."),
    out: str = typer.Option(None, "--out", "-o", help="Output file (default <name>.int8.onnx)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
    prep: Prep = None,
) -> None:
    """Quantize an ONNX classifier to INT8 (static QDQ via onnxruntime), calibrated on images
    preprocessed by the file's own contract (the options below override it; the INT8 file keeps the
    contract used); report agreement with FP32 and what stayed in float.
    Below --min-agreement top-1 agreement with FP32 the file is not written (not judged for
    random-init weights). The INT8 kernel path follows this CPU: u8s8 with VNNI/AMX, u8u8 on
    AVX2/AVX-512 without VNNI (u8s8 saturates there), s8s8 on ARM.
    --islands auto profiles the FP32 and INT8 graphs per block on this host, keeps in float the
    blocks INT8 makes slower (SE gates, hard-swish stems, depthwise convolutions...), times the
    variants whole, re-times the best three against FP32 in 7 paired passes and writes the fastest
    that beats FP32 by more than FP32 differs from itself; when none does, it writes the FP32 graph
    (the contract and the report say INT8 did not pay: deploy the FP32 file). The report lists the
    islands, their cost per call and the ratios that decided.

    Example: edgecnn quantize export/mobilenetv2.onnx --calib images/ --samples 100
    """
    check_format(fmt)
    from edgecnn.quantize import QuantizeOptions, quantize

    res = quantize(QuantizeOptions(model=model, calib=calib, out=out, samples=samples, per_channel=per_channel,
                                   exclude=exclude, kernel=kernel, bench=bench, min_agreement=min_agreement,
                                   islands=islands, threads=threads, overrides=prep.overrides())).to_dict()
    if fmt == "json":
        emit_json(res)
    else:
        print_report(res)
