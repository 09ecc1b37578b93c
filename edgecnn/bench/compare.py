"""Telling bench rows apart and comparing them: a short label per row (what differs between the rows of a
run) and the speed-up of every row over a chosen baseline row. Torch-free.

A baseline is named by fields a row must match, ``--baseline precision=fp32`` (INT8/FP32),
``backend=ort`` (OpenVINO/onnxruntime), ``threads=1`` (threads 2/1), or several at once
(``backend=ort,precision=fp32``). Each row is compared with the row of the same model that matches the
named fields and agrees with it on the most other fields (so an INT8 row at 2 threads is compared with the
FP32 row at 2 threads); ties go to the first row in table order. Naming ``model`` compares across models.
The default, ``precision=fp32,backend=ort``, falls back to the first row of the model when the model has
no FP32 onnxruntime row (a torch-only sweep, say).

The speed-up is a ratio of throughputs (images/s = batch / p50), so rows at different batch sizes compare
fairly; at equal batch it is baseline p50 / row p50. Above 1: faster than the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import UsageError

# the fields a label or a baseline may name, in the order a label shows them
FIELDS = ("host", "model", "backend", "where", "precision", "batch", "threads", "input", "measure")
_ALIASES = {"runtime": "backend", "provider": "where", "prec": "precision", "size": "input",
            "input_size": "input"}
DEFAULT = "precision=fp32,backend=ort"


def field_value(row: dict, name: str) -> str:
    """The row's value of a label/baseline field, as text ("default" for the backend's thread count)."""
    if name == "host":
        return str(row.get("host") or "local")
    if name == "where":
        return row["provider"] if row.get("mode", "default") == "default" else f"{row['provider']}/{row['mode']}"
    if name == "threads":
        return "default" if row["threads"] is None else str(row["threads"])
    if name == "input":
        size = row.get("input_size")
        return "x".join(map(str, size)) if size else "native"
    return str(row[name])


def shown(name: str, value: str) -> str:
    """A field's value as a label shows it: "b1", "t2", "@host"; others as they are."""
    return {"batch": f"b{value}", "threads": f"t{value}", "host": f"@{value}"}.get(name, value)


def varying(rows: list[dict]) -> list[str]:
    """The fields whose value differs between rows (model first where several models ran)."""
    return [f for f in FIELDS if len({field_value(r, f) for r in rows}) > 1]


def labels(rows: list[dict]) -> dict[str, str]:
    """row id -> a short label: the model and every field that differs between rows ("mobilenetv2 int8 t2"),
    distinct for distinct configurations (the row id where the fields do not tell two rows apart)."""
    fields = [f for f in varying(rows) if f != "model"]
    out = {r["id"]: " ".join([r["model"], *(shown(f, field_value(r, f)) for f in fields)]) for r in rows}
    seen: dict[str, int] = {}
    for text in out.values():
        seen[text] = seen.get(text, 0) + 1
    return {k: (v if seen[v] == 1 else k) for k, v in out.items()}


def common(rows: list[dict]) -> str:
    """What all rows share, for a plot's title: "ort cpu, fp32, b1, t2" (the model too when only one ran)."""
    return ", ".join(shown(f, field_value(rows[0], f)) for f in FIELDS
                     if f not in ("host", "measure") and rows and f not in varying(rows))


@dataclass(frozen=True)
class Baseline:
    """The fields a baseline row must match (``fields``: name -> value as text) and how it was asked."""

    fields: tuple[tuple[str, str], ...]
    spec: str
    default: bool = False

    def matches(self, row: dict) -> bool:
        return all(field_value(row, k) == v for k, v in self.fields)


def parse(spec: str | None) -> Baseline:
    """``"precision=fp32,threads=1"`` -> Baseline; None: the default. A bad spec is a UsageError."""
    if spec is None:
        return Baseline(_pairs(DEFAULT), DEFAULT, default=True)
    return Baseline(_pairs(spec), spec)


def _pairs(spec: str) -> tuple[tuple[str, str], ...]:
    out = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, value = (s.strip() for s in item.partition("="))
        name = _ALIASES.get(name.lower(), name.lower())
        if not eq or not value or name not in FIELDS:
            raise UsageError(f"--baseline: '{item}' is not FIELD=VALUE with FIELD one of {', '.join(FIELDS)} "
                             "(e.g. --baseline precision=fp32,threads=1)")
        if name in ("batch", "threads") and not (value.isdigit() or (name == "threads" and value == "default")):
            raise UsageError(f"--baseline: {name} takes a number, got '{value}'")
        out[name] = value.lower() if name in ("precision", "backend") else value
    if not out:
        raise UsageError(f"--baseline takes FIELD=VALUE pairs (e.g. precision=fp32,threads=1), got '{spec}'")
    return tuple(out.items())


def apply(rows: list[dict], baseline: Baseline) -> None:
    """Set ``vs_baseline`` (throughput ratio, this row over its baseline) and ``baseline_id`` on every
    measured row; None where no row matches the baseline."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("throughput_ips")]
    named = {k for k, _ in baseline.fields}
    others = [f for f in FIELDS if f not in named and f != "model"]
    for r in rows:
        r["vs_baseline"], r["baseline_id"] = None, None
    for r in ok:
        pool = [b for b in ok if baseline.matches(b) and ("model" in named or b["family"] == r["family"])]
        if not pool and baseline.default:
            pool = [b for b in ok if b["family"] == r["family"]][:1]
        if not pool:
            continue
        # the closest: the same host, then agreeing on the most unnamed fields, the first in table order on a tie
        ref = max(pool, key=lambda b: (field_value(b, "host") == field_value(r, "host"),
                                       sum(field_value(b, f) == field_value(r, f) for f in others), -ok.index(b)))
        r["vs_baseline"] = r["throughput_ips"] / ref["throughput_ips"]
        r["baseline_id"] = ref["id"]


def fastest(rows: list[dict]) -> dict[str, dict]:
    """model family (a file with its INT8 file is one) -> its measured row with the highest throughput
    (images/s), per host; keyed by the family's first model name (and ``@host`` for a remote device)."""
    out: dict[tuple, dict] = {}
    names: dict[tuple, str] = {}
    for r in rows:
        if r["status"] != "ok" or not r.get("throughput_ips"):
            continue
        key = (r.get("family", r["model"]), r.get("host") or "local")
        names.setdefault(key, r["model"] + ("" if key[1] == "local" else f" @{key[1]}"))
        if key not in out or r["throughput_ips"] > out[key]["throughput_ips"]:
            out[key] = r
    return {names[k]: r for k, r in out.items()}
