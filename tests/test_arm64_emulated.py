"""edgecnn on aarch64 (issue 17): ``benchmarks/arm64_userland.py`` installs the wheel in an emulated arm64
Debian userland and runs ``infer``, ``quantize`` and ``bench`` there.

The end-to-end run needs root, qemu-user-static, debootstrap and an enabled binfmt_misc entry, and its
first run debootstraps Debian under emulation (~10 min) and downloads ~60 MB of arm64 wheels, so it runs
only with ``EDGECNN_ARM64_TEST=1`` (and skips, saying what is missing, otherwise). The checks the script
makes are tested here on their own, on the host, against files whose answer is known."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import onnx_models
from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "arm64_userland.py"


@pytest.fixture(scope="module")
def arm64():
    spec = importlib.util.spec_from_file_location("arm64_userland", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("act, expect", [("QInt8", "s8s8"), ("QUInt8", "u8s8")])
def test_graph_kernel_reads_the_zero_point_types(arm64, tmp_path, act, expect):
    """onnxruntime's own quantizer makes each kind; the check names it from the file alone."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    fp32 = onnx_models.classifier(tmp_path / "c.onnx")
    feeds = iter([{"input": np.random.default_rng(i).random((1, 3, 32, 32), np.float32)} for i in range(4)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    out = tmp_path / f"{expect}.onnx"
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=getattr(QuantType, act), weight_type=QuantType.QInt8)
    assert arm64.graph_kernel(out) == expect


def test_reported_kernel_reads_either_wording(arm64):
    assert arm64.reported_kernel({"types": {"activations": "int8", "weights": "int8"}}) == "s8s8"
    assert arm64.reported_kernel({"types": {"activations": "uint8", "weights": "int8", "reduce_range": True}}) \
        == "u8s8"
    assert arm64.reported_kernel({"kernel": "u8s8-reduce", "types": {"activations": "uint8"}}) == "u8s8"
    assert arm64.reported_kernel({"types": {"kernel": "s8s8"}}) == "s8s8"
    assert arm64.reported_kernel({}) is None


def test_compare_counts_misses_and_near_ties(arm64):
    a = {"1.png": [0.7, 0.2, 0.1], "2.png": [0.40001, 0.4, 0.19999], "3.png": [0.1, 0.6, 0.3]}
    b = {"1.png": [0.7, 0.2, 0.1], "2.png": [0.4, 0.40001, 0.19999], "3.png": [0.1, 0.3, 0.6]}
    r = arm64.compare(a, b)
    assert (r["images"], r["top1_agreement"], r["ties"]) == (3, 1 / 3, 1)
    assert r["max_abs_score_diff"] == pytest.approx(0.3)
    with pytest.raises(RuntimeError, match="different images"):
        arm64.compare(a, {"1.png": [1.0, 0.0, 0.0]})


def test_arm_platforms_cover_the_manylinux_tags(arm64):
    tags = arm64.arm_platforms("2.36")
    assert tags[0] == "manylinux_2_36_aarch64" and tags[-2:] == ["manylinux2014_aarch64", "linux_aarch64"]
    assert "manylinux_2_28_aarch64" in tags and "manylinux_2_17_aarch64" in tags  # onnxruntime's, protobuf's
    assert "manylinux_2_16_aarch64" not in tags


@pytest.mark.slow
def test_wheel_runs_infer_quantize_bench_on_emulated_arm64(arm64, tmp_path):
    if os.environ.get("EDGECNN_ARM64_TEST") != "1":
        pytest.skip("set EDGECNN_ARM64_TEST=1 to run (as root; 10+ min, 30+ the first time: debootstrap under qemu)")
    missing = arm64.missing_prerequisites()
    if missing:
        pytest.skip("needs " + "; ".join(missing) + " (apt-get install qemu-user-static binfmt-support debootstrap)")
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--no-install"], capture_output=True,
                       text=True, timeout=3000, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-4000:]
    doc = json.loads((tmp_path / "arm64_userland.json").read_text())["result"]
    checks = {c["check"]: c for c in doc["checks"]}
    assert all(c["ok"] for c in checks.values()), [c for c in checks.values() if not c["ok"]]
    assert doc["arm"]["machine"] == "aarch64" and doc["int8_kernel"] == {"graph": "s8s8", "contract": "s8s8"}
    assert doc["fp32_host_vs_arm"]["max_abs_score_diff"] <= arm64.FP32_TOL
    assert doc["int8_vs_fp32_arm"]["top1_agreement"] >= arm64.MIN_AGREEMENT
    assert {(b["precision"], b["machine"], b["status"]) for b in doc["bench"]} == {("fp32", "aarch64", "ok"),
                                                                                  ("int8", "aarch64", "ok")}
    assert not any(p.lower().startswith("torch") for p in doc["installed"])
    assert any(w.startswith("onnxruntime-") and "aarch64" in w for w in doc["wheels"])
