"""MACs, params, size and precision counted on ONNX graphs: hand-counted graphs the way other exporters write
them (Constant-node weights, dynamic H/W, a -1 batch, external data), INT8 against FP32, zoo models against the
registry and the PyTorch model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecnn.bench.graph_cost import count_macs, count_params, graph_cost, precision_of_graph
from edgecnn.bench.targets import Target, Workspace
from edgecnn.onnx_info import file_bytes, inspect_onnx
from tests import onnx_models
from tests.foreign_onnx import CNN_PARAMS, cnn_macs, constant_weights_cnn, torch_cnn


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


def test_constant_node_weights_and_dynamic_size(tmp_path):
    path = constant_weights_cnn(tmp_path / "c.onnx")  # opset 11, weights in Constant nodes, no initializer
    assert not onnx.load(path).graph.initializer
    cost = graph_cost(path, (32, 48))
    assert (cost["params"], cost["macs"], cost["macs_size"]) == (CNN_PARAMS, cnn_macs(32, 48), [32, 48])
    assert graph_cost(path, (21, 21))["macs"] == cnn_macs(21, 21)
    unknown = graph_cost(path)  # dynamic H/W, no contract: unknown, not a wrong count
    assert unknown["macs"] is None and unknown["params"] == CNN_PARAMS
    assert unknown["macs_error"].startswith("cannot count MACs: the shapes around Conv")


def test_a_minus_one_batch_counts_as_one_image(tmp_path):
    fixed = graph_cost(constant_weights_cnn(tmp_path / "b1.onnx", batch=1), (32, 32))["macs"]
    minus = graph_cost(constant_weights_cnn(tmp_path / "bm1.onnx", batch=-1), (32, 32))["macs"]
    assert minus == fixed == cnn_macs(32, 32) > 0
    m = _graph()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1  # -1 stored in the graph's input
    assert count_macs(m) == 8 * 16 * 16 * 27 + 8 * 8 * 8 * 9 + 80 + 50


def test_external_data_size_is_both_files(tmp_path):
    # the Constant nodes' values written to c.onnx.data (tensors over 64 bytes; the small shapes stay inline)
    path = tmp_path / "c.onnx"
    onnx.save(onnx.load(constant_weights_cnn(tmp_path / "inline.onnx")), path, save_as_external_data=True,
              location="c.onnx.data", size_threshold=64, convert_attribute=True)
    data = tmp_path / "c.onnx.data"
    assert data.stat().st_size >= 4 * (216 + 1152 + 64)  # the conv and Gemm weights moved out
    assert file_bytes(path) == path.stat().st_size + data.stat().st_size
    info = inspect_onnx(path, size=(32, 32))
    assert info["size_bytes"] == file_bytes(path) and [f["path"] for f in info["files"]] == [str(path), str(data)]
    assert (info["params"], info["macs"]) == (CNN_PARAMS, cnn_macs(32, 32))


@pytest.mark.parametrize("dynamo", [False, True])
def test_torch_exports_count_as_the_hand_built_graph(tmp_path, dynamo):
    """The same CNN exported by torch (legacy, opset 11, weights moved to .onnx.data; dynamo, its default
    .onnx.data): BatchNorm folded, the same parameters and MACs as the hand count."""
    pytest.importorskip("torch")
    path = torch_cnn(tmp_path / "t.onnx", dynamo=dynamo, opset=None if dynamo else 11, external=not dynamo)
    data = tmp_path / "t.onnx.data"
    info = inspect_onnx(path, size=(40, 24))
    assert (info["params"], info["macs"], info["size_bytes"]) == (
        CNN_PARAMS, cnn_macs(40, 24), path.stat().st_size + data.stat().st_size)


def test_int8_counts_each_weight_once(tmp_path):
    """The INT8 file's int8 weights and int32 biases count, their scales and zero points do not."""
    import numpy as np
    from PIL import Image

    from edgecnn.quantize import QuantizeOptions, quantize

    fp32 = onnx_models.classifier(tmp_path / "c.onnx", size=16)
    rng = np.random.default_rng(0)
    (tmp_path / "calib").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "calib" / f"{i}.png")
    int8 = tmp_path / "c.int8.onnx"
    quantize(QuantizeOptions(model=str(fp32), calib=str(tmp_path / "calib"), out=str(int8), samples=4, bench=False,
                             min_agreement=0.0))
    m8 = onnx.load(int8)
    assert any(n.op_type == "DequantizeLinear" for n in m8.graph.node)
    assert count_params(m8) == count_params(onnx.load(fp32)) == 3 * 4 + 4  # Gemm weights + bias
    assert (precision_of_graph(m8), precision_of_graph(onnx.load(fp32))) == ("int8", "fp32")


def test_identical_tensors_stored_once_count_per_layer():
    """Exporters store equal tensors once and alias them with Identity nodes (zero biases of a random-init
    model): each layer's alias counts, so the count does not depend on the weights' values."""
    m = _graph()
    shared = numpy_helper.from_array(np.zeros(8, np.float32), "zeros8")
    m.graph.initializer.append(shared)
    m.graph.node.insert(0, helper.make_node("Identity", ["zeros8"], ["b1"]))
    m.graph.node.insert(0, helper.make_node("Identity", ["zeros8"], ["b2"]))
    m.graph.node[2].input.append("b1")  # conv 1 bias
    m.graph.node[3].input.append("b2")  # depthwise bias
    assert count_params(m) == 216 + 72 + 80 + 10 + 50 + 8 + 8
    assert count_macs(m) == 8 * 16 * 16 * 27 + 8 * 8 * 8 * 9 + 80 + 50


def test_zoo_models_exported_small_match_the_registry():
    pytest.importorskip("torch")
    from edgecnn import registry
    from edgecnn.profile import onnx_params, profile

    with Workspace() as ws:
        card = registry.get_card("simplecnn")  # its card's default input is small (28 px)
        path = ws.onnx(Target("simplecnn", "zoo", "simplecnn", None, card))
        assert graph_cost(path)["macs"] == card.macs
        t = Target("mobilenetv2", "zoo", "mobilenetv2", None, registry.get_card("mobilenetv2"))
        path = ws.onnx(t, size=(64, 64))
        model = registry.build("mobilenetv2", input_size=64).eval()
        expected = profile(model, (3, 64, 64), "mobilenetv2").macs
        assert graph_cost(path, (64, 64))["macs"] == expected
        # the file's count (graph) and the PyTorch model's less what BN folding removes (torch) agree
        folded = onnx_params(model)
        assert folded.batchnorm > 0 and folded.pytorch == t.card.params
        cost = ws.cost(t, path, (64, 64))
        assert cost == {"params": folded.params, "macs": expected, "cost_source": "graph",
                        "file_bytes": path.stat().st_size, "pytorch_params": t.card.params,
                        "params_note": folded.note()}
        assert cost["params_note"].startswith(f"PyTorch model {t.card.params:,} = ONNX file {folded.params:,} + "
                                              f"{t.card.params - folded.params:,}: export folds BatchNorm")
