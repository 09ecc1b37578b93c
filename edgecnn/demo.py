"""The main job end to end on built-in data, as ``edgecnn demo`` runs it:

1. the zoo: build and profile a few models, check parameters/MACs against their cards;
2. data: the synthetic ``shapes`` set (ImageFolder, deterministic from the seed);
3. train a model on it (PyTorch);
4. export the best checkpoint to ONNX with its deploy contract, through the parity gate;
5. quantize it to INT8 (calibrated on the validation images) with the agreement report;
6. run both files torch-free (the device runtime) on the validation folder: accuracy and speed;
7. detection: a shapes COCO set, an SSDLite training sized to about a minute and a half on 2 cores,
   export, ``infer --save`` (annotated images) and ``eval`` (COCO mAP by pycocotools) of the exported file.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecnn import registry
from edgecnn.errors import EdgeCNNError

ZOO_CHECK = ("simplecnn", "lenet5", "mobilenetv1", "mobilenetv2", "resnet18")
SPEED_BATCH = 16  # stage 6 times batch 1 and a batch of this many images (fewer when the folder has fewer)

# Stage 7, sized to the demo's budget (3 minutes on 2 cores for the whole demo). SSDLite's anchors are fixed
# fractions of the input and its first map has stride 16: at a 64 px input that map is 4x4 and half the shapes
# overlap no anchor by IoU 0.5 (mAP@.50 0.40 after 6 epochs). So the network sees the 64 px images letterboxed up
# to 128 px (first map 8x8: 9% of the shapes left uncovered) at width 0.5, whose training step costs 1.1-1.4x
# what width 1.0 cost at 64 px (benchmarks/results/intel-xeon-2c-amx/demo_detect.md). The shapes are large (radius
# 0.15-0.3 of the image), one to three per image, on the two quieter textures, and each class keeps its own hue
# (red circles, green triangles, blue squares, yellow stars). Fresh images seen a few times each, no augmentation.
# AdamW at 6e-3: the narrower network wants it (4 epochs: mAP@.50 0.952, at 3e-3 0.827).
DET_EPOCHS, DET_IMAGES, DET_SIZE, DET_INPUT, DET_WIDTH = 4, 1600, 64, 128, 0.5  # image side, network input side
DET_STYLE = {"most": 3, "radius": (0.15, 0.3), "backgrounds": ("grain", "gradient"),  # train.shapes.DetectStyle
             "class_hues": True}
DET_TRAIN = {"batch_size": 16, "optimizer": "adamw", "lr": 6e-3, "warmup_epochs": 0.3, "augment": False}
DET_DRAW_SIDE = 256  # annotated copies drawn at least this large: boxes and tags legible


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
    det_epochs: int = DET_EPOCHS  # detection stage; 0 skips it
    det_images: int = DET_IMAGES
    det_size: int = DET_SIZE  # image side of the detection data
    det_input: int = DET_INPUT  # the detector's input side (the images are letterboxed to it)
    det_width: float = DET_WIDTH  # the detector's width multiplier
    threads: int | None = None  # torch and onnxruntime threads; None: edgecnn.threads.resolve()
    speed_rounds: int = 3  # interleaved passes over the validation folder per file and batch size (stage 6)


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


def device_side(files: dict[str, Path], folder: Path, threads: int, rounds: int) -> dict:
    """Each ONNX file through the torch-free runtime (Engine + Predictor, as ``infer``) over an
    ImageFolder split: top-1, and speed measured alike for every file at batch 1 and at a batch of up
    to 16: whole passes over the folder, interleaved (order reshuffled each round) after one untimed
    pass each, medians of ``rounds``. ``network_ms``: the session calls alone, per image;
    ``images_per_s``: end to end (decode, preprocess, network, post-processing)."""
    import random

    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine
    from edgecnn.runtime.sources import expand, iter_images

    images = list(iter_images(expand([folder])))
    batches = (1, min(SPEED_BATCH, len(images)))
    engines = {name: Engine(path, provider="cpu", threads=threads) for name, path in files.items()}
    out: dict = {"images": len(images), "batches": batches, "threads": threads, "rounds": rounds,
                 **{name: {} for name in files}}
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}

    def one_pass(name: str, batch: int) -> None:
        predictor = Predictor(engines[name], topk=1)
        t0 = time.perf_counter()
        correct = 0
        for r in predictor.predict(images, batch=batch):
            if r.error:
                raise EdgeCNNError(f"{r.file.path}: {r.error}")
            correct += r.predictions[0]["label"] == r.file.rel.parts[0]
        seconds = time.perf_counter() - t0
        runs.setdefault((name, batch), []).append((len(images) / seconds, predictor.stats.infer_s / len(images) * 1e3))
        out[name]["top1"] = correct / max(len(images), 1)

    keys = [(name, batch) for name in files for batch in batches]
    for key in keys:
        one_pass(*key)  # untimed: first-run costs, page faults, pool start
    runs.clear()
    for r in range(rounds):
        random.Random(r).shuffle(keys)
        for key in keys:
            time.sleep(0.05)  # settle: the previous pass's pool threads stop spinning
            one_pass(*key)
    for (name, batch), rs in runs.items():
        out[name][f"b{batch}_images_per_s"] = statistics.median(r[0] for r in rs)
        out[name][f"b{batch}_network_ms"] = statistics.median(r[1] for r in rs)
    return out


def speed_lines(side: dict) -> list[str]:
    """What stage 6's speed columns measured, and INT8's speed-up on each measure."""
    fp32, int8, (b1, bn) = side["fp32"], side["int8"], side["batches"]
    net = {b: fp32[f"b{b}_network_ms"] / int8[f"b{b}_network_ms"] for b in (b1, bn)}
    e2e = int8[f"b{bn}_images_per_s"] / fp32[f"b{bn}_images_per_s"]
    verdict = "faster" if net[bn] >= 1.2 else "barely faster" if net[bn] >= 1.0 else "NOT faster"
    t = side["threads"]
    return [f"speed: {side['images']} images a pass, FP32 and INT8 passes interleaved, medians of {side['rounds']}, "
            f"{t} thread{'s' if t > 1 else ''}; network = the session calls alone, end to end adds decode, "
            "preprocessing and post-processing (the same work for both files)",
            f"INT8 vs FP32: network {net[b1]:.2f}x at batch {b1} and {net[bn]:.2f}x at batch {bn}; end to end "
            f"{e2e:.2f}x at batch {bn} (INT8 is {verdict} than FP32 here, by the network at batch {bn})"]


def check(opts: DemoOptions) -> None:
    """Every option, before any work: a bad value fails in one line, not after minutes of earlier stages."""
    from edgecnn.errors import UsageError
    from edgecnn.profile import profile

    for flag, value, least in (("--epochs", opts.epochs, 1), ("--runs", opts.runs, 1), ("--images", opts.images, 16),
                               ("--input-size", opts.input_size, 1)):
        if value < least:
            raise UsageError(f"{flag} must be at least {least}, got {value}")
    if opts.det_epochs < 0:
        raise UsageError(f"--det-epochs must be 0 (skip detection) or more, got {opts.det_epochs}")
    if opts.det_epochs:
        from edgecnn.errors import MissingDependencyError, require

        try:
            require("pycocotools", "eval", "the demo's detection stage (COCO mAP)")
        except MissingDependencyError as e:
            raise MissingDependencyError(f"{e} (or skip that stage with --det-epochs 0)") from e
    for name in (*opts.zoo, opts.model):
        registry.get_card(name)
    if Path(opts.out).exists() and not Path(opts.out).is_dir():
        raise UsageError(f"--out {opts.out} is a file; the demo needs a work folder")
    card = registry.get_card(opts.model)
    # the model must take the input size (a too-small input makes a feature map vanish: one line, now)
    profile(registry.build(opts.model, num_classes=4, input_size=opts.input_size),
            (card.input_channels, opts.input_size, opts.input_size), opts.model)


def run(opts: DemoOptions, say: Callable[[str], None], warn: Callable[[str], None] = lambda m: None) -> dict:
    """Every stage in turn; ``say`` prints the report (stdout), ``warn`` the busy-machine line (stderr)."""
    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.quantize import QuantizeOptions, quantize
    from edgecnn.tables import quantize_report, table
    from edgecnn.threads import apply_torch
    from edgecnn.threads import resolve as resolve_threads
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train
    from edgecnn.train.shapes import write_shapes

    check(opts)
    plan = resolve_threads(opts.threads)  # once, for every stage
    if plan.note():
        warn(plan.note())
    opts = dataclasses.replace(opts, threads=plan.n)
    apply_torch(opts.threads)
    out = Path(opts.out)
    t_start = time.perf_counter()
    say(f"[1/7] zoo: {len(registry.names())} models; building {len(opts.zoo)} and checking them against "
        "their cards")
    say(table(["model", "input", "params", "MACs", "torch ms (p50)", "card"], zoo_check(opts.zoo, opts.runs),
              right=["params", "MACs", "torch ms (p50)"]))

    data = out / f"shapes-{opts.images}-seed{opts.seed}"  # deterministic from (n, seed): reused when present
    say(f"\n[2/7] data: {opts.images} synthetic 64x64 'shapes' images -> {data}")
    if not (data / "val").is_dir():
        write_shapes(data, opts.images, 64, seed=opts.seed)

    run_dir = out / "run"
    say(f"\n[3/7] train {opts.model} at {opts.input_size}px for {opts.epochs} epochs -> {run_dir}")
    result = train(TrainConfig(model=opts.model, data=str(data), epochs=opts.epochs, batch_size=32,
                               optimizer="adamw", input_size=opts.input_size, out=str(run_dir), overwrite=True,
                               seed=opts.seed, device="cpu", threads=opts.threads), echo=say, note_busy=False)

    say("\n[4/7] export best.pt -> ONNX, parity-gated against PyTorch")
    exp = export(ExportOptions(model=str(run_dir / "best.pt"), out=str(out / f"{opts.model}.onnx")))
    worst = max(exp.contract.parity["batches"], key=lambda b: b["rel"])
    say(f"wrote {exp.path}: parity PASSED at batch 1/2/5, worst max-abs {worst['max_abs']:.2e} "
        f"(rel {worst['rel']:.2e}), top-1 agreement {worst['top1']:.0%}")

    say("\n[5/7] quantize to INT8, calibrated on the validation images (torch-free; its speed: stage 6)")
    q = quantize(QuantizeOptions(model=str(exp.path), calib=str(data / "val"),
                                 out=str(out / f"{opts.model}.int8.onnx"), bench=False))
    for line in quantize_report(q.to_dict()):
        say(line)

    say("\n[6/7] the device side: both files through the torch-free runtime on the validation folder")
    side = device_side({"fp32": exp.path, "int8": q.path}, data / "val", opts.threads, opts.speed_rounds)
    fp32, int8 = side["fp32"], side["int8"]
    b1, bn = side["batches"]
    cols = ["model", "val top-1", "size MB", f"network ms/image b{b1}", f"b{bn}", f"images/s end to end b{bn}"]
    rows = [("PyTorch (best.pt)", f"{result['best_top1']:.1%}", "-", "-", "-", "-")]
    for label, r, size in (("ONNX FP32", fp32, exp.size_bytes), ("ONNX INT8", int8, q.int8_bytes)):
        rows.append((label, f"{r['top1']:.1%}", f"{size / 1e6:.2f}", f"{r[f'b{b1}_network_ms']:.3f}",
                     f"{r[f'b{bn}_network_ms']:.3f}", f"{r[f'b{bn}_images_per_s']:.0f}"))
    say(table(cols, rows, right=cols[1:]))
    for line in speed_lines(side):
        say(line)
    detection = detection_stage(opts, out, say) if opts.det_epochs else None
    say(f"\ndone in {time.perf_counter() - t_start:.0f}s; try: edgecnn infer {data / 'val'} --model {exp.path}")
    return {"train": result, "fp32": fp32, "int8": int8, "export": exp.to_dict(), "quantize": q.to_dict(),
            "detection": detection}


def detection_stage(opts: DemoOptions, out: Path, say: Callable[[str], None]) -> dict:
    """[7/7]: shapes COCO data -> ssdlite_mobilenetv2 trained -> ONNX -> annotated images -> mAP, each step timed."""
    from edgecnn.eval.run import EvalOptions, evaluate
    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.runtime import draw
    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine
    from edgecnn.runtime.sources import expand, iter_images
    from edgecnn.threads import resolve as resolve_threads
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train
    from edgecnn.train.shapes import DetectStyle, write_shapes

    threads = opts.threads if opts.threads is not None else resolve_threads(None).n
    size = opts.det_size
    times: dict[str, float] = {}
    t0 = tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        times[name] = time.perf_counter() - tick
        tick = time.perf_counter()

    data = out / f"shapes-det-{opts.det_images}-{size}px-seed{opts.seed}"
    say(f"\n[7/7] detection: {opts.det_images} {size}x{size} shapes images with COCO boxes -> {data}; "
        f"ssdlite_mobilenetv2 (width {opts.det_width:g}) at {opts.det_input}px for {opts.det_epochs} epochs")
    if not (data / "annotations").is_dir():
        write_shapes(data, opts.det_images, size, seed=opts.seed, task="detect", style=DetectStyle(**DET_STYLE))
    lap("data")
    run_dir = out / "run-detect"
    result = train(TrainConfig(model="ssdlite_mobilenetv2", data=str(data), epochs=opts.det_epochs,
                               input_size=opts.det_input, width_mult=opts.det_width, out=str(run_dir), overwrite=True,
                               seed=opts.seed, device="cpu", threads=threads, **DET_TRAIN), echo=say, note_busy=False)
    lap("training")
    exp = export(ExportOptions(model=str(run_dir / "best.pt"), out=str(out / "ssdlite_mobilenetv2.onnx")))
    say(f"wrote {exp.path}: parity PASSED (boxes and scores before NMS, detections after) at batch 1/2/5")
    lap("export")
    saved = out / "detections"
    engine = Engine(exp.path, provider="cpu", threads=threads)
    files = list(iter_images(expand([data / "val"])))[:8]
    n_boxes = 0
    for r in Predictor(engine).predict(files, keep_images=True):  # what `edgecnn infer --save` does
        if not r.error:
            draw.save_image(draw.annotate(r.image, "detect", r.predictions, min_side=DET_DRAW_SIDE),
                            saved / r.file.rel)
            n_boxes += len(r.predictions)
    say(f"infer --save: {n_boxes} boxes (conf > {engine.contract.detection.conf:g}) drawn on {len(files)} images "
        f"-> {saved}/ (drawn at {DET_DRAW_SIDE}px)")
    lap("infer")
    ev = evaluate(EvalOptions(model=str(exp.path), data=str(data), provider="cpu", threads=threads))
    m = ev.metrics
    say(f"eval {exp.path.name} on {ev.images} val images (pycocotools): mAP@[.50:.95] {m['map']:.3f}  "
        f"mAP@.50 {m['map50']:.3f}  mAP@.75 {m['map75']:.3f}  (PyTorch best.pt mAP@.50 {result['best_map50']:.3f})")
    lap("eval")
    total = time.perf_counter() - t0
    per_epoch = times["training"] / max(opts.det_epochs, 1)
    say(f"detection stage: {total:.0f}s = data {times['data']:.0f}s, training {times['training']:.0f}s "
        f"({per_epoch:.0f}s an epoch), export {times['export']:.0f}s, infer {times['infer']:.0f}s, "
        f"eval {times['eval']:.0f}s")
    return {"train": result, "export": exp.to_dict(), "eval": ev.to_dict(), "boxes_drawn": n_boxes,
            "seconds": total, "times": times}
