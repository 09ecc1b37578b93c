"""Benchmark: the performance targets of ``edgecnn bench`` (issue 9), side by side in one interleaved run.

    python benchmarks/bench_targets.py            # ~5 min on a 2-core machine
    python benchmarks/bench_targets.py --runs 30

(a) mobilenetv2 FP32: our export with bench's session settings vs the same architecture exported the plain
    way (``torch.onnx.export(model, x, f)`` with its defaults, run by ``ort.InferenceSession(f)`` with
    onnxruntime's defaults; target ratio <= 1.00) and vs PyTorch eager (target >= 3x faster).
(b) INT8 vs FP32 for mobilenetv2 and resnet18 (target >= 1.8x where the CPU has VNNI; the flags are recorded).
(c) onnxruntime vs OpenVINO per model and precision, plus OpenVINO with its own default precision (bf16
    on CPUs with AVX512_BF16/AMX). Where OpenVINO wins, the evidence of why: onnxruntime's profiler and its
    optimised graph (time and count per operator type) next to OpenVINO's per-layer performance counters
    (time per layer type and the kernel that ran it).

Configurations of one model are interleaved in blocks (edgecnn.bench.timing.run_blocks), so machine drift
hits all alike; compare ratios. Batch 1, 2 threads (``--threads``), random-init weights (speed does not depend
on them). Writes benchmarks/results/<device-tag>/targets.json and targets.md (targets-t<N>.* for other threads).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgecnn import registry
from edgecnn.bench import backend_openvino, backend_torch
from edgecnn.bench.environment import capture, device_tag
from edgecnn.bench.stats import summarize
from edgecnn.bench.targets import Workspace, resolve
from edgecnn.bench.timing import run_blocks
from edgecnn.fileio import atomic_path
from edgecnn.runtime.session import session_options
from edgecnn.tables import markdown_table

RESULTS = Path(__file__).parent / "results"
MODELS = ("mobilenetv2", "resnet18")


def plain_export(name: str, path: Path) -> Path:
    """The same architecture and weights, exported as a user who never heard of edgecnn would."""
    torch.manual_seed(0)  # edgecnn export's seed: the same random-init weights
    model = registry.build(name).eval()
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path))
    return path


THREADS = 2  # --threads


def ort_session(path: Path, threads: int | None = None, spinning: bool = True, profile: str | None = None,
                optimized: str | None = None) -> ort.InferenceSession:
    opts = session_options(threads or THREADS, spinning=spinning)
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile
    if optimized:
        opts.optimized_model_filepath = optimized
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_profile(path: Path, x: np.ndarray, work: Path, calls: int = 20) -> dict:
    """onnxruntime's per-operator time (share of the node time, per op type) and the optimised graph's ops."""
    opt_path = work / f"{path.stem}.optimized.onnx"
    sess = ort_session(path, profile=str(work / f"{path.stem}.prof"), optimized=str(opt_path))
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(calls):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    graph = onnx.load(str(opt_path), load_external_data=False).graph
    # depthwise convolutions (group > 1) apart from the others: they are where mobile networks spend their time
    depthwise = {n.name for n in graph.node if n.op_type in ("Conv", "QLinearConv")
                 and any(a.name == "group" and a.i > 1 for a in n.attribute)}
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            op = e["args"].get("op_name", "?") + (" (depthwise)" if node in depthwise else "")
            per_op[op] += e["dur"] / calls / 1e3  # ms per call
    graph_ops = Counter(n.op_type + (" (depthwise)" if n.name in depthwise else "") for n in graph.node)
    return {"ms_per_call_by_op": dict(sorted(per_op.items(), key=lambda kv: -kv[1])),
            "optimized_graph_ops": dict(graph_ops.most_common())}


def ov_profile(path: Path, x: np.ndarray, precision_hint: str = "f32", calls: int = 20) -> dict:
    """OpenVINO's performance counters: ms per call by layer type, and the kernels (exec types) that ran."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                                                 "INFERENCE_NUM_THREADS": THREADS, "PERF_COUNT": True,
                                                 "INFERENCE_PRECISION_HINT": precision_hint})
    req = compiled.create_infer_request()
    by_type: dict[str, float] = defaultdict(float)
    kernels: Counter = Counter()
    for _ in range(calls):
        req.infer({0: x})
        for p in req.profiling_info:
            if p.status == p.Status.EXECUTED:
                by_type[p.node_type] += p.real_time.total_seconds() * 1e3 / calls
    for p in req.profiling_info:
        if p.status == p.Status.EXECUTED and p.node_type in ("Convolution", "FullyConnected", "GroupConvolution"):
            kernels[f"{p.node_type}:{p.exec_type}"] += 1
    return {"ms_per_call_by_layer_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
            "conv_kernels": dict(kernels.most_common())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="default: benchmarks/results/<device-tag>/")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    env = capture()
    out = Path(args.out) if args.out else RESULTS / device_tag(env)
    vnni = any(f in env["isa"] for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    has_ov = backend_openvino.available()
    load_before = [round(v, 2) for v in os.getloadavg()]
    print(f"{env['cpu']}, {env['physical_cores']} cores, {' '.join(env['isa'])}; load {load_before}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="edgecnn-targets-"))
    results: dict = {"environment": env, "vnni": vnni, "runs": args.runs, "threads": THREADS, "models": {}}
    with Workspace() as ws:
        for name in MODELS:
            target = resolve(name)
            fp32, int8 = ws.onnx(target, "fp32"), ws.onnx(target, "int8")
            x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
            calls = {}
            for label, path in (("ort fp32", fp32), ("ort int8", int8)):
                s = ort_session(path)
                calls[label] = (lambda s=s, f={s.get_inputs()[0].name: x}: s.run(None, f))
            if name == "mobilenetv2":
                plain = plain_export(name, work / "plain.onnx")
                s = ort.InferenceSession(str(plain), providers=["CPUExecutionProvider"])  # onnxruntime's defaults
                calls["plain export, ort defaults"] = (lambda s=s, f={s.get_inputs()[0].name: x}: s.run(None, f))
                calls["torch eager"] = backend_torch.prepare(backend_torch.load_model(name), threads=THREADS)
            if has_ov:
                for label, path, hint in (("openvino fp32", fp32, "f32"), ("openvino int8", int8, "f32"),
                                          ("openvino default precision", fp32, "bf16")):
                    r = backend_openvino.compile_file(path, threads=THREADS, inference_precision=hint)
                    calls[label] = (lambda r=r, xi=r.make_input(1): r(xi))
            t0 = time.perf_counter()
            ns = run_blocks(calls, runs=args.runs, block=10, warmup=2)
            stats = {k: summarize([t / 1e6 for t in v]) for k, v in ns.items()}
            entry = {"p50_ms": {k: v["p50"] for k, v in stats.items()}, "stats_ms": stats,
                     "timed_s": round(time.perf_counter() - t0, 1)}
            p = entry["p50_ms"]
            entry["ratios"] = {"int8_speedup": p["ort fp32"] / p["ort int8"]}
            if name == "mobilenetv2":
                entry["ratios"]["ours_over_plain"] = p["ort fp32"] / p["plain export, ort defaults"]
                entry["ratios"]["eager_over_ours"] = p["torch eager"] / p["ort fp32"]
            if has_ov:
                entry["ratios"]["ort_over_openvino_fp32"] = p["ort fp32"] / p["openvino fp32"]
                entry["ratios"]["ort_over_openvino_int8"] = p["ort int8"] / p["openvino int8"]
                entry["ratios"]["ort_fp32_over_openvino_default"] = p["ort fp32"] / p["openvino default precision"]
                entry["why"] = {"ort_fp32": ort_profile(fp32, x, work), "ort_int8": ort_profile(int8, x, work),
                                "openvino_fp32": ov_profile(fp32, x), "openvino_int8": ov_profile(int8, x),
                                "openvino_bf16": ov_profile(fp32, x, "bf16")}
            results["models"][name] = entry
            print(name, {k: round(v, 2) for k, v in p.items()}, {k: round(v, 2) for k, v in entry["ratios"].items()},
                  flush=True)
    results["load_average"] = {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]}
    md = to_markdown(results)
    stem = "targets" if THREADS == 2 else f"targets-t{THREADS}"
    with atomic_path(out / f"{stem}.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1) + "\n")
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(md)
    print(md)


def _top(d: dict, n: int = 5) -> str:
    return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} x{v}" for k, v in list(d.items())[:n])


def to_markdown(res: dict) -> str:
    env = res["environment"]
    buf = io.StringIO()
    buf.write(f"# Performance targets on {env['cpu']} ({env['physical_cores']} cores; {', '.join(env['isa'])})\n\n"
              f"Batch 1, 224x224, {res['threads']} threads, {res['runs']} timed runs per configuration interleaved in "
              "blocks of 10; "
              f"onnxruntime {env['onnxruntime']}; VNNI: {'yes' if res['vnni'] else 'no'}. Load average before/after "
              f"{res['load_average']['before']} / {res['load_average']['after']}: a shared 2-core machine, other jobs "
              "ran during the measurement, so absolute times are inflated; the ratios come from one interleaved "
              "run.\n\n")
    rows = []
    for name, e in res["models"].items():
        for k, s in e["stats_ms"].items():
            rows.append([name, k, f"{s['p50']:.2f}", f"{s['p90']:.2f}", f"{s['min']:.2f}", f"{s['cv']:.0%}"])
    buf.write(markdown_table(["model", "configuration", "p50 ms", "p90 ms", "min ms", "CV"], rows) + "\n\n")
    targets = []
    mb = res["models"].get("mobilenetv2", {}).get("ratios", {})
    if "ours_over_plain" in mb:
        targets.append(["(a) mobilenetv2 ours / plain export (ORT defaults)", "<= 1.00", f"{mb['ours_over_plain']:.2f}",
                        "met" if mb["ours_over_plain"] <= 1.0 else "MISSED"])
        targets.append(["(a) mobilenetv2 torch eager / ours", ">= 3x", f"{mb['eager_over_ours']:.1f}x",
                        "met" if mb["eager_over_ours"] >= 3 else "MISSED"])
    for name, e in res["models"].items():
        r = e["ratios"]
        goal = ">= 1.8x (VNNI)" if res["vnni"] else "(no VNNI: not a target)"
        met = "met" if r["int8_speedup"] >= 1.8 else ("MISSED" if res["vnni"] else "-")
        targets.append([f"(b) {name} INT8 speed-up over FP32 (ORT)", goal, f"{r['int8_speedup']:.2f}x", met])
        for key, label in (("ort_over_openvino_fp32", "FP32"), ("ort_over_openvino_int8", "INT8"),
                           ("ort_fp32_over_openvino_default", "ORT FP32 vs OpenVINO default (bf16)")):
            if key in r:
                targets.append([f"(c) {name} ORT / OpenVINO p50, {label}", "state it", f"{r[key]:.2f}",
                                "OpenVINO faster" if r[key] > 1.05 else ("ORT faster" if r[key] < 0.95 else "even")])
    buf.write(markdown_table(["target", "goal", "measured", "verdict"], targets) + "\n\n")
    for name, e in res["models"].items():
        why = e.get("why")
        if not why:
            continue
        buf.write(f"## {name}: where the time goes (ms per call)\n\n")
        for k in ("ort_fp32", "ort_int8"):
            buf.write(f"- onnxruntime {k[4:]}: {_top(why[k]['ms_per_call_by_op'])}; optimised graph: "
                      f"{_top(why[k]['optimized_graph_ops'], 8)}\n")
        for k in ("openvino_fp32", "openvino_int8", "openvino_bf16"):
            buf.write(f"- OpenVINO {k[9:]}: {_top(why[k]['ms_per_call_by_layer_type'])}; kernels: "
                      f"{_top(why[k]['conv_kernels'], 4)}\n")
        buf.write("\n")
    return buf.getvalue()


if __name__ == "__main__":
    main()
