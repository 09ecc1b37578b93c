"""``edgecnn contract FILE.onnx [--out NEW.onnx]``: write the deploy contract into a file's metadata.

For a file edgecnn did not export: the shared options (``prep_options``) say what the graph cannot
(preprocessing, labels, task, output layout, thresholds) and the graph gives the rest (input name,
layout, size or dynamic). For a file that has a contract, the options edit it. Only ``metadata_props``
changes: no re-export, weights and external data untouched. No torch.
"""

from __future__ import annotations

import typer

from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json
from edgecnn.cli.prep_options import Prep, prep_options


def describe(c) -> list[str]:
    """The contract in a few lines (what ``contract`` prints)."""
    from edgecnn.contract import describe_resize

    p = c.preprocess
    size = " (the graph takes other sizes too)" if c.dynamic_size else ""
    lines = [f"task       {c.task}; input '{c.input_name}' {c.input_layout}, {p.channels} channel"
             f"{'s' * (p.channels > 1)}, {p.height}x{p.width}{size}",
             f"preprocess {p.color}, {describe_resize(p)} ({p.interpolation}), x{p.scale:.6g}, mean {list(p.mean)}, "
             f"std {list(p.std)}" + (f", pad {p.pad_value}" if p.resize in ("letterbox", "keep_ratio") else "")]
    if c.labels:
        lines.append(f"labels     {len(c.labels)}: {', '.join(c.labels[:5])}{' …' if len(c.labels) > 5 else ''}")
    if c.task == "detect" and c.detection is not None:
        d = c.detection
        lines.append(f"detection  layout {d.layout}, NMS on the {d.nms}, conf {d.conf:g}, iou {d.iou:g}, "
                     f"max-det {d.max_det}")
    lines.append("outputs    " + ", ".join(o["name"] for o in c.outputs))
    if c.assumed:
        lines.append(f"assumed    {c.assumed} (give --mean and --std to declare it)")
    return lines


@app.command("contract")
@prep_options
def contract_cmd(
    path: str = typer.Argument(..., help="An ONNX file (any exporter; external data beside it is kept)."),
    out: str = typer.Option(None, "--out", "-o", help="Write a copy here instead of changing PATH in place "
                                                      "(its external data files are copied beside it)."),
    show: bool = typer.Option(False, "--show", help="Print the resulting contract; write nothing."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (the whole contract)."),
    prep: Prep = None,
) -> None:
    """Write the deploy contract into an ONNX file, once; then infer, eval, quantize, bench --image and
    inspect read it. A file without a contract gets one from its graph and these options; a file with
    one has it edited. Only the metadata changes: the weights and external data are untouched.

    Example: edgecnn contract net.onnx --size 224 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --labels labels.txt
    """
    check_format(fmt)
    from pathlib import Path

    from edgecnn import contract as cm

    over = prep.overrides()
    src = Path(path)
    model, c, old = cm.declare(src, over, strict=True)
    if out is not None and Path(out).resolve() == src.resolve():
        out = None
    data: list = []
    if not show:
        data = cm.write(src, c, out, model=model)
    if fmt == "json":
        emit_json(c.to_dict())
    else:
        for line in describe(c):
            typer.echo(line)
    if show:
        return
    what = "a new contract" if not old else "the edited contract"
    kept = f"; external data {', '.join(p.name for p in data)} kept" if data else ""
    typer.echo(f"wrote {what} into {out or src} (metadata only, weights untouched{kept})", err=True)
    if c.assumed:
        typer.echo("Warning: no --mean/--std given: the normalization is ImageNet's, assumed, and every command "
                   "will say so until you give them", err=True)
