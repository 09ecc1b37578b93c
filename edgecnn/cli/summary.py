"""``edgecnn summary NAME``: per-layer shapes, parameters and MACs of a zoo model (torch)."""

from __future__ import annotations

import typer

from edgecnn import registry
from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json, parse_size
from edgecnn.errors import UsageError
from edgecnn.tables import human, table


def _saving_text(saving: dict | None) -> str:
    if not saving:
        return ""
    text = f"{saving['ratio']:.3f}x std conv"
    if "theory" in saving:
        text += f" (1/C_out+1/K^2={saving['theory']:.3f})"
    return text


def _shape_text(shape: list) -> str:
    """[3, 4] -> '3x4'; a detector's [[A, 4], [A, C]] -> 'Ax4, AxC'."""
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape_text(s) for s in shape)
    return "x".join(map(str, shape))


@app.command("summary")
def summary_cmd(
    name: str = typer.Argument(..., help="A zoo model name (see 'edgecnn models')."),
    input_size: str = typer.Option(None, "--input-size", help="Input size: S (square), HxW or H,W."),
    num_classes: int = typer.Option(None, "--num-classes", help="Classes of the head."),
    in_channels: int = typer.Option(None, "--in-channels", help="Input channels (1 for grayscale)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Per-layer output shape, parameters and MACs of a model, with totals.

    Depthwise-separable and inverted-residual blocks show their weights against a standard KxK
    convolution of the same shape.

    Example: edgecnn summary mobilenetv2 --input-size 160
    """
    check_format(fmt)
    card = registry.get_card(name)
    h, w = parse_size(input_size) or (card.input_size, card.input_size)
    if card.fixed_input and h != w:
        raise UsageError(f"{name} takes a square input (its classifier width follows the size), got {h}x{w}")
    channels = card.input_channels if in_channels is None else in_channels  # 0 is an error, not the default
    model = registry.build(name, num_classes=num_classes, in_channels=channels, input_size=h)
    from edgecnn.profile import profile

    prof = profile(model, (channels, h, w), name)
    if fmt == "json":
        emit_json(prof.to_dict())
        return
    rows = [
        (r.name if r.kind == "layer" else f"[{r.name}]", r.type, "x".join(map(str, r.output_shape)),
         f"{r.params:,}", human(r.macs), _saving_text(r.saving))
        for r in prof.rows
    ]
    typer.echo(table(["layer", "type", "output", "params", "MACs", "vs standard conv"], rows,
                     right=["params", "MACs"]))
    typer.echo(
        f"\n{name}: input {channels}x{h}x{w} -> {_shape_text(prof.output_shape)}; "
        f"params {prof.params:,} (trainable {prof.trainable_params:,}); MACs {prof.macs:,} ({human(prof.macs)})"
    )
    onnx = prof.onnx
    if onnx.note() or onnx.buffers:  # why 'edgecnn inspect' and 'bench' count other params on the exported file
        typer.echo(f"ONNX export: {onnx.note() or f'params {onnx.params:,}'}"
                   + (f"; the file also holds constants made from the model's buffers ({', '.join(onnx.buffers)})"
                      if onnx.buffers else ""))
    for p in card.pretrained:  # what --weights imagenet gives, and at which input it was measured
        typer.echo(f"pretrained: {p.tag}{' (--weights imagenet)' if p is card.pretrained[0] else ''}: ImageNet "
                   f"top-1 {p.top1:.2f}% at {p.crop}x{p.crop} (resize {p.resize}, {p.interpolation}); {p.url}")
