"""The fast decode (contract ``decode: fast``) against the exact one: equal where nothing is reduced,
within its documented tolerance where a large image is decoded reduced; the LUT normalisation
against the formula; the contract field."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from edgecnn.contract import Contract, ContractError, Preprocess
from edgecnn.runtime import image
from edgecnn.runtime.image import REDUCED, load_image, normalize, preprocess, preprocess_file

POLICIES = {
    "resize_crop": Preprocess(28, 28, resize_size=32),
    "letterbox": Preprocess(32, 32, resize="letterbox", mean=(0.0,) * 3, std=(1.0,) * 3),
    "stretch": Preprocess(24, 32, resize="stretch"),
    "gray": Preprocess(28, 28, 1, "L", resize_size=32, mean=(0.5,), std=(0.5,)),
    "bgr_bicubic": Preprocess(28, 28, color="BGR", interpolation="bicubic", resize_size=32),
}


def photo_like(w: int, h: int, seed: int = 0) -> Image.Image:
    """Smooth gradients, a few solid shapes with sharp edges and mild grain: what a camera gives."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.2) * min(w, h)
        a[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    a += rng.normal(0, 3, a.shape)
    return Image.fromarray(a.clip(0, 255).round().astype(np.uint8))


def exact(spec: Preprocess) -> Preprocess:
    return dataclasses.replace(spec, decode="exact")


def levels(a: np.ndarray, b: np.ndarray, spec: Preprocess) -> np.ndarray:
    """|a - b| in 0-255 pixel levels (undoing the std and scale)."""
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return np.abs(a - b) * std / spec.scale


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("fmt", ["png", "bmp", "jpg"])
def test_fast_equals_exact_below_the_reduction_threshold(tmp_path, policy, fmt):
    spec = POLICIES[policy]
    assert spec.decode == "fast"
    # 100x75: under 2 * REDUCE_GAP times every resize target here, so nothing may be reduced
    p = tmp_path / f"small.{fmt}"
    photo_like(100, 75).save(p)
    assert REDUCED not in load_image(p, spec).info
    (xf, gf), (xe, ge) = preprocess_file(p, spec), preprocess_file(p, exact(spec))
    assert gf == ge
    np.testing.assert_allclose(xf, xe, rtol=0, atol=1e-6)


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("fmt, k", [("jpg", 4), ("png", 4)])
def test_reduced_decode_stays_within_tolerance_and_keeps_the_geometry(tmp_path, policy, fmt, k):
    spec = POLICIES[policy]
    p = tmp_path / f"big.{fmt}"
    photo_like(402, 301, seed=1).save(p, **({"quality": 92} if fmt == "jpg" else {}))
    im = load_image(p, spec)
    # targets <= 32 px and REDUCE_GAP 2: 301 / 4 > 2 * 32 but 301 / 8 < 2 * 32, so 1/4
    assert im.info[REDUCED] == (402, 301, k) and im.size == (101, 76)  # the last pixels cover part-blocks
    (xf, gf), (xe, ge) = preprocess_file(p, spec), preprocess_file(p, exact(spec))
    assert gf == ge and xf.shape == xe.shape
    d = levels(xf, xe, spec)
    # documented: at most 5 levels from exact on real photos, 0.2-0.3 on average; so here
    assert d.mean() < 0.5 and d.max() <= 6, (d.mean(), d.max())


def test_reduced_jpeg_keeps_exif_orientation_and_full_geometry(tmp_path):
    """A phone photo stored landscape with orientation 6 (rotate 90 clockwise to view)."""
    spec = POLICIES["resize_crop"]
    upright = photo_like(300, 400, seed=2)  # portrait as seen
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    stored.save(p, quality=92, exif=exif)
    im = load_image(p, spec)
    assert im.info[REDUCED] == (300, 400, 4) and im.size == (75, 100)
    (xf, gf), (xe, ge) = preprocess_file(p, spec), preprocess_file(p, exact(spec))
    assert gf == ge and gf.orig_size == (300, 400)
    assert levels(xf, xe, spec).mean() < 1.0


def test_a_reduced_image_needs_its_full_size_to_preprocess_alike(tmp_path):
    """Without the REDUCED record the reduced image would map onto another grid: the record is what
    keeps the geometry (and the crop window) those of the full image."""
    spec = POLICIES["letterbox"]
    p = tmp_path / "big.png"
    photo_like(400, 300).save(p)
    im = load_image(p, spec)
    _, g = preprocess(im, spec)
    del im.info[REDUCED]
    _, g_bare = preprocess(im, spec)
    assert g.orig_size == (400, 300) and g_bare.orig_size == (100, 75)


@pytest.mark.parametrize("color, channels", [("RGB", 3), ("BGR", 3), ("L", 1)])
def test_lookup_normalisation_equals_the_formula_bit_for_bit(color, channels):
    rng = np.random.default_rng(0)
    mode = "L" if channels == 1 else "RGB"
    a = rng.integers(0, 256, (9, 7, channels), dtype=np.uint8)
    im = Image.fromarray(a[:, :, 0] if channels == 1 else a, mode)
    spec = Preprocess(9, 7, channels, color, mean=(0.3, 0.5, 0.7)[:channels], std=(0.2, 0.25, 0.3)[:channels])
    ref = a.astype(np.float32)[:, :, ::-1] if color == "BGR" else a.astype(np.float32)
    ref = ((ref * np.float32(spec.scale) - np.float32(spec.mean)) / np.float32(spec.std)).transpose(2, 0, 1)
    out = np.full((2, channels, 9, 7), np.nan, np.float32)
    x = normalize(im, spec, out[1])
    assert x is not None and np.array_equal(out[1], ref) and np.isnan(out[0]).all()
    assert np.array_equal(normalize(im, spec), ref)


def test_contract_records_the_decode(tmp_path):
    spec = Preprocess(8, 8)
    assert spec.decode == "fast"
    with pytest.raises(ContractError, match="unknown decode 'quick'"):
        Preprocess(8, 8, decode="quick")
    c = Contract("classify", "m", Preprocess(8, 8, decode="exact"))
    assert Contract.from_json(c.to_json()).preprocess.decode == "exact"
    older = c.to_dict()
    del older["preprocess"]["decode"]  # written before the field existed: trained on the exact decode
    assert Contract.from_dict(older).preprocess.decode == "exact"


def test_an_upright_still_image_is_not_copied(tmp_path, monkeypatch):
    p = tmp_path / "a.png"
    photo_like(40, 30).save(p)
    copies = []
    original = Image.Image.copy
    monkeypatch.setattr(Image.Image, "copy", lambda self: copies.append(1) or original(self))
    load_image(p)
    assert copies == []
    assert image.load_image(p).size == (40, 30)


@pytest.mark.parametrize("contract_decode, flag, used", [("fast", False, "fast"), ("exact", False, "exact"),
                                                         ("fast", True, "exact")])
def test_infer_follows_the_contract_unless_exact_decode_is_asked(tmp_path, monkeypatch, cli, contract_decode,
                                                                   flag, used):
    from tests import onnx_models

    model = onnx_models.classifier(tmp_path / "m.onnx", preprocess=Preprocess(32, 32, decode=contract_decode))
    p = tmp_path / "a.png"
    photo_like(40, 30).save(p)
    seen = []
    real = image.load_image
    monkeypatch.setattr(image, "load_image", lambda path, spec=None: seen.append(spec.decode) or real(path, spec))
    res = cli("infer", str(p), "--model", str(model), *(["--exact-decode"] if flag else []))
    assert res.exit_code == 0, res.output
    assert seen == [used]
