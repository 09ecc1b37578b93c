"""Folder throughput: ``edgecnn infer DIR`` vs a plain sequential loop, whole processes; peak and flat RSS.

    python benchmarks/folder_bench.py --photos /tmp/photos --model export/mobilenetv2.onnx
    python benchmarks/folder_bench.py --photos /tmp/photos --model m.onnx --rounds 3 --rss-images 10000

Anchor: a plain 10-line loop (Pillow, NumPy, ``session.run``, one image at a time: decode, resize the
shorter side to 256, crop 224, normalise, run, top-5), ``PLAIN`` below. Against it, ``edgecnn infer DIR
--format jsonl`` (decode ahead on a thread pool while the model runs; the contract's decode), with
``--exact-decode``, and with ``--threads 1`` (onnxruntime on one core, decode on the other). Each run
is a whole process, timed from start to exit; configurations interleave round by round (order
reshuffled); medians and ratios. Peak RSS of each process: its VmHWM, read every 0.05 s.

Folders are made under ``--work`` (default: the system temp folder; never the repository) from real
photographs (``benchmarks/photos.py``): ``--vga`` 640x480 JPEGs and ``--phone`` 4032x3024 JPEGs. With
``--rss-images N``, one more ``infer`` over N 320x240 JPEGs samples its RSS every 0.2 s: flat means
the last quarter's maximum is within a few MB of the first quarter's. Writes
``benchmarks/results/<device-tag>/folder.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLAIN = r'''
import sys, glob, numpy as np, onnxruntime as ort
from PIL import Image
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name, mean, std = sess.get_inputs()[0].name, np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
for f in sorted(glob.glob(sys.argv[2] + "/*.jpg")):
    im = Image.open(f).convert("RGB"); w, h = im.size; s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
    l, t = (im.width - 224) // 2, (im.height - 224) // 2
    x = ((np.asarray(im.crop((l, t, l + 224, t + 224)), np.float32) / 255 - mean) / std).transpose(2, 0, 1)[None]
    p = sess.run(None, {name: np.ascontiguousarray(x)})[0][0]
    print(f, *np.argsort(-p)[:5])
'''


def run(argv: list[str], rss_every: float = 0.05) -> tuple[float, float, list[tuple[float, float]]]:
    """(wall seconds, peak RSS MB, [(t, RSS MB)] samples every ``rss_every`` s) of one whole process;
    its output discarded. The peak is the kernel's high-water mark (VmHWM) as last read before exit
    (``ru_maxrss`` would not do: a child inherits the parent's high-water mark across fork)."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    samples, peak = [], 0.0
    while proc.poll() is None:
        rss, hwm = _status_mb(proc.pid, "VmRSS:"), _status_mb(proc.pid, "VmHWM:")
        if rss is not None:
            samples.append((time.perf_counter() - t0, rss))
            peak = max(peak, hwm or 0.0)
        time.sleep(rss_every)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        err.seek(0)
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.read().decode()}")
    return seconds, peak, samples


def _status_mb(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder of real photographs (JPEG/PNG)")
    ap.add_argument("--model", type=Path, required=True, help="a classifier ONNX file with an edgecnn contract")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgecnn_folder_bench")
    ap.add_argument("--vga", type=int, default=300, help="640x480 JPEGs")
    ap.add_argument("--phone", type=int, default=60, help="4032x3024 JPEGs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rss-images", type=int, default=0, help="also sample RSS over this many 320x240 JPEGs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    import photos
    from host import describe, write_report

    folders = {"640x480": photos.folder(args.photos, args.work / f"vga{args.vga}", args.vga, (640, 480)),
               "4032x3024": photos.folder(args.photos, args.work / f"phone{args.phone}", args.phone,
                                          (4032, 3024), grain=3.0, quality=92)}
    counts = {"640x480": args.vga, "4032x3024": args.phone}
    plain = args.work / "plain_loop.py"
    plain.write_text(PLAIN)
    py, model = sys.executable, str(args.model.resolve())
    infer = [py, "-m", "edgecnn", "infer", "--model", model, "--format", "jsonl"]
    variants = {"plain loop": lambda d: [py, str(plain), model, str(d)],
                "edgecnn infer": lambda d: [*infer, str(d)],
                "infer --exact-decode": lambda d: [*infer, "--exact-decode", str(d)],
                "infer --threads 1": lambda d: [*infer, "--threads", "1", str(d)]}
    configs = [(f, v) for f in folders for v in variants]
    wall: dict[tuple, list[float]] = {c: [] for c in configs}
    peak: dict[tuple, float] = {c: 0.0 for c in configs}
    rng = random.Random(0)
    for r in range(args.rounds):
        rng.shuffle(configs)
        for f, v in configs:
            time.sleep(0.5)
            s, mb, _ = run(variants[v](folders[f]))
            wall[(f, v)].append(s)
            peak[(f, v)] = max(peak[(f, v)], mb)
            print(f"round {r + 1}: {f} {v}: {counts[f] / s:.1f} images/s, peak RSS {mb:.0f} MB", file=sys.stderr)

    lines = ["# Folder throughput: edgecnn infer DIR vs a plain sequential loop", "",
             f"Host: {describe()}. Load average at the end: {os.getloadavg()[0]:.1f} (shared machine; other "
             "jobs ran, so absolute figures move between runs; compare the ratios).",
             f"Model: {args.model.name}. `python benchmarks/folder_bench.py --photos {args.photos} --model "
             f"{args.model} --rounds {args.rounds}`; whole processes (start to exit), {args.rounds} interleaved "
             "rounds, median wall time; images made from real photos (benchmarks/photos.py).", "",
             "| folder | run | images/s (median) | vs plain loop | peak RSS MB |", "|---|---|---:|---:|---:|"]
    for f in folders:
        base = statistics.median(wall[(f, "plain loop")])
        for v in variants:
            m = statistics.median(wall[(f, v)])
            lines.append(f"| {counts[f]} x {f} JPEG | {v} | {counts[f] / m:.1f} | **{base / m:.2f}x** | "
                         f"{peak[(f, v)]:.0f} |")
    if args.rss_images:
        small = photos.folder(args.photos, args.work / f"small{args.rss_images}", args.rss_images, (320, 240))
        s, mb, samples = run([*infer, str(small)], rss_every=0.2)
        samples = [x for x in samples if x[0] > 1.0]  # after start-up (imports, session)
        q = len(samples) // 4 or 1
        first, last = max(r for _, r in samples[:q]), max(r for _, r in samples[-q:])
        lines += ["", f"RSS over {args.rss_images} 320x240 JPEGs (`edgecnn infer`, {args.rss_images / s:.0f} "
                      f"images/s, {len(samples)} samples every 0.2 s): peak {mb:.0f} MB; max over the first "
                      f"quarter of the run {first:.0f} MB, over the last quarter {last:.0f} MB "
                      f"({'flat' if last - first < 8 else 'GROWING'}: {last - first:+.1f} MB)."]
    write_report(lines, "folder.md", args.out)


if __name__ == "__main__":
    main()
