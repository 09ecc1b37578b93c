"""``edgecnn tune FILE``: measure on this host the configurations that matter for one ONNX file and record
the fastest per objective in its device profile (``edgecnn.runtime.profile``). Torch-free.

Measured with the bench protocol's core (``timing.run_blocks``: interleaved blocks, a settle pause, untimed
calls, the order reshuffled every round; session creation and the first run timed apart), in three stages,
each interleaving its rows and re-measuring the previous stage's winner beside the new candidates:

1. **runtime x precision x threads** at batch 1, default options: onnxruntime (and OpenVINO where the
   ``[openvino]`` extra is installed) x FP32 / INT8 / INT8 with float islands (files beside the input,
   ``m.int8.onnx`` and ``m.int8-islands.onnx``, or made with ``--calib DIR``; the islands file by ``quantize
   --islands auto``) x 1..physical cores threads; and bf16, OpenVINO's bf16 inference precision on the FP32
   file, only on a CPU with native bf16 (AVX512_BF16 / AMX) and only once its answers passed the accuracy
   check against FP32 (``edgecnn.bf16``; a failed check is a "rejected" row saying why).
2. **onnxruntime session options** on the best onnxruntime row: intra-op spinning off, pool threads pinned
   to cores, graph optimisation level "extended" / "basic" instead of "all", one at a time.
3. **batch** (throughput; only where the file's batch is dynamic): the two best configurations at larger
   batches.

The winner of an objective ("latency": p50 at batch 1, "throughput": images/s) is the fastest row, except
that a row within ``TIE`` of it that is simpler (FP32, default options, fewer threads, onnxruntime) wins:
differences that small are noise on a shared machine, and each option kept must move the needle.
For an onnxruntime winner, session creation is also timed from onnxruntime's saved optimised graph
(host-specific, cached beside the profile); the choice names that file when it pays (``SAVED_PAYS``,
``SAVED_MIN_S``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgecnn.bench.stats import latency_figures
from edgecnn.bench.timing import run_blocks
from edgecnn.errors import EdgeCNNError, MissingFileError, UsageError, first_line

OBJECTIVES = ("latency", "throughput")
RUNTIMES = ("ort", "openvino")
PRECISIONS = ("fp32", "int8", "int8-islands", "bf16")
NAMES = {"fp32": "FP32", "int8": "INT8", "int8-islands": "INT8 with float islands", "bf16": "bf16"}
# the ``QuantizeOptions`` that make each precision's file (``runtime.profile.variant_path``) from ``--calib``:
# "int8-islands" keeps in float the blocks that are slower in INT8 on this host (``quantize --islands auto``)
PRECISION_QUANTIZE: dict[str, dict] = {"int8": {}, "int8-islands": {"islands": "auto"}}
ORT_DEFAULTS = {"spinning": True, "affinity": False, "graph_opt": "all"}
# stage 2: one option changed at a time from the best onnxruntime row
ORT_VARIANTS = ({"spinning": False}, {"affinity": True}, {"graph_opt": "extended"}, {"graph_opt": "basic"})
BATCHES = (1, 4, 8)
TIE = 0.03  # rows within 3% of the fastest are a tie: the simpler one wins
SAVED_PAYS = 0.8  # the saved optimised graph is used when it creates the session in <= 80% of the time
SAVED_MIN_S = 0.005  # ... and saves at least 5 ms (below that a cached file is not worth keeping)
DEFAULT_BUDGET_S = 60.0
QUICK_BUDGET_S = 20.0


class TuneError(EdgeCNNError):
    """A file that cannot be tuned."""


@dataclass(frozen=True)
class Candidate:
    """One configuration: ``options`` are onnxruntime's (empty for OpenVINO)."""

    runtime: str
    precision: str
    path: str
    threads: int
    batch: int = 1
    spinning: bool = True
    affinity: bool = False
    graph_opt: str = "all"

    @property
    def options(self) -> dict:
        if self.runtime != "ort":
            from edgecnn.runtime.profile import HINTED

            return dict(HINTED[self.precision][1]) if self.precision in HINTED else {}
        return {"spinning": self.spinning, "affinity": self.affinity, "graph_opt": self.graph_opt}

    @property
    def changed(self) -> list[str]:
        """The options that differ from onnxruntime's defaults, as the table shows them."""
        out = []
        for k, v in self.options.items():
            if k in ORT_DEFAULTS and v != ORT_DEFAULTS[k]:
                out.append({"spinning": "no-spin", "affinity": "pinned"}.get(k, f"opt={v}"))
        return out

    @property
    def key(self) -> str:
        return " ".join([self.runtime, self.precision, f"t{self.threads}", f"b{self.batch}", *self.changed])

    def simplicity(self) -> tuple:
        """Smaller is simpler: the tie-break among rows within ``TIE``."""
        return (self.precision != "fp32", len(self.changed), self.threads, self.runtime != "ort", self.batch)


@dataclass
class TuneResult:
    path: Path
    host: str
    rows: list[dict]
    choices: dict[str, dict]
    notes: list[str] = field(default_factory=list)
    profile: Path | None = None
    saved_model: dict | None = None  # session creation with/without onnxruntime's saved optimised graph
    checks: dict[str, dict] = field(default_factory=dict)  # precision -> its accuracy check (bf16: edgecnn.bf16)

    def to_dict(self) -> dict:
        return {"file": str(self.path), "host": self.host, "profile": str(self.profile) if self.profile else None,
                "choices": self.choices, "saved_model": self.saved_model, "checks": self.checks,
                "notes": self.notes, "rows": self.rows}


# ---- the file and its precisions ---------------------------------------------------------------------


def check_file(path: str | Path) -> Path:
    """An existing ONNX image model (one-line errors otherwise)."""
    from edgecnn.bench.targets import BenchError, check_onnx

    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{path}: no such file; give an ONNX file (edgecnn export NAME makes one)")
    if p.is_dir():
        raise TuneError(f"{path} is a folder; give an ONNX file")
    try:
        check_onnx(p)
    except BenchError as e:
        raise TuneError(str(e)) from None
    return p


def precision_files(path: Path, precisions: list[str], calib: str | None, tell: Callable[[str], None]) -> dict:
    """precision -> file: the input at its own precision; an INT8 variant beside it (``<stem>.int8.onnx``),
    made with ``edgecnn quantize`` from ``calib`` when absent. A precision that has no file is left out
    with a note."""
    from edgecnn.bench.targets import precision_of

    own = precision_of(path)
    files = {own: path}
    if own != "fp32":
        return files  # nothing is made from an INT8/FP16 file
    from edgecnn.runtime.profile import PRECISION_SUFFIX, variant_path

    for precision in precisions:
        if precision == "fp32" or precision not in PRECISION_SUFFIX:
            continue
        beside = variant_path(path, precision)
        if beside.is_file():
            files[precision] = beside
            if _float_kept(beside):
                tell(f"{beside.name} is the FP32 graph (INT8 did not pay when it was quantized on its host): "
                     "its row times FP32 again")
        elif calib is not None:
            from edgecnn.quantize import QuantizeOptions, quantize

            if not _quantize_takes(PRECISION_QUANTIZE[precision]):
                continue  # this edgecnn's quantize cannot make it (the note says so)
            tell(f"quantizing to {beside.name} (calibration: {calib})")
            quantize(QuantizeOptions(model=str(path), calib=calib, out=str(beside), bench=False,
                                     **PRECISION_QUANTIZE[precision]))
            files[precision] = beside
    return files


def _float_kept(path: Path) -> bool:
    """Whether ``quantize --islands auto`` wrote the FP32 graph to ``path`` (no INT8 variant paid there)."""
    from edgecnn.contract import read

    try:
        contract = read(str(path))
    except Exception:  # an unreadable file fails where it is timed, with its own message
        return False
    islands = ((contract.quantization or {}).get("islands") or {}) if contract is not None else {}
    return islands.get("kept") == "fp32"


def _quantize_takes(options: dict) -> bool:
    from dataclasses import fields

    from edgecnn.quantize import QuantizeOptions

    return set(options) <= {f.name for f in fields(QuantizeOptions)}


def dynamic_batch(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    dim = inp.type.tensor_type.shape.dim[0]
    return not dim.HasField("dim_value") or dim.dim_value <= 0


# ---- running one candidate -----------------------------------------------------------------------------


@dataclass
class _Loaded:
    cand: Candidate
    call: Callable[[], object]
    session_s: float
    first_run_ms: float
    close: Callable[[], None]


def _load(c: Candidate, shape: tuple[int, int, int], layout: str, warmup: int) -> _Loaded:
    t0 = time.perf_counter()
    if c.runtime == "ort":
        import onnxruntime as ort

        from edgecnn.bench.backends import random_input
        from edgecnn.runtime.session import session_options

        opts = session_options(c.threads, c.graph_opt, c.spinning, c.affinity)
        sess = ort.InferenceSession(c.path, opts, providers=["CPUExecutionProvider"])
        session_s = time.perf_counter() - t0
        feed = {sess.get_inputs()[0].name: random_input(c.batch, shape, layout)}
        call = lambda: sess.run(None, feed)  # noqa: E731
        close = lambda: None  # noqa: E731
    elif c.runtime == "openvino":
        from edgecnn.bench.backend_openvino import compile_file

        runner = compile_file(c.path, batch=c.batch, threads=c.threads, size=shape[1:], layout=layout,
                              inference_precision=c.options.get("inference_precision", "f32"))
        session_s = time.perf_counter() - t0
        x = runner.make_input(c.batch)
        call = lambda: runner(x)  # noqa: E731
        close = runner.close
    else:
        raise UsageError(f"unknown runtime '{c.runtime}'; choose from: {', '.join(RUNTIMES)}")
    t0 = time.perf_counter()
    call()
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(warmup):
        call()
    return _Loaded(c, call, session_s, first_ms, close)


def _row(c: Candidate, stage: str) -> dict:
    return {"key": c.key, "stage": stage, "runtime": c.runtime, "precision": c.precision, "path": c.path,
            "threads": c.threads, "batch": c.batch, "options": c.options, "status": "ok", "error": None,
            "session_s": None, "first_run_ms": None, "latency_ms": None, "throughput_ips": None, "noisy": None}


def measure(cands: list[Candidate], stage: str, shape, layout, *, runs: int | None, min_time_s: float | None,
            warmup: int = 3, seed: int = 0) -> list[dict]:
    """Rows of ``cands``, interleaved in blocks; a candidate that fails is a row with its one-line error."""
    rows = {c.key: _row(c, stage) for c in cands}
    loaded: dict[str, _Loaded] = {}
    try:
        for c in cands:
            try:
                lv = _load(c, shape, layout, warmup)
            except Exception as e:  # a configuration that cannot run is a row, not the end of tuning
                _fail(rows[c.key], e)
                continue
            loaded[c.key] = lv
            rows[c.key].update(session_s=lv.session_s, first_run_ms=lv.first_run_ms)
        if loaded:
            ns = run_blocks({k: lv.call for k, lv in loaded.items()}, runs=runs, min_time_s=min_time_s,
                            block=5, warmup=2, seed=seed, on_error=lambda k, e: _fail(rows[k], e))
            for k, samples in ns.items():
                if rows[k]["status"] == "ok" and samples:
                    rows[k].update(latency_figures([t / 1e6 for t in samples], loaded[k].cand.batch))
    finally:
        for lv in loaded.values():
            lv.close()
    return list(rows.values())


def rejected(c: Candidate, stage: str, why: str) -> dict:
    """The row of a precision that was not measured because its accuracy check failed: ``why`` in one line."""
    return {**_row(c, stage), "status": "rejected", "error": why}


def _fail(row: dict, e: BaseException) -> None:
    row["status"] = "failed"
    row["error"] = str(e) if isinstance(e, EdgeCNNError) else f"{type(e).__name__}: {first_line(e)}"


def _cand(row: dict) -> Candidate:
    return Candidate(row["runtime"], row["precision"], row["path"], row["threads"], row["batch"],
                     **{k: v for k, v in row["options"].items() if k in ORT_DEFAULTS})


def pick(rows: list[dict], objective: str) -> dict | None:
    """The winning row for ``objective``: the fastest, or a simpler row within ``TIE`` of it."""
    ok = [r for r in rows if r["status"] == "ok" and r["latency_ms"]]
    if objective == "latency":
        ok = [r for r in ok if r["batch"] == 1]
        score = lambda r: r["latency_ms"]["p50"]  # noqa: E731
    else:
        score = lambda r: 1.0 / r["throughput_ips"]  # noqa: E731
    if not ok:
        return None
    best = min(score(r) for r in ok)
    close = [r for r in ok if score(r) <= best * (1 + TIE)]
    return min(close, key=lambda r: (_cand(r).simplicity(), score(r)))


# ---- onnxruntime's saved optimised graph ---------------------------------------------------------------


def saved_model_path(path: Path, graph_opt: str, host: str | None = None) -> Path:
    """Where the optimised graph of ``path`` at ``graph_opt`` is cached for this host and onnxruntime version
    (level "all" writes layout-transformed kernels for this CPU: never share it across hosts)."""
    import onnxruntime as ort

    from edgecnn.runtime.profile import profile_path

    prof = profile_path(path, host)
    return prof.with_name(f"{prof.stem}.ort{ort.__version__}.{graph_opt}.onnx")


def time_saved_model(path: Path, threads: int, graph_opt: str, repeats: int = 5) -> dict:
    """Session creation from the file and from its saved optimised graph (cached on first use), interleaved
    ``repeats`` times: medians in seconds and whether the saved graph pays."""
    import onnxruntime as ort

    from edgecnn.fileio import atomic_path
    from edgecnn.runtime.session import session_options

    saved = saved_model_path(path, graph_opt)
    if not saved.is_file():
        with atomic_path(saved) as tmp:
            ort.InferenceSession(str(path), session_options(threads, graph_opt, optimized_out=tmp),
                                 providers=["CPUExecutionProvider"])
    times: dict[str, list[float]] = {"file_s": [], "saved_s": []}
    for _ in range(repeats):
        for key, src, level in (("file_s", path, graph_opt), ("saved_s", saved, "disable")):
            t0 = time.perf_counter()
            ort.InferenceSession(str(src), session_options(threads, level), providers=["CPUExecutionProvider"])
            times[key].append(time.perf_counter() - t0)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["pays"] = out["saved_s"] <= SAVED_PAYS * out["file_s"] and out["file_s"] - out["saved_s"] >= SAVED_MIN_S
    out["path"] = str(saved)
    if not out["pays"]:
        saved.unlink(missing_ok=True)
    return out


# ---- the whole run -------------------------------------------------------------------------------------


def tune(model: str | Path, *, runtimes: list[str] | None = None, precisions: list[str] | None = None,
         threads: list[int] | None = None, batches: list[int] | None = None, calib: str | None = None,
         budget_s: float | None = None, runs: int | None = None, ort_options: bool = True,
         saved_model: bool = True, save: bool = True,
         on_progress: Callable[[str], None] | None = None, bf16_native: tuple[bool, str] | None = None,
         bf16_check: Callable[..., dict] | None = None) -> TuneResult:
    """Measure, pick and (``save``) record. ``runs``: a fixed number of timed calls per row (tests) instead
    of the time ``budget_s`` spread over the rows. ``runtimes`` default: onnxruntime, and OpenVINO where
    installed; ``threads``: 1..physical cores; ``batches``: ``BATCHES`` where the batch is dynamic.
    bf16 (OpenVINO on the FP32 file) is measured only where the CPU has native bf16 (``bf16_native``: this
    host's by default, ``edgecnn.bf16.host_native``) and its accuracy check passes (``bf16_check``, default
    ``edgecnn.bf16.check``, on ``calib``'s images or deterministic ones); a failed check is a "rejected" row."""
    from edgecnn.bench.backend_openvino import available as openvino_available
    from edgecnn.bench.targets import input_spec
    from edgecnn.runtime import profile
    from edgecnn.threads import physical_cores

    tell = on_progress or (lambda text: None)
    path = check_file(model).resolve()
    notes: list[str] = []
    if budget_s is not None and budget_s <= 0:
        raise UsageError(f"--budget must be > 0 seconds, got {budget_s:g}")
    for name, values, allowed in (("--runtime", runtimes, RUNTIMES), ("--precision", precisions, PRECISIONS)):
        for v in values or []:
            if v not in allowed:
                raise UsageError(f"unknown {name} '{v}'; choose from: {', '.join(allowed)}")
    for name, values in (("--threads", threads), ("--batch", batches)):
        for v in values or []:
            if v < 1:
                raise UsageError(f"{name} must be >= 1, got {v}")
    if runtimes is None:
        runtimes = ["ort", "openvino"] if openvino_available() else ["ort"]
        if "openvino" not in runtimes:
            notes.append("OpenVINO not measured: install the extra with pip install 'edgecnn[openvino]'")
    elif "openvino" in runtimes and not openvino_available():
        from edgecnn.errors import require

        require("openvino", "openvino", "edgecnn tune --runtime openvino")
    threads = threads or list(range(1, physical_cores() + 1))
    shape, layout = input_spec(path, None)
    files = precision_files(path, precisions or list(PRECISIONS), calib, tell)
    for p in precisions or list(PRECISIONS):
        if p in files or p not in profile.PRECISION_SUFFIX or "fp32" not in files:
            continue
        if not _quantize_takes(PRECISION_QUANTIZE[p]):
            notes.append(f"{NAMES[p]} not measured: this edgecnn's quantize cannot make it")
        else:
            notes.append(f"{NAMES[p]} not measured: no {profile.variant_path(path, p).name} beside the file; "
                         "give --calib DIR to make it")
    checks: dict[str, dict] = {}
    refused: list[dict] = []
    if "fp32" in files and "bf16" in (precisions or PRECISIONS):
        why = _bf16_offer(files["fp32"], runtimes, calib, bf16_native, bf16_check, checks, tell)
        if why is None:
            files["bf16"] = files["fp32"]
        elif "bf16" in checks:  # measured and rejected: a row of the table, with why
            refused = [rejected(Candidate("openvino", "bf16", str(files["fp32"]), t), "1", why) for t in threads]
        elif precisions or "openvino" in runtimes:
            notes.append(f"bf16 not measured: {why}")
    if precisions:
        files = {p: f for p, f in files.items() if p in precisions} or files
    if batches is None:
        batches = list(BATCHES) if dynamic_batch(path) else [1]
    elif any(b > 1 for b in batches) and not dynamic_batch(path):
        raise UsageError(f"{path.name} has a static batch; --batch takes 1 only (export with a dynamic batch)")
    if 1 not in batches:
        batches = [1, *batches]

    stage1 = [Candidate(rt, p, str(f), t) for rt in runtimes for p, f in files.items() for t in threads
              if p not in profile.HINTED or profile.HINTED[p][0] == rt]
    n_ort = 1 + len(ORT_VARIANTS) if ort_options and "ort" in runtimes else 0
    n_batch = 2 * (len(batches) - 1) + 1 if len(batches) > 1 else 0
    n_rows = len(stage1) + n_ort + n_batch
    per_row = None if runs else max(0.2, 0.7 * (budget_s or DEFAULT_BUDGET_S) / max(n_rows, 1))
    timing = {"runs": runs, "min_time_s": per_row}

    rows: list[dict] = []
    tell(f"stage 1/3: {len(stage1)} configurations (runtime x precision x threads), {_per(timing)} each")
    rows += measure(stage1, "1", shape, layout, **timing) + refused
    lat = pick(rows, "latency")
    if lat is None:
        first = next((r["error"] for r in rows if r["error"]), "no configuration ran")
        raise TuneError(f"{path.name}: no configuration could run ({first})")

    ort_rows = [r for r in rows if r["runtime"] == "ort" and r["status"] == "ok"]
    if n_ort and ort_rows:
        base = _cand(pick(ort_rows, "latency"))
        stage2 = [base, *(replace(base, **v) for v in ORT_VARIANTS)]
        if lat["runtime"] != "ort":
            stage2.append(_cand(lat))  # the winner so far, measured again beside the variants
        tell(f"stage 2/3: onnxruntime options on {base.key}: {len(stage2)} rows")
        rows += measure(stage2, "2", shape, layout, **timing)
        lat = pick([r for r in rows if r["stage"] == "2"], "latency")

    thr = lat
    if len(batches) > 1:
        # the two best (runtime, precision) at batch 1, at their best thread count, at each batch
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            if (r["runtime"], r["precision"]) != (lat["runtime"], lat["precision"]):
                groups.setdefault((r["runtime"], r["precision"]), []).append(r)
        others = [w for w in (pick(g, "latency") for g in groups.values()) if w is not None]
        tops = [lat] + sorted(others, key=lambda r: r["latency_ms"]["p50"])[:1]
        stage3 = [replace(_cand(r), batch=b) for r in tops for b in batches]
        tell(f"stage 3/3: batch {', '.join(map(str, batches))} on {len(tops)} configurations")
        stage3_rows = measure(stage3, "3", shape, layout, **timing)
        rows += stage3_rows
        thr = pick(stage3_rows, "throughput") or lat
        lat_again = pick(stage3_rows, "latency")
        if lat_again is not None:  # batch 1 of the winners, measured once more beside the larger batches
            lat = lat_again

    choices = {"latency": _choice(lat), "throughput": _choice(thr)}
    saved = None
    if saved_model and any(c["runtime"] == "ort" for c in choices.values()):
        c = next(c for c in choices.values() if c["runtime"] == "ort")
        tell("timing session creation with onnxruntime's saved optimised graph")
        try:
            saved = time_saved_model(Path(c["path"]), c["threads"], c["options"]["graph_opt"])
        except Exception as e:  # an optimisation that cannot be saved is a note, not a failure
            notes.append(f"saved optimised graph not timed: {first_line(e)}")
        if saved and saved["pays"]:
            for ch in choices.values():
                if ch["runtime"] == "ort" and ch["path"] == c["path"] and ch["options"]["graph_opt"] == \
                        c["options"]["graph_opt"]:
                    ch["options"]["optimized_model"] = saved["path"]
    for objective, ch in choices.items():
        for r in rows:
            if r["key"] == ch["key"] and r["stage"] == ch["stage"]:
                r.setdefault("chosen", []).append(objective)
    host = profile.host_tag()
    result = TuneResult(path, host, rows, choices, notes, saved_model=saved, checks=checks)
    if save:
        result.profile = profile.save(path, choices, rows, extra={"saved_model": saved, "notes": notes,
                                                                  "checks": checks})
    return result


def _bf16_offer(fp32: Path, runtimes: list[str], calib: str | None, native: tuple[bool, str] | None,
                check: Callable[..., dict] | None, checks: dict, tell: Callable[[str], None]) -> str | None:
    """None when bf16 may be measured: OpenVINO runs here, the CPU has native bf16 and the accuracy check
    passed (recorded in ``checks``); else why not, in one line."""
    from edgecnn import bf16

    if "openvino" not in runtimes:
        return "it is OpenVINO's inference precision (--runtime openvino; pip install 'edgecnn[openvino]')"
    ok, why = native if native is not None else bf16.host_native()
    if not ok:
        return why
    tell(f"bf16: checking its answers against FP32 ({why})")
    try:
        res = (check or bf16.check)(fp32, calib=calib)
    except EdgeCNNError as e:
        res = {"passed": False, "why": f"the accuracy check could not run: {first_line(e)}"}
    checks["bf16"] = res
    if res["passed"]:
        return None
    return f"rejected by its accuracy check: {res['why']}"


def _choice(row: dict) -> dict:
    return {"runtime": row["runtime"], "precision": row["precision"], "path": row["path"], "threads": row["threads"],
            "batch": row["batch"], "options": dict(row["options"]), "key": row["key"], "stage": row["stage"],
            "p50_ms": row["latency_ms"]["p50"], "throughput_ips": row["throughput_ips"]}


def _per(timing: dict) -> str:
    return f"{timing['runs']} runs" if timing["runs"] else f"{timing['min_time_s']:.1f} s"


# ---- the table -----------------------------------------------------------------------------------------


def baseline(result: TuneResult) -> dict | None:
    """The row speed-ups are given against: plain onnxruntime at the file's own precision on the most threads
    (stage 1, default options: what ``infer`` runs untuned)."""
    ok = [r for r in result.rows if r["stage"] == "1" and r["status"] == "ok"]
    plain = [r for r in ok if r["runtime"] == "ort" and r["path"] == str(result.path)] or ok
    return max(plain, key=lambda r: r["threads"]) if plain else None


def table_rows(result: TuneResult) -> tuple[list[str], list[list]]:
    """Headers and cells of the table tune chose from; the winners marked; "vs base": images/s over the
    :func:`baseline` row's."""
    from edgecnn.tables import ms

    ref = baseline(result)
    headers = ["stage", "runtime", "precision", "threads", "batch", "options", "session s", "p50 ms", "p90 ms",
               "images/s", "vs base", "chosen"]
    out = []
    for r in result.rows:
        c = _cand(r)
        if r["status"] != "ok":
            out.append([r["stage"], c.runtime, c.precision, c.threads, c.batch, " ".join(c.changed) or "-", "-",
                        r["status"], "", "", "", r["error"]])
            continue
        lat = r["latency_ms"]
        vs = f"{r['throughput_ips'] / ref['throughput_ips']:.2f}x" if ref and ref["throughput_ips"] else "-"
        out.append([r["stage"], c.runtime, c.precision, c.threads, c.batch, " ".join(c.changed) or "-",
                    f"{r['session_s']:.3f}", ms(lat["p50"]), ms(lat["p90"]), f"{r['throughput_ips']:.1f}", vs,
                    ", ".join(f"<- {o}" for o in r.get("chosen", []))])
    return headers, out
