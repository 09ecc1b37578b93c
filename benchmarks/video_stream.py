"""A 640x480 H.264 clip of moving shapes through ``edgecnn infer --save`` with a shapes detector, on this
CPU: does the run reach the frames/s its stage split predicts (decode + preprocess on a second thread,
in parallel with inference + postprocess + annotate + encode), and does the annotated video play (decoded
back: frame count, codec, rate)? ``edgecnn bench --video`` on the same clip gives the decode-inline vs
decode-ahead comparison without ``--save``. Not a test.

    .venv/bin/python benchmarks/video_stream.py --model /tmp/vbench/export/shapes-det.onnx

The detector: any ``edgecnn`` detection export; the README's shapes detector (``edgecnn train
ssdlite_mobilenetv2 --data data/shapes-det --input-size 160 ...`` then ``edgecnn export``) is what was
recorded. The two commands run as subprocesses, interleaved in rounds (infer, bench, bench, infer, ...);
medians are reported. Results: ``benchmarks/results/<device-tag>/video_stream.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from host import describe, results_dir  # benchmarks/host.py
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
COLOURS = ((255, 80, 60), (60, 220, 90), (255, 220, 40), (80, 200, 255))


def frame(i: int, w: int, h: int, rate: int) -> np.ndarray:
    """Frame ``i``: a textured grey background and four shapes (circle, triangle, square, star), each
    moving on its own Lissajous path, about 1/5 of the frame's height across."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = 55 + 20 * np.sin(xx / 23.0 + i / rate) * np.cos(yy / 31.0)
    im = Image.fromarray(np.repeat(bg[..., None], 3, -1).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    t = i / rate
    r = h / 10
    for k in range(4):
        cx = w / 2 + (w / 2 - 1.6 * r) * math.sin(0.7 * t + 1.7 * k)
        cy = h / 2 + (h / 2 - 1.6 * r) * math.cos(0.5 * t + 2.3 * k)
        theta = 0.8 * t + k
        if k == 0:
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=COLOURS[k])
            continue
        radii = [r] * (3 if k == 1 else 4) if k < 3 else [r if j % 2 == 0 else 0.45 * r for j in range(10)]
        n = len(radii)
        d.polygon([(cx + q * math.cos(theta + 2 * math.pi * j / n), cy + q * math.sin(theta + 2 * math.pi * j / n))
                   for j, q in enumerate(radii)], fill=COLOURS[k])
    return np.asarray(im)


def make_clip(path: Path, frames: int, w: int, h: int, rate: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(rate))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(frame(i, w, h, rate), format="rgb24")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def edgecnn(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "from edgecnn.cli.main import main; main()", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"edgecnn {' '.join(args)} failed:\n{r.stderr}")
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a detection ONNX file (edgecnn export)")
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--rate", type=int, default=25)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/edgecnn-video-stream")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clip = make_clip(work / f"shapes_{w}x{h}.mp4", args.frames, w, h, args.rate)
    infer_runs, bench_runs, loads = [], [], []
    for r in range(args.rounds):
        order = ("infer", "bench") if r % 2 == 0 else ("bench", "infer")
        for what in order:
            loads.append(Path("/proc/loadavg").read_text().split()[0])
            time.sleep(0.5)
            if what == "infer":
                out = work / "annotated.mp4"
                res = edgecnn("infer", str(clip), "-m", args.model, "--save", str(out), "-f", "json")
                doc = json.loads(res.stdout)
                infer_runs.append({**doc["summary"], "stderr": res.stderr.strip().splitlines()[-1],
                                   "boxes_per_frame": statistics.mean(len(f["predictions"]) for f in doc["frames"])})
            else:
                res = edgecnn("bench", args.model, "--video", str(clip), "-f", "json")
                bench_runs.append(json.loads(res.stdout)["rows"])
    import av

    with av.open(str(work / "annotated.mp4")) as f:
        s = f.streams.video[0]
        decoded = sum(1 for _ in f.decode(s))
        played = {"frames": decoded, "codec": s.codec_context.name, "rate": float(s.average_rate),
                  "size": [s.codec_context.width, s.codec_context.height]}
    fps = statistics.median(x["fps"] for x in infer_runs)
    pred = statistics.median(x["fps_predicted"] for x in infer_runs)
    ms = {k: statistics.median(x["ms_per_frame"][k] for x in infer_runs) for k in infer_runs[0]["ms_per_frame"]}
    modes = {m: {"fps": statistics.median(rows[i]["fps"] for rows in bench_runs),
                 "fps_predicted": statistics.median(rows[i]["fps_predicted"] for rows in bench_runs)}
             for i, m in enumerate(("inline", "ahead"))}
    host = describe()
    result = {"host": host, "loadavg_1min_at_each_run": loads, "clip": {"size": [w, h], "frames": args.frames,
              "rate": args.rate, "codec": "h264"}, "model": args.model,
              "infer_save": {"fps_median": fps, "fps_predicted_median": pred, "ratio": round(fps / pred, 3),
                             "ms_per_frame_median": ms, "runs": infer_runs},
              "bench_video": {"modes": modes, "runs": bench_runs}, "annotated_video_decoded": played}
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "video_stream.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# {w}x{h} H.264 clip through `edgecnn infer --save` (shapes detector)", "",
          f"Host: {host}", f"1-min load average before each run: {', '.join(loads)} (a shared machine)", "",
          f"Clip: {args.frames} frames at {args.rate} fps, moving shapes (`benchmarks/video_stream.py`). "
          f"Model: `{Path(args.model).name}`. {args.rounds} rounds, infer and bench interleaved; medians.", "",
          "| run | frames/s | predicted by the stage split | measured / predicted |", "|---|---:|---:|---:|",
          f"| `infer --save annotated.mp4` (decode ahead) | {fps:.1f} | {pred:.1f} | {fps / pred:.2f} |"]
    for m in ("inline", "ahead"):
        md.append(f"| `bench --video` {m} (no --save) | {modes[m]['fps']:.1f} | {modes[m]['fps_predicted']:.1f} | "
                  f"{modes[m]['fps'] / modes[m]['fps_predicted']:.2f} |")
    reader, model = ms["decode"] + ms["preprocess"], ms["inference"] + ms["postprocess"] + ms.get("annotate", 0)
    md += ["", "`infer --save` per frame (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in ms.items()),
           f"Reader thread (decode + preprocess) {reader:.1f} ms, model side (inference + postprocess + annotate + "
           f"encode) {model:.1f} ms: the {'model side' if model >= reader else 'reader'} sets the pace, the other "
           f"is hidden; inline the frame would cost {reader + model:.1f} ms ({1e3 / (reader + model):.1f} frames/s).",
           f"Boxes per frame: {statistics.median(x['boxes_per_frame'] for x in infer_runs):.2f}", "",
           f"Annotated video decoded back: {played['frames']} frames, {played['codec']}, {played['rate']:g} fps, "
           f"{played['size'][0]}x{played['size'][1]}.", "", "Last `infer` summary line:", "",
           "    " + infer_runs[-1]["stderr"], ""]
    (out / "video_stream.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
