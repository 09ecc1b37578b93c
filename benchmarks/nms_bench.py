"""Speed of detection post-processing (edgecnn.runtime.detect) next to a model's inference time.

    python benchmarks/nms_bench.py                       # exports mobilenetv2@320 with torch if needed
    python benchmarks/nms_bench.py --model export/mobilenetv2.onnx --rounds 7   # any classifier file, its own size

Writes benchmarks/results/<device-tag>/nms.md (the tag from edgecnn.bench.environment.device_tag(): CPU
model, cores, ISA level), or --out.

Measures, interleaved in blocks (DESIGN.md, "Measuring on a small shared machine"):
  - ``nms`` / ``batched_nms`` over 1,000 and 10,000 overlapping boxes (clustered around 25 objects
    in a 640x640 image, random scores; 80 classes for the batched case), without a cap and capped at the
    first 100 (``max_output=100``, what ``postprocess`` asks for with ``max_det=100``); "no cap" rows
    keep every box that survives NMS, and the note says how many that is;
  - the whole post-processing of one SSDLite-shaped output, what ``edgecnn infer`` does per image:
    3,234 anchors (SSDLite at 320: (20^2 + 10^2 + 5^2 + 3^2 + 2^2 + 1^2) x 6) x 91 classes of
    softmax probabilities, class 0 background, 6 objects; threshold, class-aware NMS, letterbox
    undo, clipping and the JSON records; boxes decoded in the graph (xyxy) or on the host from
    regression deltas + anchors; at infer's default conf 0.25 and at a mAP-style conf 0.001;
  - the inference time of a mobilenetv2 classifier at 320x320 (or of ``--model``'s file at the input
    size its contract or graph gives) through the same ``Engine`` that ``infer`` uses: a stand-in for
    SSDLite-MobileNetV2 at 320, whose backbone is that network (its extra SSDLite head adds roughly
    10-15% MACs).

With ``--torchvision`` (run from a venv that has torch, torchvision and onnxruntime, never the project's own;
``PYTHONPATH`` at this checkout), side by side on the same raw outputs of ssdlite320_mobilenetv3_large at
320x320, 91 classes, 3,234 anchors, interleaved in blocks, written to ``nms_ssdlite.md``:

    edgecnn export ssdlite320_mobilenetv3_large -o /tmp/ssdlite320.onnx --no-check    # FP32, random init
    /path/to/tv-venv/bin/python benchmarks/nms_bench.py --torchvision --model /tmp/ssdlite320.onnx

  - onnxruntime inference of that FP32 file at 1 and 2 intra-op threads (the network, with its box decoding
    and softmax in the graph, as ``edgecnn infer`` runs it);
  - ``edgecnn.runtime.detect.postprocess`` on the graph's outputs (decoded boxes, softmax scores), with the
    model's contract settings (conf 0.001, IoU 0.55, 300 candidates per class, 300 detections) and at
    conf 0.25;
  - torchvision's ``SSD.postprocess_detections`` (its softmax, box decoding, per-class top-300, batched NMS;
    torch at 1 thread) on the same head outputs: regression deltas and logits, saved as .npy;
two score distributions: a random-init torchvision ``ssdlite320_mobilenet_v3_large`` (weights=None) run on a
photo (``--image``; its scores are exactly 1/91 everywhere: all tied, every class of every anchor above 0.001)
and a peaked synthetic one
(``ssdlite_output``: background dominates, six objects light up their anchors). The two post-processings'
detections are compared (``detect.agreement``) so the figures are of the same work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgecnn.bench.timing import interleaved, summarize  # noqa: E402
from edgecnn.contract import Detection  # noqa: E402
from edgecnn.runtime import detect  # noqa: E402
from edgecnn.runtime.image import Geometry  # noqa: E402

SIZE = 320
N_ANCHORS = (20 * 20 + 10 * 10 + 5 * 5 + 3 * 3 + 2 * 2 + 1) * 6  # 3,234
N_CLASSES = 91  # COCO as torchvision numbers it, background at 0


def overlapping_boxes(n: int, rng: np.random.Generator, objects: int = 25, extent: float = 640.0):
    """``n`` boxes jittered around ``objects`` ground-truth boxes: the crowds NMS is for."""
    centers = rng.uniform(60, extent - 60, (objects, 2))
    sizes = rng.uniform(30, 120, (objects, 2))
    k = rng.integers(0, objects, n)
    c = centers[k] + rng.normal(0, 8, (n, 2))
    wh = sizes[k] * rng.uniform(0.8, 1.25, (n, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], 1).clip(0, extent).astype(np.float32)
    return boxes, rng.random(n).astype(np.float32), rng.integers(0, 80, n)


def ssdlite_output(rng: np.random.Generator, objects: int = 6):
    """One image's raw SSDLite-shaped outputs: anchors (A, 4) xyxy, deltas (1, A, 4), decoded boxes
    (1, A, 4) and softmax scores (1, A, 91) where a trained model puts most mass on background."""
    anchors = []
    for fm, scale in ((20, 0.2), (10, 0.35), (5, 0.5), (3, 0.65), (2, 0.8), (1, 0.95)):
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        for ar in (1.0, 2.0, 0.5, 3.0, 1 / 3, 1.0):
            w, h = scale * np.sqrt(ar), scale / np.sqrt(ar)
            anchors.append(np.stack([xs - w / 2, ys - h / 2, xs + w / 2, ys + h / 2], -1).reshape(-1, 4))
    anchors = (np.concatenate(anchors) * SIZE).astype(np.float32)
    assert len(anchors) == N_ANCHORS
    deltas = rng.normal(0, 0.5, (1, N_ANCHORS, 4)).astype(np.float32)
    logits = rng.normal(0, 1, (1, N_ANCHORS, N_CLASSES)).astype(np.float32)
    logits[..., 0] += 8.0  # background dominates almost everywhere
    for _ in range(objects):  # each object lights up the anchors around it in one class
        cls, centre = rng.integers(1, N_CLASSES), rng.uniform(40, SIZE - 40, 2)
        ac = (anchors[:, :2] + anchors[:, 2:]) / 2
        near = np.flatnonzero(np.linalg.norm(ac - centre, axis=1) < 30)[:40]
        logits[0, near, cls] += 12.0
    e = np.exp(logits - logits.max(-1, keepdims=True))
    scores = e / e.sum(-1, keepdims=True)
    return anchors, deltas, detect.decode_deltas(deltas, anchors), scores


def mobilenetv2_onnx(path: Path) -> Path:
    """Export mobilenetv2 (random init) at 320x320 with torch's TorchScript exporter."""
    import torch

    from edgecnn import registry

    model = registry.build("mobilenetv2").eval()
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      opset_version=17, dynamo=False)
    return path


def environment(engine) -> dict:
    from edgecnn.bench.environment import capture

    env = capture()
    return {"cpu": env["cpu"], "ISA flags": " ".join(env["isa"]) or "none of interest",
            "cores": f"{env['physical_cores']} physical / {env['logical_cores']} logical", "python": env["python"],
            "numpy": env["numpy"], "onnxruntime": env["onnxruntime"], "provider": engine.providers[0],
            "threads": "onnxruntime default (one per physical core)",
            "load average before the run": " / ".join(f"{x:.2f}" for x in os.getloadavg())}


def torchvision_raw(image: Path | None, seed: int = 0):
    """A random-init torchvision ssdlite320_mobilenet_v3_large on ``image`` -> its head outputs (regression
    deltas (1, A, 4), logits (1, A, 91)), anchors (A, 4) in input pixels, and the model (torch)."""
    import torch
    from PIL import Image
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large
    from torchvision.transforms.functional import pil_to_tensor

    torch.manual_seed(seed)
    m = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    if image is not None:
        img = Image.open(image).convert("RGB").resize((SIZE, SIZE))
    else:  # a drawn scene: a sky, a road, a few shapes
        from PIL import ImageDraw

        img = Image.new("RGB", (SIZE, SIZE), (135, 180, 230))
        d = ImageDraw.Draw(img)
        d.rectangle([0, 200, SIZE, SIZE], fill=(90, 90, 90))
        d.ellipse([40, 120, 120, 200], fill=(200, 40, 40))
        d.rectangle([180, 140, 290, 230], fill=(30, 120, 60))
    x = pil_to_tensor(img).float() / 255
    with torch.no_grad():
        images, _ = m.transform([x])
        feats = list(m.backbone(images.tensors).values())
        head = m.head(feats)
        anchors = m.anchor_generator(images, feats)[0]
    return head["bbox_regression"].numpy(), head["cls_logits"].numpy(), anchors.numpy(), m


def baseline_detect(rev: str):
    """``edgecnn/runtime/detect.py`` as it was at git revision ``rev``, imported as its own module (with the
    ``runtime/ranking.py`` of that revision where it has one): the post-processing before a change, timed
    beside it."""
    import importlib.util
    import subprocess

    def show(path: str) -> str | None:
        r = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    folder = Path(tempfile.mkdtemp(prefix="detect_baseline_"))
    src = show("edgecnn/runtime/detect.py")
    if src is None:
        sys.exit(f"Error: no edgecnn/runtime/detect.py at git revision {rev}")
    ranking = show("edgecnn/runtime/ranking.py")
    modules = {"detect_baseline": src.replace("from edgecnn.runtime.ranking import", "from ranking_baseline import")}
    if ranking is not None:
        modules = {"ranking_baseline": ranking, **modules}
    for name, text in modules.items():
        path = folder / f"{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there while the file executes
        spec.loader.exec_module(module)
    return module


def compare_torchvision(args) -> None:
    """``--torchvision``: see the module docstring."""
    import onnxruntime as ort
    import torch

    from edgecnn.bench.environment import capture, device_tag

    torch.set_num_threads(1)
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / device_tag() / "nms_ssdlite.md"
    load_before = os.getloadavg()
    image = Path(args.image) if args.image else None
    reg, logits, anchors, model = torchvision_raw(image)
    rng = np.random.default_rng(0)
    p_anchors, p_deltas, _, p_scores = ssdlite_output(rng)
    raw = {"random-init": (reg, logits, anchors),
           "peaked": (p_deltas, np.log(np.maximum(p_scores, 1e-30)).astype(np.float32), p_anchors)}
    npy = Path(tempfile.mkdtemp(prefix="nms_ssdlite_"))
    for name, (d, lg, a) in raw.items():  # what both sides read: the same arrays, through .npy files
        tag = name.split()[0]
        np.save(npy / f"{tag}_regression.npy", d)
        np.save(npy / f"{tag}_logits.npy", lg)
        np.save(npy / f"{tag}_anchors.npy", a)
    raw = {name: tuple(np.load(npy / f"{name.split()[0]}_{k}.npy") for k in ("regression", "logits", "anchors"))
           for name in raw}

    geom = Geometry((SIZE, SIZE), (1.0, 1.0), (0.0, 0.0))  # stretched to 320x320, as torchvision's transform
    spec = Detection(nms="host", box_format="xyxy", conf=0.001, iou=0.55, max_det=300, background_class=True,
                     candidates_per_class=300)  # ssdlite320_mobilenetv3_large's contract (= torchvision's SSD)

    def graph_outputs(d, lg, a):  # what the exported graph hands infer: decoded boxes, softmax scores
        e = np.exp(lg - lg.max(-1, keepdims=True))
        return {"boxes": detect.decode_deltas(d, a), "scores": (e / e.sum(-1, keepdims=True)).astype(np.float32)}

    def edgecnn_post(outs, conf, module=detect):
        return lambda: module.postprocess(outs, [geom], spec, (SIZE, SIZE), conf=conf)

    before = baseline_detect(args.baseline) if args.baseline else None

    def tv_post(d, lg, a, conf):
        head = {"bbox_regression": torch.from_numpy(d), "cls_logits": torch.from_numpy(lg)}
        anc = [torch.from_numpy(a)]

        def run():
            model.score_thresh = conf
            with torch.no_grad():
                return model.postprocess_detections(head, anc, [(SIZE, SIZE)])
        return run

    sessions = {}
    x = rng.standard_normal((1, 3, SIZE, SIZE), dtype=np.float32)
    for threads in (1, 2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # infer's setting: no spinning
        s = ort.InferenceSession(str(args.model), so, providers=["CPUExecutionProvider"])
        sessions[threads] = (lambda s=s: s.run(None, {s.get_inputs()[0].name: x}))
    configs = {f"inference FP32, onnxruntime {t} thread{'s' if t > 1 else ''}": f for t, f in sessions.items()}
    agree = {}
    for name, (d, lg, a) in raw.items():
        outs = graph_outputs(d, lg, a)
        for conf in (0.001, 0.25):
            e_key = f"edgecnn postprocess, {name}, conf {conf}"
            t_key = f"torchvision postprocess_detections, {name}, conf {conf}"
            configs[e_key], configs[t_key] = edgecnn_post(outs, conf), tv_post(d, lg, a, conf)
            if before is not None:
                b_key = f"edgecnn postprocess at {args.baseline}, {name}, conf {conf}"
                configs[b_key] = edgecnn_post(outs, conf, before)
            ours, theirs = configs[e_key]()[0], configs[t_key]()[0]
            tv = detect.Detections(theirs["boxes"].numpy(), theirs["scores"].numpy(), theirs["labels"].numpy())
            agree[e_key] = agree[t_key] = (len(ours), len(tv), detect.agreement([tv], [ours], tie=1e-6)["f1"])
    stats = {k: summarize(v) for k, v in interleaved(configs, rounds=args.rounds, block=args.block).items()}
    load_after = os.getloadavg()
    env = capture()
    inf1, inf2 = (stats[k] for k in list(configs)[:2])
    lines = ["# SSDLite320 post-processing: edgecnn vs torchvision, beside the network", "",
             f"`{Path(sys.executable).name} benchmarks/nms_bench.py --torchvision --model {args.model} "
             f"--rounds {args.rounds} --block {args.block}{' --baseline ' + args.baseline if args.baseline else ''}"
             f"{' --image ' + Path(args.image).name if args.image else ''}`; "
             f"{args.rounds} rounds x {args.block} timed calls per configuration, interleaved in blocks "
             "(settle 50 ms, 2 untimed calls, order reshuffled each round); wall milliseconds.", "",
             f"Environment: {env['cpu']}; ISA {' '.join(env['isa'])}; {env['physical_cores']} physical / "
             f"{env['logical_cores']} logical cores; python {env['python']}, numpy {env['numpy']}, "
             f"onnxruntime {ort.__version__}, torch {torch.__version__} (1 thread), torchvision "
             f"{__import__('torchvision').__version__}; load average before "
             + " / ".join(f"{v:.2f}" for v in load_before) + ", after " + " / ".join(f"{v:.2f}" for v in load_after)
             + " (a shared machine: the ratios, measured side by side, are the figures to read).", "",
             "Inputs: ssdlite320_mobilenetv3_large at 320x320, 3,234 anchors x 91 classes (background at 0), the "
             f"random-init one run on {Path(args.image).name if args.image else 'a drawn scene'} (its scores come out "
             "exactly 1/91 for every anchor and class: all tied, every class full to its 300 candidates); "
             "edgecnn reads the graph's outputs (boxes decoded, softmax applied in the graph, as `edgecnn infer` "
             "gets them), torchvision its head's regression deltas and logits (its postprocess_detections decodes "
             "and applies softmax itself). Settings: IoU 0.55, 300 candidates per class, 300 detections.", "",
             "| configuration | p50 ms | p90 ms | min ms | CV | p50 / inference p50 (1 thread) "
             "| p50 / inference p50 (2 threads) | min / inference min (1 / 2 threads) "
             "| detections (edgecnn, torchvision, F1 of agreement) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, s in stats.items():  # the mins: what each gets in the machine's quietest moments
        ratios = ("", "", "") if name.startswith("inference") else \
            (f"{100 * s['p50'] / inf1['p50']:.1f}%", f"{100 * s['p50'] / inf2['p50']:.1f}%",
             f"{100 * s['min'] / inf1['min']:.1f}% / {100 * s['min'] / inf2['min']:.1f}%")
        note = "" if name not in agree else "{}, {}, {:.3f}".format(*agree[name])
        lines.append("| " + " | ".join((name, f"{s['p50']:.3f}", f"{s['p90']:.3f}", f"{s['min']:.3f}",
                                         f"{s['cv']:.2f}", *ratios, note)) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"wrote {out} (raw outputs in {npy})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a classifier ONNX file, timed at its own input size (default: export "
                                    "mobilenetv2 at 320 with torch to a temp dir)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--out", help="markdown report (default: benchmarks/results/<device-tag>/nms.md)")
    ap.add_argument("--torchvision", action="store_true",
                    help="compare with torchvision's SSD postprocess_detections on ssdlite320 raw outputs (needs "
                         "torch, torchvision; --model an exported ssdlite320_mobilenetv3_large FP32 file)")
    ap.add_argument("--image", help="--torchvision: the photo the random-init model runs on (default: matplotlib's "
                                    "grace_hopper.jpg if installed, else a drawn scene)")
    ap.add_argument("--baseline", help="--torchvision: also time edgecnn's runtime/detect.py as it was at this git "
                                       "revision (e.g. 0bfc4bf, before issue 18's changes)")
    args = ap.parse_args()
    if args.torchvision:
        if not args.model:
            sys.exit("Error: --torchvision needs --model, an exported ssdlite320_mobilenetv3_large FP32 file")
        if args.image is None:
            try:
                import matplotlib

                hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
                args.image = str(hopper) if hopper.is_file() else None
            except ImportError:
                pass
        return compare_torchvision(args)

    from edgecnn.bench.environment import device_tag
    from edgecnn.errors import EdgeCNNError
    from edgecnn.runtime.session import Engine

    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / device_tag() / "nms.md"

    rng = np.random.default_rng(0)
    tmp = tempfile.TemporaryDirectory()
    model = Path(args.model) if args.model else mobilenetv2_onnx(Path(tmp.name) / "mobilenetv2_320.onnx")
    try:
        engine = Engine(model, provider="cpu")  # infer's defaults: default threads, no spinning
    except EdgeCNNError as e:
        sys.exit(f"Error: {e}")
    pre = engine.contract.preprocess  # the file's own input, not an assumed 320x320
    x = rng.standard_normal((1, pre.channels, pre.height, pre.width), dtype=np.float32)
    infer_row = f"inference: {model.stem} {pre.height}x{pre.width}, batch 1"

    anchors, deltas, decoded, scores = ssdlite_output(rng)
    geom = Geometry((640, 480), (0.5, 0.5), (0.0, 40.0))  # a 640x480 photo letterboxed into 320x320
    labels = [f"class{i}" for i in range(N_CLASSES)]

    def post(box_format: str, conf: float):
        spec = Detection(box_format=box_format, background_class=True, conf=conf, max_det=100)
        outs = {"boxes": decoded, "scores": scores} if box_format == "xyxy" else \
               {"boxes": deltas, "scores": scores, "anchors": anchors}
        return lambda: [d.to_records(labels) for d in detect.postprocess(outs, [geom], spec, (SIZE, SIZE))]

    b1k, s1k, c1k = overlapping_boxes(1_000, rng)
    b10k, s10k, c10k = overlapping_boxes(10_000, rng)
    configs = {
        infer_row: lambda: engine.run(x),
        "postprocess SSDLite 3,234x91, boxes decoded in graph, conf 0.25": post("xyxy", 0.25),
        "postprocess SSDLite 3,234x91, deltas decoded on host, conf 0.25": post("deltas", 0.25),
        "postprocess SSDLite 3,234x91, boxes decoded in graph, conf 0.001 (mAP setting)": post("xyxy", 0.001),
        "nms 1,000 boxes, no cap": lambda: detect.nms(b1k, s1k, 0.45),
        "nms 1,000 boxes, first 100": lambda: detect.nms(b1k, s1k, 0.45, max_output=100),
        "batched_nms 1,000 boxes, 80 classes, first 100": lambda: detect.batched_nms(b1k, s1k, c1k, 0.45, 100),
        "nms 10,000 boxes, no cap": lambda: detect.nms(b10k, s10k, 0.45),
        "nms 10,000 boxes, first 100": lambda: detect.nms(b10k, s10k, 0.45, max_output=100),
        "batched_nms 10,000 boxes, 80 classes, first 100": lambda: detect.batched_nms(b10k, s10k, c10k, 0.45, 100),
        "batched_nms 10,000 boxes, 80 classes, no cap": lambda: detect.batched_nms(b10k, s10k, c10k, 0.45),
    }
    kept = {k: len(v()) for k, v in configs.items() if k.startswith(("nms", "batched"))}  # survivors of NMS
    n_det = {k: len(configs[k]()[0]) for k in configs if k.startswith("postprocess")}
    stats = {k: summarize(v) for k, v in interleaved(configs, rounds=args.rounds, block=args.block).items()}
    infer = stats[infer_row]

    env = environment(engine)
    lines = ["# Detection post-processing vs inference", "",
             f"`python benchmarks/nms_bench.py{' --model ' + args.model if args.model else ''} --rounds {args.rounds} "
             f"--block {args.block}`; "
             f"{args.rounds} rounds x {args.block} timed calls per configuration, interleaved in blocks "
             "(settle 50 ms, 2 untimed calls, order reshuffled each round); milliseconds.", "",
             "Environment: " + "; ".join(f"{k} {v}" for k, v in env.items()) + ".", "",
             "| configuration | p50 ms | p90 ms | min ms | CV | p50 / inference p50 | min / inference min | note |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, s in stats.items():
        note = f"{kept[name]:,} of {name.split()[1]} kept" if name in kept else \
            f"{n_det[name]} detections" if name in n_det else ""
        ratios = ("", "") if name.startswith("inference") else \
            (f"{100 * s['p50'] / infer['p50']:.1f}%", f"{100 * s['min'] / infer['min']:.1f}%")
        cells = (name, f"{s['p50']:.3f}", f"{s['p90']:.3f}", f"{s['min']:.3f}", f"{s['cv']:.2f}", *ratios, note)
        lines.append("| " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"wrote {out}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
