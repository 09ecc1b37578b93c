"""Detection through the one training loop: the loss falls, checkpoints carry a detection contract,
validation mAP comes from pycocotools, and --init takes the backbone classifier's checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgecnn import registry
from edgecnn.train.config import TrainConfig
from edgecnn.train.loop import train
from edgecnn.train.shapes import write_shapes
from edgecnn.train.task import DetectTask, init_backbone

from .conftest import quiet

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def det_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("det") / "shapes"
    write_shapes(root, n=20, size=SIZE, seed=0, task="detect")
    return root


def test_a_few_steps_lower_the_loss(det_dir):
    torch.manual_seed(0)
    task = DetectTask()
    cfg = TrainConfig("ssdlite_mobilenetv2", str(det_dir), augment=False)
    data = task.open_data(cfg)
    model = registry.build("ssdlite_mobilenetv2", num_classes=task.num_classes(data), input_size=SIZE, width_mult=0.5)
    train_set, _ = task.datasets(data, model.preprocess, cfg, cache=0)
    x, targets, bad = task.collate([train_set[i] for i in range(8)])
    assert not bad and x.shape == (8, 3, SIZE, SIZE)
    module = task.train_module(model).train()
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, n, parts = task.step(module, x, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        assert n == 8 and set(parts) == {"loc", "cls"}
    assert losses[-1] < 0.7 * losses[0], losses


def test_train_writes_a_detection_checkpoint(det_dir, tmp_path):
    out = tmp_path / "run"
    result = train(TrainConfig("ssdlite_mobilenetv2", str(det_dir), epochs=1, batch_size=4, input_size=SIZE,
                               optimizer="adamw", out=str(out), augment=True, device="cpu"), echo=quiet, warn=quiet)
    assert result["task"] == "detect" and result["val_images"] == 4
    assert 0.0 <= result["val_map50"] <= 1.0 and 0.0 <= result["val_map"] <= result["val_map50"]
    assert set(result["per_class"]) == {"circle", "triangle", "square", "star"}
    ckpt = torch.load(out / "best.pt", weights_only=True)
    c = ckpt["contract"]
    assert c["task"] == "detect" and c["labels"] == ["background", "circle", "triangle", "square", "star"]
    assert c["preprocess"]["resize"] == "letterbox" and c["preprocess"]["height"] == SIZE
    assert c["detection"]["background_class"] and [o["name"] for o in c["outputs"]] == ["boxes", "scores"]
    assert ckpt["config"]["num_classes"] == 5
    log = json.loads((out / "log.json").read_text())
    assert {"train_loss", "train_loc", "train_cls", "val_map50", "val_map"} <= set(log[0])
    header = (out / "log.csv").read_text().splitlines()[0]
    assert header == "epoch,lr,train_loss,train_loc,train_cls,val_map50,val_map,images_per_s,seconds"


def test_init_backbone_from_a_torchvision_style_mobilenetv2_state_dict(tmp_path):
    torch.manual_seed(1)
    clf = registry.build("mobilenetv2")
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(clf.state_dict(), path)  # a bare state dict, torchvision's key names
    det = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=SIZE)
    notes = init_backbone(det, str(path), "ssdlite_mobilenetv2")
    assert notes and "backbone" in notes[-1]
    src = [v for k, v in clf.state_dict().items() if k.startswith("features.")]
    dst = [v for k, v in det.state_dict().items() if k.startswith("backbone.features.")]
    assert len(src) == len(dst) > 100
    assert all(torch.equal(a, b) for a, b in zip(src, dst, strict=True))
    # the first conv and the C4 expansion (where the backbone is split) came across
    assert torch.equal(det.backbone.features[0][0][0].weight, clf.features[0][0].weight)
    assert np.isfinite(det(torch.rand(2, 3, SIZE, SIZE))[1].detach().numpy()).all()
