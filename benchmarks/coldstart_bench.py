"""Cold start: ``edgecnn infer one.jpg`` from process start to printed result vs a minimal script.

    python benchmarks/coldstart_bench.py --photos /tmp/photos --model export/mobilenetv2.onnx --rounds 15

What a device script pays when it calls ``edgecnn infer`` once per image. Anchor: ``MINIMAL`` below,
the least a Python program can do for the same answer (import NumPy, Pillow and onnxruntime, open the
session, decode, resize, crop, normalise, run, print the top 5). Rows: ``edgecnn infer IMAGE --model
FILE`` (through ``python -m edgecnn``, as the ``edgecnn`` script runs it), the minimal script, and the
bare interpreter (``python -c pass``) as the floor. Whole processes, wall time from start to exit;
the rows interleave round by round in a reshuffled order; medians, p90 and the ratio. The image is a
640x480 JPEG made from the first photo of ``--photos`` (``benchmarks/photos.py``). Writes
``benchmarks/results/<device-tag>/coldstart.md`` (or ``--out``); ``--importtime`` adds the heaviest
imports of ``edgecnn infer`` (``python -X importtime``, cumulative ms).

    python benchmarks/coldstart_bench.py --cli --rounds 15

The cost of the CLI itself (issue 17's "house" question): ``edgecnn --help`` and ``edgecnn models``
with edgecnn's Typer adjustments (``edgecnn/cli/typer_compat.py``), without them (both turned into
no-ops before the app is built), and the same two commands of a minimal Typer script (one group, one
command that prints a line), plus ``python -c pass``; with ``--model FILE`` (a 224 px classifier) also
``edgecnn infer one.jpg`` on and off against ``MINIMAL`` (no Typer). Writes ``coldstart_cli.md``.
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

MINIMAL = r'''
import sys
import numpy as np, onnxruntime as ort
from PIL import Image
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
im = Image.open(sys.argv[2]).convert("RGB"); w, h = im.size; s = 256 / min(w, h)
im = im.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)
l, t = (im.width - 224) // 2, (im.height - 224) // 2
x = (np.asarray(im.crop((l, t, l + 224, t + 224)), np.float32) / 255 - np.float32([0.485, 0.456, 0.406])) \
    / np.float32([0.229, 0.224, 0.225])
p = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])})[0][0]
for i in np.argsort(-p)[:5]:
    print(i, p[i])
'''


# ``edgecnn ARGS`` as the console script runs it, with (PATCH=1) or without (PATCH=0) typer_compat
EDGECNN = r'''
import sys
if sys.argv[1] == "0":
    import edgecnn.cli.typer_compat as t
    t.plain_metavar = t.light_coercion = lambda param: None
sys.argv = ["edgecnn", *sys.argv[2:]]
from edgecnn.cli.main import main
main()
'''

MINIMAL_TYPER = r'''
import typer
app = typer.Typer(add_completion=False)
@app.callback()
def root(debug: bool = typer.Option(False, "--debug")) -> None:
    """A minimal Typer program."""
@app.command()
def models(format: str = typer.Option("table", "--format")) -> None:
    """List models."""
    print("name  params")
app()
'''


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
    return (time.perf_counter() - t0) * 1e3


def heaviest_imports(argv: list[str], n: int = 12) -> list[tuple[str, int]]:
    """The ``n`` top-level imports with the largest cumulative time (us) under ``-X importtime``."""
    err = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, cwd=ROOT).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if not name[1:].startswith(" ") and cumulative.strip().isdigit():  # top level only
                rows.append((name.strip(), int(cumulative)))
    return sorted(rows, key=lambda r: -r[1])[:n]


def p90(v):
    return sorted(v)[min(len(v) - 1, round(0.9 * (len(v) - 1)))]


def interleave(rows: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Wall ms of each row, ``rounds`` times, the order reshuffled every round, after one warm-up each."""
    for argv in rows.values():  # warm the page cache and .pyc files
        wall(argv)
    times: dict[str, list[float]] = {k: [] for k in rows}
    order = list(rows)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            time.sleep(0.2)
            times[k].append(wall(rows[k]))
    return times


def cli_main(rounds: int, out: Path | None, model: Path | None, photos: Path | None) -> None:
    from host import describe, write_report

    tmp = Path(tempfile.mkdtemp(prefix="coldstart_cli_"))
    (tmp / "edgecnn_run.py").write_text(EDGECNN)
    (tmp / "minimal_typer.py").write_text(MINIMAL_TYPER)
    py, run, mini = sys.executable, str(tmp / "edgecnn_run.py"), str(tmp / "minimal_typer.py")
    rows = {}
    for cmd in (["--help"], ["models"]):
        label = " ".join(cmd)
        rows[f"edgecnn {label}, typer_compat on"] = [py, run, "1", *cmd]
        rows[f"edgecnn {label}, typer_compat off"] = [py, run, "0", *cmd]
        rows[f"minimal Typer {label}"] = [py, mini, *cmd]
    if model is not None:  # the call a device script makes per image, against the same job without Typer
        from PIL import Image

        image = tmp / "one.jpg"
        if photos is not None:
            import photos as photo_lib

            photo_lib.make(photo_lib.load_photos(photos)[0], (640, 480)).save(image, quality=90)
        else:
            Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(image, quality=90)
        (tmp / "minimal.py").write_text(MINIMAL)
        m = str(model.resolve())
        rows["edgecnn infer, typer_compat on"] = [py, run, "1", "infer", str(image), "--model", m]
        rows["edgecnn infer, typer_compat off"] = [py, run, "0", "infer", str(image), "--model", m]
        rows["minimal script infer (no Typer)"] = [py, str(tmp / "minimal.py"), m, str(image)]
    rows["python -c pass"] = [py, "-c", "pass"]
    load0 = open("/proc/loadavg").read().strip()
    times = interleave(rows, rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    import typer

    lines = ["# Cold start of the CLI: edgecnn's Typer adjustments on and off, against a minimal Typer program", "",
             f"Host: {describe()}. /proc/loadavg at start: {load0}; at the end: "
             f"{open('/proc/loadavg').read().strip()} (shared machine: compare the ratios).",
             f"typer {typer.__version__}, Python {sys.version.split()[0]}. `python benchmarks/coldstart_bench.py "
             f"--cli --rounds {rounds}{f' --model {model}' if model else ''}`; whole processes, {rounds} interleaved "
             "rounds, order reshuffled each round; the model a classifier at 224x224, the image a 640x480 JPEG.",
             "", "| run | median ms | p90 ms | vs the minimal program, same command |", "|---|---:|---:|---:|"]
    for k, v in times.items():
        cmd = "--help" if "--help" in k else "infer" if "infer" in k else "models"
        ref = med["minimal script infer (no Typer)" if cmd == "infer" else f"minimal Typer {cmd}"]
        ratio = "" if k.startswith("python") else f"**{med[k] / ref:.2f}x**"
        lines.append(f"| {k} | {med[k]:.0f} | {p90(v):.0f} | {ratio} |")
    write_report(lines, "coldstart_cli.md", out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", action="store_true", help="time edgecnn --help / models with and without "
                                                       "typer_compat against a minimal Typer program")
    ap.add_argument("--photos", type=Path, help="folder of real photographs (JPEG/PNG)")
    ap.add_argument("--model", type=Path, help="a classifier ONNX file with an edgecnn contract")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--importtime", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    if args.cli:
        cli_main(args.rounds, args.out, args.model, args.photos)
        return
    if args.photos is None or args.model is None:
        ap.error("--photos and --model are required (or --cli)")
    import photos
    from host import describe, write_report

    tmp = Path(tempfile.mkdtemp(prefix="coldstart_bench_"))
    image = tmp / "one.jpg"
    photos.make(photos.load_photos(args.photos)[0], (640, 480)).save(image, quality=90)
    minimal = tmp / "minimal.py"
    minimal.write_text(MINIMAL)
    py, model = sys.executable, str(args.model.resolve())
    rows = {"edgecnn infer": [py, "-m", "edgecnn", "infer", str(image), "--model", model],
            "minimal script": [py, str(minimal), model, str(image)],
            "python -c pass": [py, "-c", "pass"]}
    times = interleave(rows, args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = ["# Cold start: `edgecnn infer one.jpg` vs a minimal script", "",
             f"Host: {describe()}. Load average at the end: {os.getloadavg()[0]:.1f} (shared machine; other jobs "
             "ran: compare the ratio).",
             f"Model: {args.model.name}; image: a 640x480 JPEG. `python benchmarks/coldstart_bench.py --photos "
             f"{args.photos} --model {args.model} --rounds {args.rounds}`; whole processes, {args.rounds} "
             "interleaved rounds.", "",
             "| run | median ms | p90 ms | vs minimal script |", "|---|---:|---:|---:|"]
    for k, v in times.items():
        lines.append(f"| {k} | {med[k]:.0f} | {p90(v):.0f} | **{med[k] / med['minimal script']:.2f}x** |")
    if args.importtime:
        lines += ["", "Heaviest top-level imports of `edgecnn infer` (`-X importtime`, cumulative ms, one run):", ""]
        lines += [f"- {name}: {us / 1e3:.1f}" for name, us in heaviest_imports(rows["edgecnn infer"])]
    write_report(lines, "coldstart.md", args.out)


if __name__ == "__main__":
    main()
