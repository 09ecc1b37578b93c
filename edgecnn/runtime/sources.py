"""Which image files a command runs on: files, folders (recursive) and globs, many in one call.

``expand`` checks every argument up front (a missing path, a glob that matches nothing or a folder
without images is a one-line error before any model loads); ``iter_images`` then walks the roots
lazily, so a folder of a million images costs a directory listing at a time, not a list of them.
Used by ``infer``, and meant for ``eval``, ``bench`` and the INT8 calibration reader. No torch.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import EdgeCNNError
from edgecnn.runtime.image import IMAGE_SUFFIXES

_GLOB_CHARS = frozenset("*?[")


class SourceError(EdgeCNNError):
    """A PATH argument that names no image: missing, an empty glob, a folder without images."""


@dataclass(frozen=True)
class Root:
    """One expanded argument: an image file, or a folder to walk."""

    path: Path
    is_dir: bool


@dataclass(frozen=True)
class ImageFile:
    """An image to process. ``rel`` is its path relative to the folder argument it came from (its
    name for a file argument): where ``--save DIR`` puts its annotated copy."""

    path: Path
    rel: Path


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def expand(paths: Sequence[str | Path]) -> list[Root]:
    """PATH arguments -> roots, in argument order. A file given by name is taken whatever its
    suffix (the decoder decides); files matched by a glob or found in a folder must have an image
    suffix (``IMAGE_SUFFIXES``, any case) and not be hidden (dot-files are skipped)."""
    if not paths:
        raise SourceError("no input: give image files, folders or globs")
    roots: list[Root] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            roots.append(_checked_dir(p))
        elif p.exists():
            roots.append(Root(p, False))
        elif _GLOB_CHARS & set(str(arg)):
            matches = sorted(glob.glob(str(arg), recursive=True))
            found = [Root(Path(m), True) if os.path.isdir(m) else Root(Path(m), False)
                     for m in matches if os.path.isdir(m) or is_image_name(os.path.basename(m))]
            if not found:
                raise SourceError(f"{arg}: no image files match this pattern")
            roots.extend(found)
        else:
            raise SourceError(f"{arg}: no such file or folder")
    return roots


def _checked_dir(p: Path) -> Root:
    root = Root(p, True)
    if next(_walk(p, None), None) is None:
        raise SourceError(f"{p}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
    return root


def _walk(folder: Path, exclude: Path | None) -> Iterator[Path]:
    """Image files under ``folder``: a folder's files (sorted) before its subfolders (sorted,
    recursively); one directory listing in memory at a time. Hidden files and folders are skipped,
    and so is ``exclude`` (an output folder inside an input folder)."""
    skip = None if exclude is None else os.path.realpath(exclude)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip is None or os.path.realpath(os.path.join(dirpath, d)) != skip))
        for name in sorted(filenames):
            if is_image_name(name):
                yield Path(dirpath, name)


def iter_images(roots: Iterable[Root], exclude: str | Path | None = None) -> Iterator[ImageFile]:
    """Every image of the roots, lazily, in argument order (folders walked as ``_walk`` says,
    never entering ``exclude``)."""
    for root in roots:
        if root.is_dir:
            for f in _walk(root.path, exclude):
                yield ImageFile(f, f.relative_to(root.path))
        else:
            yield ImageFile(root.path, Path(root.path.name))


def count_images(roots: Iterable[Root], exclude: str | Path | None = None) -> int:
    """How many files ``iter_images`` will yield (a directory walk; no image is opened)."""
    return sum(1 for _ in iter_images(roots, exclude))


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """Convenience for small sets (calibration, eval): every image path of the arguments."""
    return [f.path for f in iter_images(expand(paths))]
