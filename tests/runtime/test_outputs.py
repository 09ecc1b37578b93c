"""Outputs read for what they are: class vectors classify, YOLO heads detect, anything else is raw;
a task the outputs cannot carry is a one-line error. Torch-free (files from ``tests.runtime.heads``)."""

import numpy as np
import pytest
from PIL import Image

from edgecnn.contract import Contract, ContractError, Detection, Preprocess
from edgecnn.runtime import raw, yolo
from edgecnn.runtime.outputs import OutputError, check_scores, infer_task, is_class_vector
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import expand, iter_images
from tests.runtime import heads


@pytest.mark.parametrize("shapes, hw, expected", [
    ({"logits": [1, 1000]}, (224, 224), ("classify", None)),
    ({"logits": ["batch", 1000]}, (224, 224), ("classify", None)),
    ({"logits": ["batch", "classes"]}, (224, 224), ("classify", None)),  # a run tells C
    ({"prob": [1, 1000, 1, 1]}, (224, 224), ("classify", None)),
    ({"prob": [1, 1, 192, 448]}, (192, 448), ("raw", None)),  # a text-probability map
    ({"prob": [1, 1, "H", "W"]}, (192, 448), ("raw", None)),
    ({"prob": [1, 5, "H", 1]}, (192, 448), ("raw", None)),
    ({"score": [1, 1]}, (64, 64), ("raw", None)),  # one value: no classes to choose from
    ({"seq": [1, 40, 6625]}, (48, 320), ("raw", None)),  # a recogniser's (N, T, C); A >> 4 + C but not a grid
    ({"output0": [1, 84, 8400]}, (640, 640), ("detect", "yolov8")),
    ({"output0": [1, 84, 6300]}, (480, 640), ("detect", "yolov8")),
    ({"output0": [1, 84, 8500]}, (640, 640), ("detect", "yolov8")),  # P6: strides 8-64
    ({"output0": [1, 84, 8400]}, (320, 320), ("raw", None)),  # not this input's anchor count
    ({"output0": [1, 25200, 85]}, (640, 640), ("detect", "yolov5")),
    ({"output0": [1, 25200, 85], "aux": [1, 8400, 4]}, (640, 640), ("raw", None)),  # two heads: a guess
    # torchvision detection exported as such: boxes (K, 4), scores (K,), labels (K,): not 4 classes
    ({"boxes": ["K", 4], "scores": ["K"], "labels": ["K"]}, (320, 320), ("raw", None)),
])
def test_infer_task_from_output_shapes(shapes, hw, expected):
    assert infer_task(shapes, *hw) == expected


def test_ultralytics_segment_and_pose_heads_are_not_read_as_classes():
    assert infer_task({"output0": [1, 56, 8400]}, 640, 640, {"task": "detect"}) == ("detect", "yolov8")
    assert infer_task({"output0": [1, 56, 8400]}, 640, 640, {"task": "pose"}) == ("raw", None)  # 17 keypoints
    seg = {"output0": [1, 116, 8400], "output1": [1, 32, 160, 160]}  # 80 classes + 32 mask coefficients
    assert infer_task(seg, 640, 640) == ("raw", None)


def test_anchor_counts_follow_ultralytics_grids():
    assert yolo.anchor_counts("yolov8", 640, 640) == {8400, 8500}
    assert yolo.anchor_counts("yolov5", 640, 640) == {25200, 25500}
    assert yolo.anchor_counts("yolov8", 64, 96) == {8 * 12 + 4 * 6 + 2 * 3, 8 * 12 + 4 * 6 + 2 * 3 + 1 * 2}
    assert not is_class_vector([1, 3, 2, 1]) and is_class_vector([1, 3, 1, 1])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    Image.new("RGB", (128, 64), (255, 0, 0)).save(d / "a_wide.png")  # letterbox: scale 0.5, 16 px bands
    Image.new("RGB", (64, 64), (0, 0, 0)).save(d / "b_square.png")
    return d


def _run(engine, images, **kw):
    return {r.file.rel.name: r for r in Predictor(engine, **kw).predict(iter_images(expand([str(images)])),
                                                                         keep_images=True)}


def _expected(size):
    """The YOLO heads' detections by hand: anchor 1 suppressed by 0 (IoU 0.88), 3 under conf, 4 its best
    class only, 5 in the letterbox band of the wide image; network xyxy -> original pixels."""
    net = {0: (1, 0.9, [16, 24, 32, 40]), 2: (2, 0.6, [17, 24, 33, 40]), 4: (0, 0.5, [43, 34, 53, 46]),
           5: (0, 0.7, [28, 53, 36, 59])}
    s, top = (0.5, 16) if size == (128, 64) else (1.0, 0)
    out = []
    for cls, score, (x1, y1, x2, y2) in net.values():
        box = [x1 / s, (y1 - top) / s, x2 / s, min((y2 - top) / s, size[1])]
        if box[3] > max(box[1], 0):
            out.append({"class": cls, "label": heads.YOLO_LABELS[cls], "score": score, "box": box})
    return sorted(out, key=lambda d: -d["score"])


@pytest.mark.parametrize("layout", ["yolov8", "yolov5"])
@pytest.mark.parametrize("declared", [False, True])
def test_yolo_heads_decode_to_the_boxes_after_nms(tmp_path, images, layout, declared):
    engine = Engine(heads.yolo(tmp_path / "y.onnx", layout, contract=declared))
    assert (engine.task, engine.contract.detection.layout) == ("detect", layout)
    assert engine.from_graph is not declared
    if not declared:  # Ultralytics' preprocessing assumed, and said
        pre = engine.contract.preprocess
        assert (pre.resize, pre.pad_value, pre.mean, pre.std) == ("letterbox", 114, (0, 0, 0), (1, 1, 1))
        assert engine.warnings[0].startswith(f"y.onnx has no edgecnn contract; assuming a {layout}-layout "
                                             f"detector (output0 Nx{'7x84' if layout == 'yolov8' else '252x8'}) "
                                             "with Ultralytics preprocessing (letterbox")
    res = _run(engine, images)
    for name, size in (("a_wide.png", (128, 64)), ("b_square.png", (64, 64))):
        got = res[name].predictions
        want = _expected(size)
        if not declared:
            want = [{**d, "label": str(d["class"])} for d in want]
        assert [(d["class"], d["label"], d["score"]) for d in got] == [
            (d["class"], d["label"], pytest.approx(d["score"], abs=1e-6)) for d in want], name
        np.testing.assert_allclose([d["box"] for d in got], [d["box"] for d in want], atol=1e-3)


def test_yolo_thresholds_and_classes(tmp_path, images):
    engine = Engine(heads.yolo(tmp_path / "y.onnx", "yolov8", contract=True))
    res = _run(engine, images, iou=0.9, conf=0.55)  # anchor 1 (IoU 0.88) now survives; 4 (0.5) does not
    assert [(d["class"], d["score"]) for d in res["b_square.png"].predictions] == [
        (1, 0.9), (1, 0.8), (0, 0.7), (2, 0.6)]
    # --classes car: anchor 4's best allowed class is car (0.45), so it competes as a car
    res = _run(engine, images, classes=[1], conf=0.4)
    assert [(d["class"], d["score"]) for d in res["b_square.png"].predictions] == [(1, 0.9), (1, 0.45)]
    assert Predictor(engine).num_classes == 3


def test_yolo_layout_override_on_a_contract_less_file(tmp_path, images):
    """A head the shape does not tell (here: the wrong input size for its anchors) declared in Python."""
    path = heads.yolo(tmp_path / "y.onnx", "yolov8", dynamic_size=True)
    assert Engine(path, size=(64, 64)).task == "detect"
    assert Engine(path, size=(96, 96)).task == "raw"  # 84 anchors are not a 96x96 grid's
    engine = Engine(path, size=(96, 96), layout="yolov8")
    assert engine.task == "detect" and engine.contract.detection.layout == "yolov8"


def test_yolo_head_of_the_wrong_rank_is_one_line(tmp_path):
    path = heads.dense_map(tmp_path / "m.onnx", contract="detect")
    with pytest.raises(OutputError, match=r"^.*m\.onnx: the contract says a yolov8 detector, whose head is one "
                                          r"rank-3 output, but the outputs are map Nx1x64x64; declare"):
        Predictor(Engine(path, layout="yolov8"))
    with pytest.raises(OutputError, match=r"m\.onnx: an edgecnn-layout detector has outputs named boxes and scores, "
                                          r"but this file's are map Nx1x64x64; declare what it is: edgecnn contract"):
        Predictor(Engine(path, task="detect"))
    with pytest.raises(ContractError, match="unknown detection layout 'yolov9'"):
        Detection(layout="yolov9")


def test_dense_map_and_sequence_are_raw(tmp_path, images):
    engine = Engine(heads.dense_map(tmp_path / "m.onnx", contract="raw"))
    res = _run(engine, images)
    rec = res["a_wide.png"].predictions
    assert rec == [{"output": "map", "shape": [1, 1, 64, 64], "dtype": "float32", "min": 1.0, "max": 1.0,
                    "mean": 1.0, "std": 0.0, "argmax": [0, 0, 0, 0]}]  # red everywhere (stretch)
    assert res["b_square.png"].predictions[0]["max"] == 0.0
    np.testing.assert_array_equal(res["a_wide.png"].arrays["map"], np.ones((1, 1, 64, 64), np.float32))
    assert res["a_wide.png"].image is None  # raw keeps arrays, not images

    engine = Engine(heads.sequence(tmp_path / "s.onnx"))
    assert engine.task == "raw" and "assuming raw outputs (probs Nx10x37: not class vectors" in engine.warnings[0]
    (rec,) = _run(engine, images)["b_square.png"].predictions
    assert rec["shape"] == [1, 10, 37] and rec["argmax"] == [0, 0, 0]
    assert rec["mean"] == pytest.approx(1 / 37, abs=1e-6)


def test_classify_contract_on_a_map_is_one_line_error(tmp_path):
    path = heads.dense_map(tmp_path / "m.onnx", contract="classify")
    with pytest.raises(OutputError) as e:
        Predictor(Engine(path))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == (f"{path}: output 'map' is Nx1x64x64, not a class vector (N, C) or (N, C, 1, 1), so it cannot be "
                   f"read as classes; declare what it is: edgecnn contract {path} --task raw (statistics and --save "
                   "arrays), or --task detect --layout yolov8|yolov5")
    assert Predictor(Engine(path, task="raw")).task == "raw"  # the override reads it


def test_a_sequence_declared_as_classify_is_refused(tmp_path):
    path = heads.sequence(tmp_path / "s.onnx", contract="classify")
    with pytest.raises(OutputError, match="output 'probs' is Nx10x37, not a class vector"):
        Predictor(Engine(path))
    assert Predictor(Engine(path, task="raw")).task == "raw"
    # dims only a run tells: the first batch's array is checked (a rank-2 declared output that is a map)
    with pytest.raises(OutputError, match="output 'x' is 1x1x8x8, not a class vector"):
        check_scores("x", (1, 1, 8, 8), "f.onnx")
    with pytest.raises(OutputError, match="output 'x' is 2x1, not a class vector"):
        check_scores("x", (2, 1), "f.onnx")
    check_scores("x", (2, 5, 1, 1), "f.onnx")


@pytest.mark.parametrize("output, logits", [
    (np.array([[0.1, 0.7, 0.2]], np.float32), False),  # probabilities: kept
    (np.array([[0.1, 0.7, 0.2]], np.float32).reshape(1, 3, 1, 1), False),
    (np.array([[1.0, 3.0, 2.0]], np.float32), True),  # logits: softmaxed
])
def test_class_vectors_classify(output, logits):
    from edgecnn.runtime.classify import classify, looks_like_probabilities

    assert looks_like_probabilities(output.reshape(1, -1)) is not logits
    (top,) = classify(output, 3, logits=logits)
    assert [p["class"] for p in top] == [1, 2, 0]
    want = output.reshape(-1)[[1, 2, 0]]
    if logits:
        want = np.exp(want) / np.exp(output).sum()
    assert [p["score"] for p in top] == pytest.approx(want.tolist(), abs=1e-6)


def test_raw_describe_and_save(tmp_path):
    x = np.array([[1.0, np.nan], [3.0, -2.0]], np.float32)
    rec = raw.describe("y", x)
    assert rec == {"output": "y", "shape": [1, 2, 2], "dtype": "float32", "min": -2.0, "max": 3.0,
                   "mean": pytest.approx(2 / 3, abs=1e-6), "std": pytest.approx(float(np.std([1, 3, -2])), abs=1e-5),
                   "argmax": [0, 1, 0], "nonfinite": 1}
    assert raw.describe("s", np.array(["a"]))["min"] is None
    one = raw.save({"y": x[None]}, tmp_path / "sub" / "img.png")
    assert one == tmp_path / "sub" / "img.npy"
    np.testing.assert_array_equal(np.load(one), x[None])
    two = raw.save({"y": x[None], "z": np.arange(3)[None]}, tmp_path / "img.png")
    with np.load(two) as z:
        assert sorted(z.files) == ["y", "z"] and z["z"].tolist() == [[0, 1, 2]]
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_contract_task_and_layout_fields():
    pre = Preprocess(32, 32)
    c = Contract("raw", "m", pre)
    assert Contract.from_json(c.to_json()).task == "raw"
    d = Contract("detect", "m", pre, detection=Detection(layout="yolov5"))
    assert Contract.from_json(d.to_json()).detection.layout == "yolov5"
    assert Contract.from_dict({**d.to_dict(), "detection": {"nms": "host"}}).detection.layout == "edgecnn"
    with pytest.raises(ContractError, match="unknown task 'segment'; expected one of classify, detect, raw"):
        Contract("segment", "m", pre)


@pytest.mark.parametrize("kind", ["raw", "yolov5"])
def test_bench_image_times_the_tasks_postprocess(tmp_path, images, kind):
    """``bench --image``'s pipeline post-processes as the task says: statistics for raw, decoding + NMS
    for a YOLO head; never class scores."""
    from edgecnn.bench.e2e import Pipeline

    path = heads.dense_map(tmp_path / "m.onnx") if kind == "raw" else heads.yolo(tmp_path / "y.onnx", kind)
    engine = Engine(path)

    class Runner:
        run_numpy = staticmethod(engine.run)

    pipe = Pipeline(Runner(), engine, sorted(images.iterdir()), batch=2)
    for _ in range(3):
        pipe()
    assert all(len(v) == 3 for v in pipe.samples.values())
    a, b = pipe.predictions  # the last call's two images: a_wide then b_square
    if kind == "raw":
        assert [r["output"] for r in a] == ["map"] and "class" not in a[0]
    else:
        assert [(d["class"], d["score"]) for d in b] == [(1, 0.9), (0, 0.7), (2, 0.6), (0, 0.5)]


def test_ultralytics_names_metadata_become_labels():
    assert yolo.metadata_labels({"names": "{0: 'person', 1: 'bicycle', 2: 'car'}"}) == ["person", "bicycle", "car"]
    for bad in ("{1: 'a'}", "['a']", "__import__('os')", "{0: 'a', 2: 'b'}", "{"):
        assert yolo.metadata_labels({"names": bad}) is None, bad
    assert yolo.metadata_labels({}) is None
