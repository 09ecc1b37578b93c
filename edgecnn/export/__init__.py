"""Export (torch + onnx): PyTorch model -> ONNX file with a deploy contract and a parity gate."""
