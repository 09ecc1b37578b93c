"""Tables and number formatting shared by the commands and the demo (plain text and markdown). No torch.

Below ``cli/`` on purpose: library code (the demo, bench reports) renders tables without importing
the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence


def human(n: float) -> str:
    """12_345_678 -> '12.35M' (for MACs and parameter columns people scan)."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def ms(x: float | None) -> str:
    """Milliseconds with three significant figures at least two decimals ('0.0123', '2.18', '143.2')."""
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.1f}"
    if x >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def percent(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[str] = ()) -> str:
    """Columns padded to their widest cell; columns named in ``right`` are right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        parts = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(r, widths, headers, strict=True)]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[str] = ()) -> str:
    """A GitHub-flavoured markdown table; ``|`` in cells is escaped."""

    def cell(c: object) -> str:
        return ("" if c is None else str(c)).replace("|", "\\|").replace("\n", " ")

    align = ["---:" if h in right else "---" for h in headers]
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def quantize_report(r: dict) -> list[str]:
    """The lines of ``edgecnn quantize``'s report, from ``QuantizeResult.to_dict()``."""
    t, a = r["types"], r["agreement"]
    if a.get("task") == "detect":
        cos = f", score cosine {a['score_cosine_mean']:.4f}" if "score_cosine_mean" in a else ""
        agree = (f"agreement with FP32 on {a['images']} calibration images: detection F1 {a['f1']:.1%} "
                 f"({a['matched']} of {a['fp32_detections']} FP32 / {a['int8_detections']} INT8 boxes matched at "
                 f"IoU >= {a['match_iou']:g}, conf {a['conf']:g}), mean IoU {a['mean_iou']:.3f}{cos}")
        judged = "detection F1"
    else:
        top1 = f"top-1 {a['top1_agreement']:.1%}"
        if a.get("fp32_classes") == 1 and a["images"] > 1:  # agreement on a constant answer proves nothing
            top1 += f" (uninformative: FP32 gives one class to all {a['images']} images)"
        agree = (f"agreement with FP32 on {a['images']} calibration images: {top1}, max-abs logits "
                 f"{a['max_abs_logits']:.3g} (scale {a['logit_scale']:.3g}), cosine {a['cosine_mean']:.4f}")
        judged = "top-1 agreement"
    as_float = (r.get("islands") or {}).get("kept") == "fp32"  # --islands auto found no INT8 variant that pays
    wrote = (f"wrote {r['path']} (the FP32 graph, {human(r['int8_bytes'])}B: INT8 did not pay on this host, see "
             "the islands lines)" if as_float else
             f"wrote {r['path']} (INT8 QDQ, {human(r['int8_bytes'])}B vs FP32 {human(r['fp32_bytes'])}B, "
             f"{r['fp32_bytes'] / max(r['int8_bytes'], 1):.1f}x smaller)")
    lines = [wrote, f"INT8 kernel: {t['kernel']} ({t['activations']} activations x "
             f"{'7-bit ' if t['reduce_range'] else ''}{t['weights']} weights) — {t['reason']}"
             f" [CPU {t['cpu']}: {' '.join(t['isa']) or 'no AVX2/VNNI/NEON flags'}]", agree]
    gate = r["contract"]["parity"]
    if not as_float:  # the FP32 graph keeps its export parity report: there is no INT8 gate to show
        verdict = {True: "PASSED", False: "FAILED", None: "not judged (random-init weights)"}[gate["passed"]]
        lines.append(f"INT8 gate ({judged} >= {gate['min_agreement']:.0%}): {verdict}")
    if "accuracy_fp32" in a:
        lines.append(f"accuracy on the labelled folder: FP32 {a['accuracy_fp32']:.1%}, INT8 {a['accuracy_int8']:.1%}")
    if r.get("latency_ms"):
        lat = r["latency_ms"]
        what = "the written file (FP32)" if as_float else "INT8"
        lines.append(f"latency (batch 1, {lat['protocol']}): FP32 {lat['fp32_p50']:.2f} ms, "
                     f"{what} {lat['int8_p50']:.2f} ms -> {lat['speedup']:.2f}x")
    ops = r["float_ops"]
    if not as_float:
        lines.append("ops left in float: " + (", ".join(f"{k} x{v}" for k, v in ops.items()) if ops else "none"))
    lines += islands_lines(r.get("islands"))
    lines += [f"note: {note}" for note in r.get("notes", [])]
    return lines


SHOWN_ISLANDS = 12  # islands listed one per line in quantize's report, those that saved most first


def islands_lines(isl: dict | None) -> list[str]:
    """The float islands ``quantize --islands auto`` kept, one line each with its per-call cost in both
    precisions as profiled when it was chosen (``edgecnn.islands.Choice.to_dict()``)."""
    if not isl:
        return []
    kept = isl["islands"]
    conf = isl.get("confirm") or {}
    lines = []
    if conf:  # the variants re-timed against FP32, the figures that decided
        low = "second-lowest" if conf.get("trim") else "lowest"
        lines.append(f"INT8 variants against FP32 ({conf['passes']} paired passes, FP32 {conf['fp32_ms']:.2f} ms; "
                     f"pays: median >= {1 + conf['margin']:.2f}x and {low} pass >= 1.00x):")
        for k, v in conf["variants"].items():
            mark = "kept" if k == isl["kept"] else ("pays" if v["pays"] else "does not pay")
            lines.append(f"  {k:<14} {v['ms']:.2f} ms  median {v['median']:.2f}x  {low} {v['low']:.2f}x  {mark}")
    if isl["kept"] == "fp32":
        return lines + ["float islands: the whole graph (INT8 did not pay on this host: deploy the FP32 file)"]
    if not kept:
        return lines + ["float islands: none kept"]
    saved = sum(i["saved_ms"] for i in kept)
    lines.append(f"float islands: {len(kept)} unit(s) kept in float ({isl['excluded_nodes']} nodes, variant "
                 f"{isl['kept']}), per unit {saved:+.3f} ms per call saved against plain INT8 in the profile:")
    shown = sorted(kept, key=lambda i: -i["saved_ms"])[:SHOWN_ISLANDS]  # the rest: the contract, --format json
    width = max(len(i["unit"]) for i in shown)
    for i in shown:
        lines.append(f"  {i['unit']:<{width}}  {i['kind']:<4}  FP32 {i['fp32_ms']:.3f} ms  INT8 {i['int8_ms']:.3f} ms  "
                     f"saved {i['saved_ms']:+.3f} ms  ({i['ops']})")
    if len(kept) > len(shown):
        lines.append(f"  ... and {len(kept) - len(shown)} more (all of them in the contract and --format json)")
    return lines
