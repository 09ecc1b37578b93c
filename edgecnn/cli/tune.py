"""``edgecnn tune FILE``: find the fastest way to run an ONNX file on this host and record it in the device
profile that ``--runtime auto`` / ``--precision auto`` read. Table on stdout, progress on stderr. No torch."""

from __future__ import annotations

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json


@app.command("tune")
def tune_cmd(
    model: str = typer.Argument(..., help="An ONNX file."),
    calib: str = typer.Option(None, "--calib", help="Calibration images to make the INT8 files beside it when "
                                                    "there are none (<name>.int8.onnx; <name>.int8-islands.onnx "
                                                    "with quantize --islands auto), and to check bf16's answers "
                                                    "against FP32's."),
    runtime: str = typer.Option(None, "--runtime", help="Runtimes to try: ort,openvino [default: those installed]."),
    precision: str = typer.Option(None, "--precision", help="Precisions to try: fp32,int8,int8-islands,bf16 "
                                                            "[default: all; INT8 ones where their file is there or "
                                                            "--calib makes it; bf16 (OpenVINO) where the CPU has "
                                                            "native bf16 and its answers agree with FP32's]."),
    threads: str = typer.Option(None, "--threads", help="Thread counts to try, e.g. 1,2 [default: 1..physical "
                                                        "cores]."),
    batch: str = typer.Option(None, "--batch", help="Batches to try for throughput, e.g. 1,8 [default: 1,4,8 "
                                                    "where the batch is dynamic]."),
    budget: float = typer.Option(None, "--budget", help="Seconds of timed calls, spread over the configurations "
                                                        "[default: 60]."),
    quick: bool = typer.Option(False, "--quick", help="A 20 s budget."),
    no_save: bool = typer.Option(False, "--no-save", help="Measure and print only; leave the profile as it is."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Measure this host's configurations of an ONNX file (runtime x precision x threads, onnxruntime's
    session options, batch), interleaved as bench measures, and record the fastest per objective
    (latency: p50 at batch 1; throughput: images/s) in the file's device profile, keyed by the file's
    SHA-256 and this host's tag. 'infer' and 'eval' with --runtime auto --precision auto, and 'bench
    --runtime auto', run what it chose. A configuration within 3% of the fastest that is simpler (FP32, default options,
    fewer threads) wins: smaller differences are noise. bf16 is a precision change: it is measured only after
    its outputs agree with FP32's on the --calib images (else on 16 seeded smooth random images): top-1
    agreement >= 99% (detectors: detection F1 >= 0.95) and cosine >= 0.999; otherwise its row says
    "rejected" and why.

    Example: edgecnn tune export/mobilenetv2.onnx --calib images/ --quick
    """
    check_format(fmt)
    from edgecnn.bench.config import parse_list
    from edgecnn.bench.tune import QUICK_BUDGET_S, tune
    from edgecnn.errors import UsageError

    if quick and budget is not None:
        raise UsageError("give --quick or --budget, not both")
    result = tune(model, runtimes=parse_list(runtime, "--runtime") or None,
                  precisions=parse_list(precision, "--precision") or None,
                  threads=parse_list(threads, "--threads", int) or None,
                  batches=parse_list(batch, "--batch", int) or None, calib=calib,
                  budget_s=QUICK_BUDGET_S if quick else budget, save=not no_save,
                  on_progress=lambda text: typer.echo(f"tune: {text}", err=True))
    if fmt == "json":
        emit_json(result.to_dict())
        return
    print_result(result)


def print_result(result) -> None:
    from edgecnn.bench.tune import baseline, table_rows
    from edgecnn.tables import ms, table

    headers, cells = table_rows(result)
    typer.echo(f"{result.path.name} on {result.host}")
    typer.echo(table(headers, cells, right=("threads", "batch", "session s", "p50 ms", "p90 ms", "images/s",
                                            "vs ort")))
    ref = baseline(result)
    if ref is not None:
        typer.echo(f"vs base: images/s over {ref['key']} (stage 1), what infer runs untuned")
    for objective, c in result.choices.items():
        opts = ", ".join(f"{k}={v}" for k, v in c["options"].items() if k != "optimized_model") or "defaults"
        threads = f"{c['threads']} thread" + ("s" if c["threads"] != 1 else "")
        typer.echo(f"{objective}: {c['runtime']} {c['precision']}, {threads}, batch {c['batch']} "
                   f"({opts}): p50 {ms(c['p50_ms'])} ms, {c['throughput_ips']:.1f} images/s")
    s = result.saved_model
    if s:
        typer.echo(f"session creation: {s['file_s'] * 1e3:.1f} ms from the file, {s['saved_s'] * 1e3:.1f} ms from "
                   f"onnxruntime's saved optimised graph: {'used' if s['pays'] else 'not worth it, not used'}")
    for precision, check in result.checks.items():
        if "judged_by" in check:
            typer.echo(f"{precision} check on {check['inputs']}: {check['judged_by']} {check['value']:.3f} (needs >= "
                       f"{check['threshold']}), worst cosine {check['cosine']:.5f}: "
                       f"{'passed' if check['passed'] else 'rejected'}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.profile:
        typer.echo(f"profile: {result.profile}")
