"""Weights files -> zoo models: an edgecnn checkpoint or a torchvision-format state dict, read and loaded
the same way by ``train`` (``--init``, ``--resume``), ``export``, ``eval`` and ``bench`` (which is why this
sits below train/ and export/), with ONE path from a checkpoint to a model: ``build_model`` (the zoo
model as the checkpoint's config describes it: classes, input channels and size, width) and
``model_from_weights`` (that model with the weights loaded).

Always ``torch.load(weights_only=True)``: a checkpoint is data, never code. A state dict that does not
fit is refused with one line naming the first missing/unexpected keys and the first shape mismatch;
a head of another size is replaced only when the caller asks (``replace_head=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn import registry
from edgecnn.errors import EdgeCNNError

# registry.build's, as a checkpoint keeps them (a detector's anchor_scales: its anchors are in no state dict)
MODEL_KEYS = ("num_classes", "in_channels", "input_size", "width_mult", "anchor_scales")


class WeightsError(EdgeCNNError):
    """A weights file that cannot be read or does not fit the model."""


@dataclass
class WeightsFile:
    """What a weights file holds. ``model``/``config``/``contract`` are set for edgecnn checkpoints."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    model: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    contract: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


def read_weights(path: str | Path) -> WeightsFile:
    from edgecnn.train.checkpoint import is_checkpoint_dict, load_file, validate

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    obj = load_file(path)  # torch.load(weights_only=True) with one-line errors
    if is_checkpoint_dict(obj):
        ck = validate(obj, path)
        return WeightsFile(path, ck["state_dict"], ck["model"], ck.get("config") or {}, ck.get("contract"),
                           ck.get("metrics"))
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):  # common wrappers
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict (name -> tensor) or an edgecnn checkpoint")
    # DataParallel/DDP checkpoints prefix every key with "module."
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return WeightsFile(path, obj)


def build_model(name: str, config: Mapping[str, Any] | None = None, **override: Any) -> nn.Module:
    """Zoo model ``name`` as a checkpoint's ``config`` describes it (``MODEL_KEYS``), each value replaced
    by an ``override`` that is not None; the model card's defaults for what neither gives. A width of 1.0
    is not passed (models without a width multiplier take none)."""
    kwargs = {k: config[k] for k in MODEL_KEYS if config and config.get(k) is not None}
    kwargs.update({k: v for k, v in override.items() if v is not None})
    for k in ("num_classes", "in_channels", "input_size"):
        if k in kwargs:
            kwargs[k] = int(kwargs[k])
    if "width_mult" in kwargs:
        kwargs["width_mult"] = float(kwargs["width_mult"])
        if kwargs["width_mult"] == 1.0:
            del kwargs["width_mult"]
    if "anchor_scales" in kwargs:
        kwargs["anchor_scales"] = [float(s) for s in kwargs["anchor_scales"]]
    return registry.build(name, **kwargs)


def model_from_weights(weights: WeightsFile, **override: Any) -> nn.Module:
    """An edgecnn checkpoint's model (``build_model`` from its name and config, ``override`` as there) with
    its weights loaded strictly; a bare state dict names no architecture and is refused."""
    if weights.model is None:
        raise WeightsError(f"{weights.path} is a bare state dict, which names no architecture; "
                           "give an edgecnn checkpoint (from edgecnn train) or a zoo name with --weights")
    model = build_model(weights.model, weights.config, **override)
    load_into(model, weights.state_dict, str(weights.path))
    return model


def stored_config(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint's config keeps of ``model`` beyond its classes, channels and size: its width
    multiplier, when it has one other than 1.0, and a detector's anchor scales when they are not its
    defaults (``build_model`` reads both back)."""
    out: dict[str, Any] = {}
    width = getattr(model, "width_mult", None)
    if width is not None and float(width) != 1.0:
        out["width_mult"] = float(width)
    if getattr(model, "anchor_scales", None) is not None:
        out["anchor_scales"] = [float(s) for s in model.anchor_scales]
    return out


def head_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the classification head: the final Linear layer, or what the model names
    (a detector's per-map class predictors)."""
    if hasattr(model, "head_keys"):
        return model.head_keys()
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return [f"{name}.weight", f"{name}.bias"]


def load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str, replace_head: bool = False) -> list[str]:
    """Load ``state`` with strict key and shape checks. Returns the keys left at their fresh init
    (the replaced head), empty when everything loaded."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    skipped: list[str] = []
    if replace_head and mismatched and set(mismatched) <= set(head_keys(model)):
        state = {k: v for k, v in state.items() if k not in mismatched}
        skipped, mismatched = mismatched, []
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape mismatch at '{k}': file {list(state[k].shape)} vs model {list(own[k].shape)}")
        hint = _hint(model, state, mismatched)
        raise WeightsError(f"{source} does not fit the model: {'; '.join(parts)}{hint}")
    model.load_state_dict({**own, **state} if skipped else state, strict=True)
    return skipped


def _first(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _hint(model: nn.Module, state: dict[str, torch.Tensor], mismatched: list[str]) -> str:
    heads = head_keys(model)
    if mismatched and set(mismatched) <= set(heads):
        own = int(model.state_dict()[heads[0]].shape[0])
        per_class = own // getattr(model, "num_classes", own) or 1  # a detector predicts each class per anchor
        n = int(state[heads[0]].shape[0]) // per_class
        return f"; the file has a {n}-class head: pass --num-classes {n}, or --replace-head to train a new one"
    if mismatched and "conv" in mismatched[0] and mismatched[0] == next(iter(model.state_dict())):
        return f"; the first layer takes {int(state[mismatched[0]].shape[1])} channels: pass --in-channels"
    return "; check that the file is for this architecture"
