"""Classification (softmax, top-k) and detection post-processing (thresholds, class-aware NMS,
box formats, graph NMS, mapping back through the letterbox), and the Predictor over files."""

import numpy as np
import pytest
from PIL import Image

from edgecnn.contract import Detection
from edgecnn.errors import UsageError
from edgecnn.runtime import detect
from edgecnn.runtime.classify import classify, looks_like_probabilities, softmax, topk
from edgecnn.runtime.image import Geometry
from edgecnn.runtime.predict import Predictor, classifier_output, resolve_classes
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import expand, iter_images
from tests import imagegen, onnx_models

# ---- classification ---------------------------------------------------------------------------------


def test_softmax_is_stable_and_normalised():
    p = softmax(np.array([[1e4, 1e4 - 1, -1e4], [0, 0, 0]], np.float32))
    assert np.isfinite(p).all() and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))], rtol=1e-6)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)


def test_topk_orders_by_score_then_index():
    idx, val = topk(np.array([[0.1, 0.3, 0.3, 0.2]]), 3)
    assert idx.tolist() == [[1, 2, 3]] and val.tolist() == [[0.3, 0.3, 0.2]]
    idx, _ = topk(np.array([[0.1, 0.3, 0.3, 0.2]]), 10, allowed=[0, 3])
    assert idx.tolist() == [[3, 0]]
    with pytest.raises(ValueError, match=r"scores must be \(N, C\), got shape \(4,\)"):
        topk(np.zeros(4), 1)


def test_classify_records():
    out = classify(np.array([[0.0, 2.0, 1.0]]), k=2, labels=["a", "b"])
    assert [(r["rank"], r["class"], r["label"]) for r in out[0]] == [(1, 1, "b"), (2, 2, "2")]  # no label: index
    assert out[0][0]["score"] == pytest.approx(float(softmax(np.array([0.0, 2.0, 1.0]))[1]))
    probs = classify(np.array([[0.2, 0.8]]), k=1, logits=False)
    assert probs[0][0]["score"] == pytest.approx(0.8)
    assert looks_like_probabilities(np.array([[0.2, 0.8]])) and not looks_like_probabilities(np.array([[2.0, -1.0]]))


# ---- detection --------------------------------------------------------------------------------------

IDENTITY = Geometry((64, 64), (1.0, 1.0), (0.0, 0.0))


def _outputs(n=1):
    return {"boxes": np.repeat(onnx_models.DET_BOXES[None], n, 0),
            "scores": np.repeat(onnx_models.DET_SCORES[None], n, 0)}


def test_host_nms_thresholds_classes_and_background():
    spec = Detection(background_class=True)
    (d,) = detect.postprocess(_outputs(), [IDENTITY], spec, (64, 64))
    # box 1 (cat 0.8) is suppressed by box 0 (cat 0.9, IoU 0.875); box 2 is a dog; box 3's cat is 0.1 < conf
    assert d.classes.tolist() == [1, 2] and d.scores.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_array_equal(d.boxes, onnx_models.DET_BOXES[[0, 2]])
    (d,) = detect.postprocess(_outputs(), [IDENTITY], spec, (64, 64), iou=0.9)
    assert d.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    (d,) = detect.postprocess(_outputs(), [IDENTITY], spec, (64, 64), conf=0.05, max_det=2)
    assert len(d) == 2
    (d,) = detect.postprocess(_outputs(), [IDENTITY], spec, (64, 64), conf=0.05, classes=[1])
    assert d.classes.tolist() == [1, 1]  # box 0 and box 3, whose cat score 0.1 now counts
    # without background_class, column 0 is a class like any other: box 3's 0.9 counts
    (d,) = detect.postprocess(_outputs(), [IDENTITY], Detection(), (64, 64))
    assert 0 in d.classes.tolist()


def test_records_have_stable_keys():
    (d,) = detect.postprocess(_outputs(), [IDENTITY], Detection(background_class=True), (64, 64))
    rec = d.to_records(onnx_models.DET_LABELS)
    assert rec[0] == {"class": 1, "label": "cat", "score": 0.9, "box": [8.0, 24.0, 40.0, 40.0]}


@pytest.mark.parametrize("fmt", ["cxcywh", "xywh"])
def test_box_formats_and_normalized_boxes(fmt):
    b = onnx_models.DET_BOXES
    conv = {"cxcywh": np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1),
            "xywh": np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)}[fmt]
    outs = {"boxes": (conv / 64)[None], "scores": onnx_models.DET_SCORES[None]}
    (d,) = detect.postprocess(outs, [IDENTITY], Detection(box_format=fmt, normalized=True, background_class=True),
                              (64, 64))
    np.testing.assert_allclose(d.boxes, b[[0, 2]], atol=1e-4)


def test_boxes_map_back_through_the_letterbox_and_padding_boxes_vanish():
    geom = Geometry((128, 64), (0.5, 0.5), (0.0, 16.0))  # 128x64 letterboxed into 64x64
    outs = {"boxes": np.array([[[8, 24, 40, 40], [0, 0, 64, 10]]], np.float32),
            "scores": np.array([[[0.9], [0.8]]], np.float32)}
    (d,) = detect.postprocess(outs, [geom], Detection(), (64, 64))
    np.testing.assert_array_equal(d.boxes, [[16, 16, 80, 48]])  # the second lay in the top padding only


def test_wild_boxes_are_dropped_or_fixed_not_fatal():
    outs = {"boxes": np.array([[[np.nan, 0, 10, 10], [10, 10, 0, 0]]], np.float32),
            "scores": np.array([[[0.9], [0.8]]], np.float32)}
    (d,) = detect.postprocess(outs, [IDENTITY], Detection(), (64, 64))
    np.testing.assert_array_equal(d.boxes, [[0, 0, 10, 10]])  # NaN row dropped, x2 < x1 swapped


def test_graph_nms_output():
    rows = np.zeros((2, 4, 6), np.float32)
    rows[0, 0] = [1, 2, 11, 12, 0.9, 3]
    rows[0, 1] = [5, 5, 9, 9, 0.2, 1]
    rows[1, 0] = [0, 0, 64, 64, 0.5, 2]
    spec = Detection(nms="graph")
    d0, d1 = detect.postprocess({"detections": rows}, [IDENTITY, IDENTITY], spec, (64, 64))
    assert d0.classes.tolist() == [3] and d1.classes.tolist() == [2]  # 0.2 < conf, zero rows are padding
    (d,) = detect.postprocess({"detections": rows[:1]}, [IDENTITY], spec, (64, 64), conf=0.1, classes=[1])
    assert d.classes.tolist() == [1]


def test_missing_outputs_are_contract_errors():
    from edgecnn.contract import ContractError

    with pytest.raises(ContractError, match=r"the detector has no output 'scores' \(outputs: boxes\)"):
        detect.postprocess({"boxes": np.zeros((1, 2, 4))}, [IDENTITY], Detection(), (64, 64))
    with pytest.raises(ContractError, match="box_format 'deltas' needs an 'anchors' output"):
        detect.postprocess(_outputs(), [IDENTITY], Detection(box_format="deltas"), (64, 64))


# ---- Predictor over files ---------------------------------------------------------------------------


def test_predictor_streams_in_order_and_skips_bad_files(tmp_path):
    folder = tmp_path / "imgs"
    imagegen.save(Image.new("RGB", (40, 30), (255, 0, 0)), folder / "a.png")
    imagegen.text_as_jpeg(folder / "b.jpg")
    imagegen.save(Image.new("RGB", (30, 40), (0, 0, 255)), folder / "c.png")
    imagegen.save(Image.new("RGB", (30, 40), (0, 255, 0)), folder / "d.png")
    pred = Predictor(Engine(onnx_models.classifier(tmp_path / "c.onnx")), topk=1)
    results = list(pred.predict(iter_images(expand([folder])), batch=2))
    assert [r.file.rel.name for r in results] == ["a.png", "b.jpg", "c.png", "d.png"]
    assert [r.predictions[0]["label"] if r.predictions else r.error.split(": ")[-1] for r in results] == [
        "red", "not an image, or a format Pillow cannot read", "blue", "green"]
    assert results[0].size == (40, 30) and results[0].image is None
    assert (pred.stats.ok, pred.stats.failed) == (3, 1)


def test_classifier_output_reads_kind_never_meaning():
    names = ["logits", "aux"]
    assert classifier_output([{"name": "logits", "kind": "logits", "meaning": "apply softmax for probabilities"}],
                             names) == ("logits", True)
    assert classifier_output([{"name": "aux", "kind": "boxes"}, {"name": "logits", "kind": "probabilities"}],
                             names) == ("logits", False)
    # no kind (an older or third-party contract), or no entry for a graph output: judged on the values
    assert classifier_output([{"name": "logits", "meaning": "class probabilities"}], names) == ("logits", None)
    assert classifier_output([{"name": "gone", "kind": "logits"}], names) == ("logits", None)
    assert classifier_output(None, names) == ("logits", None)


RED_P = float(softmax(np.array([4 * (1 - 0.485) / 0.229, -4 * 0.456 / 0.224, -4 * 0.406 / 0.225, 0]))[0])


@pytest.mark.parametrize("probabilities, kind, meaning", [
    (False, "auto", None),  # kind logits: softmax
    (True, "auto", None),  # kind probabilities: as they are
    (False, None, "class logits (apply softmax for probabilities)"),  # no kind, misleading prose: the values say
    (True, None, "class scores"),
    (False, None, None),
])
@pytest.mark.parametrize("contract", [True, False])
def test_scores_are_softmax_probabilities_once(tmp_path, probabilities, kind, meaning, contract):
    imagegen.save(Image.new("RGB", (40, 30), (255, 0, 0)), tmp_path / "red.png")
    model = onnx_models.classifier(tmp_path / "c.onnx", probabilities=probabilities, kind=kind, meaning=meaning,
                                   contract=contract)
    (res,) = Predictor(Engine(model), topk=4).predict(iter_images(expand([tmp_path / "red.png"])))
    assert res.predictions[0]["class"] == 0
    assert res.predictions[0]["score"] == pytest.approx(RED_P, abs=1e-6)  # not the logit 9, nor softmax twice
    assert sum(p["score"] for p in res.predictions) == pytest.approx(1, abs=1e-5)


def test_classes_are_checked_before_anything_runs(tmp_path):
    static = Engine(onnx_models.classifier(tmp_path / "s.onnx"))
    dynamic = Engine(onnx_models.classifier(tmp_path / "d.onnx", dynamic_classes=True))  # labels say 4
    bare = Engine(onnx_models.classifier(tmp_path / "b.onnx", dynamic_classes=True, contract=False))
    det = Engine(onnx_models.detector(tmp_path / "det.onnx"))
    assert [Predictor(e).num_classes for e in (static, dynamic, bare, det)] == [4, 4, None, 3]
    for engine, n in ((static, 4), (dynamic, 4), (det, 3)):
        with pytest.raises(UsageError, match=rf"--classes: class 9 does not exist; the model has {n} classes "
                                             rf"\(0-{n - 1}\)"):
            Predictor(engine, classes=[1, 9])
    # a dynamic class dim and no labels: the first batch tells, before any result (a failed file's too)
    files = [imagegen.text_as_jpeg(tmp_path / "0.jpg"), imagegen.save(Image.new("RGB", (8, 8)), tmp_path / "1.png")]
    results = Predictor(bare, classes=[9]).predict(iter_images(expand(files)))
    with pytest.raises(UsageError, match="the model has 4 classes"):
        next(results)
    ok = list(Predictor(bare, classes=[3], topk=1).predict(iter_images(expand(files))))
    assert [(r.file.path.name, r.error is None, [p["class"] for p in r.predictions]) for r in ok] == [
        ("0.jpg", False, []), ("1.png", True, [3])]


def test_predictor_detects_on_a_white_image(tmp_path):
    imagegen.save(Image.new("RGB", (128, 64), "white"), tmp_path / "w.png")
    pred = Predictor(Engine(onnx_models.detector(tmp_path / "d.onnx", box_format="deltas")))
    (res,) = pred.predict(iter_images(expand([tmp_path / "w.png"])), keep_images=True)
    assert [(p["label"], p["box"]) for p in res.predictions] == [("cat", [16.0, 16.0, 80.0, 48.0]),
                                                                 ("dog", [16.0, 16.0, 72.0, 48.0])]
    assert res.image.size == (128, 64)


def test_resolve_classes():
    assert resolve_classes(["2,cat", "0"], ["background", "cat", "dog"]) == [0, 1, 2]
    with pytest.raises(UsageError, match="--classes: 'cow' is neither a class index nor a label of this model; "
                                         "labels: background, cat, dog"):
        resolve_classes(["cow"], ["background", "cat", "dog"])
