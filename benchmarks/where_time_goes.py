"""Benchmark: where the time of one model goes on this host, per runtime x precision, and per op type.

    python benchmarks/where_time_goes.py efficientnet_b0 mobilenetv3_large      # after tune.py prepare

Issue 19 asks the tuned configuration to be <= 0.9x the faster plain runtime on every target model; on
efficientnet_b0 and mobilenetv3_large (SE blocks, sigmoid / hard-swish) INT8 loses to FP32 on this host.
This script measures, interleaved in blocks (``timing.run_blocks``), on ``--work``'s files (tune.py prepare:
random-init exports, speed only):

- at each of ``--threads`` (2 and 1): onnxruntime FP32 (plain), OpenVINO f32 (our default hint), OpenVINO bf16
  (``INFERENCE_PRECISION_HINT=bf16``);
- INT8 files: ``<name>.int8.onnx`` (edgecnn quantize: every conv, its inputs and output, quantized) and
  ``<name>.int8-nose.onnx`` (the same with the convs of the squeeze-excite gates, those on 1x1 maps, kept in
  float), in onnxruntime and OpenVINO (f32 hint); ``<name>.int8-convin.onnx`` and ``-convin-nose`` (made here
  with onnxruntime's ``quantize_static``: only the inputs and weights of Conv/Gemm quantized, their outputs and
  the sigmoid / hard-swish / multiply paths left in float: NNCF's placement for OpenVINO; onnxruntime cannot
  fuse that into its integer kernels, so they run in OpenVINO only), with the f32 and the bf16 hint; and
  ``<name>.int8-islands.onnx`` in onnxruntime where it lies there (``edgecnn quantize --islands auto``);

then per op type where the time goes: OpenVINO's per-node performance counters (``PERF_COUNT``; the kernel
that ran, e.g. ``brgconv_avx512_amx``) and onnxruntime's profiler, summed by op type over ``--profile-runs``
calls. Writes where_time_goes.md / .json under benchmarks/results/<device tag>/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import describe, results_dir  # noqa: E402  (benchmarks/host.py)

WORK = Path("/tmp/edgecnn-tune")


def se_convs(path: Path) -> list[str]:
    """Names of the Conv nodes whose input is a 1x1 map: the squeeze-excite gates' reduce/expand convs."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    dims = {}
    for v in list(model.graph.value_info) + list(model.graph.input):
        d = v.type.tensor_type.shape.dim
        dims[v.name] = [x.dim_value if x.HasField("dim_value") else None for x in d]
    return [n.name for n in model.graph.node if n.op_type == "Conv" and dims.get(n.input[0], [])[2:] == [1, 1]]


def make_convin(work: Path, name: str, nose: bool) -> Path:
    """Q/DQ on the inputs and weights of Conv/Gemm only (u8 activations, s8 per-channel weights; the 16
    calibration images of tune.py prepare through the contract), the SE convs left out when ``nose``."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgecnn.bench.targets import contract_of
    from edgecnn.runtime.image import preprocess_file

    src = work / f"{name}.onnx"
    out = work / f"{name}.int8-convin{'-nose' if nose else ''}.onnx"
    if out.is_file():
        return out
    pre = work / f"{name}.pre.onnx"
    if not pre.is_file():
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    spec = contract_of(src).preprocess
    inp = onnx.load(str(src), load_external_data=False).graph.input[0].name
    xs = [preprocess_file(p, spec)[0][None] for p in sorted((work / "calib").glob("*.png"))]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(xs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {inp: x}

    ops = ["Conv", "MatMul", "Gemm"]
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=ops,
                    nodes_to_exclude=se_convs(src) if nose else [],
                    extra_options={"OpTypesToExcludeOutputQuantization": ops})
    return out


def make_nose(work: Path, name: str) -> Path:
    from edgecnn.quantize import QuantizeOptions, quantize

    src, out = work / f"{name}.onnx", work / f"{name}.int8-nose.onnx"
    if not out.is_file():
        quantize(QuantizeOptions(model=str(src), calib=str(work / "calib"), out=str(out), samples=16, bench=False,
                                 min_agreement=0.0, exclude=se_convs(src)))
    return out


def _ort(path: Path, threads: int, profile: str | None = None):
    import onnxruntime as ort

    from edgecnn.bench.backends import random_input
    from edgecnn.bench.targets import input_spec

    shape, layout = input_spec(path, None)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: random_input(1, shape, layout)}
    return sess, (lambda: sess.run(None, feed))


def _ov(path: Path, threads: int, hint: str, perf: bool = False):
    from edgecnn.bench.backend_openvino import compile_file
    from edgecnn.bench.targets import input_spec

    shape, layout = input_spec(path, None)
    r = compile_file(path, batch=1, threads=threads, size=shape[1:], layout=layout, inference_precision=hint)
    x = r.make_input(1)
    return r, (lambda: r(x))


def ov_perf(path: Path, threads: int, hint: str, runs: int) -> dict:
    """OpenVINO's per-node counters summed by (layer type, kernel): ms per call."""
    import openvino as ov

    from edgecnn.bench.targets import input_spec

    shape, _ = input_spec(path, None)
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0].get_any_name(): [1, *shape]})
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                                                  "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint,
                                                  "PERF_COUNT": True})
    req = compiled.create_infer_request()
    import numpy as np

    x = np.random.default_rng(0).random([1, *shape], dtype=np.float32)
    for _ in range(5):
        req.infer({0: x})
    acc: dict[str, float] = defaultdict(float)
    for _ in range(runs):
        req.infer({0: x})
        for p in req.profiling_info:
            if p.status == p.Status.EXECUTED:
                acc[f"{p.node_type} [{p.exec_type}]"] += p.real_time.total_seconds() * 1e3
    return {k: v / runs for k, v in sorted(acc.items(), key=lambda kv: -kv[1])}


def ort_perf(path: Path, threads: int, runs: int) -> dict:
    """onnxruntime's profiler, node times summed by op type: ms per call."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sess, call = _ort(path, threads, profile=str(Path(tmp) / "p"))
        for _ in range(5 + runs):
            call()
        trace = json.loads(Path(sess.end_profiling()).read_text())
    events = [e for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    runs_seen = max(1, runs + 5)
    acc: dict[str, float] = defaultdict(float)
    for e in events:
        acc[e["args"].get("op_name", "?")] += e["dur"] / 1e3
    return {k: v / runs_seen for k, v in sorted(acc.items(), key=lambda kv: -kv[1])}


def measure(work: Path, name: str, seconds: float, threads: list[int]) -> dict:
    from edgecnn.bench.stats import summarize
    from edgecnn.bench.timing import run_blocks

    fp32, int8, nose = work / f"{name}.onnx", work / f"{name}.int8.onnx", make_nose(work, name)
    islands = work / f"{name}.int8-islands.onnx"  # edgecnn quantize --islands auto, where made beforehand
    convin = {"int8-convin": make_convin(work, name, False), "int8-convin-nose": make_convin(work, name, True)}
    calls, keep = {}, []

    def add(label, made):
        obj, calls[label] = made
        keep.append(obj)

    for t in threads:
        add(f"ort fp32 t{t}", _ort(fp32, t))
        add(f"openvino f32 t{t}", _ov(fp32, t, "f32"))
        add(f"openvino bf16 t{t}", _ov(fp32, t, "bf16"))
        for tag, f in (("int8", int8), ("int8-nose", nose), *((("int8-islands", islands),) if islands.is_file()
                                                              else ())):
            add(f"ort {tag} t{t}", _ort(f, t))
        add(f"openvino int8 f32 t{t}", _ov(int8, t, "f32"))
        for tag, f in convin.items():
            for hint in ("f32", "bf16"):
                add(f"openvino {tag} {hint} t{t}", _ov(f, t, hint))
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    ns = run_blocks(calls, min_time_s=seconds, block=5, warmup=2)
    p50 = {k: summarize([t / 1e6 for t in v])["p50"] for k, v in ns.items()}
    p90 = {k: summarize([t / 1e6 for t in v])["p90"] for k, v in ns.items()}
    return {"model": name, "se_convs": len(se_convs(fp32)), "p50_ms": p50, "p90_ms": p90,
            "n": {k: len(v) for k, v in ns.items()}, "loadavg_before": load0,
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--time", type=float, default=3.0, help="seconds of timed calls per row")
    ap.add_argument("--profile-runs", type=int, default=50)
    ap.add_argument("--threads", default="2,1", help="thread counts, every configuration at each")
    ap.add_argument("--tag", default=None)
    a = ap.parse_args()
    from edgecnn.bench.environment import capture
    from edgecnn.fileio import atomic_path
    from edgecnn.tables import markdown_table

    records = []
    for name in a.models:
        rec = measure(a.work, name, a.time, [int(t) for t in a.threads.split(",")])
        fp32 = a.work / f"{name}.onnx"
        rec["ov_ops"] = {h: ov_perf(fp32, 2, h, a.profile_runs) for h in ("f32", "bf16")}
        rec["ov_ops"]["int8 f32"] = ov_perf(a.work / f"{name}.int8.onnx", 2, "f32", a.profile_runs)
        rec["ov_ops"]["int8-convin f32"] = ov_perf(a.work / f"{name}.int8-convin.onnx", 2, "f32", a.profile_runs)
        rec["ort_ops"] = {"fp32": ort_perf(fp32, 2, a.profile_runs)}
        print(name, json.dumps(rec["p50_ms"], indent=1), file=sys.stderr)
        records.append(rec)
    env = capture()
    lines = ["# Where the time goes: runtime x precision x threads, and per op type (issue 19)", "",
             f"Host: {describe()}.", f"onnxruntime {env.get('onnxruntime')}; run "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; `python benchmarks/where_time_goes.py "
             f"{' '.join(a.models)} --time {a.time:g} --threads {a.threads}`. Random-init exports (speed only), "
             "batch 1, p50 ms interleaved in blocks; load average (1/5/15) before and after each model.", ""]
    for r in records:
        def base(k: str, r=r) -> float:  # the faster plain FP32 runtime at this row's thread count
            t = k.rsplit(" ", 1)[1]
            return min(r["p50_ms"][f"ort fp32 {t}"], r["p50_ms"][f"openvino f32 {t}"])

        lines += [f"## {r['model']} (load {' '.join(r['loadavg_before'])} -> {' '.join(r['loadavg_after'])}; "
                  f"{r['se_convs']} SE convs kept in float in int8-nose and int8-convin-nose)", "",
                  markdown_table(["configuration", "p50 ms", "p90 ms", "vs faster plain, same threads"],
                                 [[k, f"{v:.2f}", f"{r['p90_ms'][k]:.2f}", f"{v / base(k):.2f}"]
                                  for k, v in sorted(r["p50_ms"].items(), key=lambda kv: kv[1])],
                                 right=("p50 ms", "p90 ms", "vs faster plain, same threads")), ""]
        for what, ops in [*((f"OpenVINO {k}", v) for k, v in r["ov_ops"].items()),
                          *((f"onnxruntime {k}", v) for k, v in r["ort_ops"].items())]:
            total = sum(ops.values())
            top = list(ops.items())[:8]
            lines += [f"{what}: {total:.2f} ms of node time per call; " +
                      "; ".join(f"{k} {v:.2f} ({v / total:.0%})" for k, v in top), ""]
    folder = results_dir(a.tag)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "where_time_goes.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(folder / "where_time_goes.json") as tmp:
        tmp.write_text(json.dumps({"environment": env, "records": records}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
