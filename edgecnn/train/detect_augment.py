"""Detection transforms: ``(image, boxes, labels, index) -> ((C, H, W) float32, boxes, labels, geometry)``
with the boxes (M, 4) xyxy moved with the pixels, in network-input pixels at the end. NumPy + Pillow.

The eval transform is the runtime's preprocessing (``runtime.image.preprocess``: the contract's
letterbox or stretch) with the boxes mapped through its ``Geometry``: what the device computes.
The train transform (``--augment``), SSD's recipe made simple: colour jitter, a zoom-out (the image
pasted at a random place on a canvas up to ``ZOOM_OUT`` times larger, filled with the letterbox grey),
a zoom-in crop (``CROP_SCALE`` of the area, aspect in ``CROP_RATIO``, that keeps at least one
object's centre; objects whose centre falls outside are dropped, the others clipped), a horizontal
flip, then the eval transform. Boxes smaller than ``MIN_SIZE`` pixels after all that are dropped.
Seeded per ``(seed, epoch, index)`` as the classification augmentation.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageOps

from edgecnn.contract import Preprocess
from edgecnn.runtime.image import Geometry, preprocess, to_mode
from edgecnn.train.augment import JITTER, colour_jitter, crop_box, sample_seed

ZOOM_OUT = 2.0  # canvas side up to this many times the image's (SSD: 4, for 300 px photos)
CROP_SCALE = (0.3, 1.0)
CROP_RATIO = (0.5, 2.0)
MIN_SIZE = 1.0  # network pixels


def to_network(boxes: np.ndarray, geom: Geometry, size: tuple[int, int]) -> np.ndarray:
    """(M, 4) xyxy original pixels -> network-input pixels (``Geometry`` forward), clipped to the input."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] * geom.scale[0] + geom.pad[0]).clip(0, size[0])
    out[:, [1, 3]] = (out[:, [1, 3]] * geom.scale[1] + geom.pad[1]).clip(0, size[1])
    return out


def _finish(x: np.ndarray, boxes: np.ndarray, labels: np.ndarray, geom: Geometry, spec: Preprocess):
    b = to_network(boxes, geom, (spec.width, spec.height))
    keep = ((b[:, 2] - b[:, 0]) >= MIN_SIZE) & ((b[:, 3] - b[:, 1]) >= MIN_SIZE)
    return x, b[keep], np.asarray(labels, dtype=np.int64)[keep], geom


class DetectEvalTransform:
    deterministic = True

    def __init__(self, spec: Preprocess):
        self.spec = spec

    def __call__(self, im: Image.Image, boxes: np.ndarray, labels: np.ndarray, index: int):
        x, geom = preprocess(im, self.spec)
        return _finish(x, boxes, labels, geom, self.spec)


class DetectTrainTransform:
    deterministic = False

    def __init__(self, spec: Preprocess, seed: int, flip: bool = True, jitter: float = JITTER,
                 zoom_out: float = ZOOM_OUT, p_zoom_out: float = 0.5, p_crop: float = 0.5):
        self.spec, self.seed, self.flip, self.jitter = spec, seed, flip, jitter
        self.zoom_out, self.p_zoom_out, self.p_crop = zoom_out, p_zoom_out, p_crop
        self.epoch = 0

    def __call__(self, im: Image.Image, boxes: np.ndarray, labels: np.ndarray, index: int):
        rng = random.Random(sample_seed(self.seed, self.epoch, index))
        im = colour_jitter(to_mode(im, self.spec.color, self.spec.background), rng, self.jitter)
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        lab = np.asarray(labels, dtype=np.int64)
        if self.zoom_out > 1 and rng.random() < self.p_zoom_out:
            im, b = _zoom_out(im, b, rng, self.zoom_out, self.spec.pad_value)
        if len(b) and rng.random() < self.p_crop:
            im, b, lab = _zoom_in(im, b, lab, rng)
        if self.flip and rng.random() < 0.5:
            im = ImageOps.mirror(im)
            b[:, [0, 2]] = im.width - b[:, [2, 0]]
        x, geom = preprocess(im, self.spec)
        return _finish(x, b, lab, geom, self.spec)


def _zoom_out(im: Image.Image, b: np.ndarray, rng: random.Random, most: float, fill: int):
    r = rng.uniform(1.0, most)
    w, h = round(im.width * r), round(im.height * r)
    left, top = rng.randint(0, w - im.width), rng.randint(0, h - im.height)
    canvas = Image.new(im.mode, (w, h), fill if im.mode == "L" else (fill,) * 3)
    canvas.paste(im, (left, top))
    return canvas, b + np.asarray([left, top, left, top], dtype=np.float32)


def _zoom_in(im: Image.Image, b: np.ndarray, lab: np.ndarray, rng: random.Random, tries: int = 10):
    """A random crop that keeps the centre of at least one object (else the image as it was)."""
    centres = (b[:, :2] + b[:, 2:]) / 2
    for _ in range(tries):
        x0, y0, x1, y1 = crop_box(rng, im.width, im.height, CROP_SCALE, CROP_RATIO)
        inside = (centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)
        if inside.any():
            kept = b[inside] - np.asarray([x0, y0, x0, y0], dtype=np.float32)
            kept[:, [0, 2]] = kept[:, [0, 2]].clip(0, x1 - x0)
            kept[:, [1, 3]] = kept[:, [1, 3]].clip(0, y1 - y0)
            return im.crop((x0, y0, x1, y1)), kept, lab[inside]
    return im, b, lab
