"""MACs and params counted on ONNX graphs: a hand-computed graph, and zoo models against the registry."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.bench.graph_cost import count_macs, count_params, graph_cost
from edgecnn.bench.targets import Target, Workspace


def _graph(h: int | str = 16, w: int | str = 16) -> onnx.ModelProto:
    """conv 3->8 3x3 pad 1; depthwise 3x3 stride 2; GAP; flatten; Gemm 8->10; MatMul 10->5."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
            (("w1", (8, 3, 3, 3)), ("w2", (8, 1, 3, 3)), ("wg", (8, 10)), ("bg", (10,)), ("wm", (10, 5)))]
    init.append(numpy_helper.from_array(np.array([-1, 8], np.int64), "shape"))  # not a parameter
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], group=8),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
             helper.make_node("Reshape", ["g", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["y1"]),
             helper.make_node("MatMul", ["y1", "wm"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_macs_and_params_by_hand():
    m = _graph()
    # conv: 8*16*16 outputs x 27; depthwise: 8*8*8 outputs x 9; Gemm 10 x 8; MatMul 5 x 10
    assert count_macs(m) == 8 * 16 * 16 * 27 + 8 * 8 * 8 * 9 + 80 + 50
    assert count_params(m) == 216 + 72 + 80 + 10 + 50


def test_dynamic_size_is_counted_at_the_size_given():
    m = _graph("H", "W")
    assert count_macs(m, (32, 32)) == 8 * 32 * 32 * 27 + 8 * 16 * 16 * 9 + 80 + 50
    assert count_macs(m, (16, 32)) == 8 * 16 * 32 * 27 + 8 * 8 * 16 * 9 + 80 + 50


def test_a_static_batch_counts_per_image(tmp_path):
    m = _graph()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    onnx.save(m, tmp_path / "b4.onnx")
    assert graph_cost(tmp_path / "b4.onnx")["macs"] == 8 * 16 * 16 * 27 + 8 * 8 * 8 * 9 + 80 + 50


def test_zoo_models_exported_small_match_the_registry():
    pytest.importorskip("torch")
    from edgecnn import registry
    from edgecnn.profile import profile

    with Workspace() as ws:
        card = registry.get_card("simplecnn")  # its card's default input is small (28 px)
        path = ws.onnx(Target("simplecnn", "zoo", "simplecnn", None, card))
        assert graph_cost(path)["macs"] == card.macs
        t = Target("mobilenetv2", "zoo", "mobilenetv2", None, registry.get_card("mobilenetv2"))
        path = ws.onnx(t, size=(64, 64))
        expected = profile(registry.build("mobilenetv2", input_size=64).eval(), (3, 64, 64), "mobilenetv2").macs
        assert graph_cost(path, (64, 64))["macs"] == expected
        assert ws.cost(t, path, (64, 64)) == {"params": t.card.params, "macs": expected, "cost_source": "graph"}
