"""Train ssdlite_mobilenetv2 on a generated shapes detection set on this CPU and record: the training
time, val COCO mAP@.50 (target >= 0.90) and mAP@[.50:.95] of the PyTorch checkpoint, the FP32 ONNX
file and the INT8 file (target: INT8 within 1 point of FP32), and the per-image latency split
preprocess / inference / decode+NMS at batch 1 (target: NMS under 10% of inference at the contract's
conf). Not a test.

    .venv/bin/python benchmarks/detect_shapes.py --images 600 --size 96 --epochs 16 --threads 1

Every mAP comes from ``edgecnn eval``'s code (pycocotools): the checkpoint run in PyTorch, the two
files in onnxruntime, all through the same ``Predictor`` at conf 0.001 / 100 detections. Results:
``benchmarks/results/<device-tag>/detect_shapes_<size>px[_augment].{md,json,png}`` and one annotated validation image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from host import describe, results_dir  # benchmarks/host.py


def latency(path: Path, files: list, threads: int, rounds: int = 3) -> dict:
    """Per-image medians (ms) of each stage at batch 1 over ``rounds`` passes of ``files``, and the boxes."""
    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine

    engine = Engine(path, provider="cpu", threads=threads)
    pred = Predictor(engine)  # the contract's conf / IoU / max-det: what infer runs
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "decode_nms": []}
    boxes = 0
    list(pred.predict(files[:3]))  # warm-up
    for _ in range(rounds):
        for f in files:
            s0 = (pred.stats.decode_s, pred.stats.infer_s, pred.stats.post_s)
            (res,) = list(pred.predict([f]))
            s1 = (pred.stats.decode_s, pred.stats.infer_s, pred.stats.post_s)
            for key, a, b in zip(stages, s0, s1, strict=True):
                stages[key].append((b - a) * 1e3)
            boxes += len(res.predictions)
    out = {k: statistics.median(v) for k, v in stages.items()}
    out["p90"] = {k: sorted(v)[int(0.9 * (len(v) - 1))] for k, v in stages.items()}
    out["boxes_per_image"] = boxes / (rounds * len(files))
    out["nms_share_of_inference"] = out["decode_nms"] / out["inference"]
    out["conf"] = engine.contract.detection.conf
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--size", type=int, default=96, help="image side and network input")
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (1 on a loaded box)")
    ap.add_argument("--work", default="/tmp/edgecnn-detect-shapes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-augment", dest="augment", action="store_false", help="train without --augment")
    ap.add_argument("--reuse", action="store_true", help="evaluate the run already in --work (no training)")
    ap.add_argument("--out", default=None, help="results folder [default: benchmarks/results/<device-tag>/]")
    args = ap.parse_args()

    import torch

    from edgecnn.bench.environment import capture
    from edgecnn.eval.run import EvalOptions, evaluate
    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.quantize import QuantizeOptions, quantize
    from edgecnn.runtime import draw
    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine
    from edgecnn.runtime.sources import expand, iter_images
    from edgecnn.tables import table
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train
    from edgecnn.train.shapes import write_shapes

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = work / f"shapes-det-{args.images}-{args.size}-seed{args.seed}"
    if not (data / "annotations").is_dir():
        write_shapes(data, args.images, args.size, seed=args.seed, task="detect")
    env_before = capture()
    t0 = time.perf_counter()
    if args.reuse:
        history = json.loads((work / "run/log.json").read_text())
        result = {"epochs": len(history), "history": history, "train_images": None}
        train_s = sum(row["seconds"] for row in history)
    else:
        result = train(TrainConfig(model="ssdlite_mobilenetv2", data=str(data), epochs=args.epochs,
                                   batch_size=args.batch_size, optimizer="adamw", lr=args.lr, input_size=args.size,
                                   augment=args.augment, out=str(work / "run"), overwrite=True, seed=args.seed,
                                   device="cpu"), echo=lambda m: print(m, flush=True))
        train_s = time.perf_counter() - t0
    best = work / "run/best.pt"

    def ev(model: Path) -> dict:
        r = evaluate(EvalOptions(model=str(model), data=str(data), provider="cpu", threads=args.threads))
        return {k: r.metrics[k] for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large")} | {
            "per_class": {n: c["ap50"] for n, c in r.metrics["per_class"].items()}, "images": r.images}

    rows = {"PyTorch (best.pt)": ev(best)}
    exp = export(ExportOptions(model=str(best), out=str(work / "ssdlite_mobilenetv2.onnx")))
    rows["ONNX FP32"] = ev(exp.path)
    int8_error = None
    try:
        q = quantize(QuantizeOptions(model=str(exp.path), calib=str(data / "train"),
                                     out=str(work / "ssdlite_mobilenetv2.int8.onnx"), bench=False))
        rows["ONNX INT8"] = ev(q.path)
    except Exception as e:  # recorded, not hidden
        int8_error = f"{type(e).__name__}: {e}"
        q = None
    files = list(iter_images(expand([data / "val"])))[:40]
    lat = {"FP32": latency(exp.path, files, args.threads)}
    if q is not None:
        lat["INT8"] = latency(q.path, files, args.threads)

    out_dir = Path(args.out) if args.out else results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = Predictor(Engine(exp.path, provider="cpu", threads=args.threads))
    (res,) = list(pred.predict(files[:1], keep_images=True))
    image = draw.annotate(res.image.resize((res.image.width * 3, res.image.height * 3)), "detect",
                          [{**p, "box": [v * 3 for v in p["box"]]} for p in res.predictions])
    stem = f"detect_shapes_{args.size}px{'_augment' if args.augment else ''}"  # other recipes write beside
    draw.save_image(image, out_dir / f"{stem}.png")

    record = {"args": vars(args), "env": env_before, "load_average_after": capture()["load_average"],
              "train_seconds": train_s, "epochs": result["epochs"], "train_images": result["train_images"],
              "history": result["history"], "metrics": rows, "int8_error": int8_error, "latency_ms": lat,
              "size_bytes": {"fp32": exp.size_bytes, "int8": q.int8_bytes if q else None}}
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    table_rows = [(name, fmt(m["map50"]), fmt(m["map"]), fmt(m["map75"])) for name, m in rows.items()]
    lat_rows = [(k, f"{v['preprocess']:.2f}", f"{v['inference']:.2f}", f"{v['decode_nms']:.3f}",
                 f"{v['nms_share_of_inference']:.1%}", f"{v['boxes_per_image']:.1f}") for k, v in lat.items()]
    md = "\n".join([
        "# ssdlite_mobilenetv2 on generated shapes (benchmarks/detect_shapes.py)", "",
        f"Host: {describe()}. Load average at start {env_before['load_average']} (a shared 2-core box: "
        "other jobs ran; times are what this load allowed).", "",
        f"Data: {args.images} {args.size}x{args.size} images (1-4 shapes each, every fifth in val), "
        f"input {args.size}, {args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr:g}, "
        f"{'--augment' if args.augment else 'no augmentation'}, "
        f"{args.threads} thread(s); training {train_s / 60:.1f} min.", "",
        table(["model", "mAP@.50", "mAP@[.50:.95]", "mAP@.75"], table_rows,
              right=["mAP@.50", "mAP@[.50:.95]", "mAP@.75"]), "",
        "COCO eval by pycocotools (`edgecnn eval`), conf 0.001, 100 detections per image."
        + (f" INT8 failed: {int8_error}" if int8_error else ""), "",
        f"Latency per image at batch 1, median ms over {len(files)} val images x 3 (onnxruntime CPU, "
        f"{args.threads} thread(s), conf {lat['FP32']['conf']:g} as in the contract):", "",
        table(["file", "preprocess", "inference", "decode+NMS", "NMS / inference", "boxes"], lat_rows,
              right=["preprocess", "inference", "decode+NMS", "NMS / inference", "boxes"]), "",
        "preprocess includes the PNG decode; decode+NMS is the host side (boxes are decoded in the graph).", ""])
    (out_dir / f"{stem}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
