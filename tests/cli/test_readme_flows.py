"""README commands that no other test ran, run as the README shows them: in a fresh folder, with its
relative paths (data/shapes, models/..., export/...), on small data and short training. Which README
command each test runs is listed in tests/test_readme_commands.py."""

from __future__ import annotations

import json

import pytest
import torch

from edgecnn import registry
from tests import onnx_models


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "home"))  # bench --peak caches its figures there
    return tmp_path


def _ok(r):
    assert r.exit_code == 0, (r.stdout, r.stderr)
    return r


def test_training_section_flow(cli, here):
    # the README's "Training" section: data -> train -> export -> infer, then fine-tune the checkpoint
    r = _ok(cli("data", "shapes", "--out", "data/shapes", "--n", "40", "--size", "32"))
    assert "wrote 40 32x32 images (32 train / 8 val, ImageFolder)" in r.stdout
    r = _ok(cli("train", "simplecnn", "--data", "data/shapes", "--in-channels", "3", "--input-size", "32",
                "--epochs", "1", "--augment"))
    assert "saved: models/simplecnn-shapes/last.pt, best.pt, log.csv, log.json" in r.stdout
    r = _ok(cli("export", "models/simplecnn-shapes/best.pt", "--out", "export/shapes.onnx"))
    assert r.stdout.startswith("wrote export/shapes.onnx (")
    assert "parity gate (fp32, onnxruntime CPU vs PyTorch): PASSED" in r.stdout
    star = sorted((here / "data/shapes/val/star").iterdir())[0].relative_to(here)
    r = _ok(cli("infer", str(star), "--model", "export/shapes.onnx"))
    assert r.stdout.startswith(f"{star} (32x32): 4 predictions")
    _ok(cli("data", "shapes", "--out", "data/shapes-more", "--n", "40", "--size", "32", "--seed", "1"))
    r = _ok(cli("train", "models/simplecnn-shapes/best.pt", "--data", "data/shapes-more", "--freeze", "backbone",
                "--epochs", "1", "--lr", "0.01", "--out", "models/simplecnn-ft"))
    assert r.stdout.startswith("init: weights from models/simplecnn-shapes/best.pt")
    assert "freeze: backbone: 1,392 params frozen, BN of frozen stages in eval mode" in r.stdout


def test_resume_and_bad_input_of_the_training_section(cli, here):
    _ok(cli("data", "shapes", "--out", "data/shapes", "--n", "40", "--size", "32"))
    _ok(cli("train", "lenet5", "--data", "data/shapes", "--epochs", "1", "--augment"))
    r = _ok(cli("train", "lenet5", "--data", "data/shapes", "--epochs", "2", "--augment", "--resume"))
    assert "resume: models/lenet5-shapes/last.pt after epoch 1 of 2 (step 1)" in r.stdout
    # the README's "Bad input" lines, exactly
    r = cli("train", "lenet5", "--data", "data/shapes")
    assert (r.exit_code, r.stderr) == (1, "Error: models/lenet5-shapes already holds a run (last.pt); continue it "
                                          "with --resume, or pass --overwrite or another --out\n")
    (here / "photos/train/emu").mkdir(parents=True)
    (here / "photos/train/owl").mkdir(parents=True)
    (here / "photos/train/owl/a.png").write_bytes((here / "data/shapes/train/star").iterdir().__next__().read_bytes())
    r = cli("train", "lenet5", "--data", "photos/")
    assert r.exit_code == 1 and r.stderr == ("Error: class folder photos/train/emu has no images (.jpg, .jpeg, .png, "
                                             ".bmp, .gif, .webp, .tif, .tiff); add images or remove the folder\n")


@pytest.fixture
def tv_resnet18(here):
    """A torchvision-layout resnet18 state dict (random weights: the README's file is ImageNet's)."""
    torch.manual_seed(0)
    path = here / "resnet18.pth"
    torch.save(registry.build("resnet18").state_dict(), path)
    return path.name


def test_transfer_learning_strategies(cli, here, tv_resnet18):
    _ok(cli("data", "shapes", "--out", "flowers", "--n", "24", "--size", "32"))
    common = ["--input-size", "32", "--batch-size", "8", "--epochs", "1"]
    r = _ok(cli("train", "resnet18", "--data", "flowers/", "--init", tv_resnet18, "--freeze", "backbone", *common))
    assert "freeze: backbone" in r.stdout
    r = _ok(cli("train", "resnet18", "--data", "flowers/", "--init", tv_resnet18, "--freeze", "stages:2",
                "--in-channels", "1", *common, "--out", "models/xrays"))
    assert "model: resnet18, input 1x32x32" in r.stdout and "freeze: stages:2" in r.stdout
    r = _ok(cli("train", "resnet18", "--data", "flowers/", "--init", tv_resnet18, "--lr", "0.01",
                "--layer-lr-decay", "0.7", *common, "--out", "models/big"))
    assert "optimizer: sgd lr 0.01" in r.stdout


def test_detector_training_command(cli, here):
    r = _ok(cli("data", "shapes", "--task", "detect", "--out", "data/shapes-det", "--n", "20", "--size", "64"))
    assert "data/shapes-det" in r.stdout
    r = _ok(cli("train", "ssdlite_mobilenetv2", "--data", "data/shapes-det", "--input-size", "64", "--epochs", "1",
                "--batch-size", "16", "--optimizer", "adamw", "--lr", "0.002"))
    assert "optimizer: adamw lr 0.002 weight-decay 0.05" in r.stdout and "val mAP@.50" in r.stdout


def test_bench_commands_of_the_bench_section(cli, here):
    fast = ["--runs", "4", "--warmup", "1", "--out", "res"]
    (here / "photos").mkdir()
    from PIL import Image

    Image.linear_gradient("L").convert("RGB").resize((96, 64)).save(here / "photos/a.jpg")
    onnx_models.detector(here / "ssdlite.onnx")
    onnx_models.classifier(here / "model.onnx")
    r = _ok(cli("bench", "ssdlite.onnx", "--image", "photos/", *fast, "--format", "json"))
    row = json.loads(r.stdout)["rows"][0]
    assert row["status"] == "ok" and row["measure"] == "end_to_end" and row["stages_ms"], row
    r = _ok(cli("bench", "model.onnx", "--paced", "30", "--min-time", "0.3", "--warmup", "1", "--out", "res",
                "--format", "json"))
    row = json.loads(r.stdout)["rows"][0]
    assert row["paced_fps"] == 30 and row["status"] == "ok", row
    r = _ok(cli("bench", "lenet5", "simplecnn", "--precision", "fp32,int8", "--threads", "1,2", "--peak", *fast,
                "--format", "json"))
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 8 and all(row["status"] == "ok" for row in rows)
    r = _ok(cli("bench", "lenet5", "--runtime", "ort,torch,openvino", "--threads", "2", *fast, "--format", "json"))
    assert sorted(row["backend"] for row in json.loads(r.stdout)["rows"]) == ["openvino", "ort", "torch"]


def test_export_section_flow(cli, here):
    r = _ok(cli("export", "mobilenetv2", "--input-size", "64"))
    assert r.stderr.startswith("Warning: no --weights: exporting RANDOM-INIT weights for mobilenetv2")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("wrote export/mobilenetv2.onnx (") and lines[1] == \
        "parity gate (fp32, onnxruntime CPU vs PyTorch): PASSED"
    assert [line.split()[:2] for line in lines[4:7]] == [["1", "64x64"], ["2", "64x64"], ["5", "64x64"]]
    r = _ok(cli("inspect", "export/mobilenetv2.onnx"))
    assert "contract  edgecnn.contract/1: classify model 'mobilenetv2', fp32, weights random-init" in r.stdout


def test_random_init_lenet5_through_the_export_folder(cli, here):
    from PIL import Image

    _ok(cli("export", "lenet5", "--num-classes", "3"))
    (here / "photos").mkdir()
    Image.new("RGB", (64, 48), (220, 20, 20)).save(here / "photos/red.jpg")
    r = _ok(cli("infer", "photos/red.jpg", "--model", "lenet5", "--topk", "3"))
    assert r.stderr.startswith("Warning: export/lenet5.onnx holds random-init weights")
    lines = r.stdout.splitlines()
    assert lines[0] == "photos/red.jpg (64x48): 3 predictions"
    scores = [float(line.split()[-1]) for line in lines[3:6]]
    assert sorted(scores, reverse=True) == scores and abs(sum(scores) - 1) < 1e-3  # softmax over 3 classes


def test_graph_nms_export_of_random_weights(cli, here):
    # 91 classes like the README's: random weights score every box about 1/91, none passes conf 0.25, and
    # the gate says it checked the file's NMS on synthetic scores instead
    r = _ok(cli("export", "ssdlite_mobilenetv2", "--nms", "graph", "--input-size", "64"))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("wrote export/ssdlite_mobilenetv2.onnx (")
    assert lines[1].startswith("parity gate (fp32, onnxruntime CPU vs PyTorch, boxes/scores then final detections "
                               "with NMS on the graph: conf 0.25, IoU 0.45, max 100): PASSED")
    rows = [line.split() for line in lines[4:10]]
    assert all(row[5].endswith("*") and int(row[5][:-1]) > 0 and row[6] == "1.000" for row in rows), rows
    assert lines[10] == ("* no detection of the model passed conf 0.25 (random weights score every box about the "
                         "same): its NMS and final boxes were checked on the model's boxes with synthetic scores "
                         "instead")
    r = _ok(cli("inspect", "export/ssdlite_mobilenetv2.onnx"))
    assert "NMS on the host+graph; on synthetic scores: none of the model's passed)" in r.stdout


def test_bring_your_own_onnx_classifier_step_by_step(cli, here):
    # "Bring your own ONNX file": a contract-less colour classifier (dynamic H and W, external data) whose
    # class is the dominant channel of what it is fed, so the colour order and normalization show in the answer
    from PIL import Image

    from tests.cli.test_contract import foreign

    foreign(here / "colornet.onnx", external=True, classes=3)
    colours = {"blue": (20, 40, 230), "green": (20, 230, 40), "red": (230, 40, 20)}
    (here / "photos").mkdir()
    for name, rgb in colours.items():
        Image.new("RGB", (64, 36), rgb).save(here / f"photos/{name}.jpg")
        (here / "colors/val" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40 + 8 * i, 30), rgb).save(here / f"colors/val/{name}/{i}.png")
    r = _ok(cli("inspect", "colornet.onnx"))
    assert "contract  none (not exported by edgecnn)" in r.stdout.splitlines()

    r = cli("infer", "photos/blue.jpg", "-m", "colornet.onnx")
    assert r.exit_code == 2 and r.stdout == ""
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("Error: colornet.onnx has no edgecnn contract and a dynamic input size (")
    assert err.endswith("); give it with --size S or HxW")
    r = _ok(cli("infer", "photos/blue.jpg", "-m", "colornet.onnx", "-k", "1", "--size", "224"))
    assert r.stderr.startswith("Warning: colornet.onnx has no edgecnn contract; assuming a classifier with ImageNet "
                               "preprocessing (resize 256 + center crop 224x224, mean [0.485, 0.456, 0.406]")
    assert r.stdout.splitlines()[3].split()[:3] == ["1", "2", "2"]  # RGB fed to a BGR network: the wrong class

    r = _ok(cli("contract", "colornet.onnx", "--size", "224", "--color", "BGR", "--scale", "1", "--mean",
                "104,117,124", "--std", "1,1,1", "--labels", "blue,green,red"))
    assert r.stdout.splitlines()[1:3] == [
        "preprocess BGR, resize 256 + center crop 224x224 (bilinear), x1, mean [104.0, 117.0, 124.0], std [1.0, 1.0, "
        "1.0]", "labels     3: blue, green, red"]
    assert r.stderr == ("wrote a new contract into colornet.onnx (metadata only, weights untouched; external data "
                        "colornet.onnx.data kept)\n")

    r = _ok(cli("infer", "photos/", "-m", "colornet.onnx", "-k", "1", "-f", "csv"))
    lines = r.stdout.splitlines()
    assert lines[0] == "image,width,height,task,rank,class,label,score,x1,y1,x2,y2,error"
    assert [line.split(",")[:7] for line in lines[1:]] == [
        [f"photos/{name}.jpg", "64", "36", "classify", "1", str(i), name] for i, name in enumerate(colours)]
    r = _ok(cli("infer", "photos/blue.jpg", "-m", "colornet.onnx", "-k", "1", "--color", "RGB"))
    assert r.stdout.splitlines()[3].split()[:3] == ["1", "2", "red"]  # the override, for this run only

    r = _ok(cli("eval", "colornet.onnx", "--data", "colors/"))
    assert "top-1 100.0%" in r.stdout
    r = _ok(cli("quantize", "colornet.onnx", "--calib", "colors/val", "--no-bench"))
    assert r.stdout.startswith("wrote colornet.int8.onnx (INT8 QDQ, ")
    assert "accuracy on the labelled folder: FP32 100.0%, INT8 100.0%" in r.stdout
    r = _ok(cli("inspect", "colornet.int8.onnx"))
    assert [line for line in r.stdout.splitlines() if "contract" in line] == [  # README: inspect ... | grep contract
        "precision int8 (from the contract)",
        "contract  edgecnn.contract/1: classify model 'colornet', int8, weights unknown"]
