"""The bench report an engineer reads: every format carries min/max/std, peak RSS, the MLPerf result and the
command line; rows are labelled by what differs; speed-ups are against the chosen baseline row; the charts
follow the data (distribution from the samples, stage split only for end-to-end rows); peak floors say when
and under what load they were measured. Values come from a fake result set, each one distinct, so a figure
read from the wrong field or row shows."""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest

from edgecnn.bench import compare, report
from edgecnn.errors import UsageError
from edgecnn.tables import ms
from tests import onnx_models
from tests.conftest import run_cli

ENV = {"cpu": "Test CPU", "physical_cores": 2, "logical_cores": 4, "isa": ["avx2"], "os": "Linux", "python": "3.11",
       "onnxruntime": "1.0", "edgecnn": "0.1", "git_commit": None, "load_average": [0.5, 0.5, 0.5]}


def _row(i: int, model: str, precision: str, threads: int | None, p50: float, *, batch: int = 1,
         backend: str = "ort", samples: list[float] | None = None, stages: bool = False) -> dict:
    samples = samples or [p50 * f for f in (0.8, 0.9, 1.0, 1.0, 1.1, 1.5)]
    lat = {"min": p50 * 0.8 + 0.0011 * i, "p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.4,
           "max": p50 * 1.5 + 0.0013 * i, "mean": p50 * 1.05, "std": 0.0123 * (i + 1), "cv": 0.05, "n": 6}
    row = {"id": f"{model}|{backend}|cpu|{precision}|b{batch}|t{threads}|native", "target": model, "model": model,
           "family": model, "backend": backend, "provider": "cpu", "mode": "default", "precision": precision,
           "speed_only": False, "batch": batch, "threads": threads, "input_size": [32, 32], "measure": "model_call",
           "status": "ok", "error": None, "latency_ms": lat, "throughput_ips": batch * 1e3 / p50, "noisy": False,
           "samples_ms": samples, "stages_ms": None, "params": 1_234_567 * (i + 1), "macs": 5_000_000,
           "file_bytes": 4_000_000, "peak_rss_bytes": 100_000_000 + 11_110_000 * i, "speedup": None,
           "session_s": 0.1, "first_run_ms": 2.0, "device_tag": "test-tag", "environment": ENV}
    if stages:
        row["stages_ms"] = {s: {"p50": v} for s, v in (("decode", 1.0), ("preprocess", 2.0), ("inference", p50),
                                                        ("postprocess", 0.5))}
    return row


def _doc(rows: list[dict], **extra) -> dict:
    return {"schema": "edgecnn.bench/1", "created": "2026-01-01T00:00:00Z", "device_tag": "test-tag",
            "environment": ENV, "mode": "model_call", "peak": None, "rows": rows,
            "protocol": {"warmup": 1, "runs": 6, "min_time_s": None, "block": 3, "paced_fps": None}, **extra}


def _sweep() -> list[dict]:
    """Two models x fp32/int8 x threads 1/2, every p50 different."""
    return [_row(0, "net", "fp32", 1, 10.0), _row(1, "net", "int8", 1, 4.0), _row(2, "net", "fp32", 2, 8.0),
            _row(3, "net", "int8", 2, 5.0), _row(4, "big", "fp32", 1, 40.0), _row(5, "big", "int8", 1, 16.0)]


def test_every_format_has_min_max_std_peak_rss_mlperf_and_the_command():
    rows = _sweep()[:2]
    rows[1]["mlperf"] = {"scenario": "singlestream", "metric": "p90 latency ms", "value": 4.567, "valid": True,
                         "verdict": "VALID"}
    doc = report.prepare(_doc(rows), command="edgecnn bench net.onnx --precision fp32,int8")
    lat = rows[1]["latency_ms"]
    cells = [*(ms(lat[k]) for k in ("min", "max", "std")), "111.11MB", "SingleStream p90 4.57 ms VALID"]
    table = report.text_table(doc)
    head, _, _, line = table.splitlines()
    for h in ("min ms", "max ms", "std ms", "peak RSS", "MLPerf"):
        assert h in head
    assert all(f" {c} " in f" {line} " for c in cells), line
    md = report.to_markdown(doc)
    assert all(f"| {c} |" in md for c in cells)
    assert "- command: edgecnn bench net.onnx --precision fp32,int8" in md
    page = report.to_html(doc, None)
    assert all(f">{c}</td>" in page for c in cells)
    assert "edgecnn bench net.onnx --precision fp32,int8</div>" in page
    rec = list(csv.DictReader(io.StringIO(report.to_csv(doc))))[1]
    assert [float(rec[k]) for k in ("min_ms", "max_ms", "std_ms")] == [lat["min"], lat["max"], lat["std"]]
    assert (int(rec["peak_rss_bytes"]), rec["mlperf_scenario"], float(rec["mlperf_result"]), rec["mlperf_verdict"],
            rec["command"]) == (111_110_000, "singlestream", 4.567, "VALID", doc["command"])
    assert float(rec["vs_baseline"]) == pytest.approx(2.5) and rec["label"] == "net int8"
    # no scenario ran: no MLPerf column
    assert "MLPerf" not in report.text_table(report.prepare(_doc(_sweep()[:2])))


def test_labels_tell_distinct_configurations_apart():
    rows = _sweep()
    names = compare.labels(rows)
    assert len(set(names.values())) == len(rows)
    assert names[rows[3]["id"]] == "net int8 t2" and names[rows[4]["id"]] == "big fp32 t1"
    assert compare.common(rows) == "ort, cpu, b1, 32x32"
    # only what differs goes in: one model at two batch sizes
    two = [_row(0, "net", "fp32", 1, 10.0), _row(1, "net", "fp32", 1, 12.0, batch=4)]
    assert list(compare.labels(two).values()) == ["net b1", "net b4"]
    # fields that do not tell two rows apart: the ids do
    same = [_row(0, "net", "fp32", 1, 10.0), _row(1, "net", "fp32", 1, 12.0)]
    same[1]["id"] += "|again"
    assert list(compare.labels(same).values()) == [same[0]["id"], same[1]["id"]]


def _ratios(rows: list[dict], spec: str | None) -> dict:
    compare.apply(rows, compare.parse(spec))
    names = compare.labels(rows)
    return {names[r["id"]]: (round(r["vs_baseline"], 6) if r["vs_baseline"] else None,
                             names.get(r["baseline_id"])) for r in rows}


def test_speedup_is_against_the_chosen_baseline():
    # default: each row vs its model's FP32 onnxruntime row closest to it (INT8/FP32 at the same threads)
    assert _ratios(_sweep(), None) == {
        "net fp32 t1": (1.0, "net fp32 t1"), "net int8 t1": (2.5, "net fp32 t1"),
        "net fp32 t2": (1.0, "net fp32 t2"), "net int8 t2": (1.6, "net fp32 t2"),
        "big fp32 t1": (1.0, "big fp32 t1"), "big int8 t1": (2.5, "big fp32 t1")}
    # threads 2 over threads 1, like for like
    r = _ratios(_sweep(), "threads=1")
    assert r["net fp32 t2"] == (1.25, "net fp32 t1") and r["net int8 t2"] == (0.8, "net int8 t1")
    assert r["big int8 t1"] == (1.0, "big int8 t1")
    # across models when the model is named
    r = _ratios(_sweep(), "model=big,precision=fp32")
    assert r["net fp32 t1"] == (4.0, "big fp32 t1") and r["net int8 t2"] == (8.0, "big fp32 t1")
    # OpenVINO over onnxruntime
    rows = [_row(0, "net", "fp32", 1, 10.0), _row(1, "net", "fp32", 1, 8.0, backend="openvino")]
    assert _ratios(rows, "backend=ort")["net openvino"] == (1.25, "net ort")
    # a batch-8 row compares by images/s: 8 images in 40 ms vs 1 in 10 ms is 2x
    rows = [_row(0, "net", "fp32", 1, 10.0), _row(1, "net", "fp32", 1, 40.0, batch=8)]
    assert _ratios(rows, "batch=1")["net b8"] == (2.0, "net b1")
    # nothing matches: no speed-up (the default falls back to the model's first row)
    assert set(_ratios(_sweep(), "precision=fp16").values()) == {(None, None)}
    torch_only = [_row(0, "net", "fp32", 1, 10.0, backend="torch"), _row(1, "net", "fp32", 2, 5.0, backend="torch")]
    assert _ratios(torch_only, None)["net t2"] == (2.0, "net t1")
    # the fastest configuration of each model family (a file and its INT8 file are one family)
    rows = _sweep()
    rows[1]["model"] = "net.int8"
    assert {k: r["id"] for k, r in compare.fastest(rows).items()} == {"net": rows[1]["id"], "big": rows[5]["id"]}
    doc = report.prepare(_doc(_sweep()), baseline="threads=1")
    assert "vs base" in report.text_table(doc) and doc["baseline"] == "threads=1"
    assert any(line.startswith("vs base: ") and "threads=1" in line for line in report.footnotes(doc))


def test_a_bad_baseline_is_a_usage_error():
    for spec, message in (("fp32", "--baseline: 'fp32' is not FIELD=VALUE"), ("colour=red", "'colour=red' is not"),
                          ("threads=two", "--baseline: threads takes a number, got 'two'"), (" , ", "takes FIELD")):
        with pytest.raises(UsageError, match=message):
            compare.parse(spec)


def test_charts_follow_the_data():
    pytest.importorskip("matplotlib")
    from edgecnn.bench import plots

    doc = report.prepare(_doc(_sweep()))
    assert list(plots.charts(doc)) == ["speedup", "distribution", "params"]
    page = report.to_html(doc, plots.charts(doc))
    assert 'alt="Latency distribution"' in page and "Stage split" not in page
    e2e = [_row(0, "net", "fp32", 1, 10.0, stages=True), _row(1, "net", "int8", 1, 4.0, stages=True)]
    doc = report.prepare(_doc(e2e, mode="end_to_end"))
    charts = plots.charts(doc)
    assert list(charts) == ["speedup", "distribution", "stages"]  # one model: no latency vs size
    page = report.to_html(doc, charts)
    assert 'alt="Stage split (end to end)"' in page and page.count("data:image/png;base64,") == 3
    assert plots.png(doc)[:8] == b"\x89PNG\r\n\x1a\n"


def test_peak_floors_say_when_and_under_what_load():
    peak = {"1": {"fp32_gflops": 400.0, "int8_gops": 600.0, "measured": "2026-01-02T03:04:05Z",
                  "load_average": [1.75, 1.0, 1.0], "int8_gops_measured": "2025-12-01T00:00:00Z",
                  "int8_gops_load": [0.25, 0.1, 0.1]}}
    doc = report.prepare(_doc(_sweep()[:1], peak=peak))
    (line,) = [x for x in report.footnotes(doc) if x.startswith("floor = ")]
    assert ("FP32 400 GFLOP/s (measured 2026-01-02T03:04:05Z, load average 1.8)" in line
            and "INT8 600 GOP/s (measured 2025-12-01T00:00:00Z, load average 0.2)" in line), line
    old = copy.deepcopy(peak)
    del old["1"]["load_average"]
    doc = report.prepare(_doc(_sweep()[:1], peak=old))
    assert "load not recorded" in " ".join(report.footnotes(doc))


def test_peak_measurement_records_the_load(tmp_path, monkeypatch):
    from edgecnn.bench import peak as peak_mod

    monkeypatch.setattr(peak_mod, "M", 16)
    monkeypatch.setattr(peak_mod, "K", 32)
    monkeypatch.setattr(peak_mod, "N", 32)
    got = peak_mod.measure_and_cache(1, tmp_path / "peak.json")
    assert len(got["load_average"]) == 3 and got["measured"]


def test_a_real_run_records_peak_rss_and_its_command_line(tmp_path):
    model = onnx_models.classifier(tmp_path / "tiny.onnx", size=16)
    r = run_cli("bench", str(model), "--threads", "1,2", "--runs", "3", "--warmup", "0", "--format", "json",
                "--baseline", "threads=1", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert all(row["peak_rss_bytes"] > 0 for row in doc["rows"])
    assert doc["command"] == (f"edgecnn bench {model} --threads 1,2 --runs 3 --warmup 0 --format json "
                              f"--baseline threads=1 --out {tmp_path / 'o'}")
    assert [row["baseline_id"] for row in doc["rows"]] == [doc["rows"][0]["id"]] * 2
    r = run_cli("bench", str(model), "--baseline", "speed=1", "--out", str(tmp_path / "x"))
    assert (r.returncode, r.stderr.splitlines()) == (2, ["Error: --baseline: 'speed=1' is not FIELD=VALUE with "
                                                         "FIELD one of host, model, backend, where, precision, batch, "
                                                         "threads, input, measure (e.g. --baseline "
                                                         "precision=fp32,threads=1)"])
    assert not (tmp_path / "x").exists()
