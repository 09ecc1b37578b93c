"""EfficientNet B0-B4 (Tan & Le 2019): MBConv blocks (inverted residual + SE with SiLU) scaled from
one B0 table by the compound coefficients (width, depth, resolution).

Layout matches torchvision's checkpoints: ``features.0`` stem, ``features.1..7`` stages of
``block``-bodied MBConvs, ``features.8`` head conv, ``classifier.1``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecnn.nn import ConvBNAct, InvertedResidual, SqueezeExcite, init_weights, make_divisible

B0 = [
    # expand, kernel, stride, in, out, layers
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
]
# name: width multiplier, depth multiplier, resolution (paper), dropout
SCALING = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
}


class EfficientNet(nn.Module):
    def __init__(self, width: float, depth: float, dropout: float, num_classes: int = 1000,
                 in_channels: int = 3, stochastic_depth: float = 0.2):
        super().__init__()

        def w(c: int) -> int:
            return make_divisible(c * width)

        stem = w(B0[0][3])
        layers: list[nn.Module] = [ConvBNAct(in_channels, stem, 3, stride=2, act=nn.SiLU)]
        total = sum(math.ceil(n * depth) for *_, n in B0)
        done = 0
        for t, k, s, cin, cout, n in B0:
            stage: list[nn.Module] = []
            for i in range(math.ceil(n * depth)):
                c_in = w(cin) if i == 0 else w(cout)
                se = SqueezeExcite(c_in * t, max(1, c_in // 4), act=nn.SiLU)
                # Stochastic depth grows linearly with block index, as in the reference.
                p = stochastic_depth * done / total
                stage.append(InvertedResidual(c_in, w(cout), s if i == 0 else 1, c_in * t, k, nn.SiLU, se,
                                              drop_path=p, layout="mbconv"))
                done += 1
            layers.append(nn.Sequential(*stage))
        last = 4 * w(B0[-1][4])
        layers.append(ConvBNAct(w(B0[-1][4]), last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(last, num_classes))
        init_weights(self)
        bound = 1.0 / math.sqrt(num_classes)
        nn.init.uniform_(self.classifier[1].weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _builder(variant: str):
    width, depth, _, dropout = SCALING[variant]

    def build(num_classes: int = 1000, in_channels: int = 3, **_) -> EfficientNet:
        return EfficientNet(width, depth, dropout, num_classes, in_channels)

    build.__name__ = f"efficientnet_{variant}"
    return build


efficientnet_b0 = _builder("b0")
efficientnet_b1 = _builder("b1")
efficientnet_b2 = _builder("b2")
efficientnet_b3 = _builder("b3")
efficientnet_b4 = _builder("b4")
