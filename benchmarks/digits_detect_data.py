"""A digit-like detection set for the detector-recipe benchmark (``digits_detect.py``): the digits 0-9
rendered with the DejaVu fonts (sans, serif, mono, condensed; book, bold, oblique) at a random
height, rotation, shear and stroke width, one to four per image, on a plain or lightly textured
background with noise; dark ink on light paper or light ink on dark. COCO layout as
``edgecnn data shapes --task detect`` writes it (``train/``, ``val/``, ``annotations/instances_*.json``,
category ids 1..10 named "0".."9"), so ``edgecnn train DETECTOR --data DIR`` reads it.

A benchmark script, not an ``edgecnn data`` command: the glyphs come from the fonts installed on the
machine, so the images are only reproducible where the same font files are (the shapes set is a pure
function of its seed everywhere). Boxes are the tight box of the rendered ink.

    python benchmarks/digits_detect_data.py --out /tmp/digits-det --train 1200 --val 240 --size 128
    # issue 18's kind: plain backgrounds, digits the default anchors cover (dd2000)
    python benchmarks/digits_detect_data.py --out /tmp/dd2000 --train 2000 --val 300 --size 160 --seed 2 \
        --plain --heights 0.2 0.45 --max-digits 3
    # its first 1,000 train images and the same 300 val images (dd1000)
    python benchmarks/digits_detect_data.py --out /tmp/dd1000 --train 1000 --val 300 --size 160 --seed 2 \
        --plain --heights 0.2 0.45 --max-digits 3 --val-start 2000
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_GLOBS = ("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf", "/usr/share/fonts/**/*.ttf")
CLASSES = tuple(str(d) for d in range(10))


def fonts() -> list[str]:
    for pattern in FONT_GLOBS:
        found = sorted(f for f in glob.glob(pattern, recursive=True) if "Math" not in f and "ExtraLight" not in f)
        if found:
            return found
    raise SystemExit("no TrueType fonts found (apt-get install fonts-dejavu-core)")


def _glyph(rng: np.random.Generator, digit: int, font_files: list[str], height: float) -> Image.Image:
    """An 'L' mask of one digit (255 = ink), rotated and sheared, cropped to its ink."""
    font = ImageFont.truetype(font_files[int(rng.integers(len(font_files)))], size=max(8, round(height * 1.3)))
    stroke = int(rng.integers(0, max(1, round(height / 14)) + 1))
    text = CLASSES[digit]
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
    pad = int(height)
    im = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(im).text((pad - x0, pad - y0), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    shear = rng.uniform(-0.3, 0.3)
    im = im.transform(im.size, Image.Transform.AFFINE, (1, shear, -shear * im.height / 2, 0, 1, 0),
                      resample=Image.Resampling.BILINEAR)
    im = im.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR, expand=True)
    box = im.point(lambda v: 255 if v > 64 else 0).getbbox()
    im = im.crop(box)
    scale = height / im.height  # the ink's height is the drawn size
    return im.resize((max(2, round(im.width * scale)), max(2, round(im.height * scale))), Image.Resampling.LANCZOS)


def _background(rng: np.random.Generator, size: int, dark: bool, plain: bool = False) -> np.ndarray:
    base = rng.uniform(20, 80) if dark else rng.uniform(170, 240)
    tint = base + rng.uniform(-15, 15, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    canvas = np.broadcast_to(tint, (size, size, 3)).astype(np.float32).copy()
    kind = 0 if plain else int(rng.integers(3))  # plain, gradient, soft stripes
    if kind == 1:
        a, b = rng.uniform(-20, 20, 2)
        canvas += (a * (xx - 0.5) + b * (yy - 0.5))[..., None]
    elif kind == 2:
        th, f = rng.uniform(0, math.pi), rng.uniform(2, 8)
        canvas += (rng.uniform(4, 12) * np.sin(2 * math.pi * f * (xx * math.cos(th) + yy * math.sin(th))))[..., None]
    return canvas


def sample(seed: int, index: int, size: int, font_files: list[str], heights: tuple[float, float] = (0.12, 0.45),
           plain: bool = False, max_digits: int = 4) -> tuple[Image.Image, list[dict]]:
    """Image ``index``: one to ``max_digits`` digits whose boxes do not overlap, heights ``heights`` of the
    image side; ``plain``: a plain background (no gradient, no stripes) and light noise."""
    rng = np.random.default_rng([seed, index])
    dark = rng.random() < 0.3
    canvas = _background(rng, size, dark, plain)
    ink = rng.uniform(190, 250, 3) if dark else rng.uniform(0, 70, 3)
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, max_digits + 1))):
        digit = int(rng.integers(10))
        glyph = _glyph(rng, digit, font_files, rng.uniform(*heights) * size)
        w, h = glyph.size
        if w >= size or h >= size:
            continue
        for _try in range(30):
            x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if all(x + w + 2 <= b[0] or b[2] + 2 <= x or y + h + 2 <= b[1] or b[3] + 2 <= y for b in boxes):
                break
        else:
            continue
        alpha = np.asarray(glyph, dtype=np.float32)[..., None] / 255
        region = canvas[y:y + h, x:x + w]
        region *= 1 - alpha
        region += alpha * ink
        boxes.append((x, y, x + w, y + h))
        objects.append({"category": digit, "bbox": [x, y, w, h], "area": float(alpha.sum())})
    canvas += rng.normal(0, rng.uniform(2, 4) if plain else rng.uniform(2, 10), canvas.shape)
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB"), objects


def write(out: Path, n_train: int, n_val: int, size: int, seed: int = 0, heights: tuple[float, float] = (0.12, 0.45),
          plain: bool = False, max_digits: int = 4, val_start: int | None = None) -> dict:
    font_files = fonts()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        cats = [{"id": i + 1, "name": c, "supercategory": "digit"} for i, c in enumerate(CLASSES)]
        index = 0
        for split, n in (("train", n_train), ("val", n_val)):
            if split == "val" and val_start is not None:
                index = val_start  # image i is a function of (seed, i): a smaller train set, the same val images
            doc = {"info": {"description": f"digits detection ({split}, seed {seed})"}, "images": [],
                   "annotations": [], "categories": cats}
            (tmp / split).mkdir()
            for _ in range(n):
                im, objects = sample(seed, index, size, font_files, heights, plain, max_digits)
                name = f"{index:06d}.png"
                im.save(tmp / split / name)
                doc["images"].append({"id": index, "file_name": name, "width": size, "height": size})
                for o in objects:
                    doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": index,
                                               "category_id": o["category"] + 1, "bbox": o["bbox"],
                                               "area": o["area"], "iscrowd": 0})
                index += 1
            (tmp / "annotations").mkdir(exist_ok=True)
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "train": n_train, "val": n_val, "size": size, "seed": seed, "heights": list(heights),
            "plain": plain, "max_digits": max_digits, "fonts": len(font_files)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--val", type=int, default=240)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heights", type=float, nargs=2, default=(0.12, 0.45), metavar=("MIN", "MAX"),
                    help="digit heights, fractions of the image side")
    ap.add_argument("--plain", action="store_true", help="plain backgrounds and light noise (issue 18's kind)")
    ap.add_argument("--max-digits", type=int, default=4)
    ap.add_argument("--val-start", type=int, default=None,
                    help="index of the first val image [default: after the train images]")
    args = ap.parse_args()
    print(write(Path(args.out), args.train, args.val, args.size, args.seed, tuple(args.heights), args.plain,
                args.max_digits, args.val_start))


if __name__ == "__main__":
    main()
