"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition").

C1 6@5x5 -> S2 avg-pool -> C3 16@5x5 -> S4 avg-pool -> C5 fc 120 -> F6 fc 84 -> output, with tanh.
At 1x32x32 and 10 classes: 61,706 parameters. Two simplifications that every modern reproduction
makes: C3 is fully connected to S2 (the paper's sparse table saves 60 weights), and the
subsampling layers have no trainable coefficient; the RBF output becomes a linear layer.
"""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),  # C1
            nn.Tanh(),
            nn.AvgPool2d(2),  # S2
            nn.Conv2d(6, 16, 5),  # C3
            nn.Tanh(),
            nn.AvgPool2d(2),  # S4
        )
        side = ((input_size - 4) // 2 - 4) // 2  # 32 -> 5
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * side * side, 120),  # C5
            nn.Tanh(),
            nn.Linear(120, 84),  # F6
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 32, **_) -> LeNet5:
    return LeNet5(num_classes, in_channels, input_size)
