"""Every registered model: builds, runs at a small and at its default input, matches its card."""

import pytest
import torch

from edgecnn import registry
from edgecnn.profile import profile

NAMES = registry.names()
CLASSIFIERS = [n for n in NAMES if registry.get_card(n).task == "classify"]  # detectors: tests/models/test_ssdlite.py
# The smallest square input each family takes (AlexNet's 11x11/4 stem and three 3/2 pools need ~63).
SMALL = {"simplecnn": 28, "lenet5": 32, "alexnet": 64}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_small_input_forward(name):
    card = registry.get_card(name)
    size = SMALL.get(name, 32)
    torch.manual_seed(0)
    model = registry.build(name, num_classes=7, in_channels=card.input_channels, input_size=size).eval()
    x = torch.randn(2, card.input_channels, size, size)
    with torch.no_grad():
        y = model(x)
        alone = model(x[1:])
    assert y.shape == (2, 7)
    assert torch.isfinite(y).all()
    # eval mode: each sample's logits do not depend on the rest of the batch (BN uses running stats)
    torch.testing.assert_close(alone[0], y[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mobilenetv2", "resnet18", "efficientnet_b0", "simplecnn"])
def test_grayscale_input(name):
    size = SMALL.get(name, 32)
    model = registry.build(name, num_classes=3, in_channels=1, input_size=size).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, size, size)).shape == (1, 3)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 1


@pytest.mark.parametrize("name", NAMES)
def test_default_input_matches_card(name):
    """Published parameter count AND our MAC count at the default input, from a real forward pass."""
    card = registry.get_card(name)
    model = registry.build(name)
    prof = profile(model, (card.input_channels, card.input_size, card.input_size), name)
    assert prof.trainable_params == card.params
    assert prof.macs == card.macs
    # a classifier outputs logits; a detector (boxes (A, 4), scores (A, classes))
    expected = [card.num_classes] if card.task == "classify" else [[prof.output_shape[0][0], 4],
                                                                   [prof.output_shape[0][0], card.num_classes]]
    assert prof.output_shape == expected


def test_width_multiplier_scales_mobilenetv2():
    half = registry.build("mobilenetv2", width_mult=0.5)
    n = sum(p.numel() for p in half.parameters())
    assert n == 1_968_680  # torchvision mobilenet_v2(width_mult=0.5)
    assert half.features[0][0].out_channels == 16


def test_train_mode_stochastic_depth_changes_output_but_eval_does_not():
    torch.manual_seed(0)
    model = registry.build("efficientnet_b0", num_classes=4)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    outs = {tuple(model(x).detach().flatten().tolist()) for _ in range(3)}
    assert len(outs) > 1
    model.eval()
    with torch.no_grad():
        y = model(x)
        for m in model.modules():  # in eval, stochastic depth must be the identity
            if m.__class__.__name__ == "StochasticDepth":
                m.forward = lambda t: t
        torch.testing.assert_close(model(x), y, rtol=0, atol=0)
