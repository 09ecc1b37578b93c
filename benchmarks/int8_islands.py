"""Benchmark: FP32 vs plain INT8 vs INT8 with float islands (``quantize --islands auto``) on zoo classifiers.

    python benchmarks/int8_islands.py [--models mobilenetv2 resnet18 ...] [--threads 2] [--passes 7] [--tag TAG]
        [--append]

Per model: export at the model card's input size (random-init weights: speed does not depend on the weight
values, and the agreement columns are therefore not an accuracy claim), quantize twice from the same 32
smooth random calibration images (plain, and ``--islands auto`` tuned here with ``--threads``; the islands
file is the FP32 graph when no INT8 variant paid), then time the three files against FP32 with the protocol
``--islands auto`` confirms with (``edgecnn.islands.OrtTiming.paired``): ``--passes`` passes, each with fresh
sessions created in alternating order and a settle pause, interleaved blocks (batch 1, onnxruntime CPU,
spinning pool threads as ``bench``), a second FP32 session as the control; per pass the ratio FP32 time /
variant time, reported as the median and the range over the passes. Also the summed per-node profile (each
node's fastest call in 40). Writes benchmarks/results/<device-tag>/<--name>.md and .json with the host line
(CPU, ISA flags, load average before and after each model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from export_int8 import make_calib  # benchmarks/export_int8.py
from host import describe, results_dir, write_report  # benchmarks/host.py

from edgecnn.export.exporter import ExportOptions, export
from edgecnn.islands import CONFIRM_PASSES, CONFIRM_TOP, CONTROL, MIN_MARGIN, OrtTiming, profile
from edgecnn.quantize import QuantizeOptions, quantize

MODELS = ["mobilenetv3_small", "mobilenetv2", "mobilenetv3_large", "efficientnet_b0", "resnet18", "mobilenetv1",
          "se_resnet18", "efficientnet_b1", "simplecnn", "lenet5", "resnet34", "resnet50", "efficientnet_b2",
          "alexnet", "convnext_tiny"]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def ratios(runs: list[dict[str, float]], key: str) -> dict:
    """FP32 (geometric mean of the two FP32 sessions) / ``key`` per pass: median, min, max."""
    r = [float(np.sqrt(p["fp32"] * p[CONTROL]) / p[key]) for p in runs]
    return {"median": statistics.median(r), "min": min(r), "max": max(r), "per_pass": r,
            "ms": statistics.median(p[key] for p in runs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=7)
    ap.add_argument("--tag", help="results folder name (default: this host's device tag)")
    ap.add_argument("--name", default="int8_islands_confirmed", help="report file name without suffix")
    ap.add_argument("--append", action="store_true", help="keep the rows of the report's .json, add the models "
                                                           "it lacks (a run that was stopped, continued)")
    args = ap.parse_args()
    host = f"{describe()}; onnxruntime {ort.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    print(host, flush=True)
    work = Path(tempfile.mkdtemp(prefix="edgecnn-islands-"))
    (work / "calib").mkdir()
    calib = make_calib(work / "calib")
    rows = []
    old = results_dir(args.tag) / f"{args.name}.json"
    if args.append and old.is_file():
        rows = json.loads(old.read_text())["rows"]
    for name in [m for m in args.models if m not in {r["model"] for r in rows}]:
        load_before = loadavg()
        fp32 = export(ExportOptions(model=name, out=str(work / f"{name}.onnx"))).path
        plain = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(work / f"{name}.int8.onnx"),
                                         samples=32, bench=False))
        t0 = time.perf_counter()
        isl = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(work / f"{name}.islands.onnx"),
                                       samples=32, bench=False, islands="auto", threads=args.threads))
        tuning_s = time.perf_counter() - t0
        files = {"fp32": fp32, "int8": plain.path, "islands": isl.path}
        model = onnx.load(str(fp32))
        inp = model.graph.input[0]
        shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
        feed = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        timing = OrtTiming(feed, model, threads=args.threads)
        runs = timing.paired({"fp32": files["fp32"].read_bytes(), CONTROL: files["fp32"].read_bytes(),
                              "int8": files["int8"].read_bytes(), "islands": files["islands"].read_bytes()},
                             args.passes)
        prof = {k: sum(profile(Path(p).read_bytes(), feed, args.threads, runs=40)[0].values())
                for k, p in files.items()}
        info = isl.islands or {}
        conf = info.get("confirm") or {}
        row = {"model": name, "input": shape, "wall": {k: ratios(runs, k) for k in ("int8", "islands", CONTROL)},
               "fp32_ms": statistics.median(np.sqrt(p["fp32"] * p[CONTROL]) for p in runs), "passes": runs,
               "profiled_ms": prof, "int8_speedup_profiled": prof["fp32"] / prof["int8"],
               "islands_speedup_profiled": prof["fp32"] / prof["islands"], "kept": info.get("kept"),
               "search_best": min(info["profiled_ms"], key=lambda k: info["profiled_ms"][k] if k != "fp32"
                                  else float("inf")) if info.get("profiled_ms") else None,
               "islands": info.get("islands", []), "confirm": conf, "tuning_s": tuning_s,
               "tuning_latency_ms": info.get("latency_ms"), "tuning_profiled_ms": info.get("profiled_ms"),
               "agree_int8": plain.agreement["top1_agreement"], "agree_islands": isl.agreement["top1_agreement"],
               "cos_int8": plain.agreement["cosine_mean"], "cos_islands": isl.agreement["cosine_mean"],
               "fp32_classes": plain.agreement["fp32_classes"],
               "load_before": load_before, "load_after": loadavg()}
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
               if k in ("model", "kept", "search_best", "tuning_s", "load_after")},
              {k: round(v["median"], 3) for k, v in row["wall"].items()}, flush=True)
        for p in files.values():
            if p != fp32:
                p.unlink()
        report(rows, host, args)
    report(rows, host, args)  # --append with nothing to add: the report written again from the .json


def _r(w: dict) -> str:
    return f"**{w['median']:.2f}x** ({w['min']:.2f}-{w['max']:.2f})"


def report(rows: list[dict], host: str, args) -> None:
    lines = [f"# FP32 vs INT8 vs INT8 with float islands (confirmed), batch 1, {args.threads} threads", "",
             f"Host: {host}", "",
             "Weights random-init (speed does not depend on them; the agreement columns are not an accuracy claim). "
             f"Islands tuned on this host by `quantize --islands auto --threads {args.threads}`: the search ranks "
             f"the INT8 variants, the top {CONFIRM_TOP} are re-timed against FP32 in {CONFIRM_PASSES} paired passes "
             "and one is kept only when its median ratio clears the margin (the second-worst FP32-vs-FP32 pass, "
             f"at least {MIN_MARGIN:.0%}) and its second-lowest pass is at least 1.00x; "
             "otherwise the islands file is the FP32 graph (kept = fp32). Then the three files measured again "
             f"with the same protocol, {args.passes} passes (fresh sessions each pass, alternating creation order, "
             "a settle pause, interleaved blocks of 8 calls x 4 rounds, a second FP32 session as the control): "
             "ratio FP32 time / variant time per pass, **median** (min-max over the passes). "
             "Profiled = sum over nodes of each node's fastest kernel time in 40 calls (onnxruntime's profiler).", "",
             "| model | input | FP32 ms | INT8/FP32 | islands/FP32 | FP32/FP32 control | kept (search's first) | "
             "float units | profiled INT8/FP32 | profiled islands/FP32 | top-1 agree INT8 / islands | "
             "cosine INT8 / islands | tuning s | load avg before -> after |",
             "|---|---|---:|---|---|---|---|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        w = r["wall"]
        lines.append(f"| {r['model']} | {'x'.join(map(str, r['input'][1:]))} | {r['fp32_ms']:.2f} | {_r(w['int8'])} | "
                     f"{_r(w['islands'])} | {_r(w[CONTROL])} | {r['kept']} ({r['search_best']}) | "
                     f"{len(r['islands']) if r['kept'] != 'fp32' else 'all'} | "
                     f"{r['int8_speedup_profiled']:.2f}x | {r['islands_speedup_profiled']:.2f}x | "
                     f"{r['agree_int8']:.1%} / {r['agree_islands']:.1%} | {r['cos_int8']:.4f} / "
                     f"{r['cos_islands']:.4f} | {r['tuning_s']:.0f} | {r['load_before']} -> {r['load_after']} |")
    lines += ["", "The confirmation `--islands auto` ran while tuning (FP32 / variant: median and second-lowest of "
              "its passes; margin):", ""]
    for r in rows:
        c = r["confirm"]
        if c:
            vs = ", ".join(f"{k} {v['median']:.2f}x (low {v['low']:.2f}x){' kept' if k == r['kept'] else ''}"
                           for k, v in c["variants"].items())
            lines.append(f"- {r['model']}: {vs}; margin {c['margin']:.0%} -> kept {r['kept']}")
    lines += ["", "Units kept in float (islands file), with their profiled cost per call in the plain INT8 graph:", ""]
    for r in rows:
        if r["kept"] == "fp32":
            lines.append(f"- {r['model']}: the whole graph (INT8 did not pay)")
            continue
        shown = r["islands"][:8]
        units = ", ".join(f"{i['unit']} ({i['ops']}: FP32 {i['fp32_ms']:.3f} / INT8 {i['int8_ms']:.3f} ms)"
                          for i in shown) or "none"
        more = f" and {len(r['islands']) - len(shown)} more (json)" if len(r["islands"]) > len(shown) else ""
        lines.append(f"- {r['model']}: {units}{more}")
    out = results_dir(args.tag)
    write_report(lines, f"{args.name}.md", out / f"{args.name}.md")
    (out / f"{args.name}.json").write_text(json.dumps({"host": host, "threads": args.threads, "rows": rows},
                                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
