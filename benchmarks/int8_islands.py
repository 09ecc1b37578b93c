"""Benchmark: FP32 vs plain INT8 vs INT8 with float islands (``quantize --islands auto``) on zoo classifiers.

    python benchmarks/int8_islands.py [--models mobilenetv2 resnet18 ...] [--threads 2] [--tag TAG]

Per model: export at 224 (random-init weights: speed does not depend on the weight values, and the
agreement columns are therefore not an accuracy claim), quantize twice from the same 32 smooth random
calibration images (plain, and ``--islands auto`` tuned here with ``--threads``), then time the three
files in one interleaved run (edgecnn.bench.timing blocks, batch 1, onnxruntime CPU, spinning pool
threads as ``bench``), medians and ratios. Writes benchmarks/results/<device-tag>/int8_islands.md and
.json with the host line (CPU, ISA flags, load average before and after each model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from export_int8 import make_calib  # benchmarks/export_int8.py
from host import describe, results_dir, write_report  # benchmarks/host.py

from edgecnn.bench.timing import interleaved, summarize
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.islands import profile
from edgecnn.quantize import QuantizeOptions, quantize
from edgecnn.runtime.session import session_options

MODELS = ["mobilenetv3_small", "mobilenetv2", "mobilenetv3_large", "efficientnet_b0", "resnet18", "mobilenetv1",
          "se_resnet18"]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--tag", help="results folder name (default: this host's device tag)")
    ap.add_argument("--name", default="int8_islands", help="report file name without suffix")
    args = ap.parse_args()
    host = f"{describe()}; onnxruntime {ort.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    print(host, flush=True)
    work = Path(tempfile.mkdtemp(prefix="edgecnn-islands-"))
    (work / "calib").mkdir()
    calib = make_calib(work / "calib")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    rows = []
    for name in args.models:
        load_before = loadavg()
        fp32 = export(ExportOptions(model=name, input_size=224, out=str(work / f"{name}.onnx"))).path
        plain = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(work / f"{name}.int8.onnx"),
                                         samples=32, bench=False))
        isl = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(work / f"{name}.islands.onnx"),
                                       samples=32, bench=False, islands="auto", threads=args.threads))
        files = {"fp32": fp32, "int8": plain.path, "islands": isl.path}
        sessions = {k: ort.InferenceSession(str(p), session_options(threads=args.threads, spinning=True),
                                            providers=["CPUExecutionProvider"]) for k, p in files.items()}
        feed = {sessions["fp32"].get_inputs()[0].name: x}
        times = interleaved({k: (lambda s=s, f=feed: s.run(None, f)) for k, s in sessions.items()},
                            rounds=args.rounds, block=10)
        s = {k: {**summarize(v), "p10": float(np.percentile(v, 10))} for k, v in times.items()}
        prof = {k: sum(profile(Path(p).read_bytes(), feed, args.threads, runs=40)[0].values())
                for k, p in files.items()}
        info = isl.islands or {}
        row = {"model": name, "fp32_p50": s["fp32"]["p50"], "int8_p50": s["int8"]["p50"],
               "islands_p50": s["islands"]["p50"], "fp32_p90": s["fp32"]["p90"], "int8_p90": s["int8"]["p90"],
               "islands_p90": s["islands"]["p90"],
               "fp32_p10": s["fp32"]["p10"], "int8_p10": s["int8"]["p10"], "islands_p10": s["islands"]["p10"],
               "int8_speedup": s["fp32"]["p50"] / s["int8"]["p50"],
               "islands_speedup": s["fp32"]["p50"] / s["islands"]["p50"],
               "profiled_ms": prof, "int8_speedup_profiled": prof["fp32"] / prof["int8"],
               "islands_speedup_profiled": prof["fp32"] / prof["islands"],
               "kept": info.get("kept"), "islands": info.get("islands", []),
               "tuning_latency_ms": info.get("latency_ms"), "tuning_profiled_ms": info.get("profiled_ms"),
               "agree_int8": plain.agreement["top1_agreement"], "agree_islands": isl.agreement["top1_agreement"],
               "cos_int8": plain.agreement["cosine_mean"], "cos_islands": isl.agreement["cosine_mean"],
               "fp32_classes": plain.agreement["fp32_classes"],
               "load_before": load_before, "load_after": loadavg()}
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "islands"}, flush=True)
        for p in files.values():
            if p != fp32:
                p.unlink()
        report(rows, host, args)


def report(rows: list[dict], host: str, args) -> None:
    lines = [f"# FP32 vs INT8 vs INT8 with float islands, 224 px, batch 1, {args.threads} threads", "",
             f"Host: {host}", "",
             "Weights random-init (speed does not depend on them; the agreement columns are not an accuracy claim). "
             f"Islands tuned on this host by `quantize --islands auto --threads {args.threads}`. Then the three "
             f"files measured two ways: **profiled** = sum over nodes of each node's fastest kernel time "
             "in 40 calls (onnxruntime's profiler), which other jobs on the box disturb least; **wall** = one "
             f"interleaved run ({args.rounds} rounds x 10 calls, shuffled blocks), p50 and p10.", "",
             "| model | profiled FP32 / INT8 / islands ms | INT8/FP32 | islands/FP32 | "
             "wall p50 FP32 / INT8 / islands ms | INT8/FP32 | islands/FP32 | wall p10 FP32 / INT8 / islands | "
             "kept | float units | "
             "top-1 agree INT8 / islands | cosine INT8 / islands | load avg before -> after |",
             "|---|---|---:|---:|---|---:|---:|---|---|---:|---|---|---|"]
    for r in rows:
        p = r["profiled_ms"]
        lines.append(f"| {r['model']} | {p['fp32']:.2f} / {p['int8']:.2f} / {p['islands']:.2f} | "
                     f"**{r['int8_speedup_profiled']:.2f}x** | **{r['islands_speedup_profiled']:.2f}x** | "
                     f"{r['fp32_p50']:.2f} / {r['int8_p50']:.2f} / {r['islands_p50']:.2f} | "
                     f"{r['int8_speedup']:.2f}x | {r['islands_speedup']:.2f}x | "
                     f"{r['fp32_p10']:.2f} / {r['int8_p10']:.2f} / {r['islands_p10']:.2f} | {r['kept']} | "
                     f"{len(r['islands'])} | {r['agree_int8']:.1%} / {r['agree_islands']:.1%} | {r['cos_int8']:.4f} / "
                     f"{r['cos_islands']:.4f} | {r['load_before']} -> {r['load_after']} |")
    lines += ["", "Speed-up: FP32 time / variant time (above 1.0x the variant is faster). Units kept in float, "
              "with their profiled cost per call in the plain INT8 graph:", ""]
    for r in rows:
        units = ", ".join(f"{i['unit']} ({i['ops']}: FP32 {i['fp32_ms']:.3f} / INT8 {i['int8_ms']:.3f} ms)"
                          for i in r["islands"]) or "none"
        lines.append(f"- {r['model']}: {units}")
    out = results_dir(args.tag)
    write_report(lines, f"{args.name}.md", out / f"{args.name}.md")
    (out / f"{args.name}.json").write_text(json.dumps({"host": host, "threads": args.threads, "rows": rows},
                                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
