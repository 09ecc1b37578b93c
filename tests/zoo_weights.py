"""Zoo weights that behave like trained ones, for comparing two runtimes on the same file (needs torch).

At init, in eval mode, BatchNorm's running statistics (mean 0, var 1) do not fit the activations: through a
deep random net they shrink towards zero (a random-init MobileNetV2's logits were ~1e-16 at 32 px), so every
output is noise around a tie and neither agreement nor a relative error means anything. Here the running
statistics are gathered from a few random batches (a plain average, as ``train``'s precise BN does) and
floored at 1e-2 (a dead channel's tiny variance would magnify rounding by 1/sqrt(var)), so outputs have
their natural scale and spread. Used by tests/export/test_openvino_parity.py and benchmarks/runtimes.py.
"""

from __future__ import annotations

from pathlib import Path


def conditioned_checkpoint(name: str, path: Path, *, num_classes: int | None = None, input_size: int | None = None,
                           batches: int = 2, batch_size: int = 4, seed: int = 0) -> Path:
    """Build zoo model ``name`` (at ``input_size``, ``num_classes``), gather its BN statistics on random
    inputs in [-2, 2), save its state dict to ``path`` (what ``export --weights`` reads); returns ``path``."""
    import torch

    from edgecnn import registry

    torch.manual_seed(seed)
    kwargs = {k: v for k, v in (("num_classes", num_classes), ("input_size", input_size)) if v is not None}
    model = registry.build(name, **kwargs)
    card = registry.get_card(name)
    size = input_size or card.input_size
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(batch_size, card.input_channels, size, size) * 4 - 2)
        for m in bns:
            m.running_var.clamp_(min=1e-2)
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path
