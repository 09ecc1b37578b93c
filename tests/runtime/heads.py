"""Tiny ONNX files with the outputs third-party models have (built with ``onnx.helper``, no torch):
a dense map (N, 1, H, W), a sequence (N, T, C), YOLOv8 (N, 4+C, A) and YOLOv5 (N, A, 5+C) heads with
known boxes. Each output depends on the input only through a zero term (or, for the map, is the
input's first channel), so a test knows every value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgecnn.contract import Contract, Detection, Preprocess
from tests.onnx_models import _save

SIZE = 64  # input 64x64: a YOLO head has 8x8 + 4x4 + 2x2 = 84 cells
CELLS = 84
YOLO_LABELS = ["person", "car", "dog"]
# Anchors with a box (cx, cy, w, h in network pixels) and class scores; every other anchor scores 0.01.
#  0: car 0.9; 1: 1 px to the right of 0, car 0.8 (IoU 0.88 with 0: suppressed at IoU 0.7 and 0.45);
#  2: the same box as 1, dog 0.6 (another class: kept); 3: person 0.2 (under conf 0.25: dropped);
#  4: person 0.5 and car 0.45 (one anchor, its best class only); 5: in the bottom letterbox band of a
#  2:1 image, person 0.7 (maps to no area in the image: dropped there, kept for a square image).
YOLO_BOXES = np.array([[24, 32, 16, 16], [25, 32, 16, 16], [25, 32, 16, 16], [50, 20, 8, 8],
                       [48, 40, 10, 12], [32, 56, 8, 6]], np.float32)
YOLO_SCORES = np.array([[0.01, 0.9, 0.01], [0.01, 0.8, 0.01], [0.01, 0.01, 0.6], [0.2, 0.01, 0.01],
                        [0.5, 0.45, 0.01], [0.7, 0.01, 0.01]], np.float32)


def _yolo_pre() -> Preprocess:
    return Preprocess(SIZE, SIZE, resize="letterbox", mean=(0, 0, 0), std=(1, 1, 1))


def _graph(path: Path, nodes: list, init: list, outputs: list, contract: Contract | None, batch="N",
           hw=(SIZE, SIZE)) -> Path:
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2, 3], keepdims=1),  # (N, 1, 1, 1)
             helper.make_node("Reshape", ["m", "shape_n11"], ["m3"]),
             helper.make_node("Mul", ["m3", "zero"], ["z"]), *nodes]  # (N, 1, 1) zeros: a batch dim
    init = [numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape_n11"),
            numpy_helper.from_array(np.float32(0), "zero"), *init]
    graph = helper.make_graph(nodes, "heads", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [batch, 3, *hw])], outputs, init)
    return _save(graph, path, contract)


def _const_output(path: Path, name: str, value: np.ndarray, shape: list, contract: Contract | None,
                  batch="N", hw=(SIZE, SIZE)) -> Path:
    init = [numpy_helper.from_array(value[None].astype(np.float32), "value")]
    out = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)]
    return _graph(path, [helper.make_node("Add", ["z", "value"], [name])], init, out, contract, batch, hw)


def yolo_head(layout: str) -> np.ndarray:
    """One image's head: (4 + 3, 84) for yolov8, (3 x 84, 5 + 3) for yolov5 (objectness 1 on the
    YOLO_BOXES anchors, 0.5 elsewhere; class probabilities = scores / objectness)."""
    n = CELLS * (3 if layout == "yolov5" else 1)
    boxes = np.tile(np.array([[8, 8, 4, 4]], np.float32), (n, 1))
    scores = np.full((n, 3), 0.01, np.float32)
    k = len(YOLO_BOXES)
    rows = np.arange(k) * 7 + 3  # spread over the anchors, not only the first ones
    boxes[rows], scores[rows] = YOLO_BOXES, YOLO_SCORES
    if layout == "yolov8":
        return np.concatenate([boxes, scores], 1).T
    obj = np.full((n, 1), 0.5, np.float32)
    obj[rows] = 1.0
    return np.concatenate([boxes, obj, scores / obj], 1)


def yolo(path: Path, layout: str, contract: bool = False, batch="N", dynamic_size: bool = False) -> Path:
    """A YOLO detector 64x64 whose head is ``yolo_head(layout)``; ``contract``: one that declares it
    (Ultralytics preprocessing, conf 0.25, IoU 0.7), else none (the shape tells); ``dynamic_size``:
    the input's H and W are symbols (the head stays the 64x64 one)."""
    head = yolo_head(layout)
    c = Contract("detect", f"{layout}-head", _yolo_pre(), labels=YOLO_LABELS, weights="unknown",
                 outputs=[{"name": "output0", "meaning": f"{layout} head"}],
                 detection=Detection(layout=layout, iou=0.7, max_det=300)) if contract else None
    return _const_output(path, "output0", head, [batch, *head.shape], c, batch,
                         ("H", "W") if dynamic_size else (SIZE, SIZE))


def sequence(path: Path, steps: int = 10, classes: int = 37, contract: str | None = None) -> Path:
    """(N, steps, classes) softmax probabilities, the same for every image: step t peaks at class t."""
    logits = np.zeros((steps, classes), np.float32)
    logits[np.arange(steps), np.arange(steps) % classes] = 5.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    c = None if contract is None else Contract(contract, "seq", Preprocess.imagenet(SIZE), weights="unknown",
                                               outputs=[{"name": "probs", "meaning": "per-step probabilities"}])
    return _const_output(path, "probs", probs, ["N", steps, classes], c)


def dense_map(path: Path, contract: str | None = None, extra_output: bool = False) -> Path:
    """(N, 1, 64, 64): the input's first channel (red with ``stretch``, pixels / 255, mean 0, std 1);
    ``extra_output``: also ``count`` (N, 2) = [0, 2] (a second output, for .npz)."""
    nodes = [helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["map"])]
    init = [numpy_helper.from_array(np.array([0], np.int64), n) for n in ("s0",)]
    init += [numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([1], np.int64), "ax")]
    outs = [helper.make_tensor_value_info("map", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])]
    if extra_output:
        init.append(numpy_helper.from_array(np.array([[0, 2]], np.float32), "cnt"))
        nodes += [helper.make_node("Reshape", ["z", "shape_n1"], ["z2"]),
                  helper.make_node("Add", ["z2", "cnt"], ["count"])]
        init.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_n1"))
        outs.append(helper.make_tensor_value_info("count", TensorProto.FLOAT, ["N", 2]))
    c = None
    if contract is not None:
        pre = Preprocess(SIZE, SIZE, resize="stretch", mean=(0, 0, 0), std=(1, 1, 1))
        c = Contract(contract, "map", pre, weights="unknown",
                     outputs=[{"name": o.name, "meaning": "map"} for o in outs])
    return _graph(path, nodes, init, outs, c)
