"""Parameters, MACs and precision counted on an ONNX graph: ONE implementation for ``inspect``, ``bench`` and
``quantize`` on any file, ours or another exporter's (torch-free; never reads external weight data).

**Parameters** are the elements of the graph's value tensors, wherever the exporter put them: initializers
and ``Constant`` nodes (opset 11/12 exporters write weights as Constant nodes). The rule:

- float tensors (float32/16/64, bfloat16) count, and int8/uint8 (int4/uint4) tensors count: those are the
  weights of a quantized file, so an INT8 file counts each weight once, as its FP32 file does;
- int32 tensors count only where they are a quantized bias (the data input of DequantizeLinear, the bias of
  QLinearConv); other integer and bool tensors are shapes, axes and indices, never parameters;
- never counted, whatever their type: the scales and zero points of QuantizeLinear / DequantizeLinear and
  of the QLinear* / *Integer ops, Clip's bounds, the roi/scales/sizes of Resize and Upsample, Pad's pads
  and value; and a single-element tensor anywhere but a weight input (a Conv/Gemm/MatMul weight or bias,
  a PRelu slope): hard-swish's 3 and 6, epsilons and the like are constants of the formula, not weights.

Tensors in subgraphs (If/Loop bodies) are not counted. A graph exported with BatchNorm folded into its
convolutions has fewer parameters than the torch model: each BN's scale and shift become the conv's bias.

**MACs** follow the registry's model cards (and ``edgecnn.profile``): the multiply-accumulates of Conv,
ConvTranspose, Gemm and MatMul (and their integer forms) for ONE image; BN, activations, pooling and
element-wise ops are not counted. Shapes come from ONNX shape inference on a copy of the graph whose first
input is pinned to one image at the size in use: the size given, else the graph's static height and width,
else the size in the file's contract. A symbolic, 0 or -1 dimension is never multiplied in: a graph that
cannot be sized that way has MACs unknown (None), not a wrong count.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from edgecnn.errors import EdgeCNNError, first_line

_FLOAT = {1, 10, 11, 16}  # float32, float16, float64, bfloat16
_QUANT = {2, 3, 21, 22}  # uint8, int8, uint4, int4: the weights of a quantized graph
_INT32 = 6
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
# inputs that are never parameters, by op: scales, zero points, bounds, resize factors, pads
_NOT_PARAMS = {
    "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (2, 3), "MatMulInteger": (2, 3),
    "Clip": (1, 2), "Resize": (1, 2, 3), "Upsample": (1,), "Pad": (1, 2, 3),
}
# inputs that hold a layer's weights: a single-element tensor there still counts (a 1-output Gemm's bias)
_WEIGHT_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "PRelu": (1,),
                  "ConvInteger": (1,), "MatMulInteger": (1,), "QLinearConv": (3, 8), "QLinearMatMul": (3,),
                  "DequantizeLinear": (0,)}
_MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "QLinearConv",
            "QLinearMatMul")
# ops that only exist in a quantized graph
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
             "ConvInteger", "MatMulInteger", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
             "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QGemm", "QAttention"}


def _tensors(graph):
    """(name, data_type, elements) of every value tensor: initializers, then Constant nodes' values."""
    for t in graph.initializer:
        yield t.name, t.data_type, math.prod(t.dims)
    for n in graph.node:
        if n.op_type != "Constant" or not n.output:
            continue
        for a in n.attribute:
            if a.name == "value":
                yield n.output[0], a.t.data_type, math.prod(a.t.dims)
            elif a.name == "value_float":
                yield n.output[0], 1, 1
            elif a.name == "value_floats":
                yield n.output[0], 1, len(a.floats)
            elif a.name == "sparse_value":
                yield n.output[0], a.sparse_tensor.values.data_type, math.prod(a.sparse_tensor.values.dims)


def count_params(model) -> int:
    """Parameters of the graph by the rule in the module docstring. Exporters store identical tensors once
    and alias them with Identity nodes (random-init BN-folded biases are all zeros): each alias counts, as
    each layer has its own weights in the model."""
    uses = defaultdict(set)  # tensor name -> {(op, input index)}
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name:
                uses[name].add((n.op_type, i))
    tensors = {name: (dtype, elements) for name, dtype, elements in _tensors(model.graph)}
    for n in model.graph.node:  # in graph order, so a chain of aliases resolves
        if n.op_type == "Identity" and n.input and n.input[0] in tensors:
            tensors[n.output[0]] = tensors[n.input[0]]
    total = 0
    for name, (dtype, elements) in tensors.items():
        use = uses.get(name, set())
        if any(i in _NOT_PARAMS.get(op, ()) for op, i in use):
            continue
        at_weight = any(i in _WEIGHT_INPUTS.get(op, ()) for op, i in use)
        if dtype == _INT32:
            counted = any((op, i) in (("DequantizeLinear", 0), ("QLinearConv", 8)) for op, i in use)
        else:
            counted = (dtype in _FLOAT or dtype in _QUANT) and (elements > 1 or at_weight)
        if counted and use and all(op == "Identity" for op, _ in use):
            continue  # a tensor used only through its aliases: they count it
        total += elements if counted else 0
    return total


def precision_of_graph(model) -> str:
    """int8 when the graph holds quantization ops, fp16 when most of its float weights are float16, else fp32."""
    if any(n.op_type in QUANT_OPS for n in model.graph.node):
        return "int8"
    floats = Counter()
    for _, dtype, elements in _tensors(model.graph):
        floats[dtype] += elements
    return "fp16" if floats[10] > floats[1] + floats[11] else "fp32"


def _dims(vi) -> list:
    return list(vi.type.tensor_type.shape.dim)


def _known(d) -> bool:
    return d.HasField("dim_value") and d.dim_value > 0


def _forget_unknown(vi) -> None:
    """Turn 0 / -1 dims into unknown ones, so shape inference fills them instead of multiplying them."""
    for d in _dims(vi):
        if d.HasField("dim_value") and d.dim_value <= 0:
            d.ClearField("dim_value")


def input_hw(model) -> tuple[int | None, int | None, str]:
    """(height, width, layout) of the first graph input as stored (None where not a positive number)."""
    inits = {t.name for t in model.graph.initializer}
    inp = next((i for i in model.graph.input if i.name not in inits), None)
    dims = _dims(inp) if inp is not None else []
    if len(dims) != 4:
        return None, None, "NCHW"
    val = [d.dim_value if _known(d) else None for d in dims]
    nhwc = val[3] in (1, 3) and val[1] not in (1, 3)
    h, w = (val[1], val[2]) if nhwc else (val[2], val[3])
    return h, w, "NHWC" if nhwc else "NCHW"


def contract_size(model) -> tuple[int, int] | None:
    """(height, width) the file's edgecnn contract preprocesses to, when it has a readable one."""
    from edgecnn.contract import from_metadata

    try:
        c = from_metadata({p.key: p.value for p in model.metadata_props})
    except Exception:
        return None
    return (c.preprocess.height, c.preprocess.width) if c is not None else None


def size_in_use(model, size: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The (height, width) MACs are counted at: ``size`` given, else the graph's static H and W, else the
    contract's size; None when none of those says."""
    if size is not None:
        return tuple(size)
    h, w, _ = input_hw(model)
    if h and w:
        return h, w
    return contract_size(model)


def _pin_input(model, size: tuple[int, int] | None) -> int:
    """Pin the first graph input to one image at ``size`` (H, W); returns the batch the graph keeps when its
    batch is static (the MACs are divided by it)."""
    g = model.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        _forget_unknown(vi)
    inits = {t.name for t in g.initializer}
    inp = next(i for i in g.input if i.name not in inits)
    dims = _dims(inp)
    if not dims:
        return 1
    batch = dims[0].dim_value if _known(dims[0]) else 1
    if not _known(dims[0]):
        dims[0].dim_value = 1
    if size is not None and len(dims) == 4:
        h_i, w_i = (1, 2) if input_hw(model)[2] == "NHWC" else (2, 3)
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


def _shape(vi) -> list[int] | None:
    if not vi.type.tensor_type.HasField("shape"):
        return None
    dims = _dims(vi)
    return [d.dim_value for d in dims] if all(_known(d) for d in dims) else None


def count_macs(model, size: tuple[int, int] | None = None) -> int:
    """MACs per image of Conv, ConvTranspose, Gemm and MatMul nodes (and their integer forms) at
    ``size_in_use(model, size)``. Raises EdgeCNNError (one line, saying what to give) when a node's shapes
    cannot be known."""
    import onnx

    hw = size_in_use(model, size)
    model = onnx.ModelProto.FromString(model.SerializeToString())  # shape inference edits a copy
    batch = _pin_input(model, hw)
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
        if n.op_type not in _MAC_OPS:
            continue
        x_name, w_name = (n.input[0], n.input[3]) if n.op_type.startswith("QLinear") else (n.input[0], n.input[1])
        x, w, y = shapes.get(x_name), shapes.get(w_name), shapes.get(n.output[0])
        need = {"Conv": (w, y), "ConvInteger": (w, y), "QLinearConv": (w, y), "ConvTranspose": (w, x)}.get(
            n.op_type, (x, y))
        if any(s is None for s in need):
            where = "" if hw else " (the input size is dynamic and no contract says it)"
            raise EdgeCNNError(f"cannot count MACs: the shapes around {n.op_type} '{n.name or n.output[0]}' "
                               f"are not known{where}")
        if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            total += math.prod(y) * math.prod(w[1:])
        elif n.op_type == "ConvTranspose":
            total += math.prod(x) * math.prod(w[1:])
        elif n.op_type == "Gemm":
            trans_a = next((a.i for a in n.attribute if a.name == "transA"), 0)
            total += math.prod(y) * (x[0] if trans_a else x[-1])
        else:  # MatMul family: every output element is a dot product over A's last dim
            total += math.prod(y) * x[-1]
    return total // max(batch, 1)


def load_graph(path: str | Path):
    """The ONNX model of ``path`` without its external weight data (nothing here reads the values)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise EdgeCNNError(f"{path}: not a readable ONNX file ({first_line(e)})") from e


def graph_cost(path_or_model, size: tuple[int, int] | None = None) -> dict:
    """``{"params", "macs", "macs_size", "macs_error", "precision"}`` of an ONNX file (or loaded model):
    ``macs`` None (with ``macs_error``, one line) when shape inference cannot tell; ``macs_size`` the
    (height, width) counted at."""
    model = path_or_model if hasattr(path_or_model, "graph") else load_graph(path_or_model)
    hw = size_in_use(model, size)
    try:
        macs, error = count_macs(model, hw), None
    except EdgeCNNError as e:
        macs, error = None, str(e)
    return {"params": count_params(model), "macs": macs, "macs_size": list(hw) if hw else None,
            "macs_error": error, "precision": precision_of_graph(model)}
