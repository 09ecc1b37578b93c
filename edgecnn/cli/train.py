"""``edgecnn train MODEL --data SOURCE``: PyTorch training, transfer learning, resumable checkpoints, DDP.

Thin: options -> ``TrainConfig`` -> ``edgecnn.train.loop.train``; torch is imported inside the
command so ``edgecnn --help`` works without it.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperArgument

from edgecnn.cli import threads as cli_threads
from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json
from edgecnn.errors import UsageError, require
from edgecnn.tables import table


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="A zoo model name (see 'edgecnn models'), or an edgecnn checkpoint "
                                          "to fine-tune."),
    data: str = typer.Option(..., "--data", "-d", help="ImageFolder directory (train/ + val/, or class folders "
                                                         "with --val-split), a directory of MNIST IDX files, "
                                                         "'shapes' / 'shapes:N' (built-in synthetic set), or a "
                                                         "COCO root for a detector."),
    epochs: int = typer.Option(None, "--epochs", "-e", help="Epochs [default: 10; on --resume the run's own]."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Global batch, split over --nproc processes "
                                                                    "[default: 64; detectors 16]."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate [default: sgd 0.05, adamw 0.001]."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd (momentum 0.9) or adamw."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine (to 0), step (x0.1 at 50% and 75% of the "
                                                              "run) or none; after the warm-up."),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", help="Linear warm-up, in epochs (at most half "
                                                                     "the run)."),
    weight_decay: float = typer.Option(None, "--weight-decay", help="[default: sgd 5e-4, adamw 0.05]; never on "
                                                                    "biases and BN."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Label smoothing of the loss, 0-1."),
    input_size: int = typer.Option(None, "--input-size", help="Square input side [default: the model card's, "
                                                              "or the checkpoint's]."),
    width_mult: float = typer.Option(None, "--width-mult", help="Width multiplier of the models that have one "
                                                                "(mobilenets, SSDLite), e.g. 0.5 [default: 1.0, "
                                                                "or the checkpoint's]."),
    in_channels: int = typer.Option(None, "--in-channels", help="1 (grayscale) or 3 [default: the card's]."),
    resize: str = typer.Option(None, "--resize", help="Eval resize policy, stored in the contract: resize_crop "
                                                      "(default), letterbox or stretch."),
    val_split: float = typer.Option(None, "--val-split", help="Fraction of each class held out for validation "
                                                              "when the data has no val split [default: 0.2]."),
    augment: bool = typer.Option(False, "--augment", help="Random-resized crop, horizontal flip, colour jitter."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Random flips under --augment (turn off for digits "
                                                             "and text)."),
    workers: int = typer.Option(0, "--workers", "-j", help="DataLoader worker processes (0: load in the main "
                                                           "process); workers + --threads <= cores."),
    threads: int = cli_threads.option("Torch threads", workers=True),
    seed: int = typer.Option(0, "--seed", help="Seed of the weights, the shuffling, augmentation and 'shapes'."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (cuda when available)."),
    out: str = typer.Option(None, "--out", "-o", help="Run folder for checkpoints and logs "
                                                      "[default: models/<model>-<data>/]."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last complete epoch."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh in an --out that holds a run."),
    init: str = typer.Option(None, "--init", help="Initial weights: imagenet (the published weights, see export "
                                                  "--weights), an edgecnn checkpoint or a torchvision-format "
                                                  "state dict; the head is replaced when the classes differ."),
    freeze: str = typer.Option("none", "--freeze", help="none, backbone (train the head only) or stages:N "
                                                        "(freeze the first N stages)."),
    layer_lr_decay: float = typer.Option(None, "--layer-lr-decay", help="Learning rate x F per stage from the "
                                                                        "head back (e.g. 0.7)."),
    anchors: str = typer.Option("default", "--anchors", help="Detectors: default (the model's anchor scales, "
                                                             "or the checkpoint's) or auto (fitted to the "
                                                             "training boxes at the input size; kept in the "
                                                             "checkpoint and the exported graph)."),
    nproc: int = typer.Option(1, "--nproc", help="DDP processes on this machine (runs torchrun)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (the final metrics)."),
) -> None:
    """Train a zoo model on a classification or COCO detection data set, or fine-tune a checkpoint.

    Writes MODEL's run folder: last.pt (every epoch), best.pt (best validation top-1, or mAP@.50 for
    a detector), log.csv and log.json; prints a line per epoch and, at the end, validation top-1/top-5
    and per-class accuracy (detectors: COCO mAP and per-class AP, by pycocotools). Detectors read a
    COCO root (annotations/instances_{train,val}.json + train/, val/; or split folders holding
    _annotations.coco.json); --init takes a checkpoint of their backbone classifier (mobilenetv2).
    Checkpoints hold the deploy contract (labels, preprocessing) that 'edgecnn export' puts into the
    ONNX file. Transfer learning: --init, --freeze, --layer-lr-decay. Multi-process: --nproc N, or
    torchrun --nproc-per-node N -m edgecnn.train MODEL --data ...

    Example: edgecnn train lenet5 --data data/mnist --augment --no-flip
    """
    check_format(fmt)
    require("torch", "torch", "edgecnn train")
    from edgecnn.train.loop import TrainConfig, train

    cfg = TrainConfig(model=model, data=data, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                      schedule=schedule, warmup_epochs=warmup_epochs, weight_decay=weight_decay,
                      label_smoothing=label_smoothing, input_size=input_size, width_mult=width_mult,
                      in_channels=in_channels,
                      resize=resize, val_split=val_split, augment=augment, flip=flip, workers=workers,
                      threads=threads, seed=seed,
                      device=device, out=out, resume=resume, overwrite=overwrite, init=init, freeze=freeze,
                      layer_lr_decay=layer_lr_decay, anchors=anchors)
    cfg.check()
    if nproc != 1:
        _launch(ctx, cfg, nproc)
        return
    echo = (lambda m: typer.echo(m, err=True)) if fmt == "json" else typer.echo
    try:
        result = train(cfg, echo=echo, warn=lambda m: typer.echo(f"Warning: {m}", err=True))
    except KeyboardInterrupt as e:
        typer.echo("\n" + getattr(e, "message", "Interrupted"), err=True)
        raise typer.Exit(130) from None
    if result is None:  # a DDP rank other than 0
        return
    if fmt == "json":
        emit_json(result)
        return
    typer.echo(summary(result))


def summary(result: dict) -> str:
    """The closing report: validation metrics and the per-class accuracy table."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2%}"

    if result.get("task") == "detect":
        rows = [(c, f"{r['gt']:,}", "-" if r["ap"] is None else f"{r['ap']:.3f}",
                 "-" if r["ap50"] is None else f"{r['ap50']:.3f}") for c, r in result["per_class"].items()]
        head = (f"mAP@.50 {result['val_map50']:.3f}  mAP@[.50:.95] {result['val_map']:.3f}  "
                f"(best mAP@.50 {result['best_map50']:.3f} at epoch {result['best_epoch']}; COCO eval by pycocotools)")
        columns = ["class", "objects", "AP", "AP50"]
    else:
        rows = [(c, f"{r['n']:,}", f"{r['correct']:,}", pct(r["acc"])) for c, r in result["per_class"].items()]
        head = (f"top-1 {pct(result['val_top1'])}  top-5 {pct(result['val_top5'])}  loss {result['val_loss']:.4f}  "
                f"(best top-1 {pct(result['best_top1'])} at epoch {result['best_epoch']})")
        columns = ["class", "images", "correct", "accuracy"]
    files = result["files"]
    return "\n".join([
        "",
        f"validation ({result['val_images']:,} images, epoch {result['epochs']}): {head}",
        table(columns, rows, right=columns[1:]),
        f"saved: {files[0]}, " + ", ".join(os.path.basename(f) for f in files[1:]),
    ])


def _launch(ctx: typer.Context, cfg, nproc: int) -> None:
    """``--nproc N``: check what can be checked here, then run torchrun with the same options."""
    from pathlib import Path

    from edgecnn import registry
    from edgecnn.train import ddp

    if os.environ.get("WORLD_SIZE"):
        raise UsageError("--nproc inside torchrun: torchrun already started the processes")
    if nproc < 1:
        raise UsageError(f"--nproc must be a positive integer, got {nproc}")
    if cfg.batch_size is not None and cfg.batch_size % nproc:
        raise UsageError(f"--batch-size {cfg.batch_size} does not split over {nproc} processes; "
                         f"use a multiple of {nproc}")
    if cfg.model not in registry.REGISTRY and not Path(cfg.model).exists():
        registry.get_card(cfg.model)
    if not (Path(cfg.data).is_dir() or cfg.data.split(":")[0] == "shapes"):
        from edgecnn.train.datasets import open_data

        open_data(cfg.data)  # raises the one-line error for a missing source
    argv = ["--debug"] if (ctx.find_root().obj or {}).get("debug") else []
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if p.name == "nproc" or (not isinstance(p, TyperArgument) and (value is None or value == p.default)):
            continue
        if isinstance(p, TyperArgument):
            argv.append(str(value))
        elif p.is_flag:
            argv.append(p.opts[0] if value else p.secondary_opts[0])
        else:
            argv += [max(p.opts, key=len), str(value)]
    sys.stdout.flush()
    code = ddp.launch(nproc, argv)
    if code:
        raise typer.Exit(code)
