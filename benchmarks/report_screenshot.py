"""Look at the bench report as an engineer would: run ``edgecnn bench`` end to end with ``--html --plot``,
open the HTML page in headless Chromium and save a screenshot beside the PNG plot.

    python benchmarks/report_screenshot.py                       # mobilenetv2 + resnet18, FP32/INT8 x threads 1,2
    python benchmarks/report_screenshot.py --models mobilenetv2 --runs 10 --out /tmp/shot

The sweep covers what the report must tell apart: two models, two precisions, two thread counts, run end
to end on a photograph (``--image``: matplotlib's grace_hopper.jpg, no network), so the page has the
speed-up chart, the latency distributions, the stage split and latency vs size. Writes
``report_page.png`` (the screenshot), ``report_plot.png`` (``--plot``), ``report.html`` and the bench's
JSON/CSV/MD under ``benchmarks/results/<device-tag>/report/`` (or ``--out``).

Needs the ``[plot]`` and ``[torch]`` extras (zoo models are exported on the fly) and Chromium
(Debian: ``apt-get install -y chromium``). The figures themselves are timed on whatever load the
machine has: the report prints the load average; this script is about how the page reads.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from host import describe, results_dir  # noqa: E402

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("Chromium not found: install it (Debian: apt-get install -y chromium)")


def sample_photo() -> Path:
    import matplotlib

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        raise SystemExit(f"{photo}: matplotlib's sample photo is missing; give --image FILE")
    return photo


def screenshot(page: Path, out: Path, width: int = 1600, height: int = 4000) -> Path:
    """A full-width screenshot of ``page`` (a tall window), cropped below the last non-white row."""
    from PIL import Image, ImageChops

    with tempfile.TemporaryDirectory(prefix="edgecnn-chromium-") as profile:
        raw = Path(profile) / "shot.png"
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}/data",
                        f"--window-size={width},{height}", f"--screenshot={raw}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        im = Image.open(raw).convert("RGB")
        box = ImageChops.difference(im, Image.new("RGB", im.size, "white")).getbbox()
        if box:
            im = im.crop((0, 0, width, min(height, box[3] + 20)))
        tmp = out.with_suffix(".tmp.png")
        im.save(tmp)
        tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mobilenetv2,resnet18", help="zoo names or .onnx files (comma list)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--image", default=None, help="photo for the end-to-end run (default: matplotlib's sample)")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<device-tag>/report/")
    args = ap.parse_args()
    out = args.out or results_dir() / "report"
    out.mkdir(parents=True, exist_ok=True)
    print(describe())
    with tempfile.TemporaryDirectory(prefix="edgecnn-report-") as tmp:
        cmd = [sys.executable, "-m", "edgecnn", "bench", *args.models.split(","), "--precision", "fp32,int8",
               "--threads", "1,2", "--image", args.image or str(sample_photo()), "--runs", str(args.runs),
               "--warmup", "3", "--html", "--plot", "--out", tmp]
        print("$", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)
        for p in Path(tmp).iterdir():
            name = {".html": "report.html", ".png": "report_plot.png"}.get(p.suffix, f"report{p.suffix}")
            shutil.copyfile(p, out / name)
    shot = screenshot(out / "report.html", out / "report_page.png")
    print(f"wrote {shot} and the bench's files under {out}")


if __name__ == "__main__":
    main()
