"""edgecnn: CNNs from PyTorch to a measured, deployable ONNX file.

This module imports nothing heavy: the runtime side must work without torch.
"""

__version__ = "0.1.0"
