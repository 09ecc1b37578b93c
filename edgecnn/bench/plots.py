"""The bench report's charts (matplotlib, the ``[plot]`` extra; torch-free), one chart per question:

- speed-up over the baseline row (``compare``), one bar per configuration;
- latency distribution: a box per configuration from every timed call (``samples_ms``);
- stage split (``--image`` runs): p50 of decode / preprocess / inference / postprocess, stacked;
- p50 latency vs parameters (M), and vs top-1 accuracy where a contract knows it.

Every configuration is named by its ``compare.labels`` label (model plus what differs between rows), and
what all rows share goes in the title. ``charts(doc)`` renders each chart as its own PNG (the HTML page),
``png(doc)`` all of them in one figure (``--plot``).
"""

from __future__ import annotations

import io
from collections.abc import Callable

from edgecnn.bench import compare
from edgecnn.errors import require

STAGES = ("decode", "preprocess", "inference", "postprocess")
_COLOURS = {"decode": "#8c6bb1", "preprocess": "#41ab5d", "inference": "#2171b5", "postprocess": "#fd8d3c"}
_ROW_IN = 0.32  # inches per configuration on the bar and box charts


def _plt():
    require("matplotlib", "plot", "--plot/--html")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _measured(doc: dict) -> list[dict]:
    return [r for r in doc["rows"] if r["status"] == "ok" and r.get("latency_ms")]


def _plain_log_axis(axis) -> None:
    """Log-scale ticks written as plain numbers (2, 5, 10, 20), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _spread(values: list[float]) -> bool:
    """True when values span more than 10x: a log axis reads better."""
    lo, hi = min(values), max(values)
    return lo > 0 and hi / lo > 10


def _speedup(ax, doc: dict, rows: list[dict], names: dict[str, str]) -> None:
    rows = [r for r in rows if r.get("vs_baseline")]
    y = list(range(len(rows)))[::-1]
    vals = [r["vs_baseline"] for r in rows]
    colours = ["#999999" if r["id"] == r["baseline_id"] else ("#2ca02c" if v >= 1 else "#d62728")
               for r, v in zip(rows, vals, strict=True)]
    ax.barh(y, vals, color=colours, height=0.6)
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, v, r in zip(y, vals, rows, strict=True):
        ax.text(v, yi, f" {v:.2f}x" + (" (baseline)" if r["id"] == r["baseline_id"] else ""), va="center",
                fontsize=8)
    ax.set_yticks(y, [names[r["id"]] for r in rows], fontsize=8)
    ax.set_xlim(0, max(vals) * 1.25)
    ax.set_xlabel("speed-up over the baseline (images/s ratio; > 1 is faster)")
    ax.set_title(f"Speed-up over the baseline ({doc.get('baseline') or compare.DEFAULT})", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)


def _distribution(ax, doc: dict, rows: list[dict], names: dict[str, str]) -> None:
    rows = [r for r in rows if r.get("samples_ms")]
    data = [r["samples_ms"] for r in rows][::-1]
    import matplotlib

    # matplotlib 3.10 replaced vert=False by orientation="horizontal" (the [plot] extra allows >= 3.5)
    new = tuple(int(p) for p in matplotlib.__version__.split(".")[:2] if p.isdigit()) >= (3, 10)
    ax.boxplot(data, **({"orientation": "horizontal"} if new else {"vert": False}), whis=(1, 99), widths=0.6,
               showfliers=True,
               flierprops={"markersize": 2, "alpha": 0.5}, medianprops={"color": "#d62728"})
    ax.set_yticks(range(1, len(data) + 1), [names[r["id"]] for r in rows][::-1], fontsize=8)
    every = [x for d in data for x in d]
    if _spread(every):
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
    what = "whole pipeline" if doc.get("mode") == "end_to_end" else "model call"
    ax.set_xlabel(f"latency per call, ms ({what}; box: p25-p75, red: p50, whiskers: p1-p99, dots: beyond)")
    ax.set_title("Latency distribution (every timed call)", fontsize=10)
    ax.grid(True, axis="x", which="both", alpha=0.3)


def _stages(ax, doc: dict, rows: list[dict], names: dict[str, str]) -> None:
    rows = [r for r in rows if r.get("stages_ms")][::-1]
    y = range(len(rows))
    left = [0.0] * len(rows)
    for s in STAGES:
        vals = [((r["stages_ms"].get(s) or {}).get("p50") or 0.0) for r in rows]
        ax.barh(y, vals, left=left, color=_COLOURS[s], height=0.6, label=s)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for yi, total in zip(y, left, strict=True):
        ax.text(total, yi, f" {total:.1f} ms", va="center", fontsize=8)
    ax.set_yticks(list(y), [names[r["id"]] for r in rows], fontsize=8)
    ax.set_xlim(0, max(left) * 1.2 if left and max(left) > 0 else 1)
    ax.set_xlabel("ms per call (p50 of each stage)")
    ax.set_title("Where the time goes, end to end", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(True, axis="x", alpha=0.3)


def _scatter(xkey: str) -> Callable:
    def draw(ax, doc: dict, rows: list[dict], names: dict[str, str]) -> None:
        fields = [f for f in compare.varying(rows) if f != "model"]
        groups: dict[str, list[dict]] = {}
        for r in rows:
            groups.setdefault(" ".join(compare.shown(f, compare.field_value(r, f)) for f in fields) or "measured",
                              []).append(r)
        for legend, rs in groups.items():
            pts = [(_x(r, xkey), r["latency_ms"]["p50"], r["model"]) for r in rs]
            pts = [p for p in pts if p[0]]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=legend, s=30)
        for model in dict.fromkeys(r["model"] for r in rows):  # each model named once, by its fastest point
            pts = [(_x(r, xkey), r["latency_ms"]["p50"]) for r in rows if r["model"] == model and _x(r, xkey)]
            if pts:
                ax.annotate(model, min(pts, key=lambda p: p[1]), fontsize=8, xytext=(6, -3),
                            textcoords="offset points")
        xs = [x for r in rows if (x := _x(r, xkey))]
        ys = [r["latency_ms"]["p50"] for r in rows]
        if xkey == "params" and _spread(xs):
            ax.set_xscale("log")
            _plain_log_axis(ax.xaxis)
        if _spread(ys):
            ax.set_yscale("log")
            _plain_log_axis(ax.yaxis)
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "linear":
                axis.get_major_formatter().set_useOffset(False)
                axis.get_major_formatter().set_scientific(False)
        ax.set_xlabel("parameters (M)" if xkey == "params" else "top-1 accuracy, % (from the contract)")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_title(f"Latency vs {'size' if xkey == 'params' else 'accuracy'}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        if len(groups) > 1:
            ax.legend(fontsize=7, title=" ".join(fields), title_fontsize=7)
    return draw


def _x(r: dict, xkey: str) -> float | None:
    if xkey == "params":
        return r["params"] / 1e6 if r.get("params") else None
    top1 = (r.get("accuracy") or {}).get("top1")
    return top1 * 100 if top1 is not None else None


def _charts(doc: dict) -> list[tuple[str, Callable, float]]:
    """(name, draw(ax, doc, rows, names), height in inches) of each chart the data supports."""
    rows = _measured(doc)
    n = len(rows)
    out = []
    if n > 1 and sum(1 for r in rows if r.get("vs_baseline")) > 1:
        out.append(("speedup", _speedup, 1.0 + _ROW_IN * n))
    if any(r.get("samples_ms") for r in rows):
        out.append(("distribution", _distribution, 1.3 + _ROW_IN * n))
    if any(r.get("stages_ms") for r in rows):
        out.append(("stages", _stages, 1.3 + _ROW_IN * n))
    several = len({r["model"] for r in rows}) > 1  # one model: nothing to compare across sizes
    if several and any(r.get("params") for r in rows):
        out.append(("params", _scatter("params"), 4.0))
    if several and any(_x(r, "accuracy") is not None for r in rows):
        out.append(("accuracy", _scatter("accuracy"), 4.0))
    return out


def _title(doc: dict, rows: list[dict]) -> str:
    env = doc["environment"]
    if len(doc.get("hosts") or {}) > 1:
        where = ", ".join(f"{k} ({v['device_tag']})" for k, v in doc["hosts"].items())
    else:
        where = f"{env['cpu']} ({env['physical_cores']} cores)"
    shared = compare.common(rows)
    return f"edgecnn bench on {where}" + (f"\nall rows: {shared}" if shared else "")


def _save(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def charts(doc: dict) -> dict[str, bytes]:
    """Each chart the data supports as its own PNG: name -> bytes (in reading order)."""
    plt = _plt()
    rows = _measured(doc)
    names = compare.labels(rows)
    out = {}
    for name, draw, height in _charts(doc):
        fig, ax = plt.subplots(figsize=(9, height))
        draw(ax, doc, rows, names)
        fig.tight_layout()
        out[name] = _save(fig)
        plt.close(fig)
    return out


def png(doc: dict) -> bytes:
    """Every chart in one figure, under a title naming the host and what all rows share."""
    plt = _plt()
    rows = _measured(doc)
    names = compare.labels(rows)
    parts = _charts(doc)
    heights = [h for _, _, h in parts] or [1.0]
    fig, axes = plt.subplots(len(heights), 1, figsize=(9, sum(heights) + 0.8), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for (_, draw, _), ax in zip(parts, axes[:, 0], strict=False):
        draw(ax, doc, rows, names)
    if not parts:
        axes[0, 0].text(0.5, 0.5, "no configuration was measured", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.suptitle(_title(doc, rows), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the two-line title
    data = _save(fig)
    plt.close(fig)
    return data
