"""ONNX files that really differ from their model, made the way export bugs happen.

Each helper takes serialized ONNX bytes and returns corrupted bytes; the tests feed them to the parity
gate directly (``parity.check``) or through the exporter (by wrapping ``exporter._to_onnx``), and the
gate must reject every one of them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def nudge_initializer(data: bytes, by: float = 1e-2) -> bytes:
    """Add ``by`` to every element of the largest float initializer (a weight edited after export)."""
    m = onnx.load_from_string(data)
    floats = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    t = max(floats, key=lambda t: int(np.prod(t.dims)))
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + np.float32(by), t.name))
    return m.SerializeToString()


def _append_to_output(m: onnx.ModelProto, nodes_for) -> None:
    """Route the graph's first output through ``nodes_for(pre, out)`` (a list of nodes from the old
    output tensor ``pre`` to the output name ``out``)."""
    out = m.graph.output[0].name
    pre = out + "_before_bug"
    for n in m.graph.node:
        for i, o in enumerate(n.output):
            if o == out:
                n.output[i] = pre
    m.graph.node.extend(nodes_for(pre, out))


def swap_output_channels(data: bytes, a: int = 0, b: int = 1) -> bytes:
    """Classes ``a`` and ``b`` exchanged at the output (a mislabelled head)."""
    m = onnx.load_from_string(data)
    k = m.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    order = list(range(k))
    order[a], order[b] = b, a
    idx = numpy_helper.from_array(np.array(order, np.int64), "swap_idx")
    m.graph.initializer.append(idx)
    _append_to_output(m, lambda pre, out: [helper.make_node("Gather", [pre, "swap_idx"], [out], axis=1)])
    return m.SerializeToString()


def drop_last_class(data: bytes) -> bytes:
    """An output of the wrong shape: the last class missing (a head exported at another size)."""
    m = onnx.load_from_string(data)
    k = m.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    for name, v in (("sl_start", [0]), ("sl_end", [k - 1]), ("sl_axes", [1])):
        m.graph.initializer.append(numpy_helper.from_array(np.array(v, np.int64), name))
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = k - 1
    _append_to_output(m, lambda pre, out: [helper.make_node("Slice", [pre, "sl_start", "sl_end", "sl_axes"], [out])])
    return m.SerializeToString()


def add_to_class(data: bytes, cls: int, delta: float) -> bytes:
    """``delta`` added to one class's logit (a small bias error)."""
    m = onnx.load_from_string(data)
    k = m.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    v = np.zeros((1, k), np.float32)
    v[0, cls] = delta
    m.graph.initializer.append(numpy_helper.from_array(v, "bug_delta"))
    _append_to_output(m, lambda pre, out: [helper.make_node("Add", [pre, "bug_delta"], [out])])
    return m.SerializeToString()
