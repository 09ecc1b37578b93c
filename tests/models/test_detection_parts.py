"""SSD pieces on hand-made cases: default boxes, the box coder against the host decode, matching, loss."""

import math

import numpy as np
import pytest
import torch

from edgecnn.nn.detection import DefaultBoxes, box_iou, decode, detection_loss, encode, match
from edgecnn.runtime.detect import decode_deltas


def test_default_boxes_by_hand():
    # one 1x1 map of a 100 (h) x 200 (w) image, scales 0.5 and 1: sizes are fractions of w and h
    gen = DefaultBoxes([[2]], scales=[0.5, 1.0])
    a = gen([(1, 1)], (100, 200))
    s2, r = math.sqrt(0.5), math.sqrt(2)
    sizes = [(0.5, 0.5), (s2, s2), (0.5 * r, 0.5 / r), (0.5 / r, 0.5 * r)]
    expected = [[100 - 100 * w, 50 - 50 * h, 100 + 100 * w, 50 + 50 * h] for w, h in sizes]
    np.testing.assert_allclose(a.numpy(), expected, rtol=1e-6)
    assert gen.num_anchors_per_location() == [4]


def test_default_boxes_order_and_clip():
    # 2x2 map: location-major (row by row), the anchors of one location consecutive;
    # scale 0.8 with ratio 2 is 1.13 wide: clipped to the whole image width
    gen = DefaultBoxes([[2]], scales=[0.8, 1.0])
    a = gen([(2, 2)], (10, 10)).view(4, 4, 4)
    centres = ((a[..., :2] + a[..., 2:]) / 2)[:, 0]
    np.testing.assert_allclose(centres.numpy(), [[2.5, 2.5], [7.5, 2.5], [2.5, 7.5], [7.5, 7.5]])
    widths = a[0, :, 2] - a[0, :, 0]
    assert float(widths[2]) == pytest.approx(10.0)  # clamped to 1 x the width
    unclipped = DefaultBoxes([[2]], scales=[0.8, 1.0], clip=False)([(2, 2)], (10, 10))
    assert float(unclipped[2, 2] - unclipped[2, 0]) == pytest.approx(8 * math.sqrt(2), rel=1e-6)


def test_default_scales_are_linear_with_a_final_one():
    gen = DefaultBoxes([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)
    np.testing.assert_allclose(gen.scales, [0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0])
    assert gen.num_anchors_per_location() == [6] * 6


def test_encode_by_hand():
    anchor = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    box = torch.tensor([[5.0, 5.0, 15.0, 25.0]])  # centre (10, 15), size 10 x 20
    # dx = 10 * (10 - 5) / 10, dy = 10 * (15 - 5) / 10, dw = 5 * log(10/10), dh = 5 * log(20/10)
    np.testing.assert_allclose(encode(box, anchor).numpy(), [[5.0, 10.0, 0.0, 5 * math.log(2)]], rtol=1e-6)


def test_coder_round_trip_through_the_host_decode():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 300
    anchors = torch.cat([xy, xy + 5 + torch.rand(200, 2, generator=g) * 100], 1)
    xy = torch.rand(200, 2, generator=g) * 300
    boxes = torch.cat([xy, xy + 1 + torch.rand(200, 2, generator=g) * 150], 1)
    deltas = encode(boxes, anchors)
    host = decode_deltas(deltas.numpy(), anchors.numpy())  # the one decode the device runs
    np.testing.assert_allclose(host, boxes.numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(decode(deltas, anchors).numpy(), host, rtol=1e-6, atol=1e-4)


def test_torch_decode_equals_host_decode_including_the_clamp():
    g = torch.Generator().manual_seed(1)
    anchors = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 50.0, 15.0]])
    deltas = torch.randn(3, 2, 4, generator=g) * 20  # |dw / 5| beyond log(1000/16): clamped on both sides
    np.testing.assert_allclose(decode(deltas, anchors).numpy(), decode_deltas(deltas.numpy(), anchors.numpy()),
                               rtol=1e-6)


def test_match_threshold_and_forced_best_anchor():
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60], [0, 0, 10, 3], [200, 200, 210, 210]])
    gt = torch.tensor([[0.0, 0, 10, 10], [48, 48, 58, 58]])
    # anchor 1: IoU 0.9 with gt 0; anchor 2: IoU 64/136 = 0.47 with gt 1, below 0.5, but it is gt 1's best;
    # anchor 3: IoU 0.3 -> background; anchor 4 overlaps nothing
    assert match(gt, anchors).tolist() == [0, 0, 1, -1, -1]
    assert match(torch.zeros(0, 4), anchors).tolist() == [-1] * 5


def test_box_iou_by_hand():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = torch.tensor([[5.0, 0, 15, 10], [0, 0, 0, 0]])
    np.testing.assert_allclose(box_iou(a, b).numpy(), [[50 / 150, 0], [0, 0]], rtol=1e-6)


def _case(num_anchors=8, classes=3):
    anchors = torch.tensor([[10.0 * i, 0, 10.0 * i + 10, 10] for i in range(num_anchors)])
    deltas = torch.zeros(1, num_anchors, 4)
    logits = torch.zeros(1, num_anchors, classes)
    targets = [{"boxes": anchors[:1].clone(), "labels": torch.tensor([2])}]
    return deltas, logits, anchors, targets


def test_loss_perfect_box_and_three_hardest_negatives():
    deltas, logits, anchors, targets = _case()
    # negatives get distinct background margins: the 3 smallest margins are the hardest
    margins = torch.tensor([0.0, 5.0, 1.0, 4.0, 0.5, 3.0, 2.0, 6.0])
    logits[0, :, 0] = margins
    out = detection_loss(deltas, logits, anchors, targets)
    assert float(out["loc"]) == 0.0  # box equal to its anchor, deltas zero

    def ce(row, label):
        return float(torch.logsumexp(row, 0) - row[label])

    positive = ce(logits[0, 0], 2)
    negatives = sorted((ce(logits[0, i], 0) for i in range(1, 8)), reverse=True)[:3]
    assert float(out["cls"]) == pytest.approx(positive + sum(negatives), rel=1e-6)
    assert float(out["loss"]) == pytest.approx(float(out["loc"] + out["cls"]))


def test_loss_smooth_l1_by_hand_and_normalised_by_positives():
    deltas, logits, anchors, targets = _case()
    deltas[0, 0] = torch.tensor([2.0, 0.5, 0.0, 0.0])  # smooth-L1: 2 - 0.5, then 0.5 * 0.5^2
    out = detection_loss(deltas, logits, anchors, targets)
    assert float(out["loc"]) == pytest.approx(1.5 + 0.125)
    # two images, the same positive in both: the sums double, and so does the divisor
    two = detection_loss(deltas.repeat(2, 1, 1), logits.repeat(2, 1, 1), anchors, targets * 2)
    assert float(two["loss"]) == pytest.approx(float(out["loss"]), rel=1e-6)


def test_loss_of_an_image_without_objects_has_no_negatives_to_mine():
    deltas, logits, anchors, _ = _case()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    out = detection_loss(deltas, logits, anchors, [empty])
    assert float(out["loss"]) == 0.0


def test_giou_loss_is_zero_for_a_perfect_box_and_grows_with_the_error():
    deltas, logits, anchors, targets = _case()
    assert float(detection_loss(deltas, logits, anchors, targets, box_loss="giou")["loc"]) == 0.0
    deltas[0, 0, 0] = 5.0  # half a box width to the right: IoU 1/3, hull = union -> GIoU 1/3
    assert float(detection_loss(deltas, logits, anchors, targets, box_loss="giou")["loc"]) == pytest.approx(2 / 3)


def test_loss_gradients_reach_both_heads():
    deltas, logits, anchors, targets = _case()
    deltas[0, 0, 0] = 2.0
    deltas.requires_grad_(True)
    logits.requires_grad_(True)
    detection_loss(deltas, logits, anchors, targets)["loss"].backward()
    assert deltas.grad[0, 0].abs().sum() > 0 and deltas.grad[0, 1:].abs().sum() == 0  # only positives regress
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("bad, message", [
    ({"labels": torch.tensor([0])}, "labels must be in 1..2"),
    ({"labels": torch.tensor([3])}, "labels must be in 1..2"),
    ({"boxes": torch.tensor([[5.0, 0, 5, 10]])}, "positive width and height"),
])
def test_bad_targets_name_the_problem(bad, message):
    deltas, logits, anchors, targets = _case()
    with pytest.raises(ValueError, match=message):
        detection_loss(deltas, logits, anchors, [{**targets[0], **bad}])
