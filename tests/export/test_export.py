"""Export -> onnxruntime parity, the contract inside the file, weights loading, atomic output."""

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgecnn import registry
from edgecnn.contract import METADATA_KEY, Contract, read
from edgecnn.export import parity
from edgecnn.export.exporter import ExportOptions, export
from edgecnn.train.checkpoint import CheckpointError
from edgecnn.weights import WeightsError
from tests.models.tv_weights import TV_NUM_CLASSES, fixed_input, state_dict_for

SMALL = {"simplecnn": 28, "lenet5": 32, "alexnet": 64}
CLASSIFIERS = [n for n in registry.names() if registry.get_card(n).task == "classify"]
# Half a gigabyte of classifier weights whatever the input: minutes of protobuf work, so marked slow.
HEAVY = {"vgg11", "vgg11_bn", "vgg16", "vgg16_bn"}


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _own_parity(model, path, shapes, rel, seed=7):
    """The test's own comparison (not the gate's report): PyTorch and onnxruntime on fresh inputs of
    each (N, C, H, W) shape; max-abs within ``rel`` of the output scale, same top-1 except where the
    reference's top two are closer than the tolerated error (a tie). Returns the worst relative error."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy().astype(np.float64)
        got = _run(path, x).astype(np.float64)
        assert got.shape == ref.shape, shape
        scale = np.abs(ref).max()
        err = np.abs(got - ref).max() / scale
        assert err <= rel, f"{shape}: max-abs is {err:.3g} of the output scale"
        top2 = np.sort(ref, 1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * rel * scale
        assert (got.argmax(1) == ref.argmax(1))[clear].all(), shape
        worst = max(worst, err)
    return worst


def _weights(name, tmp_path, size, **kw):
    """A seeded model and its state dict on disk: the test knows the exact function the file must compute."""
    torch.manual_seed(1)
    model = registry.build(name, num_classes=5, input_size=size, **kw).eval()
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n
                                  for n in CLASSIFIERS])
def test_every_zoo_model_computes_what_pytorch_computes(name, tmp_path):
    size = SMALL.get(name, 32)
    res = export(ExportOptions(model=name, input_size=size, num_classes=5, seed=3, out=str(tmp_path / "m.onnx")))
    torch.manual_seed(3)  # random-init export with --seed 3: the same model, built here
    model = registry.build(name, num_classes=5, input_size=size).eval()
    c = res.contract.preprocess.channels
    _own_parity(model, res.path, [(1, c, size, size), (3, c, size, size)], rel=1e-4)
    assert res.contract.weights == "random-init" and any("RANDOM-INIT" in w for w in res.warnings)
    assert [b["batch"] for b in res.contract.parity["batches"]] == [1, 2, 5]
    assert sorted(tmp_path.iterdir()) == [tmp_path / "m.onnx"]  # no temporary left behind
    if name == "alexnet":  # adaptive pooling 1x1 -> 6x6 is beyond the TorchScript exporter
        assert any("used the dynamo exporter" in w for w in res.warnings)


def test_weights_provenance_is_the_files_sha256(tmp_path):
    model, w = _weights("lenet5", tmp_path, 32)
    res = export(ExportOptions(model="lenet5", weights=str(w), num_classes=5, out=str(tmp_path / "out" / "m.onnx")))
    assert res.contract.weights == {"path": str(w), "sha256": hashlib.sha256(w.read_bytes()).hexdigest()}
    assert read(res.path).weights == res.contract.weights  # and so says the file
    _own_parity(model, res.path, [(2, 1, 32, 32)], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv2", "resnet18", "efficientnet_b0"])
def test_full_size_export(name, tmp_path):
    res = export(ExportOptions(model=name, out=str(tmp_path / f"{name}.onnx")))
    assert res.contract.parity["passed"]
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    assert _run(res.path, x).shape == (2, 1000)


def test_contract_is_in_metadata_props_and_readable_without_torch_or_onnx(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"class{i}" for i in range(4)) + "\n")
    res = export(ExportOptions(model="lenet5", num_classes=4, labels=str(labels), out=str(tmp_path / "l.onnx")))
    props = {p.key: p.value for p in onnx.load(res.path).metadata_props}
    d = json.loads(props[METADATA_KEY])
    assert d["schema"] == "edgecnn.contract/1" and d["task"] == "classify" and d["model"] == "lenet5"
    assert d["labels"] == ["class0", "class1", "class2", "class3"]
    assert d["preprocess"]["channels"] == 1 and d["preprocess"]["color"] == "L"
    assert d["opset"] == 18 and {"edgecnn", "torch", "onnx", "onnxruntime"} <= set(d["versions"])
    assert read(res.path) == Contract.from_dict(d)  # the onnxruntime-only reader agrees


def test_torchvision_checkpoint_exports_to_the_same_function(tmp_path):
    """A torchvision-layout resnet18 state dict -> ONNX -> same logits as torchvision recorded."""
    fixture = json.loads((__import__("pathlib").Path(__file__).parents[1] / "models" / "fixtures" /
                          "torchvision_layout.json").read_text())
    model = registry.build("resnet18", num_classes=TV_NUM_CLASSES)
    sd = state_dict_for([(k, list(v.shape)) for k, v in model.state_dict().items()])
    ckpt = tmp_path / "resnet18_tv.pth"
    torch.save(sd, ckpt)
    res = export(ExportOptions(model="resnet18", weights=str(ckpt), num_classes=TV_NUM_CLASSES, input_size=64,
                               out=str(tmp_path / "r.onnx")))
    assert res.contract.weights["path"] == str(ckpt) and len(res.contract.weights["sha256"]) == 64
    got = _run(res.path, fixed_input().numpy())[0]
    ref = np.array(fixture["models"]["resnet18"]["logits_f64"])  # torchvision in float64
    assert fixture["models"]["resnet18"]["fp32_dev"] < 1e-6  # FP32 rounding stays far inside 1e-4 here
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_head_mismatch_is_one_line_with_the_fix(tmp_path):
    model = registry.build("mobilenetv2", num_classes=10)
    ckpt = tmp_path / "m.pth"
    torch.save(model.state_dict(), ckpt)
    with pytest.raises(WeightsError) as e:
        export(ExportOptions(model="mobilenetv2", weights=str(ckpt), input_size=32, out=str(tmp_path / "x.onnx")))
    msg = str(e.value)
    assert "\n" not in msg
    assert "shape mismatch at 'classifier.1.weight': file [10, 1280] vs model [1000, 1280]" in msg
    assert "pass --num-classes 10, or --replace-head" in msg
    assert not (tmp_path / "x.onnx").exists()
    res = export(ExportOptions(model="mobilenetv2", weights=str(ckpt), input_size=32, replace_head=True,
                               out=str(tmp_path / "x.onnx")))
    assert any("head replaced" in w for w in res.warnings)


def test_wrong_architecture_names_keys(tmp_path):
    ckpt = tmp_path / "r.pth"
    torch.save(registry.build("resnet18").state_dict(), ckpt)
    with pytest.raises(WeightsError, match=r"missing keys 'features\.0\.0\.weight'.*unexpected keys 'conv1\.weight'"):
        export(ExportOptions(model="mobilenetv2", weights=str(ckpt), input_size=32, out=str(tmp_path / "x.onnx")))


def test_pickled_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": object.__new__(ExportOptions)}, evil)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        export(ExportOptions(model="lenet5", weights=str(evil), out=str(tmp_path / "x.onnx")))


def test_failed_gate_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "lenet5.onnx"
    out.write_bytes(b"previous export")
    monkeypatch.setitem(parity.TOLERANCES, "fp32", {"rel": -1.0, "cosine": 2.0, "top1": 1.0})
    with pytest.raises(parity.ParityError, match="parity gate failed, no file written: fp32 batch 1"):
        export(ExportOptions(model="lenet5", out=str(out)))
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5.onnx"]


def test_no_check_is_recorded(tmp_path):
    res = export(ExportOptions(model="simplecnn", check=False, out=str(tmp_path / "s.onnx")))
    assert res.contract.parity == {"skipped": True}


def test_static_batch(tmp_path):
    res = export(ExportOptions(model="simplecnn", batch=3, out=str(tmp_path / "s.onnx")))
    assert [b["batch"] for b in res.contract.parity["batches"]] == [3]
    shape = onnx.load(res.path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in shape] == [3, 1, 28, 28]


def test_fp16_is_half_the_size_and_computes_what_pytorch_computes(tmp_path):
    model, w = _weights("mobilenetv2", tmp_path, 32)
    opts = {"model": "mobilenetv2", "weights": str(w), "input_size": 32, "num_classes": 5}
    fp32 = export(ExportOptions(**opts, out=str(tmp_path / "a.onnx")))
    fp16 = export(ExportOptions(**opts, precision="fp16", out=str(tmp_path / "b.onnx")))
    assert fp16.contract.precision == "fp16"
    assert fp16.size_bytes < 0.6 * fp32.size_bytes
    sess = ort.InferenceSession(str(fp16.path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"  # io kept float32
    init = onnx.load(fp16.path).graph.initializer
    assert {t.data_type for t in init if len(t.dims) == 4} == {onnx.TensorProto.FLOAT16}  # conv weights halved
    err = _own_parity(model, fp16.path, [(1, 3, 32, 32), (4, 3, 32, 32)], rel=1e-2)
    assert err > 1e-6  # it really is float16 weights, not the float32 file again


@pytest.mark.parametrize("name", ["lenet5", "mobilenetv2"])
def test_dynamo_exporter_computes_what_pytorch_computes(name, tmp_path):
    size = SMALL.get(name, 32)
    model, w = _weights(name, tmp_path, size)
    res = export(ExportOptions(model=name, weights=str(w), input_size=size, num_classes=5, exporter="dynamo",
                               out=str(tmp_path / "d.onnx")))
    c = res.contract.preprocess.channels
    _own_parity(model, res.path, [(1, c, size, size), (3, c, size, size)], rel=1e-4)


def test_compare_counts_ties_apart():
    ref = np.array([[1.0, 1.0 - 1e-7, 0.0], [3.0, 0.0, 0.0]])
    got = np.array([[1.0 - 1e-7, 1.0, 0.0], [0.0, 3.0, 0.0]])  # row 0 a tie, row 1 a real flip
    b = parity.compare(ref, got, 2, tie_rel=1e-4)
    assert b.ties == 1 and b.top1 == 0.0  # the one counted sample flipped
    b = parity.compare(ref[:1], got[:1], 1, tie_rel=1e-4)
    assert b.ties == 1 and b.top1 == 1.0


def test_checkpoint_preprocessing_survives_a_new_input_size(tmp_path):
    """A trained letterbox transform stays letterbox when exported at another size."""
    from edgecnn.contract import Preprocess

    model = registry.build("mobilenetv2", num_classes=3, input_size=64)
    pre = Preprocess(64, 64, resize="letterbox", mean=(0.5,) * 3, std=(0.25,) * 3)
    contract = Contract("classify", "mobilenetv2", pre, labels=["a", "b", "c"])
    ckpt = {"format": "edgecnn.checkpoint/1", "model": "mobilenetv2", "epoch": 1,
            "config": {"num_classes": 3, "in_channels": 3, "input_size": 64},
            "state_dict": model.state_dict(), "contract": contract.to_dict()}
    torch.save(ckpt, tmp_path / "c.pt")
    res = export(ExportOptions(model=str(tmp_path / "c.pt"), input_size=32, out=str(tmp_path / "m.onnx")))
    p = res.contract.preprocess
    assert (p.resize, p.height, p.mean, p.std) == ("letterbox", 32, (0.5,) * 3, (0.25,) * 3)
    assert res.contract.labels == ["a", "b", "c"]


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet18"])
def test_dynamic_size_is_gated_at_other_sizes(name, tmp_path):
    model, w = _weights(name, tmp_path, 64)
    res = export(ExportOptions(model=name, weights=str(w), input_size=64, num_classes=5, dynamic_size=True,
                               out=str(tmp_path / "d.onnx")))
    cases = [(b["batch"], b["height"], b["width"]) for b in res.contract.parity["batches"]]
    assert cases == [(1, 64, 64), (2, 64, 64), (5, 64, 64), (1, 32, 32), (5, 32, 96)]
    assert res.contract.dynamic_size
    dims = onnx.load(res.path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"]
    _own_parity(model, res.path, [(1, 3, 80, 48), (2, 3, 40, 72)], rel=1e-4)  # sizes the gate did not try


def test_dynamic_size_refused_where_the_head_fixes_it(tmp_path):
    from edgecnn.errors import UsageError

    with pytest.raises(UsageError, match="--dynamic-size: lenet5's classifier width follows the input size"):
        export(ExportOptions(model="lenet5", dynamic_size=True, out=str(tmp_path / "x.onnx")))
