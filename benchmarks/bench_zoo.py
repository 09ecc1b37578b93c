"""Benchmark: every zoo classifier at its default input on this CPU, side by side: PyTorch eager, onnxruntime
FP32 and INT8, OpenVINO FP32 and INT8 (where installed), with params, MACs, ONNX size, the floor and the
efficiency; then the zoo detectors end to end (decode, preprocess, inference, postprocess + NMS).

    python benchmarks/bench_zoo.py                       # <= ~20 min (--budget-s) on a 2-core machine
    python benchmarks/bench_zoo.py --models mobilenetv2 resnet18 --runs 30

Each model's configurations are measured together, interleaved in blocks (the bench protocol), models one
after another, the CNN FAQ's four first, then cheapest first; once --budget-s is spent no new model starts
(the rest are listed as not measured). Big models get few runs: --runs (40) for models up to 1 GMAC,
40 x 1G/MACs beyond (at least 10). INT8 files are calibrated on random images: their rows are speed-only.
Writes under benchmarks/results/<device-tag>/: zoo.json (every sample, the environment, the load average),
zoo.csv, zoo.md (the bench's own table), zoo.png (latency vs params) and zoo_table.md (one line per model:
the figures side by side and their ratios); detectors.* likewise for the end-to-end rows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn import registry
from edgecnn.bench import backend_openvino, report, suite
from edgecnn.bench.config import Sweep
from edgecnn.bench.environment import capture, device_tag
from edgecnn.bench.protocol import Bench, Protocol
from edgecnn.fileio import atomic_path
from edgecnn.tables import markdown_table

RESULTS = Path(__file__).parent / "results"


def _p50(rows: dict, model: str, backend: str, precision: str) -> float | None:
    r = rows.get((model, backend, precision))
    return r["latency_ms"]["p50"] if r and r["status"] == "ok" else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _fmt(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def pivot(doc: dict, models: list[str]) -> tuple[list[str], list[list[str]]]:
    """One line per model: the configurations side by side and the ratios that answer the questions."""
    rows = {(r["model"], r["backend"], r["precision"]): r for r in doc["rows"]}
    head = ["model", "input", "params", "MACs", "ONNX MB", "torch ms", "ORT FP32 ms", "ORT INT8 ms", "OV FP32 ms",
            "OV INT8 ms", "ORT FP32 min", "floor ms", "eff", "torch/ORT", "INT8 speed-up", "OV/ORT FP32", "OV/ORT INT8"]
    out = []
    for m in models:
        base = rows.get((m, "ort", "fp32"))
        if base is None:
            continue
        t, f, q = _p50(rows, m, "torch", "fp32"), _p50(rows, m, "ort", "fp32"), _p50(rows, m, "ort", "int8")
        of, oq = _p50(rows, m, "openvino", "fp32"), _p50(rows, m, "openvino", "int8")
        size = base.get("input_size") or ["?", "?"]
        out.append([m, f"{size[0]}x{size[1]}", f"{base['params'] / 1e6:.1f}M" if base.get("params") else "-",
                    f"{base['macs'] / 1e9:.2f}G" if base.get("macs") else "-",
                    f"{base['file_bytes'] / 1e6:.1f}" if base.get("file_bytes") else "-",
                    _fmt(t), _fmt(f), _fmt(q), _fmt(of), _fmt(oq),
                    _fmt(base["latency_ms"]["min"] if base.get("latency_ms") else None), _fmt(base.get("floor_ms")),
                    f"{base['efficiency']:.2f}" if base.get("efficiency") else "-",
                    _ratio(t, f), _ratio(f, q), _ratio(f, of), _ratio(q, oq)])
    return head, out


def runs_for(macs: int, runs: int) -> int:
    """Timed runs per configuration: ``runs`` for small models, fewer as MACs grow (VGG-16: 10), so that
    the slowest configuration (PyTorch eager) of a big model costs seconds, not minutes."""
    return max(10, min(runs, int(runs * 1e9 / max(macs, 1))))


def _calibration_free_image(root: Path) -> Path:
    """A smooth 640x480 photo-like image for the end-to-end rows (decode and resize cost of a real JPEG)."""
    small = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    path = root / "frame.jpg"
    Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC).save(path, quality=90)
    return path


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=suite.expand("zoo"))
    ap.add_argument("--detectors", nargs="*", default=suite.expand("detectors"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=40, help="timed runs per configuration of a small model (default 40)")
    ap.add_argument("--budget-s", type=float, default=900,
                    help="start no new model after this many seconds (default 900); the rest is listed as skipped")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/<device-tag>/")
    ap.add_argument("--stem", default="zoo", help="file names: <stem>.json|csv|md|png, <stem>_table.md (default zoo)")
    args = ap.parse_args()

    env = capture()
    out = Path(args.out) if args.out else RESULTS / device_tag(env)
    backends = ["ort", "torch"] + (["openvino"] if backend_openvino.available() else [])
    print(f"{env['cpu']}, {env['physical_cores']} cores, {' '.join(env['isa'])}; backends {backends}; "
          f"load {_load()} -> {out}", flush=True)

    t0 = time.perf_counter()
    load_before = _load()
    doc = None
    # the CNN FAQ's four first (the README's table), then cheapest first: a budget cut drops the biggest
    models = sorted(args.models, key=lambda m: (m not in suite.FAQ_MODELS, registry.get_card(m).macs))
    skipped = []
    for i, model in enumerate(models):  # one Bench per model: its own run budget, one model in memory
        if time.perf_counter() - t0 > args.budget_s:
            skipped.append(model)
            continue
        runs = runs_for(registry.get_card(model).macs, args.runs)
        bench = Bench(Sweep([model], backends=backends, precisions=["fp32", "int8"], threads=[args.threads]),
                      Protocol(runs=runs, warmup=2, block=min(10, runs)), peak="measure" if i == 0 else "cached",
                      environment=env,
                      on_progress=lambda f, text: print(f"  {f:5.0%} {text}", file=sys.stderr, flush=True))
        bench.run()
        part = bench.document()
        print(f"{model}: {runs} runs per configuration, {time.perf_counter() - t0:.0f} s so far", flush=True)
        if doc is None:
            doc = part
        else:
            doc["rows"] += part["rows"]
    # torch has no INT8 row of its own (INT8 is the onnxruntime QDQ file): its failed int8 rows say so once here
    doc["rows"] = [r for r in doc["rows"] if not (r["backend"] == "torch" and r["precision"] == "int8")]
    doc["load_average"] = {"before": load_before, "after": _load(),
                           "note": "1/5/15-min load averages of the shared machine; above the core count means "
                                   "other jobs competed for the cores during the run"}
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    doc["not_measured"] = {"models": skipped, "why": f"the run's time budget (--budget-s {args.budget_s:g}) was spent"}
    written = report.write(doc, out, args.stem, plot=True)
    head, lines = pivot(doc, models)
    peak = doc.get("peak") or {}
    text = (f"# Zoo on {env['cpu']} ({env['physical_cores']} cores; {', '.join(env['isa'])})\n\n"
            f"batch 1, {args.threads} threads, default input of each model; onnxruntime {env['onnxruntime']}; "
            f"load average before/after {doc['load_average']['before']} / {doc['load_average']['after']} "
            f"(shared machine: other jobs ran during the measurement); peak {peak}; wall {doc['wall_s']} s.\n"
            "p50 of the model call. torch = PyTorch eager on the same weights; INT8 = u8s8 QDQ from random "
            "calibration (speed only); OV = OpenVINO with the f32 precision hint (INT8 file: its INT8 kernels); "
            "ORT FP32 min = the fastest call (the figure least moved by other jobs on a shared machine); "
            "floor = 2 x MACs / measured peak; eff = floor / ORT FP32 p50; "
            "ratios (of p50s) > 1 mean the second is faster.\n\n"
            + markdown_table(head, lines) + "\n"
            + (f"\nNot measured (time budget of {args.budget_s:g} s spent on this loaded machine): "
               f"{', '.join(skipped)}.\n" if skipped else ""))
    with atomic_path(out / f"{args.stem}_table.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(text)

    if args.detectors:
        with tempfile.TemporaryDirectory() as td:
            image = _calibration_free_image(Path(td))
            det = Bench(Sweep(args.detectors, backends=backends, threads=[args.threads]),
                        Protocol(runs=max(10, args.runs // 3), warmup=2), images=[image],
                        peak="cached", environment=env)
            det.run()
            ddoc = det.document()
            ddoc["load_average"] = {"after": _load()}
            written += report.write(ddoc, out, "detectors")
            print(report.text_table(ddoc))
    print("wrote", *written, sep="\n  ")


if __name__ == "__main__":
    main()
