"""``train --anchors auto``: anchor scales fitted to the training boxes cover them better than the defaults,
and travel with the checkpoint through the one checkpoint -> model path into eval and the exported graph."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgecnn import registry
from edgecnn.nn.detection import box_iou
from edgecnn.train.anchor_fit import best_iou, coverage, fit_scales, network_boxes
from edgecnn.train.checkpoint import load_checkpoint
from edgecnn.train.config import TrainConfig
from edgecnn.train.loop import train
from edgecnn.train.shapes import write_shapes
from edgecnn.weights import model_from_weights, read_weights

from .conftest import quiet
from .test_anchor_fit import _squares

pytestmark = pytest.mark.usefixtures("one_thread")
NAME = "ssdlite_mobilenetv2"


def test_the_closed_form_best_iou_is_the_brute_force_one():
    model = registry.build(NAME, num_classes=3, input_size=96, width_mult=0.5)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 80, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 60, (300, 2))], 1).astype(np.float32)
    for scales in (None, [0.08, 0.16, 0.3, 0.45, 0.6, 0.8, 0.9]):
        model.set_anchor_scales(scales)
        brute = box_iou(torch.as_tensor(boxes), model.anchors).max(1).values.numpy()
        fast = best_iou(boxes, model._grid(96, 96), (96, 96), model.box_generator.wh)
        np.testing.assert_allclose(fast, brute, atol=1e-5)


def test_fitted_scales_cover_small_objects_the_defaults_miss():
    model = registry.build(NAME, num_classes=3, input_size=128, width_mult=0.5)
    small = _squares(20, 80, 128)  # 16% of the side: below the defaults' smallest anchor (0.2)
    fit = fit_scales(model, small, model.preprocess)
    boxes = network_boxes(small, model.preprocess)
    assert fit["default"] == coverage(boxes, model.anchors)
    model.set_anchor_scales(fit["scales"])
    assert fit["fitted"] == coverage(boxes, model.anchors)
    assert fit["scales"][0] < 0.2 and fit["fitted"]["uncovered"] < fit["default"]["uncovered"] / 2, fit
    assert fit_scales(model, [], model.preprocess) is None


def test_auto_anchors_go_from_train_to_eval_and_export(tmp_path):
    from edgecnn.eval.run import EvalOptions, evaluate
    from edgecnn.export.exporter import ExportOptions, export

    data = tmp_path / "det"
    write_shapes(data, n=20, size=64, seed=0, task="detect")
    lines = []
    train(TrainConfig(NAME, str(data), epochs=1, batch_size=8, input_size=64, optimizer="adamw", anchors="auto",
                      out=str(tmp_path / "run"), device="cpu"), echo=lines.append, warn=quiet)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    scales = ckpt["config"]["anchor_scales"]
    assert len(scales) == 7 and scales != [0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0]
    assert any(line.startswith(f"anchors: scales {scales[0]:.2f}-{scales[5]:.2f}") for line in lines), lines
    model = model_from_weights(read_weights(tmp_path / "run" / "last.pt")).eval()
    default = registry.build(NAME, num_classes=model.num_classes, input_size=64)
    assert model.anchor_scales == scales and not torch.equal(model.anchors, default.anchors)

    onnx = export(ExportOptions(str(tmp_path / "run" / "last.pt"), out=str(tmp_path / "det.onnx"))).path
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        boxes, _ = model(x)
        default.load_state_dict(model.state_dict())
        other, _ = default.eval()(x)
    got = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, boxes.numpy(), atol=1e-3)  # the graph decodes against the fitted anchors
    assert np.abs(got - other.numpy()).max() > 1.0  # which the default anchors would not give

    from_ckpt = evaluate(EvalOptions(model=str(tmp_path / "run" / "last.pt"), data=str(data), provider="cpu",
                                     threads=1)).metrics
    from_onnx = evaluate(EvalOptions(model=str(onnx), data=str(data), provider="cpu", threads=1)).metrics
    assert from_onnx["map50"] == pytest.approx(from_ckpt["map50"], abs=0.02)
