"""A new user's first ten minutes (issue 11): published weights end to end, and every rough edge found
by trying the documented commands, each pinned by a test. Downloads come from a local HTTP server."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from typer.testing import CliRunner

from edgecnn import contract as contract_mod
from edgecnn import hub, registry
from edgecnn.cli.main import app
from edgecnn.quantize import _agreement, graph_facts, why_not_faster
from edgecnn.registry import Pretrained
from tests import onnx_models
from tests.conftest import ROOT, run_cli
from tests.http_server import closed_port, serve

TABBY = 281  # torchvision's ImageNet index of "tabby"


@pytest.fixture(autouse=True)
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "edgecnn-home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("EDGECNN_WEIGHTS_MIRROR", raising=False)


@pytest.fixture
def photo(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "cat.jpg"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(path)
    return path


def _cat_checkpoint(folder: Path, stem: str = "mobilenet_v2") -> tuple[Path, str]:
    """A mobilenetv2 state dict whose head says 'tabby' for every image, saved under a torchvision-style
    name carrying its own SHA-256 prefix (as torchvision's files do)."""
    torch.manual_seed(0)
    state = registry.build("mobilenetv2").state_dict()
    state["classifier.1.weight"].zero_()
    state["classifier.1.bias"].zero_()
    state["classifier.1.bias"][TABBY] = 20.0
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = tmp.rename(folder / f"{stem}-{prefix}.pth")
    return path, prefix


@pytest.fixture
def published(tmp_path, monkeypatch):
    """mobilenetv2's card pointing at a checkpoint served from 127.0.0.1 (resize 232 / crop 224, as V2)."""
    served_dir = tmp_path / "served"
    served_dir.mkdir()
    path, _ = _cat_checkpoint(served_dir)
    with serve() as server:
        server.files["/" + path.name] = path.read_bytes()
        p = Pretrained("imagenet1k_v2", f"{server.base}/{path.name}", crop=224, resize=232, top1=72.154, top5=90.822)
        card = registry.REGISTRY["mobilenetv2"]
        monkeypatch.setitem(registry.REGISTRY, "mobilenetv2", dataclasses.replace(card, pretrained=(p,)))
        yield server, p, path


def test_export_imagenet_weights_then_infer_reads_a_label(cli, published, photo, tmp_path):
    server, p, _ = published
    out = tmp_path / "m2.onnx"
    r = cli("export", "mobilenetv2", "--weights", "imagenet", "--batch", "1", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "RANDOM-INIT" not in r.stderr and server.hits == ["/" + p.filename]
    assert f"weights: torchvision mobilenetv2 IMAGENET1K_V2, ImageNet top-1 72.15% ({hub.home()}" in r.stdout
    assert "preprocess: resize 232, center crop 224x224, bilinear; labels: 1,000 (tench, goldfish, ...)" in r.stdout
    c = contract_mod.read(str(out))
    assert c.labels == hub.imagenet_labels() and c.labels[TABBY] == "tabby"
    assert (c.preprocess.resize_size, c.preprocess.height, c.preprocess.interpolation) == (232, 224, "bilinear")
    assert c.weights["url"] == p.url and c.weights["sha256"].startswith(p.sha256_prefix)
    assert len(c.weights["sha256"]) == 64 and c.metrics["imagenet1k_top1"] == 72.154

    r = cli("infer", str(photo), "--model", str(out), "--topk", "1")
    assert r.exit_code == 0 and "random-init" not in r.stderr
    assert r.stdout.splitlines()[3].split()[:3] == ["1", str(TABBY), "tabby"]
    # the device side, torch blocked, reads the same label from the file
    r = run_cli("infer", str(photo), "--model", str(out), "--topk", "1", "--format", "jsonl", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predictions"][0]["label"] == "tabby"

    # a second export finds the file in the cache: no second download
    r = cli("export", "mobilenetv2", "--weights", "imagenet", "--batch", "1", "--no-check", "--out", str(out))
    assert r.exit_code == 0 and server.hits == ["/" + p.filename]


def test_a_torchvision_file_given_by_hand_gets_labels_and_transform(cli, published, tmp_path):
    _, p, path = published
    out = tmp_path / "m2.onnx"
    r = cli("export", "mobilenetv2", "--weights", str(path), "--input-size", "64", "--no-check", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    c = contract_mod.read(str(out))
    assert len(c.labels) == 1000 and c.weights["path"] == str(path) and c.preprocess.height == 64
    # the same name with other bytes (a truncated copy) is refused before loading
    bad = tmp_path / "other" / path.name
    bad.parent.mkdir()
    bad.write_bytes(path.read_bytes()[:-100])
    r = cli("export", "mobilenetv2", "--weights", str(bad), "--out", str(tmp_path / "x.onnx"))
    assert r.exit_code == 1 and not (tmp_path / "x.onnx").exists()
    assert r.stderr == (f"Error: {bad}: its SHA-256 does not start with {p.sha256_prefix} (the hash in its name): "
                        "a truncated or different file; download it again\n")


def test_offline_export_is_one_line_naming_url_and_file(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_WEIGHTS_MIRROR", f"http://127.0.0.1:{closed_port()}/models")
    out = tmp_path / "r.onnx"
    r = cli("export", "resnet18", "--weights", "imagenet", "--out", str(out))
    assert r.exit_code == 1 and not out.exists()
    url = re.search(r"could not download (\S+) \(", r.stderr).group(1)
    assert url.endswith("/models/resnet18-f37072fd.pth")
    assert r.stderr.count("\n") == 1 and "--weights resnet18-f37072fd.pth" in r.stderr
    assert not any((hub.home() / "checkpoints").iterdir())


@pytest.mark.slow
def test_train_init_imagenet_uses_the_published_weights(cli, published, tmp_path):
    server, p, _ = published
    r = cli("train", "mobilenetv2", "--data", "shapes:32", "--init", "imagenet", "--epochs", "1", "--input-size",
            "32", "--batch-size", "16", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.stderr
    assert server.hits == ["/" + p.filename]
    assert f"init: weights from {hub.home() / 'checkpoints' / p.filename}" in r.stdout
    assert "init: head classifier.1 replaced: 1000 -> 4 classes (fresh init)" in r.stdout


# ---- broken today ----------------------------------------------------------------------------------

def _calib(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / cls / f"{i}.png")
    return folder


def test_export_int8_from_the_cli_prints_both_gates(cli, tmp_path):
    out = tmp_path / "l.int8.onnx"
    r = cli("export", "lenet5", "--precision", "int8", "--calib", str(_calib(tmp_path / "calib")), "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "parity gate (fp32, onnxruntime CPU vs PyTorch): PASSED" in r.stdout
    assert "INT8 gate (top-1 agreement >= 90%): not judged (random-init weights)" in r.stdout
    assert contract_mod.read(str(out)).precision == "int8"


@pytest.mark.parametrize("args", [
    ("export", "lenet5", "--input-size", "0"), ("export", "lenet5", "--num-classes", "0"),
    ("export", "lenet5", "--in-channels", "0"), ("export", "lenet5", "--in-channels", "2"),
    ("export", "lenet5", "--input-size", "32x"),
    ("summary", "lenet5", "--input-size", "0"), ("summary", "lenet5", "--num-classes", "0"),
    ("summary", "lenet5", "--in-channels", "0"),
    ("train", "lenet5", "--data", "shapes", "--input-size", "0"),
    ("demo", "--input-size", "0"), ("demo", "--epochs", "0"),
])
def test_zero_and_bad_sizes_are_usage_errors(cli, tmp_path, args):
    r = cli(*args, *(("--out", str(tmp_path / "o.onnx")) if args[0] == "export" else
                     ("--out", str(tmp_path / "o")) if args[0] in ("train", "demo") else ()))
    assert r.exit_code == 2, r.stdout + r.stderr
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1
    assert r.stdout == ""
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "o").exists()


def test_one_size_parser_across_commands(cli, tmp_path):
    msg = "--input-size takes S, HxW or H,W with positive integers, got '0x32'"
    for args in (("export", "mobilenetv2"), ("summary", "mobilenetv2")):
        assert cli(*args, "--input-size", "0x32").stderr == f"Error: {msg}\n"
    r = cli("export", "mobilenetv2", "--input-size", "40x56", "--batch", "1", "--out", str(tmp_path / "m.onnx"))
    assert r.exit_code == 0, r.stderr
    pre = contract_mod.read(str(tmp_path / "m.onnx")).preprocess
    assert (pre.height, pre.width) == (40, 56)
    assert "1  40x56" in r.stdout  # the gate ran at that size
    assert "input 3x40x56" in cli("summary", "mobilenetv2", "--input-size", "40,56").stdout


def test_demo_checks_every_option_before_any_work(cli, tmp_path):
    for args, code in ((("--input-size", "0"), 2), (("--zoo", "resnet"), 1), (("--model", "alexnet"), 1)):
        r = cli("demo", *args, "--out", str(tmp_path / "d"))
        assert r.exit_code == code and r.stdout == "", args
        assert not (tmp_path / "d").exists()
    assert "the feature map vanishes" in cli("demo", "--model", "alexnet", "--out", str(tmp_path / "d")).stderr


class _Session:
    """Stands in for an onnxruntime session that returns fixed logits."""

    def __init__(self, logits):
        self.logits, self.i = logits, 0

    def get_inputs(self):
        return [type("I", (), {"name": "input"})()]

    def run(self, _, feed):
        self.i += 1
        return [self.logits[self.i - 1:self.i]]


def test_agreement_on_tiny_logits_and_a_constant_answer():
    rng = np.random.default_rng(0)
    a = (rng.normal(0, 1, (6, 10)) * 1e-9).astype(np.float32)  # a random-init net's vanishing logits
    a[:, 3] += 5e-9  # the same class wins for every image
    b = a * 1.01
    r = _agreement(_Session(a), _Session(b), [np.zeros(1)] * 6, [None] * 6, None)
    assert r["cosine_mean"] > 0.999  # proportional logits: cosine 1, whatever their size
    assert r["top1_agreement"] == 1.0 and r["fp32_classes"] == 1


def _graph(depthwise: bool, se: bool):
    """input (1, 4, 8, 8) -> conv (depthwise or dense) [-> SE gate] -> GAP -> Flatten -> Gemm."""
    c = 4
    w = numpy_helper.from_array(np.ones((c, 1 if depthwise else c, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c1"], group=c if depthwise else 1, pads=[1, 1, 1, 1])]
    inits = [w]
    last = "c1"
    if se:
        inits.append(numpy_helper.from_array(np.ones((c, c, 1, 1), np.float32), "w_se"))
        nodes += [helper.make_node("GlobalAveragePool", ["c1"], ["sq"]),
                  helper.make_node("Conv", ["sq", "w_se"], ["ex"]),
                  helper.make_node("Sigmoid", ["ex"], ["gate"]),
                  helper.make_node("Mul", ["c1", "gate"], ["scaled"])]
        last = "scaled"
    inits.append(numpy_helper.from_array(np.ones((c, 3), np.float32), "fc"))
    nodes += [helper.make_node("GlobalAveragePool", [last], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
              helper.make_node("Gemm", ["f", "fc"], ["logits"])]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits))


def test_int8_explanation_comes_from_the_measured_graph():
    vnni = {"cpu": "x86_64", "vnni": True}
    dense = graph_facts(_graph(False, False), _graph(False, False))
    assert (dense["depthwise_convs"], dense["se_gates"]) == (0, 0)
    text = why_not_faster(dense, {}, vnni)
    assert "memory-bound" not in text and "squeeze-excite" not in text  # resnet-like: nothing of the kind to blame
    assert "no depthwise convolutions or SE gates" in text
    mobile = graph_facts(_graph(True, True), _graph(True, True))
    assert (mobile["depthwise_convs"], mobile["se_gates"]) == (1, 1)
    text = why_not_faster(mobile, {"HardSigmoid": 2}, {"cpu": "x86_64", "vnni": False})
    assert text == ("ops left in float: HardSigmoid x2; 1 depthwise convolutions (memory-bound: few MACs per byte "
                    "moved); 1 squeeze-excite gates (tiny tensors, per-call overhead); no VNNI on this CPU "
                    "(u8s8 dot products without vpdpbusd)")


def test_debug_works_after_the_subcommand():
    runner = CliRunner()
    r = runner.invoke(app, ["summary", "nope", "--debug"])
    assert isinstance(r.exception, registry.UnknownModelError)  # the traceback is let through
    r = runner.invoke(app, ["summary", "nope"])
    assert r.exit_code == 1 and not isinstance(r.exception, registry.UnknownModelError)


def test_non_checkpoint_weights_name_what_the_file_is(cli, photo, tmp_path):
    r = cli("export", "lenet5", "--weights", str(photo), "--out", str(tmp_path / "x.onnx"))
    assert r.exit_code == 1
    assert r.stderr == (f"Error: {photo}: not a readable checkpoint (not a file written by torch.save: it starts "
                        "with bytes ff d8 ff e0); pass a .pt/.pth checkpoint or state dict\n")


def test_a_family_name_suggests_every_member(cli):
    r = cli("export", "resnet")
    assert r.exit_code == 1
    assert r.stderr == ("Error: unknown model 'resnet'; did you mean 'resnet18', 'resnet34', 'resnet50' or "
                        "'se_resnet18'?\n")


def test_a_run_where_every_image_failed_reports_no_speed(cli, tmp_path):
    model = onnx_models.classifier(tmp_path / "colors.onnx")
    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "a.jpg").write_text("not an image")
    r = cli("infer", str(bad), "--model", str(model))
    assert r.exit_code == 1
    assert "images/s" not in r.stderr and "1 image: 0 ok, 1 failed in" in r.stderr
    doc = json.loads(cli("infer", str(bad), "--model", str(model), "--format", "json").stdout)
    assert doc["summary"]["images_per_s"] is None


def test_help_shows_plain_metavars(cli):
    commands = [c.name for c in __import__("typer").main.get_command(app).commands.values()]
    assert {"export", "infer", "quantize", "demo"} <= set(commands)
    for name in commands:
        text = cli(name, "--help").stdout
        assert not re.search(r"<(str|int|float|bool|path|list\[\w+\])>|\{[a-z_]+\}", text), (name, text)
    assert "Usage: edgecnn export [OPTIONS] MODEL" in cli("export", "--help").stdout
    assert "--input-size TEXT" in cli("export", "--help").stdout
    assert "PATHS..." in cli("infer", "--help").stdout


def test_nms_bench_times_a_file_at_its_own_size(tmp_path):
    model = onnx_models.classifier(tmp_path / "cls224.onnx", size=224)
    out = tmp_path / "nms.md"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "nms_bench.py"), "--model", str(model),
                        "--rounds", "1", "--block", "1", "--out", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    report = out.read_text()
    assert "| inference: cls224 224x224, batch 1 |" in report
    row = next(line for line in report.splitlines() if line.startswith("| nms 1,000 boxes, no cap |"))
    kept = int(re.search(r"\| ([\d,]+) of 1,000 kept \|", row).group(1).replace(",", ""))
    assert 25 <= kept < 1000  # 25 crowds of boxes: NMS keeps at least one per crowd, far fewer than all
    assert "ISA flags" in report


def test_benchmark_results_go_under_the_host_tag():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import host
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from edgecnn.bench.environment import device_tag

    assert host.results_dir() == ROOT / "benchmarks" / "results" / device_tag()
    for script in ("export_int8.py", "nms_bench.py", "train_digits.py"):
        assert "cpu-2core" not in (ROOT / "benchmarks" / script).read_text()
