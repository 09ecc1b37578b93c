"""``edgecnn eval``: accuracy (classification) and COCO mAP (detection) of a model on a labelled split.
No torch in ``coco_map``, ``classify`` and ``run`` for ONNX files (the device side); a checkpoint is run
in PyTorch by ``torch_engine`` behind the same ``Predictor`` interface."""
