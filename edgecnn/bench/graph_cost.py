"""Parameters and MACs counted on an ONNX graph, for files edgecnn did not export (torch-free).

MACs follow the convention of the registry's model cards (and ``edgecnn.profile``): the
multiply-accumulates of convolutions and matrix products for ONE image; BN, activations, pooling and
element-wise ops are not counted. Shapes come from ONNX shape inference with the batch fixed to one
image and the spatial size fixed to the one measured, so a dynamic-size graph is counted at that size.
Parameters are the elements of the weight initializers (shape constants and quantization scales /
zero points left out); a graph with BN folded into the convolutions has fewer than the torch model.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgecnn.errors import EdgeCNNError, first_line

_SKIP_DTYPES = {7, 9}  # int64 (shapes, indices), bool
_QDQ = {"QuantizeLinear", "DequantizeLinear"}


def _shape(vi) -> list[int] | None:
    dims = vi.type.tensor_type.shape.dim
    if not vi.type.tensor_type.HasField("shape"):
        return None
    out = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return None if any(d is None for d in out) else out


def count_params(model) -> int:
    """Elements of the weight initializers (not shape constants, not Q/DQ scales and zero points)."""
    aux = {name for n in model.graph.node if n.op_type in _QDQ for name in n.input[1:]}
    return sum(math.prod(t.dims) for t in model.graph.initializer
               if t.data_type not in _SKIP_DTYPES and t.name not in aux)


def _fix_input(model, size: tuple[int, int] | None) -> int:
    """Pin the first graph input to one image (and ``size`` as H, W where given); returns the batch
    the graph keeps when its batch is static (the MACs are divided by it)."""
    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    dims = inp.type.tensor_type.shape.dim
    batch = dims[0].dim_value if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else 1
    if len(dims) and not dims[0].HasField("dim_value"):
        dims[0].dim_value = 1
    if size is not None and len(dims) == 4:
        nhwc = dims[3].HasField("dim_value") and dims[3].dim_value in (1, 3) and not (
            dims[1].HasField("dim_value") and dims[1].dim_value in (1, 3))
        h_i, w_i = (1, 2) if nhwc else (2, 3)
        dims[h_i].dim_value, dims[w_i].dim_value = size
    return batch


def _toposort(graph) -> None:
    """Order the nodes so every input is produced before use (shape inference needs it; converters such
    as onnxruntime's FP16 one append their Cast nodes at the end)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:  # a cycle or an input from nowhere: leave the rest as it was
            ordered += pending
            break
        for n in ready:
            known.update(n.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    copies = [type(n).FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def count_macs(model, size: tuple[int, int] | None = None) -> int:
    """MACs per image of Conv, ConvTranspose, Gemm and MatMul nodes (with shape inference)."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())  # shape inference edits a copy
    batch = _fix_input(model, size)
    _toposort(model.graph)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:
        raise EdgeCNNError(f"cannot count MACs: ONNX shape inference failed ({first_line(e)})") from e
    g = model.graph
    shapes = {vi.name: _shape(vi) for vi in [*g.input, *g.value_info, *g.output]}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    total = 0
    for n in g.node:
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "MatMulInteger",
                             "QLinearConv", "QLinearMatMul"):
            continue
        x_name, w_name = (n.input[0], n.input[3]) if n.op_type.startswith("QLinear") else (n.input[0], n.input[1])
        x, w, y = shapes.get(x_name), shapes.get(w_name), shapes.get(n.output[0])
        if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            if w and y:
                total += math.prod(y) * math.prod(w[1:])
        elif n.op_type == "ConvTranspose":
            if w and x:
                total += math.prod(x) * math.prod(w[1:])
        elif n.op_type == "Gemm":
            trans_a = next((a.i for a in n.attribute if a.name == "transA"), 0)
            if x and y:
                total += math.prod(y) * (x[0] if trans_a else x[-1])
        elif x and y:  # MatMul family: every output element is a dot product over A's last dim
            total += math.prod(y) * x[-1]
    return total // max(batch, 1)


def graph_cost(path: str | Path, size: tuple[int, int] | None = None) -> dict:
    """``{"params", "macs"}`` of an ONNX file (``macs`` None when shape inference cannot tell)."""
    import onnx

    model = onnx.load(str(path))
    try:
        macs = count_macs(model, size)
    except EdgeCNNError:
        macs = None
    return {"params": count_params(model), "macs": macs}
