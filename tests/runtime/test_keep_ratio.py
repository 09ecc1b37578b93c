"""``keep_ratio``: scale to fit keeping the aspect ratio, the image top-left, padding right and bottom
only; and detections mapped back through it. No torch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from edgecnn.contract import Overrides, Preprocess
from edgecnn.runtime.image import preprocess, resize
from edgecnn.runtime.predict import Predictor
from edgecnn.runtime.session import Engine
from edgecnn.runtime.sources import ImageFile
from tests import onnx_models


def _spec(resize_policy: str, h: int = 32, w: int = 32) -> Preprocess:
    return Preprocess(h, w, resize=resize_policy, pad_value=7, scale=1.0, mean=(0, 0, 0), std=(1, 1, 1))


@pytest.mark.parametrize("size, content", [((40, 20), (32, 16)), ((20, 40), (16, 32)), ((64, 64), (32, 32))])
def test_the_image_is_top_left_and_the_padding_right_and_bottom(size, content):
    im = Image.new("RGB", size, (200, 100, 50))
    out, geom = resize(im, _spec("keep_ratio"))
    a = np.asarray(out)
    cw, ch = content
    assert out.size == (32, 32)
    assert (a[:ch, :cw] == (200, 100, 50)).all()  # the whole image, unpadded, from (0, 0)
    assert (a[ch:, :] == 7).all() and (a[:, cw:] == 7).all()  # pad_value below and right only
    s = min(32 / size[0], 32 / size[1])
    assert geom.pad == (0.0, 0.0) and geom.scale == pytest.approx((cw / size[0], ch / size[1])) == (s, s)
    # letterbox: the same scale, the same content, centred instead
    lb, lgeom = resize(im, _spec("letterbox"))
    left, top = (32 - cw) // 2, (32 - ch) // 2
    np.testing.assert_array_equal(np.asarray(lb)[top:top + ch, left:left + cw], a[:ch, :cw])
    assert lgeom.pad == (left, top) and lgeom.scale == geom.scale


def test_a_box_maps_back_to_the_original_pixels():
    im = Image.new("RGB", (40, 20))
    _, geom = resize(im, _spec("keep_ratio"))  # scale 0.8, no offset
    np.testing.assert_allclose(geom.to_original(np.array([[8, 4, 16, 12], [0, 0, 32, 32]])),
                               [[10, 5, 20, 15], [0, 0, 40, 20]])  # the second clipped to the image


def test_non_square_target_and_normalisation():
    spec = dataclasses.replace(_spec("keep_ratio", 16, 48), mean=(1, 2, 3))
    x, geom = preprocess(Image.new("RGB", (30, 30), (10, 20, 30)), spec)
    assert x.shape == (3, 16, 48) and geom.scale == (16 / 30, 16 / 30)
    assert (x[:, :, :16] == np.array([9, 18, 27], np.float32)[:, None, None]).all()
    assert (x[:, :, 16:] == np.array([6, 5, 4], np.float32)[:, None, None]).all()


def test_detections_of_a_keep_ratio_contract_map_back(tmp_path):
    """The 64x64 test detector's boxes (network pixels) come back as original pixels through keep_ratio's
    geometry (x / 0.5, no offset) where letterbox's would shift them by its top padding."""
    path = onnx_models.detector(tmp_path / "det.onnx")
    img = tmp_path / "wide.png"
    Image.new("RGB", (128, 96), (255, 255, 255)).save(img)  # scale 0.5 -> 64x48: 16 rows of padding
    got = {}
    for policy in ("keep_ratio", "letterbox"):
        engine = Engine(path, provider="cpu", overrides=Overrides(resize=policy))
        res = next(Predictor(engine, conf=0.05).predict([ImageFile(img, img)]))
        got[policy] = {(p["class"], tuple(np.round(p["box"], 3))) for p in res.predictions}
    b0, b2 = onnx_models.DET_BOXES[0], onnx_models.DET_BOXES[2]
    want_keep = {(1, tuple(b0 / 0.5)), (2, tuple(b2 / 0.5))}
    want_lb = {(1, tuple((b0 - [0, 8, 0, 8]) / 0.5)), (2, tuple((b2 - [0, 8, 0, 8]) / 0.5))}
    assert want_keep <= got["keep_ratio"] and want_lb <= got["letterbox"]
