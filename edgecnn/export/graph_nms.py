"""NMS inside the ONNX graph: a detector's ``boxes``/``scores`` -> ``detections`` with ONNX's standard
``NonMaxSuppression`` (opset >= 11), no custom op, so any runtime runs it.

What it computes is what ``edgecnn.runtime.detect.postprocess`` does on the host with the same
``Detection`` settings: optionally the best ``candidates_per_class`` scores of each class, then per
class NMS (IoU > ``iou`` suppresses, scores must be > ``conf``), then the ``max_det`` best of all
classes. Output ``detections`` (N, K, 6) rows ``x1, y1, x2, y2, score, class`` by decreasing score,
K = ``max_det``; rows with score 0 are padding. One difference from the host: the per-class
candidates are those scoring at least the class's ``candidates_per_class``-th best score, so exact
ties at that score all stay (the host keeps the lower anchor index); NMS then sees a few more boxes.
"""

from __future__ import annotations

import numpy as np

from edgecnn.contract import Detection


def append_nms(proto, spec: Detection, boxes: str = "boxes", scores: str = "scores", out: str = "detections"):
    """Add the NMS nodes after the ``boxes`` (N, A, 4) xyxy and ``scores`` (N, A, C) outputs of ``proto``
    (an ``onnx.ModelProto`` with static A and C) and make ``detections`` its only output. In place;
    returns ``proto``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in g.output}
    if boxes not in shapes or scores not in shapes:
        raise ValueError(f"the graph has no '{boxes}'/'{scores}' outputs to run NMS on (outputs: {list(shapes)})")
    a, c = shapes[scores][1], shapes[scores][2]
    if not a or not c:
        raise ValueError("graph NMS needs a fixed anchor count and class count (export without --dynamic-size)")
    first = 1 if spec.background_class else 0
    classes = c - first
    k = min(spec.max_det, classes * a)
    nodes, inits = [], []

    def const(name: str, value, dtype=np.int64) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), f"nms/{name}"))
        return f"nms/{name}"

    def node(op: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        outs = [f"nms/{op}_{len(nodes)}_{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=f"nms/{op}_{len(nodes)}", **attrs))
        return outs

    s = scores
    if first:  # drop the background column
        s = node("Slice", [s, const("first", [first]), const("end", [c]), const("axis2", [2])])[0]
    s = node("Transpose", [s], perm=[0, 2, 1])[0]  # (N, classes, A): NonMaxSuppression's layout
    per_class = spec.candidates_per_class
    if per_class is not None and per_class < a:  # zero all but the best per_class scores of each class
        top = node("TopK", [s, const("k_cand", [per_class])], 2, axis=2)[0]
        kth = node("Slice", [top, const("kth0", [per_class - 1]), const("kth1", [per_class]), const("axis2b", [2])])[0]
        keep = node("GreaterOrEqual", [s, kth])[0]
        s = node("Where", [keep, s, const("zero_f", [0.0], np.float32)])[0]
    sel = node("NonMaxSuppression", [boxes, s, const("max_per_class", [spec.max_det]),
                                     const("iou", [spec.iou], np.float32), const("conf", [spec.conf], np.float32)],
               center_point_box=0)[0]  # (S, 3): image, class, anchor
    sel_scores = node("GatherND", [s, sel])[0]
    cols = [node("Gather", [sel, const(f"col{i}", i)], axis=1)[0] for i in range(3)]
    flat = node("Add", [node("Mul", [cols[0], const("per_image", classes * a)])[0],
                        node("Add", [node("Mul", [cols[1], const("per_class", a)])[0], cols[2]])[0]])[0]
    total = node("ReduceProd", [node("Shape", [s])[0]], keepdims=1)[0]
    dense = node("ConstantOfShape", [total], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]))[0]
    dense = node("ScatterND", [dense, node("Unsqueeze", [flat, const("ax1", [1])])[0], sel_scores])[0]
    dense = node("Reshape", [dense, const("rows", [-1, classes * a])])[0]
    best, idx = node("TopK", [dense, const("k", [k])], 2, axis=1)  # (N, K) by decreasing score
    cls = node("Add", [node("Div", [idx, const("a", a)])[0], const("first_cls", first)])[0]
    anchor = node("Mod", [idx, const("a2", a)])[0]
    gather = node("Expand", [node("Unsqueeze", [anchor, const("ax2", [2])])[0], const("four", [1, 1, 4])])[0]
    picked = node("GatherElements", [boxes, gather], axis=1)[0]
    cols6 = [picked, node("Unsqueeze", [best, const("ax2b", [2])])[0],
             node("Unsqueeze", [node("Cast", [cls], to=TensorProto.FLOAT)[0], const("ax2c", [2])])[0]]
    nodes.append(helper.make_node("Concat", cols6, [out], name="nms/detections", axis=2))

    g.node.extend(nodes)
    g.initializer.extend(inits)
    batch = g.output[0].type.tensor_type.shape.dim[0]
    n = batch.dim_param or batch.dim_value
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [n, k, 6]))
    onnx.checker.check_model(proto)
    return proto
