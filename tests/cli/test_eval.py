"""``edgecnn eval``: COCO mAP exactly as pycocotools computes it on the same detections, classification
metrics on a hand-computed case, checkpoints and ONNX files alike, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from typer.testing import CliRunner

from edgecnn.cli.main import app
from edgecnn.contract import Contract, Detection, Preprocess, attach
from edgecnn.train.datasets import write_idx
from edgecnn.train.shapes import write_shapes

SIZE = 48
LABELS = ["background", "circle", "triangle", "square", "star"]


def _save(nodes, inits, outputs, contract: Contract, path: Path, channels: int = 3) -> Path:
    graph = helper.make_graph(nodes, "fake", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                          ["N", channels, SIZE, SIZE])],
                              outputs, [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    attach(model, contract)
    onnx.save(model, path)
    return path


def fake_detector(path: Path, seed: int = 0, anchors: int = 24) -> Path:
    """boxes: fixed (A, 4) xyxy; scores: fixed (A, C) times sigmoid(mean pixel), so the ranking across
    images varies with the image."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, SIZE * 0.7, (anchors, 2))
    wh = rng.uniform(4, SIZE * 0.4, (anchors, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, SIZE)], 1).astype(np.float32)[None]
    scores = rng.dirichlet(np.ones(len(LABELS)), anchors).astype(np.float32)[None]
    nodes = [helper.make_node("ReduceMean", ["input"], ["m4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m4", "shape3"], ["m"]),
             helper.make_node("Sigmoid", ["m"], ["s"]),
             helper.make_node("Mul", ["s", "score_table"], ["scores"]),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["box_table", "z"], ["boxes"])]
    inits = {"shape3": np.array([-1, 1, 1], np.int64), "score_table": scores, "box_table": boxes,
             "zero": np.zeros(1, np.float32)}
    outs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", anchors, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", anchors, len(LABELS)])]
    contract = Contract(task="detect", model="fake", preprocess=Preprocess(SIZE, SIZE, resize="letterbox"),
                        labels=LABELS,
                        outputs=[{"name": "boxes", "kind": "boxes"}, {"name": "scores", "kind": "scores"}],
                        detection=Detection(box_format="xyxy", background_class=True, iou=0.5), weights="test")
    return _save(nodes, inits, outs, contract, path)


def intensity_classifier(path: Path, labels=("a", "b", "c")) -> Path:
    """logits = m * [-10, 0, 10] + [3, 0, -7] with m the mean pixel in [0, 1]: class 0 below m = 0.3,
    class 2 above m = 0.7, class 1 between."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["m4"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m4", "shape2"], ["m"]),
             helper.make_node("Mul", ["m", "w"], ["mw"]),
             helper.make_node("Add", ["mw", "b"], ["logits"])]
    inits = {"shape2": np.array([-1, 1], np.int64), "w": np.array([[-10, 0, 10]], np.float32),
             "b": np.array([[3, 0, -7]], np.float32)}
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])]
    contract = Contract(task="classify", model="fake", labels=list(labels), weights="test",
                        preprocess=Preprocess(SIZE, SIZE, 1, "L", resize="stretch", mean=(0.0,), std=(1.0,)))
    return _save(nodes, inits, outs, contract, path, channels=1)


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval") / "shapes"
    write_shapes(root, n=30, size=SIZE, seed=3, task="detect")
    return root


def _invoke(*args):
    return CliRunner().invoke(app, list(map(str, args)))


def _pycocotools_reference(ann_file: Path, results: list[dict], img_ids: list[int]) -> tuple[np.ndarray, object]:
    """What pycocotools computes on its own, from the files (the way a paper's number is made)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev


def test_detection_map_equals_pycocotools_on_the_same_detections(det_data, tmp_path):
    model = fake_detector(tmp_path / "det.onnx")
    preds = tmp_path / "preds.json"
    r = _invoke("eval", model, "--data", det_data, "--format", "json", "--save-predictions", preds)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    m = out["metrics"]
    results = json.loads(preds.read_text())
    assert out["task"] == "detect" and out["images"] == 6 and m["detections"] == len(results) > 0
    ann = det_data / "annotations/instances_val.json"
    gt_ids = [im["id"] for im in json.loads(ann.read_text())["images"]]
    stats, ev = _pycocotools_reference(ann, results, gt_ids)
    ours = [m[k] for k in ("map", "map50", "map75", "map_small", "map_medium", "map_large",
                           "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")]
    assert ours == [None if s < 0 else float(s) for s in stats]
    assert 0 < m["map50"] < 1  # a fake model: neither nothing nor everything right
    for k, cid in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        name = LABELS[cid]
        assert m["per_class"][name]["ap"] == pytest.approx(float(p[p > -1].mean()) if (p > -1).any() else None)
    # table format: the same numbers, and detections at most --max-det per image
    r = _invoke("eval", model, "--data", det_data, "--max-det", "3", "--conf", "0.01")
    assert r.exit_code == 0 and "mAP@[.50:.95]" in r.stdout and "max-det 3" in r.stdout
    per_image: dict[int, int] = {}
    for d in results:
        per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
    assert max(per_image.values()) <= 100


def test_perfect_detections_score_one(det_data):
    from edgecnn import coco
    from edgecnn.eval.coco_map import DetectionResults, class_map, coco_map

    split = coco.read_split(*coco.find_split(det_data))
    mapping, warnings = class_map(LABELS, True, split)
    assert mapping == {1: 1, 2: 2, 3: 3, 4: 4} and not warnings
    res = DetectionResults(mapping)
    for img in split.images:
        res.add(img.id, [{"class": int(c), "score": 0.9, "box": b.tolist()}
                         for b, c in zip(img.boxes, img.labels, strict=True)])
    m = coco_map(split, res)
    assert m["map"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)
    res_empty = DetectionResults(mapping)
    for img in split.images:
        res_empty.add(img.id, [])
    assert coco_map(split, res_empty)["map"] == 0.0


def _uniform(folder: Path, name: str, value: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L", (20, 20), value).save(folder / name)


# images per true class (a, b, c) -> mean pixel: a: 25, 25, 128 (-> b); b: 128, 128; c: 230, 128 (-> b)
CASE = {"a": [25, 25, 128], "b": [128, 128], "c": [230, 128]}


def _hand_checked(m: dict) -> None:
    assert m["images"] == 7 and m["top1"] == pytest.approx(5 / 7) and m["top5"] is None  # 3 classes
    assert {c: (r["n"], r["correct"]) for c, r in m["per_class"].items()} == {"a": (3, 2), "b": (2, 2), "c": (2, 1)}
    assert m["per_class"]["a"]["acc"] == pytest.approx(2 / 3)
    assert m["confusion"] == [[2, 1, 0], [0, 2, 0], [0, 1, 1]]
    assert m["confusions"] == [{"true": "a", "predicted": "b", "count": 1}, {"true": "c", "predicted": "b", "count": 1}]


def test_classification_imagefolder_hand_computed(tmp_path):
    model = intensity_classifier(tmp_path / "cls.onnx")
    for cls, values in CASE.items():
        for i, v in enumerate(values):
            _uniform(tmp_path / "data/val" / cls, f"{i}.png", v)
    _uniform(tmp_path / "data/train/a", "0.png", 25)  # the train split is not evaluated
    r = _invoke("eval", model, "--data", tmp_path / "data", "--format", "json")
    assert r.exit_code == 0, r.output
    _hand_checked(json.loads(r.stdout)["metrics"])
    r = _invoke("eval", model, "--data", tmp_path / "data")
    assert "top-1 71.4%" in r.stdout and "a -> b: 1" in r.stdout


def test_classification_idx_hand_computed(tmp_path):
    model = intensity_classifier(tmp_path / "cls.onnx", labels=("0", "1", "2"))
    values = [v for cls in CASE.values() for v in cls]
    targets = [k for k, cls in enumerate(CASE.values()) for _ in cls]
    write_idx(tmp_path / "mnist/t10k-images-idx3-ubyte", np.stack([np.full((20, 20), v, np.uint8) for v in values]))
    write_idx(tmp_path / "mnist/t10k-labels-idx1-ubyte", np.asarray(targets, np.uint8))
    write_idx(tmp_path / "mnist/train-images-idx3-ubyte", np.zeros((1, 20, 20), np.uint8))
    write_idx(tmp_path / "mnist/train-labels-idx1-ubyte", np.zeros(1, np.uint8))
    r = _invoke("eval", model, "--data", tmp_path / "mnist", "--format", "json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)["metrics"]
    m["per_class"] = {"abc"[int(k)]: v for k, v in m["per_class"].items()}
    m["confusions"] = [{**c, "true": "abc"[int(c["true"])], "predicted": "abc"[int(c["predicted"])]}
                       for c in m["confusions"]]
    _hand_checked(m)


def test_bad_images_are_reported_counted_and_exit_1(det_data, tmp_path):
    import shutil

    data = tmp_path / "d"
    shutil.copytree(det_data, data)
    victim = sorted((data / "val").iterdir())[0]
    victim.write_bytes(b"not an image")
    r = _invoke("eval", fake_detector(tmp_path / "det.onnx"), "--data", data, "--format", "json")
    assert r.exit_code == 1
    assert f"Error: {victim}" in r.stderr and "1 of 6 images failed" in r.stderr
    out = json.loads(r.stdout)
    assert out["failed"] == 1 and out["metrics"]["images"] == 5


def test_bad_coco_file_is_one_line(det_data, tmp_path):
    import shutil

    data = tmp_path / "d"
    shutil.copytree(det_data, data)
    ann = data / "annotations/instances_val.json"
    doc = json.loads(ann.read_text())
    doc["annotations"][1]["bbox"][2] = -3
    ann.write_text(json.dumps(doc))
    r = _invoke("eval", fake_detector(tmp_path / "det.onnx"), "--data", data)
    assert r.exit_code == 1 and r.stdout == ""
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith(f"Error: {ann}: annotation {doc['annotations'][1]['id']}: negative")


def test_missing_pycocotools_names_the_extra(det_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    r = _invoke("eval", fake_detector(tmp_path / "det.onnx"), "--data", det_data)
    assert r.exit_code == 1 and 'pip install "edgecnn[eval]"' in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_checkpoint_and_its_onnx_file_evaluate_alike(tmp_path):
    """A checkpoint runs in PyTorch behind the same Predictor as its exported file: same top-1."""
    import torch

    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train

    write_shapes(tmp_path / "cls", 40, 16, seed=0)
    torch.manual_seed(0)
    train(TrainConfig("simplecnn", str(tmp_path / "cls"), epochs=1, batch_size=16, input_size=16,
                      out=str(tmp_path / "run"), device="cpu"), echo=lambda m: None, warn=lambda m: None)
    ckpt = tmp_path / "run/best.pt"
    onnx_path = export(ExportOptions(model=str(ckpt), out=str(tmp_path / "m.onnx"), check=False)).path
    a = json.loads(_invoke("eval", ckpt, "--data", tmp_path / "cls", "--format", "json").stdout)
    b = json.loads(_invoke("eval", onnx_path, "--data", tmp_path / "cls", "--format", "json").stdout)
    assert a["backend"].startswith("PyTorch") and b["backend"] == "CPUExecutionProvider"
    assert a["metrics"]["per_class"] == b["metrics"]["per_class"] and a["images"] == b["images"] == 8


def test_eval_of_onnx_files_runs_without_torch(det_data, tmp_path):
    from tests.conftest import run_cli

    r = run_cli("eval", str(fake_detector(tmp_path / "det.onnx")), "--data", str(det_data), "--format", "json",
                block_torch=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["map50"] > 0
    for cls, values in CASE.items():
        for i, v in enumerate(values):
            _uniform(tmp_path / "data/val" / cls, f"{i}.png", v)
    r = run_cli("eval", str(intensity_classifier(tmp_path / "cls.onnx")), "--data", str(tmp_path / "data"),
                "--format", "json", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["top1"] == pytest.approx(5 / 7)
