"""ssdlite320_mobilenetv3_large against real torchvision, through the fixture make_ssdlite_fixture.py
recorded: the state-dict layout, the raw outputs before NMS, and the final detections of torchvision's
postprocess_detections reproduced by our exported file + runtime.detect."""

import copy
import json
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from edgecnn import registry
from edgecnn.runtime.detect import postprocess
from edgecnn.runtime.image import preprocess_file
from edgecnn.runtime.session import Engine

from .make_ssdlite_fixture import fixture_image, fixture_state_dict

FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "ssdlite_torchvision.json").read_text())
NAME = "ssdlite320_mobilenetv3_large"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "fixture.png"
    Image.fromarray(fixture_image()).save(path)
    return path


@pytest.fixture(scope="module")
def model():
    m = registry.build(NAME, num_classes=FIXTURE["num_classes"]).eval()
    layout = [(k, list(v.shape)) for k, v in m.state_dict().items()]
    m.load_state_dict(fixture_state_dict(layout), strict=True)
    return m


def test_layout_is_torchvisions_coco_checkpoint():
    ours = registry.build(NAME)  # 91 classes, as torchvision's COCO weights
    assert [(k, list(v.shape)) for k, v in ours.state_dict().items()] == [tuple(x) for x in FIXTURE["layout91"]]
    assert sum(p.numel() for p in ours.parameters()) == FIXTURE["params91"] == registry.get_card(NAME).params


# The fixture is torchvision's float64 run (fp32_dev: its own FP32 run is 1e-6 of the scale away, so the
# FP32 tolerances below hold on any host with ~50x to spare); float64 compares the function itself.
TOL = {torch.float64: {"boxes": (1e-6, 1e-4), "scores": (1e-6, 1e-8), "sum": 1e-9, "class_sums": 1e-7},
       torch.float32: {"boxes": (1e-4, 1e-3), "scores": (1e-4, 1e-6), "sum": 1e-5, "class_sums": 1e-4}}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "fp32"])
def test_raw_outputs_match_torchvision_before_nms(model, image, dtype):
    x, _ = preprocess_file(image, model.preprocess)  # stretch 320x320 (identity here), mean/std 0.5
    with torch.no_grad():
        boxes, scores = (t.double() for t in copy.deepcopy(model).to(dtype)(torch.from_numpy(x)[None].to(dtype)))
    tol = TOL[dtype]
    assert max(FIXTURE["fp32_dev"].values()) < 1e-5  # well-conditioned: the FP32 check is about the model
    idx = FIXTURE["sample"]
    assert len(model.anchors) == FIXTURE["num_anchors"]
    np.testing.assert_allclose(model.anchors[idx].numpy().ravel(), FIXTURE["anchors_sample"], rtol=1e-5, atol=1e-4)
    assert float(model.anchors.sum()) == pytest.approx(FIXTURE["anchors_sum"], rel=1e-6)
    np.testing.assert_allclose(boxes[0, idx].numpy().ravel(), FIXTURE["boxes_sample"], *tol["boxes"])
    np.testing.assert_allclose(scores[0, idx].numpy().ravel(), FIXTURE["scores_sample"], *tol["scores"])
    assert float(boxes.sum()) == pytest.approx(FIXTURE["boxes_sum"], rel=tol["sum"])
    np.testing.assert_allclose(scores[0].sum(0).numpy(), FIXTURE["scores_sum_per_class"], rtol=tol["class_sums"])


@pytest.mark.parametrize("nms", ["host", "graph"])
def test_exported_file_gives_torchvisions_final_detections(model, image, tmp_path, nms):
    from edgecnn.export.exporter import ExportOptions, export

    weights = tmp_path / "tv_ssdlite.pth"
    torch.save(model.state_dict(), weights)  # a torchvision-format state dict (the fixture's weights)
    res = export(ExportOptions(model=NAME, weights=str(weights), num_classes=FIXTURE["num_classes"],
                               out=str(tmp_path / "ssdlite.onnx"), check=False, nms=nms, conf=0.001))
    d = res.contract.detection  # torchvision's thresholds, carried by the contract (its score > 0.001 by --conf)
    assert (d.conf, d.iou, d.max_det, d.candidates_per_class) == (0.001, 0.55, 300, 300)
    assert res.contract.preprocess.resize == "stretch" and res.contract.task == "detect"
    engine = Engine(res.path)
    x, geom = preprocess_file(image, engine.contract.preprocess)
    dets = postprocess(engine.run(x[None]), [geom], engine.contract.detection, engine.input_size)[0]
    want = FIXTURE["detections"]
    assert len(dets) == len(want["scores"]) == 300
    # the fixture's scores are float64 and some differ by 2e-6: FP32 may order such neighbours either way,
    # so each detection is matched to one within tolerance (same class, score, box), not by position
    order = _match(dets, np.array(want["labels"]), np.array(want["scores"]), np.array(want["boxes"]).reshape(-1, 4))
    np.testing.assert_array_equal(dets.classes[order], want["labels"])
    np.testing.assert_allclose(dets.scores[order], want["scores"], rtol=1e-4)
    np.testing.assert_allclose(dets.boxes[order].ravel(), want["boxes"], rtol=1e-4, atol=1e-2)
    assert np.abs(order - np.arange(len(order))).max() <= 2  # swaps between neighbours only


def _match(dets, labels, scores, boxes):
    """For each wanted detection, the index of an unused one of ``dets`` with its class, its score within
    1e-4 relative and its box within 1e-2; the positional index where none is (the asserts then fail)."""
    used, order = set(), []
    for i in range(len(labels)):
        ok = (dets.classes == labels[i]) & (np.abs(dets.scores - scores[i]) <= 1e-4 * scores[i]) \
            & (np.abs(dets.boxes - boxes[i]).max(1) <= 1e-2 + 1e-4 * np.abs(boxes[i]).max())
        j = next((int(j) for j in np.flatnonzero(ok) if int(j) not in used), i)
        used.add(j)
        order.append(j)
    return np.array(order)


def test_torchvision_coco_weights_get_cocos_labels(tmp_path):
    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.models.ssdlite import torchvision_coco_labels

    labels = torchvision_coco_labels()
    assert len(labels) == 91 and labels[:3] == ["__background__", "person", "bicycle"] and labels[12] == "N/A"
    weights = tmp_path / "coco.pth"
    torch.save(registry.build(NAME).state_dict(), weights)  # 91 classes in torchvision's layout
    res = export(ExportOptions(NAME, weights=str(weights), out=str(tmp_path / "c.onnx"), check=False))
    assert res.contract.labels == labels
