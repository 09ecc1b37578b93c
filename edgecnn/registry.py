"""Model registry: name -> lazy builder and model card. Works without torch.

A card holds what ``edgecnn models`` prints without building anything: family, task, default input,
paper, the reference parameter count and the MACs at the default input. Tests build every model
and check both figures against the card, so the card cannot drift from the code.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import asdict, dataclass

from edgecnn.errors import UnknownModelError, UsageError, require


@dataclass(frozen=True)
class ModelCard:
    name: str
    builder: str  # "module:function", imported only when the model is built
    family: str
    task: str  # classify | detect
    input_channels: int
    input_size: int  # default square input
    num_classes: int
    params: int  # trainable parameters at the default classes/channels (published reference)
    macs: int  # multiply-accumulates of conv + linear layers for one image at the default input
    paper: str
    torchvision: str | None = None  # torchvision name whose checkpoints load with strict=True
    fixed_input: bool = False  # flatten width ties the classifier to the input size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input"] = [self.input_channels, self.input_size, self.input_size]
        return d


_HOWARD17 = "Howard et al. 2017, MobileNets (arXiv:1704.04861)"
_SANDLER18 = "Sandler et al. 2018, MobileNetV2 (arXiv:1801.04381)"
_HOWARD19 = "Howard et al. 2019, Searching for MobileNetV3 (arXiv:1905.02244)"
_HE16 = "He et al. 2016, Deep Residual Learning (arXiv:1512.03385)"
_VGG = "Simonyan & Zisserman 2015, Very Deep ConvNets (arXiv:1409.1556)"
_TAN19 = "Tan & Le 2019, EfficientNet (arXiv:1905.11946)"

_CARDS = [
    ModelCard("simplecnn", "edgecnn.models.simplecnn:simplecnn", "simplecnn", "classify", 1, 28, 10,
              52_138, 333_056, "SimpleCNN of the CNN FAQ (2 conv + 2 fc)", fixed_input=True),
    ModelCard("lenet5", "edgecnn.models.lenet:lenet5", "lenet", "classify", 1, 32, 10,
              61_706, 416_520, "LeCun et al. 1998, Gradient-based learning", fixed_input=True),
    ModelCard("alexnet", "edgecnn.models.alexnet:alexnet", "alexnet", "classify", 3, 224, 1000,
              61_100_840, 714_188_480, "Krizhevsky 2014, One weird trick (arXiv:1404.5997)", "alexnet"),
    ModelCard("vgg11", "edgecnn.models.vgg:vgg11", "vgg", "classify", 3, 224, 1000,
              132_863_336, 7_609_090_048, _VGG, "vgg11"),
    ModelCard("vgg11_bn", "edgecnn.models.vgg:vgg11_bn", "vgg", "classify", 3, 224, 1000,
              132_868_840, 7_609_090_048, _VGG, "vgg11_bn"),
    ModelCard("vgg16", "edgecnn.models.vgg:vgg16", "vgg", "classify", 3, 224, 1000,
              138_357_544, 15_470_264_320, _VGG, "vgg16"),
    ModelCard("vgg16_bn", "edgecnn.models.vgg:vgg16_bn", "vgg", "classify", 3, 224, 1000,
              138_365_992, 15_470_264_320, _VGG, "vgg16_bn"),
    ModelCard("resnet18", "edgecnn.models.resnet:resnet18", "resnet", "classify", 3, 224, 1000,
              11_689_512, 1_814_073_344, _HE16, "resnet18"),
    ModelCard("resnet34", "edgecnn.models.resnet:resnet34", "resnet", "classify", 3, 224, 1000,
              21_797_672, 3_663_761_408, _HE16, "resnet34"),
    ModelCard("resnet50", "edgecnn.models.resnet:resnet50", "resnet", "classify", 3, 224, 1000,
              25_557_032, 4_089_184_256, _HE16, "resnet50"),
    ModelCard("se_resnet18", "edgecnn.models.resnet:se_resnet18", "resnet", "classify", 3, 224, 1000,
              11_778_592, 1_814_160_384, "Hu et al. 2018, Squeeze-and-Excitation Networks (arXiv:1709.01507)"),
    ModelCard("mobilenetv1", "edgecnn.models.mobilenet:mobilenetv1", "mobilenet", "classify", 3, 224, 1000,
              4_231_976, 568_740_352, _HOWARD17),
    ModelCard("mobilenetv2", "edgecnn.models.mobilenet:mobilenetv2", "mobilenet", "classify", 3, 224, 1000,
              3_504_872, 300_774_272, _SANDLER18, "mobilenet_v2"),
    ModelCard("mobilenetv3_large", "edgecnn.models.mobilenetv3:mobilenetv3_large", "mobilenetv3", "classify",
              3, 224, 1000, 5_483_032, 216_589_760, _HOWARD19, "mobilenet_v3_large"),
    ModelCard("mobilenetv3_small", "edgecnn.models.mobilenetv3:mobilenetv3_small", "mobilenetv3", "classify",
              3, 224, 1000, 2_542_856, 56_510_400, _HOWARD19, "mobilenet_v3_small"),
    ModelCard("efficientnet_b0", "edgecnn.models.efficientnet:efficientnet_b0", "efficientnet", "classify",
              3, 224, 1000, 5_288_548, 385_814_752, _TAN19, "efficientnet_b0"),
    ModelCard("efficientnet_b1", "edgecnn.models.efficientnet:efficientnet_b1", "efficientnet", "classify",
              3, 240, 1000, 7_794_184, 686_802_832, _TAN19, "efficientnet_b1"),
    ModelCard("efficientnet_b2", "edgecnn.models.efficientnet:efficientnet_b2", "efficientnet", "classify",
              3, 260, 1000, 9_109_994, 993_561_872, _TAN19, "efficientnet_b2"),
    ModelCard("efficientnet_b3", "edgecnn.models.efficientnet:efficientnet_b3", "efficientnet", "classify",
              3, 300, 1000, 12_233_232, 1_827_141_392, _TAN19, "efficientnet_b3"),
    ModelCard("efficientnet_b4", "edgecnn.models.efficientnet:efficientnet_b4", "efficientnet", "classify",
              3, 380, 1000, 19_341_616, 4_393_771_024, _TAN19, "efficientnet_b4"),
]
REGISTRY: dict[str, ModelCard] = {c.name: c for c in _CARDS}


def names() -> list[str]:
    return list(REGISTRY)


def get_card(name: str) -> ModelCard:
    """The card for ``name``; an unknown name raises with the closest known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name.lower(), REGISTRY, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "run 'edgecnn models' to list them"
    raise UnknownModelError(f"unknown model '{name}'; {hint}")


def build(name: str, num_classes: int | None = None, in_channels: int | None = None,
          input_size: int | None = None, **kwargs):
    """Build a torch model by registry name, defaults from its card. Needs the ``torch`` extra."""
    card = get_card(name)
    for label, value in (("num-classes", num_classes), ("in-channels", in_channels), ("input-size", input_size)):
        if value is not None and value < 1:
            raise UsageError(f"--{label} must be a positive integer, got {value}")
    require("torch", "torch", f"building model '{name}'")
    module, func = card.builder.split(":")
    builder = getattr(importlib.import_module(module), func)
    return builder(
        num_classes=card.num_classes if num_classes is None else num_classes,
        in_channels=card.input_channels if in_channels is None else in_channels,
        input_size=card.input_size if input_size is None else input_size,
        **kwargs,
    )
