"""SimpleCNN: the two-conv MNIST network of the CNN FAQ this project grew from.

conv 8@3x3 p1 -> ReLU -> pool -> conv 16@3x3 p1 -> ReLU -> pool -> fc 64 -> ReLU -> fc classes.
At 1x28x28 and 10 classes it has 52,138 parameters. He initialisation, as the FAQ recommends for
ReLU networks.
"""

from __future__ import annotations

import torch
from torch import nn


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        # The flatten width fixes the input size, as in the FAQ's network: 28 -> 7x7x16 = 784.
        side = input_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, num_classes),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def simplecnn(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, **_) -> SimpleCNN:
    return SimpleCNN(num_classes, in_channels, input_size)
