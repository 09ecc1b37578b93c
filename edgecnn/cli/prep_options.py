"""The preprocessing and task options: ONE set, defined here, taken by ``infer``, ``eval``, ``quantize``,
``bench`` (for ``--image`` and INT8 calibration) and ``contract``, with the same names and meanings.

A command declares them with ``@prep_options``: the decorator adds the options below to the
command's signature (Typer reads the signature) and hands the command one ``prep: Prep`` instead;
``prep.overrides()`` parses and checks them into a ``contract.Overrides``, which edits the file's
contract (or builds one for a file without) through ``contract.Overrides.apply`` / ``from_graph``.
Every value left out keeps the contract's.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from pathlib import Path

import typer

from edgecnn.cli.output import parse_floats, parse_size
from edgecnn.contract import (
    COLORS,
    INTERPOLATIONS,
    LAYOUTS,
    RESIZE_POLICIES,
    TASKS,
    Overrides,
    read_labels,
)
from edgecnn.errors import UsageError

# name -> (flag, help). The help says what the option means in every command that takes it.
OPTIONS: dict[str, tuple[str, str]] = {
    "size": ("--size", "Input size S or HxW (the graph must take it; needed for a file with a dynamic input size "
                       "and no contract)."),
    "resize": ("--resize", "Resize policy: resize_crop (shorter side to --resize-size, center crop), letterbox "
                           "(fit, keep aspect, pad around), keep_ratio (fit, keep aspect, pad right/bottom) or "
                           "stretch."),
    "resize_size": ("--resize-size", "resize_crop: the shorter side before the crop [default: size / 0.875]."),
    "interpolation": ("--interpolation", "Resize filter: nearest, bilinear or bicubic."),
    "mean": ("--mean", "Per-channel mean subtracted after --scale, e.g. 0.5,0.5,0.5."),
    "std": ("--std", "Per-channel std divided by, e.g. 0.5,0.5,0.5."),
    "color": ("--color", "Channel order the model takes: RGB, BGR or L (grey, 1 channel)."),
    "scale": ("--scale", "Pixel scale before --mean/--std: 1/255 (pixels 0-1) or 1 (pixels 0-255)."),
    "pad_value": ("--pad-value", "letterbox / keep_ratio padding grey level, 0-255."),
    "labels": ("--labels", "Class labels: a file (one per line, or a JSON list) or a,b,c."),
    "task": ("--task", "What the outputs are: classify (class scores), detect (boxes) or raw (reported as "
                       "they are)."),
    "layout": ("--layout", "detect: the output layout: edgecnn (boxes + scores outputs, SSD/torchvision too), "
                           "yolov8 ([N, 4+C, A]) or yolov5 ([N, A, 5+C])."),
    "conf": ("--conf", "detect: minimum score [default: the contract's; eval: 0.001, mAP-style]."),
    "iou": ("--iou", "detect: NMS IoU threshold [default: the contract's]."),
    "max_det": ("--max-det", "detect: most boxes per image [default: the contract's; eval: 100, as COCO]."),
}
PANEL = "Preprocessing and task (override the file's contract)"


@dataclass
class Prep:
    """The raw option values, as typed (None: not given)."""

    size: str | None = None
    resize: str | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    mean: str | None = None
    std: str | None = None
    color: str | None = None
    scale: str | None = None
    pad_value: int | None = None
    labels: str | None = None
    task: str | None = None
    layout: str | None = None
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None

    def given(self) -> list[str]:
        """The flags given, in the order of OPTIONS."""
        return [OPTIONS[f.name][0] for f in fields(self) if getattr(self, f.name) is not None]

    def overrides(self, decode: str | None = None) -> Overrides:
        """Parsed and range-checked (UsageError naming the option)."""
        _choice("--resize", self.resize, RESIZE_POLICIES)
        _choice("--interpolation", self.interpolation, INTERPOLATIONS)
        _choice("--task", self.task, TASKS)
        _choice("--layout", self.layout, LAYOUTS)
        color = None if self.color is None else self.color.upper()
        _choice("--color", color, COLORS)
        check_range("--resize-size", self.resize_size, 1)
        check_range("--pad-value", self.pad_value, 0, 255)
        check_range("--conf", self.conf, 0.0, 1.0)
        check_range("--iou", self.iou, 0.0, 1.0)
        check_range("--max-det", self.max_det, 1)
        std = parse_floats(self.std, "--std")
        if std is not None and min(std) <= 0:
            raise UsageError(f"--std values must be > 0, got {self.std}")
        return Overrides(size=parse_size(self.size, "--size"), resize=self.resize, resize_size=self.resize_size,
                         interpolation=self.interpolation, mean=parse_floats(self.mean, "--mean"), std=std,
                         color=color, scale=_scale(self.scale), pad_value=self.pad_value,
                         labels=parse_labels(self.labels), task=self.task, layout=self.layout, conf=self.conf,
                         iou=self.iou, max_det=self.max_det, decode=decode)


def _choice(flag: str, value: str | None, allowed) -> None:
    if value is not None and value not in allowed:
        raise UsageError(f"unknown {flag} '{value}'; choose one of: {', '.join(allowed)}")


def check_range(name: str, value: float | None, lo: float, hi: float | None = None) -> None:
    if value is None:
        return
    if hi is None and value < lo:
        raise UsageError(f"{name} must be >= {lo}, got {value}")
    if hi is not None and not lo <= value <= hi:
        raise UsageError(f"{name} must be in [{lo}, {hi}], got {value}")


def _scale(text: str | None) -> float | None:
    """``--scale``: a number or a fraction (``1/255``)."""
    if text is None:
        return None
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        value = 0.0
    if not value > 0:
        raise UsageError(f"--scale takes a positive number or fraction (1/255), got '{text}'")
    return value


def parse_labels(text: str | None) -> list[str] | None:
    """``--labels``: a file (one label a line, or a ``.json`` list; read by ``contract.read_labels``,
    the same parser ``export`` uses) or ``a,b,c``. A value that names a file but is not one (no comma,
    and a labels-file suffix or a folder part) is an error rather than a one-label list."""
    if text is None:
        return None
    path = Path(text)
    if path.is_file() or ("," not in text and (path.suffix.lower() in (".txt", ".json", ".names")
                                              or path.parent != Path("."))):
        return read_labels(path)
    return [p.strip() for p in text.split(",")]


def _parameters() -> list[inspect.Parameter]:
    kinds = {f.name: {"str | None": str, "int | None": int, "float | None": float}[f.type] for f in fields(Prep)}
    out = []
    for name, (flag, help_text) in OPTIONS.items():
        kind = kinds[name]
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind | None,
                                     default=typer.Option(None, flag, help=help_text, rich_help_panel=PANEL,
                                                          show_default=False)))
    return out


def prep_options(command):
    """Add the shared options to a Typer command whose function takes ``prep: Prep`` (keyword)."""
    sig = inspect.signature(command, eval_str=True)
    own = [p for name, p in sig.parameters.items() if name != "prep"]
    if len(own) == len(sig.parameters):
        raise TypeError(f"{command.__name__} takes no 'prep' parameter")
    clash = {p.name for p in own} & set(OPTIONS)
    if clash:
        raise TypeError(f"{command.__name__} defines shared option(s) itself: {', '.join(sorted(clash))}")

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        prep = Prep(**{name: kwargs.pop(name, None) for name in OPTIONS})
        return command(*args, prep=prep, **kwargs)

    params = [*(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == p.POSITIONAL_OR_KEYWORD else p
                for p in own), *_parameters()]
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read the new signature, not the command's
    return wrapper
