"""edgecnn tune: measures configurations of a tiny file, records the winners where lookup() finds them,
prints the table it chose from; one-line errors for bad input; torch-free."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgecnn.bench import tune as tune_mod
from edgecnn.runtime import profile
from tests.conftest import run_cli
from tests.onnx_models import classifier


@pytest.fixture()
def tiny(tmp_path):
    return classifier(tmp_path / "tiny.onnx", size=32)


def _row(p50, *, runtime="ort", precision="fp32", threads=1, batch=1, **options):
    c = tune_mod.Candidate(runtime, precision, "m.onnx", threads, batch, **options)
    row = tune_mod._row(c, "1")
    row.update(latency_ms={"p50": p50, "p90": p50}, throughput_ips=batch * 1e3 / p50)
    return row


def test_pick_prefers_the_simpler_row_within_the_tie_and_the_faster_beyond_it():
    plain = _row(10.0)
    assert tune_mod.pick([plain, _row(9.9, spinning=False)], "latency") is plain  # 1% faster: noise
    faster = _row(9.0, spinning=False)
    assert tune_mod.pick([plain, faster], "latency") is faster  # 10% faster: kept
    assert tune_mod.pick([plain, _row(9.8, precision="int8")], "latency") is plain  # FP32 wins a tie
    assert tune_mod.pick([plain, _row(9.0, runtime="openvino")], "latency")["runtime"] == "openvino"
    big = _row(30.0, batch=4)  # 133 images/s against 100: throughput, never latency
    assert tune_mod.pick([plain, big], "throughput") is big
    assert tune_mod.pick([plain, big], "latency") is plain


def test_tune_writes_a_profile_that_lookup_returns(tiny, home):
    shutil.copy(tiny, tiny.with_name("tiny.int8.onnx"))  # a variant beside the file is measured as INT8
    result = tune_mod.tune(tiny, runtimes=["ort"], threads=[1], batches=[1, 2], runs=5, saved_model=False)
    stage1 = [r for r in result.rows if r["stage"] == "1"]
    assert {r["precision"] for r in stage1} == {"fp32", "int8"}
    assert all(r["status"] == "ok" for r in result.rows), [r["error"] for r in result.rows]
    assert {r["options"]["spinning"] for r in result.rows if r["stage"] == "2"} == {True, False}
    assert {r["batch"] for r in result.rows if r["stage"] == "3"} == {1, 2}
    latency = profile.lookup(tiny, "latency")
    assert latency is not None and latency["batch"] == 1 and latency["threads"] == 1
    assert latency["key"] == result.choices["latency"]["key"]
    assert profile.lookup(tiny, "throughput")["batch"] in (1, 2)
    doc = profile.load(tiny)
    assert len(doc["table"]) == len(result.rows)
    chosen = [r for r in doc["table"] if "latency" in r.get("chosen", [])]
    assert len(chosen) == 1 and chosen[0]["batch"] == 1


def test_saved_optimised_graph_is_cached_per_host_and_runs_the_same(tiny, home, monkeypatch):
    from edgecnn.runtime.session import Engine

    monkeypatch.setattr(tune_mod, "SAVED_PAYS", 1e9)  # kept whatever it saves: a tiny graph saves nothing
    monkeypatch.setattr(tune_mod, "SAVED_MIN_S", -1e9)
    saved = tune_mod.time_saved_model(tiny, 1, "all", repeats=1)
    assert saved["pays"] and saved["file_s"] > 0 and saved["saved_s"] > 0
    assert saved["path"] == str(tune_mod.saved_model_path(tiny, "all"))
    assert tune_mod.saved_model_path(tiny, "all").parent == home / "profiles" / profile.host_tag()
    kwargs = profile.engine_options({"threads": 2, "options": {"spinning": True, "affinity": True,
                                                               "graph_opt": "all", "optimized_model": saved["path"]}})
    assert kwargs == {"threads": 2, "spinning": True, "affinity": True, "graph_opt": "all",
                      "optimized_model": saved["path"]}
    x = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    plain = Engine(tiny, provider="cpu", threads=1).run(x)
    tuned = Engine(tiny, provider="cpu", **kwargs)
    assert tuned.contract.task == "classify"  # the contract came along in the saved graph
    for name, value in plain.items():
        np.testing.assert_allclose(tuned.run(x)[name], value, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(tune_mod, "SAVED_PAYS", 0.0)  # never pays: the cached graph is removed
    assert not tune_mod.time_saved_model(tiny, 1, "all", repeats=1)["pays"]
    assert not tune_mod.saved_model_path(tiny, "all").exists()
    assert "optimized_model" not in profile.engine_options({"options": {"optimized_model": saved["path"]}})


def test_cli_prints_the_table_with_the_host_and_the_winners(tiny, home, cli):
    res = cli("tune", str(tiny), "--runtime", "ort", "--threads", "1", "--batch", "1", "--budget", "1")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"tiny.onnx on {profile.host_tag()}" in out
    assert "p50 ms" in out and "<- latency" in out and "<- throughput" in out
    assert "no-spin" in out and "opt=basic" in out  # the options measured are rows of their own
    assert f"profile: {profile.profile_path(tiny)}" in out
    assert profile.lookup(tiny, "latency") is not None


@pytest.mark.parametrize("make, args, code, message", [
    (None, [], 1, "missing.onnx: no such file"),
    ("text", [], 1, "not an ONNX model"),
    ("onnx", ["--budget", "0"], 2, "--budget must be > 0 seconds"),
    ("onnx", ["--runtime", "tvm"], 2, "unknown --runtime 'tvm'"),
    ("onnx", ["--quick", "--budget", "5"], 2, "give --quick or --budget, not both"),
])
def test_bad_input_is_one_line(tmp_path, home, cli, make, args, code, message):
    path = tmp_path / "missing.onnx"
    if make == "text":
        path = tmp_path / "notes.onnx"
        path.write_text("not a model\n")
    elif make == "onnx":
        path = classifier(tmp_path / "m.onnx", size=32)
    res = cli("tune", str(path), *args)
    assert res.exit_code == code
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.stderr
    assert not (home / "profiles").exists()


def test_tune_is_torch_free(tiny, home):
    res = run_cli("tune", str(tiny), "--runtime", "ort", "--threads", "1", "--batch", "1", "--budget", "1",
                  "--format", "json", block_torch=True)
    assert res.returncode == 0, res.stderr
    assert profile.lookup(tiny, "latency") is not None


def test_calib_makes_the_int8_file_beside_and_quick_measures_it(tiny, home, cli, monkeypatch, tmp_path):
    from PIL import Image

    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(calib / f"{i}.png")
    monkeypatch.setattr(tune_mod, "QUICK_BUDGET_S", 1.0)  # --quick's 20 s, made short for a test
    res = cli("tune", str(tiny), "--calib", str(calib), "--quick", "--runtime", "ort", "--threads", "1",
              "--batch", "1", "--precision", "fp32,int8", "--format", "json")
    assert res.exit_code == 0, res.output
    int8 = tiny.with_name("tiny.int8.onnx")
    assert int8.is_file()  # made by quantize, where infer and the next tune find it
    import json

    doc = json.loads(res.stdout)
    assert {(r["precision"], r["path"]) for r in doc["rows"] if r["stage"] == "1"} == {
        ("fp32", str(tiny)), ("int8", str(int8))}
    assert "quantizing to tiny.int8.onnx" in res.stderr


def test_bench_runtime_auto_measures_the_tuned_choice_beside_the_plain_ones(tiny, home, cli):
    import json

    res = cli("tune", str(tiny), "--threads", "1", "--batch", "1", "--budget", "1")
    assert res.exit_code == 0, res.output
    chosen = profile.lookup(tiny, "latency")
    res = cli("bench", str(tiny), "--runtime", "ort,openvino,auto", "--threads", "2", "--runs", "5", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert {(r["backend"], r["threads"]) for r in rows if r["mode"] != "auto"} == {("ort", 2), ("openvino", 2)}
    auto = [r for r in rows if r["mode"] == "auto"]
    assert len(auto) == 1 and auto[0]["status"] == "ok"
    assert (auto[0]["backend"], auto[0]["threads"]) == (chosen["runtime"], chosen["threads"])
    assert f"(tuned profile: precision {chosen['precision']}, threads 1, batch 1)" in res.stderr


def test_int8_with_float_islands_is_made_by_quantize_islands_auto(tiny, home, tmp_path):
    from dataclasses import fields

    from edgecnn.quantize import QuantizeOptions

    if "islands" not in {f.name for f in fields(QuantizeOptions)}:
        result = tune_mod.tune(tiny, runtimes=["ort"], threads=[1], batches=[1], runs=3, calib=str(tmp_path),
                               precisions=["fp32", "int8-islands"], ort_options=False, saved_model=False)
        assert "INT8 with float islands not measured: this edgecnn's quantize cannot make it" in result.notes
        return
    calls = []
    import edgecnn.quantize as q

    real = q.quantize
    monkey = pytest.MonkeyPatch()
    monkey.setattr(q, "quantize", lambda opts: calls.append(opts) or real(opts))
    try:
        calib = tmp_path / "calib"
        calib.mkdir()
        rng = np.random.default_rng(0)
        from PIL import Image

        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(calib / f"{i}.png")
        result = tune_mod.tune(tiny, runtimes=["ort"], threads=[1], batches=[1], runs=3, calib=str(calib),
                               precisions=["fp32", "int8-islands"], ort_options=False, saved_model=False)
    finally:
        monkey.undo()
    assert [(c.islands, c.out) for c in calls] == [("auto", str(tiny.with_name("tiny.int8-islands.onnx")))]
    assert {r["precision"] for r in result.rows} == {"fp32", "int8-islands"}


def test_bench_runtime_auto_runs_with_the_options_the_profile_kept(tiny, home, cli, monkeypatch):
    import json

    from edgecnn.runtime import session

    options = {"spinning": False, "affinity": True, "graph_opt": "extended"}
    profile.save(tiny, {"latency": {"runtime": "ort", "precision": "fp32", "path": str(tiny), "threads": 2,
                                    "batch": 1, "options": options}}, [])
    seen = []
    real = session.Engine.__init__

    def spy(self, path, **kwargs):
        seen.append(kwargs)
        real(self, path, **kwargs)

    monkeypatch.setattr(session.Engine, "__init__", spy)
    res = cli("bench", str(tiny), "--runtime", "ort,auto", "--runs", "3", "--format", "json")
    assert res.exit_code == 0, res.output
    assert [r["mode"] for r in json.loads(res.stdout)["rows"]].count("auto") == 1
    tuned = [k for k in seen if k.get("threads") == 2]
    assert tuned and all({k: t[k] for k in options} == options for t in tuned)
    plain = [k for k in seen if k.get("threads") is None]
    assert plain and all(k["spinning"] is True and not k.get("affinity") for k in plain)
