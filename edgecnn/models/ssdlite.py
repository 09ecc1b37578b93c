"""SSDLite detectors: MobileNetV2 (Sandler et al. 2018, sec 6.2) and MobileNetV3-Large (Howard et al.
2019, sec 6.3, torchvision's ``ssdlite320_mobilenet_v3_large`` layout).

The interface every detector here keeps (training, export and eval build on it):

    boxes, scores = model(x)     # any mode. x (N, 3, H, W) -> boxes (N, A, 4) xyxy in input pixels,
                                 # decoded against the anchors in the graph and clipped to the input;
                                 # scores (N, A, C) softmax probabilities, column 0 = background
                                 # (num_classes counts it, torchvision's convention)
    deltas, logits = model.raw(x)  # (N, A, 4) box-coder regressions, (N, A, C) logits: for the loss
    model.anchors                # (A, 4) xyxy input pixels at the build input size (not in the state dict)
    edgecnn.nn.detection.detection_loss(deltas, logits, model.anchors_for(x), targets)
                                 # -> {"loss", "loc", "cls"}; targets: [{"boxes": (M, 4) xyxy pixels,
                                 #    "labels": (M,) int64 in 1..C-1}, ...]
    model.preprocess, model.detection   # the contract defaults (edgecnn.contract.Preprocess, Detection)

These outputs are what ``edgecnn.runtime.detect.postprocess`` reads with ``Detection(nms="host",
box_format="xyxy", background_class=True)``.

Both detectors share one structure (torchvision's): the backbone's ``features`` split in two at the
first stride-32 block, right after its 1x1 expansion (output stride 16, the wide expanded features),
then four extra layers (1x1 -> 3x3 depthwise stride 2 -> 1x1) down to 1x1, and on each of the six
maps a classification and a regression head that are 3x3 depthwise + BN + ReLU6 then a 1x1 conv:
every regular 3x3 convolution of SSD made depthwise-separable, which is what makes it "Lite".
"""

from __future__ import annotations

import torch
from torch import nn

from edgecnn.contract import IMAGENET_MEAN, IMAGENET_STD, Detection, Preprocess
from edgecnn.models.mobilenet import MobileNetV2
from edgecnn.models.mobilenetv3 import HS, LARGE, MobileNetV3
from edgecnn.nn import ConvBNAct, InvertedResidual
from edgecnn.nn.detection import DefaultBoxes, decode

# Anchors of torchvision's SSDLite (and the MobileNetV2 paper's six maps): scales 0.2 .. 0.95,
# aspect ratios 1, 1', 2, 1/2, 3, 1/3 on every map. ``anchor_scales`` (7 values: one per map and the last
# map's upper neighbour) replaces the scales; ``train --anchors auto`` fits them to the training boxes.
ASPECT_RATIOS = [[2, 3]] * 6
# MobileNetV3-Large with torchvision's "reduced tail" (the last stage at half width), as in the
# COCO checkpoint: in, kernel, expanded, out, se, act, stride.
LARGE_REDUCED_TAIL = LARGE[:12] + [
    (112, 5, 672, 80, True, HS, 2),
    (80, 5, 480, 80, True, HS, 1),
    (80, 5, 480, 80, True, HS, 1),
]


def torchvision_coco_labels() -> list[str]:
    """The 91 labels of torchvision's COCO detection weights (``__background__``, ``person``, ...; ``N/A`` for
    the category ids COCO left unused), from ``edgecnn/data/coco91_classes.txt``."""
    from importlib import resources

    text = resources.files("edgecnn").joinpath("data/coco91_classes.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


def _extra_block(cin: int, cout: int, bn: dict) -> nn.Sequential:
    mid = cout // 2
    return nn.Sequential(
        ConvBNAct(cin, mid, 1, act=nn.ReLU6, **bn),
        ConvBNAct(mid, mid, 3, stride=2, groups=mid, act=nn.ReLU6, **bn),
        ConvBNAct(mid, cout, 1, act=nn.ReLU6, **bn),
    )


def _prediction_block(cin: int, cout: int, bn: dict) -> nn.Sequential:
    return nn.Sequential(ConvBNAct(cin, cin, 3, groups=cin, act=nn.ReLU6, **bn), nn.Conv2d(cin, cout, 1))


class SSDLiteExtractor(nn.Module):
    """Backbone features split at block ``c4`` after its expansion conv, plus the extra layers.
    Names are torchvision's ``SSDLiteFeatureExtractorMobileNet``: ``features.0/1``, ``extra.0-3``."""

    def __init__(self, features: nn.Sequential, c4: int, width_mult: float, bn: dict, min_depth: int = 16):
        super().__init__()
        body = getattr(features[c4], features[c4]._body)  # InvertedResidual: "conv" (v2) or "block" (v3)
        self.features = nn.Sequential(
            nn.Sequential(*features[:c4], body[0]),  # up to the C4 expansion: output stride 16
            nn.Sequential(body[1:], *features[c4 + 1:]),  # C4 depthwise to the last conv: output stride 32
        )
        last = features[-1].out_channels
        depth = [max(min_depth, int(d * width_mult)) for d in (512, 256, 256, 128)]
        ins = [last] + depth[:-1]
        self.extra = nn.ModuleList([_extra_block(cin, cout, bn) for cin, cout in zip(ins, depth, strict=True)])
        self.out_channels = [body[0].out_channels, last] + depth

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for block in [*self.features, *self.extra]:
            x = block(x)
            maps.append(x)
        return maps


class SSDLiteHead(nn.Module):
    """One module list per output (torchvision's ``classification_head.module_list`` /
    ``regression_head.module_list``); the flattening order is per map, (H, W, anchor)."""

    def __init__(self, channels: list[int], anchors: list[int], width: int, bn: dict, block=None):
        super().__init__()
        self.width = width
        pairs = zip(channels, anchors, strict=True)
        make = block or (lambda cin, cout: _prediction_block(cin, cout, bn))  # SSD's: a plain 3x3 conv
        self.module_list = nn.ModuleList([make(c, a * width) for c, a in pairs])

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        out = []
        for m, block in zip(maps, self.module_list, strict=True):
            y = block(m)
            n, _, h, w = y.shape
            out.append(y.view(n, -1, self.width, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, self.width))
        return torch.cat(out, dim=1)


class _Heads(nn.Module):
    def __init__(self, channels: list[int], anchors: list[int], num_classes: int, bn: dict, block=None):
        super().__init__()
        self.classification_head = SSDLiteHead(channels, anchors, num_classes, bn, block)
        self.regression_head = SSDLiteHead(channels, anchors, 4, bn, block)


def _normal_init(module: nn.Module) -> None:
    """torchvision's SSDLite initialisation of the extra layers and heads: N(0, 0.03), zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, mean=0.0, std=0.03)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SingleShot(nn.Module):
    """What every single-shot detector here shares (the interface in the module docstring): ``backbone``
    (input -> feature maps), ``head`` (``classification_head``, ``regression_head``), ``box_generator``,
    ``input_size``; a subclass gives the feature-map sizes at an input (``_grid``)."""

    def _grid(self, h: int, w: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def anchors_for(self, x: torch.Tensor) -> torch.Tensor:
        """(A, 4) xyxy anchors for the input size of ``x`` (N, C, H, W)."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if getattr(self, "anchors", None) is not None and (h, w) == (self.input_size, self.input_size):
            return self.anchors
        return self.box_generator(self._grid(h, w), (h, w)).to(x.device)

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) -> (deltas (N, A, 4), logits (N, A, num_classes))."""
        maps = self.backbone(x)
        return self.head.regression_head(maps), self.head.classification_head(maps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        deltas, logits = self.raw(x)
        boxes = decode(deltas, self.anchors_for(x))
        # clipped to the input before NMS, as torchvision's clip_boxes_to_image
        bx = boxes[..., 0::2].clamp(min=0, max=int(x.shape[-1]))
        by = boxes[..., 1::2].clamp(min=0, max=int(x.shape[-2]))
        return torch.stack((bx, by), dim=-1).reshape(boxes.shape), torch.softmax(logits, dim=-1)


class SSDLite(SingleShot):
    def __init__(self, features: nn.Sequential, c4: int, num_classes: int, input_size: int, width_mult: float,
                 bn: dict, preprocess: Preprocess, detection: Detection, anchor_scales=None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")
        classifier_names = {id(t): f"features.{k}" for k, t in features.state_dict(keep_vars=True).items()}
        self.backbone = SSDLiteExtractor(features, c4, width_mult, bn)
        # the classifier's "features.*" state-dict keys -> ours (the same tensors, re-split at c4)
        self.backbone_keys = {classifier_names[id(t)]: f"backbone.{k}"
                              for k, t in self.backbone.state_dict(keep_vars=True).items() if id(t) in classifier_names}
        self.head = _Heads(self.backbone.out_channels, [2 + 2 * len(r) for r in ASPECT_RATIOS],
                           num_classes, bn)
        _normal_init(self.backbone.extra)
        _normal_init(self.head)
        self.num_classes, self.input_size, self.width_mult = num_classes, input_size, width_mult
        self.preprocess, self.detection = preprocess, detection
        self._grids: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.register_buffer("anchors", None, persistent=False)
        self.set_anchor_scales(anchor_scales)

    def set_anchor_scales(self, scales=None) -> None:
        """Re-make the anchors with ``scales`` (one per feature map + the last one's upper neighbour, fractions
        of the input side; None: torchvision's 0.2 .. 0.95, 1). Only the anchors change, not the weights: the
        number of anchors per location stays, so a state dict loads either way. ``anchor_scales`` is None
        for the defaults (what a checkpoint stores and ``build_model`` passes back)."""
        self.anchor_scales = None if scales is None else [round(float(s), 6) for s in scales]
        if self.anchor_scales is not None and not all(0 < s <= 1 for s in self.anchor_scales):
            raise ValueError(f"anchor scales are fractions of the input side in (0, 1], got {self.anchor_scales}")
        self.box_generator = DefaultBoxes(ASPECT_RATIOS, scales=self.anchor_scales)
        self.anchors = None
        x = torch.zeros(1, 1, self.input_size, self.input_size)
        self.anchors = self.anchors_for(x).to(next(self.parameters()).device)

    def load_backbone(self, classifier_state: dict[str, torch.Tensor]) -> int:
        """Initialise the backbone from a classifier's state dict of the same family and width (a
        torchvision or edgecnn ``mobilenet_v2`` checkpoint): its ``features.*`` tensors, re-split; the
        classifier head is ignored. (ssdlite320_mobilenetv3_large keeps torchvision's reduced tail, which no
        published classifier has.) Returns the number of tensors loaded; raises ValueError naming the
        first missing or mis-shaped key."""
        own = self.state_dict()
        for src, dst in self.backbone_keys.items():
            if src not in classifier_state:
                raise ValueError(f"the classifier weights have no '{src}' (not this backbone's family or width?)")
            if classifier_state[src].shape != own[dst].shape:
                raise ValueError(f"'{src}' is {list(classifier_state[src].shape)} in the classifier weights but "
                                 f"{list(own[dst].shape)} in this backbone (another width multiplier?)")
        self.load_state_dict({**own, **{d: classifier_state[s] for s, d in self.backbone_keys.items()}})
        return len(self.backbone_keys)

    def head_keys(self) -> list[str]:
        """State-dict keys that depend on num_classes (what ``--replace-head`` may re-initialise)."""
        return [f"head.classification_head.module_list.{i}.1.{p}"
                for i in range(len(self.head.classification_head.module_list)) for p in ("weight", "bias")]

    def _grid(self, h: int, w: int) -> list[tuple[int, int]]:
        """Feature-map sizes at an input of h x w (stride-2 convs with padding 1: ceil halving)."""
        if (h, w) not in self._grids:
            sizes, fh, fw = [], h, w
            for stride in (16, 2, 2, 2, 2, 2):
                for _ in range(stride.bit_length() - 1):
                    fh, fw = (fh + 1) // 2, (fw + 1) // 2
                sizes.append((fh, fw))
            self._grids[(h, w)] = sizes
        return self._grids[(h, w)]


def _last_strided(features: nn.Sequential) -> int:
    """Index of the last block that halves the resolution: where output stride 32 begins."""
    return [i for i, b in enumerate(features) if isinstance(b, InvertedResidual)
            and any(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in b.modules())][-1]


def _preprocess(size: int, channels: int, resize: str, mean: tuple, std: tuple) -> Preprocess:
    if channels == 1:
        return Preprocess(size, size, 1, "L", resize=resize, mean=(0.5,), std=(0.5,))
    return Preprocess(size, size, channels, resize=resize, mean=mean, std=std)


def ssdlite_mobilenetv2(num_classes: int = 91, in_channels: int = 3, input_size: int = 320,
                        width_mult: float = 1.0, anchor_scales=None, **_) -> SSDLite:
    """SSDLite on MobileNetV2 (Sandler et al. 2018, sec 6.2): the first map is the expansion of the first
    stride-32 block (576 channels at width 1.0), the second the last 1x1 conv (1280); letterboxed input
    with ImageNet normalisation, so a torchvision ``mobilenet_v2`` checkpoint initialises the backbone
    (``backbone.features`` holds its ``features``, re-split)."""
    net = MobileNetV2(in_channels=in_channels, width_mult=width_mult)
    pre = _preprocess(input_size, in_channels, "letterbox", IMAGENET_MEAN, IMAGENET_STD)
    det = Detection(nms="host", box_format="xyxy", conf=0.25, iou=0.45, max_det=100, background_class=True)
    return SSDLite(net.features, _last_strided(net.features), num_classes, input_size, width_mult, {}, pre, det,
                   anchor_scales)


def ssdlite320_mobilenetv3_large(num_classes: int = 91, in_channels: int = 3, input_size: int = 320,
                                 width_mult: float = 1.0, anchor_scales=None, **_) -> SSDLite:
    """torchvision's ``ssdlite320_mobilenet_v3_large`` (same state-dict keys, loads with ``strict=True``):
    reduced-tail MobileNetV3-Large, BN eps 0.001, input stretched to 320x320 with mean/std 0.5,
    torchvision's post-processing (IoU 0.55, 300 candidates per class, 300 detections). Its score > 0.001
    is a mAP setting (``eval``'s default): the contract's conf is what ``infer`` shows, 0.25."""
    net = MobileNetV3(LARGE_REDUCED_TAIL, 1280 // 2, in_channels=in_channels, width_mult=width_mult)
    bn = {"bn_eps": 1e-3, "bn_momentum": 0.03}
    for m in net.modules():  # torchvision's SSDLite trains its BN with momentum 0.03
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = bn["bn_momentum"]
    _normal_init(net.features)  # torchvision's init of a backbone without pretrained weights
    pre = _preprocess(input_size, in_channels, "stretch", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    det = Detection(nms="host", box_format="xyxy", conf=0.25, iou=0.55, max_det=300, background_class=True,
                    candidates_per_class=300)
    return SSDLite(net.features, _last_strided(net.features), num_classes, input_size, width_mult, bn, pre, det,
                   anchor_scales)
