"""Regenerate fixtures/torchvision_resize_crop.json from real torchvision (NOT a test, not run in CI).

torchvision is a reference here, never a dependency: run this in a scratch environment that has it,
    /work/tvenv/bin/python tests/runtime/make_torchvision_preprocess_fixture.py
It records torchvision's ``Resize(short) + CenterCrop((h, w))`` (the ImageNet eval transform) on small
synthetic images (``pattern`` below, which the test rebuilds with NumPy) for each interpolation the
contract names, as raw uint8 RGB (base64), so tests/runtime/test_image_oracles.py can compare
edgecnn's resize_crop with it pixel for pixel without torchvision.
"""

import base64
import json
import pathlib
import sys

import numpy as np
import torchvision
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from patterns import pattern  # noqa: E402

OUT = pathlib.Path(__file__).parent / "fixtures" / "torchvision_resize_crop.json"


# (source w, h), shorter side after resize, crop (h, w): landscape/portrait, down/up-scaling, odd margins
CASES = [((45, 31), 20, (16, 16)), ((29, 50), 23, (17, 13)), ((12, 9), 20, (18, 15))]
MODES = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
         "bicubic": InterpolationMode.BICUBIC}


def main() -> None:
    rows = []
    for (w, h), short, crop in CASES:
        im = Image.fromarray(pattern(w, h), "RGB")
        for name, mode in MODES.items():
            t = transforms.Compose([transforms.Resize(short, interpolation=mode), transforms.CenterCrop(crop)])
            out = np.asarray(t(im), dtype=np.uint8)
            assert out.shape == (crop[0], crop[1], 3)
            rows.append({"source": [w, h], "resize": short, "crop": list(crop), "interpolation": name,
                         "rgb_base64": base64.b64encode(out.tobytes()).decode()})
    doc = {"torchvision": torchvision.__version__, "pillow": Image.__version__,
           "transform": "Resize(resize, interpolation) + CenterCrop(crop) on a PIL RGB image", "cases": rows}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(rows)} cases)")


if __name__ == "__main__":
    main()
