"""Annotated copies of input images (``infer --save``): Pillow ImageDraw and its default font.

Detection: each box outlined in its class colour on the box's own boundary pixels (a box
``[x1, y1, x2, y2]`` covers pixel columns x1 .. x2-1), with ``label score`` on a filled tag.
Tags are sized to the image (3.5% of its shorter side, as Ultralytics does, at least 10 px) and
kept inside it: each goes to the first free place of above the box, inside its top, below it,
inside its bottom (left-aligned, then right-aligned), shifted inside the image where the box
touches an edge; best scores are placed first and drawn last, so they are on top where tags must
overlap. ``min_side`` draws a small image enlarged first (whole-pixel factor, nearest neighbour:
the pixels stay those the network saw), so that a 64 px image's boxes and tags stay legible.
Classification: the top predictions as ``label score`` lines on a dark tag in the top-left corner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from edgecnn.fileio import atomic_path
from edgecnn.runtime.image import to_mode

# Distinct, saturated colours (Tableau 10); class i gets PALETTE[i % 10].
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))

_PAD = 2  # pixels around a tag's text
FONT_SHARE = 0.035  # font size as a fraction of the image's shorter side
MIN_FONT = 10  # pixels: below this the default font's glyphs blur together
MIN_FONT_FIT = 6  # a tag wider than the image may shrink down to this


def class_color(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def font_size(im: Image.Image) -> int:
    """The tag font size (pixels) for an image: 3.5% of its shorter side, at least ``MIN_FONT``."""
    return max(MIN_FONT, round(FONT_SHARE * min(im.size)))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _line_width(im: Image.Image) -> int:
    return max(1, round(min(im.size) / 128))


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


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    """Overlapping area of two (x, y, w, h) rectangles."""
    dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(dx, 0) * max(dy, 0)


def place_tag(box: tuple[int, int, int, int], w: int, h: int, image_size: tuple[int, int],
              taken: Sequence[tuple[int, int, int, int]]) -> tuple[int, int]:
    """Top-left corner for a ``w`` x ``h`` tag of ``box`` (xyxy): inside the image, on the first free
    place among above / inside top / below / inside bottom (left-, then right-aligned), else where it
    overlaps the ``taken`` tags (x, y, w, h) least."""
    x1, y1, x2, y2 = box
    width, height = image_size

    def inside(x: int, y: int) -> tuple[int, int]:
        return min(max(x, 0), max(width - w, 0)), min(max(y, 0), max(height - h, 0))

    places = [inside(x, y) for y in (y1 - h, y1, y2, y2 - h) for x in (x1, x2 - w)]
    return min(places, key=lambda p: (sum(_overlap((*p, w, h), t) for t in taken), places.index(p)))


def draw_detections(im: Image.Image, records: Sequence[dict], min_side: int = 0) -> Image.Image:
    """An RGB copy of ``im`` with detection records ``{"class", "label", "score", "box"}`` drawn
    (box xyxy in ``im``'s pixels). Boxes first, then the tags (see the module docstring).
    ``min_side``: an image whose shorter side is smaller is enlarged by the smallest whole factor
    that reaches it (boxes scaled alike)."""
    out = to_mode(im, "RGB")
    k = math.ceil(min_side / min(out.size)) if min(out.size) < min_side else 1
    out = out.resize((out.width * k, out.height * k), Image.Resampling.NEAREST) if k > 1 else out.copy()
    draw, width = ImageDraw.Draw(out), _line_width(out)
    shown = []
    for r in sorted(records, key=lambda r: -r["score"]):
        x1, y1, x2, y2 = (round(v * k) for v in r["box"])
        if x2 > x1 and y2 > y1:
            shown.append((r, (x1, y1, x2, y2)))
    texts = [f"{r['label']} {r['score']:.2f}" for r, _ in shown]
    size = font_size(out)
    font = _font(size)
    widest = max((_tag_size(draw, t, font)[0] for t in texts), default=0)
    if widest > out.width and size > MIN_FONT_FIT:  # a long label on a narrow image: shrink to fit
        font = _font(max(MIN_FONT_FIT, size * out.width // widest))
    for r, box in reversed(shown):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=class_color(r["class"]), width=width)
    taken: list[tuple[int, int, int, int]] = []
    for (_r, box), text in zip(shown, texts, strict=True):
        w, h, _ = _tag_size(draw, text, font)
        taken.append((*place_tag(box, w, h, out.size, taken), w, h))
    for (r, _box), text, (x, y, _w, _h) in reversed(list(zip(shown, texts, taken, strict=True))):
        _tag(draw, (x, y), text, class_color(r["class"]), font)  # the best last: on top
    return out


def draw_classification(im: Image.Image, records: Sequence[dict], lines: int = 3) -> Image.Image:
    """An RGB copy of ``im`` with the first ``lines`` records ``{"label", "score"}`` in the corner."""
    out = to_mode(im, "RGB").copy()
    draw, font = ImageDraw.Draw(out), _font(font_size(out))
    text = "\n".join(f"{r['label']} {r['score']:.2f}" for r in records[:lines])
    if text:
        _tag(draw, (0, 0), text, (0, 0, 0), font)
    return out


def annotate(im: Image.Image, task: str, records: Sequence[dict], min_side: int = 0) -> Image.Image:
    """The annotated copy of ``im`` for ``task``; ``min_side`` as in ``draw_detections``."""
    return draw_detections(im, records, min_side) if task == "detect" else draw_classification(im, records)


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
