"""COCO detection data: both layouts, pycocotools semantics, one-line errors, boxes that move with pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn import coco
from edgecnn.contract import Preprocess
from edgecnn.train.coco import DetectionDataset, open_detection_data
from edgecnn.train.detect_augment import DetectEvalTransform, DetectTrainTransform
from edgecnn.train.shapes import write_shapes


def _doc(images, anns, cats):
    return {"images": images, "annotations": anns, "categories": cats}


def _write_split(folder: Path, doc: dict, name: str = "_annotations.coco.json", under_images: bool = False,
                 size: tuple[int, int] = (40, 30)) -> Path:
    img_dir = folder / "images" if under_images else folder
    img_dir.mkdir(parents=True, exist_ok=True)
    for im in doc["images"]:
        Image.new("RGB", size, (20, 20, 20)).save(img_dir / im["file_name"])
    (folder / name).write_text(json.dumps(doc))
    return folder / name


SPARSE = [{"id": 42, "name": "dog"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "bird"}]


def test_coco2017_layout_from_shapes(tmp_path):
    write_shapes(tmp_path / "d", 10, 48, task="detect")
    splits = coco.find_splits(tmp_path / "d")
    assert set(splits) == {"train", "val"}
    val = coco.read_split(*splits["val"])
    raw = json.loads((tmp_path / "d/annotations/instances_val.json").read_text())
    assert len(val) == len(raw["images"]) == 2  # every fifth image
    assert val.names == ["circle", "triangle", "square", "star"] and val.category_ids == [1, 2, 3, 4]
    # xywh in the file -> xyxy here, the same objects
    first = raw["annotations"][0]
    img = next(i for i in val.images if i.id == first["image_id"])
    x, y, w, h = first["bbox"]
    assert np.allclose(img.boxes[0], [x, y, x + w, y + h], atol=1e-4)
    assert img.labels[0] == first["category_id"]
    assert coco.find_split(tmp_path / "d") == splits["val"]


def test_split_folder_layout_sparse_ids_crowd_and_empty_images(tmp_path):
    doc = _doc([{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
                {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30}],
               [{"id": 10, "image_id": 1, "category_id": 42, "bbox": [1, 2, 10, 5]},
                {"id": 11, "image_id": 1, "category_id": 3, "bbox": [20, 10, 5, 5], "iscrowd": 1}], SPARSE)
    _write_split(tmp_path / "valid", doc, under_images=True)
    _write_split(tmp_path / "train", doc, name="annotations.json")
    splits = coco.find_splits(tmp_path)
    assert splits["val"] == (tmp_path / "valid/_annotations.coco.json", tmp_path / "valid/images")
    assert splits["train"] == (tmp_path / "train/annotations.json", tmp_path / "train")
    s = coco.read_split(*splits["val"])
    # ids 3, 7, 42 -> labels 1, 2, 3 in id order; back again
    assert s.category_ids == [3, 7, 42] and s.names == ["cat", "bird", "dog"]
    assert [s.category_id(k) for k in (1, 2, 3)] == [3, 7, 42]
    a, b = s.images
    assert a.labels.tolist() == [3, 1] and a.crowd.tolist() == [False, True]
    assert np.allclose(a.boxes, [[1, 2, 11, 7], [20, 10, 25, 15]])
    assert len(b.labels) == 0 and b.boxes.shape == (0, 4)  # an image without annotations
    # training leaves the crowd box out of the targets; evaluation keeps the image
    spec = Preprocess(40, 40, resize="letterbox")
    data = open_detection_data(str(tmp_path))
    x, t = DetectionDataset(data.val, DetectEvalTransform(spec), train=True)[0]
    assert t["labels"].tolist() == [3] and x.shape == (3, 40, 40)


def _error(tmp_path, ann, match):
    doc = _doc([{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}], [ann], SPARSE)
    path = _write_split(tmp_path / "s", doc)
    with pytest.raises(coco.CocoError) as e:
        coco.read_split(path, tmp_path / "s")
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and match in msg, msg
    return msg


@pytest.mark.parametrize("ann, match", [
    ({"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, -4, 5]}, "annotation 5: negative box size"),
    ({"id": 6, "image_id": 9, "category_id": 3, "bbox": [1, 1, 4, 5]}, "annotation 6: image_id 9"),
    ({"id": 7, "image_id": 1, "category_id": 4, "bbox": [1, 1, 4, 5]}, "annotation 7: category_id 4"),
    ({"id": 8, "image_id": 1, "category_id": 3, "bbox": [50, 1, 4, 5]}, "annotation 8: box [50, 1, 4, 5] lies "
                                                                        "wholly outside"),
    ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4]}, "annotation 9: bbox must be"),
])
def test_malformed_annotation_is_one_line_naming_id_and_file(tmp_path, ann, match):
    _error(tmp_path, ann, match)


def test_partly_outside_is_clipped_with_a_warning(tmp_path):
    doc = _doc([{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
               [{"id": 12, "image_id": 1, "category_id": 7, "bbox": [30, -5, 20, 15]}], SPARSE)
    path = _write_split(tmp_path / "s", doc)
    s = coco.read_split(path, tmp_path / "s")
    assert np.allclose(s.images[0].boxes, [[30, 0, 40, 10]])
    assert len(s.warnings) == 1 and "annotation 12" in s.warnings[0] and "clipped" in s.warnings[0]


def test_not_json_and_missing_split_are_one_line(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s/annotations.json").write_text("{not json")
    with pytest.raises(coco.CocoError, match="not valid JSON"):
        coco.read_split(tmp_path / "s/annotations.json", tmp_path / "s")
    with pytest.raises(coco.CocoError, match="no COCO val split"):
        coco.find_split(tmp_path)


def _bright_box(x: np.ndarray) -> tuple[float, float, float, float]:
    """The pixel extent of the white rectangle in a (C, H, W) preprocessed tensor."""
    ys, xs = np.nonzero(x[0] > 1.5)  # white after ImageNet normalisation is ~2.2, grey/black below 0.2
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


@pytest.mark.parametrize("seed", range(6))
def test_augmented_boxes_follow_the_pixels(seed):
    im = Image.new("RGB", (60, 40), (0, 0, 0))
    im.paste((255, 255, 255), (10, 8, 30, 24))  # box [10, 8, 30, 24]
    spec = Preprocess(48, 48, resize="letterbox", interpolation="nearest", pad_value=0)
    t = DetectTrainTransform(spec, seed, jitter=0.0, p_zoom_out=0.6, p_crop=0.6)
    for index in range(4):
        x, boxes, labels, _ = t(im, np.array([[10, 8, 30, 24]], np.float32), np.array([1]), index)
        if len(boxes) == 0:
            continue  # the crop lost the object: dropped, as it should
        assert labels.tolist() == [1]
        assert np.allclose(boxes[0], _bright_box(x), atol=1.5), (seed, index, boxes[0], _bright_box(x))


def test_eval_transform_is_the_letterbox_with_boxes_mapped():
    im = Image.new("RGB", (80, 40), (0, 0, 0))
    im.paste((255, 255, 255), (20, 10, 60, 30))
    spec = Preprocess(40, 40, resize="letterbox", interpolation="nearest", pad_value=0)
    x, boxes, _, geom = DetectEvalTransform(spec)(im, np.array([[20, 10, 60, 30]], np.float32), np.array([2]), 0)
    assert geom.scale == (0.5, 0.5) and geom.pad == (0.0, 10.0)
    assert np.allclose(boxes[0], [10, 15, 30, 25]) and np.allclose(boxes[0], _bright_box(x))


def test_eval_dataset_decodes_as_the_contract_says(tmp_path, monkeypatch):
    # A large JPEG under a fast-decode spec is decoded reduced (as infer does on the device); the targets
    # are the full image's boxes mapped the same way, and the pixels stay within the fast path's tolerance.
    from edgecnn.runtime import image as rimage

    doc = _doc([{"id": 1, "file_name": "big.jpg", "width": 640, "height": 480}],
               [{"id": 10, "image_id": 1, "category_id": 3, "bbox": [160, 120, 320, 240]}], SPARSE)
    folder = tmp_path / "val"
    folder.mkdir()
    im = Image.new("RGB", (640, 480), (0, 0, 0))
    im.paste((255, 255, 255), (160, 120, 480, 360))
    im.save(folder / "big.jpg", quality=95)
    (folder / "_annotations.coco.json").write_text(json.dumps(doc))
    split = coco.read_split(folder / "_annotations.coco.json", folder)
    seen = []
    real = rimage.load_image
    monkeypatch.setattr("edgecnn.train.datasets.load_image",
                        lambda p, spec=None: seen.append(real(p, spec).info.get(rimage.REDUCED)) or real(p, spec))
    out = {}
    for decode in ("fast", "exact"):
        spec = Preprocess(48, 48, resize="letterbox", decode=decode)
        out[decode] = DetectionDataset(split, DetectEvalTransform(spec), train=False)[0]
    assert seen[0] is not None and seen[-1] is None  # fast: reduced decode; exact: the whole image
    (xf, tf), (xe, te) = out["fast"], out["exact"]
    assert np.allclose(tf["boxes"], te["boxes"]) and np.allclose(tf["boxes"], [[12, 15, 36, 33]])
    assert np.abs(xf - xe).max() < 0.2  # a few 0-255 levels after normalisation
