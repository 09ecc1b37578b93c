"""The sweep on tiny ONNX models: every combination measured, a failing configuration reported while
the others go on, precisions made on the fly, the end-to-end split, floors, the row schema."""

from __future__ import annotations

import pytest
from PIL import Image

from edgecnn.bench import peak as peak_mod
from edgecnn.bench.config import Config, Sweep, parse_list
from edgecnn.bench.protocol import Bench, Protocol
from edgecnn.errors import UsageError
from tests import imagegen, onnx_models

FAST = Protocol(runs=6, warmup=1, block=3, settle_s=0)
ROW_KEYS = {"id", "target", "model", "target_kind", "backend", "provider", "mode", "precision", "speed_only", "batch",
            "threads", "input_size", "measure", "paced_fps", "status", "error", "device", "providers_used",
            "threads_used", "file", "file_bytes", "params", "macs", "cost_source", "session_s", "first_run_ms",
            "family", "pytorch_params", "params_note", "speedup",
            "warmup", "latency_ms", "throughput_ips", "noisy", "samples_ms", "stages_ms", "floor_ms", "efficiency",
            "accuracy",
            "rss_growth_bytes", "peak_rss_bytes", "device_tag", "environment"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    return {"dyn": onnx_models.classifier(d / "dyn.onnx"),
            "static": onnx_models.classifier(d / "static.onnx", batch=1, contract=False),
            "det": onnx_models.detector(d / "det.onnx")}


def test_sweep_is_every_combination_in_list_order():
    s = Sweep(["a.onnx", "b.onnx"], ["ort"], {"ort": ["cpu"]}, ["fp32", "int8"], [1, 8], [1, 2, 1])
    cfgs = s.configs()
    assert len(cfgs) == 2 * 2 * 2 * 2  # the repeated thread count is measured once
    assert cfgs[0] == Config("a.onnx", "ort", "cpu", "fp32", 1, 1)
    assert cfgs[-1] == Config("b.onnx", "ort", "cpu", "int8", 8, 2)
    assert len({c.key for c in cfgs}) == len(cfgs)
    assert Sweep(["a"], ["ort", "torch"], {"ort": ["cpu", "cuda"]}).configs()[-1].provider == "default"


def test_each_file_at_its_own_precision():
    own = {"m.onnx": "fp32", "m.int8.onnx": "int8", "zoo": "fp32"}.get
    cfgs = Sweep(["m.onnx", "m.int8.onnx", "zoo"]).configs(own)
    assert [(c.target, c.precision) for c in cfgs] == [("m.onnx", "fp32"), ("m.int8.onnx", "int8"), ("zoo", "fp32")]
    # precisions asked are made from FP32 files; a file stored at INT8 runs as it is
    cfgs = Sweep(["m.onnx", "m.int8.onnx"], precisions=["fp32", "fp16"]).configs(own)
    assert [(c.target, c.precision) for c in cfgs] == [("m.onnx", "fp32"), ("m.onnx", "fp16"), ("m.int8.onnx", "int8")]


def test_sweep_and_list_errors():
    with pytest.raises(UsageError, match=r"^--threads must be >= 1, got 0$"):
        Sweep(["a"], threads=[0])
    with pytest.raises(UsageError, match=r"^unknown --precision 'int4'; choose from: fp32, fp16, int8$"):
        Sweep(["a"], precisions=["int4"])
    with pytest.raises(UsageError, match=r"^--batch: 'x' is not valid"):
        parse_list("1,x", "--batch", int)


def test_failing_configuration_is_a_row_and_the_sweep_goes_on(files):
    b = Bench(Sweep([str(files["dyn"]), str(files["static"])], batches=[1, 2], threads=[1]), FAST)
    rows = b.run()
    assert [(r["model"], r["batch"], r["status"]) for r in rows] == [
        ("dyn", 1, "ok"), ("dyn", 2, "ok"), ("static", 1, "ok"), ("static", 2, "failed")]
    assert rows[3]["error"] == ("static.onnx has a static batch of 1 and cannot take 2; export it with a dynamic "
                                "batch (edgecnn export --batch dynamic)")
    for r in rows:
        assert set(r) == ROW_KEYS
    ok = rows[1]
    assert len(ok["samples_ms"]) == 6 and ok["latency_ms"]["n"] == 6
    assert ok["latency_ms"]["min"] <= ok["latency_ms"]["p50"] <= ok["latency_ms"]["p99"] <= ok["latency_ms"]["max"]
    assert ok["throughput_ips"] == pytest.approx(2e3 / ok["latency_ms"]["p50"])
    assert ok["device"] == "cpu" and ok["providers_used"] == ["CPUExecutionProvider"] and ok["threads_used"] == 1
    # GAP -> Gemm 3x4: 12 MACs, 12 weights + 4 biases, counted on the graph
    assert (ok["macs"], ok["params"], ok["cost_source"]) == (12, 16, "graph")
    assert ok["file_bytes"] == files["dyn"].stat().st_size and ok["session_s"] > 0 and ok["first_run_ms"] > 0
    assert (ok["pytorch_params"], ok["params_note"], ok["speedup"]) == (None, None, None)  # nothing to compare
    assert ok["environment"]["cpu"] and ok["device_tag"] == b.tag
    doc = b.document()
    assert doc["schema"] == "edgecnn.bench/1" and doc["rows"] is rows and doc["mode"] == "model_call"


def test_unavailable_provider_is_reported_in_its_row(files):
    rows = Bench(Sweep([str(files["dyn"])], providers={"ort": ["cpu", "tensorrt"]}), FAST).run()
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error"].startswith("provider 'tensorrt' (TensorrtExecutionProvider) is not available")


def test_precisions_made_on_the_fly(files):
    rows = Bench(Sweep([str(files["dyn"])], precisions=["fp32", "fp16", "int8"], threads=[1]), FAST).run()
    assert [r["status"] for r in rows] == ["ok"] * 3, [r["error"] for r in rows]
    fp32, fp16, int8 = rows
    assert fp32["file"] == str(files["dyn"]) and fp16["file"] is None and int8["file"] is None
    assert [r["speed_only"] for r in rows] == [False, False, True]
    assert fp16["macs"] == int8["macs"] == 12  # the same network, counted on each graph
    assert fp16["params"] == int8["params"] == fp32["params"] == 16
    assert fp32["speedup"] == 1.0 and int8["speedup"] == pytest.approx(fp32["latency_ms"]["p50"] /
                                                                       int8["latency_ms"]["p50"])


def test_end_to_end_split(files, tmp_path):
    from edgecnn.bench.e2e import find_images

    imagegen.save(Image.new("RGB", (80, 60), "white"), tmp_path / "imgs" / "a.png")
    imagegen.save(Image.new("RGB", (50, 70), "white"), tmp_path / "imgs" / "b.jpg")
    imagegen.text_as_jpeg(tmp_path / "imgs" / "bad.jpg")  # skipped
    images = find_images([tmp_path / "imgs"])
    assert [p.name for p in images] == ["a.png", "b.jpg"]
    b = Bench(Sweep([str(files["det"]), str(files["dyn"])], threads=[1]), FAST, images=images)
    rows = b.run()
    for r in rows:
        assert r["status"] == "ok", r["error"]
        st = r["stages_ms"]
        assert set(st) == {"decode", "preprocess", "inference", "postprocess", "total"}
        assert all(st[s]["n"] == 6 for s in st)
        parts = sum(st[s]["p50"] for s in ("decode", "preprocess", "inference", "postprocess"))
        assert parts <= st["total"]["max"] * 1.5 and st["inference"]["p50"] < st["total"]["p50"]
        assert r["measure"] == "end_to_end"
    assert b.document()["mode"] == "end_to_end"


def test_floor_and_efficiency_from_the_peak(files, monkeypatch):
    monkeypatch.setattr(peak_mod, "cached", lambda threads, path=None: {"fp32_gflops": 2.0, "int8_gops": 4.0})
    rows = Bench(Sweep([str(files["dyn"])], batches=[4], threads=[1]), FAST).run()
    r = rows[0]
    assert r["floor_ms"] == pytest.approx(2 * 12 * 4 / 2e9 * 1e3)  # 2 x MACs x batch / peak
    assert r["efficiency"] == pytest.approx(r["floor_ms"] / r["latency_ms"]["p50"])
    assert peak_mod.floor_ms(10, 1, "int8", {"fp32_gflops": 1.0, "int8_gops": 4.0}) == pytest.approx(2 * 10 / 4e9 * 1e3)


def test_peak_is_measured_and_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path))
    assert peak_mod.cached(1) is None
    p = peak_mod.measure_and_cache(1)
    assert p["fp32_gflops"] > 0.5 and p["int8_gops"] > 0.5
    assert peak_mod.cache_file().parent == tmp_path / "peak"
    assert peak_mod.cached(1) == p and peak_mod.cached(2) is None


def test_checkpoint_target_with_its_accuracy(tmp_path):
    torch = pytest.importorskip("torch")
    from edgecnn import registry
    from edgecnn.contract import Contract, Preprocess

    model = registry.build("lenet5", num_classes=3)
    contract = Contract("classify", "lenet5", Preprocess(32, 32, 1, "L", mean=(0.5,), std=(0.5,)),
                        labels=["a", "b", "c"], metrics={"val_top1": 0.75})  # as edgecnn train records it
    torch.save({"format": "edgecnn.checkpoint/1", "model": "lenet5", "epoch": 1,
                "config": {"num_classes": 3, "in_channels": 1, "input_size": 32}, "state_dict": model.state_dict(),
                "contract": contract.to_dict()}, tmp_path / "c.pt")
    (row,) = Bench(Sweep([str(tmp_path / "c.pt")], threads=[1]), FAST).run()
    assert row["status"] == "ok", row["error"]
    assert (row["model"], row["target_kind"], row["input_size"]) == ("lenet5", "checkpoint", [32, 32])
    # counted on the exported graph: the 3-class head, not the card's 10 classes
    assert row["cost_source"] == "graph" and row["params"] == sum(p.numel() for p in model.parameters())
    assert row["accuracy"] == {"top1": 0.75, "source": "val_top1"}


def test_a_busy_machine_does_not_lower_the_cached_peak(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path))
    figures = iter([{"fp32_gflops": 400.0, "int8_gops": 100.0, "measured": "t1"},
                    {"fp32_gflops": 200.0, "int8_gops": 300.0, "measured": "t2"}])
    monkeypatch.setattr(peak_mod, "measure", lambda threads: dict(next(figures)))
    peak_mod.measure_and_cache(2)
    p = peak_mod.measure_and_cache(2)
    assert (p["fp32_gflops"], p["int8_gops"], p["fp32_gflops_measured"]) == (400.0, 300.0, "t1")
    assert peak_mod.cached(2) == p
