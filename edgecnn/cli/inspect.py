"""``edgecnn inspect FILE.onnx``: contract, inputs/outputs, opset, ops, params, MACs, precision, size (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json, parse_size
from edgecnn.tables import human


@app.command("inspect")
def inspect_cmd(
    path: str = typer.Argument(..., help="An ONNX file (any exporter)."),
    nodes: bool = typer.Option(False, "--nodes", help="Also list node names (for quantize --exclude)."),
    size: str = typer.Option(None, "--size", help="Count MACs at input size S or HxW [default: the graph's, "
                                                  "else the contract's]."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Show what an ONNX file is and the deploy contract it carries: inputs, outputs, parameters, MACs per
    image, precision and size on disk (with its external data files).

    Example: edgecnn inspect export/mobilenetv2.onnx --format json
    """
    check_format(fmt)
    from edgecnn.onnx_info import inspect_onnx

    info = inspect_onnx(path, nodes=nodes, size=parse_size(size))
    if fmt == "json":
        emit_json(info)
        return
    say = typer.echo
    files = info["files"]
    parts = "" if len(files) == 1 else " = " + " + ".join(f"{Path(f['path']).name} {human(f['bytes'])}B"
                                                           for f in files)
    say(f"file      {info['file']} ({human(info['size_bytes'])}B{parts})")
    say(f"producer  {info['producer']}; opset {', '.join(f'{k} {v}' for k, v in info['opset'].items())}")
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            say(f"{kind[:-1]:<9} {v['name']}: {v['dtype']} [{', '.join(map(str, v['shape']))}]")
    say(f"params    {info['params']:,} in {info['nodes']} nodes")
    if info.get("params_note"):
        say(f"note      {info['params_note']}")
    if info["macs"] is not None:
        at = " at {}x{}".format(*info["macs_size"]) if info["macs_size"] else ""
        say(f"MACs      {info['macs']:,} ({human(info['macs'])}) per image{at}")
    else:
        say(f"MACs      unknown: {info['macs_error'].removeprefix('cannot count MACs: ')}"
            + ("; give the size it runs at with --size" if not info["macs_size"] else ""))
    say(f"precision {info['precision']} (from the {info['precision_source']})")
    say("ops       " + ", ".join(f"{k} x{v}" for k, v in info["ops"].items()))
    c = info["contract"]
    if c is None:
        say("contract  none (not exported by edgecnn" + (f": {info['contract_error']})" if "contract_error" in info
                                                          else ")"))
    else:
        weights = c["weights"] if isinstance(c["weights"], str) else f"{c['weights']['path']} " \
            f"(sha256 {c['weights']['sha256'][:12]}…)"
        say(f"contract  {c['schema']}: {c['task']} model '{c['model']}', {c['precision']}, weights {weights}")
        say("preprocess " + json.dumps(c["preprocess"]))
        if c.get("assumed"):
            say(f"assumed   {c['assumed']} (the source file had no contract; declare it with 'edgecnn contract')")
        if c["labels"]:
            say(f"labels    {len(c['labels'])}: {', '.join(c['labels'][:5])}{' …' if len(c['labels']) > 5 else ''}")
        if c.get("parity") and c["parity"].get("precision") == "int8":
            g = c["parity"]
            verdict = {True: "passed", False: "FAILED", None: "not judged (random-init)"}[g["passed"]]
            what = "detection F1" if c["task"] == "detect" else "top-1 agreement"
            say(f"parity    int8 {verdict}: {what} with FP32 {g['agreement']:.1%} on {g['images']} "
                f"calibration images (gate {g['min_agreement']:.0%})")
        elif c.get("parity") and "nms" in c["parity"]:  # a detector's gate: raw outputs, then final detections
            rows = c["parity"]["batches"]
            rel = max((b[k] for b in rows for k in ("boxes_rel", "scores_rel") if b[k] is not None), default=0.0)
            say(f"parity    {c['parity']['precision']} passed: boxes/scores worst rel {rel:.2e}, final detections "
                f"F1 {min(b['f1'] for b in rows):.3f} ({sum(b['detections'] for b in rows)} boxes, "
                f"{sum(b['ties'] for b in rows)} ties; NMS on the {c['parity']['nms']})")
        elif c.get("parity") and not c["parity"].get("skipped"):
            worst = max(c["parity"]["batches"], key=lambda b: b["rel"])
            say(f"parity    {c['parity']['precision']} passed: worst max-abs {worst['max_abs']:.2e} "
                f"(rel {worst['rel']:.2e}), top-1 {worst['top1']:.0%}")
        elif c.get("parity"):
            say("parity    skipped at export (--no-check)")
        say("versions  " + ", ".join(f"{k} {v}" for k, v in c["versions"].items()))
    if nodes:
        for n in info["node_list"]:
            say(f"node      {n['name']} ({n['op']})")
