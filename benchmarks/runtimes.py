"""Benchmark: every zoo model through onnxruntime and OpenVINO (``--runtime ort|openvino``): do the answers
agree within the parity tolerance, and which runtime is faster, on this host (issue 19's target "OpenVINO and
onnxruntime answers equal within the parity tolerance on every zoo model").

    python benchmarks/runtimes.py                           # every zoo model, bounded by --budget-s
    python benchmarks/runtimes.py --models mobilenetv2 ssdlite_mobilenetv2 --runs 30

Per model, at its default input: weights with gathered BatchNorm statistics (``tests/zoo_weights.py``: random
init leaves eval-mode outputs at ~1e-16, where no comparison means anything), exported to a temporary FP32
file (and, for classifiers up to ``--int8-max-gmacs``, an INT8 file calibrated on random images: speed and
runtime agreement only, its accuracy means nothing). Answers: the same 4 random inputs through both engines
(``Engine(runtime=...)``, the code ``infer`` runs), every output compared with the export gate's metrics
(relative max-abs error, cosine, top-1; detectors also their final detections after NMS, F1 of matched
boxes); FP32 passes at the gate's FP32 tolerance, INT8 is judged against quantize's agreement bar (two INT8
kernels round apart). Speed: the bench protocol (``Bench``: interleaved blocks, reshuffled, batch 1,
``--threads`` 2), onnxruntime and OpenVINO rows of the same file in one run; ratio = ORT p50 / OV p50 (> 1:
OpenVINO faster). Writes ``runtimes.md`` and ``runtimes.json`` under benchmarks/results/<device-tag>/, with
the CPU model, ISA flags and the load average before and after (a shared machine: ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.host import describe, results_dir  # noqa: E402
from edgecnn import registry  # noqa: E402
from edgecnn.bench.config import Sweep  # noqa: E402
from edgecnn.bench.environment import capture  # noqa: E402
from edgecnn.bench.protocol import Bench, Protocol  # noqa: E402
from edgecnn.export.exporter import ExportOptions, export  # noqa: E402
from edgecnn.export.parity import TOLERANCES, compare  # noqa: E402
from edgecnn.fileio import atomic_path  # noqa: E402
from edgecnn.runtime.detect import agreement, postprocess  # noqa: E402
from edgecnn.runtime.image import Geometry  # noqa: E402
from edgecnn.runtime.session import Engine  # noqa: E402
from edgecnn.tables import markdown_table  # noqa: E402
from tests.zoo_weights import conditioned_checkpoint  # noqa: E402

FP32 = TOLERANCES["fp32"]
INT8_TOP1 = 0.9  # quantize's agreement gate (QuantizeOptions.min_agreement)
SAMPLES = 4


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def runs_for(macs: int, runs: int) -> int:
    """Fewer timed runs as models grow (a VGG-16 call is ~100x a MobileNet's)."""
    return max(8, min(runs, int(runs * 0.6e9 / max(macs, 1))))


def answers(path: Path, threads: int, task: str) -> dict:
    """The same inputs through both runtimes: per output the gate's metrics; detectors: final-detection F1."""
    ort_e = Engine(path, threads=threads)
    ov_e = Engine(path, runtime="openvino", threads=threads)
    x = np.random.default_rng(0).standard_normal(ort_e.batch_shape(SAMPLES), dtype=np.float32)
    if ort_e.fixed_batch:
        x = x[:ort_e.fixed_batch]
    ref, got = ort_e.run(x), ov_e.run(x)
    n = len(x)
    out = {"outputs": {}}
    for k in ref:
        if ref[k].dtype.kind != "f" or ref[k].size == 0:
            out["outputs"][k] = {"equal": bool(np.array_equal(ref[k], got[k]))}
            continue
        p = compare(ref[k], got[k], n)
        out["outputs"][k] = {"rel": p.rel, "cosine": p.cosine, "top1": p.top1, "ties": p.ties,
                             "scale": float(np.abs(ref[k]).max())}
    if task == "detect":
        spec = ort_e.contract.detection
        if "scores" in ref:  # weights without training score every anchor low: compare at the top 0.1% of scores
            first = 1 if spec.background_class else 0
            spec = replace(spec, conf=min(spec.conf, float(np.quantile(ref["scores"][..., first:], 0.999))))
        out["detections_conf"] = spec.conf
        w, h = ort_e.input_size
        geoms = [Geometry((w, h), (1.0, 1.0), (0.0, 0.0))] * n
        a = agreement(postprocess(ref, geoms, spec, (w, h)), postprocess(got, geoms, spec, (w, h)), 0.9,
                      tie=2 * FP32["rel"])
        out["detections"] = {k: a[k] for k in ("f1", "mean_iou", "ref", "got", "ties")}
    return out


def passed(ans: dict, precision: str) -> bool:
    for m in ans["outputs"].values():
        if "equal" in m:
            if not m["equal"]:
                return False
        elif precision == "fp32":
            if not (m["rel"] <= FP32["rel"] and m["cosine"] >= FP32["cosine"] and m["top1"] >= FP32["top1"]):
                return False
        elif m["top1"] < INT8_TOP1:
            return False
    det = ans.get("detections")
    return det is None or det["f1"] >= (1.0 if precision == "fp32" else 0.9)


def _int8(path: Path, d: Path) -> Path:
    from edgecnn.quantize import QuantizeOptions, quantize

    calib = d / "calib"
    calib.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(calib / f"{i}.png")
    return quantize(QuantizeOptions(model=str(path), calib=str(calib), out=str(d / f"{path.stem}.int8.onnx"),
                                    bench=False, min_agreement=0.0)).path


def measure(name: str, d: Path, args, env: dict, speed: bool = True) -> dict:
    """One model: its answers through both runtimes, and with ``speed`` its timings (and INT8 rows)."""
    card = registry.get_card(name)
    t0 = time.perf_counter()
    w = conditioned_checkpoint(name, d / f"{name}.pt")
    path = export(ExportOptions(model=name, weights=str(w), out=str(d / f"{name}.onnx"), check=False)).path
    entry = {"model": name, "task": card.task, "input": card.input_size, "macs": card.macs, "params": card.params,
             "files": {"fp32": path}}
    if speed and card.task == "classify" and card.macs <= args.int8_max_gmacs * 1e9:
        entry["files"]["int8"] = _int8(path, d)
    entry["prepare_s"] = round(time.perf_counter() - t0, 1)
    entry["answers"] = {}
    for prec, f in entry["files"].items():
        ans = answers(f, args.threads, card.task)
        ans["passed"] = passed(ans, prec)
        entry["answers"][prec] = ans
    entry["files"] = {k: str(v) for k, v in entry["files"].items()}
    entry["speed"], entry["runs"] = {}, 0
    if not speed:
        return entry
    runs = runs_for(card.macs, args.runs)
    bench = Bench(Sweep([str(f) for f in entry["files"].values()], backends=["ort", "openvino"],
                        threads=[args.threads]), Protocol(runs=runs, warmup=3, block=min(10, runs)), peak=None,
                  environment=env)
    rows = bench.run()
    entry["speed"] = {f"{r['backend']} {r['precision']}": (r["latency_ms"] if r["status"] == "ok" else r["error"])
                      for r in rows}
    entry["runs"] = runs
    return entry


def _p50(entry: dict, key: str):
    v = entry["speed"].get(key)
    return v["p50"] if isinstance(v, dict) else None


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def _ms(v) -> str:
    return "-" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def table(entries: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["model", "input", "MACs", "FP32 rel err", "FP32 cosine", "top-1 / F1", "FP32 parity", "ORT FP32 ms",
            "OV FP32 ms", "ORT/OV FP32", "INT8 top-1 agree", "INT8 cosine", "ORT INT8 ms", "OV INT8 ms",
            "ORT/OV INT8"]
    out = []
    for e in entries:
        a = e["answers"]["fp32"]
        metrics = [m for m in a["outputs"].values() if "rel" in m]
        rel = max(m["rel"] for m in metrics)
        cos = min(m["cosine"] for m in metrics)
        agree = (f"F1 {a['detections']['f1']:.3f} ({a['detections']['ref']} boxes, conf {a['detections_conf']:.3g})"
                 if "detections" in a
                 else f"{min(m['top1'] for m in metrics):.2f}")
        q = e["answers"].get("int8")
        qm = [m for m in q["outputs"].values() if "rel" in m] if q else []
        of, oo = _p50(e, "ort fp32"), _p50(e, "openvino fp32")
        qf, qo = _p50(e, "ort int8"), _p50(e, "openvino int8")
        out.append([e["model"], f"{e['input']}", f"{e['macs'] / 1e9:.2f}G", f"{rel:.1e}", f"{cos:.7f}", agree,
                    "pass" if a["passed"] else "FAIL", _ms(of), _ms(oo), _ratio(of, oo),
                    f"{min(m['top1'] for m in qm):.2f}" if qm else "-",
                    f"{min(m['cosine'] for m in qm):.4f}" if qm else "-", _ms(qf), _ms(qo), _ratio(qf, qo)])
    return head, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=[c.name for c in registry.REGISTRY.values()])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=40, help="timed runs of a small model (fewer for big ones)")
    ap.add_argument("--int8-max-gmacs", type=float, default=2.0, help="INT8 rows for classifiers up to this")
    ap.add_argument("--budget-s", type=float, default=1500,
                    help="time no new model after this many seconds (the answers of every model are still compared)")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/<device-tag>/")
    args = ap.parse_args()

    env = capture()
    out = Path(args.out) if args.out else results_dir()
    host = describe()
    load_before = _load()
    print(f"{host}; load {load_before} -> {out}", flush=True)
    t0 = time.perf_counter()
    entries, skipped = [], []
    for name in sorted(args.models, key=lambda m: registry.get_card(m).macs):  # a budget cut drops the biggest
        speed = time.perf_counter() - t0 <= args.budget_s
        if not speed:
            skipped.append(name)
        with tempfile.TemporaryDirectory(prefix="edgecnn-runtimes-") as td:
            e = measure(name, Path(td), args, env, speed)
        entries.append(e)
        print(f"{name}: FP32 parity {'pass' if e['answers']['fp32']['passed'] else 'FAIL'}, ORT/OV FP32 "
              f"{_ratio(_p50(e, 'ort fp32'), _p50(e, 'openvino fp32'))}, {time.perf_counter() - t0:.0f} s so far",
              flush=True)
    load_after = _load()
    head, lines = table(entries)
    n_pass = sum(e["answers"]["fp32"]["passed"] for e in entries)
    n_int8 = [e for e in entries if "int8" in e["answers"]]
    text = "\n".join([
        "# onnxruntime vs OpenVINO on every zoo model (`python benchmarks/runtimes.py`)", "",
        f"Host: {host}. onnxruntime {env.get('onnxruntime')}, OpenVINO {_ov_version()}. Batch 1, {args.threads} "
        f"threads, each model at its default input, weights with gathered BatchNorm statistics (tests/zoo_weights.py). "
        f"Load average before / after: {load_before} / {load_after} (shared 2-core machine: other jobs ran during "
        f"the measurement, so absolute times are inflated; the ratios come from interleaved blocks of one run). "
        f"Wall {time.perf_counter() - t0:.0f} s.", "",
        f"**Answers: {n_pass} of {len(entries)} models within the FP32 parity tolerance** (the export gate's: "
        f"relative max-abs <= {FP32['rel']:g}, cosine >= {FP32['cosine']}, top-1 agreement {FP32['top1']:g}; "
        f"detectors: final detections F1 1.0 at IoU 0.9) on {SAMPLES} random inputs through `Engine(runtime=...)`; "
        f"INT8 ({len(n_int8)} classifiers up to {args.int8_max_gmacs:g} GMACs, random calibration): ORT INT8 vs "
        f"OV INT8 on the same file, bar = top-1 agreement >= {INT8_TOP1} (two INT8 kernels round apart, so the "
        f"FP32 tolerance does not apply). Speed: p50 ms of the model call (bench protocol, interleaved); "
        f"ORT/OV > 1 means OpenVINO is faster.", "",
        markdown_table(head, lines), "",
        *([f"Speed not measured (time budget of {args.budget_s:g} s spent; answers compared all the same): "
           f"{', '.join(skipped)}.", ""] if skipped else []),
    ])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "runtimes.md") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    doc = {"host": host, "environment": env, "threads": args.threads, "load_average": {"before": load_before,
           "after": load_after}, "tolerance": {"fp32": FP32, "int8_top1": INT8_TOP1}, "models": entries,
           "not_measured": skipped}
    with atomic_path(out / "runtimes.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {out / 'runtimes.md'}, {out / 'runtimes.json'}")


def _ov_version() -> str:
    from edgecnn.runtime.openvino import version

    return version()


if __name__ == "__main__":
    main()
