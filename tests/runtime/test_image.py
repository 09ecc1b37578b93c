"""Decoding every format and mode, EXIF orientation, bad files, resize policies and their geometry."""

import numpy as np
import pytest
from PIL import Image

from edgecnn.contract import Preprocess
from edgecnn.runtime import image
from edgecnn.runtime.image import Geometry, ImageError, load_image, preprocess, preprocess_file, resize, to_mode
from tests import imagegen


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return imagegen.write_all(tmp_path_factory.mktemp("images"))


@pytest.mark.parametrize("name", list(imagegen.red_images()))
def test_colour_files_decode_to_red(images, name):
    im = load_image(images[name])
    assert im.size == (imagegen.W, imagegen.H)
    rgb = np.asarray(to_mode(im, "RGB"), dtype=int)
    assert rgb.shape == (imagegen.H, imagegen.W, 3)
    assert np.abs(rgb - imagegen.RED).max() <= 6, rgb[0, 0]  # lossy JPEG/WebP round to within a few levels


@pytest.mark.parametrize("name", list(imagegen.gray_images()))
@pytest.mark.parametrize("color", ["RGB", "L", "BGR"])
def test_gray_and_deep_files_keep_their_gradient(images, name, color):
    im = to_mode(load_image(images[name]), color)
    a = np.asarray(im, dtype=int)
    assert im.mode == ("L" if color == "L" else "RGB")
    row = a[imagegen.H // 2] if a.ndim == 2 else a[imagegen.H // 2, :, 0]
    assert row[0] < 60 and row[-1] > 200, row  # dark on the left, bright on the right, 8-bit
    x, _ = preprocess(load_image(images[name]), Preprocess(16, 16, *((1, "L") if color == "L" else (3, color)),
                                                           mean=(0.5,) * (1 if color == "L" else 3),
                                                           std=(0.5,) * (1 if color == "L" else 3)))
    assert x.shape == ((1 if color == "L" else 3), 16, 16) and x.dtype == np.float32 and np.isfinite(x).all()


def test_first_frame_of_an_animation(images):
    im = Image.open(images["animated.gif"])
    assert im.n_frames == 2
    assert to_mode(load_image(images["animated.gif"]), "RGB").getpixel((0, 0)) == imagegen.RED


@pytest.mark.parametrize("background, expected", [("white", (255, 255, 255)), ("black", (0, 0, 0))])
@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa"])
def test_transparent_pixels_land_on_the_background(mode, background, expected):
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0)).convert(mode)
    assert to_mode(im, "RGB", background).getpixel((0, 0)) == expected
    assert to_mode(im, "L", background).getpixel((0, 0)) == expected[0]


def test_half_transparent_red_on_white_is_pink():
    im = Image.new("RGBA", (2, 2), (255, 0, 0, 128))
    r, g, b = to_mode(im, "RGB", "white").getpixel((0, 0))
    assert r == 255 and 120 <= g <= 130 and g == b


def test_palette_with_transparency_is_composited():
    im = Image.new("P", (2, 1), 0)
    im.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((1, 0), 1)
    im.info["transparency"] = 0
    out = to_mode(im, "RGB", "black")
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((1, 0)) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["CMYK", "1", "YCbCr", "LAB", "HSV", "RGBX", "I;16", "I;16B", "I", "F"])
def test_other_modes_convert(mode):
    for color, want in (("RGB", "RGB"), ("BGR", "RGB"), ("L", "L")):
        out = to_mode(Image.new(mode, (3, 3)), color)
        assert out.mode == want and out.size == (3, 3)


def test_float_image_with_nan_and_inf_stays_finite():
    a = np.array([[0.0, np.nan], [np.inf, 2.0]], np.float32)
    out = np.asarray(to_mode(Image.fromarray(a), "L"))
    assert out.tolist() == [[0, 0], [0, 255]]
    assert np.asarray(to_mode(Image.fromarray(np.full((2, 2), np.nan, np.float32)), "L")).max() == 0


def test_unconvertible_mode_is_an_image_error():
    with pytest.raises(ImageError, match="cannot convert image mode 'La' to RGB"):
        to_mode(Image.new("La", (2, 2)), "RGB")


def test_exif_orientation_is_applied(tmp_path):
    im = load_image(imagegen.exif_rotated_jpeg(tmp_path / "rotated.jpg"))
    assert im.size == (20, 40)
    top, bottom = np.asarray(im, dtype=int)[2, 10], np.asarray(im, dtype=int)[37, 10]
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50


@pytest.mark.parametrize("make, message", [
    (imagegen.empty_file, "{p}: empty file"),
    (imagegen.text_as_jpeg, "{p}: not an image, or a format Pillow cannot read"),
    (imagegen.truncated_jpeg, "{p}: truncated or corrupt image ("),  # then Pillow's own words
    (imagegen.bomb_png, "{p}: more than 89,478,485 pixels (possible decompression bomb)"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, make, message):
    p = make(tmp_path / "bad.jpg")
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert str(e.value).startswith(message.format(p=p)) and "\n" not in str(e.value)


def test_bomb_between_pillow_warning_and_error_is_refused(tmp_path):
    p = imagegen.bomb_png(tmp_path / "bomb.png", 10_000, 10_000)  # 1e8: Pillow would only warn
    with pytest.raises(ImageError, match="possible decompression bomb"):
        load_image(p)


def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(p)
    monkeypatch.setattr(image, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match=r"big.png: 20x20 pixels exceeds the 399-pixel limit \(possible decompression"):
        load_image(p)
    monkeypatch.setattr(image, "MAX_PIXELS", 400)
    assert load_image(p).size == (20, 20)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match=r"nope.jpg: no such file$"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_preprocess_file_names_the_file_for_conversion_errors(tmp_path, monkeypatch):
    p = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(p)

    def boom(im, color, background="white"):
        raise ImageError("cannot convert image mode 'X' to RGB")

    monkeypatch.setattr(image, "to_mode", boom)
    with pytest.raises(ImageError, match=r"ok.png: cannot convert image mode 'X' to RGB"):
        preprocess_file(p, Preprocess(4, 4))


# ---- resize policies and geometry ------------------------------------------------------------------


def _marker_image(w, h, box):
    im = Image.new("RGB", (w, h), (0, 0, 0))
    im.paste((255, 255, 255), box)
    return im


@pytest.mark.parametrize("policy", ["resize_crop", "letterbox", "stretch"])
def test_geometry_maps_network_pixels_back_to_the_original(policy):
    # A white square at a known place in a 200x100 image; find it in the network input, map it back.
    box = (100, 20, 140, 60)
    spec = Preprocess(64, 64, resize=policy, interpolation="nearest", pad_value=0)
    im, geom = resize(_marker_image(200, 100, box), spec)
    assert im.size == (64, 64) and geom.orig_size == (200, 100)
    ys, xs = np.nonzero(np.asarray(im)[:, :, 0] > 128)
    net = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    np.testing.assert_allclose(geom.to_original(net)[0], box, atol=200 / 64 + 0.01)


def test_letterbox_geometry_exact():
    im, geom = resize(Image.new("RGB", (128, 64)), Preprocess(64, 64, resize="letterbox"))
    assert geom == Geometry((128, 64), (0.5, 0.5), (0.0, 16.0))
    assert np.asarray(im)[0, 0].tolist() == [114, 114, 114]  # padding
    np.testing.assert_array_equal(geom.to_original(np.array([[8, 24, 40, 40]])), [[16, 16, 80, 48]])


def test_resize_crop_is_torchvision_resize_then_center_crop():
    im, geom = resize(Image.new("RGB", (300, 200)), Preprocess(224, 224))  # resize_size 256
    assert im.size == (224, 224)
    assert geom.scale == (384 / 300, 256 / 200) and geom.pad == (-80.0, -16.0)


def test_to_original_clips_to_the_image():
    geom = Geometry((100, 50), (1.0, 1.0), (0.0, 0.0))
    np.testing.assert_array_equal(geom.to_original(np.array([[-5, -5, 120, 60]])), [[0, 0, 100, 50]])


def test_normalize_values_and_bgr():
    spec = Preprocess(2, 2, resize="stretch", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x, _ = preprocess(Image.new("RGB", (2, 2), (255, 0, 0)), spec)
    assert x[:, 0, 0].tolist() == [1.0, -1.0, -1.0]
    from dataclasses import replace
    x, _ = preprocess(Image.new("RGB", (2, 2), (255, 0, 0)), replace(spec, color="BGR"))
    assert x[:, 0, 0].tolist() == [-1.0, -1.0, 1.0]
