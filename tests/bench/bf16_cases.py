"""bf16 (OpenVINO's bf16 inference precision on the FP32 file): offered only where the CPU has native bf16 (the
ISA is injected, never this host's), only after its answers agree with FP32's, recorded in the profile and run
by --precision auto / bf16."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn import bf16
from edgecnn.bench import tune as tune_mod
from edgecnn.errors import UsageError
from edgecnn.runtime import choice, profile
from edgecnn.runtime.session import Engine
from tests.onnx_models import classifier, detector

AMX = {"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"}
VNNI_ONLY = {"avx2", "avx512f", "avx512bw", "avx512_vnni"}


@pytest.fixture()
def tiny(tmp_path):
    return classifier(tmp_path / "tiny.onnx", size=32)


def _passes(path, calib=None):
    return {"passed": True, "judged_by": "top-1 agreement with FP32", "value": 1.0, "threshold": 0.99,
            "cosine": 1.0, "images": 16, "inputs": "stand-in"}


@pytest.mark.parametrize("machine, flags, offered", [
    ("x86_64", AMX, True),  # Sapphire Rapids: AMX bf16 tiles
    ("x86_64", VNNI_ONLY | {"avx512_bf16"}, True),  # Cooper Lake / Zen 4: AVX512_BF16
    ("x86_64", VNNI_ONLY, False),  # Cascade Lake, Ice Lake: no bf16 arithmetic
    ("x86_64", {"avx2", "fma"}, False),
    ("aarch64", {"asimd", "asimddp", "bf16", "i8mm"}, False),  # ARM: not OpenVINO's bf16 path here
])
def test_native_bf16_is_x86_with_avx512_bf16_or_amx_only(machine, flags, offered):
    ok, why = bf16.native(machine, flags)
    assert ok is offered and why


def test_tune_measures_bf16_on_openvino_only_where_the_cpu_has_it(tiny, home):
    pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")
    kw = {"threads": [1], "batches": [1], "runs": 3, "saved_model": False, "ort_options": False}
    yes = tune_mod.tune(tiny, bf16_native=bf16.native("x86_64", AMX), bf16_check=_passes, **kw)
    rows = [r for r in yes.rows if r["precision"] == "bf16"]
    assert rows and all(r["runtime"] == "openvino" and r["status"] == "ok" for r in rows)
    assert rows[0]["options"] == {"inference_precision": "bf16"} and rows[0]["path"] == str(tiny.resolve())
    no = tune_mod.tune(tiny, bf16_native=bf16.native("x86_64", VNNI_ONLY), bf16_check=_passes, **kw)
    assert not [r for r in no.rows if r["precision"] == "bf16"]
    assert any("bf16 not measured" in n and "no native bf16" in n for n in no.notes), no.notes


def test_a_precision_that_fails_its_check_is_a_rejected_row_saying_why(tiny, home, cli, monkeypatch):
    pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")

    def fails(path, calib=None):
        return {"passed": False, "why": "top-1 agreement with FP32 0.500 < 0.99 on 16 inputs"}

    result = tune_mod.tune(tiny, threads=[1], batches=[1], runs=3, saved_model=False, ort_options=False,
                           bf16_native=(True, "native bf16 (amx_bf16)"), bf16_check=fails)
    bad = [r for r in result.rows if r["precision"] == "bf16"]
    assert [r["status"] for r in bad] == ["rejected"] and "0.500 < 0.99" in bad[0]["error"]
    assert result.choices["latency"]["precision"] != "bf16"
    monkeypatch.setattr(bf16, "host_native", lambda: (True, "native bf16 (amx_bf16)"))
    monkeypatch.setattr(bf16, "check", fails)
    out = cli("tune", str(tiny), "--threads", "1", "--batch", "1", "--budget", "2", "--no-save")
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if ln.startswith("1 ") and " bf16 " in ln)
    assert "rejected" in line and "0.500 < 0.99" in line


def test_judge_fails_real_top1_flips_and_counts_near_ties_apart(tiny):
    contract = Engine(tiny).contract
    ref = [{"logits": np.array([[4.0, 1.0, 0.0, -1.0]], np.float32)} for _ in range(20)]
    near = [{"logits": np.array([[4.0, 4.001, 0.0, -1.0]], np.float32)}]  # a tie: within 2 x 1% of the scale
    ok = bf16.judge(ref + [{"logits": np.array([[4.0, 3.999, 0.0, -1.0]], np.float32)}], ref + near, contract)
    assert ok["passed"] and ok["ties"] == 1 and ok["value"] == 1.0
    flipped = [{"logits": np.array([[1.0, 4.0, 0.0, -1.0]], np.float32)}]  # a real flip: 1 of 21
    bad = bf16.judge(ref + ref[:1], ref + flipped, contract)
    assert not bad["passed"] and bad["value"] == pytest.approx(20 / 21) and "top-1 agreement" in bad["why"]
    skewed = [{"logits": r["logits"] * np.array([1, 1, 1, 20], np.float32)} for r in ref]  # argmax kept, shape not
    cos = bf16.judge(ref, skewed, contract)
    assert not cos["passed"] and cos["value"] == 1.0 and "cosine" in cos["why"]


def test_judge_of_a_detector_is_the_f1_of_its_final_detections(tmp_path):
    path = detector(tmp_path / "det.onnx")
    eng = Engine(path)
    x = np.full((1, 3, 64, 64), 0.8, np.float32)
    ref = [eng.run(x)]
    same = bf16.judge(ref, [{k: v * (1 + 1e-4) for k, v in ref[0].items()}], eng.contract)
    assert same["judged_by"].startswith("F1") and same["passed"], same
    lost = {**ref[0], "scores": ref[0]["scores"] * 0.0}  # no detection left
    res = bf16.judge(ref, [lost], eng.contract)
    assert not res["passed"] and res["value"] == 0.0 and "F1" in res["why"]


def test_check_compares_openvino_bf16_with_onnxruntime_fp32(tiny):
    pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")
    res = bf16.check(tiny, samples=4)
    assert res["images"] == 4 and res["judged_by"] == "top-1 agreement with FP32"
    assert res["passed"] and res["cosine"] > 0.99  # a 4-class toy: bf16 rounding stays far below the margins


def _bf16_profile(path):
    return profile.save(path, {"latency": {"runtime": "openvino", "precision": "bf16", "path": str(path),
                                           "threads": 1, "batch": 1, "options": {"inference_precision": "bf16"}}},
                        [])


def test_profile_round_trip_and_what_auto_runs(tiny, home):
    _bf16_profile(tiny)
    assert profile.lookup(tiny)["precision"] == "bf16"
    res = choice.resolve(tiny, "auto", "auto")
    assert res.runtime == "openvino" and res.engine_kwargs() == {"inference_precision": "bf16"}
    assert res.describe()["precision"] == "bf16" and "tuned_precision" not in res.describe()
    plain = choice.resolve(tiny, "auto")  # --runtime auto alone: the file as given, at its own precision
    assert plain.runtime == "openvino" and plain.engine_kwargs() == {}
    assert plain.describe() | {} == plain.describe() and plain.describe()["precision"] == "fp32"
    assert plain.describe()["tuned_precision"] == "bf16"
    ort = choice.resolve(tiny, "ort", "auto")  # an explicit runtime is never overridden
    assert ort.runtime == "ort" and ort.engine_kwargs() == {} and ort.describe()["precision"] == "fp32"
    copy = tiny.parent / "elsewhere" / "same.onnx"  # the profile is keyed by content; bf16 runs the file given
    copy.parent.mkdir()
    copy.write_bytes(tiny.read_bytes())
    assert choice.resolve(copy, "auto", "auto").path == copy
    with pytest.raises(profile.ProfileError, match="runs on openvino"):
        profile.save(tiny, {"latency": {"runtime": "ort", "precision": "bf16", "path": str(tiny), "threads": 1,
                                        "batch": 1, "options": {}}}, [])


def test_precision_bf16_asks_for_openvino_and_a_native_cpu(tiny, home, monkeypatch):
    monkeypatch.setattr(bf16, "host_native", lambda: (True, "native bf16 (amx_bf16)"))
    res = choice.resolve(tiny, "openvino", "bf16")
    assert (res.runtime, res.path, res.engine_kwargs()) == ("openvino", tiny, {"inference_precision": "bf16"})
    assert choice.resolve(tiny, "auto", "bf16").runtime == "openvino"
    with pytest.raises(UsageError, match="give --runtime openvino or auto"):
        choice.resolve(tiny, "ort", "bf16")
    monkeypatch.setattr(bf16, "host_native", lambda: bf16.native("x86_64", VNNI_ONLY))
    with pytest.raises(UsageError, match="no native bf16"):
        choice.resolve(tiny, "openvino", "bf16")
    with pytest.raises(UsageError, match="OpenVINO's"):
        Engine(tiny, inference_precision="bf16")  # onnxruntime has no such setting


def test_infer_runs_bf16_where_the_profile_chose_it_and_when_asked(tiny, home, cli, tmp_path, monkeypatch):
    pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")
    import json

    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(image)
    _bf16_profile(tiny)
    res = cli("infer", str(image), "--model", str(tiny), "--topk", "1", "--runtime", "auto", "--precision", "auto",
              "--format", "json")
    assert res.exit_code == 0, res.output
    ran = json.loads(res.stdout)["summary"]["runtime"]
    assert (ran["runtime"], ran["precision"], ran["model"]) == ("openvino", "bf16", str(tiny))
    assert "runtime: OpenVINO (tuned profile: precision bf16, threads 1, batch 1)" in res.stderr
    plain = cli("infer", str(image), "--model", str(tiny), "--topk", "1", "--runtime", "auto", "--format", "json")
    assert "tuned precision bf16: --precision auto runs it" in plain.stderr
    monkeypatch.setattr(bf16, "host_native", lambda: (True, "native bf16 (amx_bf16)"))
    asked = cli("infer", str(image), "--model", str(tiny), "--runtime", "openvino", "--precision", "bf16",
                "--format", "json")
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.stdout)["summary"]["runtime"]["precision"] == "bf16"
    ref = json.loads(cli("infer", str(image), "--model", str(tiny), "--format", "json").stdout)
    first = ref["results"][0]["predictions"][0]
    for r in (res, asked):  # bf16 names the class FP32 names, with its score to bf16's ~3 digits
        got = json.loads(r.stdout)["results"][0]["predictions"][0]
        assert got["class"] == first["class"] and got["score"] == pytest.approx(first["score"], abs=1e-2)


def test_bench_runtime_auto_runs_openvino_with_the_profile_precision_and_says_bf16(tiny, home, cli):
    pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")
    import json

    _bf16_profile(tiny)
    res = cli("bench", str(tiny), "--runtime", "openvino,auto", "--threads", "1", "--runs", "3", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = {r["mode"]: r for r in json.loads(res.stdout)["rows"]}
    assert rows["auto"]["precision"] == "bf16" and rows["auto"]["backend_info"]["inference_precision_hint"] == "bf16"
    assert rows["default"]["precision"] == "fp32"  # the plain OpenVINO row: the f32 hint
    assert rows["default"]["backend_info"]["inference_precision_hint"] == "f32"


def test_runtime_auto_precision_bf16_without_a_profile_says_what_runs(tiny, home, monkeypatch):
    monkeypatch.setattr(bf16, "host_native", lambda: (True, "native bf16 (amx_bf16)"))
    line = choice.resolve(tiny, "auto", "bf16").line()
    assert line == f"runtime: OpenVINO (asked: precision bf16, threads default, batch 1) for {tiny}"


def test_eval_opens_the_fp32_file_in_openvino_bf16_when_asked(tiny, home, monkeypatch):
    pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")
    from edgecnn.eval.run import open_engine

    monkeypatch.setattr(bf16, "host_native", lambda: (True, "native bf16 (amx_bf16)"))
    engine = open_engine(str(tiny), runtime="openvino", precision="bf16")
    assert engine.runtime == "openvino" and engine.describe()["inference_precision"] == "bf16"
    assert engine.session.config["INFERENCE_PRECISION_HINT"] == "bf16"
