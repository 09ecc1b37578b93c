"""MobileNetV1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

V1 stacks depthwise-separable units; V2 stacks inverted residuals with linear bottlenecks. Both take
a width multiplier. V2's layout matches torchvision's checkpoints (``features.N``, ``classifier.1``);
torchvision publishes no V1, so V1 uses timm-style names (``conv_dw``, ``conv_pw``).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.nn import ConvBNAct, DepthwiseSeparable, InvertedResidual, init_weights, make_divisible

# MobileNetV1 body after the stem (Table 1 of the paper): out channels, stride.
V1_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

# MobileNetV2 body (Table 2 of the paper).
V2_CFG = [
    # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.0):
        super().__init__()
        c = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_channels, c, 3, stride=2)]
        for out, stride in V1_CFG:
            out = make_divisible(out * width_mult)
            layers.append(DepthwiseSeparable(c, out, stride))
            c = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2):
        super().__init__()
        c = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(in_channels, c, 3, stride=2, act=nn.ReLU6)]
        for t, ch, n, s in V2_CFG:
            out = make_divisible(ch * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, expanded=round(c * t)))
                c = out
        layers.append(ConvBNAct(c, self.last_channel, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenetv1(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, **_) -> MobileNetV1:
    return MobileNetV1(num_classes, in_channels, width_mult)


def mobilenetv2(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, **_) -> MobileNetV2:
    return MobileNetV2(num_classes, in_channels, width_mult)
