"""What a graph's outputs are: a class vector, a detector head, or something to report raw.

``infer_task`` reads a file without a contract from its output shapes alone, and only where they
are unambiguous: a class vector ``(N, C)`` or ``(N, C, 1, 1)`` is a classifier; a single rank-3
output whose anchor count is the one a YOLO head has for the input size is that detector (see
``edgecnn.runtime.yolo``); anything else is ``raw``. ``check`` refuses a contract's task that the
outputs cannot carry (a map read as class scores), with one line saying how to declare the file.
NumPy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from edgecnn.contract import Contract, Overrides, from_graph
from edgecnn.errors import EdgeCNNError
from edgecnn.runtime import yolo


class OutputError(EdgeCNNError):
    """A file whose outputs the task it was asked for cannot interpret."""


def shape_text(shape: Sequence) -> str:
    """``[1, 1, 'H', 448]`` -> ``1x1xHx448`` (a dynamic dim by its name, ``?`` when unnamed)."""
    return "x".join(str(d) if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) and d else "?")
                    for d in shape)


def is_class_vector(shape: Sequence) -> bool:
    """``(N, C)`` with C not known to be 1, or ``(N, C, 1, 1)`` (a pooled map). Dims are ints where
    known; a dynamic C counts (a run tells it), a dynamic spatial dim does not (it is a map)."""
    def known(d, value):
        return isinstance(d, int) and d == value

    if len(shape) == 2:
        return not known(shape[1], 1) and not known(shape[1], 0)
    return len(shape) == 4 and known(shape[2], 1) and known(shape[3], 1) and not known(shape[1], 1)


def infer_task(shapes: Mapping[str, Sequence], height: int, width: int,
               metadata: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(task, detection layout or None) for graph outputs ``{name: dims}`` (the first output first) of a
    model fed ``height x width`` images: ``classify`` when the first output is a class vector (and no
    output is rank 1), ``detect`` with ``yolov8``/``yolov5`` for one rank-3 output shaped as that head,
    else ``raw``. A YOLO-shaped head of an Ultralytics export whose ``task`` metadata is not ``detect``
    (segment, pose, obb: mask, keypoint or angle columns after the classes), or beside a mask-prototype
    output (rank 4), is ``raw`` too: its extra columns are not classes."""
    dims = list(shapes.values())
    # a rank-1 output beside it (per-box scores, labels: a detector after its own NMS, whose boxes are
    # (K, 4)) says the first output is not class scores
    if dims and is_class_vector(dims[0]) and all(len(d) >= 2 for d in dims):
        return "classify", None
    heads = [d for d in dims if len(d) == 3]
    other_task = (metadata or {}).get("task", "detect") != "detect"
    if len(heads) == 1 and not other_task and not any(len(d) == 4 for d in dims):
        found = [lay for lay in yolo.LAYOUTS if yolo.matches(lay, heads[0], height, width)]
        if len(found) == 1:  # both at once (a square head) would be a guess
            return "detect", found[0]
    return "raw", None


def _declare(path: Path | str) -> str:
    return (f"declare what it is: edgecnn contract {path} --task raw (statistics and --save arrays), "
            "or --task detect --layout yolov8|yolov5")


def check(contract: Contract, shapes: Mapping[str, Sequence], path: Path | str,
          classifier_output: str | None = None) -> None:
    """Raise ``OutputError`` when ``contract.task`` cannot read outputs of these (declared) shapes:
    a classifier whose scores output is not a class vector; a YOLO layout with no rank-3 output.
    Dynamic dims pass here; ``check_run`` checks the arrays of the first batch."""
    if contract.task == "classify":
        name = classifier_output or next(iter(shapes), None)
        if name in shapes and not is_class_vector(shapes[name]):
            raise OutputError(f"{path}: output '{name}' is {shape_text(shapes[name])}, not a class vector "
                              f"(N, C) or (N, C, 1, 1), so it cannot be read as classes; {_declare(path)}")
    elif contract.task == "detect" and contract.detection and shapes:
        det = contract.detection
        found = ", ".join(f"{k} {shape_text(d)}" for k, d in shapes.items())
        if det.layout in yolo.LAYOUTS:
            if not any(len(d) == 3 for d in shapes.values()):
                raise OutputError(f"{path}: the contract says a {det.layout} detector, whose head is one rank-3 "
                                  f"output, but the outputs are {found}; {_declare(path)}")
            return
        need = ("detections",) if det.nms == "graph" else ("boxes", "scores")
        if not all(n in shapes for n in need):
            raise OutputError(f"{path}: an edgecnn-layout detector has outputs named {' and '.join(need)}, but "
                              f"this file's are {found}; {_declare(path)}")


def check_scores(name: str, shape: Sequence[int], path: Path | str) -> None:
    """The classifier output ``name`` of a run: a class vector of at least 2 classes, else ``OutputError``."""
    c = shape[1] if len(shape) > 1 else 0
    if not is_class_vector(shape) or c < 2:
        raise OutputError(f"{path}: output '{name}' is {shape_text(shape)}, not a class vector (N, C) with C >= 2, "
                          f"so it cannot be read as classes; {_declare(path)}")


def graph_contract(model: str, inputs: list[tuple[str, list]], outputs: list[tuple[str, list]],
                   over: Overrides | None, metadata: Mapping[str, str] | None = None, strict: bool = False,
                   where: str | Path | None = None) -> Contract:
    """``contract.from_graph`` for a file of another tool, its task read from the output shapes
    (``infer_task``) unless the options say it; an Ultralytics YOLO export also brings its class names
    (its ``names`` metadata) unless ``--labels`` gives them."""
    meta = dict(metadata or {})
    c = from_graph(model, inputs, outputs, over, strict, where=where,
                   guess=lambda shapes, h, w: infer_task(shapes, h, w, meta))
    if (c.task == "detect" and c.detection is not None and c.detection.layout in ("yolov8", "yolov5")
            and c.labels is None):
        c.labels = yolo.metadata_labels(meta)
    return c
