"""``infer`` on an image where no box passes ``--conf``: stderr says so and names the best score and
class the model gave; ``json``/``jsonl`` records keep an empty ``predictions`` and add ``best``."""

import json

import pytest
from PIL import Image

from tests import imagegen, onnx_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {"host": onnx_models.detector(d / "det.onnx"), "graph": onnx_models.detector(d / "g.onnx", nms="graph")}


@pytest.fixture
def white(tmp_path):
    return imagegen.save(Image.new("RGB", (128, 64), "white"), tmp_path / "in" / "white.png")


def _run(cli, image, model, *args):
    r = cli("infer", str(image), "-m", str(model), "-f", "jsonl", *args)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout), r.stderr


@pytest.mark.parametrize("nms", ["host", "graph"])
@pytest.mark.parametrize("classes", [None, "dog"])
def test_no_detection_names_the_best_score_seen(cli, models, white, nms, classes):
    extra = ("--classes", classes) if classes else ()
    found, err = _run(cli, white, models[nms], "--conf", "0.05", *extra)
    top = found["predictions"][0]  # what a low threshold finds first is what the empty run must name
    assert "best" not in found and "no detection" not in err
    empty, err = _run(cli, white, models[nms], "--conf", "0.99", *extra)
    assert empty["predictions"] == [] and empty["error"] is None
    assert empty["best"] == {"class": top["class"], "label": top["label"], "score": top["score"]}
    assert top["score"] < 0.99
    assert f"{white}: no detection above conf 0.99 (best: {top['score']:.4f} '{top['label']}')" in err.splitlines()


def test_table_output_and_nothing_scored(cli, models, white):
    r = cli("infer", str(white), "-m", str(models["host"]), "--conf", "0.99")
    assert r.stdout.splitlines() == [f"{white} (128x64): 0 detections"]
    assert "no detection above conf 0.99 (best: " in r.stderr
    # a black image scores every box 0: still a best to name, 0
    black = imagegen.save(Image.new("RGB", (64, 64), "black"), white.parent / "black.png")
    rec, err = _run(cli, black, models["host"])
    assert rec["predictions"] == [] and rec["best"]["score"] == 0.0
    # only the background class allowed: no box left to name
    rec, err = _run(cli, white, models["graph"], "--classes", "0")
    assert rec["predictions"] == [] and rec["best"] is None
    assert f"{white}: no detection above conf 0.25 (no box scored at all)" in err.splitlines()
