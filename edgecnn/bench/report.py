"""Bench reports: the terminal table, JSON (every sample kept), CSV, markdown, a PNG plot (latency vs
params, and vs accuracy where the contract knows it; needs the ``[plot]`` extra) and one self-contained
HTML page (the tables and the plot inline as base64; no network). Torch-free.

Everything is rendered in memory first and then written file by file with atomic renames, so a
failure leaves no half-written file under ``--out``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

from edgecnn.errors import require
from edgecnn.fileio import atomic_path
from edgecnn.tables import human, markdown_table, ms, percent, table

FORMATS = ("json", "csv", "md")
CSV_COLUMNS = ("id", "model", "target", "backend", "provider", "device", "mode", "precision", "speed_only", "batch",
               "threads", "threads_used", "height", "width", "measure", "paced_fps", "status", "error", "params",
               "pytorch_params", "macs", "cost_source", "file_bytes", "speedup", "session_s", "first_run_ms", "min_ms",
               "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "std_ms", "cv", "n", "throughput_ips", "noisy",
               "floor_ms", "efficiency",
               "decode_p50_ms", "preprocess_p50_ms", "inference_p50_ms", "postprocess_p50_ms", "rss_growth_bytes",
               "peak_rss_bytes", "device_tag", "cpu", "isa", "onnxruntime", "edgecnn", "git_commit")
_RIGHT = ("batch", "threads", "p50 ms", "p90 ms", "p99 ms", "CV", "img/s", "vs fp32", "floor ms", "eff", "params",
          "MACs", "size", "first ms", "load s")


_SHORT = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}


def _where(r: dict) -> str:
    """The provider/device asked for, with what "auto" became, and the backend's mode."""
    where = r["provider"]
    used = r.get("providers_used")
    if where == "auto" and used:
        where = f"auto:{_SHORT.get(used[0], used[0])}"
    return where if r["mode"] == "default" else f"{where}/{r['mode']}"


def _row_cells(r: dict, speedups: bool = False) -> list:
    lat = r.get("latency_ms") or {}
    size = r.get("input_size")
    prec = r["precision"] + ("*" if r.get("speed_only") else "")
    status = "ok" if r["status"] == "ok" else f"FAILED: {r['error']}"
    if r["status"] == "ok" and r.get("noisy"):
        status = "noisy (CV > 10%)"
    stages = r.get("stages_ms")
    if stages and r["status"] == "ok":
        split = " / ".join(f"{s[:3]} {ms(stages[s]['p50'])}" for s in ("decode", "preprocess", "inference",
                                                                        "postprocess") if s in stages)
        status = ("noisy; " if r.get("noisy") else "") + split
    return [r["model"], r["backend"], _where(r), prec, r["batch"],
            r["threads"] if r["threads"] is not None else "def",
            "x".join(map(str, size)) if size else "-", ms(lat.get("p50")), ms(lat.get("p90")), ms(lat.get("p99")),
            percent(lat.get("cv"), 1) if lat else "-",
            f"{r['throughput_ips']:.1f}" if r.get("throughput_ips") else "-",
            *([f"{r['speedup']:.2f}x" if r.get("speedup") else "-"] if speedups else []),
            ms(r.get("floor_ms")), percent(r.get("efficiency")),
            human(r["params"]) if r.get("params") is not None else "-",
            human(r["macs"]) if r.get("macs") is not None else "-",
            f"{human(r['file_bytes'])}B" if r.get("file_bytes") else "-",
            ms(r.get("first_run_ms")), f"{r['session_s']:.2f}" if r.get("session_s") is not None else "-", status]


HEADERS = ["model", "backend", "where", "prec", "batch", "threads", "input", "p50 ms", "p90 ms", "p99 ms", "CV",
           "img/s", "vs fp32", "floor ms", "eff", "params", "MACs", "size", "first ms", "load s", "status"]


def _hosts(doc: dict) -> bool:
    """True when rows come from several devices (``bench --remote``): tables get a host column."""
    return len(doc.get("hosts") or {}) > 1


def _speedups(doc: dict) -> bool:
    """True when some row has a speed-up over FP32 (a file and its INT8 file, or --precision fp32,int8):
    tables get a "vs fp32" column."""
    return any(r.get("speedup") and r["precision"] != "fp32" for r in doc["rows"])


def _headers(doc: dict) -> list[str]:
    heads = HEADERS if _speedups(doc) else [h for h in HEADERS if h != "vs fp32"]
    return (["host"] if _hosts(doc) else []) + heads


def _cells(doc: dict, r: dict) -> list:
    return ([r.get("host", "local")] if _hosts(doc) else []) + _row_cells(r, _speedups(doc))


def text_table(doc: dict) -> str:
    return table(_headers(doc), [_cells(doc, r) for r in doc["rows"]], right=_RIGHT)


def _env_line(env: dict) -> str:
    return (f"{env['cpu']}, {env['physical_cores']} cores ({env['logical_cores']} logical), "
            f"ISA {' '.join(env['isa']) or '-'}; {env['os']}; Python {env['python']}, onnxruntime "
            f"{env['onnxruntime']}, edgecnn {env['edgecnn']}" + (f" ({_short_commit(env['git_commit'])})"
                                                               if env.get("git_commit") else "")
            + (f"; load average {env['load_average'][0]:.1f} at the start" if env.get("load_average") else ""))


def _short_commit(commit: str) -> str:
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def footnotes(doc: dict) -> list[str]:
    p = doc["protocol"]
    how = f"{p['runs']} timed runs" if p.get("runs") else f"at least {p['min_time_s']:g} s of timed runs"
    hosts = doc.get("hosts") if _hosts(doc) else {"": doc}
    lines = [f"host{' ' + name if name else ''}: {_env_line(h['environment'])} [tag {h['device_tag']}]"
             for name, h in hosts.items()] + [
             f"protocol: {p['warmup']} warm-up calls, {how} per configuration, interleaved in blocks of "
             f"{p['block']}; times of the {'whole pipeline' if doc['mode'] == 'end_to_end' else 'model call'} only"
             + (f"; paced at {p['paced_fps']:g} FPS" if p.get("paced_fps") else "")]
    if any(r.get("speed_only") for r in doc["rows"]):
        lines.append("int8*: INT8 made here with random calibration: speed only, its accuracy means nothing")
    if _speedups(doc):
        lines.append("vs fp32: p50 of the FP32 row of the same model and configuration / p50 of this row, measured "
                     "in the same interleaved run")
    notes: dict[str, dict] = {}  # note -> the models it is about
    for r in doc["rows"]:
        if r.get("params_note"):
            notes.setdefault(r["params_note"], {})[r["model"]] = None
    lines += [f"params of {', '.join(models)}: {note}" for note, models in notes.items()]
    if doc.get("peak"):
        peaks = ", ".join(f"threads {k}: FP32 {v['fp32_gflops']:.0f} GFLOP/s, INT8 {v['int8_gops']:.0f} GOP/s"
                          for k, v in doc["peak"].items())
        lines.append(f"floor = 2 x MACs x batch / peak ({peaks}); eff = floor / p50")
    return lines


def to_json(doc: dict) -> str:
    return json.dumps(doc, indent=1) + "\n"


def _csv_record(r: dict) -> dict:
    lat, env, st = r.get("latency_ms") or {}, r.get("environment") or {}, r.get("stages_ms") or {}
    size = r.get("input_size") or [None, None]
    rec = {k: r.get(k) for k in CSV_COLUMNS if k in r}
    rec.update({f"{k}_ms": lat.get(k) for k in ("min", "p50", "p90", "p99", "max", "mean", "std")})
    rec.update({"cv": lat.get("cv"), "n": lat.get("n"), "height": size[0], "width": size[1],
                "cpu": env.get("cpu"), "isa": " ".join(env.get("isa", [])), "onnxruntime": env.get("onnxruntime"),
                "edgecnn": env.get("edgecnn"), "git_commit": env.get("git_commit")})
    rec.update({f"{s}_p50_ms": (st.get(s) or {}).get("p50") for s in ("decode", "preprocess", "inference",
                                                                        "postprocess")})
    return rec


def to_csv(doc: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in doc["rows"]:
        w.writerow({k: "" if v is None else v for k, v in _csv_record(r).items()})
    return buf.getvalue()


def to_markdown(doc: dict) -> str:
    body = markdown_table(_headers(doc), [_cells(doc, r) for r in doc["rows"]], right=_RIGHT)
    notes = "\n".join(f"- {line}" for line in footnotes(doc))
    return f"# edgecnn bench, {doc['created']}\n\n{body}\n\n{notes}\n"


def _accuracy(r: dict) -> float | None:
    """Top-1 from the target's contract (``row["accuracy"]``), where it records one."""
    return (r.get("accuracy") or {}).get("top1")


def to_png(doc: dict) -> bytes:
    """Latency (p50) vs params, one point per measured row (log-log); a second panel vs accuracy
    where any row's contract knows it."""
    require("matplotlib", "plot", "--plot/--html")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["rows"] if r["status"] == "ok" and r.get("latency_ms")]
    acc = {r["id"]: _accuracy(r) for r in rows}
    panels = 2 if any(v is not None for v in acc.values()) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        host = f"{r.get('host', 'local')} " if _hosts(doc) else ""
        groups.setdefault(f"{host}{r['backend']} {_where(r)} {r['precision']} b{r['batch']}", []).append(r)
    for label, rs in groups.items():
        for ax, xkey in zip(axes[0], ("params", "accuracy"), strict=False):
            pts = [((r.get("params") if xkey == "params" else acc[r["id"]]), r["latency_ms"]["p50"], r["model"])
                   for r in rs]
            pts = [p for p in pts if p[0]]
            if not pts:
                continue
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=label, s=28)
            for x, y, name in pts:
                ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0][0].set_xscale("log")
    axes[0][0].set_xlabel("parameters")
    for ax in axes[0]:
        ax.set_yscale("log")
        ax.set_ylabel("p50 latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
    if panels == 2:
        axes[0][1].set_xlabel("top-1 accuracy (from the contract)")
    if groups:
        axes[0][0].legend(fontsize=7)
    env = doc["environment"]
    where = (", ".join(f"{k} ({v['device_tag']})" for k, v in doc["hosts"].items()) if _hosts(doc)
             else f"{env['cpu']} ({env['physical_cores']} cores, {isa_short(env)})")
    fig.suptitle(f"edgecnn bench on {where}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def isa_short(env: dict) -> str:
    from edgecnn.bench.environment import isa_level

    return isa_level(env.get("isa") or [])


def to_html(doc: dict, png: bytes | None) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in _headers(doc))
    body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in _cells(doc, r)) + "</tr>" for r in doc["rows"])
    img = (f'<p><img alt="latency vs params" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'
           if png else "")
    notes = "".join(f"<li>{esc(line)}</li>" for line in footnotes(doc))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>edgecnn bench</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child{text-align:left}"
            "th{background:#f0f0f0}</style></head><body>"
            f"<h1>edgecnn bench</h1><p>{esc(doc['created'])}, device tag <code>{esc(doc['device_tag'])}</code></p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><ul>{notes}</ul>{img}"
            "</body></html>\n")


def write(doc: dict, out_dir: str | Path, stem: str, *, plot: bool = False, page: bool = False) -> list[Path]:
    """Write ``<stem>.json|.csv|.md`` (and ``.png``, ``.html``) under ``out_dir``; returns the paths.
    Everything is rendered before the first file is written."""
    png = to_png(doc) if plot or page else None
    contents: dict[str, str | bytes] = {"json": to_json(doc), "csv": to_csv(doc), "md": to_markdown(doc)}
    if plot:
        contents["png"] = png
    if page:
        contents["html"] = to_html(doc, png)
    out = Path(out_dir)
    written = []
    for ext, data in contents.items():
        target = out / f"{stem}.{ext}"
        with atomic_path(target) as tmp:
            if isinstance(data, bytes):
                tmp.write_bytes(data)
            else:
                tmp.write_text(data, encoding="utf-8")
        written.append(target)
    return written
