"""Annotated detection images (runtime/draw.py): tags sized to the image, whole inside it, apart from each other;
small images enlarged. Pixel checks on a black canvas; torch-free."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from edgecnn.runtime.draw import class_color, draw_detections, font_size, place_tag

RED = 3  # class_color(3) = (214, 39, 40): dark enough for white text


def _det(box, label="triangle", score=0.87, cls=RED):
    return {"class": cls, "label": label, "score": score, "box": box}


def _white(a: np.ndarray) -> int:
    """Pixels of the tags' white text (black canvas, red tags, red box: nothing else is near white)."""
    return int((a.min(axis=-1) > 200).sum())


def _text_alone(text: str, size: int) -> int:
    """White pixels of ``text`` drawn whole on a red patch of its own: what a fully visible tag shows."""
    im = Image.new("RGB", (40 * size, 4 * size), class_color(RED))
    ImageDraw.Draw(im).text((size, size), text, fill=(255, 255, 255), font=ImageFont.load_default(size=size))
    return _white(np.asarray(im))


@pytest.mark.parametrize("side", [64, 256, 640])
@pytest.mark.parametrize("box", [(0, 0, 0.3, 0.25), (0.7, 0, 1, 0.3), (0, 0.75, 0.3, 1), (0.72, 0.7, 1, 1)],
                         ids=["top-left", "top-right", "bottom-left", "bottom-right"])
def test_tag_is_whole_inside_the_image_at_edges_and_corners(side, box):
    im = Image.new("RGB", (side, side))
    out = np.asarray(draw_detections(im, [_det([v * side for v in box])]))
    assert out.shape == (side, side, 3)
    # every pixel of the text is in the picture: none was cut off at an edge ("circl")
    assert _white(out) == _text_alone("triangle 0.87", font_size(im)) > 0
    # the tag stays by its box (above, inside or below it: within a tag's height), not somewhere else
    rows = np.argwhere((out == class_color(RED)).all(-1))[:, 0]
    y1, y2 = round(box[1] * side), round(box[3] * side)
    tag_h = 1.6 * font_size(im)
    assert rows.min() >= y1 - tag_h and rows.max() <= y2 + tag_h


def test_font_scales_with_the_image_and_stays_a_small_share_of_it():
    sizes = {side: font_size(Image.new("RGB", (side, side))) for side in (64, 256, 640, 1920)}
    assert sizes[640] > sizes[256] and sizes[1920] > sizes[640]
    assert all(s / side <= 0.05 for side, s in sizes.items() if side >= 256)  # not a fifth of the image


def test_tags_of_neighbouring_boxes_do_not_overlap():
    taken = []
    boxes = [(10, 40, 60, 90), (20, 42, 70, 92), (15, 38, 65, 95)]  # three boxes on one spot
    for box in boxes:
        x, y = place_tag(box, 50, 14, (256, 256), taken)
        assert 0 <= x <= 256 - 50 and 0 <= y <= 256 - 14
        assert all(x + 50 <= tx or tx + tw <= x or y + 14 <= ty or ty + th <= y for tx, ty, tw, th in taken)
        taken.append((x, y, 50, 14))
    # drawn: the two tags' text is whole (no tag painted over another's text)
    im = Image.new("RGB", (256, 256))
    dets = [_det([10, 40, 60, 90], "star", 0.9), _det([20, 42, 70, 92], "star", 0.8)]
    out = np.asarray(draw_detections(im, dets))
    assert _white(out) == _text_alone("star 0.90", font_size(im)) + _text_alone("star 0.80", font_size(im))


def test_first_choice_is_above_the_box_and_the_best_score_gets_it():
    im = Image.new("RGB", (256, 256))
    lo, hi = _det([100, 100, 160, 160], "star", 0.3, cls=0), _det([100, 100, 160, 160], "star", 0.9, cls=RED)
    out = np.asarray(draw_detections(im, [lo, hi]))
    above = out[92:100, 101:140]  # the rows just above the box
    assert (above == class_color(RED)).all(-1).mean() > 0.4  # the 0.9 tag sits above, the 0.3 one elsewhere
    assert not (above == class_color(0)).all(-1).any()


def test_small_image_is_drawn_enlarged_with_its_boxes():
    im = Image.new("RGB", (64, 48), (0, 0, 0))
    im.putpixel((10, 10), (0, 255, 0))
    out = draw_detections(im, [_det([8, 8, 40, 40])], min_side=256)
    assert out.size == (384, 288)  # the smallest whole factor (6) that makes the short side >= 256
    a = np.asarray(out)
    assert (a[60:66, 60:66] == (0, 255, 0)).all()  # nearest neighbour: one input pixel -> 6x6
    # box [8, 8, 40, 40] x 6: outline on columns 48 and 239 between rows 48 and 239
    assert (a[100:200, 48] == class_color(RED)).all() and (a[100:200, 239] == class_color(RED)).all()
    assert (a[100:200, 240] == 0).all() and (a[120:200, 100] == 0).all()
    assert draw_detections(im, [], min_side=32).size == (64, 48)  # already large enough: as it was
