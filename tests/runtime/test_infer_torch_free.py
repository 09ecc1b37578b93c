"""``edgecnn infer`` as a real subprocess with torch blocked, as on an edge device, on a
classification and a detection model and on a file from edgecnn's own exporter, in each output
format (the imports themselves: test_torch_free.py)."""

import csv
import io
import json

import pytest
from PIL import Image

from tests import imagegen, onnx_models
from tests.conftest import run_cli


def test_infer_classification_without_torch(tmp_path):
    # trained weights: a random-init model says "random weights" where the labels would be
    model = onnx_models.classifier(tmp_path / "colors.onnx", weights={"path": "c.pt", "sha256": "0" * 64})
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


# ---- a file from edgecnn's own exporter: scores are softmax probabilities, in every format ----------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """lenet5 (3 classes, random-init) through ``edgecnn.export`` in this process (torch is here), and
    three images for the torch-blocked runs."""
    from edgecnn.export.exporter import ExportOptions, export

    d = tmp_path_factory.mktemp("exported")
    export(ExportOptions(model="lenet5", num_classes=3, out=str(d / "lenet5.onnx")))
    imgs = d / "imgs"
    imagegen.save(Image.new("RGB", (40, 30), (200, 10, 10)), imgs / "a.png")
    imagegen.save(Image.new("L", (28, 28), 90), imgs / "b.png")
    imagegen.save(Image.effect_noise((64, 48), 60), imgs / "c.png")
    return d / "lenet5.onnx", imgs


def _assert_softmax(scores_by_image: dict[str, list[float]], complete: bool, rounding: float = 1e-6) -> None:
    """Probabilities: each in [0, 1]; an image's top-k sum to at most 1 (to 1 over all classes), give or
    take the printed ``rounding``. Raw logits of a random-init lenet5 are small numbers of both signs."""
    assert len(scores_by_image) == 3
    for image, scores in scores_by_image.items():
        assert all(0.0 <= s <= 1.0 for s in scores), (image, scores)
        assert sum(scores) <= 1 + rounding, (image, scores)
        if complete:
            assert sum(scores) == pytest.approx(1, abs=rounding * len(scores) + 1e-6), (image, scores)


@pytest.mark.parametrize("topk", [2, 3])
def test_exported_model_scores_are_probabilities_json(exported, topk):
    model, imgs = exported
    r = run_cli("infer", str(imgs), "--model", str(model), "--topk", str(topk), "--format", "json", block_torch=True)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert all(len(x["predictions"]) == topk for x in results)
    _assert_softmax({x["image"]: [p["score"] for p in x["predictions"]] for x in results}, complete=topk == 3)


def test_exported_model_scores_are_probabilities_csv(exported):
    model, imgs = exported
    r = run_cli("infer", str(imgs), "--model", str(model), "--topk", "3", "--format", "csv", block_torch=True)
    assert r.returncode == 0, r.stderr
    scores: dict[str, list[float]] = {}
    for row in csv.DictReader(io.StringIO(r.stdout)):
        assert row["error"] == ""
        scores.setdefault(row["image"], []).append(float(row["score"]))
    _assert_softmax(scores, complete=True)


def test_exported_model_scores_are_probabilities_table(exported):
    model, imgs = exported
    r = run_cli("infer", str(imgs), "--model", str(model), "--topk", "3", block_torch=True)
    assert r.returncode == 0, r.stderr
    scores: dict[str, list[float]] = {}
    image = None
    for line in r.stdout.splitlines():
        if not line.startswith(" "):
            image = line.split(" (")[0]
            scores[image] = []
        elif line.split()[0].isdigit():  # rank class label score
            scores[image].append(float(line.split()[-1]))
    assert all(len(s) == 3 for s in scores.values()), r.stdout
    _assert_softmax(scores, complete=True, rounding=1.5e-4)  # the table prints 4 decimals


def test_infer_raw_and_yolo_without_torch(tmp_path):
    from tests.runtime import heads

    imagegen.save(Image.new("RGB", (64, 64), (255, 0, 0)), tmp_path / "red.png")
    r = run_cli("infer", str(tmp_path / "red.png"), "--model", str(heads.dense_map(tmp_path / "m.onnx")),
                "--format", "jsonl", "--save", str(tmp_path / "out"), block_torch=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["task"] == "raw" and (tmp_path / "out" / "red.npy").is_file()
    r = run_cli("infer", str(tmp_path / "red.png"), "--model", str(heads.yolo(tmp_path / "y.onnx", "yolov8")),
                "--format", "jsonl", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert [p["class"] for p in json.loads(r.stdout)["predictions"]] == [1, 0, 2, 0]
