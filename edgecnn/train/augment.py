"""Sample transforms: the eval transform (the device's preprocessing) and train-time augmentation.

The eval transform IS ``edgecnn.runtime.image.preprocess`` with the contract's ``Preprocess``: the
tensor a model is validated on is the tensor it will see on the device. The train transform, with
``--augment``, draws a random-resized crop of the decoded image straight to the network size, a
horizontal flip and a small colour jitter (in-house on Pillow and NumPy, no torchvision), then
hands the result to that same ``preprocess`` under a ``stretch`` policy, which at the network size
only converts and normalises: colour order, mean/std and channels stay one implementation.

Each sample draws from ``random.Random`` seeded with ``(seed, epoch, index)`` (Python's Mersenne
Twister: ten times cheaper to seed than a NumPy generator, and the same on every platform), so its
augmentation does not depend on worker processes, DDP ranks or where an interrupted run was resumed.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from edgecnn.contract import Preprocess
from edgecnn.runtime.image import preprocess, to_mode

CROP_SCALE = (0.5, 1.0)  # area fraction; torchvision's (0.08, 1) is for ImageNet-size photos
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.15  # brightness, contrast, saturation factors in [1 - JITTER, 1 + JITTER]


class EvalTransform:
    """``(image, index) -> (C, H, W) float32``: the device's preprocessing, nothing random."""

    deterministic = True

    def __init__(self, spec: Preprocess):
        self.spec = spec

    def __call__(self, im: Image.Image, index: int) -> np.ndarray:
        return preprocess(im, self.spec)[0]


class TrainTransform:
    """Random-resized crop -> optional horizontal flip -> colour jitter -> the eval normalisation."""

    deterministic = False

    def __init__(self, spec: Preprocess, seed: int, flip: bool = True, jitter: float = JITTER,
                 scale: tuple[float, float] = CROP_SCALE, ratio: tuple[float, float] = CROP_RATIO):
        self.spec, self.seed, self.flip, self.jitter, self.scale, self.ratio = spec, seed, flip, jitter, scale, ratio
        self.epoch = 0
        # At the network size, "stretch" resizes nothing: preprocess only converts and normalises.
        self._normalize = dataclasses.replace(spec, resize="stretch")
        self._resample = Image.Resampling[spec.interpolation.upper()]

    def __call__(self, im: Image.Image, index: int) -> np.ndarray:
        rng = random.Random(sample_seed(self.seed, self.epoch, index))
        im = to_mode(im, self.spec.color, self.spec.background)
        box = crop_box(rng, im.width, im.height, self.scale, self.ratio)
        im = im.resize((self.spec.width, self.spec.height), self._resample, box=box)
        if rng.random() < 0.5 and self.flip:
            im = ImageOps.mirror(im)
        return preprocess(colour_jitter(im, rng, self.jitter), self._normalize)[0]


def colour_jitter(im: Image.Image, rng: random.Random, jitter: float = JITTER) -> Image.Image:
    """Brightness, contrast and saturation each scaled by a factor in ``[1 - jitter, 1 + jitter]``."""
    if jitter:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            im = enhancer(im).enhance(rng.uniform(1 - jitter, 1 + jitter))
    return im


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """One integer per (seed, epoch, index), distinct for every combination of 32-bit values."""
    return ((seed & 0xFFFFFFFF) << 64) | ((epoch & 0xFFFFFFFF) << 32) | (index & 0xFFFFFFFF)


def crop_box(rng: random.Random, w: int, h: int, scale: tuple[float, float] = CROP_SCALE,
             ratio: tuple[float, float] = CROP_RATIO) -> tuple[int, int, int, int]:
    """A random crop ``(x0, y0, x1, y1)`` of ``scale`` of the area and aspect in ``ratio``
    (torchvision's RandomResizedCrop sampling: 10 tries, then a center crop)."""
    area = w * h
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
            return x0, y0, x0 + cw, y0 + ch
    aspect = w / h
    if aspect < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif aspect > ratio[1]:
        cw, ch = round(h * ratio[1]), h
    else:
        cw, ch = w, h
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return x0, y0, x0 + cw, y0 + ch
