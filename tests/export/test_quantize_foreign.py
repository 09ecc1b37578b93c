"""``quantize`` on ONNX files other tools made: opset 11/12 graphs, Constant-node weights, dynamic
height/width, a -1 batch, external data. Each gives a working INT8 file whose weights really are int8,
or one clear line; the agreement with FP32 is measured here on the test's own inputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from PIL import Image

from edgecnn import onnx_prep
from edgecnn.contract import Contract, Preprocess, attach, from_metadata
from tests import foreign_onnx
from tests.conftest import run_cli

WEIGHTED = ("Conv", "Gemm", "MatMul")


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return d


# kind -> (builder, opset of the file, dynamic H/W)
KINDS = {
    "helper-opset11-constant-weights-dynamic-hw": (lambda p: foreign_onnx.constant_weights_cnn(p), 11, True),
    "helper-opset11-batch-minus-1": (lambda p: foreign_onnx.constant_weights_cnn(p, batch=-1, size=32), 11, False),
    "torch-legacy-opset11-dynamic-hw": (lambda p: foreign_onnx.torch_cnn(p, opset=11), 11, True),
    "torch-legacy-opset12-external-data": (lambda p: foreign_onnx.torch_cnn(p, opset=12, external=True), 12, True),
    "torch-dynamo-default-external-data": (lambda p: foreign_onnx.torch_cnn(p, opset=None, dynamo=True), None, True),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    return {k: build(d / f"{k}.onnx") for k, (build, _, _) in KINDS.items()}


def _on_disk(path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def _weights(model) -> list[tuple[str, str, int]]:
    """Per Conv/Gemm/MatMul node of a QDQ file: (op, dtype of the initializer behind its weight input, size
    of its scale); (op, 'float', 0) when the weight reaches the node unquantized."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    out = []
    for n in model.graph.node:
        if n.op_type in WEIGHTED:
            dq = producer.get(n.input[1])
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
                out.append((n.op_type, str(inits[dq.input[0]].dtype), inits[dq.input[1]].size))
            else:
                out.append((n.op_type, "float", 0))
    return out


def _agreement(fp32_path, int8_path, size: int) -> tuple[float, float]:
    """(least cosine, largest abs difference) of the two files' logits on 4 normalised random images."""
    x = np.random.default_rng(size).normal(0, 1, (4, 3, size, size)).astype(np.float32)
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0].astype(float)
            for p in (fp32_path, int8_path))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min()), float(np.abs(a - b).max())


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_file_gives_a_working_int8_file(kind, files, calib, tmp_path, cli):
    src, (_, opset, dynamic) = files[kind], KINDS[kind]
    out = tmp_path / "q.int8.onnx"
    r = cli("quantize", str(src), "--calib", str(calib), "--size", "32", "--no-bench", "--format", "json",
            "--out", str(out))
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    if opset is not None and opset < 13:
        assert f"graph converted from opset {opset} to 13 (same FP32 outputs) for per-channel INT8" in rep["notes"]
    assert rep["fp32_bytes"] == _on_disk(src)  # external data counted
    assert rep["int8_bytes"] == out.stat().st_size and not out.with_name(out.name + ".data").exists()

    model = onnx.load(out)
    assert onnx_prep.opset_of(model) >= 13
    fp32 = onnx_prep.load(src)
    weights = _weights(model)
    assert len(weights) == sum(n.op_type in WEIGHTED for n in fp32.graph.node) >= 3
    assert {dtype for _, dtype, _ in weights} == {"int8"}, weights
    assert sorted(size for op, _, size in weights if op == "Conv") == [8, 16], weights  # per output channel
    contract = from_metadata({p.key: p.value for p in model.metadata_props})
    assert contract.precision == "int8" and contract.quantization["per_channel"] is True

    for size in (32, 48) if dynamic else (32,):
        cos, diff = _agreement(src, out, size)
        assert cos > 0.99 and diff > 0, (size, cos, diff)  # close to FP32, and really a different (INT8) graph


def test_constant_node_weights_are_named_in_the_report(files, calib, tmp_path, cli):
    src = files["helper-opset11-constant-weights-dynamic-hw"]
    assert not onnx.load(src).graph.initializer  # every weight a Constant node, as in the file a user brings
    r = cli("quantize", str(src), "--calib", str(calib), "--size", "32", "--no-bench", "--out", str(tmp_path / "q"))
    assert r.exit_code == 0, r.output
    assert ("note: 6 weight/bias tensor(s) held in Constant nodes made initializers, so that they are quantized"
            in r.stdout.splitlines())


def _fallback(files, calib, tmp_path, cli, monkeypatch, upgrade):
    monkeypatch.setattr(onnx_prep, "upgrade", upgrade)
    out = tmp_path / "q.onnx"
    r = cli("quantize", str(files["torch-legacy-opset11-dynamic-hw"]), "--calib", str(calib), "--size", "32",
            "--no-bench", "--out", str(out))
    assert r.exit_code == 0, r.output
    model = onnx.load(out)
    assert onnx_prep.opset_of(model) == 11
    weights = _weights(model)
    assert {w[1:] for w in weights} == {("int8", 1)}, weights  # int8, one scale per tensor
    assert from_metadata({p.key: p.value for p in model.metadata_props}).quantization["per_channel"] is False
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return [line for line in r.stdout.splitlines() if "opset 11 kept" in line]


def test_converter_failure_falls_back_to_per_tensor(files, calib, tmp_path, cli, monkeypatch):
    def broken(model, opset=13):
        raise RuntimeError("adapter for Squeeze failed\nsecond line")

    assert _fallback(files, calib, tmp_path, cli, monkeypatch, broken) == [
        "note: opset 11 kept (conversion to opset 13 failed: adapter for Squeeze failed): weights quantized per "
        "tensor, as per-channel needs opset 13"]


def test_a_conversion_that_changes_the_outputs_is_not_used(files, calib, tmp_path, cli, monkeypatch):
    real = onnx_prep.upgrade

    def wrong(model, opset=13):
        converted = real(model, opset)
        t = next(t for t in converted.graph.initializer if t.name == "fc.bias")
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 0.5, t.name))
        return converted

    lines = _fallback(files, calib, tmp_path, cli, monkeypatch, wrong)
    assert len(lines) == 1 and lines[0].startswith("note: opset 11 kept (output 0 differs by 0.5")


def test_per_tensor_on_opset_11_still_converts(files, calib, tmp_path, cli):
    out = tmp_path / "q.onnx"
    r = cli("quantize", str(files["torch-legacy-opset11-dynamic-hw"]), "--calib", str(calib), "--size", "32",
            "--no-bench", "--per-tensor", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert onnx_prep.opset_of(onnx.load(out)) == 13 and {w[1:] for w in _weights(onnx.load(out))} == {("int8", 1)}
    assert "note: graph converted from opset 11 to 13 (same FP32 outputs)" in r.stdout.splitlines()


def test_large_files_are_written_with_external_data(files, calib, tmp_path, cli, monkeypatch):
    """Above the inline limit (2 GB, lowered here) the FP32 graph goes through onnxruntime's external-data
    path and the INT8 file's tensors go beside it, with nothing else left in the folder."""
    monkeypatch.setattr(onnx_prep, "INLINE_LIMIT", 1000)
    d = tmp_path / "out"
    out = d / "big.int8.onnx"
    r = cli("quantize", str(files["helper-opset11-constant-weights-dynamic-hw"]), "--calib", str(calib), "--size",
            "32", "--no-bench", "--format", "json", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in d.iterdir()) == ["big.int8.onnx", "big.int8.onnx.data"]
    assert onnx_prep.external_files(onnx.load(out, load_external_data=False)) == ["big.int8.onnx.data"]
    assert json.loads(r.stdout)["int8_bytes"] == _on_disk(out)
    assert {w[1] for w in _weights(onnx_prep.load(out))} == {"int8"}
    cos, _ = _agreement(files["helper-opset11-constant-weights-dynamic-hw"], out, 40)
    assert cos > 0.99


@pytest.mark.parametrize("limit", [onnx_prep.INLINE_LIMIT, 1])
def test_a_failed_write_leaves_nothing(files, tmp_path, monkeypatch, limit):
    model = onnx_prep.load(files["torch-legacy-opset11-dynamic-hw"])
    real = onnx.save_model

    def disk_full(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError("No space left on device")

    monkeypatch.setattr(onnx_prep, "INLINE_LIMIT", limit)
    monkeypatch.setattr(onnx, "save_model", disk_full)
    d = tmp_path / "o"
    d.mkdir()
    with pytest.raises(OSError, match="No space left"):
        onnx_prep.save(model, d / "m.onnx")
    assert list(d.iterdir()) == []


def test_missing_external_data_is_one_line(files, calib, tmp_path):
    src = files["torch-legacy-opset12-external-data"]
    lone = tmp_path / src.name
    lone.write_bytes(src.read_bytes())  # copied without its .onnx.data
    r = run_cli("quantize", str(lone), "--calib", str(calib), "--size", "32", "--no-bench", block_torch=True)
    assert r.returncode == 1
    assert r.stderr == (f"Error: {lone}: not a readable ONNX file (its external data file {src.name}.data is "
                        "missing; keep it beside the .onnx file)\n")
    assert [p.name for p in tmp_path.iterdir()] == [src.name]


def test_int8_file_keeps_the_contract_it_was_given(calib, tmp_path, cli):
    src = foreign_onnx.torch_cnn(tmp_path / "c.onnx", opset=11, dynamic_size=False)
    model = onnx.load(src)
    pre = Preprocess(32, 32, resize="stretch", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    attach(model, Contract("classify", "tiny", pre, labels=list("abcd"), weights="random-init", opset=11))
    onnx.save(model, src)
    out = tmp_path / "c.int8.onnx"
    r = cli("quantize", str(src), "--calib", str(calib), "--no-bench", "--out", str(out))
    assert r.exit_code == 0, r.output
    c = from_metadata({p.key: p.value for p in onnx.load(out).metadata_props})
    assert (c.preprocess, c.labels, c.model, c.weights) == (pre, list("abcd"), "tiny", "random-init")
    assert c.precision == "int8" and c.opset == 13  # the graph's opset now, not the exporter's


def test_bench_int8_of_a_foreign_file(files, tmp_path, cli):
    src = files["torch-legacy-opset12-external-data"]
    r = cli("bench", str(src), "--precision", "fp32,int8", "--input-size", "32", "--runs", "4", "--warmup", "1",
            "--format", "json", "--out", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert [(row["precision"], row["status"]) for row in rows] == [("fp32", "ok"), ("int8", "ok")], rows


def test_quantize_a_foreign_file_without_torch(files, calib, tmp_path):
    out = tmp_path / "q.onnx"
    r = run_cli("quantize", str(files["helper-opset11-constant-weights-dynamic-hw"]), "--calib", str(calib), "--size",
                "32", "--no-bench", "--out", str(out), block_torch=True)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "note: graph converted from opset 11 to 13 (same FP32 outputs) for per-channel INT8" in r.stdout
    assert {w[1] for w in _weights(onnx.load(out))} == {"int8"}
