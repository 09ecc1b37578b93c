"""Deterministic, RNG-free weights for any state-dict layout, shared by the torchvision fixture
generator (run once in a scratch environment with torchvision) and the layout tests here, so both
sides load bit-identical tensors without storing checkpoints."""

from __future__ import annotations

import math

import torch

TV_NUM_CLASSES = 10
TV_INPUT = (1, 3, 64, 64)


def fill(key: str, shape: list[int], index: int) -> torch.Tensor:
    n = math.prod(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    # A sine over a prime period, tiled: cheap for VGG's 100M-weight layers, never constant.
    period = min(n, 9973)
    wave = torch.sin(torch.arange(period, dtype=torch.float32) * 0.7 + index).repeat(n // period + 1)[:n]
    wave = wave.reshape(shape)
    if key.endswith("running_var"):
        t = 1.0 + 0.5 * wave.abs()
    elif key.endswith("running_mean") or key.endswith("bias"):
        t = 0.1 * wave
    elif len(shape) == 1:  # BN scale
        t = 0.5 + 0.1 * wave  # < 1 keeps deep residual stacks from blowing up
    else:  # conv / linear weight, fan-in scaled so activations stay O(1)
        t = wave * math.sqrt(2.0 / (n // shape[0]))
    return t


def state_dict_for(layout: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    return {k: fill(k, list(s), i) for i, (k, s) in enumerate(layout)}


def fixed_input() -> torch.Tensor:
    n = math.prod(TV_INPUT)
    return torch.sin(torch.arange(n, dtype=torch.float32) * 0.01).reshape(TV_INPUT)
