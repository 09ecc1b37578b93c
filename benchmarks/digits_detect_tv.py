"""torchvision's SSDLite320-MobileNetV3-Large trained from scratch on a COCO root (the digits set of
``digits_detect_data.py``): the reference curve ``digits_detect.py`` sets edgecnn's beside. Runs in a
scratch environment with torchvision (never an edgecnn dependency); needs no edgecnn and no
pycocotools: after every epoch it writes the validation detections as COCO results
(``dets_<epoch>.json``, score > 0.001, 100 per image) that ``digits_detect.py score`` rates with
pycocotools, the code ``edgecnn eval`` uses.

Protocol (issue 18's): weights and backbone random (torchvision's init), SGD momentum 0.9, cosine over
``--schedule-epochs`` (30) after a one-epoch linear warm-up, of which the first ``--epochs`` run; no
augmentation; input stretched to ``--size`` (torchvision's transform with a fixed size).

    /work/scratch-tv/bin/python benchmarks/digits_detect_tv.py --data /tmp/digits-det --out /tmp/tv --size 128
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import ssdlite320_mobilenet_v3_large


def load(root: Path, split: str) -> list[tuple[int, torch.Tensor, dict]]:
    doc = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    anns: dict[int, list] = {}
    for a in doc["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    out = []
    for im in doc["images"]:
        x = torch.from_numpy(np.array(Image.open(root / split / im["file_name"]).convert("RGB"))).permute(2, 0, 1)
        a = anns.get(im["id"], [])
        boxes = torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (o["bbox"] for o in a)],
                             dtype=torch.float32).reshape(-1, 4)
        out.append((im["id"], x, {"boxes": boxes, "labels": torch.tensor([o["category_id"] for o in a],
                                                                            dtype=torch.int64)}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--schedule-epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--weight-decay", type=float, default=4e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val = load(root, "train"), load(root, "val")
    num_classes = 1 + len(json.loads((root / "annotations" / "instances_train.json").read_text())["categories"])
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes,
                                          detections_per_img=100)
    model.transform.min_size, model.transform.max_size = (args.size,), args.size
    model.transform.fixed_size = (args.size, args.size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    steps = len(train) // args.batch_size
    total, warm = steps * args.schedule_epochs, steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    rows, step = [], 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        t0, loss_sum = time.perf_counter(), 0.0
        for b in range(steps):
            batch = [train[i] for i in order[b * args.batch_size:(b + 1) * args.batch_size].tolist()]
            for g in opt.param_groups:
                g["lr"] = args.lr * factor(step)
            losses = model([x.float() / 255 for _, x, _ in batch], [t for _, _, t in batch])
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            step += 1
        seconds = time.perf_counter() - t0
        model.eval()
        dets = []
        with torch.no_grad():
            for k in range(0, len(val), 32):
                chunk = val[k:k + 32]
                for (image_id, _, _), r in zip(chunk, model([x.float() / 255 for _, x, _ in chunk]), strict=True):
                    for box, score, label in zip(r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist(),
                                                 strict=True):
                        dets.append({"image_id": image_id, "category_id": label, "score": round(score, 5),
                                     "bbox": [round(box[0], 2), round(box[1], 2), round(box[2] - box[0], 2),
                                              round(box[3] - box[1], 2)]})
        (out / f"dets_{epoch}.json").write_text(json.dumps(dets))
        rows.append({"epoch": epoch, "train_loss": loss_sum / steps, "lr": opt.param_groups[0]["lr"],
                     "images_per_s": steps * args.batch_size / seconds, "seconds": seconds})
        print(json.dumps(rows[-1]), flush=True)
        (out / "log.json").write_text(json.dumps({"args": vars(args), "torch": torch.__version__,
                                                  "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
