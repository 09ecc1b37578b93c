"""Detector recipes against torchvision's curve (issue 18): mAP per epoch of edgecnn's SSDLite detectors
trained from scratch with ``edgecnn train`` beside torchvision's SSDLite320-MobileNetV3 trained on the
same images (``digits_detect_tv.py``, in a scratch environment with torchvision), on the generated
digits set of ``digits_detect_data.py``. Not a test.

    python benchmarks/digits_detect_data.py --out /tmp/dd --train 600 --val 150 --size 128 --seed 1
    /work/scratch-tv/bin/python benchmarks/digits_detect_tv.py --data /tmp/dd --out /tmp/runs/tv --size 128
    edgecnn train ssdlite_mobilenetv2 --data /tmp/dd --input-size 128 --threads 1 --out /tmp/runs/v2
    python benchmarks/digits_detect.py report --data /tmp/dd --run "torchvision SSDLite320-MNv3=/tmp/runs/tv" \\
        --run "edgecnn ssdlite_mobilenetv2=/tmp/runs/v2" --name digits_detect_128px

``report`` reads each run folder: edgecnn's ``log.json`` (val mAP per epoch, computed in training by
``edgecnn eval``'s code), torchvision's ``dets_<epoch>.json`` (scored here by pycocotools against the
val annotations, at 100 detections per image as edgecnn's), and writes ``<name>.csv``, ``.md`` and ``.png``
under ``benchmarks/results/<device-tag>/``, with the host line (CPU model, ISA flags, load average).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
from pathlib import Path

from host import describe, results_dir  # benchmarks/host.py


def score_torchvision(run: Path, data: Path) -> list[dict]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / "annotations" / "instances_val.json"))
    log = json.loads((run / "log.json").read_text())
    rows = []
    for row in log["rows"]:
        dets = json.loads((run / f"dets_{row['epoch']}.json").read_text())
        m50 = m = 0.0
        if dets:
            with contextlib.redirect_stdout(io.StringIO()):
                ev = COCOeval(gt, gt.loadRes(dets), "bbox")
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            m, m50 = float(ev.stats[0]), float(ev.stats[1])
        rows.append({"epoch": row["epoch"], "val_map50": m50, "val_map": m, "images_per_s": row["images_per_s"]})
    return rows


def read_run(run: Path, data: Path) -> tuple[list[dict], str]:
    if (run / "dets_1.json").exists():
        log = json.loads((run / "log.json").read_text())
        a = log["args"]
        recipe = (f"torchvision (torch {log['torch']}), SGD lr {a['lr']:g} wd {a['weight_decay']:g} "
                  f"batch {a['batch_size']}, cosine over {a['schedule_epochs']} epochs")
        return score_torchvision(run, data), recipe
    import torch

    history = json.loads((run / "log.json").read_text())
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    t = ckpt["config"]["train"]
    recipe = (f"{t['optimizer']} lr {t['lr'] or 'default'} batch {t['batch_size']}, {t['schedule']} over "
              f"{t['epochs']} epochs, warm-up {t['warmup_epochs']}, augment {t['augment']}")
    return [{k: r[k] for k in ("epoch", "val_map50", "val_map", "images_per_s")} for r in history], recipe


def report(args: argparse.Namespace) -> None:
    data = Path(args.data)
    runs = {}
    for spec in args.run:
        label, _, path = spec.partition("=")
        runs[label] = read_run(Path(path), data)
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{args.name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "epoch", "val_map50", "val_map", "images_per_s"])
        for label, (rows, _) in runs.items():
            for r in rows:
                w.writerow([label, r["epoch"], f"{r['val_map50']:.4f}", f"{r['val_map']:.4f}",
                            f"{r['images_per_s']:.2f}"])
    epochs = max(len(rows) for rows, _ in runs.values())
    head = "| run | " + " | ".join(f"ep {e}" for e in range(1, epochs + 1)) + " |"
    lines = [f"# {args.name}: mAP@.50 / mAP@[.50:.95] per epoch (benchmarks/digits_detect.py)", "",
             f"Host: {describe()}; load average at report {os.getloadavg()[0]:.1f} "
             f"(during the runs: {args.load or 'see the run notes'}).", "",
             f"Data: {data.name}: {args.data_note}", "", head, "|---|" + "---:|" * epochs]
    for label, (rows, _) in runs.items():
        cells = [f"{r['val_map50']:.3f} / {r['val_map']:.3f}" for r in rows] + [""] * (epochs - len(rows))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Recipes:", ""] + [f"- {label}: {recipe}" for label, (_, recipe) in runs.items()]
    lines += ["", "edgecnn's figures: validation mAP in training (`edgecnn eval`'s code, conf 0.001, 100 detections); "
              "torchvision's: its eval-mode detections (score > 0.001, 100 per image) by pycocotools.", ""]
    if args.notes:
        lines += [args.notes, ""]
    (out / f"{args.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, (rows, _) in runs.items():
        for ax, key in zip(axes, ("val_map50", "val_map"), strict=True):
            ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], marker="o", label=label)
    for ax, title, target in zip(axes, ("mAP@.50", "mAP@[.50:.95]"), (0.92, 0.70), strict=True):
        ax.axhline(target, color="grey", ls="--", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"{args.name}.png", dpi=80)


def anchors_table(args: argparse.Namespace) -> None:
    """Anchor coverage of the training boxes (``edgecnn.train.anchor_fit``) per input size, with the
    default anchor scales (0.2-0.95) and with smaller ones: what limits SSDLite on small objects."""
    from edgecnn import registry
    from edgecnn.nn.detection import DefaultBoxes
    from edgecnn.train.anchor_fit import coverage, fit_scales, network_boxes
    from edgecnn.train.coco import open_detection_data

    data = open_detection_data(args.data)
    print("| model | input | anchor scales | anchors | objects with no anchor at IoU 0.5 | anchors per object |")
    print("|---|---:|---|---:|---:|---:|")
    for size in args.sizes:
        model = registry.build(args.model, num_classes=len(data.classes) + 1, input_size=size)
        boxes = network_boxes(data.train.images, model.preprocess)
        for lo, hi in ((0.2, 0.95), (0.1, 0.6)):
            anchors = DefaultBoxes(model.box_generator.aspect_ratios, lo, hi)(model._grid(size, size), (size, size))
            c = coverage(boxes, anchors)
            print(f"| {args.model} | {size} | {lo}-{hi} | {len(anchors)} | {c['uncovered']:.1%} "
                  f"| {c['positives']:.2f} |")
        fit = fit_scales(model, data.train.images, model.preprocess)  # what train --anchors auto chooses
        s, c = fit["scales"], fit["fitted"]
        print(f"| {args.model} | {size} | auto: {s[0]:.2f}-{s[5]:.2f} | {len(model.anchors)} | {c['uncovered']:.1%} "
              f"| {c['positives']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--data", required=True, help="the COCO root the runs trained on")
    r.add_argument("--run", action="append", required=True, help="LABEL=RUN_FOLDER (edgecnn or torchvision)")
    r.add_argument("--name", default="digits_detect")
    r.add_argument("--data-note", default="")
    r.add_argument("--load", default="", help="load averages seen during the runs")
    r.add_argument("--notes", default="")
    c = sub.add_parser("anchors")
    c.add_argument("--data", required=True)
    c.add_argument("--model", default="ssdlite_mobilenetv2")
    c.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 320])
    args = ap.parse_args()
    if args.cmd == "report":
        report(args)
    else:
        anchors_table(args)


if __name__ == "__main__":
    main()
