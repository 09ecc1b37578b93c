"""What an ONNX file is: contract (if any), inputs/outputs, opset, op histogram, params, MACs, precision and
size (the ``.onnx`` file plus its external data files). Works on any ONNX file, ours or another exporter's.
Needs onnx, not torch. The numbers come from ``edgecnn.bench.graph_cost``, the counter ``bench`` uses too."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgecnn.contract import ContractError, from_metadata
from edgecnn.errors import EdgeCNNError

_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def _value_info(v) -> dict[str, Any]:
    t = v.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    return {"name": v.name, "dtype": _DTYPES.get(t.elem_type, str(t.elem_type)), "shape": dims}


def _graph_tensors(graph):
    """Every TensorProto of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for n in graph.node:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _graph_tensors(a.g)
            for sub in a.graphs:
                yield from _graph_tensors(sub)


def external_files(model) -> list[str]:
    """The external data files (locations relative to the model's folder, in order of first use) that the
    model's tensors point to: initializers and Constant-node values alike (``model.onnx.data`` of torch's
    default export)."""
    import onnx

    found: dict[str, None] = {}
    for t in _graph_tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            where = next((e.value for e in t.external_data if e.key == "location"), None)
            if where:
                found[where] = None
    return list(found)


def file_sizes(path: str | Path, model=None) -> list[tuple[Path, int]]:
    """(path, bytes) of the ``.onnx`` file and each external data file it uses (``model``: the file already
    loaded, with or without its external data). A missing data file is an error saying which."""
    from edgecnn.bench.graph_cost import load_graph

    path = Path(path)
    model = model if model is not None else load_graph(path)
    out = [(path, path.stat().st_size)]
    for f in (path.parent / name for name in external_files(model)):
        if not f.is_file():
            raise EdgeCNNError(f"{path}: its weights live in {f}, which is missing; keep the data file next to "
                               "the .onnx file")
        out.append((f, f.stat().st_size))
    return out


def file_bytes(path: str | Path, model=None) -> int:
    """Bytes on disk of an ONNX model: the ``.onnx`` file plus its external data files."""
    return sum(n for _, n in file_sizes(path, model))


def inspect_onnx(path: str | Path, nodes: bool = False, size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The facts of an ONNX file; ``size`` (H, W): count MACs at that input size (default: the graph's
    static size, else its contract's)."""
    from edgecnn.bench.graph_cost import graph_cost, load_graph

    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"{path}: no such file")
    model = load_graph(path)
    g = model.graph
    inits = {i.name for i in g.initializer}
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        contract = from_metadata(meta)
    except ContractError as e:
        contract, contract_error = None, str(e)
    else:
        contract_error = None
    sizes = file_sizes(path, model)
    cost = graph_cost(model, size)
    own = contract.precision if contract is not None and contract.precision != "fp32" else cost["precision"]
    info: dict[str, Any] = {
        "file": str(path),
        "size_bytes": sum(n for _, n in sizes),
        "files": [{"path": str(p), "bytes": n} for p, n in sizes],
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opset": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "inputs": [_value_info(v) for v in g.input if v.name not in inits],
        "outputs": [_value_info(v) for v in g.output],
        "params": cost["params"],
        "macs": cost["macs"],
        "macs_size": cost["macs_size"],
        "precision": own,
        "precision_source": "contract" if contract is not None and contract.precision == own else "graph",
        "nodes": len(g.node),
        "ops": dict(Counter(n.op_type for n in g.node).most_common()),
        "contract": contract.to_dict() if contract else None,
    }
    if cost["macs_error"]:
        info["macs_error"] = cost["macs_error"]
    note = zoo_params_note(contract, cost["params"])
    if note:
        info["params_note"] = note
    if contract_error:
        info["contract_error"] = contract_error
    if nodes:
        info["node_list"] = [{"name": n.name, "op": n.op_type} for n in g.node]
    return info


def zoo_params_note(contract, file_params: int) -> str | None:
    """Why a file exported from a zoo model counts other parameters than the zoo's card (torch-free: the
    card's count against the file's); None when they agree or the file is not a zoo model at its card's
    classes and channels (the card does not count that model)."""
    from edgecnn import registry

    if contract is None or contract.model not in registry.REGISTRY:
        return None
    card = registry.REGISTRY[contract.model]
    classes = len(contract.labels) if contract.labels else None
    if card.params == file_params or contract.preprocess.channels != card.input_channels or \
            classes not in (None, card.num_classes):
        return None
    diff = card.params - file_params
    buffers = " and holds buffers such as anchors as constants" if contract.task == "detect" else ""
    why = (f"export folds each BatchNorm into its convolution (scale and shift become the conv's weights and "
           f"bias){buffers}; 'edgecnn summary {card.name}' itemises it") if diff > 0 else "the graph holds " \
        "tensors the PyTorch model keeps as buffers or constants"
    return (f"PyTorch model {card.params:,} = file {file_params:,} {'+' if diff > 0 else '-'} {abs(diff):,}: "
            f"{why}")
