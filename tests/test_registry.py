import pytest

from edgecnn import registry
from edgecnn.errors import UnknownModelError, UsageError


def test_issue_names_are_registered():
    expected = {"simplecnn", "lenet5", "alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet34",
                "resnet50", "se_resnet18", "mobilenetv1", "mobilenetv2", "mobilenetv3_large", "mobilenetv3_small",
                *(f"efficientnet_b{i}" for i in range(5))}
    assert expected <= set(registry.names())


@pytest.mark.parametrize("typo,suggestion", [("mobilenet2", "mobilenetv2"), ("resnet-18", "resnet18"),
                                             ("EfficientNet_B0", "efficientnet_b0")])
def test_unknown_name_suggests_the_closest(typo, suggestion):
    with pytest.raises(UnknownModelError) as e:
        registry.get_card(typo)
    assert str(e.value) == f"unknown model '{typo}'; did you mean '{suggestion}'?"


def test_unknown_name_without_neighbour_points_to_the_list():
    with pytest.raises(UnknownModelError, match="run 'edgecnn models'"):
        registry.get_card("zzzzzz")


def test_build_rejects_nonpositive_sizes():
    with pytest.raises(UsageError, match="--num-classes must be a positive integer, got 0"):
        registry.build("lenet5", num_classes=0)


def test_card_json_has_input_triplet():
    d = registry.get_card("mobilenetv2").to_dict()
    assert d["input"] == [3, 224, 224] and d["params"] == 3_504_872 and d["torchvision"] == "mobilenet_v2"
