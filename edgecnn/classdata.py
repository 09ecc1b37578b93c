"""Labelled classification data on disk, read the same way by training and by ``eval`` (which runs
torch-free on a device): ImageFolder splits (``DIR/<class>/<image>``) and MNIST-format IDX files.
NumPy + Pillow only. (COCO detection data: ``edgecnn.coco``.)

- ``scan_folder``: the classes and samples of an ImageFolder split, unreadable files left out with why;
- ``find_mnist`` / ``read_idx_pair``: the IDX files of a folder and one images + labels pair;
- ``read_idx`` / ``write_idx``: the IDX format itself (gzip or not).
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_path
from edgecnn.runtime.image import IMAGE_SUFFIXES
from edgecnn.runtime.sources import Root, iter_images

VAL_DIRS = ("val", "valid", "validation")


class DataError(EdgeCNNError):
    """A data source that cannot be trained on: missing, empty, malformed, a single class."""

@dataclass
class Split:
    """Samples of one split: ``items[i]`` is a file Path, an (H, W[, C]) uint8 array or a PIL image."""

    items: Sequence
    targets: list[int]

    def __len__(self) -> int:
        return len(self.targets)

    def counts(self, num_classes: int) -> list[int]:
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=num_classes).tolist()


# ----------------------------------------------------------------------------------------- ImageFolder


def class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def scan_folder(root: Path, classes: list[str] | None = None
                ) -> tuple[list[str], Split, list[tuple[str, str]], list[str]]:
    """Scan ``root/<class>/**/<image>``. With ``classes`` (the val split of a train folder), every
    folder must be one of them and an empty one is only reported; otherwise empty folders and a
    single class are errors."""
    dirs = class_dirs(root)
    strict = classes is None
    if not dirs:
        raise DataError(f"{root} holds no class folders; expected the ImageFolder layout {root}/<class>/<image>")
    if classes is None:
        if len(dirs) == 1:
            raise DataError(f"{root} has a single class folder ('{dirs[0].name}'); "
                            "a classifier needs at least 2 classes")
        classes = [d.name for d in dirs]
    index = {c: i for i, c in enumerate(classes)}
    items: list[Path] = []
    targets: list[int] = []
    skipped: list[tuple[str, str]] = []
    empty: list[str] = []
    for d in dirs:
        if d.name not in index:
            raise DataError(f"{d} is not a class of the training split ({', '.join(classes)})")
        files = sorted(f.path for f in iter_images([Root(d, True)]))  # the runtime's walk: same files as infer
        good = 0
        for f in files:
            why = unreadable(f)
            if why:
                skipped.append((str(f), why))
                continue
            items.append(f)
            targets.append(index[d.name])
            good += 1
        if not good:
            if strict:
                what = "no readable images" if files else "no images"
                raise DataError(f"class folder {d} has {what} ({', '.join(IMAGE_SUFFIXES)}); "
                                "add images or remove the folder")
            empty.append(d.name)
    return classes, Split(items, targets), skipped, empty


def unreadable(path: Path) -> str | None:
    """Why ``path`` is not an image, judged from its header alone (decoding waits for the loader)."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path):
            return None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"not a readable image ({e.__class__.__name__})"


# ------------------------------------------------------------------------------------------- MNIST IDX

_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not, told by its magic bytes) -> array of its shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from e
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:offset])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataError(f"{path}: the IDX header promises {'x'.join(map(str, dims))} ({expected:,} bytes) but "
                        f"the file holds {len(raw) - offset:,}; truncated or corrupt")
    return np.frombuffer(raw, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``; atomically."""
    a = np.asarray(array)
    code = next((c for c, dt in _IDX_DTYPES.items() if dt.kind == a.dtype.kind and dt.itemsize == a.dtype.itemsize),
                None)
    if code is None:
        raise ValueError(f"IDX cannot hold dtype {a.dtype}")
    payload = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    payload += a.astype(_IDX_DTYPES[code]).tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(payload, mtime=0) if str(path).endswith(".gz") else payload)


def find_mnist(root: Path) -> dict[str, Path] | None:
    """The IDX files in ``root`` (keys ``train-images``, ``train-labels`` and maybe ``t10k-*``), or None
    when there are no training images."""
    found: dict[str, Path] = {}
    for split in ("train", "t10k"):
        for kind, n in (("images", 3), ("labels", 1)):
            for name in (f"{split}-{kind}-idx{n}-ubyte", f"{split}-{kind}.idx{n}-ubyte"):
                for suffix in ("", ".gz"):
                    if (root / (name + suffix)).is_file() and f"{split}-{kind}" not in found:
                        found[f"{split}-{kind}"] = root / (name + suffix)
    if "train-images" not in found:
        return None
    if "train-labels" not in found:
        raise DataError(f"{found['train-images']} has no labels file beside it (train-labels-idx1-ubyte[.gz])")
    return found


def read_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)) or x.dtype != np.uint8:
        raise DataError(f"{images}: expected uint8 images N x H x W (or N x H x W x 1|3), "
                        f"got {x.dtype} {'x'.join(map(str, x.shape))}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{labels}: expected {len(x):,} labels for the images of {images.name}, "
                        f"got shape {'x'.join(map(str, y.shape))}")
    if x.ndim == 4 and x.shape[3] == 1:
        x = x[..., 0]
    return x, y.astype(np.int64)
