"""Our state-dict layout IS torchvision's: a torchvision checkpoint loads with strict=True and computes
the same function. The fixture was recorded from real torchvision 0.29.1 (make_torchvision_fixture.py);
torchvision itself is not importable beside the CPU torch here."""

import json
from pathlib import Path

import pytest
import torch

from edgecnn import registry
from tests.models.tv_weights import TV_NUM_CLASSES, fixed_input, state_dict_for

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_layout.json").read_text())
TV_TO_OURS = {c.torchvision: c.name for c in registry.REGISTRY.values() if c.torchvision and c.task == "classify"}


def test_every_torchvision_family_is_covered():
    assert set(FIXTURE["models"]) == set(TV_TO_OURS)


@pytest.mark.parametrize("tv_name", sorted(FIXTURE["models"]))
def test_checkpoint_layout_loads_strict(tv_name):
    layout = [(k, s) for k, s in FIXTURE["models"][tv_name]["layout"]]
    model = registry.build(TV_TO_OURS[tv_name])
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == layout  # same keys, same order, same shapes
    model.load_state_dict({k: torch.zeros(s) for k, s in layout}, strict=True)


@pytest.mark.parametrize("tv_name", sorted(FIXTURE["models"]))
def test_same_outputs_as_torchvision(tv_name):
    model = registry.build(TV_TO_OURS[tv_name], num_classes=TV_NUM_CLASSES).eval()
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict(state_dict_for(layout), strict=True)
    with torch.no_grad():
        got = model(fixed_input())[0]
    ref = torch.tensor(FIXTURE["models"][tv_name]["logits"])
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
