"""Image decoding and preprocessing: file -> PIL image -> NCHW float32, as the contract says.

ONE implementation, used by the device runtime (``infer``, ``eval``, ``bench``, the INT8
calibration reader) AND by training's eval transform, so the tensor a model sees in validation
is the tensor it sees on the device. NumPy + Pillow only.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgecnn.contract import Preprocess
from edgecnn.errors import EdgeCNNError, first_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we refuse above it outright.
MAX_PIXELS = 89_478_485

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC}


class ImageError(EdgeCNNError):
    """An input that is not a decodable image (names the file)."""


@dataclass(frozen=True)
class Geometry:
    """How network-input pixel coordinates map back to the original image:
    ``orig = (net - pad) / scale`` per axis. ``orig_size`` is (width, height)."""

    orig_size: tuple[int, int]
    scale: tuple[float, float]  # (sx, sy)
    pad: tuple[float, float]  # (left, top) in network pixels; negative for a center crop offset

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) xyxy boxes in network-input pixels -> original image pixels, clipped to the image."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad[0]) / self.scale[0]
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad[1]) / self.scale[1]
        w, h = self.orig_size
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out


def load_image(path: str | Path) -> Image.Image:
    """Decode ``path`` (first frame of animations), apply its EXIF orientation. Raises ImageError
    with the file name for a missing, empty, truncated, non-image or oversized file.

    The pixel limit is checked from the header, before any pixel is decoded, so a decompression
    bomb costs nothing; ``MAX_PIXELS`` is read at call time (tests lower it)."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; make that an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(f"{path}: {im.width}x{im.height} pixels exceeds the {MAX_PIXELS:,}-pixel "
                                     "limit (possible decompression bomb)")
                im.seek(0)
                im.load()
                return _oriented(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        limit = min(MAX_PIXELS, Image.MAX_IMAGE_PIXELS or MAX_PIXELS)  # Pillow's own check fired first
        raise ImageError(f"{path}: more than {limit:,} pixels (possible decompression bomb)") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not an image, or a format Pillow cannot read") from e
    except PermissionError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{path}: truncated or corrupt image ({first_line(e)})") from e


def _oriented(im: Image.Image) -> Image.Image:
    """A loaded copy turned upright per its EXIF orientation; malformed EXIF is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(im) or im.copy()
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        return im.copy()


def to_mode(im: Image.Image, color: str, background: str = "white") -> Image.Image:
    """Any Pillow mode -> 'RGB' (also for BGR) or 'L'. Transparency is composited on ``background``;
    16/32-bit and float images are rescaled to 0-255 from their own (finite) range."""
    target = "L" if color == "L" else "RGB"
    if im.mode.startswith(("I", "F")):  # I, I;16, I;16B, I;16L, I;16N, F
        a = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(a)
        lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 0.0)
        a = np.where(finite, a, lo)
        a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        im = Image.fromarray(a.round().astype(np.uint8), "L")
    try:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode in ("RGBA", "LA", "PA", "RGBa"):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if background == "white" else (0, 0, 0, 255))
            im = Image.alpha_composite(bg, rgba)
        if im.mode != target:
            try:
                im = im.convert(target)
            except ValueError:  # some modes (LAB -> L) only convert through RGB
                im = im.convert("RGB").convert(target)
    except ValueError as e:  # modes Pillow cannot convert at all (La)
        raise ImageError(f"cannot convert image mode '{im.mode}' to {target}") from e
    return im


def resize(im: Image.Image, spec: Preprocess) -> tuple[Image.Image, Geometry]:
    """Apply the contract's resize policy; returns the ``spec.width x spec.height`` image and its geometry."""
    w0, h0 = im.size
    tw, th = spec.width, spec.height
    resample = _RESAMPLE[spec.interpolation]
    if spec.resize == "stretch":
        return im.resize((tw, th), resample), Geometry((w0, h0), (tw / w0, th / h0), (0.0, 0.0))
    if spec.resize == "letterbox":
        s = min(tw / w0, th / h0)
        nw, nh = max(1, round(w0 * s)), max(1, round(h0 * s))
        left, top = (tw - nw) // 2, (th - nh) // 2
        fill = spec.pad_value if im.mode == "L" else (spec.pad_value,) * 3
        canvas = Image.new(im.mode, (tw, th), fill)
        canvas.paste(im.resize((nw, nh), resample), (left, top))
        return canvas, Geometry((w0, h0), (nw / w0, nh / h0), (float(left), float(top)))
    # resize_crop: shorter side -> resize_size, then center crop (torchvision Resize + CenterCrop)
    short = spec.resize_size or min(tw, th)
    s = short / min(w0, h0)
    nw, nh = (short, max(1, int(short * h0 / w0))) if w0 <= h0 else (max(1, int(short * w0 / h0)), short)
    im = im.resize((nw, nh), resample)
    left, top = int(round((nw - tw) / 2.0)), int(round((nh - th) / 2.0))
    im = im.crop((left, top, left + tw, top + th))
    return im, Geometry((w0, h0), (nw / w0, nh / h0), (-float(left), -float(top)))


def normalize(im: Image.Image, spec: Preprocess) -> np.ndarray:
    """HWC uint8 -> CHW float32: ``(pixel * scale - mean) / std``; BGR reverses the channels."""
    a = np.asarray(im, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if spec.color == "BGR":
        a = a[:, :, ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    a = (a * np.float32(spec.scale) - mean) / std
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32)


def preprocess(im: Image.Image, spec: Preprocess) -> tuple[np.ndarray, Geometry]:
    """A decoded image -> ((C, H, W) float32, geometry). The eval transform of training too."""
    im = to_mode(im, spec.color, spec.background)
    im, geom = resize(im, spec)
    return normalize(im, spec), geom


def load_preprocessed(path: str | Path, spec: Preprocess) -> tuple[Image.Image, np.ndarray, Geometry]:
    """``load_image`` + ``preprocess``: (the upright decoded image, (C, H, W) float32, geometry).
    Every failure is an ImageError naming the file."""
    im = load_image(path)
    try:
        x, geom = preprocess(im, spec)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from e
    return im, x, geom


def preprocess_file(path: str | Path, spec: Preprocess) -> tuple[np.ndarray, Geometry]:
    """A file -> ((C, H, W) float32, geometry); every failure is an ImageError naming the file."""
    _, x, geom = load_preprocessed(path, spec)
    return x, geom
