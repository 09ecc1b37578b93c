"""``--runtime openvino`` (extra [openvino]) behind ``Engine``, and ``--runtime auto`` (runtime.choice): the same
file, contract, preprocessing and post-processing as onnxruntime, only the model call differs. No torch here.
Tests that need OpenVINO skip without it; the missing-extra error and the resolution do not need it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from PIL import Image

from edgecnn.errors import UsageError
from edgecnn.export.parity import TOLERANCES, compare  # numpy only at import: the gate's tolerance and metrics
from edgecnn.runtime import choice, profile
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import ImageFile
from tests import imagegen, onnx_models
from tests.conftest import run_cli, run_python

TOL = TOLERANCES["fp32"]


def _ov():
    return pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")


def _tuned(path, runtime="openvino", threads=1, precision_path=None):
    return profile.save(path, {"latency": {"runtime": runtime, "precision": "fp32", "path": str(precision_path or path),
                                           "threads": threads, "batch": 1, "options": {}}}, [])


def _images(d):
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, colour in (("red", (230, 20, 10)), ("green", (10, 200, 30)), ("blue", (20, 10, 220))):
        out.append(imagegen.save(Image.new("RGB", (40, 30), colour), d / f"{name}.png"))
    out.append(imagegen.save(Image.effect_noise((48, 40), 70).convert("RGB"), d / "noise.png"))
    return out


def _assert_parity(ref: dict, got: dict, tol=TOL):
    assert list(ref) == list(got)
    for name in ref:
        assert got[name].shape == ref[name].shape and got[name].dtype == ref[name].dtype
        p = compare(ref[name], got[name], len(ref[name]))
        assert p.rel <= tol["rel"] and p.cosine >= tol["cosine"] and p.top1 >= tol["top1"], (name, p)


# ---- the engine ------------------------------------------------------------------------------------------


def test_same_outputs_as_onnxruntime_at_several_batches(tmp_path):
    _ov()
    path = onnx_models.classifier(tmp_path / "colors.onnx")
    ort_e, ov_e = Engine(path, threads=1), Engine(path, runtime="openvino", threads=1)
    assert ov_e.providers[0].startswith("OpenVINO ") and ov_e.describe()["runtime"] == "openvino"
    # the contract and graph facts every command reads are the same whichever runtime reads the file
    assert (ov_e.contract, ov_e.input_name, ov_e.input_shape, ov_e.output_names, ov_e.output_shapes) == (
        ort_e.contract, ort_e.input_name, ort_e.input_shape, ort_e.output_names, ort_e.output_shapes)
    rng = np.random.default_rng(0)
    for n in (1, 3, 1, 2):  # dynamic batch: each shape compiled once, then reused
        x = rng.standard_normal((n, 3, 32, 32), dtype=np.float32)
        _assert_parity(ort_e.run(x), ov_e.run(x))
    assert sorted(ov_e.session._compiled) == [(1, 3, 32, 32), (2, 3, 32, 32), (3, 3, 32, 32)]


def test_fixed_batch_file_is_fed_in_chunks(tmp_path):
    _ov()
    path = onnx_models.classifier(tmp_path / "b2.onnx", batch=2)
    x = np.random.default_rng(1).standard_normal((5, 3, 32, 32), dtype=np.float32)
    ov_e = Engine(path, runtime="openvino")
    assert ov_e.fixed_batch == 2
    _assert_parity(Engine(path).run(x), ov_e.run(x))


def test_fp16_file_takes_float16_inputs(tmp_path):
    _ov()
    from onnxruntime.transformers.float16 import convert_float_to_float16

    path = onnx_models.classifier(tmp_path / "colors.onnx")
    half = tmp_path / "colors.fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(path)), keep_io_types=False), str(half))
    ort_e, ov_e = Engine(half), Engine(half, runtime="openvino")
    assert ov_e.input_dtype == np.float16 == ort_e.input_dtype
    x = np.random.default_rng(2).random((2, 3, 32, 32), dtype=np.float32)
    _assert_parity(ort_e.run(x), ov_e.run(x), TOLERANCES["fp16"])


def test_predictions_equal_classifier_and_detectors(tmp_path):
    _ov()
    files = [ImageFile(p, p.name) for p in _images(tmp_path / "imgs")]
    models = [onnx_models.classifier(tmp_path / "cls.onnx"), onnx_models.detector(tmp_path / "det.onnx"),
              onnx_models.detector(tmp_path / "gdet.onnx", nms="graph"),
              onnx_models.detector(tmp_path / "cxcy.onnx", box_format="cxcywh", normalized=True)]
    for path in models:
        got = {}
        for rt in ("ort", "openvino"):
            res = list(Predictor(Engine(path, runtime=rt)).predict(files, batch=3))
            got[rt] = [[(p["class"], p.get("box")) for p in r.predictions] for r in res]
            scores = [[p["score"] for p in r.predictions] for r in res]
            got[rt + " scores"] = np.array([s for ss in scores for s in ss])
        assert got["ort"] == got["openvino"] and any(got["ort"]), path.name
        np.testing.assert_allclose(got["openvino scores"], got["ort scores"], atol=1e-5)


def test_bad_files_and_options_are_one_line_errors(tmp_path):
    _ov()
    from edgecnn.runtime.openvino import OpenVINOError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OpenVINOError, match="is not a readable ONNX file") as e:
        Engine(bad, runtime="openvino")
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="reads ONNX files"):
        Engine(tmp_path / "model.xml", runtime="openvino")
    path = onnx_models.classifier(tmp_path / "colors.onnx")
    with pytest.raises(UsageError, match="--provider cuda is onnxruntime's; --runtime openvino runs on the CPU"):
        Engine(path, runtime="openvino", provider="cuda")
    with pytest.raises(UsageError, match="--graph-opt basic is onnxruntime's"):
        Engine(path, runtime="openvino", graph_opt="basic")
    with pytest.raises(UsageError, match="unknown --runtime 'tvm'"):
        Engine(path, runtime="tvm")
    from edgecnn.eval.run import open_engine

    with pytest.raises(UsageError, match=r"--runtime openvino runs ONNX files; run/best.pt is a checkpoint"):
        open_engine("run/best.pt", runtime="openvino")


def test_missing_openvino_names_the_extra(tmp_path):
    path = onnx_models.classifier(tmp_path / "colors.onnx")
    imagegen.save(Image.new("RGB", (8, 8), "red"), tmp_path / "red.png")
    out = run_python(f"""
        import sys; sys.modules['openvino'] = None
        sys.argv = ['edgecnn', 'infer', {str(tmp_path / 'red.png')!r}, '-m', {str(path)!r}, '--runtime', 'openvino']
        from edgecnn.cli.main import main; main()
    """, block_torch=True)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == ('Error: --runtime openvino needs openvino, which is not installed; install it with: '
                          'pip install "edgecnn[openvino]"\n')


# ---- --runtime auto: runtime.choice -------------------------------------------------------------------------


def test_resolve_without_and_with_a_profile(tmp_path, home, monkeypatch):
    path = onnx_models.classifier(tmp_path / "m.onnx")
    int8 = onnx_models.classifier(tmp_path / "m.int8.onnx", size=32, labels=["a", "b", "c", "d"])
    r = choice.resolve(path, "auto")
    assert (r.runtime, r.path, r.reason, r.tuned) == ("ort", path, "no profile: onnxruntime", False)
    assert choice.resolve(path, "openvino").reason == "asked"
    _tuned(path, threads=2, precision_path=int8)
    monkeypatch.setattr("edgecnn.runtime.openvino.available", lambda: True)
    r = choice.resolve(path, "auto")
    assert (r.runtime, r.path, r.reason, r.threads, r.batch) == ("openvino", path, "tuned profile", 2, 1)
    assert choice.resolve(path, "auto", precision="auto").path == int8  # the tuned precision's file
    assert choice.resolve(path, "ort").runtime == "ort"  # an explicit runtime is never overridden
    r = choice.resolve(path, "ort", precision="auto")
    assert (r.runtime, r.path, r.threads) == ("ort", int8, None)  # another runtime's threads are not taken
    assert choice.resolve(path, "auto", objective="throughput").reason == "no profile: onnxruntime"
    monkeypatch.setattr("edgecnn.runtime.openvino.available", lambda: False)
    r = choice.resolve(path, "auto")
    assert (r.runtime, r.reason) == ("ort", "the tuned profile chose OpenVINO, which is not installed: onnxruntime")
    with pytest.raises(UsageError, match="unknown --runtime 'fast'; choose one of: ort, openvino, auto"):
        choice.resolve(path, "fast")


def test_profile_options_reach_the_engine_and_given_options_win(tmp_path, home):
    path = onnx_models.classifier(tmp_path / "m.onnx")
    profile.save(path, {"latency": {"runtime": "ort", "precision": "fp32", "path": str(path), "threads": 1,
                                    "batch": 1, "options": {"graph_opt": "basic", "unknown_knob": 3}}}, [])
    e = choice.open_engine(path, "auto")
    assert (e.runtime, e.threads, e.graph_opt, e.resolved.reason) == ("ort", 1, "basic", "tuned profile")
    e = choice.open_engine(path, "auto", threads=2, graph_opt=None)
    assert (e.threads, e.graph_opt) == (2, "basic")


def test_infer_auto_says_which_runtime_ran_and_why(tmp_path, home, cli):
    _ov()
    path = onnx_models.classifier(tmp_path / "m.onnx", weights={"path": "c.pt", "sha256": "0" * 64})
    img = imagegen.save(Image.new("RGB", (40, 30), (230, 20, 10)), tmp_path / "red.png")
    r = cli("infer", str(img), "-m", str(path), "--runtime", "auto", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.splitlines()[0] == (f"runtime: onnxruntime (no profile for this file on this host; "
                                        f"'edgecnn tune {path}' makes one) for {path}")
    summary = json.loads(r.stdout)["summary"]
    assert summary["provider"] == "CPUExecutionProvider" and summary["runtime"]["reason"] == "no profile: onnxruntime"
    _tuned(path, threads=1)
    r = cli("infer", str(img), "-m", str(path), "--runtime", "auto", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.splitlines()[0] == (f"runtime: OpenVINO (tuned profile: precision fp32, threads 1, batch 1) "
                                        f"for {path}")
    doc = json.loads(r.stdout)
    assert doc["summary"]["provider"].startswith("OpenVINO ") and doc["summary"]["runtime"]["runtime"] == "openvino"
    assert doc["results"][0]["predictions"][0]["label"] == "red"


def test_eval_runtime_openvino_scores_what_onnxruntime_scores(tmp_path, home, cli):
    _ov()
    path = onnx_models.classifier(tmp_path / "m.onnx", weights={"path": "c.pt", "sha256": "0" * 64})
    for label, colour in (("red", (230, 20, 10)), ("green", (10, 200, 30)), ("blue", (20, 10, 220))):
        for i in range(2):
            imagegen.save(Image.new("RGB", (20 + i, 20), colour), tmp_path / "data" / label / f"{i}.png")
    docs = {}
    for rt in ("ort", "openvino"):
        r = cli("eval", str(path), "--data", str(tmp_path / "data"), "--runtime", rt, "--format", "json")
        assert r.exit_code == 0, r.stderr
        docs[rt] = json.loads(r.stdout)
    assert docs["openvino"]["metrics"] == docs["ort"]["metrics"] and docs["ort"]["metrics"]["top1"] == 1.0
    assert docs["openvino"]["backend"].startswith("OpenVINO ") and docs["openvino"]["runtime"]["runtime"] == "openvino"
    _tuned(path, threads=1)  # auto: the tuned profile's runtime, said on stderr and in the report
    r = cli("eval", str(path), "--data", str(tmp_path / "data"), "--runtime", "auto", "--batch", "1",
            "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.splitlines()[0] == (f"runtime: OpenVINO (tuned profile: precision fp32, threads 1, batch 1) "
                                        f"for {path}")
    doc = json.loads(r.stdout)
    assert doc["runtime"]["reason"] == "tuned profile" and doc["metrics"] == docs["ort"]["metrics"]


# ---- torch-free, as on a device -------------------------------------------------------------------------------


def test_infer_runtime_openvino_without_torch(tmp_path):
    _ov()
    model = onnx_models.classifier(tmp_path / "colors.onnx", weights={"path": "c.pt", "sha256": "0" * 64})
    det = onnx_models.detector(tmp_path / "det.onnx")
    imgs = tmp_path / "imgs"
    _images(imgs)
    r = run_cli("infer", str(imgs), "--model", str(model), "--topk", "1", "--format", "json", "--runtime", "openvino",
                block_torch=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    labels = {x["image"].rsplit("/", 1)[-1]: x["predictions"][0]["label"] for x in doc["results"]}
    assert {k: v for k, v in labels.items() if k != "noise.png"} == {"red.png": "red", "green.png": "green",
                                                                      "blue.png": "blue"}
    assert doc["summary"]["provider"].startswith("OpenVINO ")
    imagegen.save(Image.new("RGB", (128, 64), "white"), tmp_path / "white.png")
    r = run_cli("infer", str(tmp_path / "white.png"), "--model", str(det), "--format", "jsonl", "--runtime",
                "openvino", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert [(p["label"], p["box"]) for p in json.loads(r.stdout)["predictions"]] == [
        ("cat", [16.0, 16.0, 80.0, 48.0]), ("dog", [16.0, 16.0, 72.0, 48.0])]


def test_bench_runtime_auto_beside_the_plain_runtimes(tmp_path, home):
    """``bench --runtime ort,openvino,auto``: the tuned configuration as its own row (``mode`` auto), per file;
    onnxruntime for a file without a profile. A subprocess, as bench's other OpenVINO sweep test runs."""
    _ov()
    tuned = onnx_models.classifier(tmp_path / "tuned.onnx")
    plain = onnx_models.classifier(tmp_path / "plain.onnx", size=40)
    _tuned(tuned, threads=1)
    r = run_cli("bench", str(tuned), str(plain), "--runtime", "ort,openvino,auto", "--runs", "3", "--warmup", "1",
                "--out", str(tmp_path / "res"), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[:2] == [
        f"runtime: OpenVINO (tuned profile: precision fp32, threads 1, batch 1) for {tuned}",
        f"runtime: onnxruntime (no profile for this file on this host; 'edgecnn tune {plain}' makes one) for {plain}"]
    rows = json.loads(r.stdout)["rows"]
    got = sorted((row["model"], row["backend"], row["mode"], row["threads"], row["status"]) for row in rows)
    assert got == [("plain", "openvino", "default", None, "ok"), ("plain", "ort", "auto", None, "ok"),
                   ("plain", "ort", "default", None, "ok"), ("tuned", "openvino", "auto", 1, "ok"),
                   ("tuned", "openvino", "default", None, "ok"), ("tuned", "ort", "default", None, "ok")]
