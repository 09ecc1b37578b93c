"""MLPerf Inference scenarios through MLCommons' own load generator (``mlcommons-loadgen``, extra ``[mlperf]``).

LoadGen decides when each query is sent, times it, applies the rules (minimum duration and query count,
early-stopping percentile estimates) and writes its logs; we only run the model when asked. Torch-free.

- SingleStream: one sample per query, the next sent when the previous completes. Result: the
  early-stopping estimate of the 90th-percentile latency (what MLPerf's submission checker reads,
  ``early_stopping_latency_ss``), beside LoadGen's plain p90.
- MultiStream: 8 samples per query, one query at a time. Result: the early-stopping estimate of the
  99th-percentile per-query latency (``early_stopping_latency_ms``).
- Offline: all samples in one query, processed in batches. Result: samples per second.

MLPerf's edge rules (``mlperf.conf``) ask for 600 s per run; that is far too long for a CLI default, so
the default minimum here is LoadGen's own 10 s and a run records whether it met the 600 s rule.
LoadGen's verdict (VALID/INVALID: minimum duration, minimum queries, early stopping) is reported as is.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecnn.errors import EdgeCNNError, UsageError, require

SCENARIOS = ("singlestream", "multistream", "offline")
MLPERF_MIN_DURATION_S = 600.0  # mlperf.conf: *.<scenario>.min_duration = 600000 (ms) for every edge scenario
MULTISTREAM_SAMPLES = 8  # mlperf.conf: *.MultiStream.samples_per_query = 8
# Minimum query counts: mlperf.conf's MultiStream 662 (what its early stopping needs for a p99 estimate);
# elsewhere LoadGen's default of 100 (Offline counts samples: mlperf.conf asks 24,576 for resnet50).
MIN_QUERIES = {"singlestream": 100, "multistream": 662, "offline": 100}
_NAMES = {"singlestream": "SingleStream", "multistream": "MultiStream", "offline": "Offline"}
KEPT_LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")


@dataclass
class LoadGenResult:
    scenario: str  # singlestream | multistream | offline
    metric: str  # what the value is: "p90 latency ms", "p99 latency ms", "samples/s"
    value: float  # the MLPerf result (early-stopping estimate for the latency scenarios)
    valid: bool  # LoadGen's verdict
    percentile_ms: float | None  # LoadGen's plain percentile (p90 / p99) without early stopping
    invalid_reason: str = ""
    queries: int = 0
    samples_per_query: int = 1
    duration_s: float = 0.0
    min_duration_s: float = 0.0
    mlperf_duration: bool = False  # met MLPerf's 600 s minimum as well
    log_dir: str = ""
    details: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "VALID" if self.valid else "INVALID"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["verdict"] = self.verdict
        return d


def check_scenario(scenario: str, batch: int = 1) -> str:
    """The lower-case scenario name, or a usage error; SingleStream queries hold one sample."""
    s = scenario.lower().replace("-", "").replace("_", "")
    if s not in SCENARIOS:
        raise UsageError(f"unknown --scenario '{scenario}'; choose one of: {', '.join(SCENARIOS)}")
    if s == "singlestream" and batch != 1:
        raise UsageError(f"--scenario singlestream sends one sample per query; use --batch 1, not {batch}")
    return s


def parse_detail(path: str | Path) -> dict:
    """The ``:::MLLOG {json}`` records of a LoadGen detail log as {key: value} (the last value wins)."""
    out = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                rec = json.loads(line[len(":::MLLOG "):])
            except json.JSONDecodeError:
                continue
            out[rec.get("key")] = rec.get("value")
    return out


def _result(scenario: str, log: dict, log_dir: Path, min_duration_s: float, duration_s: float) -> LoadGenResult:
    ms = 1e-6
    if scenario == "offline":
        metric, value, pct = "samples/s", float(log.get("result_samples_per_second") or 0.0), None
    elif scenario == "multistream":
        pct = log.get("result_99.00_percentile_per_query_latency_ns")
        metric, value = "p99 latency ms", float(log.get("early_stopping_latency_ms") or pct or 0) * ms
    else:
        pct = log.get("result_90.00_percentile_latency_ns")
        metric, value = "p90 latency ms", float(log.get("early_stopping_latency_ss") or pct or 0) * ms
    keep = ("result_validity", "result_min_duration_met", "result_min_queries_met", "early_stopping_met",
            "result_query_count", "result_50.00_percentile_latency_ns", "result_90.00_percentile_latency_ns",
            "result_99.00_percentile_latency_ns", "result_mean_latency_ns", "result_samples_per_second",
            "early_stopping_latency_ss", "early_stopping_latency_ms", "effective_min_duration_ms",
            "effective_min_query_count", "effective_samples_per_query", "loadgen_version", "num_errors")
    return LoadGenResult(
        scenario=scenario, metric=metric, value=value, valid=log.get("result_validity") == "VALID",
        percentile_ms=float(pct) * ms if pct is not None else None,
        invalid_reason=_reason(log),
        queries=int(log.get("result_query_count") or 0),
        samples_per_query=int(log.get("effective_samples_per_query") or 1),
        duration_s=duration_s, min_duration_s=min_duration_s,
        mlperf_duration=min_duration_s >= MLPERF_MIN_DURATION_S and log.get("result_min_duration_met") is True,
        log_dir=str(log_dir), details={k: log[k] for k in keep if k in log})


def _reason(log: dict) -> str:
    """Why LoadGen called the run INVALID, from its flags (its own text is empty for some of them)."""
    parts = []
    if log.get("result_min_duration_met") is False:
        parts.append("minimum duration not met")
    if log.get("result_min_queries_met") is False:
        parts.append("minimum query count not met")
    if log.get("early_stopping_met") is False:
        parts.append("too few queries for LoadGen's early-stopping percentile estimate")
    text = str(log.get("result_invalid_reason") or "").strip()
    if text:
        parts.append(text.rstrip("."))
    return "; ".join(parts)


def run_scenario(run: Callable[[], object], scenario: str, log_dir: str | Path, *, batch: int = 1,
                 expected_s: float | None = None, min_duration_s: float = 10.0, min_query_count: int | None = None,
                 samples: int = 64) -> LoadGenResult:
    """Drive ``run`` (one call = one batch of ``batch`` samples through the model) under LoadGen.

    ``expected_s``: the measured latency of one ``run()`` call; LoadGen pre-generates its query schedule
    from it (measured here with a few calls when None). SingleStream and MultiStream tolerate an
    underestimate (the run stops at the minimum duration), so they get half of it; Offline sizes its one
    query from the expected rate, so it gets 1.5x the measured rate (a faster SUT would finish before the
    minimum duration and be INVALID). ``log_dir``: LoadGen's summary and detail logs end up there,
    written in a temporary folder and moved into place when the run is complete.
    """
    lg = require("mlperf_loadgen", "mlperf", f"--scenario {scenario}")
    scenario = check_scenario(scenario, batch)
    if min_duration_s <= 0:
        raise UsageError(f"--min-duration must be > 0 seconds, got {min_duration_s}")
    if min_query_count is not None and min_query_count < 1:
        raise UsageError(f"the minimum query count must be >= 1, got {min_query_count}")
    if expected_s is None:
        run()  # first call apart: allocations, lazy initialisation
        t0 = time.perf_counter()
        for _ in range(3):
            run()
        expected_s = (time.perf_counter() - t0) / 3
    expected_s = max(expected_s, 1e-6)

    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, _NAMES[scenario])
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(min_duration_s * 1000)
    settings.min_query_count = MIN_QUERIES[scenario] if min_query_count is None else min_query_count
    if scenario == "singlestream":
        settings.single_stream_expected_latency_ns = int(expected_s * 0.5e9)
    elif scenario == "multistream":
        settings.multi_stream_samples_per_query = MULTISTREAM_SAMPLES
        calls = math.ceil(MULTISTREAM_SAMPLES / batch)
        settings.multi_stream_expected_latency_ns = int(calls * expected_s * 0.5e9)
    else:
        settings.offline_expected_qps = 1.5 * batch / expected_s

    failed: list[BaseException] = []

    def issue_query(query_samples) -> None:
        # one query at a time (max_async_queries = 1); Offline sends one query holding every sample.
        # An exception must not escape into LoadGen's C++ thread: keep it, answer the rest at once, raise later.
        try:
            for _ in range(0 if failed else math.ceil(len(query_samples) / batch)):
                run()
        except Exception as e:  # noqa: BLE001 - re-raised after the test
            failed.append(e)
        lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in query_samples])

    final = Path(log_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(tmp)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # the trace is tens of MB and only for Chrome's timeline view
    sut = lg.ConstructSUT(issue_query, lambda: None)
    qsl = lg.ConstructQSL(samples, samples, lambda idx: None, lambda idx: None)
    try:
        t0 = time.perf_counter()
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
        duration = time.perf_counter() - t0
        if failed:
            raise failed[0]
        for name in os.listdir(tmp):
            if name not in KEPT_LOGS:
                (tmp / name).unlink()
        log = parse_detail(tmp / "mlperf_log_detail.txt")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _result(scenario, log, final, min_duration_s, duration)


def bench_hook(scenario: str, out_dir: str | Path, min_duration_s: float = 10.0):
    """A ``Bench.after_measure`` hook: runs ``scenario`` under LoadGen on each configuration measured OK and
    puts the result in ``row["mlperf"]`` (LoadGen's logs under ``<out_dir>/mlperf/<row id>-<scenario>/``).
    Its expected latency is the row's own p50. A configuration LoadGen cannot run gets ``{"error": ...}``."""
    require("mlperf_loadgen", "mlperf", f"--scenario {scenario}")
    scenario = check_scenario(scenario)

    def hook(cfg, row: dict, call: Callable[[], object]) -> None:
        parts = row["id"].split("|")
        parts[0] = row.get("model") or parts[0]  # the model's name, not the path it was given as
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in "-".join(parts)).strip("_")
        try:
            check_scenario(scenario, cfg.batch)
            res = run_scenario(call, scenario, Path(out_dir) / "mlperf" / f"{safe}-{scenario}", batch=cfg.batch,
                               expected_s=row["latency_ms"]["p50"] / 1e3, min_duration_s=min_duration_s)
            row["mlperf"] = res.to_dict()
        except EdgeCNNError as e:
            row["mlperf"] = {"scenario": scenario, "error": str(e)}

    return hook


def summary_line(row: dict) -> str | None:
    """One line for the terminal: LoadGen's result beside ours, or why it did not run."""
    m = row.get("mlperf")
    if not m:
        return None
    if "error" in m:
        return f"{row['id']}: MLPerf {m['scenario']}: {m['error']}"
    name = _NAMES[m["scenario"]]
    lat = row.get("latency_ms") or {}
    if m["scenario"] == "offline":
        ours = f"ours {row['throughput_ips']:.1f} img/s at batch {row['batch']}" if row.get("throughput_ips") else ""
        figure = f"{m['value']:.1f} samples/s"
    else:
        pct = "p90" if m["scenario"] == "singlestream" else "p99"
        ours = f"ours {pct} {lat[pct]:.2f} ms per call" if pct in lat else ""
        figure = f"{m['metric'].split()[0]} {m['value']:.2f} ms"
    reason = f" ({m['invalid_reason']})" if not m["valid"] and m["invalid_reason"] else ""
    return (f"{row['id']}: MLPerf {name} (LoadGen, {m['queries']} queries, {m['duration_s']:.0f} s): {figure} "
            f"{m['verdict']}{reason}; {ours}; logs {m['log_dir']}")
