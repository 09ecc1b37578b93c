"""A YOLOv8n ONNX file exported by Ultralytics itself, decoded by edgecnn, gives the boxes, scores and
classes Ultralytics' own predictor gave on that file (recorded by make_yolov8_fixture.py; no torch,
no Ultralytics here). The file carries no edgecnn contract: the YOLOv8 layout and Ultralytics'
preprocessing are read from its output shape."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import expand, iter_images

from .make_yolov8_fixture import JSON, ONNX, fixture_images

FIXTURE = json.loads(pathlib.Path(JSON).read_text())


@pytest.fixture(scope="module", params=["ort", "openvino"])
def results(request, tmp_path_factory):
    """Per runtime (``--runtime openvino`` reads the same file with the same derived contract: the same
    detections within the same bounds), the predictions on each fixture image."""
    if request.param == "openvino":
        pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")
    d = tmp_path_factory.mktemp("yolo")
    for name, img in fixture_images().items():
        Image.fromarray(img).save(d / f"{name}.png")
    engine = Engine(ONNX, provider="cpu", runtime=request.param)
    assert (engine.task, engine.contract.detection.layout, engine.from_graph) == ("detect", "yolov8", True)
    pre, det = engine.contract.preprocess, engine.contract.detection
    assert (pre.resize, pre.pad_value, pre.mean, pre.std, det.iou, det.max_det) == (
        "letterbox", 114, (0, 0, 0), (1, 1, 1), FIXTURE["iou"], 300)
    predictor = Predictor(engine, conf=FIXTURE["conf"])
    return {r.file.path.stem: r for r in predictor.predict(iter_images(expand([str(d)])))}


@pytest.mark.parametrize("name", list(FIXTURE["images"]))
def test_same_detections_as_ultralytics(results, name):
    ref = FIXTURE["images"][name]
    res = results[name]
    assert list(res.size) == ref["size"]
    got = res.predictions
    assert len(ref["scores"]) >= 10  # enough boxes that a wrong axis, offset or NMS rule shows
    assert len(got) == len(ref["scores"])
    # match each reference detection to one of ours: same class, boxes within a pixel, score within 1e-4
    # (onnxruntime versions differ in the last bits, so near-equal scores may swap places)
    free = list(range(len(got)))
    for box, score, cls in zip(ref["boxes"], ref["scores"], ref["classes"], strict=True):
        hit = [j for j in free if got[j]["class"] == cls and abs(got[j]["score"] - score) <= 1e-4
               and np.abs(np.subtract(got[j]["box"], box)).max() <= 1.0]
        assert hit, f"{name}: Ultralytics' {cls} {score} {box} has no match in edgecnn's detections"
        free.remove(hit[0])
    scores = [p["score"] for p in got]
    assert scores == sorted(scores, reverse=True)
    # the boxes are the tight ones (well inside a pixel), not merely near
    err = max(np.abs(np.subtract(sorted(p["box"] for p in got), sorted(ref["boxes"]))).max(), 0)
    assert err < 0.01


def test_cli_max_det_keeps_ultralytics_best_boxes(tmp_path, cli):
    """The README's `edgecnn infer scene.jpg --model yolov8n.onnx --max-det 5` on the same file (a lossless
    scene.png here, so the reference applies): the five highest-scoring of Ultralytics' detections, and the
    warning that says what was assumed."""
    import shutil

    shutil.copy(ONNX, tmp_path / "yolov8n.onnx")
    Image.fromarray(fixture_images()["square"]).save(tmp_path / "scene.png")
    r = cli("infer", str(tmp_path / "scene.png"), "--model", str(tmp_path / "yolov8n.onnx"), "--max-det", "5",
            "--format", "jsonl")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith("Warning: yolov8n.onnx has no edgecnn contract; assuming a yolov8-layout detector "
                               "(output0 1x84x189) with Ultralytics preprocessing (letterbox to 96x96, ")
    got = json.loads(r.stdout)["predictions"]
    ref = sorted(FIXTURE["images"]["square"]["scores"], reverse=True)
    assert len(ref) > 5 and len(got) == 5
    assert [p["score"] for p in got] == pytest.approx(ref[:5], abs=1e-4)
