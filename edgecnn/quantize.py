"""INT8 static quantization through onnxruntime.quantization, torch-free.

Calibration images go through the contract's preprocessing (the same code the runtime uses). The
activation/weight types follow the kernel path of the CPU the file is for (``edgecnn.int8_kernel``: u8s8
on VNNI/AMX x86, u8u8 on AVX2/AVX-512 x86 without VNNI where u8s8 saturates, s8s8 on ARM; ``--int8-kernel``
overrides). The report says what was chosen and why, how well INT8 agrees with FP32 (and accuracy when the
folder is labelled), which ops stayed in float, and whether INT8 is actually faster here.
``islands="auto"`` (``--islands auto``) keeps in float the blocks that INT8 makes slower on this host
(``edgecnn.islands``), calibrating once and quantizing each candidate exclusion set from the same ranges;
when no INT8 variant beats FP32 by the margin, the file written is the FP32 graph with the contract saying
so (``quantization.islands.kept == "fp32"``), so that it is never slower than FP32 and ``tune`` still finds it.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract, Detection, Overrides, Preprocess, attach, from_metadata
from edgecnn.errors import EdgeCNNError, MissingFileError, UsageError, first_line
from edgecnn.int8_kernel import choose_kernel, process_flags
from edgecnn.onnx_info import file_bytes
from edgecnn.onnx_prep import load, prepare_for_quantize, save
from edgecnn.runtime.image import IMAGE_SUFFIXES, Geometry, ImageError, preprocess_file
from edgecnn.runtime.sources import SourceError, collect_images

# Float compute kernels (as opposed to reshaping ops and the integer QLinear*/ConvInteger kernels).
COMPUTE_OPS = {"Conv", "FusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "Add", "Mul",
               "Sub", "Div", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax", "GlobalAveragePool",
               "AveragePool", "BatchNormalization", "ReduceMean", "LeakyRelu", "PRelu", "LayerNormalization", "Erf",
               "Gelu", "FastGelu", "Sqrt", "Pow", "SkipLayerNormalization"}


class QuantizeError(EdgeCNNError):
    """Quantization could not be done (bad calibration data, unsupported model)."""


@dataclass
class QuantizeOptions:
    model: str
    calib: str
    out: str | None = None
    samples: int = 64
    per_channel: bool = True
    exclude: list[str] = field(default_factory=list)
    kernel: str = "auto"  # auto | u8s8 | u8s8-reduce | u8u8 | s8s8 (edgecnn.int8_kernel)
    size: tuple[int, int] | None = None  # input size (needed for a file without a contract and a dynamic size)
    overrides: Overrides | None = None  # the shared preprocessing/task options: edit the file's contract
    min_agreement: float = 0.9  # INT8 gate: top-1 agreement with FP32 on the calibration images
    bench: bool = True
    islands: str = "off"  # off | auto: keep in float the blocks that are slower in INT8 on this host (edgecnn.islands)
    threads: int | None = None  # intra-op threads for the timings (None: one per physical core, as infer)
    timing: Any = None  # an edgecnn.islands.Timing; None: onnxruntime's profiler on this host


@dataclass
class QuantizeResult:
    path: Path
    contract: Contract
    fp32_bytes: int
    int8_bytes: int
    types: dict[str, Any]
    calibration: dict[str, Any]
    agreement: dict[str, Any]
    float_ops: dict[str, int]
    latency_ms: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)
    islands: dict[str, Any] | None = None  # edgecnn.islands.Choice.to_dict() when islands were searched

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"], d["contract"] = str(self.path), self.contract.to_dict()
        return d


ISLANDS = ("off", "auto")


def choose_types(requested: str = "auto") -> dict[str, Any]:
    """The INT8 kernel path for this process's CPU (``int8_kernel.choose_kernel`` on this machine's flags)."""
    import platform

    return choose_kernel(requested, platform.machine(), process_flags())


def _collect(calib: str, limit: int) -> list[tuple[Path, str | None]]:
    """Up to ``limit`` images from ``calib`` (recursive, sorted, spread over the folder), each with the
    name of its class folder when the folder is labelled ImageFolder-style."""
    root = Path(calib)
    if not root.exists():
        raise QuantizeError(f"--calib {calib}: no such folder")
    if not root.is_dir():
        raise QuantizeError(f"--calib {calib}: not a folder of images")
    try:
        files = sorted(collect_images([root]))
    except SourceError as e:
        raise QuantizeError(f"--calib {calib}: no images found ({', '.join(IMAGE_SUFFIXES)})") from e
    if len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    labelled = all(p.parent != root for p in files)
    return [(p, p.parent.name if labelled else None) for p in files]


def load_calibration(calib: str, spec: Preprocess, shape: tuple[int, int, int], limit: int):
    arrays, classes, bad = [], [], []
    for path, cls in _collect(calib, limit):
        try:
            x, _ = preprocess_file(path, spec)
        except ImageError as e:
            bad.append(str(e))
            continue
        if x.shape != shape:
            raise QuantizeError(f"{path}: preprocessed to {list(x.shape)} but the model takes {list(shape)} "
                                "(check the contract's channels and size)")
        arrays.append(x)
        classes.append(cls)
    if not arrays:
        raise QuantizeError(f"--calib {calib}: none of the images could be read (first: {bad[0]})")
    return arrays, classes, bad


def _float_ops(model) -> dict[str, int]:
    """Compute ops that still run in float in ``model``: the COMPUTE_OPS nodes (float kernels; the integer
    ones are QLinear*/ConvInteger/...). Applied to the graph onnxruntime actually runs (after its QDQ
    fusions, see ``runtime_float_ops``) this says which layers INT8 did not reach."""
    left = Counter(n.op_type for n in model.graph.node if n.op_type in COMPUTE_OPS)
    return dict(left.most_common())


def runtime_graph(model_bytes: bytes):
    """The graph onnxruntime runs on this CPU for a QDQ model (its optimiser fuses DQ -> op -> Q into
    integer kernels where it has one; what stays is float)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecnn-opt-") as td:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(Path(td) / "opt.onnx")
        ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def runtime_float_ops(model_bytes: bytes) -> dict[str, int]:
    """Float compute ops in the graph onnxruntime runs on this CPU for a QDQ model."""
    return _float_ops(runtime_graph(model_bytes))


def graph_facts(fp32_model, runtime_int8) -> dict[str, int]:
    """What in the measured graphs limits an INT8 speed-up: depthwise convolutions (few MACs per byte),
    squeeze-excite gates (global pools feeding a gate, besides the classifier's pool), and the
    quantize/dequantize steps left at run time."""
    import onnx

    shapes = {t.name: list(t.dims) for t in fp32_model.graph.initializer}
    depthwise = 0
    for n in fp32_model.graph.node:
        if n.op_type == "Conv":
            group = next((onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == "group"), 1)
            w = shapes.get(n.input[1]) if len(n.input) > 1 else None
            depthwise += bool(group > 1 and w and len(w) == 4 and w[1] == 1)
    pools = sum(n.op_type in ("GlobalAveragePool", "ReduceMean") and _feeds_gate(fp32_model, n)
                for n in fp32_model.graph.node)
    ops = Counter(n.op_type for n in runtime_int8.graph.node)
    return {"depthwise_convs": depthwise, "se_gates": pools,
            "qdq_steps": ops["QuantizeLinear"] + ops["DequantizeLinear"],
            "integer_ops": sum(v for k, v in ops.items() if k.startswith("QLinear") or k.endswith("Integer"))}


def _feeds_gate(model, pool) -> bool:
    """True when a pool's result reaches a Sigmoid/HardSigmoid within three nodes (an SE gate), not a classifier."""
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    frontier = [pool]
    for _ in range(4):
        frontier = [c for n in frontier for o in n.output for c in consumers.get(o, [])]
        if any(n.op_type in ("Sigmoid", "HardSigmoid") for n in frontier):
            return True
    return False


def why_not_faster(facts: dict[str, int], float_ops: dict[str, int], types: dict[str, Any]) -> str:
    """The reasons INT8 gains little here, each one read from the measured graphs and this CPU."""
    why = []
    if float_ops:
        why.append("ops left in float: " + ", ".join(f"{k} x{v}" for k, v in list(float_ops.items())[:5]))
    if facts["depthwise_convs"]:
        why.append(f"{facts['depthwise_convs']} depthwise convolutions (memory-bound: few MACs per byte moved)")
    if facts["se_gates"]:
        why.append(f"{facts['se_gates']} squeeze-excite gates (tiny tensors, per-call overhead)")
    if facts["qdq_steps"]:
        why.append(f"{facts['qdq_steps']} quantize/dequantize steps left at run time")
    if types.get("cpu", "").startswith(("x86", "amd64")) and not types.get("vnni"):
        why.append(f"no VNNI on this CPU ({types.get('kernel', 'u8s8')} dot products without vpdpbusd)")
    if not why:
        why.append(f"every compute op runs an integer kernel ({facts['integer_ops']}) and the graph has no depthwise "
                   "convolutions or SE gates: at this input size fixed per-call costs outweigh the arithmetic INT8 "
                   "saves")
    return "; ".join(why)


def _session(path_or_bytes, threads: int | None = None):
    """A CPU session with the runtime's options; pool threads spin, as for a latency measurement."""
    import onnxruntime as ort

    from edgecnn.runtime.session import session_options

    return ort.InferenceSession(path_or_bytes, session_options(threads=threads, spinning=True),
                                providers=["CPUExecutionProvider"])


def _agreement(fp32, int8, arrays, classes, labels) -> dict[str, Any]:
    name = fp32.get_inputs()[0].name  # the same input in both files
    a = np.concatenate([fp32.run(None, {name: x[None]})[0] for x in arrays])
    b = np.concatenate([int8.run(None, {name: x[None]})[0] for x in arrays])
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    num = (a64 * b64).sum(1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    out: dict[str, Any] = {
        "images": len(arrays),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "fp32_classes": int(len(np.unique(a.argmax(1)))),  # 1: FP32 says the same class for every image
        "max_abs_logits": float(np.abs(a - b).max()),
        "logit_scale": float(np.abs(a).max()),
        # rows that are all zero count as agreeing only with all zero
        "cosine_mean": float(np.mean(np.where(den > 0, num / np.where(den > 0, den, 1), (a64 == b64).all(1)))),
    }
    y = _targets(classes, labels, a.shape[1])
    if y is not None:
        out["accuracy_fp32"] = float((a.argmax(1) == y).mean())
        out["accuracy_int8"] = float((b.argmax(1) == y).mean())
    return out


def _detect_agreement(fp32, int8, arrays, contract: Contract, iou: float = 0.5) -> dict[str, Any]:
    """A detector's INT8 cost: both files' final detections (the contract's post-processing, in network
    pixels) matched box to box (``runtime.detect.agreement``), and the cosine of their scores."""
    from edgecnn.runtime.detect import agreement, postprocess

    name = fp32.get_inputs()[0].name
    pre, spec = contract.preprocess, contract.detection or Detection()
    geoms = [Geometry((pre.width, pre.height), (1.0, 1.0), (0.0, 0.0))]
    dets: dict[str, list] = {"fp32": [], "int8": []}
    scores: dict[str, list] = {"fp32": [], "int8": []}
    for x in arrays:
        for key, sess in (("fp32", fp32), ("int8", int8)):
            out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: x[None]}), strict=True))
            dets[key] += postprocess(out, geoms, spec, (pre.width, pre.height))
            if "scores" in out:
                scores[key].append(out["scores"].astype(np.float64).ravel())
    a = agreement(dets["fp32"], dets["int8"], iou)
    res: dict[str, Any] = {"task": "detect", "images": len(arrays), "f1": a["f1"], "mean_iou": a["mean_iou"],
                           "matched": a["matched"], "fp32_detections": a["ref"], "int8_detections": a["got"],
                           "match_iou": iou, "conf": spec.conf}
    if scores["fp32"]:
        cos = [float(u @ v / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-300))
               for u, v in zip(scores["fp32"], scores["int8"], strict=True)]
        res["score_cosine_mean"] = float(np.mean(cos))
    return res


def _targets(classes: list[str | None], labels: list[str] | None, num_classes: int) -> np.ndarray | None:
    """Class indices of ImageFolder-labelled calibration images: by the contract's labels when the folder
    names are among them, else by sorted folder order (the training convention) when the counts match."""
    if not classes or any(c is None for c in classes):
        return None
    if labels:
        index = {n: i for i, n in enumerate(labels)}
    else:
        folders = sorted(set(classes))
        index = {n: i for i, n in enumerate(folders)} if len(folders) == num_classes else {}
    if not all(c in index for c in classes):
        return None
    return np.array([index[c] for c in classes])


def _latency(fp32, int8, x: np.ndarray, name: str) -> dict[str, Any]:
    from edgecnn.bench.timing import interleaved, summarize

    feed = {name: x[None]}
    times = interleaved({"fp32": lambda: fp32.run(None, feed), "int8": lambda: int8.run(None, feed)},
                        rounds=4, block=8)
    s = {k: summarize(v) for k, v in times.items()}
    return {"fp32_p50": s["fp32"]["p50"], "int8_p50": s["int8"]["p50"],
            "speedup": s["fp32"]["p50"] / s["int8"]["p50"], "batch": 1, "protocol": "interleaved 4x8, medians"}


def quantize(opts: QuantizeOptions) -> QuantizeResult:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = Path(opts.model)
    if not src.is_file():
        raise MissingFileError(f"{opts.model}: no such ONNX file")
    if opts.samples < 1:
        raise UsageError(f"--samples must be positive, got {opts.samples}")
    if opts.islands not in ISLANDS:
        raise UsageError(f"--islands must be one of {', '.join(ISLANDS)}, got '{opts.islands}'")
    try:
        model = load(src)  # with its external data
    except Exception as e:
        raise QuantizeError(f"{src}: not a readable ONNX file ({first_line(e)})") from e
    if not model.graph.input:
        raise QuantizeError(f"{src}: not an ONNX model with an input (empty or truncated file?)")
    contract = from_metadata({p.key: p.value for p in model.metadata_props})
    notes: list[str] = []
    over = opts.overrides or Overrides()
    if opts.size is not None:
        over = replace(over, size=opts.size)
    if contract is None:  # another exporter's file: the same graph-derived contract ``infer`` uses, which the
        # INT8 file keeps, ``assumed`` included (so ``infer`` on it warns as on this file)
        from edgecnn.runtime.session import Engine

        engine = Engine(src, provider="cpu", overrides=over)
        contract = engine.contract
        notes.extend(engine.warnings)
    else:
        contract = over.apply(contract)
    if contract.precision == "int8":
        raise QuantizeError(f"{src} is already INT8")
    pre = contract.preprocess
    shape = (pre.channels, pre.height, pre.width)
    arrays, classes, bad = load_calibration(opts.calib, pre, shape, opts.samples)
    if bad:
        notes.append(f"{len(bad)} calibration file(s) skipped (first: {bad[0]})")
    types = choose_types(opts.kernel)
    out = Path(opts.out) if opts.out else src.with_name(src.stem + ".int8.onnx")
    if out.resolve() == src.resolve():
        raise UsageError("--out must differ from the input file")
    node_names = {n.name for n in model.graph.node}
    unknown = [n for n in opts.exclude if n not in node_names]
    if unknown:
        raise UsageError(f"--exclude: no node named '{unknown[0]}' (see 'edgecnn inspect {src} --nodes')")

    inp = contract.input_name
    if contract.input_layout == "NHWC":
        arrays = [a.transpose(1, 2, 0) for a in arrays]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(arrays)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {inp: x[None]}

    with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as td:
        prep = prepare_for_quantize(model, src, Path(td), {inp: arrays[0][None]}, opts.per_channel)  # any opset
        notes, opts = notes + prep.notes, replace(opts, per_channel=prep.per_channel)
        prepped = Path(td) / "pre.onnx"
        try:
            quant_pre_process(str(prep.path), str(prepped), skip_symbolic_shape=True,
                              save_as_external_data=prep.external)
        except Exception as e:  # pre-processing is an optimisation; quantize the raw graph without it
            notes.append(f"onnxruntime pre-processing skipped ({first_line(e, 120)})")
            prepped = prep.path
        if opts.islands == "auto":  # every node named, so that any of them can be kept in float
            from edgecnn.islands import name_nodes

            graph = load(prepped)
            if name_nodes(graph):
                prepped = Path(td) / "named.onnx"
                save(graph, prepped)
        cache = Path(td) / "ranges.json"  # calibrated once; every exclusion set reuses the ranges

        def build(exclude: list[str], reader=None) -> Path:
            qtmp = Path(td) / f"int8-{len(list(Path(td).glob('int8-*')))}.onnx"
            try:
                quantize_static(
                    str(prepped), str(qtmp), reader, quant_format=QuantFormat.QDQ, per_channel=opts.per_channel,
                    activation_type=QuantType.QUInt8 if types["activations"] == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QUInt8 if types["weights"] == "uint8" else QuantType.QInt8,
                    reduce_range=types["reduce_range"], nodes_to_exclude=list(exclude),
                    use_external_data_format=prep.external, calibration_cache_path=str(cache),
                )
            except Exception as e:
                raise QuantizeError(f"onnxruntime quantization failed: {first_line(e, 300)}") from e
            return qtmp

        qpath = build(opts.exclude, Reader())
        choice = None
        if opts.islands == "auto" and prep.external:
            notes.append("--islands auto skipped: the graph is stored with external data (over 2 GB)")
        elif opts.islands == "auto":
            qpath, choice = _islands(prepped, build, qpath, opts, {inp: arrays[0][None]})
        float_kept = choice is not None and choice.kept == "fp32"  # INT8 did not pay: the FP32 graph is written
        qmodel = load(src) if float_kept else onnx.load(qpath)
    qbytes = qmodel.SerializeToString()
    try:
        int8_graph = runtime_graph(qbytes)
    except Exception as e:  # onnxruntime's own exception types, all plain Exception
        raise QuantizeError(f"onnxruntime cannot run the INT8 graph: {first_line(e, 300)}") from e
    float_ops = _float_ops(int8_graph)
    fp32_sess, int8_sess = _session(str(src), opts.threads), _session(qbytes, opts.threads)
    if contract.task == "detect":
        agreement = _detect_agreement(fp32_sess, int8_sess, arrays, contract)
        judged_by, value = "matched-box F1 of the final detections with the FP32 file's (same class, IoU >= 0.5)", \
            agreement["f1"]
    else:
        agreement = _agreement(fp32_sess, int8_sess, arrays, classes, contract.labels)
        judged_by, value = "top-1 agreement with the FP32 file on the calibration images", agreement["top1_agreement"]
    gate = {"precision": "int8", "judged_by": judged_by, "min_agreement": opts.min_agreement, "agreement": value,
            "images": len(arrays)}
    if contract.random_init:
        gate["passed"] = None  # agreement between two renderings of noise proves nothing either way
        notes.append("random-init weights: INT8 agreement is reported but not judged")
    else:
        gate["passed"] = value >= opts.min_agreement
        if not gate["passed"]:
            what = "detection F1" if contract.task == "detect" else "top-1 agreement"
            raise QuantizeError(f"INT8 gate failed, no file written: {what} with FP32 "
                                f"{value:.1%} < {opts.min_agreement:.0%} on {len(arrays)} "
                                "images; try more --samples, --per-channel, or --exclude the sensitive nodes")
    latency = _latency(fp32_sess, int8_sess, arrays[0], inp) if opts.bench else None
    if latency and latency["speedup"] < 1.2 and not float_kept:
        why = why_not_faster(graph_facts(model, int8_graph), float_ops, types)
        verdict = "NOT faster than" if latency["speedup"] < 1.0 else "barely faster than"
        notes.append(f"INT8 is {verdict} FP32 here ({latency['speedup']:.2f}x): {why}")

    islands = choice.to_dict() if choice is not None else None
    if islands is not None:
        notes.append(islands_verdict(islands))
    quant_info = {"types": types, "per_channel": opts.per_channel, "exclude": list(opts.exclude),
                  "calibration": {"folder": str(opts.calib), "images": len(arrays), "method": "minmax"},
                  "agreement": agreement, "source": {"file": src.name}}
    if islands is not None:
        quant_info["islands"] = {k: islands[k] for k in ("kept", "islands", "metric", "profiled_ms", "latency_ms",
                                                         "speedup_vs_fp32", "pays", "confirm")}
        quant_info["islands"]["threads"] = opts.threads
    if float_kept:  # the FP32 graph, its export parity report and opset as they were; the contract says why
        quant_info["islands"]["verdict"] = "int8 did not pay on this host: the graph is the FP32 one"
        contract.quantization = quant_info
    else:
        contract.precision, contract.quantization, contract.parity = "int8", quant_info, gate
        contract.opset = prep.opset if contract.opset is not None else None  # the graph's, when lifted to opset 13
    attach(qmodel, contract)
    fp32_bytes, _ = file_bytes(src), save(qmodel, out)
    return QuantizeResult(out, contract, fp32_bytes, file_bytes(out), types,
                          quant_info["calibration"], agreement, float_ops, latency, notes, islands)


def _islands(prepped: Path, build, plain: Path, opts: QuantizeOptions, feed: dict[str, np.ndarray]):
    """``edgecnn.islands.search`` on the pre-processed FP32 graph (the node names quantization sees), with
    onnxruntime's profiler on this host unless ``opts.timing`` says otherwise. Returns the kept INT8
    graph's path (None when no INT8 variant paid: ``choice.kept == "fp32"``) and the choice."""
    import onnx

    from edgecnn.islands import OrtTiming, search

    fp32_model = onnx.load(prepped)
    timing = opts.timing or OrtTiming(feed, fp32_model, threads=opts.threads)
    built: dict[bytes, Path] = {}

    def build_bytes(exclude: list[str]) -> bytes:
        path = plain if list(exclude) == list(opts.exclude) else build(exclude)
        data = path.read_bytes()
        built[data] = path
        return data

    try:
        choice, kept = search(prepped.read_bytes(), fp32_model, build_bytes, timing, base_exclude=opts.exclude)
    except EdgeCNNError:
        raise
    except Exception as e:  # onnxruntime's own exception types, all plain Exception
        raise QuantizeError(f"--islands auto: timing the graphs failed: {first_line(e, 300)}") from e
    return (None if choice.kept == "fp32" else built[kept]), choice


def islands_verdict(isl: dict[str, Any]) -> str:
    """One line: what ``--islands auto`` kept and whether INT8 pays on this host, with the figures that decided."""
    def row(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in d.items())

    by = "summed per-node profile" if isl["metric"] == "profile" else "wall time"
    search = f"search by the {by} (ms per call: {row(isl['profiled_ms'])}; wall medians: {row(isl['latency_ms'])})"
    conf = isl.get("confirm") or {}
    if not conf:  # unconfirmed (search(confirm_passes=0)): the fastest variant by the search's measure
        return f"islands: kept {isl['kept']} -> {isl['speedup_vs_fp32']:.2f}x FP32 by the {search}"
    worst, low = ("second-worst", "second-lowest") if conf.get("trim") else ("worst", "lowest")
    rule = (f"{conf['passes']} paired passes against FP32; pays when the median ratio >= {1 + conf['margin']:.2f}x "
            f"(margin {conf['margin']:.0%}: the {worst} FP32-vs-FP32 pass, at least {conf['min_margin']:.0%}) and "
            f"the {low} >= 1.00x")
    if isl["kept"] == "fp32":
        b = conf["variants"][conf["best"]]
        return (f"islands: INT8 does NOT pay on this host: the best INT8 variant, {conf['best']}, ran at "
                f"{b['median']:.2f}x FP32 ({low} pass {b['low']:.2f}x; {rule}); the file written is the FP32 graph "
                f"(contract: quantization.islands.kept = fp32): deploy the FP32 file. {search[0].upper()}"
                f"{search[1:]}")
    v = conf["variants"][isl["kept"]]
    what = "plain INT8" if isl["kept"] == "int8" else f"{len(isl['islands'])} float island(s) ({isl['kept']})"
    return (f"islands: kept {what} -> {v['median']:.2f}x FP32 ({low} pass {v['low']:.2f}x; {rule}); {search}")
