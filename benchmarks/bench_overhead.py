"""Benchmark: the harness overhead of ``edgecnn bench``: its p50 for mobilenetv2 against a bare
``session.run`` loop's p50, same file, same session options, same process, interleaved.

    python benchmarks/bench_overhead.py [--model mobilenetv2] [--rounds 6] [--runs 100] [--threads 2]

Round after round (the order alternating), ``Bench`` measures the file through the whole protocol
(sweep, backend, block scheduler, ``perf_counter_ns`` around the model call) and a plain loop times
``session.run`` on a session opened with the same options (``runtime.session_options``, spinning
pool threads) after the same warm-up. The median of the per-round p50 ratios is the
overhead; the target is within 2% (0.98-1.02). Writes
benchmarks/results/<device-tag>/bench_overhead.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from host import describe, results_dir  # benchmarks/host.py

from edgecnn.bench.config import Sweep
from edgecnn.bench.protocol import Bench, Protocol
from edgecnn.bench.stats import summarize
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.fileio import atomic_path
from edgecnn.runtime.session import session_options


def bare_p50(path: Path, threads: int, runs: int, warmup: int) -> float:
    sess = ort.InferenceSession(str(path), session_options(threads, spinning=True), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = np.random.default_rng(0).random((1, *inp.shape[1:]), dtype=np.float32)
    feed, names = {inp.name: x}, [o.name for o in sess.get_outputs()]
    for _ in range(warmup + 1):
        sess.run(names, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(names, feed)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return summarize(times)["p50"]


def bench_p50(path: Path, threads: int, runs: int, warmup: int) -> float:
    bench = Bench(Sweep([str(path)], providers={"ort": ["cpu"]}, threads=[threads]),
                  Protocol(runs=runs, warmup=warmup), peak=None)
    (row,) = bench.run()
    return row["latency_ms"]["p50"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mobilenetv2")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / f"{args.model}.onnx"
        export(ExportOptions(model=args.model, out=str(path), check=False))
        got: dict[str, list[float]] = {"bench": [], "bare": []}
        for i in range(args.rounds):
            order = ("bench", "bare") if i % 2 == 0 else ("bare", "bench")
            for name in order:
                fn = bench_p50 if name == "bench" else bare_p50
                got[name].append(fn(path, args.threads, args.runs, args.warmup))
    load = (load_before, os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in got.items()}
    # per-round ratios cancel most of the drift of a shared machine (both ways ran back to back)
    ratio = statistics.median(b / c for b, c in zip(got["bench"], got["bare"], strict=True))
    verdict = "within 2%" if abs(ratio - 1) <= 0.02 else "NOT within 2%"
    host = describe()
    out = results_dir(args.tag)
    rows = "\n".join(f"| {i + 1} | {b:.3f} | {c:.3f} | {b / c:.3f} |"
                     for i, (b, c) in enumerate(zip(got["bench"], got["bare"], strict=True)))
    md = (f"# edgecnn bench harness overhead: {args.model}\n\n"
          f"Host: {host}. Batch 1, {args.threads} threads, onnxruntime {ort.__version__} CPU, {args.rounds} rounds "
          f"x {args.runs} timed calls each way (order alternating), warm-up {args.warmup}. The machine is shared "
          f"with other work (1-minute load average {load[0]:.1f} before, {load[1]:.1f} after, on "
          f"{os.cpu_count()} cores): absolute figures move; the per-round ratio is what this measures.\n\n"
          "| round | bench p50 ms | bare session.run p50 ms | ratio |\n|---:|---:|---:|---:|\n"
          f"{rows}\n\n**Median per-round ratio {ratio:.3f} ({verdict}).** Median p50: bench {med['bench']:.3f} ms, "
          f"bare {med['bare']:.3f} ms (ratio of medians {med['bench'] / med['bare']:.3f}).\n\n"
          f"Reproduce: `python benchmarks/bench_overhead.py --model {args.model} "
          f"--rounds {args.rounds} --runs {args.runs} --threads {args.threads}`\n")
    data = {"model": args.model, "host": host, "threads": args.threads, "runs": args.runs, "rounds": args.rounds,
            "p50_ms": got, "median_p50_ms": med, "load_average": load, "ratio": ratio,
            "within_2_percent": abs(ratio - 1) <= 0.02}
    for name, text in (("bench_overhead.md", md), ("bench_overhead.json", json.dumps(data, indent=1) + "\n")):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    print(md)


if __name__ == "__main__":
    main()
