"""Regenerate fixtures/ssd300_torchvision.json from real torchvision (NOT a test, not run in CI).

Run in a scratch environment that has torchvision (torch 2.14.1, torchvision 0.29.1):
    /work/scratch-coco/bin/python tests/models/make_ssd300_fixture.py
It records, for ``torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None)``:
  - the state-dict keys and shapes at 91 classes (the COCO checkpoint's layout) and the parameter count;
  - with ``tv_weights.state_dict_for`` weights at ``NUM_CLASSES`` (deterministic, RNG-free, nothing stored;
    the BN-free VGG keeps them O(1)) and ``image()`` (300x300, so torchvision's fixed-size resize is the
    identity): the anchors, the decoded and clipped boxes and softmax scores before NMS at ``SAMPLE``
    anchors plus their sums, computed in float64 (the float32 weights and image cast exactly): the BN-free
    VGG amplifies FP32 rounding, so FP32 boxes differ between hosts and thread counts by far more than any
    layout error would (``fp32_dev``: torchvision's own FP32 run vs float64 here, max-abs / scale).
A full state dict (136 MB) is not stored: both sides make the same tensors from the recorded layout.
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

NUM_CLASSES = 5
SIZE = 300
SAMPLE = [0, 3, 5775, 5776, 7941, 7942, 8541, 8542, 8691, 8692, 8727, 8728, 8731]  # first/last of each map


def image():
    """(SIZE, SIZE, 3) uint8: the SSDLite fixture's image, cropped to 300x300."""
    from make_ssdlite_fixture import fixture_image

    return fixture_image()[:SIZE, :SIZE]


def main() -> None:
    import torch
    import torchvision
    from make_ssdlite_fixture import raw_outputs
    from torchvision.models.detection import ssd300_vgg16
    from tv_weights import state_dict_for

    def build(num_classes):
        return ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes).eval()

    full = build(91)
    layout91 = [(k, list(v.shape)) for k, v in full.state_dict().items()]
    params91 = sum(p.numel() for p in full.parameters())
    del full
    model = build(NUM_CLASSES)
    layout = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict(state_dict_for(layout), strict=True)
    img = torch.from_numpy(image()).permute(2, 0, 1).float() / 255

    def raw(model, img):
        return raw_outputs(model, img)[2:]

    _, _, boxes32, scores32 = raw(model, img)
    features, anchors, boxes, scores = raw(model.double(), img.double())
    dev = {"boxes": float((boxes32 - boxes).abs().max() / boxes.abs().max()),
           "scores": float((scores32 - scores).abs().max() / scores.abs().max())}
    print("FP32 vs float64 here, max-abs / scale:", {k: f"{v:.1e}" for k, v in dev.items()})

    def r(t, n=7):
        return [round(float(v), n) for v in t.flatten()]

    out = {
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "layout91": layout91, "params91": params91,
        "transform": {"mean": list(model.transform.image_mean), "std": list(model.transform.image_std),
                      "size": list(model.transform.fixed_size)},
        "postprocess": {"score_thresh": model.score_thresh, "nms_thresh": model.nms_thresh,
                        "detections_per_img": model.detections_per_img, "topk_candidates": model.topk_candidates},
        "num_classes": NUM_CLASSES, "size": SIZE, "sample": SAMPLE,
        "grids": [list(f.shape[-2:]) for f in features],
        "num_anchors": len(anchors), "anchors_sample": r(anchors[SAMPLE], 5), "anchors_sum": float(anchors.sum()),
        "boxes_sample": r(boxes[SAMPLE], 5), "scores_sample": r(scores[SAMPLE], 8),
        "boxes_sum": float(boxes.double().sum()), "scores_sum_per_class": r(scores.double().sum(0), 5),
        "scores_std": float(scores.std(0).mean()), "dtype": "float64",
        "fp32_dev": {k: float(f"{v:.2e}") for k, v in dev.items()},
    }
    path = pathlib.Path(__file__).parent / "fixtures" / "ssd300_torchvision.json"
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print("wrote", path, path.stat().st_size, "bytes;", params91, "params at 91 classes;", out["grids"],
          "scores std over anchors", out["scores_std"])


if __name__ == "__main__":
    main()
