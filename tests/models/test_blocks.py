import pytest
import torch
from torch import nn

from edgecnn.nn import ConvBNAct, DepthwiseSeparable, InvertedResidual, SqueezeExcite, StochasticDepth, make_divisible
from edgecnn.profile import profile


@pytest.mark.parametrize("v,expected", [(32 * 0.5, 16), (1280 * 1.4, 1792), (24 * 0.35, 8), (3, 8), (91, 88),
                                        (100, 104), (12, 16)])
def test_make_divisible(v, expected):
    assert make_divisible(v) == expected


def test_make_divisible_never_drops_more_than_ten_percent():
    for v in range(8, 2000):
        assert make_divisible(v) >= 0.9 * v and make_divisible(v) % 8 == 0


def test_convbnact_layout_and_same_padding():
    m = ConvBNAct(3, 8, 5, stride=1, act=None)
    assert [type(x) for x in m] == [nn.Conv2d, nn.BatchNorm2d] and m[0].bias is None
    assert m(torch.randn(1, 3, 9, 9)).shape == (1, 8, 9, 9)


@pytest.mark.parametrize("cin,cout,k", [(32, 64, 3), (64, 128, 3), (16, 16, 5)])
def test_depthwise_separable_costs_what_the_paper_says(cin, cout, k):
    block = DepthwiseSeparable(cin, cout, kernel_size=k)
    conv_w = sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))
    assert conv_w == k * k * cin + cin * cout
    prof = profile(nn.Sequential(block), (cin, 8, 8))
    row = next(r for r in prof.rows if r.kind == "block")
    assert row.saving["ratio"] == pytest.approx(1 / cout + 1 / k**2, abs=1e-4)
    assert row.saving["theory"] == pytest.approx(1 / cout + 1 / k**2, abs=1e-4)


def test_inverted_residual_skip_only_when_shapes_allow():
    assert InvertedResidual(16, 16, 1, 96).use_res_connect
    assert not InvertedResidual(16, 24, 1, 96).use_res_connect
    assert not InvertedResidual(16, 16, 2, 96).use_res_connect
    # identity weights on the body -> the skip shows: output = x + body(x)
    block = InvertedResidual(8, 8, 1, 48).eval()
    for p in block.parameters():
        nn.init.zeros_(p)
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(block(x), x)


def test_inverted_residual_linear_bottleneck_has_no_activation_after_projection():
    block = InvertedResidual(8, 16, 2, 48)
    assert not isinstance(list(block.conv)[-1], (nn.ReLU, nn.ReLU6))
    assert block(torch.randn(1, 8, 8, 8)).min() < 0  # a ReLU at the end could not go negative


def test_inverted_residual_rejects_bad_arguments():
    with pytest.raises(ValueError, match="stride must be 1 or 2, got 3"):
        InvertedResidual(8, 8, 3, 48)
    with pytest.raises(ValueError, match="layout must be"):
        InvertedResidual(8, 8, 1, 48, layout="v9")


def test_squeeze_excite_gates_channels():
    se = SqueezeExcite(16, 4)
    x = torch.rand(2, 16, 5, 5)
    y = se(x)
    ratio = y / x
    assert y.shape == x.shape and (ratio > 0).all() and (ratio < 1).all()  # sigmoid gate in (0, 1)
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio))  # one gate per channel


def test_stochastic_depth():
    sd = StochasticDepth(0.5)
    x = torch.ones(1000, 4)
    sd.train()
    y = sd(x)
    kept = (y[:, 0] != 0).float().mean()
    assert 0.4 < kept < 0.6 and set(y.unique().tolist()) <= {0.0, 2.0}
    sd.eval()
    assert torch.equal(sd(x), x)
    with pytest.raises(ValueError):
        StochasticDepth(1.0)
