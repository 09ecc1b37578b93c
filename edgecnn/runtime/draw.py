"""Annotated copies of input images (``infer --save``): Pillow ImageDraw and its default font.

Detection: each box outlined in its class colour on the box's own boundary pixels (a box
``[x1, y1, x2, y2]`` covers pixel columns x1 .. x2-1), with ``label score`` on a filled tag
above it (inside it at the top edge of the image). Classification: the top predictions as
``label score`` lines on a dark tag in the top-left corner.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from edgecnn.fileio import atomic_path
from edgecnn.runtime.image import to_mode

# Distinct, saturated colours (Tableau 10); class i gets PALETTE[i % 10].
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


_PAD = 2  # pixels around a tag's text


def class_color(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def _font(im: Image.Image) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Readable on a 64 px thumbnail and on a 4K photo alike.
    return ImageFont.load_default(size=max(10, round(min(im.size) / 30)))


def _line_width(im: Image.Image) -> int:
    return max(1, round(min(im.size) / 200))


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def _tag_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int, int]:
    """(width, height, top offset) of ``text`` on its tag."""
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return right + 2 * _PAD, bottom - top + 2 * _PAD, top


def _tag(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, fill, font) -> None:
    """``text`` on a filled rectangle whose top-left corner is ``xy``."""
    w, h, top = _tag_size(draw, text, font)
    draw.rectangle((xy[0], xy[1], xy[0] + w - 1, xy[1] + h - 1), fill=fill)
    draw.multiline_text((xy[0] + _PAD, xy[1] + _PAD - top), text, fill=_text_color(fill), font=font)


def draw_detections(im: Image.Image, records: Sequence[dict]) -> Image.Image:
    """An RGB copy of ``im`` with detection records ``{"class", "label", "score", "box"}`` drawn
    (box xyxy in ``im``'s pixels). Lower-scoring boxes are drawn first, so the best is on top."""
    out = to_mode(im, "RGB").copy()
    draw, font, width = ImageDraw.Draw(out), _font(out), _line_width(out)
    for r in sorted(records, key=lambda r: r["score"]):
        x1, y1, x2, y2 = (round(v) for v in r["box"])
        if x2 <= x1 or y2 <= y1:
            continue
        color = class_color(r["class"])
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=color, width=width)
        text = f"{r['label']} {r['score']:.2f}"
        tag_h = _tag_size(draw, text, font)[1]
        _tag(draw, (x1, y1 - tag_h if y1 >= tag_h else y1), text, color, font)
    return out


def draw_classification(im: Image.Image, records: Sequence[dict], lines: int = 3) -> Image.Image:
    """An RGB copy of ``im`` with the first ``lines`` records ``{"label", "score"}`` in the corner."""
    out = to_mode(im, "RGB").copy()
    draw, font = ImageDraw.Draw(out), _font(out)
    text = "\n".join(f"{r['label']} {r['score']:.2f}" for r in records[:lines])
    if text:
        _tag(draw, (0, 0), text, (0, 0, 0), font)
    return out


def annotate(im: Image.Image, task: str, records: Sequence[dict]) -> Image.Image:
    return draw_detections(im, records) if task == "detect" else draw_classification(im, records)


def save_image(im: Image.Image, path: str | Path) -> Path:
    """Write ``im`` atomically in the format its suffix names (PNG, with ``.png`` appended, when
    Pillow knows no writer for the suffix). Returns the path written."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        path, fmt = path.with_name(path.name + ".png"), "PNG"
    extra = {"quality": 95} if fmt == "JPEG" else {}
    with atomic_path(path) as tmp:
        im.save(tmp, format=fmt, **extra)
    return path
