"""Building blocks: ConvBNAct, DepthwiseSeparable, SqueezeExcite, InvertedResidual.

Module names follow torchvision where torchvision publishes checkpoints for the family that uses the
block (``Conv2dNormActivation`` is a Sequential ``0: conv, 1: bn, 2: act``; SE has ``fc1``/``fc2``),
so a torchvision state dict loads with ``strict=True``. Disabled options are ``nn.Identity``-free:
an absent layer is simply not in the Sequential, because an extra Identity would not change keys
but an extra index would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ActLayer = Callable[..., nn.Module] | None


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never going more than 10% below ``v``.

    This is the channel rounding of the MobileNet/EfficientNet reference code; width multipliers
    must use it to reproduce the published channel counts.
    """
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation; 'same' padding for odd kernels.

    ``act=None`` leaves the activation out (a linear bottleneck projection).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: ActLayer = nn.ReLU,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum),
        ]
        if act is not None:
            layers.append(act(inplace=True) if _takes_inplace(act) else act())
        super().__init__(*layers)
        self.out_channels = out_ch


def _takes_inplace(act: Callable[..., nn.Module]) -> bool:
    return act in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU)


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 unit: depthwise KxK conv (``conv_dw``) then pointwise 1x1 conv (``conv_pw``).

    Against a standard KxK convolution of the same shape it costs ``1/C_out + 1/K^2`` of the
    weights and multiply-adds (Howard et al. 2017, eq. 5).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel_size: int = 3, act: ActLayer = nn.ReLU):
        super().__init__()
        self.conv_dw = ConvBNAct(in_ch, in_ch, kernel_size, stride, groups=in_ch, act=act)
        self.conv_pw = ConvBNAct(in_ch, out_ch, 1, act=act)
        self.in_channels, self.out_channels, self.kernel_size = in_ch, out_ch, kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.conv_dw(x))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global pool -> 1x1 reduce -> act -> 1x1 expand ->
    gate, multiplied into the input. ``squeeze_ch`` fixes the bottleneck width (callers derive it
    from a reduction ratio the way their reference does: ``C // r``, or ``make_divisible(C/4)``).
    """

    def __init__(
        self,
        channels: int,
        squeeze_ch: int,
        act: Callable[..., nn.Module] = nn.ReLU,
        gate: Callable[..., nn.Module] = nn.Sigmoid,
    ):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_ch, 1)
        self.fc2 = nn.Conv2d(squeeze_ch, channels, 1)
        self.activation = act()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * s


class StochasticDepth(nn.Module):
    """Drop the residual branch per sample with probability ``p`` in training (Huang et al. 2016);
    identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck (Sandler et al. 2018): 1x1 expand -> KxK depthwise
    -> [SE] -> 1x1 linear projection, with a skip when stride is 1 and the width is unchanged.

    ``expanded`` is the hidden width (``round(in_ch * t)`` in MobileNetV2); no expand conv when it
    equals ``in_ch``. Two torchvision layouts exist and their checkpoints fix the names:
    ``layout="v2"`` (MobileNetV2: body ``conv``, projection as bare ``conv, bn`` entries) and
    ``layout="mbconv"`` (MobileNetV3 / EfficientNet: body ``block``, projection a ConvBNAct).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        expanded: int,
        kernel_size: int = 3,
        act: Callable[..., nn.Module] = nn.ReLU6,
        se: nn.Module | None = None,
        drop_path: float = 0.0,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        layout: str = "v2",
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if layout not in ("v2", "mbconv"):
            raise ValueError(f"layout must be 'v2' or 'mbconv', got {layout!r}")
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        layers: list[nn.Module] = []
        if expanded != in_ch:
            layers.append(ConvBNAct(in_ch, expanded, 1, act=act, **bn))
        layers.append(ConvBNAct(expanded, expanded, kernel_size, stride, groups=expanded, act=act, **bn))
        if se is not None:
            layers.append(se)
        project = ConvBNAct(expanded, out_ch, 1, act=None, **bn)
        layers.extend(project if layout == "v2" else [project])
        self._body = "conv" if layout == "v2" else "block"
        self.add_module(self._body, nn.Sequential(*layers))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        self.stochastic_depth = StochasticDepth(drop_path) if self.use_res_connect and drop_path else None
        self.in_channels, self.out_channels, self.kernel_size = in_ch, out_ch, kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, self._body)(x)
        if not self.use_res_connect:
            return y
        if self.stochastic_depth is not None:
            y = self.stochastic_depth(y)
        return x + y


def init_weights(model: nn.Module) -> None:
    """The reference initialisation of the torchvision CNNs: He (fan-out) for convolutions,
    BN to identity, small normal for linear layers, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
