"""Transfer learning: stage split, --init (torchvision-format state dicts, head replacement),
--freeze (bit-identical frozen weights, BN in eval mode), --layer-lr-decay parameter groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecnn import registry
from edgecnn.errors import EdgeCNNError, UsageError
from edgecnn.train.checkpoint import load_checkpoint
from edgecnn.train.loop import TrainConfig, train
from edgecnn.train.transfer import describe, freeze, load_init, param_groups, set_train_mode, split_model
from tests.train.conftest import quiet


@pytest.mark.parametrize("name, stages", [("simplecnn", 2), ("lenet5", 2), ("alexnet", 3), ("resnet18", 5),
                                          ("mobilenetv2", 5), ("mobilenetv3_small", 5), ("efficientnet_b0", 5)])
def test_stages_cover_the_model(name, stages):
    model = registry.build(name, num_classes=10)
    parts = describe(model)
    assert [p[0] for p in parts] == [f"stage{i + 1}" for i in range(stages)] + ["head"]
    assert sum(n for _, n in parts) == sum(p.numel() for p in model.parameters())


def _build(name: str, seed: int, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return registry.build(name, **kw)


def _train(shapes_dir, out, **kw):
    cfg = TrainConfig(**{"data": str(shapes_dir), "epochs": 1, "batch_size": 16, "input_size": 32,
                         "out": str(out), **kw})
    return train(cfg, echo=quiet, warn=quiet)


def test_freeze_stages_keeps_frozen_weights_and_bn_statistics(shapes_dir, tmp_path):
    """MobileNetV2 from a 10-class torchvision-format state dict, fine-tuned on 4 classes with the
    first two stages frozen: those stay bit-identical, BN running statistics included (BN in eval
    mode), the rest learns, the head is new."""
    source = _build("mobilenetv2", 1, num_classes=10)
    with torch.no_grad():  # non-trivial BN statistics, so that an update would show
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    init = tmp_path / "mobilenet_v2-10cls.pth"
    torch.save(source.state_dict(), init)
    _train(shapes_dir, tmp_path / "run", model="mobilenetv2", init=str(init), freeze="stages:2",
           layer_lr_decay=0.5, lr=0.05, schedule="none", warmup_epochs=0)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    after, before = ckpt["state_dict"], source.state_dict()
    # stage 1: stem + first block (features.0-1); stage 2: the two 24-channel blocks (features.2-3)
    frozen = [k for k in before if k.split(".")[:2] in (["features", "0"], ["features", "1"], ["features", "2"],
                                                        ["features", "3"])]
    assert any("running_mean" in k for k in frozen) and len(frozen) > 20
    assert all(torch.equal(after[k], before[k]) for k in frozen)
    learned = [k for k in before if k.startswith("features.4.") and k.endswith("weight")]
    assert all(not torch.equal(after[k], before[k]) for k in learned)
    assert after["classifier.1.weight"].shape == (4, 1280)
    # layer-wise learning rates, head first, x0.5 per stage; frozen stages have no group
    groups = ckpt["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["head", "head.no_decay", "stage5", "stage5.no_decay", "stage4",
                                           "stage4.no_decay", "stage3", "stage3.no_decay"]
    assert [g["lr"] for g in groups[::2]] == [0.05, 0.025, 0.0125, 0.00625]


def test_frozen_bn_stays_in_eval_mode():
    model = _build("resnet18", 0, num_classes=3)
    frozen = freeze(model, "stages:2")
    set_train_mode(model, frozen)
    stages, head = split_model(model)
    frozen_bn = [m for s in stages[:2] for mod in s for m in mod.modules() if isinstance(m, nn.BatchNorm2d)]
    free_bn = [m for s in stages[2:] for mod in s for m in mod.modules() if isinstance(m, nn.BatchNorm2d)]
    assert frozen_bn and all(not m.training for m in frozen_bn)
    assert free_bn and all(m.training for m in free_bn)
    assert all(not p.requires_grad for s in stages[:2] for mod in s for p in mod.parameters())
    assert all(p.requires_grad for s in stages[2:] for mod in s for p in mod.parameters())


def test_freeze_backbone_trains_only_the_head(shapes_dir, tmp_path):
    _train(shapes_dir, tmp_path / "run", model="simplecnn", input_size=28, freeze="backbone", seed=3)
    before = _build("simplecnn", 3, num_classes=4, in_channels=1, input_size=28).state_dict()
    after = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("features."))
    assert all(not torch.equal(after[k], before[k]) for k in before if k.startswith("classifier."))


def test_layer_lr_decay_groups():
    model = registry.build("resnet18", num_classes=5)
    groups = param_groups(model, lr=0.1, weight_decay=1e-4, layer_decay=0.7)
    names = ["head"] + [f"stage{i}" for i in (5, 4, 3, 2, 1)]
    assert [g["name"] for g in groups] == [n + s for n in names for s in ("", ".no_decay")]
    for g in groups:
        depth = names.index(g["name"].split(".")[0])
        assert g["lr"] == g["base_lr"] == pytest.approx(0.1 * 0.7**depth)
        assert g["weight_decay"] == (0.0 if g["name"].endswith("no_decay") else 1e-4)
        assert all((p.ndim <= 1) == g["name"].endswith("no_decay") for p in g["params"])
    assert groups[0]["params"][0] is model.fc.weight
    every = [id(p) for g in groups for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in model.parameters())
    flat = param_groups(model, lr=0.1, weight_decay=0.0)
    assert {g["lr"] for g in flat} == {0.1}


def test_freeze_errors():
    model = registry.build("lenet5")
    with pytest.raises(UsageError, match=r"--freeze stages:3: LeNet5 has 2 stages; use stages:1..2 or backbone"):
        freeze(model, "stages:3")
    with pytest.raises(UsageError, match=r"--freeze takes none, backbone or stages:N"):
        freeze(model, "most")


def test_init_replaces_the_head_and_adapts_grayscale(tmp_path):
    source = _build("resnet18", 0, num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pth")
    model = _build("resnet18", 1, num_classes=3, in_channels=1)
    notes = load_init(model, tmp_path / "w.pth", "resnet18")
    assert notes == ["conv1.weight summed over RGB for 1-channel input",
                     "head fc replaced: 10 -> 3 classes (fresh init)"]
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert torch.equal(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))


def test_init_of_another_architecture_is_one_line(tmp_path, shapes_dir):
    torch.save(registry.build("resnet18", num_classes=4).state_dict(), tmp_path / "r18.pth")
    model = registry.build("mobilenetv2", num_classes=4)
    with pytest.raises(EdgeCNNError) as e:
        load_init(model, tmp_path / "r18.pth", "mobilenetv2")
    msg = str(e.value)
    assert msg.startswith(f"--init {tmp_path / 'r18.pth'} does not fit the model: missing keys 'features.0.0.weight'")
    assert "unexpected keys 'conv1.weight'" in msg and "\n" not in msg
    # an edgecnn checkpoint of another zoo model
    _train(shapes_dir, tmp_path / "s", model="simplecnn", input_size=28)
    with pytest.raises(EdgeCNNError) as e:
        _train(shapes_dir, tmp_path / "l", model="lenet5", init=str(tmp_path / "s" / "last.pt"))
    assert str(e.value) == (f"{tmp_path / 's' / 'last.pt'} is a checkpoint of 'simplecnn', not 'lenet5'; "
                            "train 'simplecnn' or pick a checkpoint of lenet5")
