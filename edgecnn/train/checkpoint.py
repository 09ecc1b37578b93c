"""edgecnn checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

Format ``edgecnn.checkpoint/1``: a dict saved with ``torch.save`` holding plain types only
(dict, list, tuple, str, int, float, bool, None and tensors), so that loading never unpickles code::

    {
      "format": "edgecnn.checkpoint/1",
      "model": "lenet5",                       # registry name: registry.build(model, **config)
      "config": {"num_classes": 10, "in_channels": 1, "input_size": 32,
                 "train": {...}},              # every training option (TrainConfig), for --resume
      "state_dict": {name: tensor},            # model weights and buffers, no "module." prefix
      "contract": Contract.to_dict(),          # task "classify", labels, preprocess = the eval transform
      "metrics": {"epoch", "val_top1", "val_top5", "val_loss", "train_loss", "train_acc",
                  "best_top1", "best_epoch", "per_class": {label: {"n", "correct", "acc"}},
                  "history": [one dict per epoch, as in log.json]},   # accuracies are fractions 0-1
      "epoch": 3,                              # complete epochs in these weights
      "step": 1200,                            # optimizer steps taken
      "optimizer": optimizer.state_dict(),
      "scheduler": {"name", "warmup_steps", "total_steps", "step"},
      "rng": {"seed": 0, "torch": ByteTensor},  # the loop also reseeds from (seed, epoch, rank) each epoch
      "versions": {"edgecnn": ..., "torch": ...},
    }

A run folder holds ``last.pt`` (end of every epoch), ``best.pt`` (best validation top-1),
``log.csv`` and ``log.json``. To use the weights elsewhere::

    ckpt = load_checkpoint("models/lenet5-digits/best.pt")
    model = registry.build(ckpt["model"], **{k: ckpt["config"][k] for k in ("num_classes", "in_channels",
                                                                          "input_size")})
    model.load_state_dict(ckpt["state_dict"])
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.fileio import atomic_path

FORMAT = "edgecnn.checkpoint/1"
MODEL_CONFIG = ("num_classes", "in_channels", "input_size")


class CheckpointError(EdgeCNNError):
    """A checkpoint that cannot be read, written or used for this model."""


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    """Write ``ckpt`` to ``path`` through a temporary file and a rename: a failure (a full disk) leaves
    the previous file at ``path`` as it was and no partial file behind."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a failed write as RuntimeError
        why = getattr(e, "strerror", None) or first_line(e)
        kept = f"the previous {path.name} is kept" if path.exists() else "nothing was written"
        raise CheckpointError(f"could not write checkpoint {path}: {why}; {kept}") from e


def load_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK", b"\x80")):  # torch.save writes a zip archive (or a pickle before torch 1.6)
        what = f"it starts with bytes {head.hex(' ')}" if head else "the file is empty"
        raise CheckpointError(f"{path}: not a readable checkpoint (not a file written by torch.save: {what}); "
                              "pass a .pt/.pth checkpoint or state dict")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError,
            AttributeError, ImportError, IndexError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(e)})") from e


def _reason(e: Exception) -> str:
    """The informative line of a torch.load error (weights_only errors bury it under advice)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error:" in ln:  # the reason follows on the same line, or on the next one
            after = ln.split("error:", 1)[1].strip()
            return (after or (lines[i + 1] if i + 1 < len(lines) else e.__class__.__name__))[:200]
    return (lines[0] if lines else e.__class__.__name__)[:200]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an edgecnn checkpoint; a missing, corrupt or foreign file raises one-line CheckpointError."""
    return validate(load_file(path), path)


def validate(ckpt: Any, path: str | Path) -> dict[str, Any]:
    """``ckpt`` (what ``load_file(path)`` returned) if it is an edgecnn checkpoint of this format."""
    if not is_checkpoint_dict(ckpt):
        raise CheckpointError(f"{path}: not an edgecnn checkpoint (no 'format': '{FORMAT}'); "
                              "a bare state dict goes to --init")
    if ckpt["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format '{ckpt['format']}' is not {FORMAT}; upgrade edgecnn")
    missing = [k for k in ("model", "config", "state_dict", "contract", "epoch") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: malformed checkpoint, missing {', '.join(missing)}")
    return ckpt


def is_checkpoint_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and str(obj.get("format", "")).startswith("edgecnn.checkpoint/")


def is_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a loadable edgecnn checkpoint (of any version)."""
    try:
        return is_checkpoint_dict(load_file(path))
    except CheckpointError:
        return False


def other_model(path: str | Path, found: str, wanted: str) -> CheckpointError:
    """The error for a checkpoint of another architecture."""
    return CheckpointError(f"{path} is a checkpoint of '{found}', not '{wanted}'; "
                           f"train '{found}' or pick a checkpoint of {wanted}")


def model_config(ckpt: dict[str, Any]) -> dict[str, int]:
    """The ``registry.build`` keyword arguments stored in a checkpoint."""
    return {k: int(ckpt["config"][k]) for k in MODEL_CONFIG}
