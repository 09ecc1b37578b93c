"""Fine-tuning from a COCO-layout detector checkpoint against training from scratch, at the same epoch
count, on the shapes detection set: validation mAP@.50 and mAP@[.50:.95] after every epoch. Not a test.

Real COCO weights cannot be downloaded on an offline host, so this builds the honest stand-in: a
detector pretrained on a *different* synthetic detection set (other shapes: pentagon, hexagon, cross,
ring, diamond, crescent; the same kind of textured backgrounds), saved as a bare state dict in
torchvision's layout with a 91-class COCO head (the pretraining classes in COCO's first slots, the
other rows at their fresh init) -- the file ``--init coco`` fetches has exactly that shape. Then on
the shapes set (circle, triangle, square, star)::

    edgecnn train ssdlite320_mobilenetv3_large --data SHAPES --init coco_layout.pth   # fine-tune
    edgecnn train ssdlite320_mobilenetv3_large --data SHAPES                          # from scratch

with the same options otherwise (epochs, batch, optimizer, learning rate, seed). The class head is
re-made for the four shapes (their names are not COCO's); the backbone, extra layers and box head
start from the pretrained file. Run with edgecnn's environment::

    .venv/bin/python benchmarks/finetune_vs_scratch.py --size 96 --images 480 --epochs 6

Results: ``benchmarks/results/<device-tag>/finetune_vs_scratch_<size>px.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
from host import describe, results_dir, write_report  # benchmarks/host.py

MODEL = "ssdlite320_mobilenetv3_large"
PRETRAIN_CLASSES = ("pentagon", "hexagon", "cross", "ring", "diamond", "crescent")


# ------------------------------------------------------------------------------ the pretraining set


def _pretrain_sample(seed: int, index: int, size: int) -> tuple:
    """One image of the pretraining set: 1-4 shapes of PRETRAIN_CLASSES on a shapes-style texture."""
    from PIL import Image, ImageDraw

    from edgecnn.train.shapes import _background, _colour, _to_image, place

    rng = np.random.default_rng([seed, index, 7])
    canvas = _background(rng, size)
    boxes, objects = [], []
    for _ in range(int(rng.integers(1, 5))):
        placed = place(rng, size, (0.08, 0.22), boxes)
        if placed is None:
            continue
        cx, cy, r, box = placed
        cls = int(rng.integers(len(PRETRAIN_CLASSES)))
        ss = 4
        mask = Image.new("L", (size * ss, size * ss), 0)
        d = ImageDraw.Draw(mask)
        theta = rng.uniform(0, 2 * math.pi)
        name = PRETRAIN_CLASSES[cls]
        scaled = [v * ss for v in box]
        if name in ("pentagon", "hexagon", "diamond"):
            n = {"pentagon": 5, "hexagon": 6, "diamond": 4}[name]
            radii = [r if i % 2 == 0 or name != "diamond" else 0.6 * r for i in range(n)]
            pts = [(cx + ri * math.cos(theta + 2 * math.pi * i / n), cy + ri * math.sin(theta + 2 * math.pi * i / n))
                   for i, ri in enumerate(radii)]
            d.polygon([(x * ss, y * ss) for x, y in pts], fill=255)
        elif name == "cross":
            w = r * 0.35
            d.rectangle([(cx - r) * ss, (cy - w) * ss, (cx + r) * ss, (cy + w) * ss], fill=255)
            d.rectangle([(cx - w) * ss, (cy - r) * ss, (cx + w) * ss, (cy + r) * ss], fill=255)
        elif name == "ring":
            d.ellipse(scaled, fill=255)
            d.ellipse([(cx - 0.55 * r) * ss, (cy - 0.55 * r) * ss, (cx + 0.55 * r) * ss, (cy + 0.55 * r) * ss],
                      fill=0)
        else:  # crescent
            d.ellipse(scaled, fill=255)
            off = 0.45 * r
            d.ellipse([(cx - r + off) * ss, (cy - r) * ss, (cx + r + off) * ss, (cy + r) * ss], fill=0)
        alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), np.float32)[..., None] / 255
        ys, xs = np.nonzero(alpha[..., 0] > 0.05)
        if len(xs) == 0:
            continue
        canvas *= 1 - alpha
        canvas += alpha * _colour(rng)
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        boxes.append(box)
        objects.append({"category_id": cls + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": float(alpha.sum()), "iscrowd": 0})
    return _to_image(canvas), objects


def write_pretrain_set(out: Path, n: int, size: int, seed: int) -> None:
    """COCO layout: train/, val/ (every fifth image) and annotations/instances_{train,val}.json."""
    docs = {s: {"images": [], "annotations": [],
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(PRETRAIN_CLASSES)]}
            for s in ("train", "val")}
    for s in docs:
        (out / s).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        split = "val" if i % 5 == 4 else "train"
        im, objects = _pretrain_sample(seed, i, size)
        im.save(out / split / f"{i:06d}.png")
        doc = docs[split]
        doc["images"].append({"id": i, "file_name": f"{i:06d}.png", "width": size, "height": size})
        for o in objects:
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i, **o})
    (out / "annotations").mkdir(exist_ok=True)
    for s, doc in docs.items():
        (out / "annotations" / f"instances_{s}.json").write_text(json.dumps(doc))


# ------------------------------------------------------------------------------ COCO-layout file


def to_coco_layout(best: Path, out: Path, size: int) -> dict:
    """The pretrained checkpoint as a bare torchvision-format state dict with a 91-class COCO head: the
    background and pretraining rows copied into COCO's slots 0..K, the other rows at a fresh init."""
    import torch

    from edgecnn import registry
    from edgecnn.train.checkpoint import load_checkpoint

    ck = load_checkpoint(best)
    k = int(ck["config"]["num_classes"])  # background + pretraining classes
    torch.manual_seed(0)
    coco = registry.build(MODEL, num_classes=91, input_size=size)
    state = coco.state_dict()
    heads = set(coco.head_keys())
    for key, t in ck["state_dict"].items():
        if key not in heads:
            state[key] = t.clone()
            continue
        fresh = state[key].reshape(-1, 91, *state[key].shape[1:]).clone()
        fresh[:, :k] = t.reshape(-1, k, *t.shape[1:])  # per anchor: rows (anchor, class)
        state[key] = fresh.reshape(state[key].shape)
    coco.load_state_dict(state, strict=True)  # the layout --weights coco loads
    torch.save(state, out)
    return {"classes_pretrained": k - 1, "keys": len(state)}


# ------------------------------------------------------------------------------ runs


def _train(data: Path, out: Path, args, init: Path | None = None) -> list[dict]:
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train

    cfg = TrainConfig(model=MODEL, data=str(data), epochs=args.epochs,
                      batch_size=args.batch_size, optimizer="adamw", lr=args.lr, input_size=args.size,
                      out=str(out), overwrite=True, seed=args.seed, device="cpu", threads=args.threads,
                      init=str(init) if init else None)
    return train(cfg, echo=lambda m: print(m, flush=True))["history"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=480, help="images of the shapes set (4/5 train)")
    ap.add_argument("--pretrain-images", type=int, default=960)
    ap.add_argument("--size", type=int, default=96, help="image side and network input")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of both runs on the shapes set")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/edgecnn-finetune")
    ap.add_argument("--out", default=None, help="results folder [default: benchmarks/results/<device-tag>/]")
    ap.add_argument("--reuse-pretrain", action="store_true",
                    help="use the pretraining run already in --work (its last.pt and log.json, however many epochs "
                         "it completed) instead of pretraining again")
    args = ap.parse_args()

    from edgecnn.bench.environment import capture
    from edgecnn.train.shapes import write_shapes

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    pre_data = work / f"pretrain-{args.pretrain_images}-{args.size}"
    shapes = work / f"shapes-{args.images}-{args.size}"
    if not (pre_data / "annotations").is_dir():
        write_pretrain_set(pre_data, args.pretrain_images, args.size, args.seed + 100)
    if not (shapes / "annotations").is_dir():
        write_shapes(shapes, args.images, args.size, seed=args.seed + 1, task="detect")
    env, t0 = capture(), time.perf_counter()
    coco_file = work / "coco_layout.pth"
    if args.reuse_pretrain:
        pre_history = json.loads((work / "pretrain" / "log.json").read_text())
        args.pretrain_epochs = len(pre_history)  # what the report says is what the file holds
    else:
        pre_history = _train(pre_data, work / "pretrain", argparse.Namespace(**{**vars(args),
                                                                                  "epochs": args.pretrain_epochs}))
    layout = to_coco_layout(work / "pretrain" / "last.pt", coco_file, args.size)
    runs = {}
    for name, init in (("fine-tune (--init coco_layout.pth)", coco_file), ("from scratch", None)):
        t = time.perf_counter()
        runs[name] = {"history": _train(shapes, work / name.split()[0], args, init),
                      "seconds": time.perf_counter() - t}
    record = {"args": vars(args), "env": env, "load_average_after": capture()["load_average"],
              "seconds": time.perf_counter() - t0, "pretrain": {"history": pre_history, **layout},
              "runs": runs, "model": MODEL}
    out_dir = Path(args.out) if args.out else results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"finetune_vs_scratch_{args.size}px"
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")

    names = list(runs)
    lines = [f"# Fine-tuning from a COCO-layout checkpoint vs from scratch ({MODEL}, {args.size} px)", "",
             f"Host: {describe()}; load average at start {env['load_average']}, at the end "
             f"{record['load_average_after']}.", "",
             f"Pretraining: {args.pretrain_images} images of {', '.join(PRETRAIN_CLASSES)} "
             f"({args.pretrain_epochs} epochs, final val mAP@.50 {pre_history[-1]['val_map50']:.3f}), saved as a "
             f"91-class torchvision-layout state dict. Shapes set: {args.images} images "
             f"(circle, triangle, square, star; seed {args.seed + 1}), both runs adamw lr {args.lr}, "
             f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}, {args.threads} thread(s).", "",
             "| epoch | " + " | ".join(f"{n} mAP@.50 | mAP@[.50:.95]" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for e in range(args.epochs):
        cells = []
        for n in names:
            row = runs[n]["history"][e]
            cells += [f"{row['val_map50']:.3f}", f"{row['val_map']:.3f}"]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    lines += ["", "Seconds per run: " + ", ".join(f"{n} {runs[n]['seconds']:.0f}" for n in names) + ".", "",
              f"Reproduce: `python benchmarks/finetune_vs_scratch.py --size {args.size} --images {args.images} "
              f"--pretrain-images {args.pretrain_images} --epochs {args.epochs} --pretrain-epochs "
              f"{args.pretrain_epochs} --threads {args.threads}{' --reuse-pretrain' if args.reuse_pretrain else ''}`"
              + (" (--reuse-pretrain: the pretraining run already in --work, however many epochs it completed)"
                 if args.reuse_pretrain else "")]
    write_report(lines, f"{stem}.md", out_dir / f"{stem}.md")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
