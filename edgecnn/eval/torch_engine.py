"""``TorchEngine``: an edgecnn checkpoint run in PyTorch behind the ``runtime.session.Engine``
interface that ``Predictor`` uses (contract, output names, ``run``), so ``eval`` scores a checkpoint
with exactly the preprocessing and post-processing of its exported file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgecnn.contract import Contract, Overrides
from edgecnn.eval.run import EvalError


class TorchEngine:
    def __init__(self, path: str | Path, device: str = "cpu", overrides: Overrides | None = None):
        from edgecnn.weights import model_from_weights, read_weights

        self.path = Path(path)
        wf = read_weights(self.path)
        if wf.model is None or not wf.contract:
            raise EvalError(f"{path} is a bare state dict; eval needs an edgecnn checkpoint (from edgecnn train) "
                            "or an exported ONNX file")
        self.contract = (overrides or Overrides()).apply(Contract.from_dict(wf.contract))
        pre = self.contract.preprocess
        size = (wf.config or {}).get("input_size") or pre.height
        self.model = model_from_weights(wf, in_channels=pre.channels, input_size=size).eval().to(device)
        self.device = torch.device(device)
        self.output_names = [o["name"] for o in self.contract.outputs]
        self.output_shapes: dict[str, list] = {}
        self.providers = [f"PyTorch ({device})"]
        self.warnings: list[str] = []
        self.from_graph = False
        self.task, self.input_size = self.contract.task, (pre.width, pre.height)  # as Engine's properties

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {name: o.float().cpu().numpy() for name, o in zip(self.output_names, outs, strict=True)}
