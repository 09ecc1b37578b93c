"""INT8 agreement measured by the test itself, and an INT8 file made to disagree fails the gate.

The model is really trained (simplecnn on the generated shapes, a few seconds) so the INT8 gate judges
it (random-init weights are reported, not judged) and agreement means something.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime.quantization as ortq
import pytest
from onnx import numpy_helper

from edgecnn.contract import read
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.quantize import QuantizeError, QuantizeOptions, quantize
from edgecnn.runtime.image import preprocess_file
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(fp32 ONNX of a trained simplecnn, labelled calibration folder)."""
    from edgecnn.train.loop import TrainConfig, train
    from edgecnn.train.shapes import write_shapes

    d = tmp_path_factory.mktemp("int8")
    write_shapes(d / "shapes", n=160, size=32, seed=0)
    train(TrainConfig(model="simplecnn", data=str(d / "shapes"), epochs=8, batch_size=16, input_size=28,
                      lr=0.05, out=str(d / "run")), echo=lambda _m: None, warn=lambda _m: None)
    fp32 = export(ExportOptions(model=str(d / "run" / "best.pt"), out=str(d / "fp32.onnx"))).path
    return fp32, d / "shapes" / "val"


def _logits(path_or_bytes, xs):
    sess = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[None]})[0] for x in xs]).astype(np.float64)


def test_agreement_is_what_the_two_files_say(trained, tmp_path):
    fp32, calib = trained
    # u8u8 computes the same on every CPU (no saturating kernel anywhere): the 90% below holds on any host
    res = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(tmp_path / "q.onnx"), bench=False,
                                   kernel="u8u8"))
    spec = read(fp32).preprocess
    files = sorted(calib.rglob("*.png"))
    assert res.calibration["images"] == len(files) == 32
    xs = [preprocess_file(f, spec)[0] for f in files]
    a, b = _logits(str(fp32), xs), _logits(str(res.path), xs)
    assert np.abs(a - b).max() > 0  # INT8 is not FP32: a report of exactly 0 would be a self-comparison
    rep = res.agreement
    assert rep["top1_agreement"] == pytest.approx(float((a.argmax(1) == b.argmax(1)).mean()), abs=1 / 32)
    assert rep["max_abs_logits"] == pytest.approx(float(np.abs(a - b).max()), rel=1e-3)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert rep["cosine_mean"] == pytest.approx(float(cos.mean()), abs=1e-5) and rep["cosine_mean"] < 1.0
    assert rep["fp32_classes"] == len(np.unique(a.argmax(1))) > 1  # FP32 does not answer one class for all
    labels = read(fp32).labels
    y = np.array([labels.index(f.parent.name) for f in files])
    assert rep["accuracy_fp32"] == pytest.approx(float((a.argmax(1) == y).mean()))
    assert rep["accuracy_int8"] == pytest.approx(float((b.argmax(1) == y).mean()))
    assert rep["accuracy_fp32"] > 0.3  # the model did learn: 4 classes, chance 25%
    gate = res.contract.parity
    assert gate["passed"] is True and gate["agreement"] == rep["top1_agreement"] >= 0.9


def _corrupt_weight_scales(path: str, seed: int = 0) -> None:
    """Every weight's dequantization scale multiplied by a random factor in [0.05, 3): what a wrong
    scale computation (or a bit-rotted file) would give."""
    m = onnx.load(path)
    inits = {t.name: t for t in m.graph.initializer}
    rng = np.random.default_rng(seed)
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and n.input[1] in inits:
            t = inits[n.input[1]]
            s = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array((s * rng.uniform(0.05, 3.0, s.shape)).astype(s.dtype), t.name))
    onnx.save(m, path)


def test_an_int8_file_that_disagrees_fails_the_gate(trained, tmp_path, monkeypatch):
    fp32, calib = trained
    real = ortq.quantize_static

    def corrupted(model_input, model_output, *args, **kw):
        real(model_input, model_output, *args, **kw)
        _corrupt_weight_scales(str(model_output))

    monkeypatch.setattr(ortq, "quantize_static", corrupted)
    out = tmp_path / "bad.onnx"
    with pytest.raises(QuantizeError, match=r"^INT8 gate failed, no file written: top-1 agreement with FP32 "
                                            r"\d+\.\d% < 90% on 32 images"):
        quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(out), bench=False))  # default 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _weight_scales(path) -> list[np.ndarray]:
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return [inits[n.input[1]] for n in m.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim >= 2]


def _activation_zero_point_types(path) -> set[int]:
    m = onnx.load(path)
    inits = {t.name: t for t in m.graph.initializer}
    return {inits[n.input[2]].data_type for n in m.graph.node if n.op_type == "QuantizeLinear"}


def test_per_tensor_and_explicit_kernels_are_in_the_file(trained, tmp_path):
    fp32, calib = trained
    common = [str(fp32), "--calib", str(calib), "--no-bench", "--format", "json"]
    r = run_cli("quantize", *common, "--out", str(tmp_path / "pc.onnx"), "--int8-kernel", "u8s8", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["types"]["activations"] == "uint8"
    scales = _weight_scales(tmp_path / "pc.onnx")
    assert sorted(s.size for s in scales) == [4, 8, 16, 64]  # one scale per output channel
    assert _activation_zero_point_types(tmp_path / "pc.onnx") == {onnx.TensorProto.UINT8}

    r = run_cli("quantize", *common, "--out", str(tmp_path / "pt.onnx"), "--per-tensor", "--int8-kernel", "s8s8",
                block_torch=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["types"]["activations"] == "int8" and rep["contract"]["quantization"]["per_channel"] is False
    assert [s.size for s in _weight_scales(tmp_path / "pt.onnx")] == [1, 1, 1, 1]
    assert _activation_zero_point_types(tmp_path / "pt.onnx") == {onnx.TensorProto.INT8}

    r = run_cli("quantize", *common, "--int8-kernel", "u4s4", block_torch=True)
    assert r.returncode == 2 and r.stderr == ("Error: --int8-kernel must be one of auto, u8s8, u8s8-reduce, u8u8, "
                                              "s8s8, got 'u4s4'\n")


@pytest.mark.parametrize("speedup, note", [
    (0.8, "INT8 is NOT faster than FP32 here (0.80x): "),
    (1.1, "INT8 is barely faster than FP32 here (1.10x): "),
    (1.5, None),
])
def test_int8_not_faster_note(trained, tmp_path, monkeypatch, speedup, note):
    """The verdict follows the measured speed-up (stubbed here: timing on a loaded machine is not a test)."""
    import edgecnn.quantize as q

    fp32, calib = trained
    monkeypatch.setattr(q, "_latency", lambda *a: {"fp32_p50": 1.0, "int8_p50": 1 / speedup, "speedup": speedup,
                                                   "batch": 1, "protocol": "stub"})
    res = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(tmp_path / "q.onnx")))
    speed_notes = [n for n in res.notes if "faster than FP32" in n]
    assert len(speed_notes) == (0 if note is None else 1), res.notes
    if note:
        assert speed_notes[0].startswith(note) and len(speed_notes[0]) > len(note)  # and says why


def test_inspect_nodes_lists_the_names_quantize_excludes(trained, tmp_path, cli):
    fp32, calib = trained
    r = cli("inspect", str(fp32), "--nodes")
    assert r.exit_code == 0
    listed = [line.split()[1:] for line in r.stdout.splitlines() if line.startswith("node      ")]
    graph = onnx.load(fp32).graph.node
    assert [(name, op) for name, op in listed] == [(n.name, f"({n.op_type})") for n in graph]
    assert "node " not in cli("inspect", str(fp32)).stdout
    conv = next(name for name, op in listed if op == "(Conv)")
    res = quantize(QuantizeOptions(model=str(fp32), calib=str(calib), out=str(tmp_path / "x.onnx"),
                                   exclude=[conv], bench=False))
    node = next(n for n in onnx.load(res.path).graph.node if n.name == conv)
    assert node.input[1] in {t.name for t in onnx.load(res.path).graph.initializer}  # float weight, no DQ
    assert res.float_ops.get("Conv", 0) + res.float_ops.get("FusedConv", 0) >= 1
    assert res.contract.quantization["exclude"] == [conv]
