"""The detector gate when nothing passes the contract's threshold (random-init weights): it checks the
file's NMS on the model's boxes with synthetic scores instead, so a broken file still fails."""

import re
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

from edgecnn import registry
from edgecnn.export import graph_nms, parity_detect
from edgecnn.export.exporter import ExportOptions, export

SIZE, CLASSES, CASES = 64, 4, [(1, 64, 64), (2, 64, 64)]


@pytest.fixture(scope="module")
def random_init(tmp_path_factory):
    """A random-init detector, its host-NMS ONNX file and a contract threshold no score reaches."""
    torch.manual_seed(0)
    model = registry.build("ssdlite_mobilenetv2", num_classes=CLASSES, input_size=SIZE).eval()
    path = tmp_path_factory.mktemp("w") / "random.pth"
    torch.save(model.state_dict(), path)
    res = export(ExportOptions("ssdlite_mobilenetv2", weights=str(path), num_classes=CLASSES, input_size=SIZE,
                               out=str(path.with_suffix(".onnx")), check=False))
    spec = replace(res.contract.detection, conf=0.99)
    with torch.no_grad():
        assert float(model(torch.randn(2, 3, SIZE, SIZE))[1][..., 1:].max()) < spec.conf  # nothing passes
    return model, onnx.load(res.path), spec


def _graph(proto, spec, scale: float = 1.0) -> bytes:
    """The file with graph NMS appended; ``scale`` != 1 multiplies the final boxes (a broken export)."""
    proto = graph_nms.append_nms(onnx.ModelProto.FromString(proto.SerializeToString()), spec)
    if scale != 1.0:
        g = proto.graph
        concat = next(n for n in g.node if n.name == "nms/detections")
        g.initializer.append(onnx.numpy_helper.from_array(np.asarray(scale, np.float32), "broken/scale"))
        g.node.insert(list(g.node).index(concat), helper.make_node("Mul", [concat.input[0], "broken/scale"],
                                                                   ["broken/boxes"], name="broken/mul"))
        concat.input[0] = "broken/boxes"
    return proto.SerializeToString()


def test_nothing_above_the_threshold_is_checked_on_the_probe(random_init):
    model, proto, spec = random_init
    for nms, data in (("host", proto.SerializeToString()), ("graph", _graph(proto, replace(spec, nms="graph")))):
        report = parity_detect.check(model, data, 3, CASES, "fp32", replace(spec, nms=nms))
        assert report.passed, (nms, report.failure)
        for row in report.batches:
            assert row.probe and row.detections > 0 and row.f1 == 1.0 and row.ties == 0, (nms, row)


def test_a_broken_graph_fails_the_gate_even_with_random_weights(random_init):
    model, proto, spec = random_init
    graph = replace(spec, nms="graph")
    report = parity_detect.check(model, _graph(proto, graph, scale=1.3), 3, CASES, "fp32", graph)
    assert not report.passed
    m = re.search(r"final detections agree at F1 ([\d.]+) < 1.0 \((\d+) of (\d+) PyTorch .* matched on the probe\)$",
                  report.failure)
    assert m and float(m.group(1)) < 0.5 and int(m.group(2)) < int(m.group(3)) / 2, report.failure


def test_detections_above_the_contract_threshold_are_compared_there(random_init):
    model, proto, spec = random_init
    report = parity_detect.check(model, proto.SerializeToString(), 3, CASES[:1], "fp32", replace(spec, conf=0.05))
    assert report.passed and not report.batches[0].probe and report.batches[0].detections > 0


def test_fp16_activation_overflow_fails_the_detector_gate(random_init, tmp_path):
    """As the classifier gate: onnxruntime's CPU computes a float16 file in float32, so boxes and scores
    agree; the gate fails it from the activation range PyTorch saw. The stem's BN here reaches ~1e5 (its
    ReLU6 clips it, so the outputs stay ordinary). The same model passes at fp32, the plain one at fp16."""
    import copy

    model, proto, spec = random_init
    over = copy.deepcopy(model)
    bn = over.get_submodule("backbone.features.0.0.1")  # the stem's BatchNorm
    with torch.no_grad():
        bn.running_var.fill_(1e-3)
        bn.weight.fill_(3000.0)
    path = tmp_path / "over.pth"
    torch.save(over.state_dict(), path)
    res = export(ExportOptions("ssdlite_mobilenetv2", weights=str(path), num_classes=CLASSES, input_size=SIZE,
                               out=str(tmp_path / "over.onnx"), check=False))
    data = res.path.read_bytes()
    report = parity_detect.check(over, data, 3, CASES, "fp16", spec)
    assert not report.passed and len(report.batches) == len(CASES)  # every case agreed; then the range check
    assert re.fullmatch(r"fp16: activations reach [\d.e+]+ at 'backbone\.features\.0\.0\.1', beyond float16's 65504; "
                        r"the file would overflow .*", report.failure), report.failure
    assert parity_detect.check(over, data, 3, CASES, "fp32", spec).passed
    assert parity_detect.check(model, proto.SerializeToString(), 3, CASES, "fp16", spec).passed
