"""Benchmark: where a detector with a dynamic height x width loses to OpenVINO in onnxruntime (issue 19).

    python benchmarks/detector_gap.py prepare      # torch: the dynamic-size detector file
    python benchmarks/detector_gap.py measure      # torch-free: speed at 320..640 px and per-op profiles

``edgecnn export ssdlite_mobilenetv2 --dynamic-size`` refuses (its anchors are built into the graph for one
size), so the file here is the part of the detector that can be dynamic: ssdlite_mobilenetv2's backbone and
heads (``SingleShot.raw``: box deltas and class logits per anchor; anchors and decoding are done outside),
exported by torch's TorchScript exporter with N, H and W dynamic (random init: speed only). That is the shape
of the issue's text detector: a fully convolutional graph whose output sizes follow the input, with the
Shape/Gather/Concat/Reshape nodes the exporter writes for it.

Rows, interleaved in blocks at each size (batch 1, 2 threads):

- ``ort``: the dynamic file as ``infer`` opens it (onnxruntime, graph optimisation "all");
- ``ort static``: the same file with onnxruntime's free-dimension overrides fixing N, H and W at session
  creation (``SessionOptions.add_free_dimension_override_by_name``), so its optimiser sees static shapes;
- ``openvino``: the file reshaped to the static size and compiled (bench's OpenVINO row).

Then one profile per runtime at the largest size: onnxruntime's profiler (node events, summed per op type)
and OpenVINO's performance counters (``PERF_COUNT``: per executed layer, summed per layer type). Writes
detector_gap_t<threads>.md/.json under benchmarks/results/<device tag>/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import describe, results_dir  # noqa: E402  (benchmarks/host.py)

WORK = Path("/tmp/edgecnn-detector-gap")
FILE = "ssdlite_mobilenetv2_raw_dynamic.onnx"
SIZES = (320, 480, 640)


def prepare(work: Path) -> Path:
    import torch

    from edgecnn import registry

    class Raw(torch.nn.Module):
        def __init__(self, det):
            super().__init__()
            self.det = det

        def forward(self, x):
            return self.det.raw(x)

    torch.manual_seed(0)
    det = registry.build("ssdlite_mobilenetv2").eval()
    work.mkdir(parents=True, exist_ok=True)
    out = work / FILE
    torch.onnx.export(Raw(det), (torch.rand(1, 3, 320, 320),), str(out), input_names=["input"],
                      output_names=["deltas", "logits"], opset_version=18, dynamo=False,
                      dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "deltas": {0: "N", 1: "A"},
                                    "logits": {0: "N", 1: "A"}})
    return out


def _ort(path: Path, size: int, threads: int, static: bool, profile_dir: str | None = None,
         optimized_out: Path | None = None):
    import onnxruntime as ort

    from edgecnn.runtime.session import session_options

    opts = session_options(threads, "all", spinning=True, optimized_out=optimized_out)
    if static:
        for name, value in (("N", 1), ("H", size), ("W", size)):
            opts.add_free_dimension_override_by_name(name, value)
    if profile_dir:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(profile_dir) / "ort")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    return sess, (lambda: sess.run(None, {"input": x}))


def _ov(path: Path, size: int, threads: int, perf: bool = False):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({"input": [1, 3, size, size]})
    cfg = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
           "INFERENCE_PRECISION_HINT": "f32"}
    if perf:
        cfg["PERF_COUNT"] = True
    req = core.compile_model(model, "CPU", cfg).create_infer_request()
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    return req, (lambda: req.infer({0: x}, share_inputs=True))


def speed(path: Path, sizes, threads: int, seconds: float) -> list[dict]:
    from edgecnn.bench.stats import summarize
    from edgecnn.bench.timing import run_blocks

    out = []
    for size in sizes:
        calls = {"ort": _ort(path, size, threads, False)[1], "ort static": _ort(path, size, threads, True)[1],
                 "openvino": _ov(path, size, threads)[1]}
        for call in calls.values():
            for _ in range(3):
                call()
        load = Path("/proc/loadavg").read_text().split()[:3]
        ns = run_blocks(calls, min_time_s=seconds, block=3, warmup=1)
        rec = {"size": size, "load": load}
        for k, v in ns.items():
            s = summarize([t / 1e6 for t in v])
            rec[k] = {"p50": s["p50"], "p90": s["p90"], "n": s["n"]}
        print(f"{size}: " + ", ".join(f"{k} {rec[k]['p50']:.1f} ms" for k in calls), file=sys.stderr)
        out.append(rec)
    return out


def _conv_kinds(model_path: Path) -> dict[str, str]:
    """Node name -> "Conv depthwise" / "Conv dense" for the convolutions of an optimised graph (onnxruntime
    names them all Conv; OpenVINO splits GroupConvolution from Convolution)."""
    import onnx

    model = onnx.load(str(model_path))
    out = {}
    for n in model.graph.node:
        if n.op_type in ("Conv", "FusedConv"):
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            out[n.name] = "Conv depthwise" if group > 1 else "Conv dense"
    return out


def ort_ops(path: Path, size: int, threads: int, runs: int, static: bool) -> dict[str, float]:
    """ms per run by op type (onnxruntime's profiler, node events; fused nodes are named by what ran;
    convolutions split into depthwise and dense, read from the optimised graph onnxruntime ran)."""
    with tempfile.TemporaryDirectory() as td:
        sess, call = _ort(path, size, threads, static, td, optimized_out=Path(td) / "opt.onnx")
        for _ in range(3):
            call()
        for _ in range(runs):
            call()
        trace = json.loads(Path(sess.end_profiling()).read_text())
        kinds = _conv_kinds(Path(td) / "opt.onnx")
    per = defaultdict(float)
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            per[kinds.get(node, ev["args"].get("op_name", "?"))] += ev["dur"] / 1e3
    return {k: v / (runs + 3) for k, v in per.items()}  # averaged over every profiled run, the 3 warm-ups too


def ov_ops(path: Path, size: int, threads: int, runs: int) -> dict[str, float]:
    req, call = _ov(path, size, threads, perf=True)
    per = defaultdict(float)
    for _ in range(3):
        call()
    for _ in range(runs):
        call()
        for info in req.profiling_info:
            if info.status.name == "EXECUTED":
                per[info.node_type] += info.real_time.total_seconds() * 1e3
    return {k: v / runs for k, v in per.items()}


def report(work: Path, rows: list[dict], ops: dict, threads: int, seconds: float, tag: str | None) -> Path:
    from edgecnn.bench.environment import capture
    from edgecnn.fileio import atomic_path
    from edgecnn.tables import markdown_table

    env = capture()
    folder = results_dir(tag)
    folder.mkdir(parents=True, exist_ok=True)
    table = [[r["size"], f"{r['ort']['p50']:.1f}", f"{r['ort static']['p50']:.1f}", f"{r['openvino']['p50']:.1f}",
              f"{r['ort']['p50'] / r['openvino']['p50']:.2f}x", f"{r['ort static']['p50'] / r['openvino']['p50']:.2f}x",
              " ".join(r["load"])] for r in rows]
    lines = [
        "# Dynamic-size detector: onnxruntime vs OpenVINO, per op (issue 19)", "",
        f"Host: {describe()}.", f"onnxruntime {env.get('onnxruntime')}; run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `python benchmarks/detector_gap.py measure "
        f"--threads {threads} --time {seconds:g}`. File: ssdlite_mobilenetv2 backbone + heads, N/H/W dynamic "
        "(see the script's docstring). p50 ms, batch 1, interleaved in blocks; load average at the start.", "",
        markdown_table(["size", "ort", "ort static", "openvino", "ort / ov", "ort static / ov", "load"], table,
                       right=("ort", "ort static", "openvino", "ort / ov", "ort static / ov")), "",
        f"Per op type at {ops['size']} px, ms per run (onnxruntime's profiler; OpenVINO's PERF_COUNT, its layer "
        "types after fusion; the two graphs are fused differently, so compare the totals and the big rows):", "",
    ]
    for name in ("ort", "ort static", "openvino"):
        per = sorted(ops[name].items(), key=lambda kv: -kv[1])
        total = sum(ops[name].values())
        lines += [f"**{name}** (sum {total:.1f} ms):", "",
                  markdown_table(["op", "ms", "share"], [[k, f"{v:.2f}", f"{v / total:.0%}"] for k, v in per[:12]],
                                 right=("ms", "share")), ""]
    md = folder / f"detector_gap_t{threads}.md"
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(md.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"environment": env, "rows": rows, "ops": ops}, indent=1) + "\n")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("prepare", "measure"))
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time", type=float, default=3.0, help="seconds of timed calls per row and size")
    ap.add_argument("--runs", type=int, default=10, help="profiled runs per runtime")
    ap.add_argument("--tag", default=None)
    a = ap.parse_args()
    if a.step == "prepare":
        print(prepare(a.work))
        return
    path = a.work / FILE
    rows = speed(path, SIZES, a.threads, a.time)
    size = SIZES[-1]
    ops = {"size": size, "ort": ort_ops(path, size, a.threads, a.runs, False),
           "ort static": ort_ops(path, size, a.threads, a.runs, True),
           "openvino": ov_ops(path, size, a.threads, a.runs)}
    print(report(a.work, rows, ops, a.threads, a.time, a.tag))


if __name__ == "__main__":
    main()
