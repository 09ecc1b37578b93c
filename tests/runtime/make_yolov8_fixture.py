"""Regenerate fixtures/yolov8n_96.onnx + yolov8n_96.json from real Ultralytics (NOT a test, not run in CI).

Run in a scratch environment outside the project (nothing is downloaded but the packages; no weights):
    python3 -m venv /work/scratch-yolo && . /work/scratch-yolo/bin/activate
    pip install torch==2.14.1 torchvision==0.29.1 ultralytics onnx onnxruntime
    YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/yolo-cfg python tests/runtime/make_yolov8_fixture.py
It builds YOLOv8n from its model YAML (``YOLO("yolov8n.yaml")``, random weights, seed ``SEED``) and
makes the random network's output depend on its input (``vary``: as initialised, every feature fades
to a constant, all anchors score ~1e-5 and all boxes are 120 px: nothing to compare), exports it the
way a user does (``model.export(format="onnx", imgsz=SIZE)``: static 1x3xSIZExSIZE, one output
(1, 4 + 80, A), no NMS), then runs Ultralytics' own predictor ON THAT ONNX FILE over
``fixture_images()`` (written as PNG; sizes that need no resize, so Ultralytics' cv2 resize and
Pillow's never come into it; the letterbox padding does) at ``CONF`` and ``IOU`` and records each
image's boxes (xyxy, original pixels), scores and classes. ``test_yolov8_ultralytics``
decodes the same file with edgecnn and compares.
"""

import json
import pathlib
import shutil
import tempfile

import numpy as np

SIZE = 96  # a multiple of 32; 189 anchors (at 64 the head would be 84x84: square, a poor test of the axes)
SEED = 0
CONF = 0.25  # Ultralytics' predict default
IOU = 0.7  # Ultralytics' predict default
HERE = pathlib.Path(__file__).parent
ONNX = HERE / "fixtures" / "yolov8n_96.onnx"
JSON = HERE / "fixtures" / "yolov8n_96.json"


def fixture_images() -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8 RGB, deterministic: gradients, rectangles and an integer-hash texture.
    96x96 fills the input; 96x64 (wide) and 80x96 (tall) are letterboxed at scale 1 with 16 and 8 px bands."""
    out = {}
    for name, (h, w) in {"square": (96, 96), "wide": (64, 96), "tall": (96, 80)}.items():
        y, x = np.mgrid[0:h, 0:w].astype(np.int64)
        img = np.stack([128 + 100 * np.sin(x / 7.0), 128 + 100 * np.cos(y / 9.0),
                        128 + 90 * np.sin((x + y) / 13.0)], -1)
        img[10:40, 15:60] = (230, 40, 40)
        img[h - 40:h - 8, w - 50:w - 10] = (30, 60, 220)
        texture = ((x * 73856093) ^ (y * 19349663)) % 61 - 30
        img += np.stack([texture, np.roll(texture, 7, 0), np.roll(texture, 13, 1)], -1)
        out[name] = img.round().clip(0, 255).astype(np.uint8)
    return out


def letterboxed(img: np.ndarray) -> np.ndarray:
    """A fixture image centred on a SIZE x SIZE canvas of 114 (Ultralytics' letterbox at scale 1)."""
    h, w = img.shape[:2]
    out = np.full((SIZE, SIZE, 3), 114, np.uint8)
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    out[top:top + h, left:left + w] = img
    return out


def vary(net, images: list[np.ndarray]) -> None:
    """Still random weights, but an output that varies with the image: BatchNorm statistics measured on
    the images and random noise (train-mode passes, cumulative averages) instead of mean 0 / var 1;
    class-score biases N(-4, 1) (scores spread over 0.04..0.8 instead of all ~1e-5); box-distribution
    biases a decaying ramp plus N(0, 2) per side (boxes of 25..270 px instead of all 120)."""
    import torch

    g = torch.Generator().manual_seed(SEED + 1)
    head = net.model[-1]
    with torch.no_grad():
        for seq in head.cv3:
            seq[-1].bias.copy_(torch.randn(seq[-1].bias.shape, generator=g) - 4)
        for seq in head.cv2:
            ramp = -0.5 * torch.arange(head.reg_max) + 2 * torch.randn(4, head.reg_max, generator=g)
            seq[-1].bias.copy_(ramp.reshape(-1))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average
                m.reset_running_stats()
        x = torch.stack([torch.from_numpy(im.transpose(2, 0, 1).astype(np.float32) / 255) for im in images])
        net.train()
        net(torch.cat([x, torch.rand((8, 3, SIZE, SIZE), generator=g)]))
    net.eval()


def main() -> None:
    import onnxruntime
    import torch
    import ultralytics
    from PIL import Image
    from ultralytics import YOLO

    torch.manual_seed(SEED)
    work = pathlib.Path(tempfile.mkdtemp())
    model = YOLO("yolov8n.yaml")  # random weights: built from the YAML, nothing downloaded
    vary(model.model, [letterboxed(im) for im in fixture_images().values()])
    # a model built from a YAML exports to ./yolov8n.onnx: moved out of the way at once
    shutil.move(model.export(format="onnx", imgsz=SIZE, simplify=False, dynamic=False), work / "m.onnx")
    onnx_model = YOLO(str(work / "m.onnx"), task="detect")
    images = {}
    for name, img in fixture_images().items():
        Image.fromarray(img).save(work / f"{name}.png")
        r = onnx_model.predict(str(work / f"{name}.png"), imgsz=SIZE, conf=CONF, iou=IOU, verbose=False)[0]
        images[name] = {"size": [img.shape[1], img.shape[0]],
                        "boxes": [[round(float(v), 4) for v in b] for b in r.boxes.xyxy.tolist()],
                        "scores": [round(float(s), 7) for s in r.boxes.conf.tolist()],
                        "classes": [int(c) for c in r.boxes.cls.tolist()]}
        s = np.asarray(images[name]["scores"])
        gaps = np.sort(np.abs(np.diff(s)))[:3] if len(s) > 1 else []
        print(f"{name}: {len(s)} boxes, scores {s.max():.4f}..{s.min():.4f}, smallest gaps {gaps}")
    ONNX.parent.mkdir(exist_ok=True)
    shutil.copy(work / "m.onnx", ONNX)
    JSON.write_text(json.dumps({"ultralytics": ultralytics.__version__, "torch": torch.__version__,
                                "onnxruntime": onnxruntime.__version__, "size": SIZE, "seed": SEED, "conf": CONF,
                                "iou": IOU, "images": images}, separators=(",", ":")) + "\n")
    print("wrote", ONNX, ONNX.stat().st_size, "bytes and", JSON)


if __name__ == "__main__":
    main()
