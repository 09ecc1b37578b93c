"""Detection training data: a COCO root (``edgecnn.coco`` reads it) -> ``Data`` whose splits are
``CocoSplit``s, and the dataset and collate function the loop's detection task feeds the model with.
No torch at import (the collate function imports it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecnn import coco
from edgecnn.classdata import DataError, unreadable
from edgecnn.runtime.image import ImageError
from edgecnn.train.datasets import DEFAULT_VAL_SPLIT, Data, decode


def open_detection_data(source: str, val_split: float | None = None, seed: int = 0) -> Data:
    """``source``: a COCO root with a train split and, usually, a val split (either layout of
    ``edgecnn.coco``). Without a val split, ``val_split`` (0.2) of the training images are held out."""
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"--data {source}: no such directory; give a COCO data set root "
                        "(annotations/instances_train.json + train/, or train/_annotations.coco.json)")
    splits = coco.find_splits(root)
    if "train" not in splits:
        raise DataError(f"--data {source}: no COCO train split; expected {root}/annotations/instances_train.json "
                        f"with images in {root}/train/, or {root}/train/ holding {' or '.join(coco.ANNOTATION_NAMES)}")
    train = coco.read_split(*splits["train"])
    data = Data(root.resolve().name, "coco", list(train.names), train, train)
    data.warnings.extend(train.warnings)
    if "val" in splits:
        val = coco.read_split(*splits["val"])
        coco.check_same_categories(train, val)
        data.warnings.extend(val.warnings)
        if val_split is not None:
            data.warnings.append(f"--val-split ignored: {splits['val'][0]} is the validation split")
        data.val = val
    else:
        fraction = DEFAULT_VAL_SPLIT if val_split is None else val_split
        order = np.random.default_rng([seed, 7919]).permutation(len(train.images))
        k = min(max(round(fraction * len(order)), 1), len(order) - 1)
        held = set(order[:k].tolist())
        data.train = dataclasses.replace(train, images=[im for i, im in enumerate(train.images) if i not in held])
        data.val = dataclasses.replace(train, images=[im for i, im in enumerate(train.images) if i in held])
        data.notes.append(f"{source} has no val split: holding out {fraction:.0%} of the training images "
                          f"for validation (--val-split, seed {seed})")
    for name in ("train", "val"):
        split = getattr(data, name)
        good = []
        for im in split.images:
            why = "no such file" if not im.path.is_file() else unreadable(im.path)
            if why:
                data.skipped.append((str(im.path), why))
            else:
                good.append(im)
        setattr(data, name, dataclasses.replace(split, images=good))
    if not data.train.images:
        raise DataError(f"--data {source}: the training split has no readable images")
    if not data.val.images:
        raise DataError(f"--data {source}: the validation split has no readable images")
    return data


class DetectionDataset:
    """``ds[i] -> (x (C, H, W) float32, target)`` with target ``{"boxes": (M, 4) network pixels,
    "labels": (M,) 1..K, "image_id", "geometry"}``; ``(None, why)`` for a file that fails to decode.
    Crowd boxes are left out of the targets (``train=True``). ``transform`` is one of
    ``detect_augment``'s; deterministic ones are cached within ``cache_bytes``."""

    def __init__(self, split: coco.CocoSplit, transform: Callable, cache_bytes: int = 0, train: bool = True):
        self.split, self.transform, self.train = split, transform, train
        spec = transform.spec
        size = len(split) * spec.channels * spec.height * spec.width * 4
        fits = getattr(transform, "deterministic", False) and size <= cache_bytes
        self._cache: dict[int, tuple] | None = {} if fits else None

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.transform, "epoch"):
            self.transform.epoch = epoch

    def __len__(self) -> int:
        return len(self.split.images)

    def __getitem__(self, i: int):
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = self.split.images[i]
        keep = ~img.crowd if self.train else np.ones(len(img.labels), dtype=bool)
        try:
            # the eval transform decodes as the device does (the contract's fast|exact); random crops start
            # from the whole image, as for classification
            spec = self.transform.spec if getattr(self.transform, "deterministic", False) else None
            x, boxes, labels, geom = self.transform(decode(img.path, spec), img.boxes[keep], img.labels[keep], i)
        except ImageError as e:
            return None, str(e)
        item = (x, {"boxes": boxes, "labels": labels, "image_id": img.id, "geometry": geom})
        if self._cache is not None:
            self._cache[i] = item
        return item


def collate(batch: list[tuple]):
    """``(x (N, C, H, W) tensor or None, targets with torch boxes/labels, reasons of failed files)``."""
    import torch

    good = [b for b in batch if b[0] is not None]
    bad = [b[1] for b in batch if b[0] is None]
    x = torch.from_numpy(np.stack([b[0] for b in good])) if good else None
    targets = [{**t, "boxes": torch.from_numpy(t["boxes"]), "labels": torch.from_numpy(t["labels"])}
               for _, t in good]
    return x, targets, bad
