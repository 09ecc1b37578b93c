"""Per-layer profile of a torch model: output shape, parameters and MACs, in execution order.

MACs count the multiply-accumulates of convolutions and linear layers for ONE image (the
convention of the MobileNet/EfficientNet papers: BN, activations, pooling and element-wise ops are
not counted). A layer whose output has a zero-sized dimension, or that fails for lack of input,
raises ShapeError naming that layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from edgecnn.errors import ShapeError
from edgecnn.nn import DepthwiseSeparable, InvertedResidual


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: list[int]  # without the batch dimension
    params: int
    macs: int
    kind: str = "layer"  # "layer" rows add up to the totals; "block" rows summarise their layers
    saving: dict | None = None  # blocks: weights vs a standard KxK conv of the same shape


@dataclass
class Profile:
    model: str
    input_shape: list[int]
    output_shape: list  # without the batch dimension; a list of shapes for a model of several outputs
    params: int
    trainable_params: int
    macs: int
    rows: list[LayerRow] = field(default_factory=list)
    onnx: OnnxParams | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.onnx is not None:
            d["onnx"]["params"] = self.onnx.params
            d["onnx"]["note"] = self.onnx.note()
        return d


@dataclass
class OnnxParams:
    """The model's parameters as its ONNX export counts them (``edgecnn.bench.graph_cost``): the export
    folds a BatchNorm that follows a convolution into it, so BN's scale and shift (``batchnorm``) leave,
    and a convolution without a bias gains one (``biases_added``). ``buffers``: the model's other float
    buffers (a detector's anchors), which the graph holds as constants (and constants computed from them)."""

    pytorch: int
    batchnorm: int = 0
    biases_added: int = 0
    buffers: tuple[str, ...] = ()

    @property
    def params(self) -> int:
        """The file's count, buffers aside."""
        return self.pytorch - self.batchnorm + self.biases_added

    def note(self, file_params: int | None = None) -> str | None:
        """One line saying why the file's count (``file_params``; default: ``params``) differs from PyTorch's
        (None when it does not)."""
        file = self.params if file_params is None else file_params
        if file == self.pytorch:
            return None
        why = []
        if self.batchnorm:
            why.append(f"export folds BatchNorm into the convolutions ({self.batchnorm:,} BN scale and shift "
                       f"parameters out, {self.biases_added:,} conv biases in)")
        extra = file - self.params
        if extra > 0 and self.buffers:
            why.append(f"the graph holds {extra:,} constants made from the model's buffers ({', '.join(self.buffers)})")
        elif extra:
            why.append(f"{extra:+,} not explained by BatchNorm folding")
        diff = self.pytorch - file
        return f"PyTorch model {self.pytorch:,} = ONNX file {file:,} {'+' if diff > 0 else '-'} {abs(diff):,}: " \
            + "; ".join(why)


def onnx_params(model: nn.Module) -> OnnxParams:
    """How ``model``'s ONNX export counts its parameters: a BatchNorm2d that comes right after a Conv2d of as
    many channels (in the order the modules are defined, which is the order they run in every zoo model) is
    folded into it."""
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    out = OnnxParams(sum(p.numel() for p in model.parameters()))
    for conv, bn in zip(leaves, leaves[1:], strict=False):
        if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d) and conv.out_channels == bn.num_features:
            out.batchnorm += sum(p.numel() for p in bn.parameters(recurse=False))
            out.biases_added += bn.num_features if conv.bias is None else 0
    out.buffers = tuple(f"{name}: {b.numel():,} values" for name, b in model.named_buffers()
                        if b.is_floating_point() and b.numel() > 1
                        and not name.endswith(("running_mean", "running_var")))
    return out


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_image = out[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_image * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


def _conv_weights(block: nn.Module) -> int:
    return sum(m.weight.numel() for m in block.modules() if isinstance(m, nn.Conv2d))


def _saving(block: DepthwiseSeparable | InvertedResidual) -> dict:
    """Weights of the block's convolutions against one standard KxK conv C_in -> C_out."""
    k, cin, cout = block.kernel_size, block.in_channels, block.out_channels
    standard = k * k * cin * cout
    ratio = _conv_weights(block) / standard
    out = {"standard_conv_weights": standard, "ratio": round(ratio, 4)}
    if isinstance(block, DepthwiseSeparable):
        out["theory"] = round(1 / cout + 1 / (k * k), 4)  # Howard et al. 2017, eq. 5
    return out


def _shape_error(exc: Exception, name: str, module: nn.Module, x: torch.Tensor, input_shape) -> ShapeError:
    c, h, w = input_shape
    return ShapeError(
        f"input {c}x{h}x{w} is too small: the feature map vanishes at layer '{name}' "
        f"({type(module).__name__}), which gets {'x'.join(map(str, x.shape[1:]))}; use a larger --input-size"
    )


def profile(model: nn.Module, input_shape: tuple[int, int, int], name: str = "") -> Profile:
    """Run one forward pass of a zero image through ``model`` (eval mode, no grad) and profile it."""
    rows: list[LayerRow] = []
    block_rows: dict[int, LayerRow] = {}
    inflight: list[tuple[str, nn.Module, torch.Tensor]] = []
    seen: set[int] = set()
    handles = []

    def pre(mod_name):
        def hook(module, args):
            x = args[0] if args else None
            inflight.append((mod_name, module, x))
            if isinstance(module, (DepthwiseSeparable, InvertedResidual)) and id(module) not in block_rows:
                row = LayerRow(mod_name, type(module).__name__, [], 0, 0, kind="block", saving=_saving(module))
                block_rows[id(module)] = row
                rows.append(row)
        return hook

    def post(mod_name):
        def hook(module, args, out):
            inflight.pop()
            if not isinstance(out, torch.Tensor):
                return
            if out.numel() == 0:
                raise _shape_error(None, mod_name, module, args[0], input_shape)
            shape = list(out.shape[1:])
            if id(module) in block_rows:
                block_rows[id(module)].output_shape = shape
                return
            if any(True for _ in module.children()):
                return
            # A module called twice (ResNet's shared ReLU) owns its parameters once.
            params = 0 if id(module) in seen else sum(p.numel() for p in module.parameters(recurse=False))
            seen.add(id(module))
            rows.append(LayerRow(mod_name, type(module).__name__, shape, params, _macs(module, out)))
        return hook

    for mod_name, module in model.named_modules():
        if mod_name:
            handles.append(module.register_forward_pre_hook(pre(mod_name)))
            handles.append(module.register_forward_hook(post(mod_name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_shape))
    except RuntimeError as e:
        leaf = next(((n, m, x) for n, m, x in reversed(inflight) if not any(True for _ in m.children())),
                    inflight[-1] if inflight else None)
        if leaf is None or leaf[2] is None:
            raise
        raise _shape_error(e, *leaf, input_shape) from e
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    layers = [r for r in rows if r.kind == "layer"]
    for mod_name, row in ((r.name, r) for r in rows if r.kind == "block"):
        inside = [r for r in layers if r.name.startswith(mod_name + ".")]
        row.params = sum(r.params for r in inside)
        row.macs = sum(r.macs for r in inside)
    return Profile(
        model=name or type(model).__name__,
        input_shape=list(input_shape),
        # a detector returns (boxes, scores): one shape per output
        output_shape=list(out.shape[1:]) if isinstance(out, torch.Tensor) else [list(o.shape[1:]) for o in out],
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=sum(r.macs for r in layers),
        rows=rows,
        onnx=onnx_params(model),
    )
