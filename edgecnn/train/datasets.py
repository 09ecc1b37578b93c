"""Training data: a ``--data`` source -> ``Data`` (class names, train and val samples). No torch.

Sources:
  - an ImageFolder directory: ``DIR/train/<class>/<image>`` with ``DIR/val/<class>/...`` (also
    ``valid``/``validation``), or ``DIR/<class>/<image>`` from which ``--val-split`` holds out a
    stratified fraction (0.2 when not given);
  - a directory of MNIST-format IDX files: ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
    (``.gz`` or not, ``-idx3`` or ``.idx3``), with ``t10k-*`` as the validation split when present;
  - ``shapes`` or ``shapes:N`` (N images, default 1000): the synthetic set of ``edgecnn.train.shapes``,
    made in memory (``edgecnn data shapes`` writes the same images to disk).

Unreadable files are left out with a count before training starts (a header check, cheap on large
folders); a file that passes it but fails to decode later is dropped from its batch by the loader.
``ImageDataset`` needs no torch base class: a DataLoader takes anything with ``__len__`` and
``__getitem__``, and ``edgecnn data`` runs on an install without torch.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn.classdata import (
    VAL_DIRS,
    DataError,
    Split,
    class_dirs,
    find_mnist,
    read_idx,
    read_idx_pair,
    scan_folder,
    unreadable,
    write_idx,
)
from edgecnn.errors import UsageError
from edgecnn.fileio import atomic_path
from edgecnn.runtime.image import ImageError, load_image
from edgecnn.train import shapes

__all__ = ["VAL_DIRS", "Data", "DataError", "ImageDataset", "Split", "decode", "download_mnist", "find_mnist",
           "open_data", "read_idx", "unreadable", "write_idx"]  # the readers live in edgecnn.classdata

DEFAULT_VAL_SPLIT = 0.2
SHAPES_DEFAULT_N = 1000
SHAPES_SIZE = 64


@dataclass
class Data:
    name: str  # short name for the default output folder: models/<model>-<name>/
    kind: str  # imagefolder | mnist | shapes
    classes: list[str]
    train: Split
    val: Split
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) left out at the scan
    notes: list[str] = field(default_factory=list)  # how the split was made, shown to the user
    warnings: list[str] = field(default_factory=list)


def open_data(source: str, val_split: float | None = None, seed: int = 0) -> Data:
    """Resolve ``source`` (a directory, ``shapes`` or ``shapes:N``) into train and val samples."""
    if val_split is not None and not 0.0 < val_split < 1.0:
        raise UsageError(f"--val-split must be between 0 and 1, got {val_split}")
    path = Path(source)
    if path.is_dir():
        mnist = find_mnist(path)
        data = _open_mnist(path, mnist, val_split, seed) if mnist else _open_folder(path, val_split, seed)
    elif source == "shapes" or source.startswith("shapes:"):
        data = _open_shapes(source, val_split, seed)
    elif path.exists():
        raise DataError(f"--data {source} is a file; give an ImageFolder or IDX directory, or 'shapes'")
    else:
        raise DataError(f"--data {source}: no such directory; give an ImageFolder or IDX directory, or 'shapes'")
    if len(data.val) == 0:
        raise DataError(f"--data {source}: the validation split is empty; add images or use a larger --val-split")
    return data


# ----------------------------------------------------------------------------------------- ImageFolder


def _open_folder(root: Path, val_split: float | None, seed: int) -> Data:
    name = root.resolve().name
    train_dir = root / "train"
    if train_dir.is_dir() and class_dirs(train_dir):
        classes, train, skipped, _ = scan_folder(train_dir)
        val_dir = next((root / v for v in VAL_DIRS if (root / v).is_dir()), None)
        if val_dir is not None:
            _, val, skipped_val, empty = scan_folder(val_dir, classes)
            data = Data(name, "imagefolder", classes, train, val, skipped + skipped_val)
            if empty:
                data.warnings.append(f"{val_dir} has no images for class(es) {', '.join(empty)}")
            if val_split is not None:
                data.warnings.append(f"--val-split ignored: {val_dir} is the validation split")
            return data
        data = Data(name, "imagefolder", classes, train, Split([], []), skipped)
    else:
        classes, train, skipped, _ = scan_folder(root)
        data = Data(name, "imagefolder", classes, train, Split([], []), skipped)
    return _hold_out(data, val_split, seed, f"{root} has no val/ folder")


def _hold_out(data: Data, val_split: float | None, seed: int, why: str) -> Data:
    """Move a stratified, seeded fraction of ``data.train`` into ``data.val``."""
    fraction = DEFAULT_VAL_SPLIT if val_split is None else val_split
    targets = np.asarray(data.train.targets)
    rng = np.random.default_rng([seed, 7919])
    val_idx: list[int] = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(targets == c)
        rng.shuffle(idx)
        k = min(max(round(fraction * len(idx)), 1 if len(idx) > 1 else 0), len(idx) - 1)
        val_idx.extend(idx[:k].tolist())
    val_set = set(val_idx)
    train_idx = [i for i in range(len(targets)) if i not in val_set]
    val_idx.sort()
    items = data.train.items
    data.train, data.val = (Split([items[i] for i in train_idx], [int(targets[i]) for i in train_idx]),
                            Split([items[i] for i in val_idx], [int(targets[i]) for i in val_idx]))
    data.notes.append(f"{why}: holding out {fraction:.0%} of each class for validation (--val-split, seed {seed})")
    return data


# ------------------------------------------------------------------------------------------- MNIST IDX

def _open_mnist(root: Path, files: dict[str, Path], val_split: float | None, seed: int) -> Data:
    x, y = read_idx_pair(files["train-images"], files["train-labels"])
    if len(y) == 0:
        raise DataError(f"{files['train-images']} holds no images")
    if y.min() < 0:
        raise DataError(f"{files['train-labels']}: negative label {int(y.min())}")
    num_classes = int(y.max()) + 1
    missing = [str(c) for c in range(num_classes) if not (y == c).any()]
    if num_classes < 2:
        raise DataError(f"{files['train-labels']} holds a single class; a classifier needs at least 2")
    if missing:
        raise DataError(f"{files['train-labels']} has no images of class(es) {', '.join(missing)}")
    classes = [str(c) for c in range(num_classes)]
    data = Data(root.resolve().name, "mnist", classes, Split(x, y.tolist()), Split([], []))
    if "t10k-images" in files and val_split is None:
        if "t10k-labels" not in files:
            raise DataError(f"{files['t10k-images']} has no labels file beside it (t10k-labels-idx1-ubyte[.gz])")
        vx, vy = read_idx_pair(files["t10k-images"], files["t10k-labels"])
        if len(vy) and (vy.min() < 0 or vy.max() >= num_classes):
            raise DataError(f"{files['t10k-labels']}: labels outside the training classes 0..{num_classes - 1}")
        if vx.shape[1:] != x.shape[1:]:
            raise DataError(f"{files['t10k-images']}: images of {'x'.join(map(str, vx.shape[1:]))}, "
                            f"the training images are {'x'.join(map(str, x.shape[1:]))}")
        data.val = Split(vx, vy.tolist())
        return data
    why = f"{root} has no t10k files" if "t10k-images" not in files else "--val-split given"
    return _hold_out(data, val_split, seed, why)


MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
MNIST_FILES = {  # file -> shape, checked after download
    "train-images-idx3-ubyte.gz": (60000, 28, 28),
    "train-labels-idx1-ubyte.gz": (60000,),
    "t10k-images-idx3-ubyte.gz": (10000, 28, 28),
    "t10k-labels-idx1-ubyte.gz": (10000,),
}


def download_mnist(out: str | Path, mirrors: Sequence[str] = MNIST_MIRRORS, timeout: float = 30.0,
                   on_file: Callable[[str, str], None] | None = None) -> list[Path]:
    """Download the four MNIST IDX files into ``out`` (kept compressed; ``--data out`` reads them).

    Each file is written atomically and its IDX shape checked; files already present and valid are
    kept. Fails with one line naming the URL and the reason when no mirror answers (offline)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a directory")
    created = not out.exists()
    try:
        return _download_all(out, mirrors, timeout, on_file)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave no empty folder behind
        raise


def _download_all(out: Path, mirrors: Sequence[str], timeout: float,
                  on_file: Callable[[str, str], None] | None) -> list[Path]:
    paths = []
    for name, shape in MNIST_FILES.items():
        target = out / name
        paths.append(target)
        if target.is_file() and _has_shape(target, shape):
            if on_file:
                on_file(name, "present")
            continue
        errors = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                with atomic_path(target) as tmp:
                    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
                        shutil.copyfileobj(response, f)
                    if not _has_shape(tmp, shape):
                        raise DataError(f"not an IDX file of shape {'x'.join(map(str, shape))}")
                break
            except (urllib.error.URLError, OSError, ValueError, DataError) as e:
                reason = getattr(e, "reason", None) or e
                errors.append(f"{url}: {reason}")
        else:
            raise DataError(f"could not download MNIST ({errors[0]}); offline? Put the four IDX files "
                            f"({', '.join(MNIST_FILES)}) into {out} yourself")
        if on_file:
            on_file(name, url)
    return paths


def _has_shape(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        return read_idx(path).shape == shape
    except DataError:
        return False


# ---------------------------------------------------------------------------------------------- shapes


def _open_shapes(source: str, val_split: float | None, seed: int) -> Data:
    n = SHAPES_DEFAULT_N
    if ":" in source:
        try:
            n = int(source.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 2 * len(shapes.CLASSES):
            raise UsageError(f"--data {source}: give shapes:N with N >= {2 * len(shapes.CLASSES)} images")
    items, targets, splits = [], [], []
    for i in range(n):
        im, cls = shapes.classify_sample(seed, i, SHAPES_SIZE)
        items.append(im)
        targets.append(cls)
        splits.append(shapes.split_of(i))
    data = Data("shapes", "shapes", list(shapes.CLASSES), Split(items, targets), Split([], []))
    if val_split is not None:
        return _hold_out(data, val_split, seed, "--val-split given")
    data.train = Split([x for x, s in zip(items, splits, strict=True) if s == "train"],
                       [t for t, s in zip(targets, splits, strict=True) if s == "train"])
    data.val = Split([x for x, s in zip(items, splits, strict=True) if s == "val"],
                     [t for t, s in zip(targets, splits, strict=True) if s == "val"])
    return data


# --------------------------------------------------------------------------------------------- dataset


def decode(item, spec=None) -> Image.Image:
    """A sample item -> PIL image: files through ``runtime.image.load_image`` (the device's decoder);
    with an eval transform's ``spec`` (a ``Preprocess``), decoded as its ``decode`` says, as on the device."""
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, np.ndarray):
        return Image.fromarray(item)
    return load_image(item, spec)


class ImageDataset:
    """Map-style dataset: ``ds[i] -> ((C, H, W) float32, label)``, or ``(None, why)`` for a file that
    fails to decode (the collate function drops it and counts it). ``transform(image, index)`` is
    ``augment.EvalTransform`` or ``augment.TrainTransform``.

    With ``cache_bytes``, the outputs of a deterministic transform are kept in memory when the whole
    split fits in that budget: decoding and resizing then happen once, not every epoch. (Useful only
    without worker processes, whose copies of the cache end with each epoch.)"""

    def __init__(self, split: Split, transform: Callable[[Image.Image, int], np.ndarray], cache_bytes: int = 0):
        self.split, self.transform = split, transform
        spec = getattr(transform, "spec", None)
        size = len(split) * spec.channels * spec.height * spec.width * 4 if spec is not None else None
        fits = getattr(transform, "deterministic", False) and size is not None and size <= cache_bytes
        self._cache: dict[int, np.ndarray] | None = {} if fits else None

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.transform, "epoch"):
            self.transform.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        if self._cache is not None and i in self._cache:
            return self._cache[i], self.split.targets[i]
        try:
            # a deterministic (eval) transform sees the device's decode; random crops start from the whole image
            spec = self.transform.spec if getattr(self.transform, "deterministic", False) else None
            x = self.transform(decode(self.split.items[i], spec), i)
        except ImageError as e:
            return None, str(e)
        if self._cache is not None:
            self._cache[i] = x
        return x, self.split.targets[i]
