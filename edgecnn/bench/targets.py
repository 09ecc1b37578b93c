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

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
_FLOAT_INPUTS = {1: "float32", 10: "float16", 11: "float64"}


class BenchError(EdgeCNNError):
    """A target or configuration that cannot be benchmarked."""


@dataclass
class Target:
    """``spec`` as the user gave it; ``kind``: onnx | zoo | checkpoint; ``name``: the model's name for
    tables (zoo name, checkpoint architecture, or file stem)."""

    spec: str
    kind: str
    name: str
    path: Path | None = None
    card: registry.ModelCard | None = None

    def to_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "name": self.name,
                "path": str(self.path) if self.path else None}


def resolve(spec: str) -> Target:
    """Classify a target; an ONNX file is checked here (readable, one image input), so bad input
    fails before any measurement."""
    path = Path(spec)
    if path.is_dir():
        raise UsageError(f"{spec} is a folder; bench takes .onnx files, zoo names or checkpoints")
    if path.is_file():
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            require("torch", "torch", f"benchmarking the checkpoint {spec}")
            from edgecnn.export.weights import read_weights

            ckpt = read_weights(spec)
            if ckpt.model is None:
                raise UsageError(f"{spec} is a bare state dict; export it first: edgecnn export <model> "
                                 f"--weights {spec}")
            return Target(spec, "checkpoint", ckpt.model, path, registry.get_card(ckpt.model))
        check_onnx(path)
        return Target(spec, "onnx", path.stem, path)
    if path.suffix.lower() in (".onnx", *CHECKPOINT_SUFFIXES) or path.parent != Path("."):
        raise MissingFileError(f"{spec}: no such file")
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
        own = _precision_of(target.path) if target.kind == "onnx" else "fp32"
        if own == precision:
            return target.path if target.kind == "onnx" else self._fp32(target, size)
        if own != "fp32":
            raise BenchError(f"{target.spec} is {own}; bench it with --precision {own} (other precisions are "
                             "made from an FP32 file)")
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
        """params, MACs per image and where they come from: the registry's card for a zoo name at its
        default input, else counted on the graph."""
        card = target.card
        if target.kind == "zoo" and (size is None or size == (card.input_size, card.input_size)):
            return {"params": card.params, "macs": card.macs, "cost_source": "registry"}
        key = (str(path), size)
        if key not in self._costs:
            c = graph_cost(path, size)
            if target.kind == "zoo":  # the card's params hold at any input size; BN is folded in the graph
                c["params"] = card.params
            self._costs[key] = {**c, "cost_source": "graph"}
        return self._costs[key]


_METADATA: dict[tuple[str, int, int], dict[str, str]] = {}  # (path, mtime_ns, size) -> metadata_props


def contract_of(path: Path):
    """The file's contract (None for a foreign file or one whose contract is unreadable). The file is
    parsed once per version of it: a sweep asks for the contract of each target several times."""
    import onnx

    from edgecnn.contract import from_metadata

    try:
        st = Path(path).stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in _METADATA:
            model = onnx.load(str(path), load_external_data=False)
            _METADATA[key] = {p.key: p.value for p in model.metadata_props}
        return from_metadata(dict(_METADATA[key]))  # a fresh Contract each call: callers may change theirs
    except Exception:
        return None


def accuracy_of(contract) -> dict | None:
    """Top-1 the contract records (a training run's validation top-1 or published ImageNet figures), as
    ``{"top1": fraction, "source": key}``; None when it records none."""
    metrics = (contract.metrics or {}) if contract is not None else {}
    for key in ("imagenet1k_top1", "val_top1", "best_top1", "top1", "accuracy"):
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return {"top1": v / 100 if v > 1 else float(v), "source": key}
    return None


def _precision_of(path: Path) -> str:
    c = contract_of(path)
    return c.precision if c is not None else "fp32"


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
