"""``TrainConfig``: every option of ``edgecnn train``, checked in one place, and the defaults that
depend on others (learning rate and weight decay by optimizer, the run folder, the device)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from edgecnn.contract import RESIZE_POLICIES
from edgecnn.errors import EdgeCNNError, UsageError
from edgecnn.train import transfer

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")
ANCHORS = ("default", "auto")  # a detector's anchor scales: the model's own, or fitted to the training boxes
DEFAULT_LR = {"sgd": 0.05, "adamw": 1e-3}
DEFAULT_WD = {"sgd": 5e-4, "adamw": 0.05}
DEFAULT_EPOCHS = 10
# Detectors train on few images with many objects each: at 64 a 1,200-image set gives 180 optimizer steps in
# 10 epochs, and SSD from scratch is still far from converged when the schedule ends (digits set, 128 px:
# benchmarks/results/*/digits_detect*.md). 16 gives four times the steps for the same images/s on a CPU.
DEFAULT_BATCH = {"classify": 64, "detect": 16}


class DeviceError(EdgeCNNError):
    """A device that is not there (``--device cuda`` without CUDA)."""


@dataclass
class TrainConfig:
    """Every option of ``edgecnn train``; stored in checkpoints so ``--resume`` continues the same run."""

    model: str  # zoo name, or an edgecnn checkpoint to fine-tune
    data: str
    epochs: int | None = None  # DEFAULT_EPOCHS, or the resumed run's
    batch_size: int | None = None  # global: split over DDP processes; DEFAULT_BATCH[task], or the resumed run's
    lr: float | None = None  # DEFAULT_LR[optimizer]
    optimizer: str = "sgd"
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    weight_decay: float | None = None  # DEFAULT_WD[optimizer]
    label_smoothing: float = 0.0
    input_size: int | None = None
    width_mult: float | None = None  # the model's width multiplier (models that have one), or the checkpoint's
    in_channels: int | None = None
    resize: str | None = None  # resize policy of the eval transform (the contract's)
    val_split: float | None = None
    augment: bool = False
    flip: bool = True
    workers: int = 0
    threads: int | None = None  # torch intra-op threads; None: edgecnn.threads.resolve (physical cores - workers)
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    init: str | None = None
    freeze: str = "none"
    layer_lr_decay: float | None = None
    anchors: str = "default"  # ANCHORS; detectors only

    # Options that may change when a run is resumed; the others come from its checkpoint.
    RESUMABLE = ("epochs", "workers", "threads", "device", "data", "out", "resume", "overwrite")

    def check(self) -> None:
        def positive(flag: str, v: float | None) -> None:
            if v is not None and v <= 0:
                raise UsageError(f"--{flag} must be positive, got {v}")

        for flag, v in (("epochs", self.epochs), ("batch-size", self.batch_size), ("lr", self.lr),
                        ("input-size", self.input_size), ("threads", self.threads), ("width-mult", self.width_mult)):
            positive(flag, v)
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown --optimizer '{self.optimizer}'; choose sgd or adamw")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown --schedule '{self.schedule}'; choose cosine, step or none")
        if self.resize is not None and self.resize not in RESIZE_POLICIES:
            raise UsageError(f"unknown --resize '{self.resize}'; choose one of {', '.join(RESIZE_POLICIES)}")
        if self.in_channels not in (None, 1, 3):
            raise UsageError(f"--in-channels must be 1 (grayscale) or 3 (colour), got {self.in_channels}")
        for flag, v in (("warmup-epochs", self.warmup_epochs), ("weight-decay", self.weight_decay),
                        ("workers", self.workers)):
            if v is not None and v < 0:
                raise UsageError(f"--{flag} must not be negative, got {v}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.momentum < 1.0:
            raise UsageError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.anchors not in ANCHORS:
            raise UsageError(f"unknown --anchors '{self.anchors}'; choose default or auto")
        transfer.parse_freeze(self.freeze)
        if self.layer_lr_decay is not None and not 0.0 < self.layer_lr_decay <= 1.0:
            raise UsageError(f"--layer-lr-decay must be in (0, 1], got {self.layer_lr_decay}")
        resolve_device(self.device)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name not in ("auto", "cpu", "cuda"):
        raise UsageError(f"unknown --device '{name}'; choose cpu, cuda or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        build = " is a CPU-only build" if torch.version.cuda is None else " finds no GPU"
        raise DeviceError(f"--device cuda: CUDA is not available (torch {torch.__version__}{build}); "
                          "use --device cpu")
    return torch.device("cuda", local_rank) if name == "cuda" else torch.device("cpu")


def default_out(model_name: str, source: str) -> Path:
    data_name = "shapes" if source.split(":")[0] == "shapes" and not Path(source).exists() \
        else Path(source).resolve().name
    return Path("models") / f"{model_name}-{data_name}"
