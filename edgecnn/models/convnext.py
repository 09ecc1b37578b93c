"""ConvNeXt-Tiny (Liu et al. 2022, A ConvNet for the 2020s): a ResNet modernised step by step towards
the Swin Transformer's design while staying a pure CNN: a 4x4 stride-4 "patchify" stem, stages of
7x7 depthwise convolutions followed by an inverted-bottleneck MLP (LayerNorm, 4x expansion, GELU),
layer scale on every residual branch, LayerNorm instead of BatchNorm, separate 2x2 downsampling layers.

Layout matches torchvision's checkpoints: ``features.0`` stem (conv + LayerNorm2d), ``features.1/3/5/7``
stages of ``CNBlock`` (``layer_scale``, ``block.0`` depthwise conv, ``block.2`` LayerNorm, ``block.3`` and
``block.5`` Linear), ``features.2/4/6`` downsampling (LayerNorm2d + conv), ``classifier.0`` LayerNorm2d,
``classifier.2`` Linear.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgecnn.nn import StochasticDepth

TINY = [
    # channels, blocks
    (96, 3),
    (192, 3),
    (384, 9),
    (768, 3),
]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (each pixel normalised on its own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class CNBlock(nn.Module):
    """x + drop_path(gamma * MLP(LN(dwconv7x7(x)))): the MLP runs channels-last, as Linear layers."""

    def __init__(self, dim: int, layer_scale: float = 1e-6, drop_path: float = 0.0):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            Permute([0, 2, 3, 1]),
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
            Permute([0, 3, 1, 2]),
        )
        # Small per-channel scale (1e-6 at init) lets each block start close to the identity.
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.stochastic_depth = StochasticDepth(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stochastic_depth(self.layer_scale * self.block(x))


class ConvNeXt(nn.Module):
    def __init__(self, stages: list[tuple[int, int]], num_classes: int = 1000, in_channels: int = 3,
                 stochastic_depth: float = 0.1, layer_scale: float = 1e-6):
        super().__init__()
        first = stages[0][0]
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, first, 4, stride=4),
                                                 LayerNorm2d(first, eps=1e-6))]
        total = sum(n for _, n in stages)
        done = 0
        for i, (dim, n) in enumerate(stages):
            blocks = []
            for _ in range(n):
                # Stochastic depth grows linearly from 0 at the first block to the maximum at the last.
                blocks.append(CNBlock(dim, layer_scale, stochastic_depth * done / (total - 1)))
                done += 1
            layers.append(nn.Sequential(*blocks))
            if i + 1 < len(stages):
                layers.append(nn.Sequential(LayerNorm2d(dim, eps=1e-6), nn.Conv2d(dim, stages[i + 1][0], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = stages[-1][0]
        self.classifier = nn.Sequential(LayerNorm2d(last, eps=1e-6), nn.Flatten(1), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def convnext_tiny(num_classes: int = 1000, in_channels: int = 3, input_size: int = 224) -> ConvNeXt:
    return ConvNeXt(TINY, num_classes, in_channels, stochastic_depth=0.1)
