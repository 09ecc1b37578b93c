"""Bench reports: the terminal table, JSON (every sample kept), CSV, markdown, a PNG of the charts
(``plots``: speed-up over a baseline row, latency distributions, stage split, latency vs params and vs
accuracy; needs the ``[plot]`` extra) and one self-contained HTML page (the charts and the table inline,
base64; no network). Torch-free.

Every table format carries the same figures: min/p50/p90/p99/max/std of the latency, throughput, the
speed-up over the baseline row (``compare``), peak RSS, the MLPerf result where a scenario ran, and, in
the notes (a column in CSV), the command line that made them.

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

from edgecnn.bench import compare
from edgecnn.fileio import atomic_path
from edgecnn.tables import human, markdown_table, ms, percent, table

FORMATS = ("json", "csv", "md")
CSV_COLUMNS = ("id", "label", "model", "target", "backend", "provider", "device", "mode", "precision", "speed_only",
               "batch", "threads", "threads_used", "height", "width", "measure", "paced_fps", "status", "error",
               "params", "pytorch_params", "macs", "cost_source", "file_bytes", "speedup", "vs_baseline",
               "baseline_id", "session_s", "first_run_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms",
               "mean_ms", "std_ms", "cv", "n", "throughput_ips", "noisy", "floor_ms", "efficiency",
               "decode_p50_ms", "preprocess_p50_ms", "inference_p50_ms", "postprocess_p50_ms", "rss_growth_bytes",
               "peak_rss_bytes", "mlperf_scenario", "mlperf_metric", "mlperf_result", "mlperf_verdict",
               "device_tag", "cpu", "isa", "onnxruntime", "edgecnn", "git_commit", "command")
_RIGHT = ("batch", "threads", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "std ms", "CV", "img/s", "vs base",
          "floor ms", "eff", "params", "MACs", "size", "peak RSS", "first ms", "load s")
_MLPERF = {"singlestream": "SingleStream", "multistream": "MultiStream", "offline": "Offline"}


_SHORT = {"CPUExecutionProvider": "cpu", "CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}


def _where(r: dict) -> str:
    """The provider/device asked for, with what "auto" became, and the backend's mode."""
    where = r["provider"]
    used = r.get("providers_used")
    if where == "auto" and used:
        where = f"auto:{_SHORT.get(used[0], used[0])}"
    return where if r["mode"] == "default" else f"{where}/{r['mode']}"


def _row_cells(r: dict, speedups: bool = False, mlperf: bool = False) -> list:
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
            "x".join(map(str, size)) if size else "-", ms(lat.get("min")), ms(lat.get("p50")), ms(lat.get("p90")),
            ms(lat.get("p99")), ms(lat.get("max")), ms(lat.get("std")),
            percent(lat.get("cv"), 1) if lat else "-",
            f"{r['throughput_ips']:.1f}" if r.get("throughput_ips") else "-",
            *([f"{r['vs_baseline']:.2f}x" if r.get("vs_baseline") else "-"] if speedups else []),
            ms(r.get("floor_ms")), percent(r.get("efficiency")),
            human(r["params"]) if r.get("params") is not None else "-",
            human(r["macs"]) if r.get("macs") is not None else "-",
            f"{human(r['file_bytes'])}B" if r.get("file_bytes") else "-",
            f"{human(r['peak_rss_bytes'])}B" if r.get("peak_rss_bytes") else "-",
            ms(r.get("first_run_ms")), f"{r['session_s']:.2f}" if r.get("session_s") is not None else "-",
            *([mlperf_cell(r)] if mlperf else []), status]


HEADERS = ["model", "backend", "where", "prec", "batch", "threads", "input", "min ms", "p50 ms", "p90 ms", "p99 ms",
           "max ms", "std ms", "CV", "img/s", "vs base", "floor ms", "eff", "params", "MACs", "size", "peak RSS",
           "first ms", "load s", "MLPerf", "status"]


def mlperf_cell(r: dict) -> str:
    """LoadGen's result of the row's scenario: "SingleStream p90 2.31 ms VALID", or why it did not run."""
    m = r.get("mlperf")
    if not m:
        return "-"
    name = _MLPERF.get(m.get("scenario"), m.get("scenario"))
    if "error" in m:
        return f"{name} failed"
    figure = f"{m['value']:.1f} samples/s" if m["scenario"] == "offline" else f"{m['metric'].split()[0]} " \
                                                                               f"{ms(m['value'])} ms"
    return f"{name} {figure} {m['verdict']}"


def _hosts(doc: dict) -> bool:
    """True when rows come from several devices (``bench --remote``): tables get a host column."""
    return len(doc.get("hosts") or {}) > 1


def _speedups(doc: dict) -> bool:
    """True when two or more rows have a speed-up over a baseline row: tables get a "vs base" column."""
    return sum(1 for r in doc["rows"] if r.get("vs_baseline")) > 1


def _mlperf(doc: dict) -> bool:
    return any(r.get("mlperf") for r in doc["rows"])


def _headers(doc: dict) -> list[str]:
    drop = {"vs base"} if not _speedups(doc) else set()
    drop |= {"MLPerf"} if not _mlperf(doc) else set()
    return (["host"] if _hosts(doc) else []) + [h for h in HEADERS if h not in drop]


def _cells(doc: dict, r: dict) -> list:
    return ([r.get("host", "local")] if _hosts(doc) else []) + _row_cells(r, _speedups(doc), _mlperf(doc))


def prepare(doc: dict, baseline: str | None = None, command: str | None = None) -> dict:
    """Give the document its comparison: each row's ``vs_baseline`` over the baseline (``compare``; the
    default when ``baseline`` is None), ``doc["baseline"]``, and ``doc["command"]`` where given. Called by
    every renderer, so a document from the API or an older JSON file reads the same; returns ``doc``."""
    if command is not None:
        doc["command"] = command
    if baseline is not None or "baseline" not in doc:
        spec = compare.parse(baseline)
        compare.apply(doc["rows"], spec)
        doc["baseline"] = spec.spec
    return doc


def text_table(doc: dict) -> str:
    prepare(doc)
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
    prepare(doc)
    p = doc["protocol"]
    how = f"{p['runs']} timed runs" if p.get("runs") else f"at least {p['min_time_s']:g} s of timed runs"
    hosts = doc.get("hosts") if _hosts(doc) else {"": doc}
    lines = [f"command: {doc['command']}"] if doc.get("command") else []
    lines += [f"host{' ' + name if name else ''}: {_env_line(h['environment'])} [tag {h['device_tag']}]"
              for name, h in hosts.items()] + [
              f"protocol: {p['warmup']} warm-up calls, {how} per configuration, interleaved in blocks of "
              f"{p['block']}; times of the {'whole pipeline' if doc['mode'] == 'end_to_end' else 'model call'} only"
              + (f"; paced at {p['paced_fps']:g} FPS" if p.get("paced_fps") else "")]
    if any(r.get("speed_only") for r in doc["rows"]):
        lines.append("int8*: INT8 made here with random calibration: speed only, its accuracy means nothing")
    if _speedups(doc):
        lines.append(f"vs base: images/s of the row / images/s of its baseline ({doc['baseline']}: the row of the "
                     "same model matching it and closest in the other settings), measured in the same interleaved "
                     "run; above 1.00x is faster")
        names = compare.labels([r for r in doc["rows"] if r["status"] == "ok"])
        bases = list(dict.fromkeys(r["baseline_id"] for r in doc["rows"] if r.get("baseline_id")))
        lines.append("baseline rows: " + ", ".join(names.get(b, b) for b in bases))
        lines.append("fastest: " + "; ".join(
            f"{names.get(r['id'], r['id'])}, {r['throughput_ips']:.1f} img/s"
            + (f" ({r['vs_baseline']:.2f}x)" if r.get("vs_baseline") else "")
            for r in compare.fastest(doc["rows"]).values()))
    elif doc.get("baseline") and sum(1 for r in doc["rows"] if r["status"] == "ok") > 1:
        lines.append(f"vs base: no row matches the baseline {doc['baseline']}")
    notes: dict[str, dict] = {}  # note -> the models it is about
    for r in doc["rows"]:
        if r.get("params_note"):
            notes.setdefault(r["params_note"], {})[r["model"]] = None
    lines += [f"params of {', '.join(models)}: {note}" for note, models in notes.items()]
    if any(r.get("peak_rss_bytes") for r in doc["rows"]):
        lines.append("peak RSS: the bench process's peak resident memory when the row was measured (it includes "
                     "the rows measured before it)")
    if doc.get("peak"):
        lines.append("floor = 2 x MACs x batch / peak; eff = floor / p50; peak " + "; ".join(
            f"threads {k}: {_peak_text(v)}" for k, v in doc["peak"].items()))
    if _mlperf(doc):
        lines.append("MLPerf: MLCommons LoadGen's result of the scenario (SingleStream: early-stopping p90 latency, "
                     "MultiStream: p99 per query, Offline: samples/s) and its verdict")
    return lines


def _peak_text(v: dict) -> str:
    """One thread count's peak with when and under what load each figure was measured."""
    def when(kind: str) -> str:
        at = v.get(f"{kind}_measured") or v.get("measured")
        load = v.get(f"{kind}_load") if f"{kind}_measured" in v else v.get("load_average")
        return (f"measured {at or 'at an unrecorded time'}, "
                + (f"load average {load[0]:.1f}" if load else "load not recorded"))

    return (f"FP32 {v['fp32_gflops']:.0f} GFLOP/s ({when('fp32_gflops')}), "
            f"INT8 {v['int8_gops']:.0f} GOP/s ({when('int8_gops')})")


def to_json(doc: dict) -> str:
    prepare(doc)
    return json.dumps(doc, indent=1) + "\n"


def _csv_record(doc: dict, r: dict, names: dict[str, str]) -> dict:
    lat, env, st = r.get("latency_ms") or {}, r.get("environment") or {}, r.get("stages_ms") or {}
    size = r.get("input_size") or [None, None]
    m = r.get("mlperf") or {}
    rec = {k: r.get(k) for k in CSV_COLUMNS if k in r}
    rec.update({f"{k}_ms": lat.get(k) for k in ("min", "p50", "p90", "p99", "max", "mean", "std")})
    rec.update({"cv": lat.get("cv"), "n": lat.get("n"), "height": size[0], "width": size[1],
                "cpu": env.get("cpu"), "isa": " ".join(env.get("isa", [])), "onnxruntime": env.get("onnxruntime"),
                "edgecnn": env.get("edgecnn"), "git_commit": env.get("git_commit"), "label": names.get(r["id"]),
                "mlperf_scenario": m.get("scenario"), "mlperf_metric": m.get("metric"), "mlperf_result": m.get("value"),
                "mlperf_verdict": m.get("verdict") or ("failed" if "error" in m else None),
                "command": doc.get("command")})
    rec.update({f"{s}_p50_ms": (st.get(s) or {}).get("p50") for s in ("decode", "preprocess", "inference",
                                                                        "postprocess")})
    return rec


def to_csv(doc: dict) -> str:
    prepare(doc)
    names = compare.labels([r for r in doc["rows"] if r["status"] == "ok"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in doc["rows"]:
        w.writerow({k: "" if v is None else v for k, v in _csv_record(doc, r, names).items()})
    return buf.getvalue()


def to_markdown(doc: dict) -> str:
    body = markdown_table(_headers(doc), [_cells(doc, r) for r in doc["rows"]], right=_RIGHT)
    notes = "\n".join(f"- {line}" for line in footnotes(doc))
    return f"# edgecnn bench, {doc['created']}\n\n{body}\n\n{notes}\n"


def to_png(doc: dict) -> bytes:
    """Every chart in one PNG (``plots.png``): speed-up over the baseline, latency distributions, stage
    split (``--image``), latency vs params and vs accuracy."""
    from edgecnn.bench import plots

    prepare(doc)
    return plots.png(doc)


_CHART_TITLES = {"speedup": "Speed-up over the baseline", "distribution": "Latency distribution",
                 "stages": "Stage split (end to end)", "params": "Latency vs size", "accuracy": "Latency vs accuracy"}
_CSS = ("body{font-family:sans-serif;margin:1.5em 2em;color:#222}h1{font-size:1.5em;margin-bottom:.2em}"
        "h2{font-size:1.15em;margin:1.4em 0 .4em}table{border-collapse:collapse;font-size:11px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}"
        "td:first-child,th:first-child{text-align:left}th{background:#f0f0f0;position:sticky;top:0}"
        "td:last-child,th:last-child{white-space:normal;text-align:left;min-width:12em}"
        "tr:nth-child(even) td{background:#fafafa}.scroll{overflow-x:auto}ul{font-size:13px}"
        ".cmd{background:#f6f6f6;padding:6px 9px;font-family:monospace;white-space:pre-wrap;word-break:break-all}"
        "img{max-width:100%;height:auto;display:block;margin:1em 0}.glance{font-size:15px}"
        ".good{color:#17803d;font-weight:bold}.bad{color:#c0272d}")


def to_html(doc: dict, charts: dict[str, bytes] | None) -> str:
    """One self-contained page: the command line, each chart under its heading, the table and its notes.
    ``charts``: name -> PNG (``plots.charts``), or None for a page without charts."""
    prepare(doc)
    esc = html.escape
    heads = _headers(doc)
    head = "".join(f"<th>{esc(h)}</th>" for h in heads)

    def td(h: str, c: object) -> str:
        cls = ""
        if h == "vs base" and str(c).endswith("x"):
            cls = ' class="good"' if float(str(c)[:-1]) > 1.005 else (' class="bad"' if float(str(c)[:-1]) < 0.995
                                                                       else "")
        return f"<td{cls}>{esc(str(c))}</td>"

    body = "".join("<tr>" + "".join(td(h, c) for h, c in zip(heads, _cells(doc, r), strict=True)) + "</tr>"
                   for r in doc["rows"])
    imgs = "".join(f"<img alt=\"{esc(_CHART_TITLES.get(name, name))}\" "
                   f"src=\"data:image/png;base64,{base64.b64encode(data).decode()}\">"
                   for name, data in (charts or {}).items())
    notes = "".join(f"<li>{esc(line)}</li>" for line in footnotes(doc) if not line.startswith("command: "))
    cmd = f"<div class=\"cmd\">{esc(doc['command'])}</div>" if doc.get("command") else ""
    glance = "".join(f"<p class=\"glance\"><b>Fastest</b>: {esc(line[len('fastest: '):])}</p>"
                     for line in footnotes(doc) if line.startswith("fastest: "))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>edgecnn bench</title>"
            f"<style>{_CSS}</style></head><body>"
            f"<h1>edgecnn bench</h1><p>{esc(doc['created'])}, device tag <code>{esc(doc['device_tag'])}</code></p>"
            f"{cmd}{glance}{imgs}<h2>All figures</h2><div class=\"scroll\"><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div><ul>{notes}</ul></body></html>\n")


def write(doc: dict, out_dir: str | Path, stem: str, *, plot: bool = False, page: bool = False) -> list[Path]:
    """Write ``<stem>.json|.csv|.md`` (and ``.png``, ``.html``) under ``out_dir``; returns the paths.
    Everything is rendered before the first file is written."""
    prepare(doc)
    contents: dict[str, str | bytes] = {"json": to_json(doc), "csv": to_csv(doc), "md": to_markdown(doc)}
    if plot:
        contents["png"] = to_png(doc)
    if page:
        from edgecnn.bench import plots

        contents["html"] = to_html(doc, plots.charts(doc))
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
