"""The device side: NumPy + Pillow + onnxruntime only. Nothing here may import torch."""
