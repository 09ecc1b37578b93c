"""Named suites of ``edgecnn bench --suite NAME``: a list of zoo models, each measured at its default input.
Torch-free to expand (the registry needs no torch); measuring zoo models exports them, which needs torch.

- ``zoo``: every zoo classifier (``edgecnn models`` with task classify).
- ``detectors``: every zoo detector, meant for end-to-end runs (``--image``).
- ``faq``: the four models of the CNN FAQ's architecture-choice table (ResNet-18, ResNet-50,
  MobileNetV2, EfficientNet-B4).
"""

from __future__ import annotations

from edgecnn import registry
from edgecnn.errors import UsageError

FAQ_MODELS = ("resnet18", "resnet50", "mobilenetv2", "efficientnet_b4")
SUITES = {
    "zoo": "every zoo classifier at its default input",
    "detectors": "every zoo detector at its default input (end to end with --image)",
    "faq": "ResNet-18, ResNet-50, MobileNetV2, EfficientNet-B4: the CNN FAQ's architecture-choice table",
}


def expand(name: str) -> list[str]:
    """The zoo names of suite ``name``, in the registry's order (small to large within a family)."""
    if name == "zoo":
        return [c.name for c in registry.REGISTRY.values() if c.task == "classify"]
    if name == "detectors":
        return [c.name for c in registry.REGISTRY.values() if c.task == "detect"]
    if name == "faq":
        return list(FAQ_MODELS)
    raise UsageError(f"unknown --suite '{name}'; choose one of: {', '.join(SUITES)}")
