"""VGG (Simonyan & Zisserman 2015), configurations A (VGG-11) and D (VGG-16), with and without
batch norm. Layout matches torchvision's checkpoints (``features.N``, ``classifier.{0,3,6}``).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.nn import init_weights

# Channels per 3x3 conv; "M" is a 2x2 max-pool.
CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def make_layers(cfg: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(c, int(v), kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(v)))
        layers.append(nn.ReLU(inplace=True))
        c = int(v)
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_channels: int) -> VGG:
    return VGG(make_layers(CFGS[cfg], in_channels, batch_norm), num_classes)


def vgg11(num_classes: int = 1000, in_channels: int = 3, **_) -> VGG:
    return _vgg("A", False, num_classes, in_channels)


def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, **_) -> VGG:
    return _vgg("A", True, num_classes, in_channels)


def vgg16(num_classes: int = 1000, in_channels: int = 3, **_) -> VGG:
    return _vgg("D", False, num_classes, in_channels)


def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, **_) -> VGG:
    return _vgg("D", True, num_classes, in_channels)
