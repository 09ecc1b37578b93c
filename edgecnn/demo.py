"""The main job end to end on built-in data, as ``edgecnn demo`` runs it:

1. the zoo: build and profile a few models, check parameters/MACs against their cards;
2. data: the synthetic ``shapes`` set (ImageFolder, deterministic from the seed);
3. train a model on it (PyTorch);
4. export the best checkpoint to ONNX with its deploy contract, through the parity gate;
5. quantize it to INT8 (calibrated on the validation images) with the agreement report;
6. run both files torch-free (the device runtime) on the validation folder: accuracy and speed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecnn import registry
from edgecnn.errors import EdgeCNNError

ZOO_CHECK = ("simplecnn", "lenet5", "mobilenetv1", "mobilenetv2", "resnet18")


@dataclass
class DemoOptions:
    out: str = "demo-run"
    model: str = "resnet18"
    epochs: int = 5
    images: int = 480
    input_size: int = 32
    seed: int = 0
    zoo: tuple[str, ...] = ZOO_CHECK
    runs: int = 5


def zoo_check(names, runs: int) -> list[tuple]:
    """Build each model at its default input, count params/MACs against its card, time a forward pass."""
    import torch

    from edgecnn.profile import profile
    from edgecnn.tables import human

    torch.manual_seed(0)
    rows = []
    for name in names:
        card = registry.get_card(name)
        shape = (card.input_channels, card.input_size, card.input_size)
        model = registry.build(name).eval()
        prof = profile(model, shape, name)
        if (prof.trainable_params, prof.macs) != (card.params, card.macs):
            raise EdgeCNNError(f"{name}: counted {prof.trainable_params:,} params / {prof.macs:,} MACs, "
                               f"card says {card.params:,} / {card.macs:,}; the model or its card is wrong")
        x = torch.rand(1, *shape)
        times = []
        with torch.inference_mode():
            model(x)  # warm-up: first-call allocations are not steady state
            for _ in range(runs):
                t0 = time.perf_counter()
                out = model(x)
                times.append((time.perf_counter() - t0) * 1e3)
        if not torch.isfinite(out).all():
            raise EdgeCNNError(f"{name}: non-finite output")
        rows.append((name, "x".join(map(str, shape)), f"{prof.trainable_params:,}", human(prof.macs),
                     f"{statistics.median(times):.1f}", "ok"))
    return rows


def device_accuracy(path: Path, folder: Path, classes: list[str]) -> dict:
    """Top-1 of an ONNX file on an ImageFolder split, through the torch-free runtime (Engine + Predictor)."""
    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine
    from edgecnn.runtime.sources import expand, iter_images

    engine = Engine(path, provider="cpu")
    predictor = Predictor(engine, topk=1)
    t0 = time.perf_counter()
    correct = total = 0
    for r in predictor.predict(iter_images(expand([folder])), batch=16):
        if r.error:
            raise EdgeCNNError(f"{r.file.path}: {r.error}")
        total += 1
        correct += r.predictions[0]["label"] == r.file.rel.parts[0]
    seconds = time.perf_counter() - t0
    return {"top1": correct / max(total, 1), "images": total, "images_per_s": total / seconds,
            "labels": engine.contract.labels == classes}


def check(opts: DemoOptions) -> None:
    """Every option, before any work: a bad value fails in one line, not after minutes of earlier stages."""
    from edgecnn.errors import UsageError
    from edgecnn.profile import profile

    for flag, value, least in (("--epochs", opts.epochs, 1), ("--runs", opts.runs, 1), ("--images", opts.images, 16),
                               ("--input-size", opts.input_size, 1)):
        if value < least:
            raise UsageError(f"{flag} must be at least {least}, got {value}")
    for name in (*opts.zoo, opts.model):
        registry.get_card(name)
    if Path(opts.out).exists() and not Path(opts.out).is_dir():
        raise UsageError(f"--out {opts.out} is a file; the demo needs a work folder")
    card = registry.get_card(opts.model)
    # the model must take the input size (a too-small input makes a feature map vanish: one line, now)
    profile(registry.build(opts.model, num_classes=4, input_size=opts.input_size),
            (card.input_channels, opts.input_size, opts.input_size), opts.model)


def run(opts: DemoOptions, say: Callable[[str], None]) -> dict:
    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.quantize import QuantizeOptions, quantize
    from edgecnn.tables import quantize_report, table
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train
    from edgecnn.train.shapes import CLASSES, write_shapes

    check(opts)
    out = Path(opts.out)
    t_start = time.perf_counter()
    say(f"[1/6] zoo: {len(registry.names())} models; building {len(opts.zoo)} and checking them against "
        "their cards")
    say(table(["model", "input", "params", "MACs", "torch ms (p50)", "card"], zoo_check(opts.zoo, opts.runs),
              right=["params", "MACs", "torch ms (p50)"]))

    data = out / f"shapes-{opts.images}-seed{opts.seed}"  # deterministic from (n, seed): reused when present
    say(f"\n[2/6] data: {opts.images} synthetic 64x64 'shapes' images -> {data}")
    if not (data / "val").is_dir():
        write_shapes(data, opts.images, 64, seed=opts.seed)

    run_dir = out / "run"
    say(f"\n[3/6] train {opts.model} at {opts.input_size}px for {opts.epochs} epochs -> {run_dir}")
    result = train(TrainConfig(model=opts.model, data=str(data), epochs=opts.epochs, batch_size=32,
                               optimizer="adamw", input_size=opts.input_size, out=str(run_dir), overwrite=True,
                               seed=opts.seed, device="cpu"), echo=say)

    say("\n[4/6] export best.pt -> ONNX, parity-gated against PyTorch")
    exp = export(ExportOptions(model=str(run_dir / "best.pt"), out=str(out / f"{opts.model}.onnx")))
    worst = max(exp.contract.parity["batches"], key=lambda b: b["rel"])
    say(f"wrote {exp.path}: parity PASSED at batch 1/2/5, worst max-abs {worst['max_abs']:.2e} "
        f"(rel {worst['rel']:.2e}), top-1 agreement {worst['top1']:.0%}")

    say("\n[5/6] quantize to INT8, calibrated on the validation images (torch-free)")
    q = quantize(QuantizeOptions(model=str(exp.path), calib=str(data / "val"),
                                 out=str(out / f"{opts.model}.int8.onnx")))
    for line in quantize_report(q.to_dict()):
        say(line)

    say("\n[6/6] the device side: both files through the torch-free runtime on the validation folder")
    classes = list(CLASSES)
    fp32 = device_accuracy(exp.path, data / "val", sorted(classes))
    int8 = device_accuracy(q.path, data / "val", sorted(classes))
    rows = [("PyTorch (best.pt)", f"{result['best_top1']:.1%}", "-", "-"),
            ("ONNX FP32", f"{fp32['top1']:.1%}", f"{exp.size_bytes / 1e6:.2f}", f"{fp32['images_per_s']:.0f}"),
            ("ONNX INT8", f"{int8['top1']:.1%}", f"{q.int8_bytes / 1e6:.2f}", f"{int8['images_per_s']:.0f}")]
    say(table(["model", "val top-1", "size MB", "images/s (end to end)"], rows,
              right=["val top-1", "size MB", "images/s (end to end)"]))
    say(f"\ndone in {time.perf_counter() - t_start:.0f}s; try: edgecnn infer {data / 'val'} --model {exp.path}")
    return {"train": result, "fp32": fp32, "int8": int8, "export": exp.to_dict(), "quantize": q.to_dict()}
