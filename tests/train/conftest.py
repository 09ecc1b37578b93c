"""Shared data for the training tests: a small shapes ImageFolder, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecnn.train.shapes import write_shapes


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """160 32x32 images, 4 classes: 128 train / 32 val."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    write_shapes(root, n=160, size=32, seed=0)
    return root


def quiet(_msg: str) -> None:
    pass
