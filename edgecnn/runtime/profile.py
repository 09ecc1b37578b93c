"""Device profiles: what `edgecnn tune` found fastest for one ONNX file on one kind of host.

A profile lives in edgecnn's cache, ``$EDGECNN_HOME/profiles/<host tag>/<sha256 of the file>.json``,
so a file that changes (a new export) or a different machine kind never picks up a stale choice.
It holds, per task objective ("latency": batch 1, "throughput": images/s), the configuration that won
(runtime, precision, the file that precision lives in, threads, batch, runtime options) and the table it
was chosen from. ``--runtime auto`` / ``--precision auto`` read it with :func:`lookup`. No torch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from edgecnn.errors import EdgeCNNError
from edgecnn.fileio import atomic_path, sha256

SCHEMA = 1
OBJECTIVES = ("latency", "throughput")
RUNTIMES = ("ort", "openvino")
# the keys every chosen configuration carries (``options`` may be empty; extra keys are kept as they are)
CHOICE_KEYS = ("runtime", "precision", "path", "threads", "batch", "options")
# where a file's variant of another precision lives, beside it: what ``tune`` measures and ``--precision int8``
# opens (``edgecnn quantize``'s default name), and INT8 with float islands (``quantize --islands auto``)
PRECISION_SUFFIX = {"int8": ".int8.onnx", "int8-islands": ".int8-islands.onnx"}
# precisions that are a runtime's setting on the FP32 file, not a file of their own: precision -> the runtime
# that has it and the Engine option that asks for it (bf16: OpenVINO's inference precision, ``edgecnn.bf16``)
HINTED = {"bf16": ("openvino", {"inference_precision": "bf16"})}


class ProfileError(EdgeCNNError):
    """A profile that cannot be written, or a choice missing what it must name."""


def host_tag() -> str:
    from edgecnn.bench.environment import device_tag  # bench's environment core is torch-free

    return device_tag()


def profile_path(model_path: str | Path, host: str | None = None, digest: str | None = None) -> Path:
    """Where the profile of ``model_path`` on ``host`` (default: this machine's tag) lives."""
    from edgecnn.hub import home

    digest = digest or sha256(model_path)
    return home() / "profiles" / (host or host_tag()) / f"{digest[:32]}.json"


def save(model_path: str | Path, choices: dict[str, dict], table: list[dict], *, host: str | None = None,
         extra: dict | None = None) -> Path:
    """Write the profile of ``model_path``: ``choices`` maps an objective to the winning configuration
    (keys :data:`CHOICE_KEYS`), ``table`` is every measured row. Written atomically; returns the path."""
    for objective, choice in choices.items():
        if objective not in OBJECTIVES:
            raise ProfileError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
        missing = [k for k in CHOICE_KEYS if k not in choice]
        if missing:
            raise ProfileError(f"the {objective} choice lacks {', '.join(missing)}")
        if choice["runtime"] not in RUNTIMES:
            raise ProfileError(f"unknown runtime {choice['runtime']!r}; use one of {', '.join(RUNTIMES)}")
        hinted = HINTED.get(choice["precision"])
        if hinted and (choice["runtime"] != hinted[0] or any(
                (choice["options"] or {}).get(k) != v for k, v in hinted[1].items())):
            raise ProfileError(f"the {objective} choice's precision {choice['precision']} runs on {hinted[0]} with "
                               f"{hinted[1]}; got {choice['runtime']} with {choice['options']}")
    model_path = Path(model_path).resolve()
    digest = sha256(model_path)
    host = host or host_tag()
    target = profile_path(model_path, host, digest)
    doc = {"schema": SCHEMA, "file": str(model_path), "sha256": digest, "host": host,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "choices": choices, "table": table,
           **(extra or {})}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n")
    except OSError as e:
        raise ProfileError(f"cannot write the device profile {target}: {e.strerror or e}; "
                           "set EDGECNN_HOME to a writable folder") from e
    return target


def load(model_path: str | Path, host: str | None = None) -> dict | None:
    """The whole profile document of ``model_path`` on ``host``, or None when there is none (or it is
    unreadable, of another schema, or of another file content)."""
    try:
        digest = sha256(model_path)
    except OSError:
        return None
    path = profile_path(model_path, host, digest)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("sha256") != digest:
        return None
    return doc


def lookup(model_path: str | Path, objective: str = "latency", host: str | None = None) -> dict | None:
    """The configuration ``edgecnn tune`` chose for ``objective`` on this host, or None when the file was
    not tuned here (or the file the choice names, e.g. its INT8 variant, is gone)."""
    if objective not in OBJECTIVES:
        raise ProfileError(f"unknown objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
    doc = load(model_path, host)
    choice = (doc or {}).get("choices", {}).get(objective)
    if not choice or not os.path.exists(choice.get("path", "")):
        return None
    return choice


def engine_options(choice: dict) -> dict:
    """The ``Engine`` keyword arguments of an onnxruntime ``choice`` (threads and the session options tune
    kept: spinning, affinity, graph optimisation level, the saved optimised graph while it is still there)."""
    opts = choice.get("options") or {}
    out = {"threads": choice.get("threads"), "spinning": bool(opts.get("spinning", False)),
           "affinity": bool(opts.get("affinity", False)), "graph_opt": opts.get("graph_opt", "all")}
    saved = opts.get("optimized_model")
    if saved and os.path.exists(saved):
        out["optimized_model"] = saved
    return out


def variant_path(model_path: str | Path, precision: str) -> Path:
    """The file of ``model_path`` at ``precision`` beside it (``m.onnx`` -> ``m.int8.onnx``); may not exist."""
    if precision not in PRECISION_SUFFIX:
        raise ProfileError(f"no file naming rule for precision {precision!r}; use one of "
                           f"{', '.join(PRECISION_SUFFIX)}")
    p = Path(model_path)
    return p.with_name(p.stem + PRECISION_SUFFIX[precision])
