"""COCO-format detection data, read as pycocotools reads it. NumPy only (no torch): ``eval`` runs it
on the device, training builds its dataset on it.

Layouts (``find_split`` / ``find_splits``):
  - COCO 2017: ``DIR/annotations/instances_{train,val}.json`` (also ``..._train2017.json``) with the
    images in ``DIR/{train,val}/`` (or ``train2017/``, ``images/train/``) — what
    ``edgecnn data shapes --task detect`` writes;
  - a split folder (Roboflow and most exporters): ``SPLIT/annotations.json`` or
    ``SPLIT/_annotations.coco.json`` with its images beside it or under ``SPLIT/images/``;
    a root holds ``train/`` and ``val/`` (or ``valid/``, ``validation/``, ``test/``) split folders.

Semantics: ``bbox`` is ``[x, y, w, h]`` in pixels; category ids may be sparse and are mapped, in
increasing id order, to contiguous labels 1..K (0 is the background, as the detectors count);
``iscrowd`` boxes are kept but flagged (training ignores them, pycocotools treats them as ignore
regions); images without annotations are allowed. A malformed annotation (negative size, an unknown
image or category id, a box wholly outside its image) is a one-line error naming the annotation id
and the file; a box partly outside its image is clipped, with one warning per file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, first_line

ANNOTATION_NAMES = ("annotations.json", "_annotations.coco.json")
SPLIT_NAMES = {"train": ("train", "train2017"), "val": ("val", "valid", "validation", "val2017", "test")}


class CocoError(EdgeCNNError):
    """A COCO data set that cannot be read: missing files, malformed JSON or annotations."""


@dataclass
class CocoImage:
    """One image and its objects. boxes: (M, 4) float32 xyxy original pixels (clipped to the image);
    labels: (M,) int64 contiguous 1..K; crowd: (M,) bool (``iscrowd``)."""

    id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    crowd: np.ndarray


@dataclass
class CocoSplit:
    """A parsed annotation file. ``category_ids[k - 1]`` is the COCO id of label k, ``names[k - 1]`` its
    name; ``doc`` is the file's JSON as read (the ground truth pycocotools evaluates against)."""

    annotation_file: Path
    image_dir: Path
    images: list[CocoImage]
    category_ids: list[int]
    names: list[str]
    doc: dict
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def category_id(self, label: int) -> int:
        """Contiguous label 1..K -> the file's category id."""
        return self.category_ids[label - 1]


def _split_annotations(folder: Path) -> Path | None:
    return next((folder / n for n in ANNOTATION_NAMES if (folder / n).is_file()), None)


def _image_dir(folder: Path) -> Path:
    return folder / "images" if (folder / "images").is_dir() else folder


def find_splits(root: str | Path) -> dict[str, tuple[Path, Path]]:
    """``{"train": (annotation file, image folder), "val": ...}`` for the splits ``root`` holds."""
    root = Path(root)
    found: dict[str, tuple[Path, Path]] = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            ann = root / "annotations" / f"instances_{name}.json"
            if ann.is_file():
                images = next((d for d in (root / name, root / "images" / name) if d.is_dir()), root / name)
                found[split] = (ann, images)
                break
            ann = _split_annotations(root / name)
            if ann is not None:
                found[split] = (ann, _image_dir(root / name))
                break
    return found


def find_split(path: str | Path, prefer: str = "val") -> tuple[Path, Path]:
    """The annotation file and image folder of ``path``: a split folder itself, or ``prefer`` of a root."""
    p = Path(path)
    if not p.is_dir():
        raise CocoError(f"--data {p}: no such directory")
    ann = _split_annotations(p)
    if ann is not None:
        return ann, _image_dir(p)
    splits = find_splits(p)
    if prefer in splits:
        return splits[prefer]
    raise CocoError(f"--data {p}: no COCO {prefer} split; expected {p}/annotations/instances_{prefer}.json "
                    f"or a split folder holding {' or '.join(ANNOTATION_NAMES)}")


def read_split(annotation_file: str | Path, image_dir: str | Path) -> CocoSplit:
    """Parse and check one annotation file (see the module docstring for what is an error)."""
    path = Path(annotation_file)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CocoError(f"{path}: cannot read ({e.strerror or first_line(e)})") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CocoError(f"{path}: not valid JSON ({first_line(e)})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("categories"), list):
        raise CocoError(f"{path}: not a COCO annotation file (needs 'images' and 'categories' lists)")
    doc.setdefault("annotations", [])
    if not isinstance(doc["annotations"], list):
        raise CocoError(f"{path}: 'annotations' must be a list")
    cats = _categories(doc["categories"], path)
    label_of = {cid: k + 1 for k, cid in enumerate(sorted(cats))}
    images = _images(doc["images"], path, Path(image_dir))
    per_image: dict[int, list[tuple[list[float], int, bool]]] = {i: [] for i in images}
    clipped, first_clipped, empty, seen = 0, None, 0, set()
    for ann in doc["annotations"]:
        aid = ann.get("id") if isinstance(ann, dict) else None
        where = f"{path}: annotation {aid}"
        if not isinstance(ann, dict) or aid is None:
            raise CocoError(f"{path}: an annotation without an 'id' ({first_line(Exception(str(ann)))[:80]})")
        if aid in seen:
            raise CocoError(f"{where}: duplicate annotation id")
        seen.add(aid)
        img = images.get(ann.get("image_id"))
        if img is None:
            raise CocoError(f"{where}: image_id {ann.get('image_id')!r} is not an image of the file")
        if ann.get("category_id") not in label_of:
            raise CocoError(f"{where}: category_id {ann.get('category_id')!r} is not a category of the file "
                            f"(ids {', '.join(map(str, sorted(cats)))})")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
                and all(math.isfinite(v) for v in bbox)):
            raise CocoError(f"{where}: bbox must be [x, y, width, height] (4 finite numbers), got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise CocoError(f"{where}: negative box size (width {w:g}, height {h:g}); bbox is [x, y, width, height]")
        if w == 0 or h == 0:
            empty += 1  # pycocotools keeps them, but no pixel shows the object: not a training target
            continue
        x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, float(img.width)), min(y + h, float(img.height))
        if x0 >= x1 or y0 >= y1:
            raise CocoError(f"{where}: box {bbox} lies wholly outside its {img.width}x{img.height} image "
                            f"(image id {img.id})")
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            clipped += 1
            first_clipped = first_clipped if first_clipped is not None else aid
        per_image[img.id].append(([x0, y0, x1, y1], label_of[ann["category_id"]], bool(ann.get("iscrowd", 0))))
    for img in images.values():
        objs = per_image[img.id]
        img.boxes = np.asarray([o[0] for o in objs], dtype=np.float32).reshape(-1, 4)
        img.labels = np.asarray([o[1] for o in objs], dtype=np.int64)
        img.crowd = np.asarray([o[2] for o in objs], dtype=bool)
    ids = sorted(cats)
    split = CocoSplit(path, Path(image_dir), list(images.values()), ids, [cats[i] for i in ids], doc)
    if clipped:
        split.warnings.append(f"{path}: {clipped} box{'es' if clipped > 1 else ''} partly outside the image "
                              f"clipped to it (first: annotation {first_clipped})")
    if empty:
        split.warnings.append(f"{path}: {empty} box{'es' if empty > 1 else ''} of zero width or height left out")
    return split


def _categories(cats: list, path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for c in cats:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            raise CocoError(f"{path}: a category without an integer 'id' ({str(c)[:80]})")
        if c["id"] in out:
            raise CocoError(f"{path}: duplicate category id {c['id']}")
        out[c["id"]] = str(c.get("name", c["id"]))
    if not out:
        raise CocoError(f"{path}: no categories")
    return out


def _images(entries: list, path: Path, image_dir: Path) -> dict[int, CocoImage]:
    out: dict[int, CocoImage] = {}
    empty_boxes = np.zeros((0, 4), np.float32)
    for e in entries:
        iid = e.get("id") if isinstance(e, dict) else None
        if iid is None or not isinstance(e.get("file_name"), str):
            raise CocoError(f"{path}: an image without 'id' and 'file_name' ({str(e)[:80]})")
        if iid in out:
            raise CocoError(f"{path}: duplicate image id {iid}")
        w, h = e.get("width"), e.get("height")
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise CocoError(f"{path}: image {iid} ({e['file_name']}) needs positive integer width and height, "
                            f"got {w!r} x {h!r}")
        out[iid] = CocoImage(iid, image_dir / e["file_name"], w, h, empty_boxes,
                             np.zeros(0, np.int64), np.zeros(0, bool))
    return out


def check_same_categories(train: CocoSplit, val: CocoSplit) -> None:
    """Train and val must name the same categories under the same ids."""
    a, b = dict(zip(train.category_ids, train.names, strict=True)), dict(zip(val.category_ids, val.names, strict=True))
    if a != b:
        raise CocoError(f"{val.annotation_file}: categories {b} differ from those of {train.annotation_file} ({a})")
