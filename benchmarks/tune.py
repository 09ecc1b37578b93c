"""Benchmark: does ``edgecnn tune`` find a configuration faster than both plain runtimes? (issue 19's target)

    python benchmarks/tune.py prepare            # FP32 files (torch; random init: speed only) + INT8 beside them
    python benchmarks/tune.py measure            # tune each file, then tuned vs plain ort vs plain OpenVINO

The target: the tuned configuration (what ``--runtime auto --precision auto`` runs, the profile's latency
choice) <= 0.9x the p50 of the faster of plain onnxruntime and plain OpenVINO on the FP32 file, at batch 1,
for mobilenetv2, resnet18, mobilenetv3_large, efficientnet_b0 and ssdlite_mobilenetv2.

- plain onnxruntime: ``onnxruntime.InferenceSession(file)`` with onnxruntime's default session options (one
  thread per physical core, spinning on, graph optimisation "all");
- plain OpenVINO: bench's OpenVINO row (``compile_file``: LATENCY hint, one stream, OpenVINO's thread choice,
  f32 inference precision: OpenVINO's own default on an AMX/AVX512_BF16 CPU is bf16, a precision change;
  that one is measured too, as "openvino bf16", not part of the target);
- tuned: the profile's latency choice (runtime, precision file or bf16, threads, onnxruntime options); tune
  offers bf16 only on a CPU with native bf16 and after its accuracy check (no calibration folder here: 16
  seeded smooth random images, judged against FP32; random-init weights, so numerical agreement, not accuracy).

``prepare`` (torch) writes to ``--work`` (default /tmp/edgecnn-tune): each model exported without weights
(speed does not depend on them) and quantized to ``<name>.int8.onnx`` on 16 smooth random images (speed only;
an INT8 file for deployment is calibrated on real images). ``measure`` is torch-free: ``edgecnn.bench.tune``
with ``--budget`` seconds per file, then the three configurations interleaved in blocks (``timing.run_blocks``)
for ``--time`` seconds each. Writes tune.md and tune.json (``--name NAME``: NAME.md, NAME.json) under
benchmarks/results/<device tag>/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import describe, results_dir  # noqa: E402  (benchmarks/host.py)

WORK = Path("/tmp/edgecnn-tune")
MODELS = ("mobilenetv2", "resnet18", "mobilenetv3_large", "efficientnet_b0", "ssdlite_mobilenetv2")
TARGET = 0.9


def prepare(work: Path, models: list[str]) -> None:
    from PIL import Image

    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.quantize import QuantizeOptions, quantize

    calib = work / "calib"
    calib.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(16):  # smooth random images: upsampled noise, so activations have structure
        small = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(small).resize((320, 320), Image.BILINEAR).save(calib / f"r{i:02d}.png")
    for name in models:
        out = work / f"{name}.onnx"
        if not out.is_file():
            export(ExportOptions(model=name, out=str(out), check=False))
        int8 = work / f"{name}.int8.onnx"
        if not int8.is_file():
            quantize(QuantizeOptions(model=str(out), calib=str(calib), out=str(int8), samples=16, bench=False,
                                     min_agreement=0.0))
        print(f"{name}: {out} and {int8.name}", file=sys.stderr)


def _plain_ort(path: Path, shape, layout, threads: int | None = None):
    import onnxruntime as ort

    from edgecnn.bench.backends import random_input

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: random_input(1, shape, layout)}
    return lambda: sess.run(None, feed)


def _plain_openvino(path: Path, shape, layout, threads: int | None = None, hint: str = "f32"):
    from edgecnn.bench.backend_openvino import compile_file

    r = compile_file(path, batch=1, threads=threads, size=shape[1:], layout=layout, inference_precision=hint)
    x = r.make_input(1)
    return lambda: r(x)


def _tuned(choice: dict, shape, layout):
    from edgecnn.bench.tune import ORT_DEFAULTS, Candidate, _load

    opts = {k: v for k, v in choice["options"].items() if k in ORT_DEFAULTS}
    c = Candidate(choice["runtime"], choice["precision"], choice["path"], choice["threads"], 1, **opts)
    return _load(c, shape, layout, warmup=3).call


def measure(work: Path, models: list[str], budget: float, seconds: float) -> list[dict]:
    from edgecnn.bench.stats import summarize
    from edgecnn.bench.targets import input_spec
    from edgecnn.bench.timing import run_blocks
    from edgecnn.bench.tune import tune

    out = []
    for name in models:
        path = work / f"{name}.onnx"
        load0 = Path("/proc/loadavg").read_text().split()[:3]
        t0 = time.perf_counter()
        result = tune(path, budget_s=budget, on_progress=lambda t, n=name: print(f"{n}: {t}", file=sys.stderr))
        tune_s = time.perf_counter() - t0
        choice = result.choices["latency"]
        shape, layout = input_spec(path, None)
        calls = {"plain ort": _plain_ort(path, shape, layout), "plain openvino": _plain_openvino(path, shape, layout),
                 "tuned": _tuned(choice, shape, layout),
                 "openvino bf16": _plain_openvino(path, shape, layout, hint="bf16"),  # OpenVINO's own default here
                 # one thread each: how much of the gain is the thread count alone on a loaded machine
                 "plain ort t1": _plain_ort(path, shape, layout, 1),
                 "plain openvino t1": _plain_openvino(path, shape, layout, 1)}
        ns = run_blocks(calls, min_time_s=seconds, block=5, warmup=2)
        p50 = {k: summarize([t / 1e6 for t in v])["p50"] for k, v in ns.items()}
        p90 = {k: summarize([t / 1e6 for t in v])["p90"] for k, v in ns.items()}
        best_plain = min(p50["plain ort"], p50["plain openvino"])
        rec = {"model": name, "input": list(shape), "tuned": choice["key"], "p50_ms": p50, "p90_ms": p90,
               "n": {k: len(v) for k, v in ns.items()}, "ratio": p50["tuned"] / best_plain,
               "tune_s": tune_s, "saved_model": result.saved_model, "notes": result.notes, "checks": result.checks,
               "loadavg_before": load0, "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
               "tune_table": [{k: r[k] for k in ("stage", "key", "status", "error")} |
                              {"p50_ms": (r["latency_ms"] or {}).get("p50"), "images_s": r["throughput_ips"]}
                              for r in result.rows]}
        print(f"{name}: tuned {choice['key']} {p50['tuned']:.2f} ms, ort {p50['plain ort']:.2f}, openvino "
              f"{p50['plain openvino']:.2f}: {rec['ratio']:.2f}x", file=sys.stderr)
        out.append(rec)
    return out


def report(records: list[dict], tag: str | None, budget: float, seconds: float, name: str = "tune") -> Path:
    from edgecnn.bench.environment import capture
    from edgecnn.fileio import atomic_path
    from edgecnn.tables import markdown_table

    env = capture()
    folder = results_dir(tag)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [[r["model"], "x".join(map(str, r["input"][1:])), r["tuned"], f"{r['p50_ms']['tuned']:.2f}",
             f"{r['p50_ms']['plain ort']:.2f}", f"{r['p50_ms']['plain openvino']:.2f}", f"{r['ratio']:.2f}",
             _t1(r, "openvino bf16"), _t1(r, "plain ort t1"), _t1(r, "plain openvino t1"), _any(r),
             "yes" if r["ratio"] <= TARGET else "no", " ".join(r["loadavg_before"])] for r in records]
    named = "" if name == "tune" else f" --name {name}"
    lines = [
        "# edgecnn tune: tuned vs plain runtimes, batch 1 (issue 19)", "",
        f"Host: {describe()}.",
        f"onnxruntime {env.get('onnxruntime')}, OpenVINO {_ov_version()}; "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `python benchmarks/tune.py measure "
        f"--budget {budget:g} --time {seconds:g}{named}` (tune's budget per file; seconds of timed calls per row).", "",
        f"Target: tuned p50 <= {TARGET}x the faster plain runtime (FP32 file). p50 in ms, interleaved in blocks. "
        "The machine is shared with other jobs: load average (1/5/15 min) at the start of each model's run.", "",
        markdown_table(["model", "input", "tuned (latency choice)", "tuned", "plain ort", "plain openvino",
                        "ratio", "openvino bf16", "ort 1 thread", "openvino 1 thread", "ratio any threads",
                        "target met", "load"], rows,
                       right=("tuned", "plain ort", "plain openvino", "ratio", "openvino bf16", "ort 1 thread",
                              "openvino 1 thread", "ratio any threads")), "",
        "ratio: tuned p50 / min(plain ort, plain openvino). \"plain openvino\" is edgecnn's OpenVINO default, the "
        "f32 precision hint; \"openvino bf16\" is the same with the bf16 hint, which is OpenVINO's own default on "
        "a CPU with AVX512_BF16/AMX (not part of the target: a precision change). The 1-thread columns are the "
        "plain runtimes on one thread (not part of the target either); \"ratio any threads\": tuned p50 / the "
        "fastest of the four plain columns, what the tuned choice gains beyond picking the thread count (on a "
        "loaded machine one thread often wins by itself).",
        "",
    ]
    for r in records:
        c = (r.get("checks") or {}).get("bf16")
        if c and "judged_by" in c:
            lines.append(f"- {r['model']}: bf16 check on {c['inputs']}: {c['judged_by']} {c['value']:.3f} "
                         f"(needs >= {c['threshold']}), worst cosine {c['cosine']:.5f}: "
                         f"{'passed' if c['passed'] else 'rejected'}")
        elif c:
            lines.append(f"- {r['model']}: bf16 {c.get('why')}")
    for r in records:
        s = r["saved_model"]
        if s:
            lines.append(f"- {r['model']}: session creation {s['file_s'] * 1e3:.0f} ms from the file, "
                         f"{s['saved_s'] * 1e3:.0f} ms from the saved optimised graph "
                         f"({'used' if s['pays'] else 'not used'}); tune took {r['tune_s']:.0f} s")
    md = folder / f"{name}.md"
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(folder / f"{name}.json") as tmp:
        tmp.write_text(json.dumps({"environment": env, "budget_s": budget, "time_s": seconds,
                                   "records": records}, indent=1) + "\n")
    return md


def _any(r: dict) -> str:
    plain = [r["p50_ms"][k] for k in ("plain ort", "plain openvino", "plain ort t1", "plain openvino t1")
             if k in r["p50_ms"]]
    return f"{r['p50_ms']['tuned'] / min(plain):.2f}"


def _t1(r: dict, key: str) -> str:
    return f"{r['p50_ms'][key]:.2f}" if key in r["p50_ms"] else "-"


def _ov_version() -> str:
    try:
        import openvino

        return openvino.__version__.split("-")[0]
    except ImportError:
        return "not installed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("prepare", "measure"))
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--budget", type=float, default=40.0, help="tune's budget per file, seconds")
    ap.add_argument("--time", type=float, default=4.0, help="seconds of timed calls per row in the comparison")
    ap.add_argument("--tag", default=None, help="results folder (default: this host's device tag)")
    ap.add_argument("--name", default="tune", help="file name of the record (NAME.md, NAME.json)")
    a = ap.parse_args()
    models = a.models.split(",")
    if a.step == "prepare":
        prepare(a.work, models)
        return
    import os

    os.environ.setdefault("EDGECNN_HOME", str(a.work / "home"))  # profiles of these throwaway files stay here
    print(report(measure(a.work, models, a.budget, a.time), a.tag, a.budget, a.time, a.name))


if __name__ == "__main__":
    main()
