"""MLPerf scenarios through LoadGen (extra [mlperf]). The system under test sleeps a known time per batch, so
what LoadGen must report is known independently of the model: a latency at least the sleep, a rate at
most batch / sleep. Runs are 0.3-0.6 s (LoadGen's own default is 10 s)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgecnn.bench import mlperf
from edgecnn.errors import MissingDependencyError, UsageError
from tests.conftest import run_python

SLEEP_S = 0.002


def _loadgen():
    return pytest.importorskip("mlperf_loadgen", reason="mlcommons-loadgen not installed (extra [mlperf])")


def _sleep():
    time.sleep(SLEEP_S)


def test_singlestream_p90_valid_and_logs_kept(tmp_path):
    _loadgen()
    r = mlperf.run_scenario(_sleep, "singlestream", tmp_path / "logs" / "ss", min_duration_s=0.5)
    assert r.valid and r.verdict == "VALID", r.invalid_reason
    assert r.metric == "p90 latency ms"
    # a sleep of 2 ms cannot answer faster; the upper bound only checks the unit (ms), as a loaded machine
    # can delay the wake-up by tens of milliseconds
    assert SLEEP_S * 1e3 <= r.value < 1000
    assert r.percentile_ms is not None and r.percentile_ms <= r.value + 1e-9  # early stopping only adds margin
    assert r.queries >= 64  # LoadGen's early stopping needs at least 64 queries for a p90
    assert not r.mlperf_duration  # 0.5 s is not MLPerf's 600 s
    logs = tmp_path / "logs"
    assert sorted(p.name for p in (logs / "ss").iterdir()) == sorted(mlperf.KEPT_LOGS)
    assert [p.name for p in logs.iterdir()] == ["ss"]  # the temporary folder was moved into place
    assert "Result is : VALID" in (logs / "ss" / "mlperf_log_summary.txt").read_text()


def test_offline_rate_is_bounded_by_batch_over_latency(tmp_path):
    _loadgen()
    r = mlperf.run_scenario(_sleep, "offline", tmp_path / "off", batch=4, min_duration_s=0.5)
    assert r.metric == "samples/s" and r.valid, r.invalid_reason
    assert 10 < r.value <= 4 / SLEEP_S  # at most 2000 samples/s (4 per 2 ms sleep); above 10: the unit


def test_multistream_needs_662_queries_for_its_p99(tmp_path):
    _loadgen()
    # 8 samples per query in one batch-8 call: ~150 queries in 0.3 s, under the 662 that the p99
    # early-stopping estimate needs, so LoadGen must call the run INVALID and say why
    r = mlperf.run_scenario(_sleep, "multistream", tmp_path / "ms", batch=8, min_duration_s=0.3, min_query_count=50)
    assert r.samples_per_query == mlperf.MULTISTREAM_SAMPLES == 8
    assert not r.valid and "early-stopping" in r.invalid_reason
    assert r.value >= SLEEP_S * 1e3 and r.metric == "p99 latency ms"


def test_multistream_batch_1_makes_eight_calls_per_query(tmp_path):
    _loadgen()
    calls = []
    r = mlperf.run_scenario(lambda: calls.append(1), "multistream", tmp_path / "ms1", batch=1,
                            expected_s=1e-4, min_duration_s=0.2, min_query_count=20)
    assert len(calls) == 8 * r.queries


def test_bad_scenarios_and_options():
    with pytest.raises(UsageError, match="unknown --scenario 'server'"):
        mlperf.check_scenario("server")
    with pytest.raises(UsageError, match="one sample per query; use --batch 1"):
        mlperf.check_scenario("SingleStream", batch=4)
    assert mlperf.check_scenario("Multi-Stream") == "multistream"


def test_failing_model_raises_and_leaves_no_logs(tmp_path):
    _loadgen()

    def boom():
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        mlperf.run_scenario(boom, "singlestream", tmp_path / "ss", expected_s=1e-3, min_duration_s=0.2)
    assert list(tmp_path.iterdir()) == []


def test_min_duration_must_be_positive(tmp_path):
    _loadgen()
    with pytest.raises(UsageError, match="--min-duration"):
        mlperf.run_scenario(_sleep, "offline", tmp_path / "x", min_duration_s=0)


def test_missing_loadgen_names_the_extra():
    code = ("import sys; sys.modules['mlperf_loadgen'] = None\n"
            "from edgecnn.bench import mlperf\n"
            "try:\n    mlperf.run_scenario(lambda: None, 'offline', 'unused')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    out = run_python(code, block_torch=True)  # and the module is torch-free
    assert out.returncode == 0, out.stderr
    assert MissingDependencyError.__name__ in out.stdout and 'pip install "edgecnn[mlperf]"' in out.stdout


def test_parse_detail_reads_mllog_records(tmp_path):
    log = tmp_path / "d.txt"
    log.write_text('junk\n:::MLLOG {"key": "result_validity", "value": "VALID"}\n'
                   ':::MLLOG {"key": "result_query_count", "value": 7}\n:::MLLOG {broken\n')
    assert mlperf.parse_detail(log) == {"result_validity": "VALID", "result_query_count": 7}


def test_cli_scenario_reports_loadgen_beside_ours(tmp_path, cli):
    _loadgen()
    import json

    from tests.onnx_models import classifier

    model = classifier(tmp_path / "c.onnx")
    out = tmp_path / "out"
    res = cli("bench", str(model), "--scenario", "offline", "--min-duration", "0.3", "--batch", "2", "--runs", "5",
              "--warmup", "1", "--out", str(out), "-f", "json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][0]
    m = row["mlperf"]
    assert m["scenario"] == "offline" and m["metric"] == "samples/s" and m["verdict"] in ("VALID", "INVALID")
    assert m["value"] > 0 and m["details"]["effective_min_duration_ms"] == 300
    assert sorted(p.name for p in Path(m["log_dir"]).iterdir()) == sorted(mlperf.KEPT_LOGS)
    assert Path(m["log_dir"]).parent == out / "mlperf"


def test_cli_bad_scenario_is_a_usage_error(tmp_path, cli):
    from tests.onnx_models import classifier

    model = str(classifier(tmp_path / "c.onnx"))
    res = cli("bench", model, "--scenario", "server", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "unknown --scenario 'server'" in res.output
    res = cli("bench", model, "--scenario", "singlestream", "--batch", "1,4", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "use --batch 1, not 4" in res.output
    assert not (tmp_path / "o").exists()  # nothing written before the error
