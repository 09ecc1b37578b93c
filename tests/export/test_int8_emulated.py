"""INT8 on an AVX2-only CPU, whatever CPU runs the suite: quantize under QEMU user-mode emulation of a Haswell
(AVX2, FMA, no AVX-512, no VNNI). onnxruntime's MLAS reads CPUID, so there it runs the AVX2 kernels, whose
full-range u8s8 dot product (vpmaddubsw) saturates: the auto choice must avoid it and agree with FP32.
Torch-free; a tiny graph built here, so the emulated run stays well under a minute on a quiet machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.int8_kernel import NO_VNNI_KERNEL

QEMU = shutil.which("qemu-x86_64")
# Haswell without the system features TCG does not emulate (each would print a warning, nothing else)
CPU = "Haswell-v4,-pcid,-x2apic,-tsc-deadline,-invpcid,-spec-ctrl"

SCRIPT = """
import json, sys
from edgecnn.quantize import QuantizeOptions, quantize
out = {}
for kernel in ("auto", "u8s8"):
    r = quantize(QuantizeOptions(model=sys.argv[1], calib=sys.argv[2], out=sys.argv[3] + kernel + ".onnx",
                                 bench=False, min_agreement=0.0, kernel=kernel))
    out[kernel] = {"types": r.types, "agreement": r.agreement}
print(json.dumps(out))
"""


def _tiny_model(path: Path, calib: Path) -> None:
    """Conv (3->8, weights of one sign per filter, |w| in [0.5, 1]) -> ReLU -> pool -> Gemm: bright pixels against
    near-maximal int8 weights give pairs of products above 32767, where vpmaddubsw clamps."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from PIL import Image

    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.0, (8, 3, 3, 3)) * np.where(rng.random((8, 1, 1, 1)) < 0.5, -1, 1)
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "g"], ["logits"], transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w.astype(np.float32), "w"),
         numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "g")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    calib.mkdir()
    for i in range(8):
        level = rng.uniform(0.2, 1.0)
        a = rng.random((32, 32, 3)) * 255 * level + 255 * (1 - level) * rng.random()
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(calib / f"{i}.png")


@pytest.mark.slow
@pytest.mark.skipif(QEMU is None, reason="qemu-x86_64 not on PATH (Debian/Ubuntu: apt-get install qemu-user)")
@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64",
                    reason="emulates an x86-64 CPU for this Python, which must be a Linux x86-64 binary")
def test_auto_on_an_emulated_avx2_cpu_avoids_saturation(tmp_path):
    _tiny_model(tmp_path / "tiny.onnx", tmp_path / "calib")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), PYTHONWARNINGS="ignore")
    r = subprocess.run([QEMU, "-cpu", CPU, sys.executable, "-c", SCRIPT, str(tmp_path / "tiny.onnx"),
                        str(tmp_path / "calib"), str(tmp_path / "q-")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    auto, forced = res["auto"], res["u8s8"]
    # CPUID inside the emulator has no VNNI, whatever /proc/cpuinfo (the host's) says
    assert auto["types"]["kernel"] == NO_VNNI_KERNEL and not auto["types"]["vnni"], auto["types"]
    assert "avx2" in auto["types"]["isa"] and "avx512f" not in auto["types"]["isa"]
    a, f = auto["agreement"], forced["agreement"]
    assert a["top1_agreement"] == 1.0 and a["cosine_mean"] > 0.9999 and a["max_abs_logits"] < 0.02 * a["logit_scale"]
    # the emulation is real: the same file forced to full-range u8s8 saturates there (natively exact on VNNI)
    assert "WARNING" in forced["types"]["reason"]
    assert f["max_abs_logits"] > 10 * a["max_abs_logits"], (a, f)
