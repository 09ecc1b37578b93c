"""Image decoding and preprocessing: file -> PIL image -> NCHW float32, as the contract says.

ONE implementation, used by the device runtime (``infer``, ``eval``, ``bench``, the INT8
calibration reader) AND by training's eval transform, so the tensor a model sees in validation
is the tensor it sees on the device. NumPy + Pillow only.

Two decodes, chosen by the contract's ``decode``:
  - ``exact``: the whole image is decoded, then resized (Pillow's filter) and cropped or padded;
  - ``fast``: an image at least ``2 * REDUCE_GAP`` times the resize target is decoded at reduced
    size first, keeping at least ``REDUCE_GAP`` times the target per axis (as Pillow's
    ``thumbnail`` does): JPEG through libjpeg's DCT scaling (``draft``: 1/2, 1/4, 1/8), RGB/L
    images of other formats through ``Image.reduce`` (box averaging); the final resize then maps
    the reduced image's extent onto exactly the same output grid. Smaller images are processed
    exactly as ``exact`` does (bit for bit). Measured on real photos at 224 (resize 256, crop):
    at most 5 levels of 255 apart from ``exact``, 0.2 on average (``benchmarks/preprocess_bench.py``).
Both resize in uint8 and touch float data once, at the final size (a per-channel lookup table of
``(v * scale - mean) / std``, written straight into the caller's batch array when given one).
"""

from __future__ import annotations

import functools
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
# fast decode: a reduced image keeps at least this many times the resize target per axis
REDUCE_GAP = 2
# Image.info key of a reduced decode: (width, height, k): the upright size of the whole image in the
# file, and the factor it was reduced by (pixel i of the reduced image covers [k*i, k*i + k))
REDUCED = "edgecnn.reduced"
_ORIENTATION = 0x0112


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


def load_image(path: str | Path, spec: Preprocess | None = None) -> Image.Image:
    """Decode ``path`` (first frame of animations), apply its EXIF orientation. Raises ImageError
    with the file name for a missing, empty, truncated, non-image or oversized file.

    With a ``spec`` whose ``decode`` is ``fast``, a large image comes back reduced (see the module
    docstring) with its upright full size in ``im.info[REDUCED]``, which ``resize`` reads;
    without a spec, or with ``decode: exact``, the whole image is decoded.

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
                fast = spec is not None and spec.decode == "fast"
                full = im.size[::-1] if fast and _orientation(im) in (5, 6, 7, 8) else im.size  # upright
                k = _reduction(full, spec) if fast else 1
                if k > 1 and im.format in ("JPEG", "MPO"):
                    im.draft(None, (im.width // k, im.height // k))  # libjpeg decodes at 1/k
                im.load()
                drafted = im.decoderconfig[0] if im.format in ("JPEG", "MPO") and im.decoderconfig else 1
                im = _oriented(im)
                if drafted == 1 and k > 1 and im.mode in ("RGB", "L"):
                    im, drafted = im.reduce(k), k
                if drafted > 1:
                    im.info[REDUCED] = (*full, drafted)
                return im
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


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation tag (1-8; 1 when absent or malformed)."""
    try:
        return int(im.getexif().get(_ORIENTATION, 1))
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        return 1


def _oriented(im: Image.Image) -> Image.Image:
    """The loaded image turned upright per its EXIF orientation; malformed EXIF is ignored, not fatal.
    An upright still image is returned as it is (no copy); an animation's first frame is copied out."""
    if _orientation(im) in range(2, 9):
        try:
            return ImageOps.exif_transpose(im) or im.copy()
        except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
            pass
    return im.copy() if getattr(im, "is_animated", False) else im


def _reduction(full: tuple[int, int], spec: Preprocess) -> int:
    """The reduction factor (8, 4, 2 or 1) of a fast decode of an upright ``full``-size image: the
    largest that keeps ``REDUCE_GAP`` times the resize target on both axes."""
    nw, nh = _resized_size(full, spec)
    for k in (8, 4, 2):
        if full[0] >= k * REDUCE_GAP * nw and full[1] >= k * REDUCE_GAP * nh:
            return k
    return 1


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


def _resized_size(full: tuple[int, int], spec: Preprocess) -> tuple[int, int]:
    """The size a ``full``-size image is resized to before the crop (resize_crop) or padding (letterbox,
    keep_ratio)."""
    w0, h0 = full
    tw, th = spec.width, spec.height
    if spec.resize == "stretch":
        return tw, th
    if spec.resize in ("letterbox", "keep_ratio"):
        s = min(tw / w0, th / h0)
        return max(1, round(w0 * s)), max(1, round(h0 * s))
    short = spec.resize_size or min(tw, th)
    return (short, max(1, int(short * h0 / w0))) if w0 <= h0 else (max(1, int(short * w0 / h0)), short)


def resize(im: Image.Image, spec: Preprocess) -> tuple[Image.Image, Geometry]:
    """Apply the contract's resize policy; returns the ``spec.width x spec.height`` image and its geometry.

    An image from a reduced decode (``im.info[REDUCED]``) is resized from the extent the full image
    covers onto the grid the full image would have: same output size, crop window and geometry."""
    w0, h0, k = im.info.get(REDUCED, (*im.size, 1))
    box = None if k == 1 else (0.0, 0.0, w0 / k, h0 / k)  # the last reduced pixel may cover a part-block
    tw, th = spec.width, spec.height
    resample = _RESAMPLE[spec.interpolation]
    nw, nh = _resized_size((w0, h0), spec)
    if spec.resize == "stretch":
        return im.resize((tw, th), resample, box), Geometry((w0, h0), (tw / w0, th / h0), (0.0, 0.0))
    if spec.resize in ("letterbox", "keep_ratio"):
        # letterbox centres the image; keep_ratio puts it top-left and pads right and bottom only
        left, top = ((tw - nw) // 2, (th - nh) // 2) if spec.resize == "letterbox" else (0, 0)
        fill = spec.pad_value if im.mode == "L" else (spec.pad_value,) * 3
        canvas = Image.new(im.mode, (tw, th), fill)
        canvas.paste(im.resize((nw, nh), resample, box), (left, top))
        return canvas, Geometry((w0, h0), (nw / w0, nh / h0), (float(left), float(top)))
    # resize_crop: shorter side -> resize_size, then center crop (torchvision Resize + CenterCrop)
    im = im.resize((nw, nh), resample, box)
    left, top = int(round((nw - tw) / 2.0)), int(round((nh - th) / 2.0))
    im = im.crop((left, top, left + tw, top + th))
    return im, Geometry((w0, h0), (nw / w0, nh / h0), (-float(left), -float(top)))


def normalize(im: Image.Image, spec: Preprocess, out: np.ndarray | None = None) -> np.ndarray:
    """HWC uint8 -> CHW float32: ``(pixel * scale - mean) / std``; BGR reverses the channels.

    One lookup per pixel into a 256-entry table per channel computed with that same float32
    formula (the same values, bit for bit); ``out``: a (C, H, W) float32 array (e.g. one image of a
    preallocated batch) written in place and returned."""
    a = np.asarray(im)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype != np.uint8:  # not from to_mode (a caller's own float or 16-bit image): the formula itself
        a = a.astype(np.float32)[:, :, ::-1] if spec.color == "BGR" else a.astype(np.float32)
        mean, std = np.asarray(spec.mean, dtype=np.float32), np.asarray(spec.std, dtype=np.float32)
        x = np.ascontiguousarray(((a * np.float32(spec.scale) - mean) / std).transpose(2, 0, 1))
        if out is None:
            return x
        out[...] = x
        return out
    c = a.shape[2]
    if out is None:
        out = np.empty((c, a.shape[0], a.shape[1]), dtype=np.float32)
    lut = _lut(spec.scale, spec.mean, spec.std)
    for i in range(c):
        src = c - 1 - i if spec.color == "BGR" else i
        np.take(lut[i], a[:, :, src], out=out[i], mode="clip")
    return out


@functools.lru_cache(maxsize=16)
def _lut(scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(C, 256) float32: ``(v * scale - mean[c]) / std[c]`` for every uint8 value v, in float32 as ``normalize``."""
    v = np.arange(256, dtype=np.float32)[None, :]
    m = np.asarray(mean, dtype=np.float32)[:, None]
    d = np.asarray(std, dtype=np.float32)[:, None]
    return np.ascontiguousarray((v * np.float32(scale) - m) / d, dtype=np.float32)


def preprocess(im: Image.Image, spec: Preprocess, out: np.ndarray | None = None) -> tuple[np.ndarray, Geometry]:
    """A decoded image -> ((C, H, W) float32, geometry). The eval transform of training too.
    ``out``: where to write the tensor (see ``normalize``)."""
    reduced = im.info.get(REDUCED)
    im = to_mode(im, spec.color, spec.background)
    if reduced is not None:  # a mode conversion may have made a new image without it
        im.info[REDUCED] = reduced
    im, geom = resize(im, spec)
    return normalize(im, spec, out), geom


def load_preprocessed(path: str | Path, spec: Preprocess,
                      out: np.ndarray | None = None) -> tuple[Image.Image, np.ndarray, Geometry]:
    """``load_image`` (with the spec: its ``decode`` applies) + ``preprocess``: (the upright decoded
    image, reduced where a fast decode reduced it; (C, H, W) float32; geometry). Every failure is an
    ImageError naming the file."""
    im = load_image(path, spec)
    try:
        x, geom = preprocess(im, spec, out)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from e
    return im, x, geom


def preprocess_file(path: str | Path, spec: Preprocess, out: np.ndarray | None = None) -> tuple[np.ndarray, Geometry]:
    """A file -> ((C, H, W) float32, geometry); every failure is an ImageError naming the file."""
    _, x, geom = load_preprocessed(path, spec, out)
    return x, geom
