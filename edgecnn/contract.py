"""The deploy contract: everything needed to run an exported file, stored inside it.

A versioned JSON document in the ONNX ``metadata_props`` under the key ``edgecnn.contract``. It is
written at export (torch side) and read on the device through onnxruntime's model metadata, so
reading needs neither torch nor onnx. ``infer``, ``eval``, ``bench`` and ``quantize`` take the
preprocessing from here; a user never re-types it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError, first_line

METADATA_KEY = "edgecnn.contract"
SCHEMA = "edgecnn.contract/1"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_POLICIES = ("resize_crop", "letterbox", "stretch")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
DECODES = ("fast", "exact")  # see edgecnn.runtime.image
TASKS = ("classify", "detect", "raw")  # raw: no interpretation, each output's statistics (and arrays with --save)
# detector output layouts: edgecnn's own (boxes + scores, or detections after graph NMS; also SSD/torchvision
# style), Ultralytics YOLOv8/11 (N, 4+C, A) and YOLOv5 (N, A, 5+C); see edgecnn.runtime.yolo
LAYOUTS = ("edgecnn", "yolov8", "yolov5")


class ContractError(EdgeCNNError):
    """A contract that is missing, malformed or of an unknown version."""


@dataclass
class Preprocess:
    """Image -> NCHW float32 tensor. ``x = (pixel * scale - mean) / std`` per channel.

    resize policies:
      - ``resize_crop``: resize the shorter side to ``resize_size``, then center-crop ``height x width``
        (the torchvision/ImageNet eval transform: 256 -> 224);
      - ``letterbox``: scale to fit inside ``height x width`` keeping aspect, pad with ``pad_value``;
      - ``stretch``: resize to ``height x width`` ignoring aspect.
    """

    height: int
    width: int
    channels: int = 3
    color: str = "RGB"  # RGB | BGR | L
    resize: str = "resize_crop"
    resize_size: int | None = None  # resize_crop: shorter side before the crop
    interpolation: str = "bilinear"
    scale: float = 1 / 255
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    pad_value: int = 114  # letterbox padding, 0-255
    background: str = "white"  # what transparent pixels (RGBA, LA, PA) are composited on
    # fast: large images decoded at reduced size (JPEG DCT scaling, Image.reduce), within a few levels of
    # exact; exact: the whole image decoded. Training's eval, export and infer use the same one.
    decode: str = "fast"

    def __post_init__(self):
        if self.resize not in RESIZE_POLICIES:
            raise ContractError(f"unknown resize policy '{self.resize}'; expected one of {RESIZE_POLICIES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ContractError(f"unknown interpolation '{self.interpolation}'; expected one of {INTERPOLATIONS}")
        if self.decode not in DECODES:
            raise ContractError(f"unknown decode '{self.decode}'; expected one of {DECODES}")
        if self.color not in ("RGB", "BGR", "L"):
            raise ContractError(f"unknown colour order '{self.color}'; expected RGB, BGR or L")
        if (self.color == "L") != (self.channels == 1):
            raise ContractError(f"colour '{self.color}' does not fit {self.channels} channels (L is 1, RGB/BGR are 3)")
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ContractError(f"mean/std have {len(self.mean)}/{len(self.std)} values for {self.channels} channels")
        if self.resize == "resize_crop" and self.resize_size is None:
            # ImageNet convention: crop 224 out of 256, i.e. crop fraction 0.875.
            self.resize_size = round(min(self.height, self.width) / 0.875)

    def resized(self, height: int, width: int) -> Preprocess:
        """The same transform (colour, policy, normalisation) for another input size; a resize_crop's
        shorter side scales with it."""
        if (height, width) == (self.height, self.width):
            return self
        return replace(self, height=height, width=width, resize_size=None)

    @classmethod
    def imagenet(cls, size: int = 224, channels: int = 3) -> Preprocess:
        """The default for a zoo model: the ImageNet eval transform for colour input; for one channel
        (digits-style data, already centred) a plain stretch to the input size with mean/std 0.5."""
        if channels == 1:
            return cls(size, size, 1, "L", resize="stretch", mean=(0.5,), std=(0.5,))
        if channels != 3:
            raise ContractError(f"images preprocess to 1 (grayscale) or 3 (RGB) channels, not {channels}")
        return cls(size, size, channels)


@dataclass
class Detection:
    """Detection post-processing: where NMS runs and with which defaults.

    The graph outputs ``edgecnn.runtime.detect.postprocess`` reads, by name (N images, A anchors,
    C score columns, K rows):
      - ``nms == "host"``: ``boxes`` (N, A, 4) in ``box_format`` — ``xyxy``, ``cxcywh``, ``xywh``,
        or ``deltas`` (torchvision BoxCoder regressions, weights 10, 10, 5, 5, decoded against an
        ``anchors`` output (A, 4) xyxy) — and ``scores`` (N, A, C) probabilities; with
        ``background_class`` column 0 is background and never reported;
      - ``nms == "graph"``: ``detections`` (N, K, 6), rows ``x1, y1, x2, y2, score, class`` (xyxy)
        by decreasing score; rows with ``score <= 0`` are padding.
    Coordinates are network-input pixels, or fractions of the input when ``normalized``. Class
    indices index ``Contract.labels`` (which then starts with the background's name).

    ``layout`` ``yolov8`` or ``yolov5``: one output holds every anchor's box and scores instead
    (``edgecnn.runtime.yolo``); ``nms``, ``box_format`` and ``background_class`` do not apply.
    """

    nms: str = "host"  # host (edgecnn.runtime.detect) | graph (the ONNX graph already ran NMS)
    box_format: str = "xyxy"  # of the decoded boxes
    normalized: bool = False  # boxes in [0, 1] of the network input, else in input pixels
    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 100
    background_class: bool = False  # class 0 of the scores is background (SSD)
    candidates_per_class: int | None = None  # host NMS: best scores kept per class before NMS (torchvision's
    # topk_candidates); graph NMS: baked into the graph
    layout: str = "edgecnn"  # edgecnn | yolov8 | yolov5 (LAYOUTS)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ContractError(f"unknown detection layout '{self.layout}'; expected one of {', '.join(LAYOUTS)}")


@dataclass
class Contract:
    task: str  # classify | detect | raw (TASKS)
    model: str
    preprocess: Preprocess
    input_name: str = "input"
    input_layout: str = "NCHW"
    input_dtype: str = "float32"
    batch: str | int = "dynamic"
    dynamic_size: bool = False  # the graph also takes other heights/widths (preprocess gives the default)
    labels: list[str] | None = None
    # Each output: name, kind (logits | probabilities | boxes | scores | detections), meaning (prose).
    # Post-processing reads ``kind``; ``meaning`` is for people.
    outputs: list[dict[str, str]] = field(
        default_factory=lambda: [{"name": "logits", "kind": "logits", "meaning": "class logits"}])
    detection: Detection | None = None
    weights: str | dict[str, str] = "random-init"  # or {"path": ..., "sha256": ...}
    precision: str = "fp32"
    metrics: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None  # the export gate's report, or {"skipped": true}
    quantization: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)
    opset: int | None = None
    schema: str = SCHEMA

    def __post_init__(self):
        if self.task not in TASKS:
            raise ContractError(f"unknown task '{self.task}'; expected one of {', '.join(TASKS)}")

    @property
    def random_init(self) -> bool:
        return self.weights == "random-init"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contract:
        schema = d.get("schema", "")
        if not str(schema).startswith("edgecnn.contract/"):
            raise ContractError(f"not an edgecnn contract (schema '{schema}')")
        if schema != SCHEMA:
            raise ContractError(f"contract schema '{schema}' is newer than this edgecnn reads ({SCHEMA}); "
                                "upgrade edgecnn")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        try:
            # a contract written before ``decode`` existed was trained and evaluated on the exact decode
            kw["preprocess"] = Preprocess(**{"decode": "exact", **d["preprocess"]})
            if d.get("detection"):
                kw["detection"] = Detection(**d["detection"])
            return cls(**kw)
        except (KeyError, TypeError) as e:
            raise ContractError(f"malformed contract: {e}") from e

    @classmethod
    def from_json(cls, text: str) -> Contract:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ContractError(f"malformed contract JSON: {e}") from e


def read_labels(path: str | Path, expected: int | None = None) -> list[str]:
    """Class labels from a file: one label a line (blank lines and surrounding spaces dropped, any line
    ending), or a ``.json`` list of strings. ``expected``: the model's class count, checked."""
    p = Path(path)
    if not p.is_file():
        raise ContractError(f"--labels {p}: no such file")
    try:
        text = p.read_text(encoding="utf-8-sig")
        if p.suffix.lower() == ".json":
            labels = json.loads(text)
            if not isinstance(labels, list) or not all(isinstance(x, (str, int)) for x in labels):
                raise ContractError(f"--labels {p}: expected a JSON list of strings")
            labels = [str(x) for x in labels]
        else:
            labels = [line.strip() for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as e:
        raise ContractError(f"--labels {p}: not a readable labels file ({first_line(e)})") from e
    if not labels:
        raise ContractError(f"--labels {p}: no labels in the file")
    if expected is not None and len(labels) != expected:
        raise ContractError(f"--labels {p} has {len(labels)} labels but the model has {expected} classes")
    return labels


def attach(model_proto, contract: Contract) -> None:
    """Store ``contract`` in an ``onnx.ModelProto``'s metadata_props (replacing an older one)."""
    props = model_proto.metadata_props
    for i in reversed(range(len(props))):
        if props[i].key == METADATA_KEY:
            del props[i]
    entry = props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()


def from_metadata(metadata: dict[str, str]) -> Contract | None:
    """The contract in a metadata map (``onnx`` metadata_props or onnxruntime's custom_metadata_map),
    or None when the file has none (exported by another tool)."""
    text = metadata.get(METADATA_KEY)
    return None if text is None else Contract.from_json(text)


def read(path: str) -> Contract | None:
    """Read the contract of an ONNX file with onnxruntime only (no torch, no onnx)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return from_metadata(sess.get_modelmeta().custom_metadata_map)
