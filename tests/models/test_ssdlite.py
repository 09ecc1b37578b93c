"""SSDLite detectors: the interface (boxes/scores, raw, anchors), sizes, widths, and a few training steps."""

import numpy as np
import pytest
import torch

from edgecnn import registry
from edgecnn.nn.detection import decode, detection_loss

DETECTORS = [n for n in registry.names() if registry.get_card(n).family == "ssdlite"]


def _anchors_expected(size: int) -> int:
    # six maps at output strides 16, 32, 64, ... (each stride-2 conv rounds up), six anchors a location
    sizes, s = [], size
    for halvings in (4, 1, 1, 1, 1, 1):
        for _ in range(halvings):
            s = (s + 1) // 2
        sizes.append(s * s)
    return 6 * sum(sizes)


def test_both_detectors_are_registered():
    assert set(DETECTORS) == {"ssdlite_mobilenetv2", "ssdlite320_mobilenetv3_large"}
    assert {n for n in registry.names() if registry.get_card(n).task == "detect"} == {*DETECTORS, "ssd300_vgg16"}


@pytest.mark.parametrize("name", DETECTORS)
def test_interface_boxes_scores_raw_anchors(name):
    torch.manual_seed(0)
    model = registry.build(name, num_classes=4, input_size=64, width_mult=0.5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        boxes, scores = model(x)
        deltas, logits = model.raw(x)
    a = _anchors_expected(64)
    assert boxes.shape == (2, a, 4) and scores.shape == (2, a, 4)
    assert deltas.shape == (2, a, 4) and logits.shape == (2, a, 4) and model.anchors.shape == (a, 4)
    torch.testing.assert_close(scores, torch.softmax(logits, -1))
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, a))
    torch.testing.assert_close(boxes, decode(deltas, model.anchors).clamp(0, 64))  # square input: one clamp
    assert (boxes[..., 2:] >= boxes[..., :2]).all()
    model.train()
    b2, _ = model(x)  # any mode returns the same pair
    assert b2.shape == boxes.shape


def test_anchors_follow_the_input_size_and_stay_out_of_the_state_dict():
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=96, width_mult=0.35).eval()
    assert "anchors" not in model.state_dict()
    x = torch.zeros(1, 3, 128, 160)
    a = model.anchors_for(x)
    deltas, _ = model.raw(x)
    assert a.shape[0] == deltas.shape[1]
    # the last map is 1x1 at this size: its six anchors are centred, and its ratio-3 box is clamped to the
    # whole input width (0.95 * sqrt(3) > 1) and to 0.95 / sqrt(3) of the height
    last = a[-6:]
    np.testing.assert_allclose(((last[:, :2] + last[:, 2:]) / 2).numpy(), [[80, 64]] * 6, rtol=1e-6)
    np.testing.assert_allclose(last[4].numpy(), [0, 64 - 64 * 0.95 / 3**0.5, 160, 64 + 64 * 0.95 / 3**0.5],
                               rtol=1e-5)


def test_mobilenetv2_feature_maps_are_those_of_the_paper():
    """Sandler et al. 2018, sec 6.2: the first map is the expansion of the first stride-32 block (576 channels,
    output stride 16), the second the last layer (1280), then extras of 512, 256, 256, 128."""
    model = registry.build("ssdlite_mobilenetv2", input_size=320).eval()
    maps = model.backbone(torch.zeros(1, 3, 320, 320))
    assert [m.shape[1] for m in maps] == [576, 1280, 512, 256, 256, 128]
    assert [m.shape[-1] for m in maps] == [20, 10, 5, 3, 2, 1]


def test_width_multiplier_and_classes():
    full = registry.build("ssdlite_mobilenetv2", num_classes=5)
    thin = registry.build("ssdlite_mobilenetv2", num_classes=5, width_mult=0.5)
    assert sum(p.numel() for p in thin.parameters()) < 0.6 * sum(p.numel() for p in full.parameters())
    with pytest.raises(ValueError, match="num_classes counts the background"):
        registry.build("ssdlite_mobilenetv2", num_classes=1)


def test_contract_defaults():
    v2 = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=64, width_mult=0.35)
    v3 = registry.build("ssdlite320_mobilenetv3_large", num_classes=3, input_size=64, width_mult=0.35)
    assert v2.preprocess.resize == "letterbox" and v3.preprocess.resize == "stretch"
    assert v3.preprocess.mean == (0.5, 0.5, 0.5) and v3.preprocess.std == (0.5, 0.5, 0.5)
    d = v3.detection
    assert (d.iou, d.max_det, d.candidates_per_class, d.background_class) == (0.55, 300, 300, True)  # torchvision's
    assert d.conf == 0.25  # infer's display threshold, not torchvision's mAP-style 0.001 (eval's default)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = registry.build("ssdlite_mobilenetv2", num_classes=3, input_size=64, width_mult=0.35).train()
    x = torch.rand(4, 3, 64, 64)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[20.0, 10.0, 60.0, 30.0], [2.0, 30.0, 20.0, 62.0]]),
                "labels": torch.tensor([2, 1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
               {"boxes": torch.tensor([[0.0, 0.0, 64.0, 64.0]]), "labels": torch.tensor([2])}]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        out = detection_loss(*model.raw(x), model.anchors_for(x), targets)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("name, classifier", [("ssdlite_mobilenetv2", "mobilenetv2"),
                                              ("ssdlite320_mobilenetv3_large", None)])
def test_backbone_from_a_classifier_checkpoint(name, classifier):
    det = registry.build(name, num_classes=3, input_size=64)
    if classifier is None:  # torchvision's reduced-tail v3 has no classifier checkpoint: its own keys, re-split
        from edgecnn.models.mobilenetv3 import MobileNetV3
        from edgecnn.models.ssdlite import LARGE_REDUCED_TAIL

        cls = MobileNetV3(LARGE_REDUCED_TAIL, 640)
    else:
        cls = registry.build(classifier)
    torch.manual_seed(1)
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in cls.state_dict().items()}
    n = det.load_backbone(state)
    assert n == sum(1 for k in state if k.startswith("features."))
    mine = det.state_dict()
    for src, dst in det.backbone_keys.items():
        assert torch.equal(mine[dst], state[src])
    if classifier:  # the split point: the expansion conv of the first stride-32 block stays in map 1
        assert det.backbone_keys["features.14.conv.0.0.weight"] == "backbone.features.0.14.0.weight"
        assert det.backbone_keys["features.14.conv.1.0.weight"] == "backbone.features.1.0.1.0.weight"
    half = registry.build(name, num_classes=3, input_size=64, width_mult=0.5)
    with pytest.raises(ValueError, match="another width multiplier"):
        half.load_backbone(state)
