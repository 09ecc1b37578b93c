"""Preprocessing pixels against references that do not come from edgecnn's own code: positions
computed by hand (integer-factor resizes of images with one bright pixel or a ramp), torchvision's
Resize + CenterCrop recorded in fixtures/ (make_torchvision_preprocess_fixture.py), and Pillow's own
filters for each interpolation the contract names."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.contract import INTERPOLATIONS, Preprocess
from edgecnn.runtime.image import Geometry, preprocess, resize, to_mode
from tests.runtime.patterns import pattern

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resize_crop.json").read_text())
PLAIN = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "scale": 1.0}  # tensor values = pixel values
FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC}


def _gray(w, h, on=(), value=255):
    a = np.zeros((h, w), np.uint8)
    for x, y in on:
        a[y, x] = value
    return Image.fromarray(a, "L").convert("RGB")


def _out(im, spec):
    got, geom = resize(im, spec)
    return np.asarray(got)[:, :, 0].astype(int), geom


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: "{}x{}-{}-{}".format(*c["source"], c["resize"],
                                                                                          c["interpolation"]))
def test_resize_crop_is_torchvision_pixel_for_pixel(case):
    (w, h), (ch, cw) = case["source"], case["crop"]
    want = np.frombuffer(base64.b64decode(case["rgb_base64"]), np.uint8).reshape(ch, cw, 3)
    spec = Preprocess(ch, cw, resize="resize_crop", resize_size=case["resize"], interpolation=case["interpolation"],
                      **PLAIN)
    im = Image.fromarray(pattern(w, h), "RGB")
    got, _ = resize(im, spec)
    np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"Pillow here {Image.__version__}, "
                                                               f"fixture {FIXTURE['pillow']}")
    x, _ = preprocess(im, spec)  # and through the whole path: CHW float32 of the same pixels
    np.testing.assert_array_equal(x, want.transpose(2, 0, 1).astype(np.float32))


# ---- one bright pixel, integer scale factors, nearest: where it lands is arithmetic --------------------


@pytest.mark.parametrize("x, y", [(5, 10), (0, 4), (15, 19), (7, 3), (7, 20)])
def test_bright_pixel_after_resize_crop_portrait(x, y):
    # 16x24 -> shorter side 32: x2 to 32x48; centre crop 32x32 keeps rows 8..39 (top = (48 - 32) / 2).
    spec = Preprocess(32, 32, resize="resize_crop", resize_size=32, interpolation="nearest", **PLAIN)
    got, geom = _out(_gray(16, 24, [(x, y)]), spec)
    want = np.zeros((32, 32), int)
    rows = [r - 8 for r in (2 * y, 2 * y + 1) if 8 <= r < 40]
    for r in rows:
        want[r, 2 * x:2 * x + 2] = 255
    np.testing.assert_array_equal(got, want)
    assert geom.pad == (0.0, -8.0) and geom.scale == (2.0, 2.0)


@pytest.mark.parametrize("x, y", [(12, 7), (4, 0), (19, 15), (3, 5)])
def test_bright_pixel_after_resize_crop_landscape(x, y):
    # 24x16 -> x2 to 48x32; crop columns 8..39.
    spec = Preprocess(32, 32, resize="resize_crop", resize_size=32, interpolation="nearest", **PLAIN)
    got, _ = _out(_gray(24, 16, [(x, y)]), spec)
    want = np.zeros((32, 32), int)
    for c in (2 * x, 2 * x + 1):
        if 8 <= c < 40:
            want[2 * y:2 * y + 2, c - 8] = 255
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("x, y", [(0, 0), (15, 7), (6, 3)])
def test_bright_pixel_after_letterbox(x, y):
    # 16x8 into 32x32: x2 to 32x16, pasted at top (32 - 16) // 2 = 8; rows 0..7 and 24..31 are padding.
    spec = Preprocess(32, 32, resize="letterbox", interpolation="nearest", pad_value=7, **PLAIN)
    got, geom = _out(_gray(16, 8, [(x, y)]), spec)
    want = np.full((32, 32), 7)
    want[8:24] = 0
    want[8 + 2 * y:10 + 2 * y, 2 * x:2 * x + 2] = 255
    np.testing.assert_array_equal(got, want)
    assert geom.pad == (0.0, 8.0) and geom.scale == (2.0, 2.0)


@pytest.mark.parametrize("x, y", [(0, 0), (15, 7), (9, 2)])
def test_bright_pixel_after_stretch(x, y):
    # 16x8 -> 32x32: x2 across, x4 down.
    spec = Preprocess(32, 32, resize="stretch", interpolation="nearest", **PLAIN)
    got, _ = _out(_gray(16, 8, [(x, y)]), spec)
    want = np.zeros((32, 32), int)
    want[4 * y:4 * y + 4, 2 * x:2 * x + 2] = 255
    np.testing.assert_array_equal(got, want)


def test_bilinear_ramp_after_resize_crop():
    """A ramp 8*x, 20x8, x4 bilinear to 80x32, crop columns 24..55. Pillow's triangle filter at output
    column i samples the source at (i + 0.5) / 4 - 0.5, so the value there is 2i - 3; after the crop,
    column j holds 2(j + 24) - 3 = 2j + 45. One column off centre moves every value by 2."""
    ramp = np.tile((np.arange(20) * 8).astype(np.uint8), (8, 1))
    spec = Preprocess(32, 32, resize="resize_crop", resize_size=32, interpolation="bilinear", **PLAIN)
    got, _ = _out(Image.fromarray(ramp, "L").convert("RGB"), spec)
    np.testing.assert_array_equal(got, np.tile(2 * np.arange(32) + 45, (32, 1)))


def test_vertical_centre_of_an_odd_margin_rounds_like_torchvision():
    """16x21 -> x2 to 32x42: margin 10, top 5; a pixel at source row 3 fills rows 6-7, i.e. crop rows 1-2."""
    spec = Preprocess(32, 32, resize="resize_crop", resize_size=32, interpolation="nearest", **PLAIN)
    got, _ = _out(_gray(16, 21, [(0, 3)]), spec)
    assert np.nonzero(got[:, 0])[0].tolist() == [1, 2]


# ---- every interpolation the contract names is Pillow's own filter, and they differ -----------------


@pytest.mark.parametrize("policy", ["stretch", "letterbox", "resize_crop"])
def test_each_interpolation_is_pillows_filter_and_they_differ(policy):
    assert set(FILTERS) == set(INTERPOLATIONS)
    im = Image.fromarray(pattern(45, 31), "RGB")
    outs = {}
    for name in INTERPOLATIONS:
        spec = Preprocess(20, 24, resize=policy, resize_size=22, interpolation=name, pad_value=0, **PLAIN)
        outs[name] = np.asarray(resize(im, spec)[0])
        if policy == "stretch":
            np.testing.assert_array_equal(outs[name], np.asarray(im.resize((24, 20), FILTERS[name])))
        elif policy == "letterbox":  # 45x31 into 24x20: scale 24/45 -> 24x17, top (20 - 17) // 2 = 1
            np.testing.assert_array_equal(outs[name][1:18], np.asarray(im.resize((24, 17), FILTERS[name])))
            assert not outs[name][0].any() and not outs[name][18:].any()
        else:  # 45x31 -> shorter side 22: int(22 * 45 / 31) = 31 wide, 31x22; centre crop 24x20
            ref = im.resize((31, 22), FILTERS[name]).crop((4, 1, 28, 21))  # left round(3.5) = 4, top 1
            np.testing.assert_array_equal(outs[name], np.asarray(ref))
    for a, b in itertools.combinations(INTERPOLATIONS, 2):
        assert (outs[a] != outs[b]).any(), (policy, a, b)


# ---- written for the mutants of image.py that survived a first mutation run ---------------------------


def test_letterbox_of_a_tall_image_pads_left_and_right():
    # 8x16 into 32x32: x2 to 16x32, pasted at left (32 - 16) // 2 = 8; columns 0..7 and 24..31 are padding
    spec = Preprocess(32, 32, resize="letterbox", interpolation="nearest", pad_value=7, **PLAIN)
    got, geom = _out(_gray(8, 16, [(3, 5)]), spec)
    want = np.full((32, 32), 7)
    want[:, 8:24] = 0
    want[10:12, 14:16] = 255
    np.testing.assert_array_equal(got, want)
    assert geom == Geometry((8, 16), (2.0, 2.0), (8.0, 0.0))


def test_stretch_geometry():
    _, geom = _out(_gray(16, 8), Preprocess(32, 32, resize="stretch", **PLAIN))
    assert geom == Geometry((16, 8), (2.0, 4.0), (0.0, 0.0))


def test_preprocess_writes_into_out_and_composites_on_white_by_default():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent
    assert to_mode(im, "RGB").getpixel((0, 0)) == (255, 255, 255)
    buf = np.full((2, 3, 4, 4), np.nan, np.float32)
    x, _ = preprocess(im, Preprocess(4, 4, resize="stretch", **PLAIN), out=buf[1])
    assert x is not None and np.array_equal(buf[1], np.full((3, 4, 4), 255.0)) and np.isnan(buf[0]).all()


def test_32_bit_images_are_rescaled_from_their_own_range():
    im = Image.fromarray(np.array([[500, 1000]], np.int32))  # mode I: Pillow's own convert would clip both
    assert im.mode == "I" and np.asarray(to_mode(im, "L")).tolist() == [[0, 255]]


def test_a_float_image_is_normalized_by_the_formula():
    from edgecnn.runtime.image import normalize

    im = Image.fromarray(np.array([[0.0, 127.5, 300.0]], np.float32))  # mode F: not a uint8 lookup
    x = normalize(im, Preprocess(1, 3, 1, "L", resize="stretch", mean=(0.5,), std=(0.5,)))
    np.testing.assert_allclose(x, [[[-1.0, 0.0, 300 / 127.5 - 1.0]]], rtol=1e-6)


def test_reduction_needs_room_on_both_axes():
    from edgecnn.runtime.image import _reduction

    spec = Preprocess(32, 32, resize="stretch")  # target 32x32; REDUCE_GAP keeps twice that
    assert _reduction((512, 512), spec) == 8 and _reduction((256, 256), spec) == 4
    assert _reduction((4000, 100), spec) == 1  # a panorama: the short axis has no room to spare
    assert _reduction((127, 127), spec) == 1 and _reduction((128, 128), spec) == 2


def test_a_grey_jpeg_decoded_fast_keeps_its_full_size_geometry(tmp_path):
    from edgecnn.runtime.image import preprocess_file

    p = tmp_path / "grey.jpg"
    Image.fromarray(np.tile(np.arange(800, dtype=np.uint8)[None] // 4, (600, 1)), "L").save(p, quality=95)
    spec = Preprocess(64, 64, resize="stretch", decode="fast")  # RGB from L: a new image, same geometry
    _, geom = preprocess_file(p, spec)
    assert geom.orig_size == (800, 600) and geom.scale == (64 / 800, 64 / 600)
