"""The built-in synthetic data set: coloured shapes on textured backgrounds. NumPy + Pillow only.

Every image is a pure function of ``(seed, index, size)``: a NumPy generator seeded with
``[seed, index]`` draws the background texture, the shapes and their colours, so the same seed
gives byte-identical files on every run and machine, and any image can be made on its own.

- classify: one shape per image, class ``index % 4`` of ``CLASSES``; written as an ImageFolder
  ``DIR/{train,val}/<class>/<index>.png`` (every fifth image of a class goes to ``val``).
- detect: one to four shapes per image; written COCO-style as ``DIR/{train,val}/<index>.png`` and
  ``DIR/annotations/instances_{train,val}.json`` (bbox ``[x, y, w, h]`` in pixels, category ids
  from 1 as in COCO; every fifth image goes to ``val``).

Shapes are drawn bright (luma >= 140) on darker textures so they survive conversion to grayscale.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from edgecnn.errors import EdgeCNNError, UsageError
from edgecnn.fileio import umask
from edgecnn.runtime.detect import box_iou

CLASSES = ("circle", "triangle", "square", "star")
TASKS = ("classify", "detect")
BACKGROUNDS = ("grain", "stripes", "checks", "gradient")
CLASS_HUES = (0.0, 0.33, 0.58, 0.14)  # red circles, green triangles, blue squares, yellow stars (HSV hue)
_SS = 4  # supersampling of the shape mask: anti-aliased edges


@dataclass(frozen=True)
class DetectStyle:
    """What a detection image holds. The default is ``edgecnn data shapes --task detect``'s set."""

    most: int = 4  # shapes per image: 1 .. most
    radius: tuple[float, float] = (0.08, 0.22)  # shape radius range, a fraction of the image side
    backgrounds: tuple[str, ...] = BACKGROUNDS  # textures drawn from (the demo leaves out the busiest)
    class_hues: bool = False  # each class in its own hue (CLASS_HUES) instead of any colour: a cue learnt fast


def split_of(index: int, task: str = "classify") -> str:
    """The split an image belongs to: every fifth of each class (classify) or every fifth image (detect)."""
    k = index // len(CLASSES) if task == "classify" else index
    return "val" if k % 5 == 4 else "train"


def _background(rng: np.random.Generator, size: int, kinds: tuple[str, ...] = BACKGROUNDS) -> np.ndarray:
    """(size, size, 3) float texture in about 15-110, one of ``kinds``: grain, stripes, checks, gradient."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    tint = rng.uniform(25, 80, 3).astype(np.float32)
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "grain":
        pattern = rng.normal(0, 1, (size, size)).astype(np.float32)
    elif kind == "stripes":
        theta, freq = rng.uniform(0, math.pi), rng.uniform(2, 6)
        pattern = np.sin(2 * math.pi * freq * (xx * math.cos(theta) + yy * math.sin(theta)))
    elif kind == "checks":
        cells = int(rng.integers(2, 7))
        pattern = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2) * 2 - 1
    else:
        a, b = rng.uniform(-1, 1, 2)
        pattern = a * (xx - 0.5) * 2 + b * (yy - 0.5) * 2
    amp = rng.uniform(10, 25, 3).astype(np.float32)
    grain = rng.normal(0, 4, (size, size, 3)).astype(np.float32)
    return np.clip(tint + pattern[..., None] * amp + grain, 0, 255)


def _colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    """A saturated colour bright enough in grayscale (ITU-R 601 luma >= 140); near ``hue`` when given."""
    while True:
        if hue is None:
            c = rng.uniform(0, 255, 3)
            c[int(rng.integers(3))] = 255.0  # at least one full channel: vivid, not grey
        else:
            h = (hue + rng.uniform(-0.03, 0.03)) % 1.0
            c = 255.0 * np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.45, 1.0), 1.0))
        if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] >= 140:
            return c.astype(np.float32)


def _vertices(cls: int, cx: float, cy: float, r: float, theta: float) -> list[tuple[float, float]] | None:
    """Polygon vertices of shape ``cls`` (None for the circle)."""
    if CLASSES[cls] == "circle":
        return None
    if CLASSES[cls] == "star":
        radii = [r if i % 2 == 0 else 0.45 * r for i in range(10)]
    else:
        radii = [r] * (3 if CLASSES[cls] == "triangle" else 4)
    n = len(radii)
    return [(cx + ri * math.cos(theta + 2 * math.pi * i / n), cy + ri * math.sin(theta + 2 * math.pi * i / n))
            for i, ri in enumerate(radii)]


def _draw(canvas: np.ndarray, cls: int, cx: float, cy: float, r: float, theta: float,
          colour: np.ndarray) -> dict:
    """Composite one anti-aliased shape onto ``canvas`` (H, W, 3 float); returns its bbox and area."""
    size = canvas.shape[0]
    mask = Image.new("L", (size * _SS, size * _SS), 0)
    draw = ImageDraw.Draw(mask)
    verts = _vertices(cls, cx, cy, r, theta)
    if verts is None:
        draw.ellipse([(cx - r) * _SS, (cy - r) * _SS, (cx + r) * _SS, (cy + r) * _SS], fill=255)
        x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
        area = math.pi * r * r
    else:
        draw.polygon([(x * _SS, y * _SS) for x, y in verts], fill=255)
        xs, ys = [v[0] for v in verts], [v[1] for v in verts]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        area = 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(verts))))
    alpha = np.asarray(mask.resize((size, size), Image.Resampling.BOX), dtype=np.float32)[..., None] / 255
    canvas *= 1 - alpha
    canvas += alpha * colour
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(size), x1), min(float(size), y1)
    return {"bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)], "area": round(area, 2)}


def _to_image(canvas: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB")


def classify_sample(seed: int, index: int, size: int = 64) -> tuple[Image.Image, int]:
    """Image ``index`` of the classification set and its class id (``index % len(CLASSES)``)."""
    rng = np.random.default_rng([seed, index])
    cls = index % len(CLASSES)
    canvas = _background(rng, size)
    r = rng.uniform(0.25, 0.42) * size
    cx, cy = rng.uniform(r, size - r, 2)
    _draw(canvas, cls, cx, cy, r, rng.uniform(0, 2 * math.pi), _colour(rng))
    return _to_image(canvas), cls


def place(rng: np.random.Generator, size: int, radius: tuple[float, float],
          boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, tuple] | None:
    """A spot for one more shape of radius ``radius`` (fractions of ``size``) whose box overlaps the ``boxes``
    already placed little (IoU < 0.15): ``(cx, cy, r, xyxy box)``, or None after 20 tries."""
    for _try in range(20):
        r = rng.uniform(*radius) * size
        cx, cy = rng.uniform(r, size - r, 2)
        box = (cx - r, cy - r, cx + r, cy + r)
        if not boxes or box_iou(np.array([box]), np.array(boxes)).max() < 0.15:
            return cx, cy, r, box
    return None


def detect_sample(seed: int, index: int, size: int = 128,
                  style: DetectStyle = DetectStyle()) -> tuple[Image.Image, list[dict]]:
    """Image ``index`` of the detection set and its objects: ``{"category": id from 0, "bbox": [x, y, w, h],
    "area"}``. One to ``style.most`` shapes, placed so that their boxes overlap little (IoU < 0.15)."""
    rng = np.random.default_rng([seed, index])
    canvas = _background(rng, size, style.backgrounds)
    objects: list[dict] = []
    boxes: list[tuple[float, float, float, float]] = []
    for _ in range(int(rng.integers(1, style.most + 1))):
        placed = place(rng, size, style.radius, boxes)
        if placed is None:
            continue
        cx, cy, r, box = placed
        cls = int(rng.integers(len(CLASSES)))
        hue = CLASS_HUES[cls] if style.class_hues else None
        obj = _draw(canvas, cls, cx, cy, r, rng.uniform(0, 2 * math.pi), _colour(rng, hue))
        boxes.append(box)
        objects.append({"category": cls, **obj})
    return _to_image(canvas), objects


def write_shapes(out: str | Path, n: int, size: int, seed: int = 0, task: str = "classify",
                 on_image: Callable[[], None] | None = None, style: DetectStyle = DetectStyle()) -> dict:
    """Generate ``n`` images into the new folder ``out`` (see the module docstring for the layout);
    ``style``: what a detection image holds.

    Written into a temporary folder beside ``out`` and renamed into place, so an interrupted run
    leaves no half-written data set. ``out`` must not exist or be empty. Returns a summary dict."""
    if task not in TASKS:
        raise UsageError(f"unknown --task '{task}'; choose classify or detect")
    if n < 1:
        raise UsageError(f"--n must be a positive integer, got {n}")
    if size < 16:
        raise UsageError(f"--size must be at least 16 pixels, got {size}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgeCNNError(f"{out} already exists and is not empty; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it private; the data set is not
    counts = {"train": 0, "val": 0}
    try:
        coco = {s: _coco_skeleton(s, seed) for s in counts} if task == "detect" else None
        for i in range(n):
            split = split_of(i, task)
            if coco is None:
                im, cls = classify_sample(seed, i, size)
                path = tmp / split / CLASSES[cls] / f"{i:06d}.png"
            else:
                im, objects = detect_sample(seed, i, size, style)
                path = tmp / split / f"{i:06d}.png"
                _coco_add(coco[split], i, path.name, size, objects)
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path)
            counts[split] += 1
            if on_image:
                on_image()
        if coco is not None:
            (tmp / "annotations").mkdir()
            for split, doc in coco.items():
                (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc, indent=1))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "task": task, "images": n, "size": size, "seed": seed, "classes": list(CLASSES),
            "train": counts["train"], "val": counts["val"]}


def _coco_skeleton(split: str, seed: int) -> dict:
    return {
        "info": {"description": f"edgecnn synthetic shapes ({split}, seed {seed})"},
        "images": [], "annotations": [],
        "categories": [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)],
    }


def _coco_add(doc: dict, index: int, file_name: str, size: int, objects: list[dict]) -> None:
    doc["images"].append({"id": index, "file_name": file_name, "width": size, "height": size})
    for obj in objects:
        doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": index,
                                   "category_id": obj["category"] + 1, "bbox": obj["bbox"],
                                   "area": obj["area"], "iscrowd": 0})
