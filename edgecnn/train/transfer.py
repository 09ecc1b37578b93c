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

A detector (a model with ``backbone.features``, SSDLite's feature extractor) splits the same way: its
backbone classifier's blocks are the stages; the extra layers and the box and class heads are the head.
So ``--freeze backbone`` trains the extra layers and heads of a detector started from COCO weights.

``--init`` from weights with other classes keeps the matching rows of the class head when every class of
the new data is one of the file's, matched by name (case-insensitive; a detector's background column
first): ``person, car`` from COCO weights keeps COCO's ``person`` and ``car`` predictors. Otherwise the
class head is made fresh.
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
    detector = getattr(getattr(model, "backbone", None), "features", None)
    if features is None and isinstance(detector, nn.Sequential):  # split backbone blocks, then extras and heads
        units = [m for part in detector for m in (part.children() if isinstance(part, nn.Sequential) else [part])]
        head = [m for name, m in model.backbone.named_children() if name != "features"]
        head += [m for name, m in model.named_children() if name != "backbone"]
        direct = dict(model.backbone.named_parameters(recurse=False))  # SSD300's L2Norm scale of conv4_3
        if direct:
            holder = nn.Module()
            for name, p in direct.items():
                holder.register_parameter(name, p)
            head.insert(0, holder)
    elif isinstance(features, nn.Sequential):
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


def load_init(model: nn.Module, path: str | Path, model_name: str, labels: list[str] | None = None) -> list[str]:
    """Load ``path`` (an edgecnn checkpoint of ``model_name`` or a torchvision-format state dict) into
    ``model`` with strict key and shape checks (``edgecnn.weights``, shared with the exporter).
    When the class count differs, the head keeps the file's rows of the classes named in ``labels`` (the
    new data's, in the model's order) if the file's labels hold them all, else it is replaced (left at its
    fresh init); a 3-channel first convolution is summed to 1 channel for a grayscale model; anything else
    that does not fit raises one line naming the first missing/unexpected keys and the first shape
    mismatch. Returns notes."""
    from edgecnn.weights import head_keys, load_into, read_weights

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
    heads = head_keys(model)
    rows = _matching_rows(model, state, weights, labels) if all(k in state for k in heads) else None
    if rows is not None:
        old = int(state[heads[0]].shape[0]) // (int(own[heads[0]].shape[0]) // len(rows))
        for k in heads:  # a detector's class head predicts every class per anchor: rows (anchor, class)
            t = state[k]
            state[k] = t.reshape(-1, old, *t.shape[1:])[:, rows].reshape(-1, *t.shape[1:]).clone()
        kept = labels[1:] if _background(model) else labels
        notes.append(f"head {heads[0].rsplit('.', 1)[0]}: kept the file's rows of {', '.join(kept)} "
                     f"({old} -> {len(rows)} classes, matched by name)")
    replaced = load_into(model, state, f"--init {path}", replace_head=True)
    if replaced:
        rows = int(own[replaced[0]].shape[0])
        per_class = rows // getattr(model, "num_classes", rows) or 1  # a detector predicts each class per anchor
        notes.append(f"head {replaced[0].rsplit('.', 1)[0]} replaced: {int(state[replaced[0]].shape[0]) // per_class}"
                     f" -> {rows // per_class} classes (fresh init)")
    return notes


def _background(model: nn.Module) -> bool:
    detection = getattr(model, "detection", None)
    return bool(detection is not None and detection.background_class)


def source_labels(model: nn.Module, weights, classes: int) -> list[str] | None:
    """The class names of a weights file's head: an edgecnn checkpoint's contract labels, else those of
    torchvision's published weights of that size (COCO's 91 for a detector, ImageNet's 1,000)."""
    if weights.contract and weights.contract.get("labels"):
        return list(weights.contract["labels"])
    if weights.model is not None:
        return None
    if _background(model) and classes == 91:
        from edgecnn.models.ssdlite import torchvision_coco_labels

        return torchvision_coco_labels()
    if not _background(model) and classes == 1000:
        from edgecnn import hub

        return hub.imagenet_labels()
    return None


def _matching_rows(model: nn.Module, state: dict, weights, labels: list[str] | None) -> list[int] | None:
    """For each of ``labels`` (the model's classes), the index of the same name among the file's classes;
    None when the head already fits, when the file's names are unknown, or when one class is not there."""
    from edgecnn.weights import head_keys

    first = head_keys(model)[0]
    own, theirs = int(model.state_dict()[first].shape[0]), int(state[first].shape[0])
    if labels is None or own == theirs or own % len(labels):
        return None
    per_class = own // len(labels)  # a detector's anchors per location and map, 1 for a classifier
    if theirs % per_class:
        return None
    src = source_labels(model, weights, theirs // per_class)
    if src is None or len(src) != theirs // per_class:
        return None
    index = {name.strip().lower(): i for i, name in reversed(list(enumerate(src)))}
    background = _background(model)
    wanted = labels[1:] if background else labels
    rows = [index.get(name.strip().lower()) for name in wanted]
    if any(r is None for r in rows):
        return None
    return [0, *rows] if background else rows
