"""Shared data for the training tests: a small shapes ImageFolder, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecnn.train.shapes import write_shapes


@pytest.fixture(scope="module")
def one_thread():
    """Two intra-op threads on a loaded 2-core box spin against each other (10x slower here): the
    detector tests run on one (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """160 32x32 images, 4 classes: 128 train / 32 val."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    write_shapes(root, n=160, size=32, seed=0)
    return root


def quiet(_msg: str) -> None:
    pass
