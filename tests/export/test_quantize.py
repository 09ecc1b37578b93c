"""INT8: torch-free quantization with an agreement report; one-line errors for bad calibration data."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from edgecnn.contract import read
from edgecnn.errors import UsageError
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.int8_kernel import NO_VNNI_KERNEL, choose_kernel, saturates
from edgecnn.quantize import (
    QuantizeError,
    QuantizeOptions,
    _float_ops,
    choose_types,
    quantize,
    runtime_float_ops,
)
from edgecnn.tables import quantize_report
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    return export(ExportOptions(model="mobilenetv2", input_size=32, num_classes=2, out=str(d / "m.onnx"))).path


@pytest.fixture
def calib(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("ants", "bees"):
        (tmp_path / "calib" / cls).mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / "calib" / cls / f"{i}.png")
    return tmp_path / "calib"


def test_quantize_without_torch(fp32_model, calib, tmp_path):
    out = tmp_path / "m.int8.onnx"
    r = run_cli("quantize", str(fp32_model), "--calib", str(calib), "--out", str(out), "--format", "json",
                "--no-bench", block_torch=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert out.stat().st_size < 0.5 * fp32_model.stat().st_size
    assert rep["int8_bytes"] == out.stat().st_size and rep["calibration"]["images"] == 12
    a = rep["agreement"]
    assert 0.0 <= a["top1_agreement"] <= 1.0 and a["images"] == 12
    assert "accuracy_fp32" in a and "accuracy_int8" in a  # 2 class folders, 2 classes
    assert rep["types"]["weights"] == "int8" and rep["types"]["activations"] in ("uint8", "int8")
    model = onnx.load(out)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    c = json.loads({p.key: p.value for p in model.metadata_props}["edgecnn.contract"])
    assert c["precision"] == "int8" and c["quantization"]["calibration"]["images"] == 12
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.zeros((3, 3, 32, 32), np.float32)})[0]
    assert y.shape == (3, 2) and np.isfinite(y).all()


def test_quantize_report_table(fp32_model, calib, tmp_path, cli):
    r = cli("quantize", str(fp32_model), "--calib", str(calib), "--out", str(tmp_path / "q.onnx"), "--samples", "4")
    assert r.exit_code == 0, r.stderr
    assert "agreement with FP32 on 4 calibration images: top-1" in r.stdout
    assert "latency (batch 1" in r.stdout and "ops left in float:" in r.stdout


def test_samples_without_bench_reports_the_kernel_it_chose(fp32_model, calib, tmp_path, cli):
    """The README's `quantize mobilenetv2.onnx --calib calib/ --samples 16 --no-bench` (here 4 samples)."""
    r = cli("quantize", str(fp32_model), "--calib", str(calib), "--out", str(tmp_path / "q.onnx"), "--samples", "4",
            "--no-bench")
    assert r.exit_code == 0, r.stderr
    kernel = choose_types()["kernel"]  # this host's choice: the line names it, whatever the CPU
    line = next(x for x in r.stdout.splitlines() if x.startswith("INT8 kernel: "))
    assert line.startswith(f"INT8 kernel: {kernel} (")
    assert "agreement with FP32 on 4 calibration images: top-1" in r.stdout and "latency" not in r.stdout


def test_exclude_keeps_a_node_in_float(fp32_model, calib, tmp_path):
    first_conv = next(n.name for n in onnx.load(fp32_model).graph.node if n.op_type == "Conv")
    res = quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), out=str(tmp_path / "x.onnx"),
                                   exclude=[first_conv], bench=False))
    assert res.float_ops.get("Conv", 0) >= 1
    with pytest.raises(Exception, match="--exclude: no node named 'nope'"):
        quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), exclude=["nope"], bench=False))


@pytest.mark.parametrize("case,message", [
    ("missing", "no such folder"),
    ("empty", "no images found"),
    ("text", "no images found"),
    ("broken", "none of the images could be read"),
])
def test_bad_calibration_folders(fp32_model, tmp_path, case, message):
    d = tmp_path / "c"
    if case != "missing":
        d.mkdir()
    if case == "text":
        (d / "notes.txt").write_text("hello")
    if case == "broken":
        (d / "a.jpg").write_text("not a jpeg")
        (d / "b.png").write_bytes(b"")
    r = run_cli("quantize", str(fp32_model), "--calib", str(d), block_torch=True)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_bad_file_is_skipped_and_reported(fp32_model, calib, tmp_path):
    (calib / "ants" / "zz_broken.jpg").write_text("garbage")
    res = quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), out=str(tmp_path / "x.onnx"),
                                   bench=False))
    assert res.calibration["images"] == 12 and any("1 calibration file(s) skipped" in n for n in res.notes)


HASWELL = {"avx", "avx2", "fma"}  # AVX2, no AVX-512, no VNNI: the AMD EPYC of issue 17 looks the same
SKYLAKE_X = HASWELL | {"avx512f", "avx512bw"}
CASCADE_LAKE = SKYLAKE_X | {"avx512_vnni"}


@pytest.mark.parametrize("machine, flags, kernel, act, wts, reduce, why", [
    ("x86_64", CASCADE_LAKE, "u8s8", "uint8", "int8", False, "x86 with VNNI"),
    ("x86_64", HASWELL | {"avx_vnni"}, "u8s8", "uint8", "int8", False, "x86 with VNNI"),  # Alder Lake's AVX-VNNI
    ("x86_64", CASCADE_LAKE | {"amx_int8"}, "u8s8", "uint8", "int8", False, "x86 with AMX"),
    ("x86_64", HASWELL, NO_VNNI_KERNEL, "uint8", "uint8", False, "no VNNI"),
    ("AMD64", SKYLAKE_X, NO_VNNI_KERNEL, "uint8", "uint8", False, "no VNNI"),  # Windows spelling, AVX-512 no VNNI
    ("x86_64", {"sse4_2"}, "u8s8", "uint8", "int8", False, "without AVX2"),  # SSE kernel: exact
    ("aarch64", {"asimd", "asimddp"}, "s8s8", "int8", "int8", False, "ARM"),
    ("arm64", set(), "s8s8", "int8", "int8", False, "ARM"),  # macOS spelling
    ("riscv64", set(), "s8s8", "int8", "int8", False, "riscv64"),
])
def test_the_kernel_follows_the_cpu(machine, flags, kernel, act, wts, reduce, why):
    t = choose_kernel("auto", machine, flags)
    assert (t["kernel"], t["activations"], t["weights"], t["reduce_range"]) == (kernel, act, wts, reduce)
    assert why in t["reason"] and t["requested"] == "auto" and t["cpu"] == machine.lower()
    assert t["vnni"] == bool({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)
    assert saturates(machine, flags) == (kernel == NO_VNNI_KERNEL)


def test_the_no_vnni_choice_avoids_saturation_at_full_weight_range():
    t = choose_kernel("auto", "x86_64", HASWELL)
    assert t["kernel"] != "u8s8" and not t["reduce_range"]  # the measured choice: 7-bit weights lost accuracy
    assert "saturates" in t["reason"] and t["isa"] == ["avx2"]


def test_an_explicit_kernel_wins_and_a_saturating_one_is_flagged():
    for k, (act, wts, reduce) in {"u8s8": ("uint8", "int8", False), "u8s8-reduce": ("uint8", "int8", True),
                                  "u8u8": ("uint8", "uint8", False), "s8s8": ("int8", "int8", False)}.items():
        for machine, flags in (("x86_64", HASWELL), ("x86_64", CASCADE_LAKE), ("aarch64", {"asimd"})):
            t = choose_kernel(k, machine, flags)
            assert (t["kernel"], t["activations"], t["weights"], t["reduce_range"]) == (k, act, wts, reduce)
            assert t["reason"].startswith(f"{k} as asked")
            assert ("WARNING" in t["reason"]) == (k in ("u8s8", "s8s8") and flags == HASWELL)
    with pytest.raises(UsageError, match="^--int8-kernel must be one of auto, u8s8, u8s8-reduce, u8u8, s8s8, "
                                         "got 'u4s4'$"):
        choose_kernel("u4s4", "x86_64", HASWELL)


def test_process_flags_trust_cpuid_over_a_host_cpuinfo(monkeypatch):
    """Under an emulator /proc/cpuinfo shows the host while CPUID (what onnxruntime dispatches on) shows
    the emulated CPU: CPUID wins. When both agree, cpuinfo's extra flags (amx_int8, avx_vnni) are kept."""
    import edgecnn.int8_kernel as k

    monkeypatch.setattr(k.platform, "machine", lambda: "x86_64")
    host = CASCADE_LAKE | {"avx512vl", "amx_int8", "sse4_2"}
    monkeypatch.setattr(k, "cpuid_flags", lambda: {"avx", "avx2", "fma"})  # an emulated Haswell
    assert k.process_flags(host) == {"avx", "avx2", "fma"}
    monkeypatch.setattr(k, "cpuid_flags", lambda: CASCADE_LAKE | {"avx512vl"})  # the host itself
    assert k.process_flags(host) == host
    monkeypatch.setattr(k, "cpuid_flags", lambda: None)  # numpy without its CPU table
    assert k.process_flags(host) == host


def test_quantize_records_the_kernel_in_the_contract_and_report(fp32_model, calib, tmp_path):
    res = quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), out=str(tmp_path / "x.onnx"),
                                   bench=False, kernel="u8u8"))
    q = read(str(res.path)).quantization
    assert q["types"]["kernel"] == "u8u8" and q["types"]["weights"] == "uint8" and "as asked" in q["types"]["reason"]
    line = next(x for x in quantize_report(res.to_dict()) if x.startswith("INT8 kernel: "))
    assert line.startswith("INT8 kernel: u8u8 (uint8 activations x uint8 weights) — u8u8 as asked")
    m = onnx.load(res.path)
    weights = {n.input[0] for n in m.graph.node if n.op_type == "DequantizeLinear"}
    inits = {t.name: t.data_type for t in m.graph.initializer}
    stored = {inits[w] for w in weights if w in inits} - {onnx.TensorProto.INT32}  # biases are int32
    assert stored == {onnx.TensorProto.UINT8}


def test_float_ops_finds_unquantized_compute():
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"]),
                           helper.make_node("Identity", ["y"], ["z"])], "g", [x], [y])
    assert _float_ops(helper.make_model(g)) == {"Sigmoid": 1, "Mul": 1}


def test_runtime_float_ops_sees_fused_integer_kernels(fp32_model, calib, tmp_path):
    """MobileNetV2's convolutions become integer kernels at run time: few float ops remain, and far
    fewer than in the FP32 graph."""
    res = quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), out=str(tmp_path / "x.onnx"),
                                   bench=False))
    fp32_float = runtime_float_ops(fp32_model.read_bytes())
    assert fp32_float.get("Conv", 0) + fp32_float.get("FusedConv", 0) >= 50
    assert sum(res.float_ops.values()) < 10, res.float_ops


def test_already_int8_is_refused(fp32_model, calib, tmp_path):
    res = quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), out=str(tmp_path / "a.onnx"),
                                   bench=False))
    with pytest.raises(QuantizeError, match="already INT8"):
        quantize(QuantizeOptions(model=str(res.path), calib=str(calib), bench=False))


def test_export_int8_in_one_step(calib, tmp_path):
    res = export(ExportOptions(model="lenet5", num_classes=2, precision="int8", calib=str(calib),
                               out=str(tmp_path / "l.onnx")))
    assert res.contract.precision == "int8" and res.quantization["agreement"]["images"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "l.onnx"]


@pytest.fixture(scope="module")
def trained_like_model(tmp_path_factory):
    """An FP32 file with real (non-random-init) provenance, so the INT8 gate judges it."""
    import torch

    from edgecnn import registry

    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(0)
    torch.save(registry.build("lenet5", num_classes=2, in_channels=3).state_dict(), d / "w.pth")
    return export(ExportOptions(model="lenet5", weights=str(d / "w.pth"), num_classes=2, in_channels=3,
                                out=str(d / "l.onnx"))).path


def test_int8_gate_judges_real_weights(trained_like_model, calib, tmp_path):
    res = quantize(QuantizeOptions(model=str(trained_like_model), calib=str(calib), out=str(tmp_path / "ok.onnx"),
                                   bench=False, min_agreement=0.0))
    assert res.contract.parity["passed"] is True and res.contract.parity["precision"] == "int8"
    out = tmp_path / "strict.onnx"
    with pytest.raises(QuantizeError, match=r"INT8 gate failed, no file written: top-1 agreement with FP32 .* < 101%"):
        quantize(QuantizeOptions(model=str(trained_like_model), calib=str(calib), out=str(out), bench=False,
                                 min_agreement=1.01))
    assert not out.exists()


def test_random_init_is_reported_not_judged(fp32_model, calib, tmp_path):
    res = quantize(QuantizeOptions(model=str(fp32_model), calib=str(calib), out=str(tmp_path / "q.onnx"),
                                   bench=False, min_agreement=1.01))
    assert res.contract.parity["passed"] is None
    assert any("not judged" in n for n in res.notes)


def test_foreign_file_with_dynamic_size_needs_size(calib, tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    x = helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2])
    g = helper.make_graph([helper.make_node("GlobalAveragePool", ["img"], ["p"]),
                           helper.make_node("Flatten", ["p"], ["f"]),
                           helper.make_node("Gemm", ["f", "w"], ["out"], transB=1)], "g", [x], [y], [w])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = run_cli("quantize", str(path), "--calib", str(calib), "--no-bench", block_torch=True)
    assert r.returncode == 2 and "dynamic input size" in r.stderr and "--size" in r.stderr
    r = run_cli("quantize", str(path), "--calib", str(calib), "--no-bench", "--size", "32",
                "--out", str(tmp_path / "q.onnx"), block_torch=True)
    assert r.returncode == 0, r.stderr
    assert "no edgecnn contract" in r.stdout


def test_unwritable_out_and_empty_model_are_one_line(fp32_model, calib, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = run_cli("quantize", str(fp32_model), "--calib", str(calib), "--no-bench",
                "--out", str(tmp_path / "afile" / "q.onnx"), block_torch=True)
    assert r.returncode == 1 and r.stderr.startswith(f"Error: cannot write {tmp_path / 'afile' / 'q.onnx'}")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    r = run_cli("quantize", str(empty), "--calib", str(calib), block_torch=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("Error: ")
