"""The main job end to end (small): zoo check, data, training, export, INT8, torch-free inference; the
detection stage as the demo runs it (its data and recipe, half its epochs)."""

import math
import re
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import run_cli

# The detection stage is seeded and runs on 1 thread here (EDGECNN_THREADS), at 2 of the demo's 4 epochs to keep
# the suite short (CI's first command runs the whole default demo). Measured on intel-xeon-2c-amx: 2 epochs of the
# demo's recipe (128 px input, width 0.5, AdamW 6e-3) scored mAP@.50 0.678 (4 epochs: 0.952); the old 64 px recipe
# was at 0.109-0.125 after its second epoch (benchmarks/results/intel-xeon-2c-amx/demo_detect.md). The floor sits
# between them: another CPU's float rounding may move some boxes; a detector back at the old geometry fails it.
MAP50_FLOOR = 0.4


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = run_cli("demo", "--out", str(out), "--epochs", "1", "--images", "40", "--zoo", "simplecnn",
                "--zoo", "mobilenetv1", "--runs", "1", "--model", "lenet5", "--det-epochs", "2", timeout=1200)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    zoo = {line.split()[0]: line for line in lines if line.split()[:1] in (["simplecnn"], ["mobilenetv1"])}
    assert "52,138" in zoo["simplecnn"] and zoo["simplecnn"].rstrip().endswith("ok")
    assert "4,231,976" in zoo["mobilenetv1"] and "568.74M" in zoo["mobilenetv1"]
    assert any(line.startswith(f"wrote {out / 'lenet5.onnx'}: parity PASSED") for line in lines)
    assert (out / "lenet5.onnx").is_file() and (out / "lenet5.int8.onnx").is_file()
    assert (out / "run" / "best.pt").is_file()
    rows = {line[:17].strip(): line.split() for line in lines if line.startswith(("PyTorch", "ONNX FP32", "ONNX INT8"))}
    assert set(rows) == {"PyTorch (best.pt)", "ONNX FP32", "ONNX INT8"}
    # the exported file computes what PyTorch computed: same validation accuracy
    assert rows["ONNX FP32"][2] == rows["PyTorch (best.pt)"][2]
    _check_int8_speed_lines(lines, rows)
    # detection: trained, exported through the gate, drawn, evaluated by pycocotools
    assert any(line.startswith(f"wrote {out / 'ssdlite_mobilenetv2.onnx'}: parity PASSED") for line in lines)
    line = next(x for x in lines if x.startswith("eval ssdlite_mobilenetv2.onnx on "))
    m = re.match(r"eval ssdlite_mobilenetv2.onnx on (\d+) val images \(pycocotools\): mAP@\[.50:.95\] [\d.]+  "
                 r"mAP@.50 ([\d.]+) ", line)
    assert m and int(m.group(1)) >= 100, line
    assert (out / "run-detect" / "best.pt").is_file() and len(list((out / "detections").iterdir())) == 8
    assert re.fullmatch(r"detection stage: \d+s = data \d+s, training \d+s \(\d+s an epoch\), export \d+s, "
                        r"infer \d+s, eval \d+s", lines[-3]), lines[-3]
    # the annotated images show boxes on the shapes: 2 epochs put the best box of 6 of the 8 images on a shape
    # of its class (4 epochs: 8 of 8)
    assert _check_annotated(out) >= 4
    assert float(m.group(2)) >= MAP50_FLOOR, line  # the detector finds the shapes


def _check_annotated(out: Path) -> int:
    """The annotated copies are enlarged to >= 256 px and show each detection (at the contract's conf) as its
    box outline in its class colour, where no better-scored box overlaps it (boxes are drawn best last: a
    weaker box under a better one is hidden where they cross; tags may cover some of any outline). Returns how
    many of the 8 images have their best box on a shape of its class (IoU >= 0.5 with a ground-truth box)."""
    import json

    from edgecnn.runtime.detect import box_iou
    from edgecnn.runtime.draw import class_color
    from edgecnn.runtime.predict import Predictor
    from edgecnn.runtime.session import Engine
    from edgecnn.runtime.sources import expand, iter_images

    (data,) = out.glob("shapes-det-*")
    doc = json.loads((data / "annotations" / "instances_val.json").read_text())
    ids = {im["file_name"]: im["id"] for im in doc["images"]}
    files = list(iter_images(expand([data / "val"])))[:8]
    found = 0
    for r in Predictor(Engine(out / "ssdlite_mobilenetv2.onnx", provider="cpu", threads=1)).predict(files):
        im = np.asarray(Image.open(out / "detections" / r.file.rel).convert("RGB"))
        k = im.shape[1] // Image.open(r.file.path).width
        assert min(im.shape[:2]) >= 256 and k >= 2, im.shape
        ranked = sorted(r.predictions, key=lambda p: -p["score"])
        for i, p in enumerate(ranked):
            if any(_overlap(p["box"], q["box"]) for q in ranked[:i]):
                continue
            x1, y1, x2, y2 = (round(v * k) for v in p["box"])
            outline = np.concatenate([im[y1:y2, x1], im[y1:y2, x2 - 1], im[y1, x1:x2], im[y2 - 1, x1:x2]])
            share = (outline == class_color(p["class"])).all(-1).mean()
            assert share > 0.3, (r.file.rel, p, share)  # its outline, in its colour (tags may cover some)
        gt = [(a["category_id"], [x, y, x + w, y + h]) for a in doc["annotations"]
              if a["image_id"] == ids[r.file.path.name] for x, y, w, h in [a["bbox"]]]
        if ranked and gt:
            iou = box_iou(np.array([ranked[0]["box"]]), np.array([b for _, b in gt]))[0]
            found += any(v >= 0.5 and c == ranked[0]["class"] for v, (c, _) in zip(iou, gt, strict=True))
    return found


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _check_int8_speed_lines(lines: list[str], rows: dict[str, list[str]]) -> None:
    """INT8's speed is measured once, in stage 6, for both files alike: stage 5 prints no latency of its
    own, and the speed-up line says what each figure measured and agrees with the table's columns."""
    stage5 = lines[lines.index(next(x for x in lines if x.startswith("[5/7]"))):
                   lines.index(next(x for x in lines if x.startswith("[6/7]")))]
    assert "its speed: stage 6" in stage5[0] and not any("latency" in x or "faster" in x for x in stage5)
    header = next(x for x in lines if x.startswith("model ") and "network ms/image" in x)
    b1, bn = (int(b) for b in re.findall(r"\bb(\d+)\b", header)[:2])
    assert b1 == 1 and 1 < bn <= 16
    fp32 = [float(v) for v in rows["ONNX FP32"][-3:]]  # network ms b1, network ms bN, images/s end to end bN
    int8 = [float(v) for v in rows["ONNX INT8"][-3:]]
    assert next(x for x in lines if x.startswith("speed: ")).startswith("speed: 8 images a pass, FP32 and INT8 passes "
                                                                      "interleaved, medians of 3, 1 thread; network")
    line = next(x for x in lines if x.startswith("INT8 vs FP32: "))
    m = re.fullmatch(rf"INT8 vs FP32: network ([\d.]+)x at batch 1 and ([\d.]+)x at batch {bn}; end to end "
                     rf"([\d.]+)x at batch {bn} \(INT8 is (faster|barely faster|NOT faster) than FP32 here, by the "
                     rf"network at batch {bn}\)", line)
    assert m, line
    said = [float(v) for v in m.groups()[:3]]
    from_table = [fp32[0] / int8[0], fp32[1] / int8[1], int8[2] / fp32[2]]
    assert all(math.isclose(a, b, rel_tol=0.05, abs_tol=0.02) for a, b in zip(said, from_table, strict=True)), \
        (said, from_table)
    assert m.group(4) == ("faster" if said[1] >= 1.2 else "barely faster" if said[1] >= 1.0 else "NOT faster")


def test_demo_unknown_model(tmp_path):
    r = run_cli("demo", "--zoo", "lenet", "--out", str(tmp_path / "d"))
    assert r.returncode == 1 and r.stderr.startswith("Error: unknown model 'lenet'; did you mean 'lenet5'?")
