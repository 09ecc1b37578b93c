"""The defaults train derives for a detector: its own batch size (not the classifiers' 64), the anchor
advice before the first epoch; and the classifiers keep theirs."""

from __future__ import annotations

import pytest
import torch

from edgecnn.train.config import DEFAULT_BATCH, TrainConfig
from edgecnn.train.loop import train
from edgecnn.train.shapes import write_shapes

from .conftest import quiet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_detector_trains_at_the_detection_batch_and_hears_about_uncovered_objects(tmp_path):
    data = tmp_path / "shapes"
    write_shapes(data, n=40, size=48, seed=0, task="detect")  # 32 train images: two detection batches
    lines, warnings = [], []
    result = train(TrainConfig("ssdlite_mobilenetv2", str(data), epochs=1, input_size=48, optimizer="adamw",
                               out=str(tmp_path / "run"), device="cpu"), echo=lines.append, warn=warnings.append)
    saved = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert DEFAULT_BATCH["detect"] < DEFAULT_BATCH["classify"]
    assert saved["config"]["train"]["batch_size"] == DEFAULT_BATCH["detect"]
    steps = 32 // DEFAULT_BATCH["detect"]
    assert any(f"batch {DEFAULT_BATCH['detect']}, 1 epochs x {steps} steps" in line for line in lines), lines
    # shapes of 8-22% of a 48 px image against anchors from 20% on a 3x3 grid: most are uncovered
    assert any("overlap no anchor of ssdlite_mobilenetv2 at input 48" in w for w in warnings), warnings
    assert result["task"] == "detect"


def test_a_classifier_keeps_the_classification_batch(tmp_path):
    data = tmp_path / "shapes"
    write_shapes(data, n=80, size=28, seed=0, task="classify")
    train(TrainConfig("lenet5", str(data), epochs=1, input_size=32, out=str(tmp_path / "run"), device="cpu"),
          echo=quiet, warn=quiet)
    saved = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    assert saved["config"]["train"]["batch_size"] == DEFAULT_BATCH["classify"]
