"""Training images/s with 1 and 2 torch threads (and edgecnn's default) on this machine, as loaded as
it is, for a classifier and a detector. Not a test.

Each configuration (model x threads) trains through the real loop (``edgecnn.train.loop.Trainer``:
data, augmentation, loss, backward, optimizer) one epoch per block; blocks are interleaved and their
order reshuffled every round, with ``/proc/loadavg`` recorded before each block. ``auto`` is what
``edgecnn.threads.resolve()`` picks at the start of its block (1 thread when the load average is above
the cores). ``--spin K`` runs the same rounds again with K busy-loop processes beside them (a busy
machine made on purpose), so a quiet-ish and a busy phase come from one run:

    python benchmarks/train_threads.py                 # ~3 min on a quiet 2-core machine, far more on a busy one
    python benchmarks/train_threads.py --rounds 3 --spin 0
    python benchmarks/train_threads.py --rounds 2 --spin 0 --configs "ssdlite 160px b16" --out X.md

The models are the demo's trainings: resnet18 at 32 px, batch 32, on 160 generated shapes (5 steps a
block); and ssdlite_mobilenetv2 at 64 px, batch 16, --augment, on 48 generated COCO shapes images (3 steps). Writes
``benchmarks/results/<device-tag>/train_threads.md`` and ``.json``.
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

from host import describe, results_dir  # benchmarks/host.py

CONFIGS = {  # name -> TrainConfig fields (the demo's two trainings)
    "resnet18 32px b32": {"model": "resnet18", "data": "shapes:200", "input_size": 32, "batch_size": 32,
                          "optimizer": "adamw"},
    "ssdlite 64px b16": {"model": "ssdlite_mobilenetv2", "data": "DET", "input_size": 64, "batch_size": 16,
                         "optimizer": "adamw", "lr": 2e-3, "augment": True},
    # the README's detector training (Detection: SSDLite), on the same 48 images
    "ssdlite 160px b16": {"model": "ssdlite_mobilenetv2", "data": "DET", "input_size": 160, "batch_size": 16,
                          "optimizer": "adamw", "lr": 2e-3, "augment": True},
}
DEFAULT_CONFIGS = ("resnet18 32px b32", "ssdlite 64px b16")
SPIN = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nwhile True: pass\n"


def _loadavg() -> float:
    return os.getloadavg()[0]


def _trainers(det_dir: Path, names):
    import torch

    from edgecnn.train import ddp
    from edgecnn.train.loop import TrainConfig, Trainer

    out = {}
    for name in names:
        fields = CONFIGS[name]
        fields = dict(fields, data=str(det_dir) if fields["data"] == "DET" else fields["data"])
        cfg = TrainConfig(**fields, epochs=1000, out=tempfile.mkdtemp(prefix="threads-"), device="cpu")
        out[name] = Trainer(cfg, torch.device("cpu"), ddp.Dist(), lambda m: None, lambda m: None)
    return out


def _block(trainer, threads: int, epoch: int) -> float:
    """One epoch on ``threads`` threads; images/s of the training steps (the loop's own figure)."""
    from edgecnn.threads import apply_torch

    apply_torch(threads)
    time.sleep(0.05)  # settle: the previous block's pool threads stop spinning
    return trainer._train_epoch(epoch, 0)["images_per_s"]


def run_phase(trainers, rounds: int, label: str, rows: list[dict]) -> None:
    from edgecnn.threads import available_cores, resolve

    cores = available_cores()
    choices = [1, 2] + (["auto"] if cores >= 1 else [])
    keys = [(name, t) for name in trainers for t in choices]
    epoch = {name: 1 for name in trainers}
    for r in range(rounds):
        random.Random(r).shuffle(keys)
        for name, t in keys:
            load = _loadavg()
            n = resolve(None, load=load).n if t == "auto" else t
            ips = _block(trainers[name], n, epoch[name])
            epoch[name] += 1
            rows.append({"phase": label, "round": r, "model": name, "threads": t, "ran": n, "load1": round(load, 2),
                         "images_per_s": round(ips, 2)})
            print(f"{label:>6} r{r} {name:<20} threads {t!s:>4} (ran {n})  load {load:5.2f}  {ips:8.1f} img/s",
                  flush=True)


def summarize(rows: list[dict]) -> list[str]:
    lines = ["| phase | model | threads | blocks | load1 (median, range) | images/s median | range | "
             "vs best fixed |", "|---|---|---|---|---|---|---|---|"]
    for phase in dict.fromkeys(r["phase"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows):
            sel = [r for r in rows if r["phase"] == phase and r["model"] == model]
            med = {t: statistics.median(r["images_per_s"] for r in sel if r["threads"] == t)
                   for t in dict.fromkeys(r["threads"] for r in sel)}
            best = max(v for t, v in med.items() if t != "auto")
            for t, v in med.items():
                s = [r for r in sel if r["threads"] == t]
                loads = [r["load1"] for r in s]
                ran = sorted({r["ran"] for r in s})
                ips = [r["images_per_s"] for r in s]
                tl = f"auto (ran {'/'.join(map(str, ran))})" if t == "auto" else str(t)
                lines.append(f"| {phase} | {model} | {tl} | {len(s)} | {statistics.median(loads):.1f} "
                             f"({min(loads):.1f}-{max(loads):.1f}) | **{v:.1f}** | {min(ips):.1f}-{max(ips):.1f} "
                             f"| {v / best:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--spin", type=int, default=2, help="busy-loop processes of the busy phase (0: no such phase)")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help=f"comma list of: {', '.join(CONFIGS)}")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from edgecnn.threads import available_cores
    from edgecnn.train.shapes import write_shapes

    det = Path(tempfile.mkdtemp(prefix="threads-det-"))
    write_shapes(det, 60, 64, seed=0, task="detect")
    names = [n.strip() for n in args.configs.split(",")]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown --configs {unknown}; choose from {list(CONFIGS)}")
    trainers = _trainers(det, names)
    for tr in trainers.values():  # warm-up epoch: caches, allocator, first-call costs
        _block(tr, 2, 0)
    rows: list[dict] = []
    t0 = time.time()
    run_phase(trainers, args.rounds, "as is", rows)
    if args.spin:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.spin)]
        try:
            time.sleep(20)  # let the 1-minute load average rise
            run_phase(trainers, args.rounds, f"+{args.spin} spin", rows)
        finally:
            for p in procs:
                p.terminate()
                p.wait()
    import torch

    lines = [f"# Training images/s by torch thread count ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t0))})",
             "", f"Host: {describe()}; {available_cores()} cores available to the process; torch {torch.__version__}.",
             f"Command: `python benchmarks/train_threads.py --rounds {args.rounds} --spin {args.spin} "
             f"--configs '{args.configs}'`. One block = one training epoch through the real loop (resnet18: 160 "
             "train images = 5 steps; ssdlite: 48 train images = 3 steps, --augment, at 64 or 160 px); "
             "configurations interleaved, order reshuffled each round; load1 = 1-minute load average before "
             "the block. Phase `as is`: the machine as other jobs left it; `+K spin`: K busy-loop processes "
             "added. `auto` = edgecnn's default (edgecnn.threads.resolve at the block's start).", "",
             *summarize(rows)]
    out = args.out or results_dir() / "train_threads.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    host = lines[2].removeprefix("Host: ")  # the CPU model, its ISA flags and the device tag, as in the .md
    out.with_suffix(".json").write_text(json.dumps({"host": host, "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
