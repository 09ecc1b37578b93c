"""Decode + preprocess to one network input: edgecnn's fast and exact decodes vs torchvision, side by side.

    python benchmarks/preprocess_bench.py --photos /tmp/photos            # real photos in that folder
    python benchmarks/preprocess_bench.py --photos /tmp/photos --tv-python /work/tvenv/bin/python --rounds 7

Anchor: torchvision ``decode_image`` + ``transforms.v2`` (Resize(256, antialias) + CenterCrop(224) +
ToDtype + Normalize; for letterbox: resize to fit 320 + pad 114 + scale), run by ``--tv-python`` (a scratch
environment with torch + torchvision; never an edgecnn dependency). Also "today": ``runtime/image.py`` as
of ``--baseline`` (a git commit, loaded from git into the edgecnn worker), for the speed-up over it.

Test files are made under a temporary folder from the first real photograph of ``--photos``
(``benchmarks/photos.py``): a 640x480 crop as JPEG (quality 90) and PNG, and a 4032x3024 "phone"
image (bicubic upscale + mild sensor-like grain) as JPEG (quality 92, ~2 MB) and PNG.

Timing: each side runs in its own process, single-threaded (``torch.set_num_threads(1)``: on a device
the other core runs the model); configurations are interleaved in blocks across the processes (a
settle pause, 2 untimed calls, ``--block`` timed calls, order reshuffled every round); p10 and median
times and their ratios from one run. Exactness: max / mean absolute difference, in 0-255 pixel levels, of every output
against edgecnn's exact decode and against torchvision. Writes
``benchmarks/results/<device-tag>/preprocess.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRANSFORMS = ("crop224", "letterbox320")


# ----------------------------------------------------------------------------------------- workers
# A worker reads one JSON request a line ({"file", "transform", "impl", "warmup", "block"}, or
# {"save": path, ...} to write its output as .npy) and answers one JSON line of times in ms.


def _edgecnn_worker(baseline: str | None) -> None:
    import dataclasses

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from edgecnn.contract import Preprocess
    from edgecnn.runtime import image

    today = _module_at(baseline) if baseline else None
    specs = {"crop224": Preprocess.imagenet(224),
             "letterbox320": Preprocess(320, 320, resize="letterbox", mean=(0.0,) * 3, std=(1.0,) * 3)}
    impls = {"fast": lambda f, s: image.preprocess_file(f, s)[0],
             "exact": lambda f, s: image.preprocess_file(f, dataclasses.replace(s, decode="exact"))[0]}
    if today is not None:
        impls["today"] = lambda f, s: today.preprocess_file(f, s)[0]
    impls["fast decode only"] = lambda f, s: np.asarray(image.load_image(f, s))
    _serve(lambda req: impls[req["impl"]](req["file"], specs[req["transform"]]), np.save)


def _module_at(commit: str):
    """``edgecnn/runtime/image.py`` as it was at ``commit``, imported as a separate module."""
    import importlib.util

    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:edgecnn/runtime/image.py"],
                          capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "image_today.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("image_today", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["image_today"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _torchvision_worker() -> None:
    import numpy as np
    import torch
    from torchvision.io import decode_image
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    torch.set_num_threads(1)
    crop = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(MEAN), list(STD))])

    def letterbox(img):
        h, w = img.shape[-2:]
        s = min(320 / w, 320 / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        left, top = (320 - nw) // 2, (320 - nh) // 2
        img = F.resize(img, [nh, nw], antialias=True)
        img = F.pad(img, [left, top, 320 - nw - left, 320 - nh - top], fill=114)
        return F.to_dtype(img, torch.float32, scale=True)

    def run(req):
        img = decode_image(req["file"], mode="RGB")
        if req["impl"] == "torchvision decode only":
            return img
        return (crop if req["transform"] == "crop224" else letterbox)(img)

    _serve(run, lambda path, x: np.save(path, x.numpy()))


def _serve(run, save) -> None:
    for line in sys.stdin:
        req = json.loads(line)
        if "save" in req:
            save(req["save"], run(req))
            print("{}", flush=True)
            continue
        for _ in range(req["warmup"]):
            run(req)
        times = []
        for _ in range(req["block"]):
            t0 = time.perf_counter()
            run(req)
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps(times), flush=True)


# ------------------------------------------------------------------------------------------ images


def make_images(photos: Path, out: Path) -> dict[str, Path]:
    """The four test files (vga/phone x JPEG/PNG) from the first photo of ``photos`` (``photos.py``)."""
    from photos import load_photos, make

    im = load_photos(photos)[0]
    files = {}
    for tag, size, grain in (("vga", (640, 480), 0.0), ("phone", (4032, 3024), 3.0)):
        r = make(im, size, grain)
        for fmt, kw in (("jpg", {"quality": 92 if grain else 90}), ("png", {})):
            files[f"{tag}.{fmt}"] = out / f"{tag}_{size[0]}x{size[1]}.{fmt}"
            r.save(files[f"{tag}.{fmt}"], **kw)
    return files


def agreement(model: Path, folder: Path, out: Path | None) -> None:
    """What the fast decode changes for a trained classifier: per image of ``folder``, the exact and
    the fast tensors (pixel differences in levels) and the model's top-1 on each; top-1 accuracy too
    where a file name starts with its class index (``07_...``). Writes ``decode_agreement.md``."""
    import dataclasses

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from host import describe, write_report

    from edgecnn.runtime.image import REDUCED, load_image, preprocess_file
    from edgecnn.runtime.session import Engine

    engine = Engine(model)
    spec = dataclasses.replace(engine.contract.preprocess, decode="fast")
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None] / spec.scale
    rows, same, right = [], 0, {"fast": 0, "exact": 0}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for f in files:
        xf, _ = preprocess_file(f, spec)
        xe, _ = preprocess_file(f, dataclasses.replace(spec, decode="exact"))
        k = load_image(f, spec).info.get(REDUCED, (0, 0, 1))[2]
        name = engine.output_names[0]
        tf, te = (int(engine.run(x[None])[name][0].argmax()) for x in (xf, xe))
        same += tf == te
        d = np.abs(xf - xe) * std
        truth = int(f.name[:2]) if f.name[:2].isdigit() and f.name[2:3] == "_" else None
        for key, t in (("fast", tf), ("exact", te)):
            right[key] += truth is not None and t == truth
        rows.append((f.name, k, float(d.max()), float(d.mean()), tf, te))
    labelled = sum(1 for f in files if f.name[:2].isdigit() and f.name[2:3] == "_")
    lines = ["# Fast vs exact decode: what it changes for a trained classifier", "",
             f"Host: {describe()}.", f"Model: {model.name} ({engine.contract.model}, input "
             f"{spec.height}x{spec.width}, {spec.resize}); images: {len(files)} in {folder}.", "",
             f"**Top-1 agreement fast vs exact: {same}/{len(files)} ({100 * same / len(files):.1f}%).** "
             + (f"Top-1 accuracy: fast {right['fast']}/{labelled}, exact {right['exact']}/{labelled}. "
                if labelled else "")
             + f"Pixel difference (levels of 255) over all images: max {max(r[2] for r in rows):.2f}, "
             f"mean of the per-image means {sum(r[3] for r in rows) / len(rows):.3f}.", "",
             "| image | reduced 1/k | max diff | mean diff | top-1 fast | top-1 exact |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {k} | {mx:.2f} | {mn:.3f} | {a} | {b} |" for n, k, mx, mn, a, b in rows]
    write_report(lines, "decode_agreement.md", out)


# -------------------------------------------------------------------------------------------- main


class Worker:
    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, req: dict):
        self.proc.stdin.write(json.dumps(req) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.proc.args} died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, help="folder of real photographs (JPEG/PNG); required")
    ap.add_argument("--tv-python", default="/work/tvenv/bin/python", help="python with torch + torchvision")
    ap.add_argument("--baseline", default="cbb8d69", help="git commit whose runtime/image.py is 'today'")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--agree-model", type=Path, help="also: top-1 agreement fast vs exact of this classifier...")
    ap.add_argument("--agree-dir", type=Path, help="...over these images (a name starting 'NN_' is class NN)")
    ap.add_argument("--worker", choices=["edgecnn", "torchvision"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "edgecnn":
        return _edgecnn_worker(args.baseline)
    if args.worker == "torchvision":
        return _torchvision_worker()
    if args.agree_model:
        return agreement(args.agree_model, args.agree_dir, args.out)
    if args.photos is None:
        ap.error("--photos is required")

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from host import describe, write_report

    tmp = Path(tempfile.mkdtemp(prefix="preprocess_bench_"))
    files = make_images(args.photos, tmp)
    me = [sys.executable, __file__, "--worker"]
    ours = Worker([*me, "edgecnn", "--baseline", args.baseline])
    tv = Worker([args.tv_python, __file__, "--worker", "torchvision"])
    impls = {"fast": ours, "exact": ours, "today": ours, "torchvision": tv}
    stages = {"fast decode only": ours, "torchvision decode only": tv}  # where the time goes
    configs = [(f, t, i) for f in files for t in TRANSFORMS for i in impls]
    configs += [(f, "crop224", i) for f in files for i in stages]

    # exactness first (one output each, compared in this process)
    diffs = {}
    for f in files:
        for t in TRANSFORMS:
            out = {}
            for i, w in impls.items():
                path = tmp / f"{i}.npy"
                w.ask({"save": str(path), "file": str(files[f]), "transform": t, "impl": i})
                out[i] = np.load(path)
            std = np.asarray(STD if t == "crop224" else (1.0,) * 3, dtype=np.float32)[:, None, None] * 255
            for i in ("fast", "today", "torchvision"):
                for ref in ("exact", "torchvision"):
                    if i != ref:
                        d = np.abs(out[i] - out[ref]) * std
                        diffs[(f, t, i, ref)] = (float(d.max()), float(d.mean()))

    times: dict[tuple, list[float]] = {c: [] for c in configs}
    rng = random.Random(0)
    for _ in range(args.rounds):
        rng.shuffle(configs)
        for f, t, i in configs:
            time.sleep(0.05)
            times[(f, t, i)] += {**impls, **stages}[i].ask({"file": str(files[f]), "transform": t, "impl": i,
                                                           "warmup": 2, "block": args.block})
    ours.close()
    tv.close()

    med = {c: statistics.median(v) for c, v in times.items()}
    low = {c: sorted(v)[len(v) // 10] for c, v in times.items()}  # p10: the calls no other job preempted
    lines = [
        "# Decode + preprocess: edgecnn vs torchvision decode_image + transforms.v2",
        "",
        f"Host: {describe()}. Load average at the end: {os.getloadavg()[0]:.1f} (shared machine; other jobs ran).",
        f"`python benchmarks/preprocess_bench.py --photos {args.photos} --rounds {args.rounds} --block {args.block}`; "
        f"single-threaded both sides; {args.rounds} rounds x {args.block} timed calls per configuration, interleaved. "
        f"'today' = runtime/image.py at {args.baseline}. Photo: {sorted(args.photos.iterdir())[0].name} "
        "(first usable file of --photos, upscaled for 'phone').",
        "",
        "Times are p10 (ms): with many more runnable jobs than cores, a call that outlasts its time slice waits "
        "for a round of the others, so medians mix the work with waits of tens of ms; the fastest tenth of the "
        "calls is the work. Ratios at p10 and at the median.",
        "",
        "| file | transform | fast | exact | today | torchvision | **fast / torchvision** p10 (median) "
        "| today / fast | fast vs exact: max, mean (levels) | exact vs torchvision: max, mean |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for f in files:
        for t in TRANSFORMS:
            m = {i: low[(f, t, i)] for i in impls}
            fe, et = diffs[(f, t, "fast", "exact")], diffs[(f, t, "torchvision", "exact")]
            lines.append(f"| {files[f].name} | {t} | {m['fast']:.2f} | {m['exact']:.2f} | {m['today']:.2f} | "
                         f"{m['torchvision']:.2f} | **{m['fast'] / m['torchvision']:.2f}** "
                         f"({med[(f, t, 'fast')] / med[(f, t, 'torchvision')]:.2f}) | "
                         f"{m['today'] / m['fast']:.2f}x | {fe[0]:.2f}, {fe[1]:.3f} | {et[0]:.2f}, {et[1]:.3f} |")
    lines += ["", "Where the time goes (crop224, p10 ms): decode alone (ours: `load_image` with the fast spec, "
              "reduced where it applies; torchvision: `decode_image`), and the rest (resize, crop, normalise).", "",
              "| file | ours: decode | ours: rest | torchvision: decode | torchvision: rest |",
              "|---|---:|---:|---:|---:|"]
    for f in files:
        od, td = low[(f, "crop224", "fast decode only")], low[(f, "crop224", "torchvision decode only")]
        lines.append(f"| {files[f].name} | {od:.2f} | {low[(f, 'crop224', 'fast')] - od:.2f} | {td:.2f} | "
                     f"{low[(f, 'crop224', 'torchvision')] - td:.2f} |")
    write_report(lines, "preprocess.md", args.out)


if __name__ == "__main__":
    main()
