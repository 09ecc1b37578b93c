"""INT8 only where it pays: float islands in a QDQ graph, chosen by per-block timing on this host. No torch.

A graph is cut into *units* (``units``): a convolution/Gemm/MatMul with the activation chain that follows it
(ReLU, Clip, hard-swish, SiLU's Sigmoid x Mul...), a squeeze-excite gate (the global pool, its two 1x1
convolutions and the gate's Mul), and every other op on its own. The FP32 graph and the plain INT8 graph
are profiled per node with onnxruntime's profiler on the graph it really runs (``OrtTiming``, fastest
of 40 calls per node); each
runtime node's time is charged to the FP32 node it came from (by node and tensor name, else by its
neighbours in the runtime graph, so Q/DQ steps and fused kernels land on a unit too). The units that take
longer in INT8 than in FP32 are ranked by what they lose; keeping the worst 1, 2, 4, ... of them in float
(``nodes_to_exclude``) gives candidate files, and so does keeping INT8 only in the 1, 2, 4, ... units that
gain most; the candidates are measured whole beside FP32 and plain INT8 (``search``). The two or three that
look fastest are then timed again against FP32 in paired passes (fresh sessions each pass, alternating
order, a second FP32 session as the control) and one is kept only when it beats FP32 by more than FP32
differs from itself (``confirm``); when none does, INT8 does not pay on this host and the FP32 graph is kept.

The timing source is a parameter (``Timing``): tests inject per-node times and check the choice.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Ops that ride on the unit of the node feeding them (fused into it by onnxruntime in FP32).
ACTIVATIONS = {"Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu", "Tanh", "PRelu", "Elu",
               "Selu", "Softplus", "Mish", "Gelu"}
HEADS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
POOLS = {"GlobalAveragePool", "ReduceMean"}
GATES = {"Sigmoid", "HardSigmoid"}
MAX_VARIANTS = 5  # variants of each kind timed whole: the worst 1, 2, 4, 8 and all losers (gainers)
CONFIRM_TOP = 3  # INT8 variants re-timed against FP32 after the search (the fastest by each measure)
CONFIRM_PASSES = 7  # paired passes: the second-lowest of 7 per-pass ratios bounds their median from below at 94%
MIN_MARGIN = 0.02  # the least gain a variant must show over FP32, however quiet the control
CONTROL = "fp32-again"  # the second FP32 session of each pass: FP32 against itself, the noise floor


@dataclass
class Unit:
    """A block of FP32 nodes that stays in float or goes INT8 as one."""
    name: str  # readable: the nodes' common scope (torch module path) or the head node's name
    kind: str  # conv | se | op
    nodes: list[str]
    ops: list[str]


@dataclass
class Island:
    """A unit kept in float, with what it cost per call in each precision (profiled in the plain INT8 graph)."""
    unit: str
    kind: str
    ops: str
    fp32_ms: float
    int8_ms: float

    @property
    def saved_ms(self) -> float:
        return self.int8_ms - self.fp32_ms


@dataclass
class Choice:
    """The result of ``search``: the exclusion list of the kept variant, its islands, and the timings."""
    exclude: list[str]
    islands: list[Island]
    latency_ms: dict[str, float]  # fp32, int8 (plain), islands-<k> (worst k units in float): wall medians, batch 1
    kept: str  # the INT8 variant kept ("int8" plain, "islands-<k>", "int8-only-<k>"), or "fp32": none paid
    profiled_ms: dict[str, float] = field(default_factory=dict)  # the same variants: sums of per-node fastest calls
    metric: str = "profile"  # what ranked the search: profile (profiled_ms) or wall (latency_ms)
    info: dict[str, Any] = field(default_factory=dict)
    confirm: dict[str, Any] = field(default_factory=dict)  # ``confirm``'s verdict: what decided ``kept``

    def to_dict(self) -> dict[str, Any]:
        isl = [{"unit": i.unit, "kind": i.kind, "ops": i.ops, "fp32_ms": round(i.fp32_ms, 4),
                "int8_ms": round(i.int8_ms, 4), "saved_ms": round(i.saved_ms, 4)} for i in self.islands]
        conf = self.confirm.get("variants", {}).get(self.kept)
        by = self.profiled_ms if self.metric == "profile" else self.latency_ms
        return {"kept": self.kept, "islands": isl, "excluded_nodes": len(self.exclude), "metric": self.metric,
                "latency_ms": {k: round(v, 4) for k, v in self.latency_ms.items()},
                "profiled_ms": {k: round(v, 4) for k, v in self.profiled_ms.items()},
                "speedup_vs_fp32": conf["median"] if conf else by["fp32"] / by[self.kept],
                "pays": self.kept != "fp32" and (conf["pays"] if conf else by[self.kept] <= by["fp32"]),
                "wall_speedup_vs_fp32": self.latency_ms["fp32"] / self.latency_ms[self.kept],
                "confirm": self.confirm, **self.info}


class Timing(Protocol):
    """Where the times come from (``OrtTiming`` on this host; tests pass their own)."""

    def per_node(self, model_bytes: bytes, fp32_nodes: set[str]) -> dict[str, float]:
        """ms per call charged to each FP32 node name (``fp32_nodes``) for the graph ``model_bytes``; the
        key ``""`` holds what could not be charged to any."""

    def end_to_end(self, models: dict[str, bytes]) -> dict[str, float]:
        """Median ms per call of each whole graph, measured interleaved."""

    def paired(self, models: dict[str, bytes], passes: int) -> list[dict[str, float]]:
        """Per pass, the median ms per call of each whole graph: ``passes`` interleaved runs, each with fresh
        sessions (created in alternating order) and a settle pause before it."""


def name_nodes(model) -> int:
    """Give every unnamed node of ``model`` a unique name (onnxruntime's pre-processing inlines HardSwish
    into unnamed HardSigmoid + Mul nodes, which ``nodes_to_exclude`` could not name): the output's name
    with ``/<op>`` added, torch's scope style. Returns how many were named."""
    taken = {n.name for n in model.graph.node if n.name}
    count = 0
    for n in model.graph.node:
        if n.name:
            continue
        anchor = next((t for t in list(n.output) + list(n.input) if t.startswith("/")), n.output[0] if n.output
                      else n.op_type)
        base = re.sub(r"_output_\d+$", "", anchor) + "/" + n.op_type
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        n.name = name
        taken.add(name)
        count += 1
    return count


def units(model) -> list[Unit]:
    """``model``'s nodes grouped into units (see the module docstring), in graph order."""
    nodes = list(model.graph.node)
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    unit_of: dict[str, int] = {}
    groups: list[tuple[str, list]] = []

    def join(idx: int, n) -> None:
        unit_of[n.name] = idx
        groups[idx][1].append(n)

    def only_consumer(n):
        c = [c for o in n.output for c in consumers.get(o, [])]
        return c[0] if len(c) == 1 else None

    for n in nodes:
        if n.name in unit_of:
            continue
        if n.op_type in POOLS and _se_members(n, consumers):
            groups.append(("se", []))
            for m in _se_members(n, consumers):
                if m.name not in unit_of:
                    join(len(groups) - 1, m)
            continue
        groups.append(("conv" if n.op_type in HEADS else "op", []))
        join(len(groups) - 1, n)
        if n.op_type in HEADS:  # its activation chain: act, or x * act(x) (SiLU, hard-swish written out)
            cur = n
            for _ in range(3):
                nxt = only_consumer(cur)
                outs = set(cur.output)
                users = [c for o in cur.output for c in consumers.get(o, [])]
                if nxt is not None and nxt.op_type in ACTIVATIONS and nxt.name not in unit_of:
                    join(len(groups) - 1, nxt)
                    cur = nxt
                    continue
                if len(users) == 2 and {u.op_type for u in users} & GATES and any(u.op_type == "Mul" for u in users):
                    act = next(u for u in users if u.op_type != "Mul")
                    mul = next(u for u in users if u.op_type == "Mul")
                    if act.op_type in GATES and set(act.output) & set(mul.input) and outs & set(mul.input) \
                            and act.name not in unit_of and mul.name not in unit_of:
                        join(len(groups) - 1, act)
                        join(len(groups) - 1, mul)
                        cur = mul
                        continue
                break
    out = []
    for kind, members in groups:
        names = [m.name for m in members]
        out.append(Unit(_scope(names) if kind != "op" else names[0], kind, names, [m.op_type for m in members]))
    seen: dict[str, int] = {}
    for u in out:  # unit names must be unique (two units may share a scope)
        k = seen.get(u.name, 0)
        seen[u.name] = k + 1
        if k:
            u.name = f"{u.name}#{k + 1}"
    return out


def _se_members(pool, consumers) -> list:
    """The nodes of a squeeze-excite gate starting at ``pool``: every node between the pool and the Mul that
    applies a Sigmoid/HardSigmoid gate to the pool's input (within six steps; SiLU's Sigmoid x Mul on the
    way is part of the gate), the Mul included; [] if there is no gate."""
    path: list = [pool]
    frontier = [pool]
    for _ in range(6):
        nxt = [c for n in frontier for o in n.output for c in consumers.get(o, [])]
        if not nxt or len(nxt) > 2:
            return []
        path += nxt
        for gate in (n for n in nxt if n.op_type in GATES):  # the gate scales the pool's own input
            muls = [c for o in gate.output for c in consumers.get(o, [])]
            if len(muls) == 1 and muls[0].op_type == "Mul" and pool.input[0] in muls[0].input:
                return path + muls
        frontier = nxt
    return []


def _scope(names: list[str]) -> str:
    """The common '/'-separated prefix of torch-exported node names, else the first name."""
    parts = [n.strip("/").split("/") for n in names]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    if len(common) == len(parts[0]) and len(names) == 1:
        return names[0]
    return "/" + "/".join(common) if common and names[0].startswith("/") else (names[0] if not common else
                                                                              "/".join(common))


def per_unit(times: dict[str, float], unit_list: list[Unit]) -> dict[str, float]:
    """ms per unit from ms per FP32 node."""
    return {u.name: sum(times.get(n, 0.0) for n in u.nodes) for u in unit_list}


def losers(fp32: dict[str, float], int8: dict[str, float], candidates: list[Unit],
           min_ms: float = 0.002, min_rel: float = 0.02) -> list[Unit]:
    """Units (among ``candidates``) slower in INT8 than in FP32 by more than ``min_ms`` and ``min_rel`` of
    their FP32 time: profiler noise does not make an island."""
    out = []
    for u in candidates:
        f, q = fp32.get(u.name, 0.0), int8.get(u.name, 0.0)
        if q - f > max(min_ms, min_rel * f):
            out.append(u)
    return out


def search(fp32_bytes: bytes, fp32_model, build: Callable[[list[str]], bytes], timing: Timing,
           base_exclude: list[str] | None = None, max_variants: int = MAX_VARIANTS, metric: str = "profile",
           passes: int = 2, progress: Callable[[str], None] | None = None, confirm_top: int = CONFIRM_TOP,
           confirm_passes: int = CONFIRM_PASSES, min_margin: float = MIN_MARGIN) -> tuple[Choice, bytes]:
    """Find the float islands of ``fp32_model`` (the graph quantization sees; ``fp32_bytes`` is it serialised)
    for this host. ``build(exclude)`` returns the INT8 graph with the node names ``exclude`` kept in float;
    ``base_exclude`` (the user's --exclude) always stays in float.

    The FP32 graph and the plain INT8 graph are profiled once per node; the units that lose in INT8 are
    ranked by what they lose (ms per call), those that gain by what they gain. Keeping the worst 1, 2, 4,
    ... losers in float gives one set of variants; keeping INT8 only in the best 1, 2, 4, ... gainers (all
    else float: for graphs where losers and gainers alternate and the Q/DQ steps between them cost more
    than the gains) gives the other. The variants are measured whole (an island's edges add
    quantize/dequantize steps that only the whole graph shows): profiled per node again, and timed
    interleaved with FP32 and plain INT8. They are ranked by ``metric``: ``profile`` (default), the sum over
    nodes of each node's fastest call in ``passes`` passes over all the graphs, which other jobs on a small
    shared machine disturb far less than whole-graph wall time (a preempted call slows one node's sample,
    and the fastest of N calls is what the kernel costs when it has its cores); ``wall``, the interleaved
    medians. With a dozen variants timed once on a noisy host the fastest-looking one is partly the
    luckiest, so the ``confirm_top`` best (by either measure) are timed again against FP32 in
    ``confirm_passes`` paired passes (``timing.paired``) and ``confirm`` decides: the kept variant is the
    fastest that clears the margin, or "fp32" (the FP32 graph) when none does; ``confirm_passes=0`` keeps
    the fastest by ``metric`` unconfirmed.
    Returns the choice and the kept graph (``fp32_bytes`` when INT8 does not pay)."""
    base = list(base_exclude or [])
    unit_list = units(fp32_model)
    names = {n.name for n in fp32_model.graph.node}
    say = progress or (lambda _m: None)
    plain = build(base)
    fp32_nodes = timing.per_node(fp32_bytes, names)
    q_nodes = timing.per_node(plain, names)
    fp32_u, q_u = per_unit(fp32_nodes, unit_list), per_unit(q_nodes, unit_list)
    todo = [u for u in unit_list if not set(u.nodes) & set(base)]
    lost = sorted(losers(fp32_u, q_u, todo), key=lambda u: fp32_u[u.name] - q_u[u.name])
    say(f"{len(lost)} unit(s) slower in INT8 than in FP32 per the profile")
    info = {"losing_units": len(lost), "unattributed_ms": {"fp32": round(fp32_nodes.get("", 0.0), 4),
                                                           "int8": round(q_nodes.get("", 0.0), 4)}}
    won = sorted(losers(q_u, fp32_u, todo), key=lambda u: q_u[u.name] - fp32_u[u.name])  # most saved first
    floats: dict[str, list[Unit]] = {"int8": []}
    for k in _sizes(len(lost), max_variants):
        floats[f"islands-{k}"] = lost[:k]
    for k in _sizes(len(won), max_variants):  # the other way round: INT8 only in the k units that gain most
        floats[f"int8-only-{k}"] = [u for u in todo if u not in won[:k]]
    variants: dict[str, bytes] = {"int8": plain}
    for key, fl in floats.items():
        if key != "int8":
            variants[key] = build(base + [n for u in fl for n in u.nodes if n not in base])
    say(f"{len(variants)} INT8 variants to measure")
    profiles = {"fp32": fp32_nodes, "int8": q_nodes}
    for p in range(passes):  # passes over all variants, each node's fastest kept: a busy spell hits one pass
        for key, b in [("fp32", fp32_bytes), *variants.items()]:
            if p == 0 and key in profiles:
                continue
            got = timing.per_node(b, names)
            old = profiles.setdefault(key, got)
            profiles[key] = {n: min(old.get(n, v), v) for n, v in got.items()}
    summed = {k: sum(v.values()) for k, v in profiles.items()}
    lat = timing.end_to_end({"fp32": fp32_bytes, **variants})
    by, other = (summed, lat) if metric == "profile" else (lat, summed)
    info["gaining_units"] = len(won)
    if confirm_passes < 1:  # unconfirmed: the fastest variant by ``metric``, paying or not
        best = min(variants, key=lambda v: by[v])
        return _choice(best, floats, base, fp32_u, q_u, lat, summed, metric, info, {}), variants[best]
    ranked = sorted(variants, key=lambda v: by[v])
    top = list(dict.fromkeys(ranked[:max(1, confirm_top - 1)] + sorted(variants, key=lambda v: other[v])[:1]
                             + ranked))[:max(1, confirm_top)]
    say(f"confirming {', '.join(top)} against FP32 in {confirm_passes} paired passes")
    runs = timing.paired({"fp32": fp32_bytes, CONTROL: fp32_bytes, **{k: variants[k] for k in top}}, confirm_passes)
    verdict = confirm(runs, top, min_margin)
    best = verdict["kept"]
    choice = _choice(best, floats, base, fp32_u, q_u, lat, summed, metric, info, verdict)
    return choice, (fp32_bytes if best == "fp32" else variants[best])


def _choice(best: str, floats: dict[str, list[Unit]], base: list[str], fp32_u: dict[str, float],
            q_u: dict[str, float], lat: dict[str, float], summed: dict[str, float], metric: str,
            info: dict[str, Any], verdict: dict[str, Any]) -> Choice:
    fl = floats.get(best, [])  # "fp32": no islands, the whole graph is float
    kept = [Island(u.name, u.kind, "+".join(dict.fromkeys(u.ops)), fp32_u[u.name], q_u[u.name]) for u in fl]
    exclude = base + [n for u in fl for n in u.nodes if n not in base]
    return Choice(exclude, kept, lat, best, summed, metric, info, verdict)


def confirm(runs: list[dict[str, float]], candidates: list[str], min_margin: float = MIN_MARGIN) -> dict[str, Any]:
    """Which of ``candidates`` is reliably faster than FP32, from paired passes (``Timing.paired``: per pass,
    the median ms of "fp32", of ``CONTROL`` (a second FP32 session of the same graph) and of each candidate).

    Per pass a candidate's ratio is the FP32 time (geometric mean of the two FP32 sessions) over its time.
    From 6 passes on, one pass is set aside at each end (``trim``): on a shared 2-core host another job can
    take the cores for seconds, and one disturbed pass must not decide. The margin is how far the two FP32
    sessions' ratio strays from 1 in the worst pass (the second worst when trimming), and at least
    ``min_margin``: what this host's noise does to two identical files. A candidate pays when its median
    ratio is at least 1 + margin (the gain clears the noise) and its ``low`` ratio (the lowest, the second
    lowest when trimming) at least 1: that order statistic is a distribution-free lower confidence bound of
    the median per-pass ratio, at 97% with 5 passes (lowest) and 94% with 7 (second lowest). The kept
    variant is the paying one with the highest median ratio, else "fp32"."""
    if not runs:
        raise ValueError("confirm needs at least one pass")
    trim = 1 if len(runs) >= 6 else 0
    control = [r["fp32"] / r[CONTROL] for r in runs]
    margin = max(min_margin, sorted(max(c, 1 / c) - 1 for c in control)[-1 - trim])
    out: dict[str, dict[str, Any]] = {}
    for k in candidates:
        ratios = [float(np.sqrt(r["fp32"] * r[CONTROL]) / r[k]) for r in runs]
        med, low = statistics.median(ratios), sorted(ratios)[trim]
        out[k] = {"median": round(med, 4), "low": round(low, 4), "ratios": [round(x, 4) for x in ratios],
                  "ms": round(statistics.median(r[k] for r in runs), 4), "pays": med >= 1 + margin and low >= 1.0}
    paying = [k for k in candidates if out[k]["pays"]]
    return {"kept": max(paying, key=lambda k: out[k]["median"]) if paying else "fp32", "passes": len(runs),
            "trim": trim,
            "margin": round(margin, 4), "min_margin": min_margin, "control": [round(c, 4) for c in control],
            "fp32_ms": round(statistics.median(np.sqrt(r["fp32"] * r[CONTROL]) for r in runs), 4),
            "best": max(candidates, key=lambda k: out[k]["median"]) if candidates else None, "variants": out}


def _sizes(n: int, count: int) -> list[int]:
    """1, 2, 4, ... up to ``count`` sizes, the last one ``n`` (all)."""
    sizes = sorted({min(2 ** k, n) for k in range(count)} - {0})
    if n and sizes[-1] != n:
        sizes[-1] = n
    return sizes


# --- onnxruntime's profiler as the timing source -----------------------------------------------------------

_SUFFIXES = ("_kernel_time", "_nchwc", "_DequantizeLinear", "_QuantizeLinear", "_quantized", "_Output",
             "_output_0", "_dequantized")


def _candidates(name: str) -> list[str]:
    """``name`` and what it reads as with onnxruntime's and the quantizer's suffixes taken off, one by one."""
    out = [name]
    cur = name
    for _ in range(6):
        nxt = re.sub(r"_token_\d+$", "", cur)
        for s in _SUFFIXES:
            if nxt.endswith(s):
                nxt = nxt[: -len(s)]
                break
        if nxt == cur:
            break
        out.append(nxt)
        cur = nxt
    return out


class Attributor:
    """Charges the nodes of a graph onnxruntime runs to the FP32 nodes they came from."""

    def __init__(self, fp32_model):
        self.nodes = {n.name for n in fp32_model.graph.node}
        self.producer = {o: n.name for n in fp32_model.graph.node for o in n.output}
        first_user: dict[str, str] = {}
        for n in fp32_model.graph.node:
            for i in n.input:
                first_user.setdefault(i, n.name)
        self.first_user = first_user

    def resolve(self, name: str) -> str | None:
        for c in _candidates(name):
            if c in self.nodes:
                return c
            if c in self.producer:
                return self.producer[c]
            if c in self.first_user:  # a graph input: its Q step serves its first consumer
                return self.first_user[c]
            if c + "_output_0" in self.producer:
                return self.producer[c + "_output_0"]
        return None

    def charge(self, runtime_graph, times: dict[str, float]) -> dict[str, float]:
        """ms per FP32 node (key "" for what no FP32 node claims) from ms per runtime node ``times``."""
        rnodes = list(runtime_graph.graph.node)
        owner: dict[str, str | None] = {}
        for n in rnodes:
            owner[n.name] = self.resolve(n.name) or next(
                (r for o in n.output if (r := self.resolve(o))), None)
        prod = {o: n.name for n in rnodes for o in n.output}
        users: dict[str, list[str]] = {}
        for n in rnodes:
            for i in n.input:
                users.setdefault(i, []).append(n.name)
        by_name = {n.name: n for n in rnodes}
        for _ in range(8):  # unclaimed runtime nodes (fused, reordered, inlined) take a neighbour's owner
            changed = False
            for n in rnodes:
                if owner[n.name] is not None:
                    continue
                near = [owner.get(prod.get(i, "")) for i in n.input] + \
                    [owner.get(u) for o in n.output for u in users.get(o, [])]
                got = next((x for x in near if x), None)
                if got:
                    owner[n.name], changed = got, True
            if not changed:
                break
        out: dict[str, float] = {}
        for name, ms in times.items():
            key = owner.get(name) if name in by_name else self.resolve(name)
            out[key or ""] = out.get(key or "", 0.0) + ms
        return out


def profile(model_bytes: bytes, feed: dict[str, np.ndarray], threads: int | None, runs: int = 40,
            warmup: int = 5) -> tuple[dict[str, float], Any]:
    """ms of each node onnxruntime runs for ``model_bytes`` (its profiler), the fastest of ``runs`` calls,
    and that runtime graph (saved by the same session, so the names match). The fastest, not the median:
    measured on this project's 2-core host with other jobs at load 19, three runs of one file gave summed
    per-node minima of 3.33-3.38 ms (mobilenetv3_small) and 9.1-11.5 ms (mobilenetv2), summed medians
    4.3-4.9 and 13.2 ms, whole-graph wall medians several times more."""
    import onnx
    import onnxruntime as ort

    from edgecnn.runtime.session import session_options

    with tempfile.TemporaryDirectory(prefix="edgecnn-prof-") as td:
        opts = session_options(threads=threads, spinning=True)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(td) / "prof")
        opts.optimized_model_filepath = str(Path(td) / "runtime.onnx")
        sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            sess.run(None, feed)
        samples: dict[str, list[float]] = {}
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
        runtime = onnx.load(opts.optimized_model_filepath, load_external_data=False)
    per_run: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_run.setdefault(e["name"][: -len("_kernel_time")], []).append(e["dur"] / 1000.0)
    for k, v in per_run.items():  # the last ``runs`` calls of each node: the warm-up ones are dropped
        samples[k] = v[-runs:]
    return {k: min(v) for k, v in samples.items()}, runtime


class OrtTiming:
    """The timing source on this host: onnxruntime's profiler per node, interleaved blocks end to end."""

    def __init__(self, feed: dict[str, np.ndarray], fp32_model, threads: int | None = None, runs: int = 40):
        self.feed, self.threads, self.runs = feed, threads, runs
        self.attributor = Attributor(fp32_model)

    def per_node(self, model_bytes: bytes, fp32_nodes: set[str]) -> dict[str, float]:
        times, runtime = profile(model_bytes, self.feed, self.threads, self.runs)
        return self.attributor.charge(runtime, times)

    def end_to_end(self, models: dict[str, bytes], rounds: int = 6, block: int = 10, seed: int = 0,
                   order: list[str] | None = None) -> dict[str, float]:
        import onnxruntime as ort

        from edgecnn.bench.timing import interleaved
        from edgecnn.runtime.session import session_options

        sessions = {k: ort.InferenceSession(models[k], session_options(threads=self.threads, spinning=True),
                                            providers=["CPUExecutionProvider"]) for k in (order or models)}
        calls = {k: (lambda s=s: s.run(None, self.feed)) for k, s in sessions.items()}
        times = interleaved(calls, rounds=rounds, block=block, seed=seed)
        return {k: statistics.median(v) for k, v in times.items()}

    def paired(self, models: dict[str, bytes], passes: int, rounds: int = 4, block: int = 8,
               settle_s: float = 0.5) -> list[dict[str, float]]:
        out = []
        for p in range(passes):  # fresh sessions each pass: a session's memory placement is part of the sample
            time.sleep(settle_s)
            order = list(models) if p % 2 == 0 else list(reversed(models))
            out.append(self.end_to_end(models, rounds=rounds, block=block, seed=1000 + p, order=order))
        return out
