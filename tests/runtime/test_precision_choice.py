"""--precision auto|fp32|int8: which file runs (the tuned profile's, or the variant beside the file given), one-line
errors when that file is not there; tune then infer --runtime auto --precision auto runs what tune chose."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from edgecnn.errors import UsageError
from edgecnn.runtime import choice, profile
from tests.onnx_models import classifier


@pytest.fixture()
def tiny(tmp_path):
    return classifier(tmp_path / "m.onnx", size=32)


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    return path


def _variant(tiny):
    return shutil.copy(tiny, tiny.with_name("m.int8.onnx"))  # named as quantize names it


def test_int8_is_the_variant_beside_and_a_missing_one_says_how_to_make_it(tiny, home):
    with pytest.raises(UsageError, match=r"no m\.int8\.onnx beside .*edgecnn quantize .* --calib DIR"):
        choice.resolve(tiny, "ort", "int8")
    _variant(tiny)
    res = choice.resolve(tiny, "ort", "int8")
    assert (res.runtime, res.path.name, res.reason) == ("ort", "m.int8.onnx", "asked")
    assert choice.resolve(tiny, "ort", "fp32").path == tiny  # the file is FP32 itself
    with pytest.raises(UsageError, match="unknown --precision 'int4'"):
        choice.resolve(tiny, "ort", "int4")


def test_fp32_of_a_quantized_file_is_its_source(tiny, home, tmp_path):
    from edgecnn.quantize import QuantizeOptions, quantize

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(calib / f"{i}.png")
    int8 = quantize(QuantizeOptions(model=str(tiny), calib=str(calib), bench=False, min_agreement=0.0)).path
    assert choice.resolve(int8, "ort", "fp32").path.resolve() == tiny.resolve()
    assert choice.resolve(int8, "ort", "int8").path == int8


def test_auto_takes_the_profile_precision_file_and_its_saved_graph_only_for_that_file(tiny, home):
    int8 = _variant(tiny)
    saved = tiny.with_name("saved.onnx")
    shutil.copy(tiny, saved)
    options = {"spinning": False, "affinity": True, "graph_opt": "all", "optimized_model": str(saved)}
    profile.save(tiny, {"latency": {"runtime": "ort", "precision": "int8", "path": str(int8), "threads": 1,
                                    "batch": 1, "options": options}}, [])
    res = choice.resolve(tiny, "auto", "auto")
    assert res.path == int8 and res.threads == 1
    assert res.engine_kwargs() == options  # the saved graph is the INT8 file's: it runs
    plain = choice.resolve(tiny, "auto", None)  # the file as given, FP32: not the INT8 file's saved graph
    assert plain.path == tiny and "optimized_model" not in plain.engine_kwargs()
    engine = choice.open_engine(tiny, "auto", "auto", provider="cpu")
    assert engine.path == int8
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    assert engine.run(x)[engine.output_names[0]].shape == (1, 4)


def test_infer_precision_int8_runs_the_variant_and_bad_values_are_one_line(tiny, home, image, cli):
    int8 = _variant(tiny)
    res = cli("infer", str(image), "--model", str(tiny), "--precision", "int8", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["runtime"]["model"] == str(int8)
    res = cli("infer", str(image), "--model", str(tiny), "--precision", "int4")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "Error: unknown --precision 'int4'; choose one of: auto, fp32, int8, bf16"]


def test_tune_then_infer_auto_runs_the_tuned_choice(tiny, home, image, cli):
    _variant(tiny)
    res = cli("tune", str(tiny), "--runtime", "ort", "--threads", "1", "--batch", "1", "--budget", "1")
    assert res.exit_code == 0, res.output
    chosen = profile.lookup(tiny, "latency")
    res = cli("infer", str(image), "--model", str(tiny), "--topk", "1", "--runtime", "auto", "--precision", "auto",
              "--format", "json")
    assert res.exit_code == 0, res.output
    ran = json.loads(res.stdout)["summary"]["runtime"]
    assert ran["model"] == chosen["path"] and ran["precision"] == chosen["precision"]
    assert ran["reason"] == "tuned profile"
    assert "runtime: onnxruntime (tuned profile" in res.stderr
    res = cli("infer", str(image), "--model", str(tiny), "--topk", "1", "--runtime", "auto", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["runtime"]["model"] == str(tiny)  # the file given, whatever won


def test_auto_without_precision_auto_says_the_file_given_runs(tiny, home):
    int8 = _variant(tiny)
    profile.save(tiny, {"latency": {"runtime": "ort", "precision": "int8", "path": str(int8), "threads": 1,
                                    "batch": 1, "options": {}}}, [])
    line = choice.resolve(tiny, "auto", None).line()
    assert "precision fp32" in line and "tuned precision int8: --precision auto runs its file" in line
    assert line.endswith(f"for {tiny}")
    assert "tuned precision" not in choice.resolve(tiny, "auto", "auto").line()
