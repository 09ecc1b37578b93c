"""DistributedDataParallel: 2 gloo processes on this machine take the same steps as one process
with the same global batch."""

from __future__ import annotations

import torch

from edgecnn.train.checkpoint import load_checkpoint
from edgecnn.train.loop import TrainConfig, train
from tests.conftest import run_cli
from tests.train.conftest import quiet


def test_two_gloo_processes_match_one_process(shapes_dir, tmp_path):
    # SimpleCNN: no BatchNorm (per-rank statistics) and no dropout; 128 images / 16 = 8 steps an epoch.
    args = ["simplecnn", "--data", str(shapes_dir), "--input-size", "28", "--epochs", "2", "--batch-size", "16",
            "--seed", "4", "--lr", "0.05"]
    r = run_cli("train", *args, "--nproc", "2", "--out", str(tmp_path / "ddp"))
    assert r.returncode == 0, r.stderr
    assert "on cpu, 2 processes (DDP, gloo)" in r.stdout
    assert r.stdout.count("epoch 2/2") == 1  # only rank 0 prints
    single = train(TrainConfig(model="simplecnn", data=str(shapes_dir), input_size=28, epochs=2, batch_size=16,
                               seed=4, lr=0.05, out=str(tmp_path / "one")), echo=quiet, warn=quiet)
    a = load_checkpoint(tmp_path / "ddp" / "last.pt")
    b = load_checkpoint(tmp_path / "one" / "last.pt")
    assert a["step"] == b["step"] == 16
    for k, v in b["state_dict"].items():
        assert torch.allclose(a["state_dict"][k], v, rtol=1e-4, atol=1e-5), k
    # metrics reduced over ranks equal the single process's
    ha, hb = a["metrics"]["history"][-1], single["history"][-1]
    assert ha["val_top1"] == hb["val_top1"] and abs(ha["train_loss"] - hb["train_loss"]) < 1e-4
    assert a["metrics"]["per_class"] == b["metrics"]["per_class"]
