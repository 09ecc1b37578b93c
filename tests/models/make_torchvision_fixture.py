"""Regenerate fixtures/torchvision_layout.json from real torchvision (NOT a test, not run in CI).

torchvision does not import beside the CPU torch of the project environment, so run this in a scratch
environment:  python -m venv /work/scratch-tv && /work/scratch-tv/bin/pip install torch==2.14.1 torchvision==0.29.1
              /work/scratch-tv/bin/python tests/models/make_torchvision_fixture.py
It records, for every torchvision model whose checkpoints edgecnn must load, the state-dict keys
and shapes at 1000 classes, and the 10-class logits of the model filled with tv_weights on a fixed
input, computed in float64 (weights and input are tv_weights' float32 values, cast exactly), so the tests
can check layout AND function without torchvision and without FP32 rounding: some of these random-weight
nets (VGG without BN) amplify FP32 rounding ~1e4-fold, so FP32 logits differ by ~1e-3 of their scale
between hosts that accumulate in a different order; float64 logits agree to ~1e-12. For the record,
fp32_dev is max|fp32 - float64| / max|float64| of torchvision's own FP32 run on the recording host;
and the facts of its published
ImageNet weights (URL, eval transform, accuracy; DEFAULT first) and the 1,000 ImageNet category names,
which the model cards and edgecnn/data/imagenet_classes.txt must repeat.
"""

import json
import pathlib
import sys

import torch
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from tv_weights import TV_NUM_CLASSES, fixed_input, state_dict_for  # noqa: E402

NAMES = ["alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50",
         "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"] + [f"efficientnet_b{i}" for i in range(5)] \
    + ["convnext_tiny"]


def weights_facts(name):
    enum = torchvision.models.get_model_weights(name)
    facts = []
    for w in sorted(enum, key=lambda w: w != enum.DEFAULT):
        t, acc = w.transforms(), w.meta["_metrics"]["ImageNet-1K"]
        if w.meta["categories"] is None or acc["acc@1"] != acc["acc@1"]:  # feature-only weights (vgg16)
            continue
        facts.append({"tag": w.name.lower(), "url": w.url, "crop": t.crop_size[0], "resize": t.resize_size[0],
                      "interpolation": t.interpolation.value, "mean": list(t.mean), "std": list(t.std),
                      "top1": acc["acc@1"], "top5": acc["acc@5"]})
    return facts


out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "models": {},
       "imagenet_categories": list(torchvision.models._meta._IMAGENET_CATEGORIES)}
for name in NAMES:
    layout = [(k, list(v.shape)) for k, v in torchvision.models.get_model(name).state_dict().items()]
    small = torchvision.models.get_model(name, num_classes=TV_NUM_CLASSES).eval()
    small_layout = [(k, list(v.shape)) for k, v in small.state_dict().items()]
    small.load_state_dict(state_dict_for(small_layout), strict=True)
    with torch.no_grad():
        fp32 = small(fixed_input())[0].double()
        logits = small.double()(fixed_input().double())[0]
    dev = float((fp32 - logits).abs().max() / logits.abs().max())
    out["models"][name] = {"layout": layout, "logits_f64": logits.tolist(), "fp32_dev": float(f"{dev:.2e}"),
                           "weights": weights_facts(name)}
    print(name, len(layout), [round(v, 4) for v in logits[:3].tolist()], f"fp32 vs float64 {dev:.1e} of scale")
path = pathlib.Path(__file__).parent / "fixtures" / "torchvision_layout.json"
path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
print("wrote", path, path.stat().st_size, "bytes")
