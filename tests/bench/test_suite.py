"""``--suite``: named lists of zoo models, expanded without torch."""

from __future__ import annotations

import pytest

from edgecnn import registry
from edgecnn.bench import suite
from edgecnn.errors import UsageError
from tests.conftest import run_python


def test_zoo_is_every_classifier_and_no_detector():
    zoo = suite.expand("zoo")
    assert set(zoo) == {n for n in registry.names() if registry.get_card(n).task == "classify"}
    assert "mobilenetv2" in zoo and "ssdlite_mobilenetv2" not in zoo
    assert set(suite.expand("detectors")) == {n for n in registry.names() if registry.get_card(n).task == "detect"}


def test_faq_models_have_the_faq_parameter_counts():
    # the CNN FAQ's table: ResNet-18 ~11M, ResNet-50 ~25M, MobileNetV2 ~3.4M, EfficientNet-B4 ~19M
    faq = {"resnet18": 11e6, "resnet50": 25e6, "mobilenetv2": 3.4e6, "efficientnet_b4": 19e6}
    assert suite.expand("faq") == list(faq)
    for name, params in faq.items():
        assert abs(registry.get_card(name).params - params) / params < 0.1  # "~" in the FAQ: within 10%


def test_unknown_suite():
    with pytest.raises(UsageError, match="unknown --suite 'all'; choose one of: zoo, detectors, faq"):
        suite.expand("all")


def test_expands_without_torch():
    out = run_python("from edgecnn.bench import suite; print(len(suite.expand('zoo')))", block_torch=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(suite.expand("zoo"))


def test_cli_unknown_suite_is_a_usage_error(cli, tmp_path):
    res = cli("bench", "--suite", "everything", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2 and "unknown --suite 'everything'" in res.output
    assert not (tmp_path / "o").exists()
