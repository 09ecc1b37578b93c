"""The deploy contract: everything needed to run an exported file, stored inside it.

A versioned JSON document in the ONNX ``metadata_props`` under the key ``edgecnn.contract``. It is
written at export (torch side) and read on the device through onnxruntime's model metadata, so
reading needs neither torch nor onnx. ``infer``, ``eval``, ``bench`` and ``quantize`` take the
preprocessing from here; a user never re-types it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgeCNNError, UsageError, first_line

METADATA_KEY = "edgecnn.contract"
SCHEMA = "edgecnn.contract/1"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLORS = ("RGB", "BGR", "L")
RESIZE_POLICIES = ("resize_crop", "letterbox", "keep_ratio", "stretch")
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
      - ``letterbox``: scale to fit inside ``height x width`` keeping aspect, pad with ``pad_value`` on
        both sides (the image centred: YOLO, SSD);
      - ``keep_ratio``: the same scale, the image at the top-left and the padding right and bottom only
        (text detectors and recognisers, many detection models);
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
    pad_value: int = 114  # letterbox / keep_ratio padding, 0-255
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
        if self.color not in COLORS:
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
    # None: the preprocessing and task were declared (export, ``edgecnn contract``); else what was assumed
    # for a file that came without a contract (``quantize`` of such a file keeps it, so ``infer`` still warns)
    assumed: str | None = None
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


@dataclass
class Overrides:
    """What the user says about a file on the command line (``edgecnn.cli.prep_options``, the same set
    in every command): each field None keeps the contract's. ``apply`` edits a contract with them;
    ``from_graph`` builds one for a file that has none."""

    size: tuple[int, int] | None = None  # (H, W)
    resize: str | None = None
    resize_size: int | None = None
    interpolation: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color: str | None = None
    scale: float | None = None
    pad_value: int | None = None
    labels: list[str] | None = None
    task: str | None = None
    layout: str | None = None
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    decode: str | None = None

    @property
    def normalization_given(self) -> bool:
        """Both --mean and --std given: what the pixels mean is declared, not assumed."""
        return self.mean is not None and self.std is not None

    def apply(self, contract: Contract, strict: bool = False) -> Contract:
        """A copy of ``contract`` with these values (``layout`` alone makes it a detector).
        Contradictions (``--color L`` with 3 mean values, ``--task classify --layout yolov8``) are
        UsageErrors naming the options. ``strict``: also refuse detection thresholds on a contract
        that does not detect (``edgecnn contract`` writes them; a command that reads them just has
        nothing to apply them to)."""
        c = Contract.from_dict(contract.to_dict())
        c.preprocess = self._preprocess(c.preprocess)
        if self.normalization_given:
            c.assumed = None  # what the pixels mean is now declared
        if self.labels is not None:
            c.labels = list(self.labels)
        task = self.task or ("detect" if self.layout is not None else None)  # a layout is a detector's
        if task is not None and task != c.task:
            c.task = task
            c.detection = (c.detection or Detection()) if task == "detect" else None
        thresholds = {k: v for k, v in (("conf", self.conf), ("iou", self.iou), ("max_det", self.max_det))
                      if v is not None}
        if c.task != "detect":
            if self.layout is not None:
                raise UsageError(f"--layout applies to --task detect, not --task {c.task}")
            asked = [f"--{k.replace('_', '-')}" for k in thresholds] * strict
            if asked:
                raise UsageError(f"{asked[0]} applies to detection, but the task is {c.task}; add --task detect")
            return c
        c.detection = replace(c.detection or Detection(), **thresholds)
        if self.layout is not None:
            c.detection.layout = self.layout
        return c

    def _preprocess(self, pre: Preprocess) -> Preprocess:
        changes: dict[str, Any] = {k: getattr(self, k) for k in ("resize", "interpolation", "scale", "pad_value",
                                                                  "decode", "color", "mean", "std")
                                   if getattr(self, k) is not None}
        if self.size is not None and self.size != (pre.height, pre.width):
            changes.update(height=self.size[0], width=self.size[1], resize_size=None)  # the crop's shorter side follows
        if self.resize_size is not None:
            policy = changes.get("resize", pre.resize)
            if policy != "resize_crop":
                raise UsageError(f"--resize-size applies to --resize resize_crop, not {policy}")
            changes["resize_size"] = self.resize_size
        if changes.get("resize", pre.resize) != "resize_crop":
            changes["resize_size"] = None  # only a resize_crop has one
        color = changes.get("color", pre.color)
        channels = 1 if color == "L" else 3
        if channels != pre.channels:
            raise UsageError(f"--color {color} gives {channels} channel{'s' * (channels > 1)} but the model's input "
                             f"takes {pre.channels}")
        for name in ("mean", "std"):
            n = len(changes.get(name, getattr(pre, name)))
            if n != channels:
                given = f"--{name} has" if name in changes else f"the contract's {name} has"
                raise UsageError(f"{given} {n} value{'s' * (n != 1)} but --color {color} is {channels} "
                                 f"channel{'s' * (channels > 1)}; give --{name} with {channels}")
        if not changes:
            return pre
        try:
            return replace(pre, **changes)
        except ContractError as e:
            raise UsageError(str(e)) from e


def from_graph(model: str, inputs: list[tuple[str, list]], outputs: list[tuple[str, list]],
               over: Overrides | None = None, strict: bool = False, where: str | Path | None = None,
               guess: Callable[[dict[str, list], int, int], tuple[str, str | None]] | None = None) -> Contract:
    """A contract for a file exported by another tool, from its graph and the user's ``over``.

    The input: the first graph input, (N, C, H, W) or (N, H, W, C) with C 1 or 3, its size fixed or
    given by ``over.size``. The task: ``over.task`` (``over.layout`` alone means detect), else what
    ``guess(output shapes, H, W)`` reads from the outputs (-> (task, layout)), else classify. The
    defaults the options do not override: for a YOLO layout Ultralytics' preprocessing (letterbox
    padded with 114, RGB, pixels / 255) and predict settings (IoU 0.7, 300 boxes); otherwise the
    ImageNet eval transform (grey: mean/std 0.5). What is left to these defaults is recorded in
    ``assumed`` (None when ``--mean`` and ``--std`` were given), so every command that reads the
    contract says so. ``inputs``/``outputs``: (name, shape) with ints for fixed dims; ``where``: the
    file, as errors name it."""
    over = over or Overrides()
    name, shape = inputs[0]
    shape = list(shape)
    if len(shape) != 4:
        raise ContractError(f"input '{name}' has shape {shape}; expected an image batch (N, C, H, W)")
    layout = "NHWC" if shape[1] not in (1, 3) and shape[3] in (1, 3) else "NCHW"
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    fixed = isinstance(h, int) and h > 0 and isinstance(w, int) and w > 0
    if over.size is None and not fixed:
        sep = "x" if len(str(h)) == len(str(w)) == 1 else " x "  # SxS, or height x width
        raise UsageError(f"{where or model} has no edgecnn contract and a dynamic input size ({h}{sep}{w}); give it "
                         "with --size S or HxW")
    h, w = over.size or (h, w)
    if c not in (1, 3):
        if over.color is None:
            raise ContractError(f"input '{name}' has {c} channels; expected 1 or 3")
        c = 1 if over.color == "L" else 3  # a symbolic channel dim: the colour option says it
    task, head = over.task, over.layout
    if task is None and head is not None:
        task = "detect"  # a layout is a detector's
    if guess is not None and (task is None or (task == "detect" and head is None)):
        seen_task, seen_head = guess(dict(outputs), h, w)
        if task is None or seen_task == "detect":
            task, head = task or seen_task, head or seen_head
    task = task or ("detect" if head else "classify")
    yolo = task == "detect" and head in ("yolov8", "yolov5") and c == 3
    if yolo:
        pre = Preprocess(h, w, resize="letterbox", pad_value=114, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        det: Detection | None = Detection(layout=head, iou=0.7, max_det=300)
    else:
        pre = Preprocess(h, w, 1, "L", mean=(0.5,), std=(0.5,)) if c == 1 else Preprocess(h, w)
        det = Detection(layout=head or "edgecnn") if task == "detect" else None
    kinds = {"classify": "class scores", "detect": "detection output", "raw": "raw output"}
    base = Contract(task, model, pre, input_name=name, input_layout=layout, dynamic_size=not fixed,
                    weights="unknown", detection=det, outputs=[{"name": o, "meaning": kinds[task]} for o, _ in outputs])
    contract = over.apply(base, strict)
    if not over.normalization_given:
        p = contract.preprocess
        shapes = ", ".join(f"{o} {'x'.join(str(d) if isinstance(d, int) and d > 0 else 'N' for d in dims)}"
                           for o, dims in outputs)
        what = {"classify": "a classifier", "detect": f"a {head or 'edgecnn'}-layout detector ({shapes})",
                "raw": f"raw outputs ({shapes}: not class vectors nor a known detector head; reported as "
                       "statistics, arrays with infer --save)"}[contract.task]
        source = "Ultralytics" if yolo else "ImageNet"
        norm = ", ".join(f"{k} {list(v) if len(v) > 1 else v[0]}" for k, v in (("mean", p.mean), ("std", p.std)))
        contract.assumed = f"{what} with {source} preprocessing ({describe_resize(p)}, {norm})"
    return contract


def check_input(contract: Contract, shape: list, where: str | Path) -> None:
    """The preprocessing fits the graph input ``shape`` (fixed dims only): else a UsageError."""
    pre = contract.preprocess
    dims = shape[1:4] if contract.input_layout == "NCHW" else [shape[3], *shape[1:3]]
    for name, have, need in zip(("channels", "height", "width"), dims, (pre.channels, pre.height, pre.width),
                                strict=False):
        if isinstance(have, int) and have > 0 and have != need:
            raise UsageError(f"{where} takes {name} {have}, but preprocessing gives {need}; check --size")


def describe_resize(p: Preprocess) -> str:
    """The resize policy in words: ``resize 256 + center crop 224x224``."""
    return {"resize_crop": f"resize {p.resize_size} + center crop {p.height}x{p.width}",
            "letterbox": f"letterbox to {p.height}x{p.width}",
            "keep_ratio": f"keep-ratio resize into {p.height}x{p.width}, padded right/bottom",
            "stretch": f"stretch to {p.height}x{p.width}"}[p.resize]


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


# ---- writing a contract into an existing file (``edgecnn contract``): onnx, no torch ------------------


def load_graph(path: str | Path):
    """The ``onnx.ModelProto`` of ``path`` WITHOUT its external data (weights stay where they are)."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise ContractError(f"model file '{p}' not found")
    try:
        return onnx.load(str(p), load_external_data=False)
    except Exception as e:  # DecodeError and friends: a file that is not an ONNX protobuf
        raise ContractError(f"{p}: not a readable ONNX file ({first_line(e)})") from e


def graph_io(model) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    """([(input name, shape)], [(output name, shape)]) of a ModelProto; initializers are not inputs; a
    shape's fixed dims are ints, symbolic ones their name (or None)."""
    inits = {t.name for t in model.graph.initializer}

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in v.type.tensor_type.shape.dim]

    return ([(v.name, dims(v)) for v in model.graph.input if v.name not in inits],
            [(v.name, dims(v)) for v in model.graph.output])


def declare(path: str | Path, over: Overrides, strict: bool = False):
    """(the file's ModelProto without external data, its contract edited by ``over`` or a new one from its
    graph and ``over``, whether it had one). Checked against the graph's input. ``strict``: see
    ``Overrides.apply``."""
    src = Path(path)
    model = load_graph(src)
    inputs, outputs = graph_io(model)
    if not inputs:
        raise ContractError(f"{src}: the graph has no input")
    try:
        old = from_metadata({p.key: p.value for p in model.metadata_props})
    except ContractError as e:
        raise ContractError(f"{src}: {e}; it cannot be edited") from e
    try:
        if old is None:
            from edgecnn.runtime.outputs import graph_contract  # the task read from the outputs (no cycle at import)

            c = graph_contract(src.stem, inputs, outputs, over, {p.key: p.value for p in model.metadata_props},
                               strict, where=src)
            c.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
            producer = f"{model.producer_name} {model.producer_version}".strip()
            c.versions = {"producer": producer} if producer else {}
        else:
            c = over.apply(old, strict=strict)
    except ContractError as e:
        raise ContractError(f"{src}: {e}") from e
    shapes = dict(inputs)
    if c.input_name not in shapes:
        raise ContractError(f"{src}: the contract's input '{c.input_name}' is not in the graph "
                            f"(inputs: {', '.join(shapes)})")
    check_input(c, shapes[c.input_name], src)
    return model, c, old is not None


def write(src: str | Path, contract: Contract, out: str | Path | None = None, model=None) -> list[Path]:
    """Store ``contract`` in the metadata of ``src`` (in place) or of a copy ``out``: the graph and the
    weights are not touched, the file is written to a temporary name and renamed. External data stays
    beside the file: a copy elsewhere gets a copy of each external-data file (an existing one of the same
    name is an error unless it is the same file). Returns the external-data files the written file uses."""
    import filecmp
    import shutil

    import onnx

    from edgecnn.fileio import atomic_path

    src = Path(src)
    target = Path(out) if out is not None else src
    model = model if model is not None else load_graph(src)
    attach(model, contract)
    from edgecnn.onnx_info import external_files  # onnx_info reads contracts: imported here, no cycle

    data = external_files(model)
    copies = []
    if target.resolve().parent != src.resolve().parent:
        for name in data:
            a, b = src.parent / name, target.parent / name
            if not a.is_file():
                raise ContractError(f"{src}: its external data file {a} is missing")
            if b.exists() and not filecmp.cmp(a, b, shallow=False):
                raise ContractError(f"{b} exists and is not a copy of {a}; write --out into another folder")
            if not b.exists():
                copies.append((a, b))
    # (in the same folder a copy points at the same external-data file, by its relative location)
    for a, b in copies:
        with atomic_path(b) as tmp:
            shutil.copyfile(a, tmp)
    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))
    return [target.parent / name for name in data]
