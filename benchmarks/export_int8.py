"""Benchmark: export time per zoo model; FP32 vs INT8 latency and file size at 224 on this CPU.

    python benchmarks/export_int8.py [--models mobilenetv2 resnet18 ...] [--skip-export-times]

Writes benchmarks/results/<device-tag>/export_times.csv, int8.csv and int8.md (``--tag`` to override;
the default is this host's ``edgecnn.bench.environment.device_tag()``). Latency: onnxruntime CPU
provider, batch 1, 224x224, default session options with 2 intra-op threads, configurations
interleaved in blocks (edgecnn.bench.timing), medians. Weights are random-init: speed and size do
not depend on the weight values; the agreement column is therefore not an accuracy claim.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from host import describe, results_dir  # benchmarks/host.py
from PIL import Image

from edgecnn import registry
from edgecnn.bench.timing import interleaved, summarize
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.quantize import QuantizeOptions, choose_types, quantize


def make_calib(root: Path, n: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):  # smooth random images: closer to natural statistics than white noise
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC).save(root / f"{i:03d}.png")
    return root


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["mobilenetv2", "resnet18", "efficientnet_b0",
                                                     "mobilenetv3_large"])
    ap.add_argument("--skip-export-times", action="store_true")
    ap.add_argument("--tag", help="results folder name (default: this host's device tag)")
    args = ap.parse_args()
    out_dir = results_dir(args.tag)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = (f"{describe()}; VNNI={'yes' if choose_types()['vnni'] else 'no'}, "
           f"onnxruntime {ort.__version__}, python {sys.version.split()[0]}")
    print(env)
    work = Path(tempfile.mkdtemp(prefix="edgecnn-bench-"))

    if not args.skip_export_times:
        rows = []
        for name in registry.names():
            res = export(ExportOptions(model=name, out=str(work / f"{name}.onnx")))
            rows.append({"model": name, "input": registry.get_card(name).input_size, "export_s": res.timings["export"],
                         "gate_s": res.timings["gate"], "total_s": res.timings["total"], "size_mb":
                         round(res.size_bytes / 1e6, 2)})
            print(rows[-1], flush=True)
            res.path.unlink()
        with open(out_dir / "export_times.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    calib = make_calib(Path(tempfile.mkdtemp(prefix="edgecnn-calib-")))
    rows = []
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for name in args.models:
        fp32 = export(ExportOptions(model=name, input_size=224, out=str(work / f"{name}.onnx"))).path
        variants = {"fp32": fp32}
        reports = {}
        for kernel in ("u8s8-reduce", "u8s8", "s8s8"):
            label = {"u8s8-reduce": "int8-u8s8-7bit"}.get(kernel, f"int8-{kernel}")
            q = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(work / f"{name}.{label}.onnx"),
                                         samples=32, kernel=kernel, bench=False))
            variants[label] = q.path
            reports[q.path] = q
        sessions = {k: session(p) for k, p in variants.items()}
        feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}
        t0 = time.perf_counter()
        times = interleaved({k: (lambda s=s, f=feeds[k]: s.run(None, f)) for k, s in sessions.items()},
                            rounds=8, block=10)
        base = summarize(times["fp32"])["p50"]
        for k, p in variants.items():
            s = summarize(times[k])
            q = reports.get(p)
            rows.append({"model": name, "variant": k, "p50_ms": round(s["p50"], 2), "p90_ms": round(s["p90"], 2),
                         "cv": round(s["cv"], 3), "speedup_vs_fp32": round(base / s["p50"], 2),
                         "size_mb": round(p.stat().st_size / 1e6, 2),
                         "float_ops": "; ".join(f"{o} x{n}" for o, n in (q.float_ops.items() if q else [])),
                         "top1_agree": round(q.agreement["top1_agreement"], 3) if q else ""})
            print(rows[-1], flush=True)
        print(f"  timed in {time.perf_counter() - t0:.0f}s")
    with open(out_dir / "int8.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out_dir / "int8.md", "w") as f:
        f.write(f"# FP32 vs INT8 (QDQ) at 224, batch 1, 2 threads\n\n{env}\n\n")
        f.write("| model | variant | p50 ms | p90 ms | CV | speed-up | size MB | ops left in float |\n")
        f.write("|---|---|---:|---:|---:|---:|---:|---|\n")
        for r in rows:
            f.write(f"| {r['model']} | {r['variant']} | {r['p50_ms']} | {r['p90_ms']} | {r['cv']} | "
                    f"{r['speedup_vs_fp32']}x | {r['size_mb']} | {r['float_ops'] or '-'} |\n")
    print("wrote", out_dir)


if __name__ == "__main__":
    main()
