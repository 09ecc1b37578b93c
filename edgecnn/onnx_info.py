"""What an ONNX file is: contract (if any), inputs/outputs, opset, op histogram, params, size.
Works on any ONNX file, ours or another exporter's. Needs onnx, not torch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgecnn.contract import ContractError, from_metadata
from edgecnn.errors import EdgeCNNError, first_line

_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def _value_info(v) -> dict[str, Any]:
    t = v.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    return {"name": v.name, "dtype": _DTYPES.get(t.elem_type, str(t.elem_type)), "shape": dims}


def inspect_onnx(path: str | Path, nodes: bool = False) -> dict[str, Any]:
    import numpy as np
    import onnx

    path = Path(path)
    if not path.is_file():
        raise EdgeCNNError(f"{path}: no such file")
    try:
        model = onnx.load(path)
    except Exception as e:
        raise EdgeCNNError(f"{path}: not a readable ONNX file ({first_line(e)})") from e
    g = model.graph
    inits = {i.name for i in g.initializer}
    params = sum(int(np.prod(i.dims)) for i in g.initializer)
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        contract = from_metadata(meta)
    except ContractError as e:
        contract, contract_error = None, str(e)
    else:
        contract_error = None
    info: dict[str, Any] = {
        "file": str(path),
        "size_bytes": path.stat().st_size,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opset": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "inputs": [_value_info(v) for v in g.input if v.name not in inits],
        "outputs": [_value_info(v) for v in g.output],
        "params": params,
        "nodes": len(g.node),
        "ops": dict(Counter(n.op_type for n in g.node).most_common()),
        "contract": contract.to_dict() if contract else None,
    }
    if contract_error:
        info["contract_error"] = contract_error
    if nodes:
        info["node_list"] = [{"name": n.name, "op": n.op_type} for n in g.node]
    return info
