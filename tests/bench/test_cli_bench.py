"""``edgecnn bench`` through the CLI: bad input gives one exact error line, a non-zero exit and nothing
under --out; reports written and parseable; the torch-free run as on an edge device."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from onnx import TensorProto, helper

from edgecnn.bench import report
from tests import onnx_models
from tests.conftest import run_cli

FAST = ("--runs", "4", "--warmup", "1")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return onnx_models.classifier(tmp_path_factory.mktemp("m") / "colors.onnx")


def _vector_model(path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "v",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(m.SerializeToString())
    return path


def test_bad_input_one_line_errors(cli, model, tmp_path):
    out = tmp_path / "out"
    text = tmp_path / "notes.onnx"
    text.write_text("hello, not a model\n")
    vec = _vector_model(tmp_path / "vector.onnx")
    cases = [
        ((str(model), "--threads", "0"), 2, "Error: --threads must be >= 1, got 0\n"),
        ((str(model), "--runs", "0"), 2, "Error: --runs must be >= 1, got 0\n"),
        ((str(model), "--min-time", "0"), 2, "Error: --min-time must be > 0 seconds, got 0\n"),
        ((str(model), "--batch", "1,x"), 2, "Error: --batch: 'x' is not valid (comma-separated list expected, "
                                            "got '1,x')\n"),
        ((str(model), "--format", "xml"), 2, "Error: unknown --format 'xml'; choose one of: table, json, csv, md\n"),
        ((str(model), "--backend", "tvm"), 2, "Error: unknown --runtime 'tvm'; choose from: ort, torch, openvino, "
                                              "auto\n"),
        ((str(model), "--runtime", "tvm"), 2, "Error: unknown --runtime 'tvm'; choose from: ort, torch, openvino, "
                                              "auto\n"),
        ((str(model), "--provider", "npu"), 2, "Error: --provider 'npu' is not one of --runtime ort's: auto, cpu, "
                                               "cuda, tensorrt\n"),
        ((str(model), "--provider", "cuda"), 1, "Error: provider 'cuda' (CUDAExecutionProvider) is not available "
                                                "in this onnxruntime; available: cpu\n"),
        ((str(tmp_path / "missing.onnx"),), 1, f"Error: {tmp_path / 'missing.onnx'}: no such file\n"),
        ((str(vec),), 1, f"Error: {vec}: input 'x' is float32 [1, 10]; bench measures image models (a float "
                         "input of 4 dims, N x C x H x W)\n"),
        (("zzzq",), 1, "Error: unknown model 'zzzq'; run 'edgecnn models' to list them\n"),
    ]
    for args, code, message in cases:
        r = cli("bench", *FAST, "--out", str(out), *args)
        assert (r.exit_code, r.output) == (code, message), args
    r = cli("bench", str(text), "--out", str(out))
    assert r.exit_code == 1 and r.output.startswith(f"Error: {text}: not an ONNX model (") and r.output.count("\n") == 1
    assert not out.exists()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A contract-less FP32 file and its INT8 file (quantized by edgecnn, then its metadata stripped, as
    another tool would leave it): the precision can only be read from the graph."""
    import numpy as np
    import onnx
    from PIL import Image

    from edgecnn.quantize import QuantizeOptions, quantize

    d = tmp_path_factory.mktemp("pair")
    fp32 = onnx_models.classifier(d / "m.onnx", size=16)
    rng = np.random.default_rng(0)
    (d / "calib").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(d / "calib" / f"{i}.png")
    quantize(QuantizeOptions(model=str(fp32), calib=str(d / "calib"), out=str(d / "m.int8.onnx"), samples=4,
                             bench=False, min_agreement=0.0))
    bare = onnx.load(d / "m.int8.onnx")
    del bare.metadata_props[:]
    onnx.save(bare, d / "m.int8.onnx")
    return fp32, d / "m.int8.onnx"


def test_a_file_and_its_int8_file_side_by_side(cli, pair, tmp_path):
    fp32, int8 = pair
    r = cli("bench", str(fp32), str(int8), "--out", str(tmp_path / "o"), "--format", "json", *FAST)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["rows"]
    assert [(row["model"], row["precision"], row["status"], row["speed_only"]) for row in rows] == [
        ("m", "fp32", "ok", False), ("m.int8", "int8", "ok", False)]
    assert rows[0]["family"] == rows[1]["family"]  # measured together, interleaved
    assert rows[1]["speedup"] == pytest.approx(rows[0]["latency_ms"]["p50"] / rows[1]["latency_ms"]["p50"])
    assert rows[0]["speedup"] == 1.0 and rows[0]["params"] == rows[1]["params"] == 16
    table = cli("bench", str(fp32), str(int8), "--out", str(tmp_path / "o"), *FAST)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "vs base" in lines[0] and "FAILED" not in table.stdout
    body = {line.split()[0]: line for line in lines[2:4]}
    assert set(body) == {"m", "m.int8"} and " int8 " in body["m.int8"] and "int8*" not in body["m.int8"]
    assert " 1.00x " in body["m"] and re.search(r" \d+\.\d\dx ", body["m.int8"])
    assert any(line.startswith("vs base: ") for line in lines)


def test_default_output_folder_is_bench_results_in_the_current_folder(model, tmp_path):
    from edgecnn.bench.environment import capture, device_tag

    r = run_cli("bench", str(model), *FAST, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tag = device_tag(capture())
    written = sorted(p.name for p in (tmp_path / "bench-results" / tag).iterdir())
    assert [p.rsplit(".", 1)[1] for p in written] == ["csv", "json", "md"]
    assert r.stderr.startswith(f"wrote bench-results/{tag}/bench-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench-results"]


def test_partial_failure_writes_the_report_and_exits_1(cli, model, tmp_path):
    out = tmp_path / "out"
    r = cli("bench", str(model), "--provider", "cpu,tensorrt", "--out", str(out), *FAST)
    assert r.exit_code == 1
    assert r.output.splitlines()[-1] == (
        f"Error: 1 of 2 configurations failed (first: {model}|ort|tensorrt|fp32|b1|tdefault|native: provider "
        "'tensorrt' (TensorrtExecutionProvider) is not available in this onnxruntime; available: cpu)")
    (js,) = out.glob("bench-*.json")
    doc = json.loads(js.read_text())
    assert [row["status"] for row in doc["rows"]] == ["ok", "failed"]


def test_reports_written_and_parseable(cli, model, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "res"
    r = cli("bench", str(model), "--batch", "1,2", "--format", "json", "--out", str(out), "--plot", "--html", *FAST)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    stems = {p.suffix: p for p in out.iterdir()}
    assert set(stems) == {".json", ".csv", ".md", ".png", ".html"}
    assert json.loads(stems[".json"].read_text()) == doc
    assert [len(row["samples_ms"]) for row in doc["rows"]] == [4, 4]
    rows = list(csv.DictReader(io.StringIO(stems[".csv"].read_text())))
    assert [int(x["batch"]) for x in rows] == [1, 2] and float(rows[0]["p50_ms"]) == doc["rows"][0]["latency_ms"]["p50"]
    assert stems[".png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = stems[".html"].read_text()
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    assert stems[".md"].read_text().count("\n| colors ") == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_nothing_is_written_when_rendering_fails(model, tmp_path, monkeypatch):
    from edgecnn.bench.config import Sweep
    from edgecnn.bench.protocol import Bench, Protocol

    b = Bench(Sweep([str(model)]), Protocol(runs=2, warmup=0, settle_s=0))
    b.run()
    monkeypatch.setattr(report, "to_markdown", lambda doc: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        report.write(b.document(), tmp_path / "out", "x")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bench_without_torch(model, tmp_path):
    r = run_cli("bench", str(model), "--format", "csv", "--out", str(tmp_path / "o"), *FAST, block_torch=True)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 1 and rows[0]["status"] == "ok" and float(rows[0]["p50_ms"]) > 0
    assert r.stderr.startswith(f"wrote {tmp_path / 'o'}")
    r = run_cli("bench", "mobilenetv2", "--out", str(tmp_path / "z"), block_torch=True)
    assert (r.returncode, r.stderr) == (1, "Error: benchmarking zoo model 'mobilenetv2' (it is exported to ONNX "
                                           "first) needs torch, which is not installed; install it with: "
                                           'pip install "edgecnn[torch]"\n')
    assert not (tmp_path / "z").exists()


def test_bench_core_imports_without_torch():
    from tests.conftest import run_python

    r = run_python("""
        import importlib, sys
        for m in ("edgecnn.bench.environment", "edgecnn.bench.config", "edgecnn.bench.stats", "edgecnn.bench.timing",
                  "edgecnn.bench.protocol", "edgecnn.bench.targets", "edgecnn.bench.backends",
                  "edgecnn.bench.graph_cost", "edgecnn.bench.peak", "edgecnn.bench.e2e", "edgecnn.bench.report",
                  "edgecnn.tables", "edgecnn.cli.bench"):
            importlib.import_module(m)
        assert sys.modules.get("torch") is None
    """, block_torch=True)
    assert r.returncode == 0, r.stderr


def test_plot_without_matplotlib_names_the_extra(model, tmp_path):
    from tests.conftest import run_python

    out = tmp_path / "o"
    r = run_python(f"""
        import sys
        sys.modules["matplotlib"] = None
        sys.argv = ["edgecnn", "bench", {str(model)!r}, "--plot", "--out", {str(out)!r}]
        from edgecnn.cli.main import main
        main()
    """)
    assert (r.returncode, r.stderr) == (1, 'Error: --plot/--html needs matplotlib, which is not installed; install it '
                                           'with: pip install "edgecnn[plot]"\n')
    assert not out.exists()
