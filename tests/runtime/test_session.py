"""Engine: providers, the contract or a graph-derived one, overrides, fixed batch sizes, bad files."""

import numpy as np
import pytest

from edgecnn.contract import IMAGENET_MEAN
from edgecnn.errors import UnknownModelError, UsageError
from edgecnn.runtime.session import Engine, EngineError, choose_providers, resolve_model
from tests import onnx_models

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_prefers_tensorrt_then_cuda_then_cpu():
    assert choose_providers("auto", ALL) == ALL
    assert choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ALL[1:]
    assert choose_providers("auto", ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("cuda", ALL) == ALL[1:]
    assert choose_providers("cpu", ALL) == ["CPUExecutionProvider"]


def test_unavailable_provider_lists_the_available_ones():
    with pytest.raises(EngineError) as e:
        choose_providers("cuda", ["AzureExecutionProvider", "CPUExecutionProvider"])
    assert str(e.value) == ("provider 'cuda' (CUDAExecutionProvider) is not available in this onnxruntime; "
                            "available: cpu")
    with pytest.raises(UsageError, match="unknown --provider 'gpu'; choose one of: auto, tensorrt, cuda, cpu"):
        choose_providers("gpu", ALL)


def test_engine_reads_the_contract_and_runs(tmp_path):
    eng = Engine(onnx_models.classifier(tmp_path / "c.onnx"), provider="cpu", threads=1, graph_opt="basic")
    assert not eng.from_graph and eng.task == "classify" and eng.contract.labels == onnx_models.COLOR_LABELS
    assert eng.providers == ["CPUExecutionProvider"] and eng.input_size == (32, 32) and eng.warnings == []
    out = eng.run(np.zeros((3, 3, 32, 32), np.float32))
    assert list(out) == ["logits"] and out["logits"].shape == (3, 4)
    assert eng.describe()["threads"] == 1 and eng.describe()["contract"] == "file"


def test_third_party_file_gets_a_graph_contract_with_a_warning(tmp_path):
    path = onnx_models.classifier(tmp_path / "other.onnx", contract=False, input_name="data", batch=1)
    eng = Engine(path)
    assert eng.from_graph and eng.input_name == "data" and eng.fixed_batch == 1
    pre = eng.contract.preprocess
    assert (pre.height, pre.width, pre.mean, pre.resize) == (32, 32, IMAGENET_MEAN, "resize_crop")
    assert eng.warnings == ["other.onnx has no edgecnn contract; assuming a classifier with ImageNet preprocessing "
                            "(resize 37 + center crop 32x32, mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]); "
                            "override with --size/--mean/--std/--labels, or write the right ones into the file once "
                            "with 'edgecnn contract'"]
    # a fixed batch of 1 is fed in chunks
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    out = eng.run(x)["logits"]
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[2], eng.run(x[2:])["logits"][0], rtol=1e-6)


def test_overrides_replace_preprocessing_and_labels(tmp_path):
    path = onnx_models.classifier(tmp_path / "other.onnx", contract=False, batch="N")
    eng = Engine(path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), labels=["a", "b", "c", "d"])
    assert eng.warnings == []
    assert eng.contract.preprocess.mean == (0.5, 0.5, 0.5) and eng.contract.labels == ["a", "b", "c", "d"]
    with pytest.raises(UsageError, match=r"takes height 32, but preprocessing gives 48; check --size"):
        Engine(path, size=(48, 48))
    with pytest.raises(UsageError, match="--mean has 2 values but --color RGB is 3 channels; give --mean with 3"):
        Engine(path, mean=(0.5, 0.5))


def test_size_override_recomputes_the_crop(tmp_path):
    path = onnx_models.classifier(tmp_path / "dyn.onnx", contract=False, size="S")
    with pytest.raises(UsageError, match=r"no edgecnn contract and a dynamic input size \(SxS\); give it with --size"):
        Engine(path)
    pre = Engine(path, size=(48, 64)).contract.preprocess
    assert (pre.height, pre.width, pre.resize_size) == (48, 64, 55)


def test_resolve_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EngineError) as e:
        resolve_model("mobilenetv2")
    assert str(e.value) == ("export/mobilenetv2.onnx not found; make it with: edgecnn export mobilenetv2 "
                            "--weights imagenet")
    with pytest.raises(UnknownModelError, match="did you mean 'mobilenetv2'"):
        resolve_model("mobilenet2")
    with pytest.raises(EngineError, match="model file 'x/y.onnx' not found"):
        resolve_model("x/y.onnx")
    onnx_models.classifier(tmp_path / "export" / "mobilenetv2.onnx")
    assert resolve_model("mobilenetv2").as_posix() == "export/mobilenetv2.onnx"


def test_bad_model_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(EngineError, match=r"bad.onnx: not a loadable ONNX model \("):
        Engine(bad)
    with pytest.raises(EngineError, match="model file .* not found"):
        Engine(tmp_path / "none.onnx")


def test_run_failure_is_an_engine_error(tmp_path):
    eng = Engine(onnx_models.classifier(tmp_path / "c.onnx"))
    with pytest.raises(EngineError, match=r"c.onnx: inference failed: "):
        eng.run(np.zeros((1, 3, 16, 16), np.float32))
