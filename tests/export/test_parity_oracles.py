"""The parity gate must SEE a bad file: ONNX files that really differ from their model, made the way
export bugs happen, are rejected through the library (``parity.check``) and through ``edgecnn export``
(exit 1, nothing written, the message naming what differed). Each case has a control: the same model's
clean file passes, so a rejection is never vacuous.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from onnxruntime.transformers.float16 import convert_float_to_float16
from torch import nn

from edgecnn.export import exporter, parity
from edgecnn.export.exporter import ExportOptions
from tests.export import corrupt

K = 5  # classes of every model here


def _tiny() -> nn.Module:
    """Conv-BN-ReLU x2 -> global pool -> linear, with trained-looking BN statistics (small running
    variances, so the BN epsilon matters as it does in a real network)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, K))
    with torch.no_grad():
        for bn in (m[1], m[4]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.002, 0.02)
            bn.weight.uniform_(0.5, 1.5)
    return m.eval()


def _overflowing(m: nn.Module) -> nn.Module:
    """Activations ~1e5-1e6 inside (both BN affines x300), logits of ordinary size (the head / 9e4):
    fine in float32, beyond float16's 65504."""
    m = copy.deepcopy(m)
    with torch.no_grad():
        for bn in (m[1], m[4]):
            bn.weight.mul_(300)
            bn.bias.mul_(300)
        m[8].weight.div_(9e4)
    return m


def _near_tie(m: nn.Module) -> nn.Module:
    """Logits ~[1, 0.999, 0, 0, 0] on every input: a real (not tied) gap of 1e-3 between two classes."""
    m = copy.deepcopy(m)
    with torch.no_grad():
        m[8].weight.mul_(1e-5)
        m[8].bias.copy_(torch.tensor([1.0, 0.999, 0.0, 0.0, 0.0]))
    return m


def _with_bn_eps(m: nn.Module, eps: float) -> nn.Module:
    m = copy.deepcopy(m)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eps = eps
    return m


def _onnx(m: nn.Module, *, batch="dynamic", dynamic_size=True) -> bytes:
    """The model as ONNX, exported directly with torch.onnx (not through edgecnn's exporter)."""
    opts = ExportOptions(model="tiny", batch=batch, dynamic_size=dynamic_size)
    return exporter._to_onnx(m, torch.randn(1 if batch == "dynamic" else batch, 3, 32, 32), opts)  # noqa: SLF001


def _fp16(data: bytes) -> bytes:
    return convert_float_to_float16(onnx.load_from_string(data), keep_io_types=True).SerializeToString()


CASES = [(1, 32, 32), (2, 32, 32), (5, 32, 32)]
SIZES = [(1, 32, 32), (2, 24, 40)]


@pytest.fixture(scope="module")
def tiny():
    m = _tiny()
    return m, _onnx(m)


def _check(model, data, precision="fp32", cases=CASES):
    return parity.check(model, data, 3, cases, precision, seed=1)


def test_clean_files_pass(tiny):
    m, data = tiny
    report = _check(m, data, cases=CASES + SIZES)
    assert report.passed and report.failure == ""
    assert report.precision == "fp32" and report.tolerance == parity.TOLERANCES["fp32"]
    assert [(b.batch, b.height, b.width) for b in report.batches] == CASES + SIZES
    assert _check(m, data, cases=CASES + SIZES) == report  # the seed fixes the inputs: same report
    assert _check(m, _fp16(data), "fp16").passed
    over, near = _overflowing(m), _near_tie(m)
    assert _check(over, _onnx(over)).passed  # float32 copes with 1e5 activations
    assert _check(near, _onnx(near)).passed


def _fails(report, *needles):
    assert not report.passed, report
    for n in needles:
        assert n in report.failure, report.failure
    return report.failure


def test_initializer_nudged_after_export(tiny):
    m, data = tiny
    _fails(_check(m, corrupt.nudge_initializer(data, 1e-2)), "fp32 batch 1 at 32x32", "max-abs")


def test_two_output_channels_swapped(tiny):
    m, data = tiny
    _fails(_check(m, corrupt.swap_output_channels(data)), "max-abs", "cosine")


def test_batchnorm_folded_with_the_wrong_epsilon(tiny):
    m, _ = tiny
    wrong = _onnx(_with_bn_eps(m, 1e-3))  # eps 1e-3 (Keras' default) folded where the model says 1e-5
    _fails(_check(m, wrong), "max-abs")


def test_fp16_activations_overflow(tiny):
    """onnxruntime's CPU computes a float16 file in float32, so the outputs agree here; the gate still
    fails it, from the activation range PyTorch saw (BN 4 reaches ~1e7)."""
    m, _ = tiny
    over = _overflowing(m)
    _fails(_check(over, _fp16(_onnx(over)), "fp16"), "fp16: activations reach 1.", "at '4', beyond float16's 65504")


def test_batch_specialised_graph_is_refused_at_another_batch(tiny):
    m, _ = tiny
    msg = _fails(_check(m, _onnx(m, batch=1)), "batch 2 at 32x32: onnxruntime failed (")
    assert "\n" not in msg


def test_size_specialised_graph_is_refused_at_another_size(tiny):
    m, _ = tiny
    _fails(_check(m, _onnx(m, dynamic_size=False), cases=CASES + SIZES), "batch 2 at 24x40: onnxruntime failed")


def test_output_shape_mismatch(tiny):
    m, data = tiny
    _fails(_check(m, corrupt.drop_last_class(data)), "batch 1: output shape [1, 4] != [1, 5]")


def test_top1_flip_with_a_small_error(tiny):
    """A 2e-3 error (0.2% of the logit scale, cosine still 0.9999995) that turns class 0 into class 1
    on every input: the gate names the top-1 flip, not only the size of the error."""
    near = _near_tie(tiny[0])
    report = _check(near, corrupt.add_to_class(_onnx(near), 1, 2e-3))
    msg = _fails(report, "top-1 agreement 0.0% < 100%")
    assert "cosine" not in msg  # the outputs are still almost parallel


def test_a_tie_is_not_a_flip(tiny):
    """The same corruption at 1e-4 of the scale flips between logits 1e-3 apart only if it exceeds the
    gap; at 5e-5 nothing flips and the gate passes."""
    near = _near_tie(tiny[0])
    assert _check(near, corrupt.add_to_class(_onnx(near), 1, 5e-5)).passed


# ---- the same bugs through `edgecnn export`: exit 1, one line naming what differed, nothing written ----


def _state_dict(tmp_path, scale_features: float = 1.0, near_tie: bool = False):
    """simplecnn weights (K classes) as a plain state dict; optionally with
    activations scaled by ``scale_features`` per conv (the logits unchanged) or near-tied logits."""
    from edgecnn import registry

    torch.manual_seed(0)
    m = registry.build("simplecnn", num_classes=K)
    sd = m.state_dict()
    with torch.no_grad():
        sd["features.0.weight"] *= scale_features
        sd["features.3.weight"] *= scale_features
        sd["classifier.1.weight"] /= scale_features  # biases are zero: ReLU/max-pool are homogeneous
        sd["classifier.3.weight"] /= scale_features
        if near_tie:
            sd["classifier.3.weight"] *= 1e-5
            sd["classifier.3.bias"].copy_(torch.tensor([1.0, 0.999, 0.0, 0.0, 0.0]))
    path = tmp_path / "w.pth"
    torch.save(sd, path)
    return str(path)


def _patch(monkeypatch, *, after=None, model=None, opts=None):
    orig = exporter._to_onnx

    def bad(m, x, o, *rest):
        data = orig(model(m) if model else m, x, opts(o) if opts else o, *rest)
        return after(data) if after else data

    monkeypatch.setattr(exporter, "_to_onnx", bad)


@pytest.mark.parametrize("case", ["nudged", "swapped", "bn_eps", "fp16_overflow", "batch_specialised",
                                  "size_specialised", "output_shape", "top1_flip"])
def test_cli_refuses_and_writes_nothing(case, cli, tmp_path, monkeypatch):
    from dataclasses import replace

    out = tmp_path / "out" / "m.onnx"
    args = ["simplecnn", "--num-classes", str(K)]
    expect = "max-abs"
    if case == "nudged":
        _patch(monkeypatch, after=corrupt.nudge_initializer)
    elif case == "swapped":
        _patch(monkeypatch, after=corrupt.swap_output_channels)
        expect = "cosine"
    elif case == "bn_eps":
        args = ["resnet18", "--num-classes", str(K), "--input-size", "32"]
        _patch(monkeypatch, model=lambda m: _with_bn_eps(m, 1e-3))
    elif case == "fp16_overflow":
        args += ["--weights", _state_dict(tmp_path, scale_features=300.0), "--precision", "fp16"]
        expect = "fp16: activations reach"
    elif case == "batch_specialised":
        _patch(monkeypatch, opts=lambda o: replace(o, batch=1))
        expect = "batch 2 at 28x28: onnxruntime failed"
    elif case == "size_specialised":
        args = ["resnet18", "--num-classes", str(K), "--input-size", "32", "--dynamic-size"]
        _patch(monkeypatch, opts=lambda o: replace(o, dynamic_size=False))
        expect = "batch 5 at 32x64: onnxruntime failed"  # the non-square case
    elif case == "output_shape":
        _patch(monkeypatch, after=corrupt.drop_last_class)
        expect = "output shape [1, 4] != [1, 5]"
    elif case == "top1_flip":
        args += ["--weights", _state_dict(tmp_path, near_tie=True)]
        _patch(monkeypatch, after=lambda d: corrupt.add_to_class(d, 1, 2e-3))
        expect = "top-1 agreement 0.0% < 100%"
    r = cli("export", *args, "--out", str(out))
    assert r.exit_code == 1, r.stdout
    lines = r.stderr.splitlines()
    assert lines[-1].startswith("Error: parity gate failed, no file written: ") and expect in lines[-1], r.stderr
    assert all(line.startswith("Warning: ") for line in lines[:-1]), r.stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert "wrote" not in r.stdout


def test_cli_control_the_same_weights_pass(cli, tmp_path):
    """Without the corruption, the models of the cases above export."""
    for extra in (["--weights", _state_dict(tmp_path, scale_features=300.0)],
                  ["--weights", _state_dict(tmp_path), "--precision", "fp16"],
                  ["--weights", _state_dict(tmp_path, near_tie=True)]):
        r = cli("export", "simplecnn", "--num-classes", str(K), *extra, "--out", str(tmp_path / "ok.onnx"))
        assert r.exit_code == 0, r.stderr


def test_small_logits_are_judged_relative_to_their_own_scale(tiny):
    """Logits ~1e-4 (a head scaled down): an error of 1e-6 is 1% of them and must fail, though it is
    tiny in absolute terms."""
    small = copy.deepcopy(tiny[0])
    with torch.no_grad():
        small[8].weight.mul_(1e-4)
        small[8].bias.mul_(1e-4)
    data = _onnx(small)
    assert _check(small, data).passed
    _fails(_check(small, corrupt.add_to_class(data, 0, 1e-6)), "max-abs 1e-06 is")


# ---- parity.compare on numbers worked out by hand (the mutants of compare that survived a first run) -------


def test_compare_metrics_by_hand():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 0.1]])
    got = np.array([[1.0, 0.0], [1.0, 1.0], [0.1, 0.0]])
    b = parity.compare(ref, got, 3)  # the default tie_rel is the fp32 tolerance, 1e-4
    assert b.max_abs == 1.0 and b.rel == 1.0  # scale max|ref| = 1
    # per-sample cosines 1, 1/sqrt(2), 0.01 / (0.1 * 0.1 * sqrt(2)) = 1/sqrt(2): the worst is reported
    assert b.cosine == pytest.approx(1 / np.sqrt(2))
    # sample 1 flips 1 -> 0 (the reference gap 1 is no tie); sample 2 keeps class 0 (argmax of a tie is 0)
    assert (b.ties, b.top1) == (0, pytest.approx(2 / 3))


def test_compare_small_and_zero_outputs():
    b = parity.compare(np.array([[0.1, 0.0]]), np.array([[0.0, 0.1]]), 1)
    assert b.cosine == 0.0 and b.rel == 1.0  # small vectors are not "parallel" for being small
    b = parity.compare(np.zeros((2, 3)), np.zeros((2, 3)), 2)
    assert (b.max_abs, b.cosine, b.top1, b.ties) == (0.0, 1.0, 1.0, 0)  # all zero agrees with all zero


def test_compare_tie_threshold_is_twice_the_tolerance_of_the_scale():
    # scale 10: flips between logits less than 2 * 1e-4 * 10 = 2e-3 apart are ties
    ref = np.array([[10.0, 10.0 - 1.5e-3, 0.0]])
    got = np.array([[10.0, 10.0 + 1e-4, 0.0]])
    assert parity.compare(ref, got, 1, tie_rel=1e-4).ties == 1
    # scale 1: a gap of 2.5e-4 is more than 2 * 1e-4: a real flip, counted against top-1
    ref = np.array([[1.0, 1.0 - 2.5e-4], [1.0, 0.0]])
    got = np.array([[1.0, 1.0 + 1e-5], [1.0, 0.0]])
    b = parity.compare(ref, got, 2, tie_rel=1e-4)
    assert (b.ties, b.top1) == (0, 0.5)
