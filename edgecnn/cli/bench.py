"""``edgecnn bench TARGET...``: latency benchmarks on this device (torch-free for ONNX files).

The work is ``edgecnn.bench`` (sweep -> protocol -> rows -> reports); this module parses options,
prints the chosen format on stdout and the progress bar, the files written and errors on stderr.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, parse_size
from edgecnn.cli.prep_options import Prep, prep_options
from edgecnn.errors import EdgeCNNError, UsageError, require

FORMATS = ("table", "json", "csv", "md")


def default_out(tag: str) -> Path:
    """./bench-results/<tag>/ in the current folder, wherever edgecnn is installed from (the project's own
    recorded results under benchmarks/results/ are written by the scripts in benchmarks/, on purpose)."""
    return Path("bench-results") / tag


def _check_writable(out: Path) -> None:
    """Fail before measuring when ``--out`` cannot be created or written (nothing is created here)."""
    import os

    p = out
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise UsageError(f"--out {out}: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {p} is not writable")


def _ints(text: str | None, option: str) -> list:
    from edgecnn.bench.config import parse_list

    def cast(s: str) -> int | None:
        if option == "--threads" and s in ("default", "auto"):
            return None
        return int(s)

    return parse_list(text, option, cast)


def _declared(ctx: typer.Context, targets: list[str], prep: Prep) -> list[str]:
    """The targets with the preprocessing/task options written into their contracts: for each .onnx file,
    a copy in a temporary folder (``edgecnn contract`` into it; removed when the command ends), so
    ``--image``, INT8 calibration and remote devices all read the edited contract from the file."""
    given = prep.given()
    if not given:
        return targets
    import shutil
    import tempfile

    from edgecnn import contract as cm

    over = prep.overrides()
    tmp = Path(tempfile.mkdtemp(prefix="edgecnn-bench-contract-"))
    ctx.call_on_close(lambda: shutil.rmtree(tmp, ignore_errors=True))
    out = []
    for i, t in enumerate(targets):
        path = Path(t)
        if not (path.is_file() and path.suffix.lower() == ".onnx"):
            raise UsageError(f"{given[0]} applies to .onnx files (their contract); '{t}' carries its own, "
                             "edited at export")
        model, c, _ = cm.declare(path, over)
        copy = tmp / str(i) / path.name
        cm.write(path, c, copy, model=model)
        out.append(str(copy))
    return out


@app.command("bench")
@prep_options
def bench_cmd(
    ctx: typer.Context,
    targets: list[str] = typer.Argument(None, help="ONNX files, zoo names or checkpoints."),
    backend: str = typer.Option("ort", "--runtime", "--backend",
                                help="ort, openvino, torch or auto (comma list; auto: the configuration 'edgecnn "
                                     "tune' chose for each file on this host, without a profile ort)."),
    provider: str = typer.Option("auto", "--provider", help="ort: auto, cpu, cuda or tensorrt (comma list)."),
    device: str = typer.Option("cpu", "--device", help="torch / openvino: cpu or cuda (comma list)."),
    precision: str = typer.Option(None, "--precision", help="fp32, fp16, int8 (comma list; made on the fly from "
                                                            "FP32) [default: each file's own, read from it]."),
    batch: str = typer.Option("1", "--batch", help="Batch sizes (comma list)."),
    threads: str = typer.Option(None, "--threads", help="Intra-op threads (comma list; default: the backend's)."),
    input_size: str = typer.Option(None, "--input-size", help="S or HxW (comma list; default: the model's)."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls after the first run."),
    runs: int = typer.Option(None, "--runs", help="Timed calls per configuration (default 100)."),
    min_time: float = typer.Option(None, "--min-time", help="Instead of --runs: seconds of timed calls each."),
    image: list[str] = typer.Option(None, "--image", help="End to end on this image file or folder "
                                                          "(decode / preprocess / inference / postprocess)."),
    video: str = typer.Option(None, "--video", help="End to end on this video file: frames/s and the stage split, "
                                                     "decode inline vs on a second thread (as infer runs it)."),
    paced: float = typer.Option(None, "--paced", help="One call every 1/FPS s, as a camera sends frames."),
    baseline: str = typer.Option(None, "--baseline", help="Speed-up column against the row matching FIELD=VALUE "
                                                          "pairs, e.g. precision=fp32 (INT8/FP32), backend=ort, "
                                                          "threads=1 [default: precision=fp32,backend=ort]."),
    fmt: str = typer.Option("table", "--format", "-f", help="What stdout gets: table, json, csv or md."),
    out: str = typer.Option(None, "--out", "-o", help="Results folder [default: ./bench-results/<device-tag>/]."),
    plot: bool = typer.Option(False, "--plot", help="Also write a PNG: latency vs params (needs [plot])."),
    page: bool = typer.Option(False, "--html", help="Also write one self-contained HTML page (needs [plot])."),
    peak: bool = typer.Option(False, "--peak", help="Measure this machine's peak FP32/INT8 throughput (cached) "
                                                    "for floors and efficiency."),
    suite: str = typer.Option(None, "--suite", help="Add a named list of zoo models: zoo (every classifier), "
                                                    "detectors or faq."),
    scenario: str = typer.Option(None, "--scenario", help="Also run each configuration under MLCommons LoadGen: "
                                                          "singlestream, multistream or offline (needs [mlperf])."),
    min_duration: float = typer.Option(10.0, "--min-duration", help="--scenario: LoadGen's minimum run time in "
                                                                    "seconds (MLPerf's rules ask 600)."),
    remote: list[str] = typer.Option(None, "--remote", help="Also bench on this device over SSH (repeatable): "
                                                            "an ssh alias, user@host or ssh://user@host:port."),
    install: bool = typer.Option(False, "--install", help="--remote: install or update edgecnn on the device "
                                                          "(the wheel of this checkout)."),
    remote_python: str = typer.Option(None, "--remote-python", help="--remote: the device's Python with edgecnn "
                                                                    "(default ~/.edgecnn/venv/bin/python)."),
    wheels: str = typer.Option(None, "--wheels", help="--install: a folder of wheels for an offline device."),
    prep: Prep = None,
) -> None:
    """Latency of models on this device: session creation, first run, then p50/p90/p99, CV and
    throughput of the model call (or of the whole pipeline with --image), with params, MACs, file
    size, memory and the environment in every row. Each file runs at the precision it is stored at;
    a file and its INT8 file given together are measured interleaved, with the speed-up between
    them. Comma lists sweep every combination, interleaved in blocks; a configuration that fails is
    reported and the sweep goes on (exit 1 at the end). Every row has its speed-up over a baseline
    row (--baseline). Results: JSON (every sample), CSV and markdown under --out; --plot/--html add
    charts: speed-up, latency distributions, the --image stage split, latency vs params. With
    --remote the same sweep also runs on devices over SSH; their rows join the table under a host
    column. The preprocessing and task options (as in infer) edit the
    contract of .onnx targets for this run (a temporary copy): what --image and INT8 calibration
    use. --size is the file's one input size, --input-size a list of sizes to sweep.

    Example: edgecnn bench export/mobilenetv2.onnx export/mobilenetv2.int8.onnx --threads 1,2
    """
    check_format(fmt, FORMATS)
    if video:
        _bench_video(targets or [], video, provider, threads, fmt)
        return
    from edgecnn.bench import report
    from edgecnn.bench.backends import BACKENDS
    from edgecnn.bench.config import Sweep, parse_list
    from edgecnn.bench.protocol import Bench, Protocol

    backends = parse_list(backend, "--runtime")
    for be in backends:
        if be not in BACKENDS and be != "auto":
            raise UsageError(f"unknown --runtime '{be}'; choose from: {', '.join(BACKENDS)}, auto")
    auto = "auto" in backends
    backends = [be for be in backends if be != "auto"]
    where = {"ort": parse_list(provider, "--provider")}
    for be in backends:
        if be != "ort":
            where[be] = parse_list(device, "--device")
    sizes = [parse_size(s) for s in parse_list(input_size, "--input-size")] if input_size else [None]
    protocol = Protocol(warmup=warmup, runs=runs, min_time_s=min_time, paced_fps=paced)
    if baseline is not None:
        from edgecnn.bench.compare import parse

        parse(baseline)  # a bad --baseline fails before anything is measured
    if plot or page:
        require("matplotlib", "plot", "--plot/--html")
    if suite:
        from edgecnn.bench.suite import expand

        targets = [*(targets or []), *expand(suite)]
    if scenario:
        from edgecnn.bench import mlperf

        require("mlperf_loadgen", "mlperf", f"--scenario {scenario}")
        for b in _ints(batch, "--batch"):
            mlperf.check_scenario(scenario, b)
        if min_duration <= 0:
            raise UsageError(f"--min-duration must be > 0 seconds, got {min_duration:g}")
    if targets:
        targets = _declared(ctx, list(targets), prep)
    if not targets:
        if peak:
            _peak_only(_ints(threads, "--threads") or [None])
            return
        raise UsageError("give at least one model: an .onnx file, a zoo name or a checkpoint")
    batches, thread_list = _ints(batch, "--batch"), _ints(threads, "--threads") or [None]
    tuned = []
    if auto:
        from edgecnn.bench.config import auto_configs
        from edgecnn.runtime.choice import describe_line

        tuned, said = auto_configs(list(targets), batches, thread_list, sizes)
        for d in said:
            typer.echo(describe_line(d), err=True)
    sweep = Sweep(list(targets), backends, where, parse_list(precision, "--precision") or None, batches,
                  thread_list, sizes, tuned=tuned)
    images = None
    if image:
        from edgecnn.bench.e2e import find_images

        images = find_images(image)
    bar = _progress()
    bench = Bench(sweep, protocol, images=images, peak="measure" if peak else "cached", on_progress=bar.tell)
    out_dir = Path(out) if out else default_out(bench.tag)
    _check_writable(out_dir)
    if scenario:
        bench.after_measure.append(mlperf.bench_hook(scenario, out_dir, min_duration))
    fleet = None
    if remote:
        from edgecnn.remote.fleet import Fleet

        fleet = Fleet.for_bench(bench, remote, ctx, images=images, install=install, remote_python=remote_python,
                                wheels=wheels)
    try:
        rows = bench.run() if fleet is None else fleet.alongside(bench.run)
        bench.rows = rows
    finally:
        bar.close()
    failed = [r for r in rows if r["status"] != "ok"]
    if len(failed) == len(rows):
        raise EdgeCNNError(failed[0]["error"] + ("" if len(rows) == 1 else f" (and all {len(rows)} configurations "
                                                                             "failed)"))
    doc = bench.document() if fleet is None else fleet.annotate(bench.document())
    report.prepare(doc, baseline, _command_line(ctx))
    import time

    stem = "bench-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    written = report.write(doc, out_dir, stem, plot=plot, page=page)
    if fmt == "json":
        typer.echo(report.to_json(doc), nl=False)
    elif fmt == "csv":
        typer.echo(report.to_csv(doc), nl=False)
    elif fmt == "md":
        typer.echo(report.to_markdown(doc), nl=False)
    else:
        typer.echo(report.text_table(doc))
        for line in report.footnotes(doc):
            typer.echo(line)
        if scenario:
            for line in filter(None, map(mlperf.summary_line, rows)):
                typer.echo(line)
    typer.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)
    if fleet is not None:
        fleet.finish(exit=not failed)
    if failed:
        raise EdgeCNNError(f"{len(failed)} of {len(rows)} configurations failed (first: {failed[0]['id']}: "
                           f"{failed[0]['error']})")


def _command_line(ctx: typer.Context) -> str:
    """The command line as typed (``edgecnn bench ...``), for the reports."""
    import shlex

    argv = ctx.meta.get("edgecnn.argv")
    return "edgecnn " + (shlex.join(argv) if argv is not None else ctx.command_path.split(" ", 1)[-1])


def _bench_video(targets: list[str], path: str, provider: str, threads: str | None, fmt: str) -> None:
    """``--video``: each model through infer's frame loop (``edgecnn.bench.video``)."""
    from edgecnn.bench import video as vb
    from edgecnn.runtime.session import resolve_model

    check_format(fmt, ("table", "json"))
    if not targets:
        raise UsageError("--video: give at least one model (an .onnx file or a zoo name with an export)")
    vb.check_video(path)
    rows = []
    for t in targets:
        for n in _ints(threads, "--threads") or [None]:
            rows += vb.measure(resolve_model(t), path, provider=provider, threads=n)
    if fmt == "json":
        import json

        typer.echo(json.dumps({"video": path, "rows": rows}, indent=2))
    else:
        typer.echo(vb.table(rows))


def _peak_only(threads: list[int | None]) -> None:
    from edgecnn.bench import peak as peak_mod

    for t in threads:
        p = peak_mod.measure_and_cache(t)
        typer.echo(f"threads {t if t is not None else 'default'}: FP32 {p['fp32_gflops']:.0f} GFLOP/s (MatMul), "
                   f"INT8 {p['int8_gops']:.0f} GOP/s (MatMulInteger u8s8)")
    typer.echo(f"cached in {peak_mod.cache_file()}", err=True)


class _progress:
    """The progress bar on stderr (only on a terminal), driven by Bench's on_progress."""

    def __init__(self):
        from edgecnn.progress import Progress

        self.bar = Progress(100, "bench %")
        self.bar.min_interval = 0.2

    def tell(self, fraction: float, text: str) -> None:
        target = int(fraction * 100)
        self.bar.update(max(0, target - self.bar.done), now=text)

    def close(self) -> None:
        self.bar.close()
