"""ONNX files other tools wrote, made ready for onnxruntime's quantizer; ONNX files written whatever their size.

Files from other exporters differ from edgecnn's own in three ways that break static quantization:
- an opset below 13: per-channel weights need a per-axis DequantizeLinear (its ``axis`` attribute came
  in opset 13), so onnxruntime rejects the quantized graph. The onnx version converter lifts the graph
  to opset 13; the converted graph must give the same FP32 outputs as the file, else (or when the
  converter fails) the weights are quantized per tensor, which every opset from 10 runs.
- weights held in Constant nodes (old torch and PaddlePaddle exports): onnxruntime's quantizer only
  quantizes initializers, so those weights would stay float. They are promoted to initializers.
- external data (``model.onnx`` + ``model.onnx.data``): read from the file's folder; written back
  inline below protobuf's 2 GB limit and beside the file above it.
torch-free.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.fileio import atomic_path
from edgecnn.onnx_info import external_files

QDQ_OPSET = 13  # per-axis QuantizeLinear/DequantizeLinear (per-channel weights)
WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
INLINE_LIMIT = 2_000_000_000  # bytes; protobuf cannot serialise one message of 2 GiB or more


@dataclass
class Prepared:
    """The graph to hand to the quantizer and what was done to get it."""

    path: Path  # the prepared FP32 graph (in the caller's temporary folder)
    per_channel: bool  # per-channel weights still possible (False: fell back to per tensor)
    opset: int  # the prepared graph's ai.onnx opset
    external: bool  # the prepared graph is too large to write inline (quantizer must use external data)
    promoted: list[str] = field(default_factory=list)  # Constant nodes made initializers
    notes: list[str] = field(default_factory=list)


def opset_of(model) -> int:
    """The model's ai.onnx opset (0 when it imports none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def promote_constants(model) -> list[str]:
    """Turn the main graph's Constant nodes that hold a tensor into initializers of the same name, in
    place, so that onnxruntime's quantizer sees (and quantizes) weights stored that way. Returns
    their names. Constants inside subgraphs (If/Loop bodies) stay nodes."""
    from onnx import AttributeProto, helper, numpy_helper

    graph, keep, names = model.graph, [], []
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        attr = node.attribute[0] if node.op_type == "Constant" and len(node.attribute) == 1 else None
        if attr is None or node.domain not in ("", "ai.onnx") or node.output[0] in outputs:
            keep.append(node)
            continue
        if attr.type == AttributeProto.TENSOR:
            tensor = attr.t
        elif attr.name in ("value_float", "value_floats", "value_int", "value_ints"):
            value = helper.get_attribute_value(attr)
            tensor = numpy_helper.from_array(np.array(value, np.float32 if "float" in attr.name else np.int64))
        else:  # sparse_value, strings: leave them to the runtime
            keep.append(node)
            continue
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        if model.ir_version < 4:  # before IR 4 every initializer also had to be a graph input
            graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        names.append(tensor.name)
    if names:
        del graph.node[:]
        graph.node.extend(keep)
    return names


def upgrade(model, opset: int = QDQ_OPSET):
    """``model`` converted to ``opset`` by the onnx version converter and checked; raises on failure."""
    import onnx
    from onnx import version_converter

    converted = version_converter.convert_version(model, opset)
    converted.ir_version = max(converted.ir_version, 7)  # opset 13 needs IR 7
    onnx.checker.check_model(converted)
    return converted


def same_outputs(reference, candidate: bytes, feed: dict[str, np.ndarray]) -> str | None:
    """None when ``candidate`` (model bytes) gives ``reference``'s (a path or model bytes) FP32 outputs on
    ``feed`` (1e-4 of each output's scale), else what differed."""
    import onnxruntime as ort

    runs = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feed) for m in (reference, candidate)]
    for i, (a, b) in enumerate(zip(*runs, strict=True)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            return f"output {i} has shape {list(b.shape)} instead of {list(a.shape)}"
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        if not diff <= 1e-4 * max(1.0, float(np.abs(a).max()) if a.size else 0.0):
            return f"output {i} differs by {diff:.3g}"
    return None


def prepare_for_quantize(model, src: Path, workdir: Path, feed: dict[str, np.ndarray],
                         per_channel: bool) -> Prepared:
    """The graph of ``model`` (loaded from ``src`` with its external data) ready for onnxruntime's static
    quantizer, written to ``workdir``: lifted to opset 13 when below it (same FP32 outputs as ``src`` on
    ``feed``, else per-tensor weights), Constant-node tensors promoted to initializers (in ``model`` too)."""
    notes: list[str] = []
    promoted = promote_constants(model)
    weights = {i for n in model.graph.node if n.op_type in WEIGHTED_OPS for i in n.input[1:]} & set(promoted)
    if weights:
        notes.append(f"{len(weights)} weight/bias tensor(s) held in Constant nodes made initializers, so that they "
                     "are quantized")
    have = opset_of(model)
    if 0 < have < QDQ_OPSET:
        why = None
        try:
            converted = upgrade(model)
            why = same_outputs(str(src), converted.SerializeToString(), feed)
        except Exception as e:  # the converter and checker raise plain RuntimeError/ValidationError
            why = f"conversion to opset {QDQ_OPSET} failed: {first_line(e, 160)}"
        if why is None:
            model = converted
            promote_constants(model)  # the converter's own constants (axes that became inputs)
            notes.append(f"graph converted from opset {have} to {QDQ_OPSET} (same FP32 outputs)"
                         + (" for per-channel INT8" if per_channel else ""))
        elif per_channel:
            per_channel = False
            notes.append(f"opset {have} kept ({why}): weights quantized per tensor, as per-channel needs opset "
                         f"{QDQ_OPSET}")
        else:
            notes.append(f"opset {have} kept ({why})")
    path = Path(workdir) / "fp32.onnx"
    external = save(model, path)
    return Prepared(path, per_channel, opset_of(model), external, promoted, notes)


def save(model, out: str | Path) -> bool:
    """Write ``model`` to ``out`` with nothing half-written on failure: inline when it serialises under
    ``INLINE_LIMIT``; else its tensors go to ``<out name>.data`` beside it (the model then refers to that
    file, so ``model`` itself no longer holds them). Returns True when external data was written."""
    import onnx

    out = Path(out)
    if model.ByteSize() < INLINE_LIMIT:
        with atomic_path(out) as tmp:
            onnx.save_model(model, str(tmp))
        return False
    data = out.name + ".data"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as td:
        onnx.save_model(model, str(Path(td) / out.name), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
        os.replace(Path(td) / data, out.parent / data)  # the data first: the model never points at a missing file
        os.replace(Path(td) / out.name, out)
    return True


def load(path: str | Path):
    """An ONNX model with its external data read from the file's folder; a missing data file is named."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    missing = [f for f in external_files(model) if not (path.parent / f).is_file()]
    if missing:
        raise EdgeCNNError(f"its external data file {missing[0]} is missing; keep it beside the .onnx file")
    load_external_data_for_model(model, str(path.parent))
    return model
