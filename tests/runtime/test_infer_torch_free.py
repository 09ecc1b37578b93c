"""``edgecnn infer`` as a real subprocess with torch blocked, as on an edge device, on a
classification and a detection model (the imports themselves: test_torch_free.py)."""

import json

from PIL import Image

from tests import imagegen, onnx_models
from tests.conftest import run_cli


def test_infer_classification_without_torch(tmp_path):
    model = onnx_models.classifier(tmp_path / "colors.onnx")
    imagegen.save(Image.new("RGB", (40, 30), (255, 0, 0)), tmp_path / "imgs" / "red.png")
    imagegen.save(Image.new("RGBA", (30, 40), (0, 0, 255, 255)), tmp_path / "imgs" / "blue.webp")
    imagegen.empty_file(tmp_path / "imgs" / "empty.jpg")
    r = run_cli("infer", str(tmp_path / "imgs"), "--model", str(model), "--topk", "1", "--format", "json",
                "--save", str(tmp_path / "out"), block_torch=True)
    assert r.returncode == 1, r.stderr  # the empty file
    assert f"Error: {tmp_path / 'imgs' / 'empty.jpg'}: empty file\n" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert [x["predictions"][0]["label"] if x["predictions"] else None for x in doc["results"]] == [
        "blue", None, "red"]
    assert (tmp_path / "out" / "red.png").is_file() and (tmp_path / "out" / "blue.webp").is_file()


def test_infer_detection_without_torch(tmp_path):
    model = onnx_models.detector(tmp_path / "det.onnx")
    imagegen.save(Image.new("RGB", (128, 64), "white"), tmp_path / "white.png")
    r = run_cli("infer", str(tmp_path / "white.png"), "--model", str(model), "--format", "jsonl", block_torch=True)
    assert r.returncode == 0, r.stderr
    preds = json.loads(r.stdout)["predictions"]
    assert [(p["label"], p["box"]) for p in preds] == [("cat", [16.0, 16.0, 80.0, 48.0]),
                                                       ("dog", [16.0, 16.0, 72.0, 48.0])]
