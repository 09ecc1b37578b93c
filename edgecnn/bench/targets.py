"""What ``edgecnn bench`` measures: targets resolved to ONNX files at each precision and input size.

A target is an ``.onnx`` file (ours with a contract, or another exporter's), a zoo name or an edgecnn
checkpoint. Zoo names and checkpoints are exported to a temporary folder on the fly (needs the
``[torch]`` extra); FP16 and INT8 variants of an FP32 file are made on the fly too: FP16 with
onnxruntime's converter (float I/O kept), INT8 through ``edgecnn.quantize`` calibrated on random
images, so its rows are speed-only (its accuracy means nothing). Every file is made once per
(target, precision, input size) and removed with the workspace.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn import registry
from edgecnn.bench.graph_cost import graph_cost
from edgecnn.errors import EdgeCNNError, MissingFileError, UsageError, first_line, require
from edgecnn.onnx_info import file_bytes, zoo_params_note

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
_FLOAT_INPUTS = {1: "float32", 10: "float16", 11: "float64"}


class BenchError(EdgeCNNError):
    """A target or configuration that cannot be benchmarked."""


@dataclass
class Target:
    """``spec`` as the user gave it; ``kind``: onnx | zoo | checkpoint; ``name``: the model's name for
    tables (zoo name, checkpoint architecture, or file stem); ``precision``: the precision the file is stored
    at (read from it; fp32 for zoo names and checkpoints); ``family``: targets of one family are variants of
    one model (a file and its INT8 file), measured together, interleaved, and compared."""

    spec: str
    kind: str
    name: str
    path: Path | None = None
    card: registry.ModelCard | None = None
    precision: str = "fp32"
    family: str = ""

    def __post_init__(self) -> None:
        if self.kind == "onnx" and self.path is not None:
            self.precision = precision_of(self.path)
            self.family = self.family or family_of(self.path)
        self.family = self.family or f"{self.kind}:{self.spec}"

    def to_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "name": self.name,
                "path": str(self.path) if self.path else None, "precision": self.precision}


def resolve(spec: str) -> Target:
    """Classify a target; an ONNX file is checked here (readable, one image input), so bad input
    fails before any measurement."""
    path = Path(spec)
    if path.is_dir():
        raise UsageError(f"{spec} is a folder; bench takes .onnx files, zoo names or checkpoints")
    if path.is_file():
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            require("torch", "torch", f"benchmarking the checkpoint {spec}")
            from edgecnn.weights import read_weights

            ckpt = read_weights(spec)
            if ckpt.model is None:
                raise UsageError(f"{spec} is a bare state dict; export it first: edgecnn export <model> "
                                 f"--weights {spec}")
            return Target(spec, "checkpoint", ckpt.model, path, registry.get_card(ckpt.model))
        check_onnx(path)
        return Target(spec, "onnx", path.stem, path)
    if path.suffix.lower() in (".onnx", *CHECKPOINT_SUFFIXES) or path.parent != Path("."):
        raise MissingFileError(f"{spec}: no such file")  # a missing input file: exit 1, as infer's
    card = registry.get_card(spec)  # unknown names: the registry's did-you-mean error
    require("torch", "torch", f"benchmarking zoo model '{spec}' (it is exported to ONNX first)")
    return Target(spec, "zoo", spec, None, card)


def check_onnx(path: Path) -> None:
    """A readable ONNX model whose first input is a float image batch (4 dims)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise BenchError(f"{path}: not an ONNX model ({first_line(e, 120)})") from e
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs or not model.graph.node:
        raise BenchError(f"{path}: not an ONNX model with an input (empty or truncated file?)")
    inp = inputs[0]
    t = inp.type.tensor_type
    dims = [d.dim_value or d.dim_param or "?" for d in t.shape.dim]
    if t.elem_type not in _FLOAT_INPUTS or len(dims) != 4:
        kind = _FLOAT_INPUTS.get(t.elem_type, f"type {t.elem_type}")
        raise BenchError(f"{path}: input '{inp.name}' is {kind} {dims}; bench measures image models "
                         "(a float input of 4 dims, N x C x H x W)")


@dataclass
class Workspace:
    """A temporary folder holding the files made on the fly; ``close()`` removes it."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgecnn-bench-")))
    _files: dict = field(default_factory=dict)
    _costs: dict = field(default_factory=dict)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- files ---------------------------------------------------------------------------------

    def onnx(self, target: Target, precision: str = "fp32", size: tuple[int, int] | None = None) -> Path:
        """The ONNX file of ``target`` at ``precision`` (and ``size`` for exported zoo models)."""
        key = (target.spec, precision, size if target.kind != "onnx" else None)
        if key not in self._files:
            self._files[key] = self._make(target, precision, size)
        return self._files[key]

    def _make(self, target: Target, precision: str, size: tuple[int, int] | None) -> Path:
        own = target.precision
        if own == precision:
            return target.path if target.kind == "onnx" else self._fp32(target, size)
        if own != "fp32":
            raise BenchError(f"{target.spec} is stored at {own}; {precision} is made from an FP32 file only")
        src = self._fp32(target, size)
        out = self.root / f"{src.stem}.{precision}.onnx"
        if precision == "fp16":
            return _to_fp16(src, out)
        if precision == "int8":
            return _to_int8(src, out, self.root / "calib", size)
        raise UsageError(f"unknown precision '{precision}'")

    def _fp32(self, target: Target, size: tuple[int, int] | None) -> Path:
        if target.kind == "onnx":
            return target.path
        key = (target.spec, "fp32", size)
        if key in self._files:
            return self._files[key]
        from edgecnn.export.exporter import ExportOptions, export

        # no size: the card's default (zoo) or the size the checkpoint was trained at
        h, w = size or (None, None)
        out = self.root / (f"{target.name}-{h}x{w}.onnx" if size else f"{target.name}.onnx")
        dynamic = h != w and not target.card.fixed_input
        try:
            export(ExportOptions(model=target.spec, input_size=h, dynamic_size=dynamic, out=str(out), check=False))
        except EdgeCNNError as e:
            raise BenchError(f"exporting {target.spec} to ONNX failed: {e}") from e
        self._files[key] = out
        return out

    # ---- cost ----------------------------------------------------------------------------------

    def cost(self, target: Target, path: Path, size: tuple[int, int] | None) -> dict:
        """params and MACs per image of the ONNX file measured (``edgecnn.bench.graph_cost``, as ``inspect``
        counts them) and where the MACs come from: the registry's card for a zoo name at its default input
        (the same count, tested), else the graph at ``size``. Zoo names and checkpoints also get the PyTorch
        model's count and the line saying why it differs from the file's (BatchNorm folded at export)."""
        key = (str(path), size)
        if key not in self._costs:
            c = graph_cost(path, size)
            card = target.card
            out = {"params": c["params"], "macs": c["macs"], "cost_source": "graph", "file_bytes": file_bytes(path),
                   "pytorch_params": None, "params_note": None}
            if target.kind == "zoo" and (size is None or size == (card.input_size, card.input_size)):
                out.update(macs=card.macs, cost_source="registry")
            if target.kind != "onnx":
                folded = self._pytorch_params(target, size)
                out["pytorch_params"] = folded.pytorch
                out["params_note"] = folded.note(c["params"])
            else:  # a file exported from a zoo model: the card's count against the file's, as inspect says it
                contract = contract_of(path)
                out["params_note"] = zoo_params_note(contract, c["params"])
                if out["params_note"]:
                    out["pytorch_params"] = registry.REGISTRY[contract.model].params
            self._costs[key] = out
        return dict(self._costs[key])

    def _pytorch_params(self, target: Target, size: tuple[int, int] | None):
        """``edgecnn.profile.OnnxParams`` of the PyTorch model behind a zoo name or checkpoint (torch is
        there: the target was exported with it)."""
        key = ("pytorch", target.spec)
        if key not in self._costs:
            from edgecnn.bench.backend_torch import load_model
            from edgecnn.profile import onnx_params

            self._costs[key] = onnx_params(load_model(target.spec, input_size=size).model)
        return self._costs[key]


_FACTS: dict[tuple[str, int, int], dict] = {}  # (path, mtime_ns, size) -> metadata_props and graph precision


def _facts(path: Path) -> dict:
    """The file's metadata and the precision its graph is stored at, read once per version of the file (a
    sweep asks for them several times per target)."""
    st = Path(path).stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _FACTS:
        from edgecnn.bench.graph_cost import load_graph, precision_of_graph

        model = load_graph(path)
        _FACTS[key] = {"meta": {p.key: p.value for p in model.metadata_props}, "precision": precision_of_graph(model)}
    return _FACTS[key]


def contract_of(path: Path):
    """The file's contract (None for a foreign file or one whose contract is unreadable)."""
    from edgecnn.contract import from_metadata

    try:
        return from_metadata(dict(_facts(path)["meta"]))  # a fresh Contract each call: callers may change theirs
    except Exception:
        return None


def precision_of(path: Path) -> str:
    """The precision a file is stored at: its contract's when that says fp16 or int8, else read from the
    graph (quantization ops: int8; mostly float16 weights: fp16; else fp32)."""
    c = contract_of(path)
    if c is not None and c.precision != "fp32":
        return c.precision
    try:
        return _facts(path)["precision"]
    except EdgeCNNError:
        return "fp32"


_PRECISION_TAGS = (".int8", "_int8", "-int8", ".fp16", "_fp16", "-fp16", ".fp32", "_fp32", "-fp32", ".quant",
                   "_quant", "-quant", "_quantized", "-quantized")


def family_of(path: Path) -> str:
    """Which model a file is a variant of: the FP32 file its contract says it was quantized from
    (``edgecnn quantize`` records it), else its name without a precision tag (``m.int8.onnx``, ``m_fp16.onnx``
    -> ``m``), in its folder."""
    c = contract_of(path)
    source = ((c.quantization or {}).get("source") or {}).get("file") if c is not None else None
    stem = Path(source).stem if source else path.stem
    for tag in _PRECISION_TAGS:
        if stem.lower().endswith(tag):
            stem = stem[: -len(tag)]
            break
    return str(path.resolve().parent / stem)


def accuracy_of(contract) -> dict | None:
    """Top-1 the contract records (a training run's validation top-1 or published ImageNet figures), as
    ``{"top1": fraction, "source": key}``; None when it records none."""
    metrics = (contract.metrics or {}) if contract is not None else {}
    for key in ("imagenet1k_top1", "val_top1", "best_top1", "top1", "accuracy"):
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return {"top1": v / 100 if v > 1 else float(v), "source": key}
    return None


def _to_fp16(src: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edgecnn.contract import attach, from_metadata

    model = onnx.load(str(src))
    contract = from_metadata({p.key: p.value for p in model.metadata_props})
    try:
        model = convert_float_to_float16(model, keep_io_types=True)
    except Exception as e:
        raise BenchError(f"FP16 conversion of {src.name} failed: {first_line(e)}") from e
    if contract is not None:
        contract.precision = "fp16"
        attach(model, contract)
    onnx.save(model, str(out))
    return out


def _to_int8(src: Path, out: Path, calib: Path, size: tuple[int, int] | None) -> Path:
    """INT8 through edgecnn.quantize on random calibration images: the speed of INT8, not its accuracy."""
    from edgecnn.quantize import QuantizeOptions, quantize

    if not calib.is_dir():
        import numpy as np
        from PIL import Image

        calib.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(calib / f"random{i}.png")
    quantize(QuantizeOptions(model=str(src), calib=str(calib), out=str(out), samples=8, bench=False,
                             min_agreement=0.0, size=size))
    return out


def input_spec(path: Path, size: tuple[int, int] | None) -> tuple[tuple[int, int, int], str]:
    """((C, H, W), layout) the model takes: the contract's preprocessing, or the graph's static dims
    for a file without one; ``size`` (H, W) overrides the height and width."""
    c = contract_of(path)
    if c is not None:
        pre = c.preprocess
        h, w = size or (pre.height, pre.width)
        return (pre.channels, h, w), c.input_layout
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    inp = next(i for i in model.graph.input if i.name not in inits)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    layout = "NHWC" if dims[1] not in (1, 3) and dims[3] in (1, 3) else "NCHW"
    ch, h, w = (dims[1], dims[2], dims[3]) if layout == "NCHW" else (dims[3], dims[1], dims[2])
    h, w = size or (h, w)
    if not (h and w):
        raise UsageError(f"{path} has a dynamic input size and no edgecnn contract; give it with --input-size S or HxW")
    if ch not in (1, 3):
        raise BenchError(f"{path}: input '{inp.name}' has {ch} channels; bench measures 1- or 3-channel images")
    return (ch, h, w), layout
