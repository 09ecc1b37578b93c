"""Zoo files through OpenVINO (``--runtime openvino``) answer what onnxruntime answers: FP32 classifiers within
the export gate's FP32 tolerance (relative max-abs, cosine, top-1), the SSDLite detector's boxes, scores and
final detections, and an INT8 file's top-1 within quantize's agreement bar (two INT8 kernels round apart).
Every zoo model's parity at its default input is recorded by benchmarks/runtimes.py; this is the subset that
covers the kinds of layer: depthwise (mobilenetv2), SE + hard-swish (mobilenetv3_large), plain residual
(resnet18), SE + SiLU (efficientnet_b0, slow)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgecnn.export.exporter import ExportOptions, export
from edgecnn.export.parity import TOLERANCES, compare
from edgecnn.runtime.detect import agreement, postprocess
from edgecnn.runtime.image import Geometry
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import ImageFile
from tests.export.test_export_detect import SIZE, files, images, weights  # noqa: F401  (the SSDLite fixtures)
from tests.zoo_weights import conditioned_checkpoint

pytest.importorskip("openvino", reason="openvino not installed (extra [openvino])")

FP32 = TOLERANCES["fp32"]
INT8_TOP1 = 0.9  # quantize's INT8 gate (QuantizeOptions.min_agreement): agreement expected between INT8 files


def _zoo_file(name: str, d, size: int = 32):
    w = conditioned_checkpoint(name, d / f"{name}.pt", num_classes=10, input_size=size)
    return export(ExportOptions(model=name, weights=str(w), input_size=size, num_classes=10,
                                out=str(d / f"{name}.onnx"), check=False)).path


def _both(path, x):
    return Engine(path, threads=1).run(x), Engine(path, runtime="openvino", threads=1).run(x)


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3_large", "resnet18",
                                  pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_classifier_logits_within_the_fp32_gate(name, tmp_path):
    path = _zoo_file(name, tmp_path)
    rng = np.random.default_rng(0)
    for n in (1, 6):
        x = rng.standard_normal((n, 3, 32, 32), dtype=np.float32)
        ref, got = _both(path, x)
        p = compare(ref["logits"], got["logits"], n)
        assert np.abs(ref["logits"]).max() > 1e-3  # a real scale: not a comparison of noise around zero
        assert p.rel <= FP32["rel"] and p.cosine >= FP32["cosine"] and p.top1 == 1.0 and p.ties == 0, p


def test_int8_file_agrees_within_the_int8_bar(tmp_path):
    from edgecnn.quantize import QuantizeOptions, quantize

    path = _zoo_file("mobilenetv2", tmp_path)
    rng = np.random.default_rng(1)
    (tmp_path / "calib").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "calib" / f"{i}.png")
    int8 = quantize(QuantizeOptions(model=str(path), calib=str(tmp_path / "calib"), out=str(tmp_path / "q.onnx"),
                                    bench=False, min_agreement=0.0)).path
    x = rng.standard_normal((16, 3, 32, 32), dtype=np.float32)
    ref, got = _both(int8, x)
    p = compare(ref["logits"], got["logits"], 16)
    assert p.rel > 0  # two INT8 kernels: not bit-equal, so the test would see a self-comparison
    assert p.top1 >= INT8_TOP1 and p.cosine >= 0.999, p


@pytest.mark.parametrize("which", ["host", "graph"])
def test_ssdlite_detections_equal(which, files, images):  # noqa: F811  (fixtures imported above)
    res = files[0] if which == "host" else files[1]
    ort_e, ov_e = Engine(res.path, threads=1), Engine(res.path, runtime="openvino", threads=1)
    x = np.random.default_rng(2).standard_normal((2, 3, SIZE, SIZE), dtype=np.float32)
    ref, got = ort_e.run(x), ov_e.run(x)
    if which == "host":  # the raw heads within the FP32 gate
        for k in ("boxes", "scores"):
            p = compare(ref[k], got[k], 2)
            assert p.rel <= FP32["rel"] and p.cosine >= FP32["cosine"], (k, p)
    spec = ort_e.contract.detection
    geoms = [Geometry((SIZE, SIZE), (1.0, 1.0), (0.0, 0.0))] * 2
    a = agreement(postprocess(ref, geoms, spec, (SIZE, SIZE)), postprocess(got, geoms, spec, (SIZE, SIZE)), 0.9,
                  tie=2 * FP32["rel"])
    assert a["ref"] > 0 and a["f1"] == 1.0 and a["mean_iou"] > 0.999, a
    # and through the whole pipeline (decode, letterbox, NMS, undo-letterbox) on image files
    files_ = [ImageFile(p, p.name) for p in images]
    out = {rt: [r.predictions for r in Predictor(e).predict(files_, batch=2)]
           for rt, e in (("ort", ort_e), ("openvino", ov_e))}
    assert sum(map(len, out["ort"])) > 0
    for a_, b_ in zip(out["ort"], out["openvino"], strict=True):
        assert [p["class"] for p in a_] == [p["class"] for p in b_]
        np.testing.assert_allclose([p["box"] for p in a_], [p["box"] for p in b_], atol=0.05)
        np.testing.assert_allclose([p["score"] for p in a_], [p["score"] for p in b_], atol=1e-4)
