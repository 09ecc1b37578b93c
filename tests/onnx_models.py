"""Tiny ONNX models built with ``onnx.helper`` (no torch), whose outputs a test can predict.

- ``classifier``: GlobalAveragePool -> Flatten -> Gemm with weights 4*I, so the class is the
  dominant colour of the (normalised) image: red, green, blue (and a constant 'gray' class).
- ``detector``: fixed boxes (``DET_BOXES``, network pixels of a 64x64 letterboxed input) whose
  scores are ``DET_SCORES`` times the mean pixel value in [0, 1]: a white image scores them in full,
  a black one not at all. Host NMS (``boxes``/``scores`` outputs in any box format) or graph NMS
  (``detections``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.contract import Contract, Detection, Preprocess, attach

OPSET = 17
COLOR_LABELS = ["red", "green", "blue", "gray"]
DET_LABELS = ["background", "cat", "dog"]
DET_SIZE = 64
# Network-input pixels (xyxy). Box 1 overlaps box 0 (IoU 0.8, same class): NMS drops it. Box 2 is
# box 1's twin in another class: it stays. Box 3 scores under the default conf 0.25.
DET_BOXES = np.array([[8, 24, 40, 40], [8, 24, 36, 40], [8, 24, 36, 40], [44, 30, 60, 60]], np.float32)
# Per box: background, cat, dog probabilities.
DET_SCORES = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.9, 0.1, 0.0]], np.float32)


def _save(graph, path: Path, contract: Contract | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if contract is not None:
        attach(model, contract)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _const(name: str, value: np.ndarray):
    return numpy_helper.from_array(np.asarray(value), name)


def classifier(path: Path, *, channels: int = 3, size: int = 32, batch: int | str = "N", contract: bool = True,
               input_name: str = "input", probabilities: bool = False, weights: str | dict = "random-init",
               preprocess: Preprocess | None = None, labels: list[str] | None = None, kind: str | None = "auto",
               meaning: str | None = None, dynamic_classes: bool = False) -> Path:
    """(batch, channels, size, size) -> logits (batch, K); K = 4 for colour, 2 (dark, bright) for grey.

    ``dynamic_classes``: the output's class dim is a symbol, not K (the count is known only once the
    model runs). The contract's output entry: ``kind`` as the graph computes it (``"auto"``: logits or
    probabilities), the one given, or none (``None``: an older contract); ``meaning``: its prose."""
    k = 4 if channels == 3 else 2
    w = np.zeros((channels, k), np.float32)
    if channels == 3:
        w[:, :3] = 4 * np.eye(3)
    else:
        w[0] = [-4, 4]
    out, what = ("probs", "probabilities") if probabilities else ("logits", "logits")
    gemm = "gemm" if dynamic_classes else "logits"
    nodes = [helper.make_node("GlobalAveragePool", [input_name], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "W", "b"], [gemm])]
    init = [_const("W", w), _const("b", np.zeros(k, np.float32))]
    if dynamic_classes:  # logits[:, :end] with end = k computed from the pixels (0 * max + k): no shape inference
        init += [_const("k_f", np.array([k], np.float32)), _const("zero_f", np.float32(0)),
                 _const("start", np.array([0], np.int64)), _const("axis1", np.array([1], np.int64))]
        nodes += [helper.make_node("ReduceMax", [input_name], ["mx"], keepdims=0),
                  helper.make_node("Mul", ["mx", "zero_f"], ["mx0"]),
                  helper.make_node("Add", ["mx0", "k_f"], ["end_f"]),
                  helper.make_node("Cast", ["end_f"], ["end"], to=TensorProto.INT64),
                  helper.make_node("Slice", [gemm, "start", "end", "axis1"], ["logits"])]
    if probabilities:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes, "colors",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, "K" if dynamic_classes else k])], init)
    c = None
    if contract:
        pre = preprocess or Preprocess.imagenet(size, channels)
        c = Contract("classify", "colors", pre, input_name=input_name,
                     labels=labels or (COLOR_LABELS if channels == 3 else ["dark", "bright"]),
                     outputs=[_output_entry(out, what if kind == "auto" else kind, meaning or f"class {what}")],
                     weights=weights, batch="dynamic" if isinstance(batch, str) else batch)
    return _save(graph, path, c)


def _output_entry(name: str, kind: str | None, meaning: str) -> dict[str, str]:
    return {"name": name, **({"kind": kind} if kind else {}), "meaning": meaning}


def _mean_of_input(nodes: list) -> str:
    """Nodes computing m (N, 1, 1): the mean pixel of each image; returns its name."""
    nodes += [helper.make_node("ReduceMean", ["input"], ["m4"], axes=[1, 2, 3], keepdims=1),
              helper.make_node("Reshape", ["m4", "shape_n11"], ["m"])]
    return "m"


def detector(path: Path, *, nms: str = "host", box_format: str = "xyxy", normalized: bool = False,
             weights: str | dict = "random-init", contract: bool = True) -> Path:
    """A 64x64 letterbox detector over ``DET_BOXES``; see the module docstring."""
    n_anchor = len(DET_BOXES)
    nodes: list = []
    init = [_const("shape_n11", np.array([-1, 1, 1], np.int64)), _const("zero", np.float32(0))]
    m = _mean_of_input(nodes)
    nodes.append(helper.make_node("Mul", [m, "zero"], ["m0"]))  # (N, 1, 1) zeros: gives outputs a batch dim
    boxes = DET_BOXES.copy()
    if box_format == "cxcywh":
        boxes = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
    elif box_format == "xywh":
        boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    if normalized:
        boxes = boxes / DET_SIZE
    outputs = []
    if nms == "graph":
        # rows x1 y1 x2 y2 score class after NMS: box 0 (cat) and box 2 (dog), then padding
        rows = np.zeros((1, 5, 6), np.float32)
        rows[0, 0] = [*boxes[0], 0.9, 1]
        rows[0, 1] = [*boxes[2], 0.7, 2]
        init.append(_const("det_rows", rows))
        nodes.append(helper.make_node("Add", ["m0", "det_rows"], ["detections"]))
        outputs.append(helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["N", 5, 6]))
    else:
        if box_format == "deltas":  # zero deltas: the decoded boxes are the anchors themselves
            init += [_const("box_c", np.zeros((1, n_anchor, 4), np.float32)), _const("anchors_c", DET_BOXES)]
            nodes.append(helper.make_node("Identity", ["anchors_c"], ["anchors"]))
            outputs.append(helper.make_tensor_value_info("anchors", TensorProto.FLOAT, [n_anchor, 4]))
        else:
            init.append(_const("box_c", boxes[None].astype(np.float32)))
        init.append(_const("score_c", DET_SCORES[None]))
        nodes += [helper.make_node("Add", ["m0", "box_c"], ["boxes"]),
                  helper.make_node("Mul", [m, "score_c"], ["scores"])]
        outputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", n_anchor, 4]),
                   helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_anchor, 3]), *outputs]
    graph = helper.make_graph(
        nodes, "boxes", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, DET_SIZE, DET_SIZE])],
        outputs, init)
    c = None
    if contract:
        pre = Preprocess(DET_SIZE, DET_SIZE, resize="letterbox", scale=1 / 255, mean=(0, 0, 0), std=(1, 1, 1))
        c = Contract("detect", "boxes", pre, labels=DET_LABELS, weights=weights,
                     outputs=[_output_entry(o.name, o.name if o.name in ("boxes", "scores", "detections") else None,
                                            o.name) for o in outputs],
                     detection=Detection(nms=nms, box_format="xyxy" if nms == "graph" else box_format,
                                         normalized=normalized, background_class=True))
    return _save(graph, path, c)
