"""The measurement protocol and the sweep runner. Torch-free (backends import their own frameworks).

Per configuration: the session is created (timed: ``session_s``), the first run is timed apart
(``first_run_ms``: allocations, kernel selection, lazy initialisation), ``warmup`` untimed calls
follow, then timed calls with ``time.perf_counter_ns`` around the model call only. Configurations
of one model family (a target, or a file with its INT8/FP16 file: ``Target.family``) are measured
together, interleaved in blocks (``timing.run_blocks``: a settle pause, two untimed calls, ``block``
timed calls, the order reshuffled every round) so that machine drift hits all alike, and each FP16/INT8
row gets its speed-up over the matching FP32 row; families are measured one after another, so only one
family's sessions are in memory.
A configuration that fails (missing provider, a static batch that cannot take the batch asked, a
failing conversion) becomes a row with ``status: "failed"`` and its one-line ``error``; the sweep
goes on.

The document (``Bench.document()``, the JSON file, ``--format json``)::

    {"schema": "edgecnn.bench/1", "created": ISO-8601 UTC, "device_tag": str, "environment": {...},
     "protocol": {warmup, runs, min_time_s, block, paced_fps, settle_s, seed, timer, interleaving},
     "mode": "model_call" | "end_to_end", "peak": {threads: {fp32_gflops, int8_gops, ...}} | null,
     "rows": [row, ...]}

A row (``base_row``; every key always present, null where it does not apply or the row failed)::

    id str (Config.key)   target str (as typed)   model str   target_kind "onnx"|"zoo"|"checkpoint"
    backend str   provider str (asked)   mode str   precision "fp32"|"fp16"|"int8" (a file's own: read from it)
    family str (rows of one family are compared)   speed_only bool (INT8 made here on random calibration)
    batch int   threads int|null (null: default)
    input_size [H, W]   measure "model_call"|"end_to_end"   paced_fps float|null
    status "ok"|"failed"   error str|null (one line)
    device "cpu"|"cuda"|...   providers_used [str]   threads_used int|null
    file str|null (the ONNX file when the target was that file)
    file_bytes int (.onnx + external data)   params int (of the file, as ``inspect`` counts; torch rows: the
    PyTorch model's)   macs int (per image)   cost_source "registry"|"graph" (of the MACs)
    pytorch_params int|null (zoo names, checkpoints)   params_note str|null (why the two counts differ)
    speedup float|null (FP32 p50 / this p50, within a family; 1.0 on the FP32 row compared)
    accuracy {top1, source}|null
    session_s float   first_run_ms float   warmup int
    latency_ms {min, p50, p90, p99, max, mean, std, cv, n}   throughput_ips float (batch / p50)   noisy bool
    samples_ms [float] (every timed call)
    stages_ms {decode, preprocess, inference, postprocess, total: {same keys as latency_ms}}|null
    floor_ms float|null   efficiency float|null (floor / p50 of the inference)
    rss_growth_bytes int|null   peak_rss_bytes int|null   device_tag str   environment {...}
    backend_info {...} (only when a backend adds facts)   stage_samples_ms {stage: [float]} (end to end only)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from edgecnn.bench import peak as peak_mod
from edgecnn.bench.backends import Artifact, Backend, get_backend
from edgecnn.bench.config import Config, Sweep
from edgecnn.bench.environment import capture, device_tag
from edgecnn.bench.stats import latency_figures, summarize
from edgecnn.bench.targets import Target, Workspace, accuracy_of, contract_of, input_spec, resolve
from edgecnn.bench.timing import run_blocks
from edgecnn.errors import EdgeCNNError, UsageError, first_line

DEFAULT_RUNS = 100
SCHEMA = "edgecnn.bench/1"


@dataclass
class Protocol:
    warmup: int = 10
    runs: int | None = None  # None with min_time_s None: DEFAULT_RUNS
    min_time_s: float | None = None
    block: int = 10
    paced_fps: float | None = None
    settle_s: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise UsageError(f"--warmup must be >= 0, got {self.warmup}")
        if self.runs is not None and self.runs < 1:
            raise UsageError(f"--runs must be >= 1, got {self.runs}")
        if self.min_time_s is not None and self.min_time_s <= 0:
            raise UsageError(f"--min-time must be > 0 seconds, got {self.min_time_s:g}")
        if self.runs is not None and self.min_time_s is not None:
            raise UsageError("give --runs or --min-time, not both")
        if self.paced_fps is not None and self.paced_fps <= 0:
            raise UsageError(f"--paced must be > 0 frames per second, got {self.paced_fps:g}")
        if self.block < 1:
            raise UsageError(f"block must be >= 1, got {self.block}")
        if self.runs is None and self.min_time_s is None:
            self.runs = DEFAULT_RUNS

    def to_dict(self) -> dict:
        return {**asdict(self), "timer": "time.perf_counter_ns around the model call",
                "interleaving": "blocks, round-robin, order reshuffled every round"}


@dataclass
class _Live:
    """A configuration being measured."""

    cfg: Config
    row: dict
    runner: object = None
    call: Callable[[], object] | None = None
    pipeline: object = None


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory so far (None where the OS does not say)."""
    try:
        import resource
    except ImportError:
        return None
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Bench:
    """Runs a sweep. ``images``: end-to-end mode on these files; ``peak``: "cached" (floors from the
    machine's cache where present), "measure" (measure the peak for each thread count now) or None.
    ``on_progress(fraction_done, text)`` is told as the work advances."""

    def __init__(self, sweep: Sweep, protocol: Protocol | None = None, *, images: list | None = None,
                 peak: str | None = "cached", on_progress: Callable[[float, str], None] | None = None,
                 environment: dict | None = None):
        self.sweep, self.protocol = sweep, protocol or Protocol()
        self.images, self.peak_mode, self.on_progress = images, peak, on_progress
        self.backends: dict[str, Backend] = {}
        for name in dict.fromkeys([*sweep.backends, *(c.backend for c in sweep.tuned)]):
            be = get_backend(name)
            be.check()
            self.backends[name] = be
        self.targets: dict[str, Target] = {t: resolve(t) for t in dict.fromkeys(
            [*sweep.targets, *(c.target for c in sweep.tuned)])}
        self.configs = [c if c.provider != "default" or not self.backends[c.backend].providers
                        else replace(c, provider=self.backends[c.backend].providers[0])
                        for c in sweep.configs(own_precision=lambda t: self.targets[t].precision)]
        for c in self.configs:
            be = self.backends[c.backend]
            if be.providers and c.provider not in be.providers:
                what = "--provider" if c.backend == "ort" else "--device"
                raise UsageError(f"{what} '{c.provider}' is not one of --runtime {c.backend}'s: "
                                 f"{', '.join(be.providers)}")
        self.environment = environment or capture()
        self.tag = device_tag(self.environment)
        self.peaks: dict = {}
        self.rows: list[dict] = []
        # called as hook(cfg, row, call) for every configuration measured OK, while its runner is still
        # loaded (``call()`` runs the model once, as timed): MLPerf scenarios and the like run here
        self.after_measure: list[Callable[[Config, dict, Callable[[], object]], None]] = []

    # ---- the sweep -----------------------------------------------------------------------------

    def run(self) -> list[dict]:
        self._peaks()
        groups: dict[str, list[Config]] = {}  # a model's variants (a file and its INT8 file) are measured together
        for c in self.configs:
            groups.setdefault(self.targets[c.target].family, []).extend(self.backends[c.backend].expand(c))
        total = sum(len(g) for g in groups.values())
        self._done, self._total = 0.0, max(total, 1)
        with Workspace() as ws:
            for cfgs in groups.values():
                self.rows.extend(self._measure_group(ws, cfgs))
        speedups(self.rows)
        return self.rows

    def document(self) -> dict:
        """The whole result: environment, protocol, peaks and every row (JSON-ready)."""
        return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "device_tag": self.tag, "environment": self.environment, "protocol": self.protocol.to_dict(),
                "mode": "end_to_end" if self.images else "model_call",
                "peak": {_thread_key(k): v for k, v in self.peaks.items()} or None, "rows": self.rows}

    def _peaks(self) -> None:
        if self.peak_mode is None:
            return
        for threads in dict.fromkeys(c.threads for c in self.configs):
            if self.peak_mode == "measure":
                self._tell(f"measuring this machine's peak (threads {_thread_key(threads)})")
                self.peaks[threads] = peak_mod.measure_and_cache(threads)
            else:  # onnxruntime's default is one thread per physical core: that peak serves "default" too
                found = peak_mod.cached(threads) or (peak_mod.cached(self.environment["physical_cores"])
                                                     if threads is None else None)
                if found:
                    self.peaks[threads] = found

    def _tell(self, text: str) -> None:
        if self.on_progress is not None:
            self.on_progress(self._done / self._total if getattr(self, "_total", 0) else 0.0, text)

    def _measure_group(self, ws: Workspace, cfgs: list[Config]) -> list[dict]:
        lives = [self._prepare(ws, self.targets[c.target], c) for c in cfgs]
        by_key = {lv.cfg.key: lv for lv in lives if lv.row["status"] == "ok"}
        p = self.protocol
        frac = {k: 0.0 for k in by_key}
        start = self._done + len(lives) - len(by_key)  # failed preparations count as done

        def on_block(key: str, n: int, spent_ns: int) -> None:
            frac[key] = min(1.0, n / p.runs if p.runs else spent_ns / (p.min_time_s * 1e9))
            self._done = start + sum(frac.values())
            lv = by_key[key]
            self._tell(f"{self.targets[lv.cfg.target].name} {lv.cfg.backend} {lv.cfg.precision} b{lv.cfg.batch}")

        if by_key:
            ns = run_blocks({k: lv.call for k, lv in by_key.items()}, runs=p.runs, min_time_s=p.min_time_s,
                            block=p.block, warmup=0 if self.images else 2, settle_s=p.settle_s,
                            period_s=1 / p.paced_fps if p.paced_fps else None, seed=p.seed,
                            on_error=lambda key, e: _fail(by_key[key].row, e), on_block=on_block)
            for key, samples in ns.items():
                if by_key[key].row["status"] == "ok":
                    self._finish(by_key[key], samples)
            for hook in self.after_measure:
                for lv in by_key.values():
                    if lv.row["status"] == "ok":
                        hook(lv.cfg, lv.row, lv.call)
        for lv in lives:
            if lv.runner is not None:
                lv.runner.close()
        self._done = start + len(by_key)
        return [lv.row for lv in lives]

    # ---- one configuration ---------------------------------------------------------------------

    def _prepare(self, ws: Workspace, target: Target, cfg: Config) -> _Live:
        row = base_row(cfg, target, self.environment, self.tag, self.protocol, bool(self.images))
        lv = _Live(cfg, row)
        self._tell(f"{target.name}: preparing {cfg.precision} b{cfg.batch}")
        try:
            path = ws.onnx(target, cfg.precision, cfg.input_size)
            shape, layout = input_spec(path, cfg.input_size)
            row["input_size"] = [shape[1], shape[2]]
            row["file"] = str(path) if target.kind == "onnx" and path == target.path else None
            row.update(ws.cost(target, path, (shape[1], shape[2])))
            art = Artifact(target, path, contract_of(path), shape, layout)
            row["accuracy"] = accuracy_of(art.contract)
            rss0 = rss_bytes()
            t0 = time.perf_counter_ns()
            lv.runner = runner = self.backends[cfg.backend].load(cfg, art)
            row["session_s"] = (time.perf_counter_ns() - t0) / 1e9
            # a backend that runs another form of the model (torch: the PyTorch model) says its params
            own = ("device", "providers_used", "threads_used", "params")
            row.update({k: v for k, v in runner.info.items() if k in own})
            extra = {k: v for k, v in runner.info.items() if k not in own}
            if extra:
                row["backend_info"] = extra
            if extra.get("inference_precision_hint") == "bf16":  # OpenVINO computes the FP32 file in bf16: say so
                row["precision"] = "bf16"
            if self.images:
                lv.call = self._pipeline(lv, art)
            else:
                x = runner.make_input(cfg.batch)
                lv.call = lambda r=runner, x=x: r(x)
            t0 = time.perf_counter_ns()
            lv.call()
            row["first_run_ms"] = (time.perf_counter_ns() - t0) / 1e6
            for _ in range(self.protocol.warmup):
                lv.call()
            if lv.pipeline is not None:
                lv.pipeline.reset()
            rss1 = rss_bytes()
            row["rss_growth_bytes"] = rss1 - rss0 if rss0 is not None and rss1 is not None else None
            row["peak_rss_bytes"] = peak_rss_bytes()
        except Exception as e:  # a failing configuration is a row, never the end of the sweep
            _fail(row, e)
        return lv

    def _pipeline(self, lv: _Live, art: Artifact):
        from edgecnn.bench.e2e import Pipeline
        from edgecnn.runtime.session import Engine

        engine = getattr(lv.runner, "engine", None)
        if engine is None:  # the runtime's contract handling for preprocessing and postprocessing
            engine = Engine(art.onnx_path, provider="cpu", size=lv.cfg.input_size)
        lv.pipeline = Pipeline(lv.runner, engine, self.images, lv.cfg.batch)
        return lv.pipeline

    def _finish(self, lv: _Live, samples_ns: list[int]) -> None:
        row, cfg = lv.row, lv.cfg
        samples = [t / 1e6 for t in samples_ns]
        row["samples_ms"] = samples
        row.update(latency_figures(samples, cfg.batch))
        infer_p50 = row["latency_ms"]["p50"]
        if lv.pipeline is not None:
            stages = {s: summarize([t / 1e6 for t in v]) for s, v in lv.pipeline.samples.items() if v}
            stages["total"] = row["latency_ms"]
            row["stages_ms"] = stages
            row["stage_samples_ms"] = {s: [t / 1e6 for t in v] for s, v in lv.pipeline.samples.items()}
            infer_p50 = stages["inference"]["p50"]
        pk = self.peaks.get(cfg.threads)
        if row.get("device") == "cpu" and pk:
            f = peak_mod.floor_ms(row.get("macs"), cfg.batch, cfg.precision, pk)
            row["floor_ms"] = f
            row["efficiency"] = f / infer_p50 if f and infer_p50 > 0 else None
        row["peak_rss_bytes"] = peak_rss_bytes()


def speedups(rows: list[dict]) -> None:
    """``speedup`` of each measured FP16/INT8 row: the p50 of the FP32 row of the same model family and the
    same configuration (backend, provider, mode, batch, threads, input size, host) over its own; that FP32
    row gets 1.0. Rows without such a pair keep None."""
    def key(r: dict) -> tuple:
        return (r["family"], r["backend"], r["provider"], r["mode"], r["batch"], r["threads"],
                tuple(r["input_size"] or ()), r["measure"], r.get("host"))

    ok = [r for r in rows if r["status"] == "ok" and r.get("latency_ms")]
    fp32 = {key(r): r for r in ok if r["precision"] == "fp32"}
    for r in ok:
        ref = fp32.get(key(r)) if r["precision"] != "fp32" else None
        if ref is not None:
            r["speedup"] = ref["latency_ms"]["p50"] / r["latency_ms"]["p50"]
            ref["speedup"] = 1.0


def _thread_key(threads: int | None) -> str:
    return str(threads) if threads is not None else "default"


def _fail(row: dict, e: BaseException) -> None:
    row["status"] = "failed"
    row["error"] = str(e) if isinstance(e, EdgeCNNError) else f"{type(e).__name__}: {first_line(e)}"


def base_row(cfg: Config, target: Target, env: dict, tag: str, protocol: Protocol, e2e: bool) -> dict:
    """A row before measurement: the configuration and every field with its empty value."""
    return {
        "id": cfg.key, "target": cfg.target, "model": target.name, "target_kind": target.kind,
        "backend": cfg.backend, "provider": cfg.provider, "mode": cfg.mode, "precision": cfg.precision,
        "family": target.family, "speed_only": cfg.precision == "int8" and target.precision != "int8",
        "batch": cfg.batch, "threads": cfg.threads, "input_size": list(cfg.input_size) if cfg.input_size else None,
        "measure": "end_to_end" if e2e else "model_call", "paced_fps": protocol.paced_fps,
        "status": "ok", "error": None,
        "device": None, "providers_used": None, "threads_used": None,
        "file": None, "file_bytes": None, "params": None, "macs": None, "cost_source": None,
        "pytorch_params": None, "params_note": None, "speedup": None,
        "session_s": None, "first_run_ms": None, "warmup": protocol.warmup,
        "latency_ms": None, "throughput_ips": None, "noisy": None, "samples_ms": [],
        "stages_ms": None, "floor_ms": None, "efficiency": None, "accuracy": None,
        "rss_growth_bytes": None, "peak_rss_bytes": None,
        "device_tag": tag, "environment": env,
    }
