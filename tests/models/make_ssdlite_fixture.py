"""Regenerate fixtures/ssdlite_torchvision.json from real torchvision (NOT a test, not run in CI).

Run in the scratch environment that has torchvision (see make_torchvision_fixture.py):
    /work/scratch-tv/bin/python tests/models/make_ssdlite_fixture.py
It records, for ``torchvision.models.detection.ssdlite320_mobilenet_v3_large``:
  - the state-dict keys and shapes at 91 classes (the COCO checkpoint's layout) and the parameter count;
  - with ``fixture_state_dict`` weights (tv_weights, deterministic, nothing stored) at ``NUM_CLASSES``
    and ``fixture_image()`` (320x320, so torchvision's fixed-size resize is the identity): the anchors,
    the decoded and clipped boxes and softmax scores before NMS at ``SAMPLE`` anchors plus their sums,
    and the final detections of ``postprocess_detections`` (score > 0.001, IoU 0.55, 300 candidates
    per class, 300 per image);
  - all of it computed in float64 (the float32 weights and image cast exactly), so the tests compare the
    function, not one host's FP32 summation order (``fp32_dev``: torchvision's FP32 run vs float64 here).
The tests check our model and our exported file against these numbers without torchvision.
"""

import json
import math
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))

NUM_CLASSES = 10
SIZE = 320
SAMPLE = [0, 1, 5, 6, 599, 1200, 2399, 2400, 2999, 3000, 3185, 3233]  # first/last anchors of several maps
# BN running variances scaled down: with tv_weights as they are the features fade to spatial constants
# in the backbone (every location scores the same: NMS would only break ties); this keeps them varied.
VAR_SCALE = 0.06


def fixture_image() -> np.ndarray:
    """(SIZE, SIZE, 3) uint8, deterministic: smooth gradients, a few rectangles, and an integer-hash
    texture everywhere (no flat area: equal pixels would give equal scores, ties that NMS breaks
    arbitrarily)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.int64)
    img = np.stack([128 + 100 * np.sin(x / 23.0), 128 + 100 * np.cos(y / 31.0), 128 + 90 * np.sin((x + y) / 47.0)], -1)
    img[40:120, 60:200] = (230, 40, 40)
    img[180:300, 150:260] = (30, 60, 220)
    img[200:240, 20:90] = (250, 250, 30)
    texture = ((x * 73856093) ^ (y * 19349663)) % 61 - 30
    img += np.stack([texture, np.roll(texture, 7, 0), np.roll(texture, 13, 1)], -1)
    return img.round().clip(0, 255).astype(np.uint8)


def fixture_state_dict(layout):
    """tv_weights' fill, with the BN running variances scaled by VAR_SCALE."""
    from tv_weights import state_dict_for

    sd = state_dict_for(layout)
    return {k: v * VAR_SCALE if k.endswith("running_var") else v for k, v in sd.items()}


def raw_outputs(model, img):
    """A torchvision SSD/SSDLite's outputs before NMS for one image (CHW float in 0..1), under no_grad:
    (transformed images, head outputs, feature maps, anchors, decoded + clipped boxes, softmax scores)."""
    import torch
    from torchvision.ops import boxes as box_ops

    with torch.no_grad():
        images, _ = model.transform([img])
        features = list(model.backbone(images.tensors).values())
        head = model.head(features)
        anchors = model.anchor_generator(images, features)[0]
        boxes = box_ops.clip_boxes_to_image(model.box_coder.decode_single(head["bbox_regression"][0], anchors),
                                            images.image_sizes[0])
        return images, head, features, anchors, boxes, torch.softmax(head["cls_logits"][0], -1)


def main() -> None:
    import torch
    import torchvision
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    def build(num_classes):
        return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes).eval()

    full = build(91)
    layout91 = [(k, list(v.shape)) for k, v in full.state_dict().items()]
    params91 = sum(p.numel() for p in full.parameters())
    model = build(NUM_CLASSES)
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict(fixture_state_dict(layout), strict=True)

    img = torch.from_numpy(fixture_image()).permute(2, 0, 1).float() / 255

    def run(model, img):
        with torch.no_grad():
            images, head, _, anchors, boxes, scores = raw_outputs(model, img)
            dets = model.postprocess_detections(head, [anchors], images.image_sizes)
            dets = model.transform.postprocess(dets, images.image_sizes, [(SIZE, SIZE)])[0]
            direct = model([img])[0]  # the whole model gives the same
        assert torch.equal(direct["boxes"], dets["boxes"]) and torch.equal(direct["labels"], dets["labels"])
        return anchors, boxes, scores, dets

    _, boxes32, scores32, _ = run(model, img)
    anchors, boxes, scores, dets = run(model.double(), img.double())
    dev = {"boxes": float((boxes32 - boxes).abs().max() / boxes.abs().max()),
           "scores": float((scores32 - scores).abs().max() / scores.abs().max())}
    print("FP32 vs float64 here, max-abs / scale:", {k: f"{v:.1e}" for k, v in dev.items()})
    s = dets["scores"]
    gaps = (s[:-1] - s[1:]).abs()
    print(f"{len(s)} detections, scores {float(s.max()):.4f}..{float(s.min()):.4f}, smallest gaps "
          f"{[f'{float(g):.1e}' for g in gaps.sort().values[:5]]}")

    def r(t, n=7):
        return [round(float(v), n) for v in t.flatten()]

    out = {
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "layout91": layout91, "params91": params91,
        "num_classes": NUM_CLASSES, "size": SIZE, "var_scale": VAR_SCALE, "sample": SAMPLE,
        "num_anchors": len(anchors), "anchors_sample": r(anchors[SAMPLE], 5), "anchors_sum": float(anchors.sum()),
        "boxes_sample": r(boxes[SAMPLE], 5), "scores_sample": r(scores[SAMPLE], 8),
        "boxes_sum": float(boxes.double().sum()), "scores_sum_per_class": r(scores.double().sum(0), 5),
        "detections": {"boxes": r(dets["boxes"], 4), "scores": r(dets["scores"], 8), "labels": dets["labels"].tolist()},
        "dtype": "float64", "fp32_dev": {k: float(f"{v:.2e}") for k, v in dev.items()},
    }
    path = pathlib.Path(__file__).parent / "fixtures" / "ssdlite_torchvision.json"
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print("wrote", path, path.stat().st_size, "bytes;", params91, "params at 91 classes;", math.prod(scores.shape))


if __name__ == "__main__":
    main()
