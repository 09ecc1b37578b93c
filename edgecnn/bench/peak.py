"""The machine's peak throughput, for floors: FP32 (onnxruntime MatMul) and INT8 (MatMulInteger,
uint8 activations x int8 weights, the u8s8 kernels onnxruntime's INT8 convolutions use on x86).

A floor is the time a model could not beat on this CPU: 2 x MACs x batch / peak. Efficiency =
floor / measured p50 (1.0: at the hardware limit). Depthwise convolutions and small tensors are memory-
bound, so mobile networks sit well below 1. Peaks are measured per thread count and cached per
machine (device tag + onnxruntime version) in ``$EDGECNN_HOME/peak/<tag>.json`` (default
``~/.cache/edgecnn``), so ``edgecnn bench --peak`` is paid once per machine. Each figure keeps when it was
measured and the load average then (``measured``, ``load_average``; ``<kind>_measured``/``<kind>_load``
where the cache kept an earlier, higher figure), and the report prints them beside the floors.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from edgecnn import hub
from edgecnn.bench.environment import device_tag
from edgecnn.fileio import atomic_path

# (M, K) x (K, N): big enough for the GEMM kernels to reach steady state, small enough to take ~1 s.
M, K, N = 256, 1024, 1024


def cache_file(tag: str | None = None) -> Path:
    return hub.home() / "peak" / f"{tag or device_tag()}.json"


def _key(threads: int | None) -> str:
    import onnxruntime as ort

    return f"threads={threads if threads is not None else 'default'}|onnxruntime={ort.__version__}"


def _matmul_model(int8: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        b = numpy_helper.from_array(rng.integers(-127, 128, (K, N), dtype=np.int8), "B")
        zp = numpy_helper.from_array(np.uint8(128), "a_zp")
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zp"], ["Y"])
        a_type, y_type, init = TensorProto.UINT8, TensorProto.INT32, [b, zp]
    else:
        b = numpy_helper.from_array(rng.standard_normal((K, N), dtype=np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type, init = TensorProto.FLOAT, TensorProto.FLOAT, [b]
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("A", a_type, [M, K])],
                              [helper.make_tensor_value_info("Y", y_type, [M, N])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def measure(threads: int | None = None, calls: int = 30) -> dict:
    """Peak FP32 GFLOP/s and INT8 GOP/s on ``threads`` intra-op threads (best of ``calls`` calls each)."""
    import onnxruntime as ort

    from edgecnn.runtime.session import session_options

    # when and under what load: a peak measured on a busy machine is low, and the report says so
    out: dict = {"threads": threads, "shape": [M, K, N], "calls": calls,
                 "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    rng = np.random.default_rng(1)
    for name, int8 in (("fp32_gflops", False), ("int8_gops", True)):
        sess = ort.InferenceSession(_matmul_model(int8), session_options(threads, spinning=True),
                                    providers=["CPUExecutionProvider"])
        a = (rng.integers(0, 256, (M, K), dtype=np.uint8) if int8
             else rng.standard_normal((M, K), dtype=np.float32))
        for _ in range(3):
            sess.run(None, {"A": a})
        best = min(_timed(sess, a) for _ in range(calls))
        out[name] = 2 * M * K * N / best / 1e9
    out["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out


def _timed(sess, a) -> float:
    t0 = time.perf_counter_ns()
    sess.run(None, {"A": a})
    return (time.perf_counter_ns() - t0) / 1e9


def cached(threads: int | None, path: Path | None = None) -> dict | None:
    """The cached peak for ``threads`` on this machine, or None."""
    path = path or cache_file()
    try:
        return json.loads(path.read_text()).get(_key(threads))
    except (OSError, ValueError, AttributeError):
        return None


def measure_and_cache(threads: int | None, path: Path | None = None) -> dict:
    """Measure now and store it in the machine's cache file (atomically). A peak is the best the machine
    can do, so the cache keeps the higher of the cached and the new figure of each kind: a run on a
    busy machine does not lower it."""
    path = path or cache_file()
    peak = measure(threads)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    old = data.get(_key(threads))
    if isinstance(old, dict):
        for k in ("fp32_gflops", "int8_gops"):
            if isinstance(old.get(k), (int, float)) and old[k] > peak[k]:
                peak[k] = old[k]
                peak[f"{k}_measured"] = old.get(f"{k}_measured", old.get("measured"))
                peak[f"{k}_load"] = old.get(f"{k}_load", old.get("load_average"))
    data[_key(threads)] = peak
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return peak


def floor_ms(macs: int | None, batch: int, precision: str, peak: dict | None) -> float | None:
    """2 x MACs x batch at the precision's peak (INT8 rows: the INT8 peak; FP32 and FP16 rows: FP32), in ms."""
    if not macs or not peak:
        return None
    ops_per_s = (peak["int8_gops"] if precision == "int8" else peak["fp32_gflops"]) * 1e9
    return 2 * macs * batch / ops_per_s * 1e3
