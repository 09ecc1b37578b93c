"""Torch building blocks shared by the model families."""

from edgecnn.nn.blocks import (
    ConvBNAct,
    DepthwiseSeparable,
    InvertedResidual,
    SqueezeExcite,
    StochasticDepth,
    init_weights,
    make_divisible,
)

__all__ = [
    "ConvBNAct",
    "DepthwiseSeparable",
    "InvertedResidual",
    "SqueezeExcite",
    "StochasticDepth",
    "init_weights",
    "make_divisible",
]
