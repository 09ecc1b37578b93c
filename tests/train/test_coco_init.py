"""``train DETECTOR --init coco``: a detector fine-tuned from COCO weights in torchvision's format (a checkpoint
the test makes, in the layout of torchvision's ssdlite320_mobilenet_v3_large COCO file). The backbone, extra
layers and box head load; the class head keeps COCO's rows when the new classes are COCO's (matched by name,
background first) and is made fresh otherwise; ``--freeze backbone`` keeps the backbone as loaded."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from edgecnn import hub, registry
from edgecnn.train import transfer
from edgecnn.train.config import TrainConfig
from edgecnn.train.loop import train
from edgecnn.train.shapes import write_shapes
from tests.models.test_coco_weights import NAME, coco_checkpoint

from .conftest import quiet

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    path = coco_checkpoint(folder, favour=3)  # "car" scores highest: its row is not the fresh init's
    return path, torch.load(path, weights_only=True)


def _model(num_classes: int):
    torch.manual_seed(0)
    return registry.build(NAME, num_classes=num_classes, input_size=SIZE)


def _class_keys(model) -> list[str]:
    return model.head_keys()


def test_coco_subset_keeps_the_matching_rows(ckpt):
    path, state = ckpt
    model = _model(3)
    notes = transfer.load_init(model, path, NAME, ["background", "Car", "person"])
    assert any("kept the file's rows of Car, person (91 -> 3 classes" in n for n in notes), notes
    own = model.state_dict()
    for k in _class_keys(model):  # rows (anchor, class): background, car (3), person (1) of every anchor
        theirs = state[k].reshape(-1, 91, *state[k].shape[1:])[:, [0, 3, 1]]
        assert torch.equal(own[k].reshape(theirs.shape), theirs), k
    for k in own:
        if k not in _class_keys(model):
            assert torch.equal(own[k], state[k]), k
    # the kept head still says what COCO's said: car wins over person everywhere
    with torch.no_grad():
        scores = model.eval()(torch.rand(1, 3, SIZE, SIZE))[1]
    assert (scores.argmax(-1) == 1).all()


def test_other_classes_get_a_fresh_class_head(ckpt):
    path, state = ckpt
    model = _model(3)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    notes = transfer.load_init(model, path, NAME, ["background", "circle", "person"])  # circle is not COCO's
    assert any("replaced: 91 -> 3 classes (fresh init)" in n for n in notes), notes
    own = model.state_dict()
    for k in own:
        if k in _class_keys(model):
            assert torch.equal(own[k], fresh[k]) and own[k].shape != state[k].shape, k
        else:
            assert torch.equal(own[k], state[k]), k


def test_detector_splits_into_backbone_stages_and_a_head():
    model = _model(3)
    stages, head = transfer.split_model(model)
    assert len(stages) == 5  # MobileNetV3's stem and four downsampling stages
    assert head == [model.backbone.extra, model.head]
    backbone = sum(p.numel() for p in model.backbone.features.parameters())
    assert sum(n for name, n in transfer.describe(model) if name != "head") == backbone


def test_train_init_coco_freeze_backbone(ckpt, tmp_path, monkeypatch):
    """The journey: --init coco (found in edgecnn's cache under the card's file name) --freeze backbone."""
    path, state = ckpt
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "home"))
    card = registry.REGISTRY[NAME]
    p = dataclasses.replace(card.pretrained[0], url=f"https://download.pytorch.org/models/{path.name}")
    monkeypatch.setitem(registry.REGISTRY, NAME, dataclasses.replace(card, pretrained=(p,)))
    cached = hub.home() / "checkpoints" / path.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    data = tmp_path / "shapes"
    write_shapes(data, n=8, size=SIZE, seed=0, task="detect")
    lines: list[str] = []
    out = tmp_path / "run"
    result = train(TrainConfig(NAME, str(data), epochs=1, batch_size=4, input_size=SIZE, optimizer="adamw",
                               out=str(out), augment=False, device="cpu", init="coco", freeze="backbone"),
                   echo=lines.append, warn=quiet)
    assert result["task"] == "detect"
    text = "\n".join(lines)
    assert f"init: weights from {cached}" in text and "91 -> 5 classes (fresh init)" in text
    trained = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    features = [k for k in trained if k.startswith("backbone.features.")]
    assert features and all(torch.equal(trained[k], state[k]) for k in features)  # frozen: BN statistics too
    extra_and_box = [k for k in trained if k.startswith(("backbone.extra.", "head.regression_head."))
                     and k.endswith("weight")]
    assert any(not torch.equal(trained[k], state[k]) for k in extra_and_box)  # trained from COCO's


def test_ssd300_subset_rows_with_4_and_6_anchors_per_location(tmp_path):
    """SSD300's maps have 4 or 6 anchors per location: the rows kept are (anchor, class) of each map."""
    import json
    from pathlib import Path

    from tests.models.tv_weights import state_dict_for

    layout = json.loads((Path(__file__).parents[1] / "models" / "fixtures" / "ssd300_torchvision.json").read_text())
    state = state_dict_for(layout["layout91"])
    path = tmp_path / "ssd300_vgg16_coco.pth"
    torch.save(state, path)
    model = registry.build("ssd300_vgg16", num_classes=3)
    notes = transfer.load_init(model, path, "ssd300_vgg16", ["background", "dog", "person"])
    assert any("kept the file's rows of dog, person (91 -> 3 classes" in n for n in notes), notes
    own = model.state_dict()
    for k in model.head_keys():
        theirs = state[k].reshape(-1, 91, *state[k].shape[1:])[:, [0, 18, 1]]  # COCO: dog 18, person 1
        assert torch.equal(own[k].reshape(theirs.shape), theirs), k
    assert {own[k].shape[0] for k in model.head_keys() if k.endswith("bias")} == {12, 18}
    assert all(torch.equal(own[k], state[k]) for k in own if k not in model.head_keys())


def test_ssd300_freezes_vgg_and_trains_the_rest():
    model = registry.build("ssd300_vgg16", num_classes=3)
    stages, _ = transfer.split_model(model)
    assert len(stages) == 4  # conv1, pool1+conv2, pool2+conv3, pool3+conv4_3
    frozen = transfer.freeze(model, "backbone")
    groups = transfer.param_groups(model, 0.01, 1e-4)  # every trainable parameter in a group, none twice
    in_groups = {id(p) for g in groups for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_groups == trainable and model.backbone.scale_weight.requires_grad
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert {id(p) for p in model.backbone.features.parameters()} == {id(p) for m in frozen for p in m.parameters()}


def test_init_coco_on_a_detector_without_coco_weights_says_so(tmp_path):
    from edgecnn.errors import UsageError

    data = tmp_path / "shapes"
    write_shapes(data, n=8, size=SIZE, seed=0, task="detect")
    with pytest.raises(UsageError, match="ssdlite_mobilenetv2 has no published COCO weights .*ssdlite320_mobilenetv3"
                                         "_large.*; or pass a file with --init$"):
        train(TrainConfig("ssdlite_mobilenetv2", str(data), epochs=1, input_size=SIZE, out=str(tmp_path / "run"),
                          device="cpu", init="coco"), echo=quiet, warn=quiet)
