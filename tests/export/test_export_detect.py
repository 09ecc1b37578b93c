"""Detector export: contract, host vs graph NMS, the detection parity gate, usage errors, infer --save."""

import platform
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from edgecnn import registry
from edgecnn.contract import Detection
from edgecnn.errors import UsageError
from edgecnn.export import exporter, graph_nms
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.export.parity import ParityError
from edgecnn.int8_kernel import process_flags, saturates
from edgecnn.runtime.detect import postprocess
from edgecnn.runtime.image import Geometry
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import ImageFile

SIZE, CLASSES = 64, 4


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Weights as after some training: BN statistics gathered on data (at init, in eval mode, the
    features vanish and every anchor scores the same) and class predictors away from N(0, 0.03), so
    scores differ (no NMS ties) and many pass the default 0.25 threshold. Three batches through a
    random-init net leave dead channels with running variances down to 5e-10: each such BN multiplies
    rounding errors by 1/sqrt(eps) ~ 31, so the FP32 scores were ~7e-5 of their scale from a float64 run
    (PyTorch and onnxruntime alike) and the gate's 1e-4 passed or failed by summation order (torch threads,
    batch size). A floor of 1e-2 on the variances (as channels with some signal have) brings both to
    ~4e-7, and the gate's tolerance stays as it is."""
    torch.manual_seed(0)
    model = registry.build("ssdlite_mobilenetv2", num_classes=CLASSES, input_size=SIZE)
    for block in model.head.classification_head.module_list:
        torch.nn.init.normal_(block[1].weight, std=0.1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches below
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, SIZE, SIZE) * 4 - 2)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.clamp_(min=1e-2)
    path = tmp_path_factory.mktemp("w") / "ssd.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def files(weights, tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    host = export(ExportOptions("ssdlite_mobilenetv2", weights=str(weights), num_classes=CLASSES, input_size=SIZE,
                                out=str(d / "host.onnx"), check=False))
    graph = export(ExportOptions("ssdlite_mobilenetv2", weights=str(weights), num_classes=CLASSES, input_size=SIZE,
                                 out=str(d / "graph.onnx"), nms="graph"))
    return host, graph


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(64, 64), (120, 80), (50, 90)]):
        p = d / f"im{i}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths


def _predict(path, images):
    return [r.predictions for r in Predictor(Engine(path)).predict([ImageFile(p, p.name) for p in images])]


def test_contracts(files):
    host, graph = files
    for res in files:
        c = res.contract
        assert c.task == "detect" and c.preprocess.resize == "letterbox" and c.detection.background_class
    assert [o["name"] for o in host.contract.outputs] == ["boxes", "scores"] and host.contract.detection.nms == "host"
    assert [o["name"] for o in graph.contract.outputs] == ["detections"] and graph.contract.detection.nms == "graph"
    sess = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": np.zeros((2, 3, SIZE, SIZE), np.float32)})[0]
    assert out.shape == (2, graph.contract.detection.max_det, 6)
    assert {n.op_type for n in onnx.load(graph.path).graph.node} >= {"NonMaxSuppression"}
    assert all(n.domain in ("", "ai.onnx") for n in onnx.load(graph.path).graph.node)  # standard ops only


def test_host_and_graph_nms_give_the_same_final_detections(files, images):
    host, graph = _predict(files[0].path, images), _predict(files[1].path, images)
    assert sum(len(p) for p in host) > 10  # something to compare
    for h, g in zip(host, graph, strict=True):
        assert len(h) == len(g)
        assert [d["class"] for d in h] == [d["class"] for d in g]
        np.testing.assert_allclose([d["score"] for d in h], [d["score"] for d in g], atol=2e-6)
        np.testing.assert_allclose([d["box"] for d in h], [d["box"] for d in g], atol=0.02)


def test_gate_compared_real_detections_before_and_after_nms(files):
    parity = files[1].contract.parity
    assert parity["nms"] == "host+graph" and len(parity["batches"]) == 6  # batches 1, 2, 5, before and after NMS
    for row in parity["batches"]:
        assert row["f1"] == 1.0 and row["detections"] > 0 and row["ties"] < row["detections"] / 4
    # well inside the 1e-4 limit (4e-7 measured at 1 and 2 torch threads): no pass by summation order
    assert all(row["scores_rel"] < 1e-5 for row in parity["batches"][:3])


def test_gate_fails_scores_off_by_three_times_its_tolerance(files, weights):
    from edgecnn.export import parity_detect

    proto = onnx.load(files[0].path)
    out = next(o for o in proto.graph.output if o.name == "scores")
    for node in proto.graph.node:  # the scores, scaled by 1 + 3e-4 on their way out
        node.output[:] = ["scores_exact" if o == "scores" else o for o in node.output]
    proto.graph.node.append(helper.make_node("Mul", ["scores_exact", "k"], ["scores"]))
    proto.graph.initializer.append(helper.make_tensor("k", TensorProto.FLOAT, [], [1 + 3e-4]))
    assert out.name == "scores"
    model = registry.build("ssdlite_mobilenetv2", num_classes=CLASSES, input_size=SIZE).eval()
    model.load_state_dict(torch.load(weights))
    spec = files[0].contract.detection
    assert parity_detect.check(model, onnx.load(files[0].path).SerializeToString(), 3, [(2, SIZE, SIZE)], "fp32",
                               spec).passed
    report = parity_detect.check(model, proto.SerializeToString(), 3, [(2, SIZE, SIZE)], "fp32", spec)
    assert not report.passed and "scores max-abs is 0.0003 of the output scale (limit 0.0001)" in report.failure


def test_a_graph_nms_that_disagrees_fails_the_gate_and_writes_nothing(weights, tmp_path, monkeypatch):
    real = graph_nms.append_nms
    monkeypatch.setattr(exporter.graph_nms, "append_nms", lambda proto, spec: real(proto, replace(spec, iou=0.95)))
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match="final detections agree"):
        export(ExportOptions("ssdlite_mobilenetv2", weights=str(weights), num_classes=CLASSES, input_size=SIZE,
                             out=str(out), nms="graph"))
    assert not out.exists()


def _identity_detector(a: int, c: int) -> onnx.ModelProto:
    nodes = [helper.make_node("Identity", ["b"], ["boxes"]), helper.make_node("Identity", ["s"], ["scores"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", a, 4]),
                     helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", a, c])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", a, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", a, c])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run_graph(spec, boxes, scores):
    proto = graph_nms.append_nms(_identity_detector(boxes.shape[1], scores.shape[2]), spec)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = {"detections": sess.run(None, {"b": boxes, "s": scores})[0]}
    geoms = [Geometry((100, 100), (1.0, 1.0), (0.0, 0.0))] * len(boxes)
    return postprocess(out, geoms, spec, (100, 100)), postprocess({"boxes": boxes, "scores": scores}, geoms,
                                                                   replace(spec, nms="host"), (100, 100))


def test_graph_nms_by_hand():
    # class 1: boxes 0 and 1 overlap (IoU 100/110) -> box 1 (0.5) goes, box 2 (0.7) is apart and stays;
    # class 2: box 1 (0.35) stays, classes do not suppress each other; box 3's 0.25 is below conf;
    # column 0 is background: box 3's 0.7 there is never reported
    boxes = np.array([[[0, 0, 10, 10], [0, 0, 10, 11], [50, 50, 60, 60], [70, 70, 80, 80]]], np.float32)
    scores = np.array([[[0.1, 0.9, 0.0], [0.15, 0.5, 0.35], [0.3, 0.7, 0.0], [0.7, 0.05, 0.25]]], np.float32)
    spec = Detection(nms="graph", conf=0.3, iou=0.5, max_det=10, background_class=True)
    graph, host = _run_graph(spec, boxes, scores)
    for d in (graph[0], host[0]):
        assert d.classes.tolist() == [1, 1, 2]
        np.testing.assert_allclose(d.scores, [0.9, 0.7, 0.35], rtol=1e-6)
        np.testing.assert_allclose(d.boxes, boxes[0, [0, 2, 1]])
    one = replace(spec, max_det=1)  # the graph's limit is the contract's
    assert _run_graph(one, boxes, scores)[0][0].classes.tolist() == [1]


def test_graph_nms_equals_host_nms_with_candidates_and_limits():
    rng = np.random.default_rng(3)
    n, a, c = 3, 200, 5
    xy = rng.random((n, a, 2)) * 80
    boxes = np.concatenate([xy, xy + 5 + rng.random((n, a, 2)) * 30], -1).astype(np.float32)
    scores = rng.dirichlet(np.ones(c) * 0.3, size=(n, a)).astype(np.float32)
    for spec in (Detection(nms="graph", conf=0.05, iou=0.45, max_det=25, background_class=True),
                 Detection(nms="graph", conf=0.01, iou=0.6, max_det=300, background_class=True, candidates_per_class=7),
                 Detection(nms="graph", conf=0.2, iou=0.3, max_det=4, background_class=False)):
        graph, host = _run_graph(spec, boxes, scores)
        for g, h in zip(graph, host, strict=True):
            assert len(g) == len(h) > 0
            assert g.classes.tolist() == h.classes.tolist()
            np.testing.assert_allclose(g.scores, h.scores, rtol=1e-6)
            np.testing.assert_allclose(g.boxes, h.boxes, rtol=1e-6)


def test_per_class_candidates_on_the_host_keep_the_best_of_each_class():
    boxes = np.array([[[10.0 * i, 0, 10.0 * i + 5, 5] for i in range(5)]], np.float32)  # no overlaps
    scores = np.array([[[0, 0.9, 0.1], [0, 0.8, 0.2], [0, 0.7, 0.3], [0, 0.4, 0.6], [0, 0.3, 0.7]]], np.float32)
    spec = Detection(conf=0.05, iou=0.5, max_det=10, background_class=True, candidates_per_class=2)
    geom = Geometry((60, 10), (1.0, 1.0), (0.0, 0.0))
    d = postprocess({"boxes": boxes, "scores": scores}, [geom], spec, (60, 10))[0]
    kept = sorted(zip(d.classes.tolist(), d.scores.astype(np.float64).round(3).tolist(), strict=True))
    assert kept == [(1, 0.8), (1, 0.9), (2, 0.6), (2, 0.7)]


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "ssdlite_mobilenetv2", "nms": "gpu"}, "--nms must be host or graph"),
    ({"model": "ssdlite_mobilenetv2", "conf": 1.5}, "--conf must be in"),
    ({"model": "ssdlite_mobilenetv2", "nms": "graph", "opset": 11}, "--nms graph needs --opset 13"),
    ({"model": "mobilenetv2", "nms": "graph"}, "are for detectors; mobilenetv2 is a classifier"),
    ({"model": "ssdlite_mobilenetv2", "dynamic_size": True}, "anchors are built into the graph"),
])
def test_usage_errors(kwargs, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        export(ExportOptions(out=str(tmp_path / "x.onnx"), **kwargs))


def test_labels_without_background_get_it():
    assert exporter.detector_labels(["cat", "dog", "car"], 4, "l.txt") == ["background", "cat", "dog", "car"]
    assert exporter.detector_labels(["bg", "cat", "dog", "car"], 4, "l.txt") == ["bg", "cat", "dog", "car"]
    with pytest.raises(UsageError, match="l.txt has 2 labels; the detector has 3 object classes"):
        exporter.detector_labels(["cat", "dog"], 4, "l.txt")


def test_infer_prints_and_draws_boxes(files, images, tmp_path, cli):
    r = cli("infer", str(images[1]), "--model", str(files[0].path), "--save", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert "detections" in r.output and "x1" in r.output
    saved = list((tmp_path / "out").iterdir())
    assert len(saved) == 1
    drawn, original = np.asarray(Image.open(saved[0]).convert("RGB")), np.asarray(Image.open(images[1]).convert("RGB"))
    assert drawn.shape == original.shape and (drawn != original).any()  # boxes drawn on a copy


# The INT8 cost of a kernel path is a property of that path, not of the host: each is forced. Full-range u8s8
# saturates on AVX2/AVX-512 x86 without VNNI (issue 17's AMD EPYC), so there it is skipped, never judged by luck;
# u8s8-reduce (7-bit weights) is less accurate on every host (score cosine ~0.90 against ~0.92) and has its own bound.
_SATURATES = saturates(platform.machine(), process_flags())


@pytest.mark.parametrize("kernel, cosine", [
    ("u8u8", 0.9),
    pytest.param("u8s8", 0.9, marks=pytest.mark.skipif(_SATURATES, reason="this CPU has AVX2/AVX-512 without VNNI: "
                                                                         "full-range u8s8 saturates (vpmaddubsw)")),
    ("u8s8-reduce", 0.85),
])
def test_quantize_reports_detection_agreement(files, images, tmp_path, kernel, cosine):
    from edgecnn.quantize import QuantizeOptions, quantize
    from edgecnn.tables import quantize_report

    res = quantize(QuantizeOptions(model=str(files[0].path), calib=str(images[0].parent), out=str(tmp_path / "q.onnx"),
                                   bench=False, min_agreement=0.5, kernel=kernel))
    a = res.agreement
    assert res.types["kernel"] == kernel
    assert a["task"] == "detect" and a["images"] == 3 and a["fp32_detections"] > 10
    assert 0.5 <= a["f1"] <= 1.0 and a["mean_iou"] > 0.8 and cosine < a["score_cosine_mean"] < 1.0
    assert res.contract.parity["passed"] is True and res.contract.task == "detect"
    assert any("detection F1" in line for line in quantize_report(res.to_dict()))
    # the INT8 file runs through the same post-processing
    assert _predict(res.path, images[:1])[0]


def test_a_trained_checkpoint_exports_with_its_contract_and_width(tmp_path):
    """What `edgecnn train` writes for a detector: config (with width_mult) and a detect contract, whose
    labels, letterbox preprocessing and thresholds the export keeps."""
    from edgecnn.contract import Contract, Preprocess
    from edgecnn.train.checkpoint import FORMAT, save_checkpoint

    torch.manual_seed(0)
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=SIZE, width_mult=0.35)
    pre = Preprocess(SIZE, SIZE, resize="letterbox", pad_value=0)
    det = Detection(conf=0.4, iou=0.5, max_det=20, background_class=True)
    contract = Contract("detect", "ssdlite_mobilenetv2", pre, labels=["background", "circle", "square"], detection=det)
    path = tmp_path / "best.pt"
    save_checkpoint({"format": FORMAT, "model": "ssdlite_mobilenetv2", "epoch": 1, "state_dict": model.state_dict(),
                     "config": {"num_classes": 3, "in_channels": 3, "input_size": SIZE, "width_mult": 0.35},
                     "contract": contract.to_dict()}, path)
    res = export(ExportOptions(str(path), out=str(tmp_path / "d.onnx")))
    c = res.contract
    assert c.labels == ["background", "circle", "square"] and c.preprocess.pad_value == 0
    assert (c.detection.conf, c.detection.max_det, c.detection.nms) == (0.4, 20, "host")
    assert c.parity["batches"] and res.path.is_file()


def test_inspect_shows_the_detector_gate(files, cli):
    r = cli("inspect", str(files[1].path))
    assert r.exit_code == 0, r.output
    assert "output    detections: float32 [batch, 100, 6]" in r.output
    assert "final detections F1 1.000" in r.output and "NMS on the host+graph" in r.output


def test_graph_nms_file_runs_without_torch(files, images, tmp_path):
    from tests.conftest import run_cli

    r = run_cli("infer", str(images[0]), "--model", str(files[1].path), "--format", "json", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert '"task": "detect"' in r.stdout and '"box": [' in r.stdout


def test_agreement_by_hand():
    from edgecnn.runtime.detect import Detections, agreement

    def dets(rows):
        a = np.array(rows, np.float32).reshape(-1, 6)
        return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int64))

    ref = dets([[0, 0, 10, 10, 0.9, 1], [20, 0, 30, 10, 0.8, 1], [40, 0, 50, 10, 0.5, 2]])
    same_but_shifted = dets([[1, 0, 11, 10, 0.89, 1], [20, 0, 30, 10, 0.8, 1], [40, 0, 50, 10, 0.5, 2]])
    a = agreement([ref], [same_but_shifted], iou=0.5)
    assert (a["f1"], a["matched"], a["ties"]) == (1.0, 3, 0) and a["mean_iou"] == pytest.approx((9 / 11 + 2) / 3)
    wrong_class = dets([[0, 0, 10, 10, 0.9, 2], [20, 0, 30, 10, 0.8, 1], [40, 0, 50, 10, 0.5, 2]])
    assert agreement([ref], [wrong_class])["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2))
    # the same score in another class is no tie: a class shifted by a bug must not hide behind it
    assert agreement([ref], [wrong_class], tie=1e-4)["f1"] == pytest.approx(2 * 2 / (2 * 2 + 2))
    # a swap between two near-equal scores (NMS kept the other box of the pair) is a tie, not a miss
    swapped = dets([[0, 0, 10, 10, 0.9, 1], [60, 0, 70, 10, 0.80001, 1], [40, 0, 50, 10, 0.5, 2]])
    assert agreement([ref], [swapped])["f1"] == pytest.approx(4 / 6)
    t = agreement([ref], [swapped], tie=1e-4)
    assert (t["f1"], t["ties"]) == (1.0, 2)
    assert agreement([dets([])], [dets([])])["f1"] == 1.0
