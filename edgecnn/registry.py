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
class Pretrained:
    """Published weights of a torchvision-layout model (ImageNet-1K for a classifier, COCO for a detector),
    and the eval transform they were measured with: a classifier's torchvision per-weight ``transforms()``
    (resize the shorter side, center-crop); a detector's is the model's own (``model.preprocess``:
    torchvision's detection transform), measured at ``crop`` x ``crop``.

    ``url``'s file name carries the first hex digits of the file's SHA-256 (``resnet18-f37072fd.pth``);
    that prefix is all torchvision publishes, so the download is checked against it, as
    ``torch.hub``'s ``check_hash`` does (see ``edgecnn.hub``)."""

    tag: str  # imagenet1k_v1 | imagenet1k_v2 | coco_v1 (torchvision's enum name, lower case)
    url: str
    crop: int
    resize: int
    interpolation: str = "bilinear"
    top1: float = 0.0  # torchvision's ImageNet-1K validation accuracy, percent
    top5: float = 0.0
    box_map: float = 0.0  # torchvision's COCO val2017 box mAP@[.50:.95], percent (a detector's weights)

    @property
    def dataset(self) -> str:
        """``COCO`` or ``ImageNet``: what the weights were trained on (the tag's family)."""
        return "COCO" if self.tag.startswith("coco") else "ImageNet"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def sha256_prefix(self) -> str:
        return self.filename.rsplit("-", 1)[1].split(".", 1)[0]


def _tv(file: str, top1: float, top5: float, tag: str = "imagenet1k_v1", crop: int = 224, resize: int = 256,
        interpolation: str = "bilinear") -> Pretrained:
    return Pretrained(tag, f"https://download.pytorch.org/models/{file}", crop, resize, interpolation, top1, top5)


def _tv_coco(file: str, box_map: float, size: int) -> Pretrained:
    return Pretrained("coco_v1", f"https://download.pytorch.org/models/{file}", size, size, box_map=box_map)


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
    # torchvision's ImageNet (or a detector's COCO) weights, the default (``--weights imagenet``/``coco``:
    # torchvision's DEFAULT) first
    pretrained: tuple[Pretrained, ...] = ()

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
              52_138, 333_056, "SimpleCNN, a minimal MNIST net (2 conv + 2 fc)", fixed_input=True),
    ModelCard("lenet5", "edgecnn.models.lenet:lenet5", "lenet", "classify", 1, 32, 10,
              61_706, 416_520, "LeCun et al. 1998, Gradient-based learning", fixed_input=True),
    ModelCard("alexnet", "edgecnn.models.alexnet:alexnet", "alexnet", "classify", 3, 224, 1000,
              61_100_840, 714_188_480, "Krizhevsky 2014, One weird trick (arXiv:1404.5997)", "alexnet",
              pretrained=(_tv("alexnet-owt-7be5be79.pth", 56.522, 79.066),)),
    ModelCard("vgg11", "edgecnn.models.vgg:vgg11", "vgg", "classify", 3, 224, 1000,
              132_863_336, 7_609_090_048, _VGG, "vgg11",
              pretrained=(_tv("vgg11-8a719046.pth", 69.02, 88.628),)),
    ModelCard("vgg11_bn", "edgecnn.models.vgg:vgg11_bn", "vgg", "classify", 3, 224, 1000,
              132_868_840, 7_609_090_048, _VGG, "vgg11_bn",
              pretrained=(_tv("vgg11_bn-6002323d.pth", 70.37, 89.81),)),
    ModelCard("vgg16", "edgecnn.models.vgg:vgg16", "vgg", "classify", 3, 224, 1000,
              138_357_544, 15_470_264_320, _VGG, "vgg16",
              pretrained=(_tv("vgg16-397923af.pth", 71.592, 90.382),)),
    ModelCard("vgg16_bn", "edgecnn.models.vgg:vgg16_bn", "vgg", "classify", 3, 224, 1000,
              138_365_992, 15_470_264_320, _VGG, "vgg16_bn",
              pretrained=(_tv("vgg16_bn-6c64b313.pth", 73.36, 91.516),)),
    ModelCard("resnet18", "edgecnn.models.resnet:resnet18", "resnet", "classify", 3, 224, 1000,
              11_689_512, 1_814_073_344, _HE16, "resnet18",
              pretrained=(_tv("resnet18-f37072fd.pth", 69.758, 89.078),)),
    ModelCard("resnet34", "edgecnn.models.resnet:resnet34", "resnet", "classify", 3, 224, 1000,
              21_797_672, 3_663_761_408, _HE16, "resnet34",
              pretrained=(_tv("resnet34-b627a593.pth", 73.314, 91.42),)),
    ModelCard("resnet50", "edgecnn.models.resnet:resnet50", "resnet", "classify", 3, 224, 1000,
              25_557_032, 4_089_184_256, _HE16, "resnet50",
              pretrained=(_tv("resnet50-11ad3fa6.pth", 80.858, 95.434, "imagenet1k_v2", resize=232),
                          _tv("resnet50-0676ba61.pth", 76.13, 92.862))),
    ModelCard("se_resnet18", "edgecnn.models.resnet:se_resnet18", "resnet", "classify", 3, 224, 1000,
              11_778_592, 1_814_160_384, "Hu et al. 2018, Squeeze-and-Excitation Networks (arXiv:1709.01507)"),
    ModelCard("mobilenetv1", "edgecnn.models.mobilenet:mobilenetv1", "mobilenet", "classify", 3, 224, 1000,
              4_231_976, 568_740_352, _HOWARD17),
    ModelCard("mobilenetv2", "edgecnn.models.mobilenet:mobilenetv2", "mobilenet", "classify", 3, 224, 1000,
              3_504_872, 300_774_272, _SANDLER18, "mobilenet_v2",
              pretrained=(_tv("mobilenet_v2-7ebf99e0.pth", 72.154, 90.822, "imagenet1k_v2", resize=232),
                          _tv("mobilenet_v2-b0353104.pth", 71.878, 90.286))),
    ModelCard("mobilenetv3_large", "edgecnn.models.mobilenetv3:mobilenetv3_large", "mobilenetv3", "classify",
              3, 224, 1000, 5_483_032, 216_589_760, _HOWARD19, "mobilenet_v3_large",
              pretrained=(_tv("mobilenet_v3_large-5c1a4163.pth", 75.274, 92.566, "imagenet1k_v2", resize=232),
                          _tv("mobilenet_v3_large-8738ca79.pth", 74.042, 91.34))),
    ModelCard("mobilenetv3_small", "edgecnn.models.mobilenetv3:mobilenetv3_small", "mobilenetv3", "classify",
              3, 224, 1000, 2_542_856, 56_510_400, _HOWARD19, "mobilenet_v3_small",
              pretrained=(_tv("mobilenet_v3_small-047dcff4.pth", 67.668, 87.402),)),
    ModelCard("efficientnet_b0", "edgecnn.models.efficientnet:efficientnet_b0", "efficientnet", "classify",
              3, 224, 1000, 5_288_548, 385_814_752, _TAN19, "efficientnet_b0",
              pretrained=(_tv("efficientnet_b0_rwightman-7f5810bc.pth", 77.692, 93.532, interpolation="bicubic"),)),
    ModelCard("efficientnet_b1", "edgecnn.models.efficientnet:efficientnet_b1", "efficientnet", "classify",
              3, 240, 1000, 7_794_184, 686_802_832, _TAN19, "efficientnet_b1",
              pretrained=(_tv("efficientnet_b1-c27df63c.pth", 79.838, 94.934, "imagenet1k_v2", 240, 255),
                          _tv("efficientnet_b1_rwightman-bac287d4.pth", 78.642, 94.186, crop=240,
                              interpolation="bicubic"))),
    ModelCard("efficientnet_b2", "edgecnn.models.efficientnet:efficientnet_b2", "efficientnet", "classify",
              3, 260, 1000, 9_109_994, 993_561_872, _TAN19, "efficientnet_b2",
              pretrained=(_tv("efficientnet_b2_rwightman-c35c1473.pth", 80.608, 95.31, crop=288, resize=288,
                              interpolation="bicubic"),)),
    ModelCard("efficientnet_b3", "edgecnn.models.efficientnet:efficientnet_b3", "efficientnet", "classify",
              3, 300, 1000, 12_233_232, 1_827_141_392, _TAN19, "efficientnet_b3",
              pretrained=(_tv("efficientnet_b3_rwightman-b3899882.pth", 82.008, 96.054, crop=300, resize=320,
                              interpolation="bicubic"),)),
    ModelCard("efficientnet_b4", "edgecnn.models.efficientnet:efficientnet_b4", "efficientnet", "classify",
              3, 380, 1000, 19_341_616, 4_393_771_024, _TAN19, "efficientnet_b4",
              pretrained=(_tv("efficientnet_b4_rwightman-23ab8bcd.pth", 83.384, 96.594, crop=380, resize=384,
                              interpolation="bicubic"),)),
    ModelCard("convnext_tiny", "edgecnn.models.convnext:convnext_tiny", "convnext", "classify", 3, 224, 1000,
              28_589_128, 4_455_531_264, "Liu et al. 2022, A ConvNet for the 2020s (arXiv:2201.03545)",
              "convnext_tiny",
              pretrained=(_tv("convnext_tiny-983f1562.pth", 82.52, 96.146, resize=236),)),
    ModelCard("ssd300_vgg16", "edgecnn.models.ssd:ssd300_vgg16", "vgg", "detect", 3, 300, 91,
              35_641_826, 34_858_153_472, "Liu et al. 2016, SSD: Single Shot MultiBox Detector (arXiv:1512.02325)",
              "ssd300_vgg16", pretrained=(_tv_coco("ssd300_vgg16_coco-b556d3b4.pth", 25.1, 300),)),
    ModelCard("ssdlite_mobilenetv2", "edgecnn.models.ssdlite:ssdlite_mobilenetv2", "ssdlite", "detect", 3, 320, 91,
              4_664_988, 870_061_504, "Sandler et al. 2018, MobileNetV2, sec 6.2 SSDLite (arXiv:1801.04381)"),
    ModelCard("ssdlite320_mobilenetv3_large", "edgecnn.models.ssdlite:ssdlite320_mobilenetv3_large", "ssdlite",
              "detect", 3, 320, 91, 3_440_060, 583_171_904,
              "Howard et al. 2019, MobileNetV3, sec 6.3 SSDLite (arXiv:1905.02244)", "ssdlite320_mobilenet_v3_large",
              pretrained=(_tv_coco("ssdlite320_mobilenet_v3_large_coco-a79551df.pth", 21.3, 320),)),
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
    close = suggestions(name)
    hint = (f"did you mean {' or '.join(', '.join(repr(c) for c in close).rsplit(', ', 1))}?" if close
            else "run 'edgecnn models' to list them")
    raise UnknownModelError(f"unknown model '{name}'; {hint}")


def suggestions(name: str) -> list[str]:
    """Known names close to ``name``: every name that starts with it (a family: ``resnet`` -> resnet18,
    resnet34, resnet50, se_resnet18), else the spellings about as close as the closest (a typo:
    ``mobilenet2`` -> mobilenetv2)."""
    key = name.lower()
    if len(key) >= 3 and (family := [n for n in REGISTRY if n.startswith(key) or f"_{key}" in n]):
        return family
    ratio = {n: difflib.SequenceMatcher(None, key, n).ratio() for n in REGISTRY}
    best = max(ratio.values())
    return [n for n, r in sorted(ratio.items(), key=lambda kv: -kv[1]) if r >= max(0.6, best - 0.05)]


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
