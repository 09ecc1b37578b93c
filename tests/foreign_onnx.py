"""ONNX files made the way other tools make them (not by edgecnn's exporter), for the commands that must
take any file a user brings: opset 11/12 graphs, weights held in Constant nodes (old torch and
PaddlePaddle exports), dynamic height/width, a batch dim stored as -1, external data
(``model.onnx`` + ``model.onnx.data``). None carries an edgecnn contract.

``constant_weights_cnn`` needs only onnx; ``torch_cnn`` needs torch (legacy or dynamo exporter).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 4
# The CNN below counted by hand (what edgecnn's counter must find): conv 3->8 3x3 (+bias), conv 8->16 3x3 stride
# 2 (+bias), Gemm 16->4 (+bias); Clip bounds and Squeeze axes are not parameters. torch_cnn's BatchNorm folds
# into conv 1 at export, so its file counts the same.
CNN_PARAMS = 8 * 3 * 9 + 8 + 16 * 8 * 9 + 16 + CLASSES * 16 + CLASSES


def cnn_macs(h: int, w: int) -> int:
    """MACs per image by hand: each conv output element is a (C_in x 3 x 3) dot product; conv 2 halves H and W
    (pad 1, rounding up); the Gemm is 16 x 4."""
    return 8 * h * w * 27 + 16 * ((h + 1) // 2) * ((w + 1) // 2) * 72 + 16 * CLASSES


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w1": rng.normal(0, 0.4, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
            "w2": rng.normal(0, 0.2, (16, 8, 3, 3)), "b2": rng.normal(0, 0.1, 16),
            "wfc": rng.normal(0, 0.5, (CLASSES, 16)), "bfc": rng.normal(0, 0.1, CLASSES)}


def constant_weights_cnn(path: str | Path, *, opset: int = 11, batch: int | str = "N",
                         size: int | None = None, external: bool = False) -> Path:
    """Conv-Relu-Conv(stride 2)-Clip-GlobalAveragePool-Squeeze-Gemm, input ``(batch, 3, H, W)`` -> logits
    ``(batch, 4)``, every weight and bias a Constant node (none an initializer). ``size`` None: H and W
    are symbols; ``batch`` -1 stores the batch as -1, as some converters do. Squeeze takes its axes as an
    attribute and Clip its bounds as inputs: the opset-11 forms the version converter must rewrite."""
    w = _weights()
    nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v.astype(np.float32), k))
             for k, v in w.items()]
    nodes += [helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.float32(0), "lo")),
              helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(np.float32(6), "hi")),
              helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c1"], ["r1"]),
              helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
              helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
              helper.make_node("GlobalAveragePool", ["r2"], ["g"])]
    if opset < 13:
        nodes.append(helper.make_node("Squeeze", ["g"], ["f"], axes=[2, 3]))
    else:
        nodes += [helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([2, 3]), "a")),
                  helper.make_node("Squeeze", ["g", "axes"], ["f"])]
    nodes.append(helper.make_node("Gemm", ["f", "wfc", "bfc"], ["logits"], transB=1))
    hw = [size, size] if size else ["H", "W"]
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                               [batch, 3, *hw])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, CLASSES])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="foreign")
    model.ir_version = 6 if opset < 13 else 7
    onnx.checker.check_model(model)
    return _save(model, path, external)


def torch_cnn(path: str | Path, *, opset: int | None = 11, dynamo: bool = False, dynamic_size: bool = True,
              external: bool = False) -> Path:
    """A tiny Conv-BN-ReLU / Conv-ReLU6 / mean / Linear classifier (4 classes) exported by
    ``torch.onnx.export``, the legacy (TorchScript) or the dynamo exporter, at ``opset`` (None: the
    exporter's default). Dynamo writes ``.onnx.data`` beside the file as torch's default does;
    ``external`` moves a legacy export's weights there too."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.conv2, self.fc = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.Linear(16, CLASSES)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv1(x)))
            return self.fc(torch.nn.functional.relu6(self.conv2(x)).mean((2, 3)))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        net.bn.running_mean.uniform_(-0.2, 0.2)
        net.bn.running_var.uniform_(0.5, 1.5)
    net.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.randn(1, 3, 32, 32)
    kw = {} if opset is None else {"opset_version": opset}
    if dynamo:
        dims = {"x": {0: torch.export.Dim("N", max=64), **({2: torch.export.Dim("H", min=16, max=512),
                                                             3: torch.export.Dim("W", min=16, max=512)}
                                                           if dynamic_size else {})}}
        torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["input"], output_names=["logits"],
                          dynamic_shapes=dims, external_data=True, verbose=False, **kw)
        return path
    axes = {"input": {0: "N", **({2: "H", 3: "W"} if dynamic_size else {})}, "logits": {0: "N"}}
    torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes=axes, **kw)
    return _save(onnx.load(str(path)), path, external) if external else path


def _save(model, path: str | Path, external: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path
