"""SSD300 on VGG-16 (Liu et al. 2016), torchvision's ``ssd300_vgg16`` layout (same state-dict keys, loads with
``strict=True``), the classic single-shot detector of the VGG family. The interface is the one every detector
here keeps (``edgecnn.models.ssdlite``'s docstring): ``model(x) -> boxes, scores``, ``model.raw``, anchors.

Structure (torchvision's ``SSDFeatureExtractorVGG``): VGG-16's ``features`` up to conv4_3 (pool3 with
``ceil_mode``, so 300 px gives a 38x38 map), whose output is L2-normalised per location and scaled by a learnt
per-channel weight (``backbone.scale_weight``, 20 at init); then ``extra.0`` = pool4, conv5_1-5_3, a 3x3
stride-1 pool5 and the dilated fc6 (3x3, dilation 6) and 1x1 fc7 (19x19); then conv8_2 .. conv11_2 (10, 5, 3,
1). Heads: one 3x3 conv per map for the classes and one for the boxes. 8,732 default boxes at 300 px: aspect
ratios [2], [2, 3], [2, 3], [2, 3], [2], [2], scales 0.07 .. 1.05, centres every 8, 16, 32, 64, 100, 300
pixels (scaled with the input). The transform is torchvision's: stretch to 300x300, then ``x * 255 - mean``
with the Caffe VGG mean (0.48235, 0.45882, 0.40784) x 255 (``std`` 1/255 on the 0-1 scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.contract import Detection, Preprocess
from edgecnn.models.ssdlite import SingleShot, _Heads
from edgecnn.models.vgg import CFGS, make_layers
from edgecnn.nn.detection import DefaultBoxes

ASPECT_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
SCALES = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]
STEPS = [8, 16, 32, 64, 100, 300]  # pixels at 300 px
MEAN = (0.48235, 0.45882, 0.40784)
STD = (1.0 / 255.0,) * 3


def _conv_relu(cin: int, cout: int, kernel: int, **kw) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=kernel, **kw), nn.ReLU(inplace=True)]


def _xavier_init(module: nn.Module) -> None:
    """torchvision's SSD initialisation of the added layers and heads: Xavier uniform, zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SSDVGGExtractor(nn.Module):
    """torchvision's ``SSDFeatureExtractorVGG`` (SSD300): ``features`` (to conv4_3), ``scale_weight``, ``extra``."""

    def __init__(self, vgg_features: nn.Sequential):
        super().__init__()
        pools = [i for i, m in enumerate(vgg_features) if isinstance(m, nn.MaxPool2d)]
        vgg_features[pools[2]].ceil_mode = True  # pool3: 75 -> 38 at 300 px, as the paper
        self.scale_weight = nn.Parameter(torch.ones(512) * 20)  # L2Norm of conv4_3 (Liu et al. 2016, sec 3.1)
        self.features = nn.Sequential(*vgg_features[:pools[3]])
        fc = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1),  # pool5, stride 1
                           *_conv_relu(512, 1024, 3, padding=6, dilation=6),  # fc6, atrous
                           *_conv_relu(1024, 1024, 1))  # fc7
        _xavier_init(fc)
        extra = nn.ModuleList([
            nn.Sequential(*_conv_relu(1024, 256, 1), *_conv_relu(256, 512, 3, padding=1, stride=2)),  # conv8_2
            nn.Sequential(*_conv_relu(512, 128, 1), *_conv_relu(128, 256, 3, padding=1, stride=2)),  # conv9_2
            nn.Sequential(*_conv_relu(256, 128, 1), *_conv_relu(128, 256, 3)),  # conv10_2
            nn.Sequential(*_conv_relu(256, 128, 1), *_conv_relu(128, 256, 3)),  # conv11_2
        ])
        _xavier_init(extra)
        extra.insert(0, nn.Sequential(*vgg_features[pools[3]:-1], fc))  # pool4, conv5_x (no pool5), fc6, fc7
        self.extra = extra
        self.out_channels = [512, 1024, 512, 256, 256, 256]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.features(x)
        maps = [self.scale_weight.view(1, -1, 1, 1) * F.normalize(x)]
        for block in self.extra:
            x = block(x)
            maps.append(x)
        return maps


class SSD(SingleShot):
    def __init__(self, num_classes: int, in_channels: int, input_size: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")
        vgg = make_layers(CFGS["D"], in_channels, batch_norm=False)
        self.backbone = SSDVGGExtractor(vgg)
        self.box_generator = DefaultBoxes(ASPECT_RATIOS, scales=SCALES, steps=STEPS, step_size=300)
        self.head = _Heads(self.backbone.out_channels, self.box_generator.num_anchors_per_location(), num_classes,
                           {}, block=lambda cin, cout: nn.Conv2d(cin, cout, kernel_size=3, padding=1))
        _xavier_init(self.head)
        self.num_classes, self.input_size, self.width_mult = num_classes, input_size, 1.0
        gray = in_channels == 1
        self.preprocess = Preprocess(input_size, input_size, in_channels, "L" if gray else "RGB", resize="stretch",
                                     mean=MEAN[:1] if gray else MEAN, std=STD[:1] if gray else STD)
        # torchvision's post-processing: 400 candidates per class, IoU 0.45, 200 detections; its score > 0.01
        # is a mAP setting (eval uses 0.001): the contract's conf is infer's display threshold
        self.detection = Detection(nms="host", box_format="xyxy", conf=0.25, iou=0.45, max_det=200,
                                   background_class=True, candidates_per_class=400)
        self._grids: dict[tuple[int, int], list[tuple[int, int]]] = {}
        grid = self._grid(input_size, input_size)
        if min(min(g) for g in grid) < 1:
            raise ValueError(f"ssd300_vgg16 needs an input of at least 268 px (its last maps shrink by 2 "
                             f"without padding), got {input_size}")
        self.register_buffer("anchors", self.anchors_for(torch.zeros(1, in_channels, input_size, input_size)),
                             persistent=False)

    def head_keys(self) -> list[str]:
        """State-dict keys that depend on num_classes (what ``--replace-head`` may re-initialise)."""
        return [f"head.classification_head.module_list.{i}.{p}"
                for i in range(len(self.head.classification_head.module_list)) for p in ("weight", "bias")]

    def _grid(self, h: int, w: int) -> list[tuple[int, int]]:
        """Feature-map sizes at h x w: pools 1, 2, 4 floor-halve, pool3 ceil-halves, conv8/9_2 (stride 2,
        padding 1) ceil-halve, conv10/11_2 (3x3, no padding) take 2."""
        if (h, w) not in self._grids:
            def sizes(n: int) -> list[int]:
                c43 = -(-(n // 2 // 2) // 2)  # conv4_3
                fc7 = c43 // 2
                c8 = (fc7 + 1) // 2
                c9 = (c8 + 1) // 2
                return [c43, fc7, c8, c9, c9 - 2, c9 - 4]

            self._grids[(h, w)] = list(zip(sizes(h), sizes(w), strict=True))
        return self._grids[(h, w)]


def ssd300_vgg16(num_classes: int = 91, in_channels: int = 3, input_size: int = 300, **_) -> SSD:
    """torchvision's ``ssd300_vgg16`` (same state-dict keys, loads with ``strict=True``)."""
    return SSD(num_classes, in_channels, input_size)
