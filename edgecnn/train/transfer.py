"""Transfer learning: initial weights (``--init``), freezing (``--freeze``) and layer-wise learning
rates (``--layer-lr-decay``), the strategies of the CNN FAQ this project grew from:

- little data, similar to the pretraining data: freeze everything but the head (``--freeze backbone``);
- little data, dissimilar: freeze only the shallow, generic layers (``--freeze stages:N``);
- much data: fine-tune everything with a small learning rate, smaller still in the shallow layers
  (``--layer-lr-decay 0.7``).

Every zoo model splits the same way. The *backbone* is ``model.features`` (or, for ResNet, the
top-level modules before the global pool) cut into *stages*: a new stage starts at each module that
downsamples (a stride > 1 convolution or pooling), and stages without parameters are dropped. So
ResNet-18 and MobileNetV2 have 5 stages, LeNet-5 and SimpleCNN 2. The *head* is everything after
the backbone (pooling and classifier). ``describe(model)`` lists them.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgecnn.errors import UsageError
from edgecnn.train.checkpoint import other_model

_DOWNSAMPLERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def split_model(model: nn.Module) -> tuple[list[list[nn.Module]], list[nn.Module]]:
    """``(stages, head)``: backbone stages input -> output (each a list of modules) and the head modules."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        units = list(features.children())
        head = [m for name, m in model.named_children() if name != "features"]
    else:
        children = list(model.children())
        cut = next((i for i, m in enumerate(children) if isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear))),
                   len(children))
        units, head = children[:cut], children[cut:]
    stages: list[list[nn.Module]] = []
    for unit in units:
        if not stages or _downsamples(unit):
            stages.append([])
        stages[-1].append(unit)
    return [s for s in stages if any(True for m in s for _ in m.parameters())], head


def _downsamples(module: nn.Module) -> bool:
    for m in module.modules():
        if isinstance(m, _DOWNSAMPLERS):
            stride = m.stride if m.stride is not None else m.kernel_size
            if max(stride if isinstance(stride, tuple) else (stride,)) > 1:
                return True
    return False


def _count(modules: list[nn.Module]) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def describe(model: nn.Module) -> list[tuple[str, int]]:
    """``[("stage1", params), ..., ("head", params)]``."""
    stages, head = split_model(model)
    return [(f"stage{i + 1}", _count(s)) for i, s in enumerate(stages)] + [("head", _count(head))]


# ------------------------------------------------------------------------------------------- freezing


def parse_freeze(spec: str) -> int | None:
    """``none`` -> 0, ``backbone`` -> None (all stages), ``stages:N`` -> N."""
    if spec == "none":
        return 0
    if spec == "backbone":
        return None
    if spec.startswith("stages:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = -1
        if n >= 1:
            return n
    raise UsageError(f"--freeze takes none, backbone or stages:N (N >= 1), got '{spec}'")


def freeze(model: nn.Module, spec: str) -> list[nn.Module]:
    """Stop gradients to the frozen stages; returns the frozen modules (keep them in eval mode with
    ``set_train_mode``, so their BatchNorm statistics stay as loaded)."""
    n = parse_freeze(spec)
    stages, _ = split_model(model)
    if n is None:
        n = len(stages)
    elif n > len(stages):
        raise UsageError(f"--freeze {spec}: {type(model).__name__} has {len(stages)} stages; "
                         f"use stages:1..{len(stages)} or backbone")
    frozen = [m for s in stages[:n] for m in s]
    for m in frozen:
        for p in m.parameters():
            p.requires_grad_(False)
    return frozen


def set_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """``model.train()``, except the frozen modules: their BN keeps its running statistics (and their
    dropout is off), as a frozen feature extractor should."""
    model.train()
    for m in frozen:
        m.eval()


# ------------------------------------------------------------------------------------ parameter groups


def param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float | None = None) -> list[dict]:
    """Optimizer parameter groups, head first. With ``layer_decay`` F the head learns at ``lr``, the
    last stage at ``lr * F``, the one before at ``lr * F**2`` and so on back to the stem. Biases and
    norm weights (1-D parameters) get no weight decay. Frozen parameters are left out. Each group
    carries ``name`` and ``base_lr`` (the schedule scales ``base_lr``)."""
    if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
        raise UsageError(f"--layer-lr-decay must be in (0, 1], got {layer_decay}")
    stages, head = split_model(model)
    named = [("head", head)] + [(f"stage{i + 1}", s) for i, s in reversed(list(enumerate(stages)))]
    groups, seen = [], set()
    for depth, (name, modules) in enumerate(named):
        scale = layer_decay**depth if layer_decay else 1.0
        params = [p for m in modules for p in m.parameters() if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        for suffix, ps, wd in (("", [p for p in params if p.ndim > 1], weight_decay),
                               (".no_decay", [p for p in params if p.ndim <= 1], 0.0)):
            if ps:
                groups.append({"params": ps, "lr": lr * scale, "base_lr": lr * scale, "weight_decay": wd,
                               "name": name + suffix})
    left = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if left:  # a model whose modules escape split_model: train them at the head's rate
        raise RuntimeError(f"parameters outside every stage and the head: {left[:3]}")
    return groups


# --------------------------------------------------------------------------------------- initial weights


def load_init(model: nn.Module, path: str | Path, model_name: str) -> list[str]:
    """Load ``path`` (an edgecnn checkpoint of ``model_name`` or a torchvision-format state dict) into
    ``model`` with strict key and shape checks (``edgecnn.export.weights``, shared with the exporter).
    The head is replaced (left at its fresh init) when the class count differs, and a 3-channel first
    convolution is summed to 1 channel for a grayscale model; anything else that does not fit raises
    one line naming the first missing/unexpected keys and the first shape mismatch. Returns notes."""
    from edgecnn.export.weights import load_into, read_weights

    weights = read_weights(path)
    if weights.model is not None and weights.model != model_name:
        raise other_model(path, weights.model, model_name)
    state = dict(weights.state_dict)
    notes = []
    own = model.state_dict()
    first = next((f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    w = state.get(first)
    if w is not None and w.ndim == 4 and w.shape[1] == 3 and own[first].shape[1] == 1 \
            and w.shape[0] == own[first].shape[0]:
        state[first] = w.sum(dim=1, keepdim=True)  # gray = R + G + B: the RGB filters' response to gray
        notes.append(f"{first} summed over RGB for 1-channel input")
    replaced = load_into(model, state, f"--init {path}", replace_head=True)
    if replaced:
        notes.append(f"head {replaced[0].rsplit('.', 1)[0]} replaced: {state[replaced[0]].shape[0]} -> "
                     f"{own[replaced[0]].shape[0]} classes (fresh init)")
    return notes
