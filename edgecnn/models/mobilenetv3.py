"""MobileNetV3 Large and Small (Howard et al. 2019, "Searching for MobileNetV3"): inverted
residuals with optional SE (hard-sigmoid gate) and hard-swish in the deeper half.

Layout matches torchvision's checkpoints: ``features.N.block.K``, SE ``fc1/fc2``, classifier
``0: Linear, 1: Hardswish, 2: Dropout, 3: Linear``. BN uses eps=1e-3, momentum=0.01 as torchvision.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.nn import ConvBNAct, InvertedResidual, SqueezeExcite, init_weights, make_divisible

RE, HS = nn.ReLU, nn.Hardswish

LARGE = [
    # in, kernel, expanded, out, se, act, stride
    (16, 3, 16, 16, False, RE, 1),
    (16, 3, 64, 24, False, RE, 2),
    (24, 3, 72, 24, False, RE, 1),
    (24, 5, 72, 40, True, RE, 2),
    (40, 5, 120, 40, True, RE, 1),
    (40, 5, 120, 40, True, RE, 1),
    (40, 3, 240, 80, False, HS, 2),
    (80, 3, 200, 80, False, HS, 1),
    (80, 3, 184, 80, False, HS, 1),
    (80, 3, 184, 80, False, HS, 1),
    (80, 3, 480, 112, True, HS, 1),
    (112, 3, 672, 112, True, HS, 1),
    (112, 5, 672, 160, True, HS, 2),
    (160, 5, 960, 160, True, HS, 1),
    (160, 5, 960, 160, True, HS, 1),
]
SMALL = [
    (16, 3, 16, 16, True, RE, 2),
    (16, 3, 72, 24, False, RE, 2),
    (24, 3, 88, 24, False, RE, 1),
    (24, 5, 96, 40, True, HS, 2),
    (40, 5, 240, 40, True, HS, 1),
    (40, 5, 240, 40, True, HS, 1),
    (40, 5, 120, 48, True, HS, 1),
    (48, 5, 144, 48, True, HS, 1),
    (48, 5, 288, 96, True, HS, 2),
    (96, 5, 576, 96, True, HS, 1),
    (96, 5, 576, 96, True, HS, 1),
]
BN = {"bn_eps": 1e-3, "bn_momentum": 0.01}


class MobileNetV3(nn.Module):
    def __init__(self, cfg: list[tuple], last_channel: int, num_classes: int = 1000, in_channels: int = 3,
                 width_mult: float = 1.0, dropout: float = 0.2):
        super().__init__()

        def w(c: int) -> int:
            return make_divisible(c * width_mult)

        layers: list[nn.Module] = [ConvBNAct(in_channels, w(16), 3, stride=2, act=HS, **BN)]
        for cin, k, exp, out, use_se, act, stride in cfg:
            se = SqueezeExcite(w(exp), make_divisible(w(exp) // 4), gate=nn.Hardsigmoid) if use_se else None
            layers.append(InvertedResidual(w(cin), w(out), stride, w(exp), k, act, se, layout="mbconv", **BN))
        last_conv = 6 * w(cfg[-1][3])
        layers.append(ConvBNAct(w(cfg[-1][3]), last_conv, 1, act=HS, **BN))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenetv3_large(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, **_) -> MobileNetV3:
    return MobileNetV3(LARGE, make_divisible(1280 * width_mult), num_classes, in_channels, width_mult)


def mobilenetv3_small(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, **_) -> MobileNetV3:
    return MobileNetV3(SMALL, make_divisible(1024 * width_mult), num_classes, in_channels, width_mult)
