"""Test images made with Pillow: every mode in the formats that store it, and broken files.

Colour images are pure red (255, 0, 0) where the mode allows it, so the ``colors`` test
classifier (tests/onnx_models.py) must say "red" for each of them after decoding.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
W, H = 40, 30  # small, and not square, so resize policies matter


def _red_palette() -> Image.Image:
    im = Image.new("P", (W, H), 1)
    im.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    return im


def red_images() -> dict[str, Image.Image]:
    """Colour images that decode to red, keyed by '<mode>.<suffix>' (the file name to use)."""
    rgba = Image.new("RGBA", (W, H), (*RED, 255))
    p_trans = _red_palette()
    p_trans.info["transparency"] = 0  # index 0 transparent (unused), index 1 red
    frame2 = Image.new("P", (W, H), 0)
    frame2.putpalette([0, 0, 255] * 256)
    return {
        "rgb.jpg": Image.new("RGB", (W, H), RED), "rgb.png": Image.new("RGB", (W, H), RED),
        "rgb.bmp": Image.new("RGB", (W, H), RED), "rgb.webp": Image.new("RGB", (W, H), RED),
        "rgb.tiff": Image.new("RGB", (W, H), RED), "rgba.png": rgba, "rgba.webp": rgba,
        "rgba.tif": rgba, "p.png": _red_palette(), "p_transparency.png": p_trans, "p.bmp": _red_palette(),
        "cmyk.jpg": Image.new("CMYK", (W, H), (0, 255, 255, 0)),
        "cmyk.tiff": Image.new("CMYK", (W, H), (0, 255, 255, 0)),
        # animated: the first frame is red, the second blue; only the first counts
        "animated.gif": (_red_palette(), frame2),
    }


def gray_images() -> dict[str, Image.Image]:
    """Single-channel and high-bit-depth images (a left-to-right gradient), by file name."""
    ramp = np.tile(np.linspace(0, 1, W), (H, 1))
    la = Image.merge("LA", (Image.fromarray((ramp * 255).astype(np.uint8)), Image.new("L", (W, H), 255)))
    return {
        "l.jpg": Image.fromarray((ramp * 255).astype(np.uint8)),
        "l.png": Image.fromarray((ramp * 255).astype(np.uint8)),
        "la.png": la, "la.tif": la,
        "one_bit.bmp": Image.fromarray(ramp > 0.5).convert("1"),
        "i16.png": Image.fromarray((ramp * 65535).astype(np.uint16)),
        "i16.tif": Image.fromarray((ramp * 65535).astype(np.uint16)),
        "i32.tif": Image.fromarray((ramp * 1e6).astype(np.int32)),
        "float.tif": Image.fromarray((ramp * 3.5 - 1).astype(np.float32)),
        "gray.gif": Image.fromarray((ramp * 255).astype(np.uint8)),
    }


def save(im, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(im, tuple):  # frames of an animation
        im[0].save(path, save_all=True, append_images=list(im[1:]), duration=100, loop=0)
    else:
        im.save(path)
    return path


def write_all(folder: Path) -> dict[str, Path]:
    """Every red and gray image under ``folder``; returns name -> path."""
    return {name: save(im, folder / name) for name, im in {**red_images(), **gray_images()}.items()}


def exif_rotated_jpeg(path: Path) -> Path:
    """A 40x20 JPEG, left half red, right half blue, with EXIF orientation 6 (shown rotated 90
    degrees clockwise): upright it is 20x40 with red on top."""
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, exif=exif.tobytes(), quality=95)
    return path


def truncated_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def text_as_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not an image\n")
    return path


def empty_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid 1x1 PNG whose header then claims ``width x height`` pixels (CRC fixed up): what a
    decompression bomb looks like to a decoder before it allocates."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8  # after the signature: length (4), b"IHDR" (4), then width, height
    data[ihdr + 8:ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4:ihdr + 8 + 13]))
    data[ihdr + 8 + 13:ihdr + 8 + 17] = struct.pack(">I", crc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path
