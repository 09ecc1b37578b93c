"""--resume after kill -9 in the middle of an epoch reaches the uninterrupted run's weights exactly."""

from __future__ import annotations

import os
import signal

import torch

from edgecnn.train.checkpoint import load_checkpoint
from edgecnn.train.loop import INTERRUPT_ENV, KILL_ENV
from tests.conftest import run_cli


def _args(data, out):
    # 128 train images / batch 16 = 8 steps an epoch; augmentation exercises the per-sample RNG.
    return ["train", "simplecnn", "--data", str(data), "--input-size", "28", "--epochs", "3", "--batch-size", "16",
            "--augment", "--seed", "7", "--out", str(out)]


def test_resume_after_sigkill_reproduces_the_uninterrupted_run(shapes_dir, tmp_path, monkeypatch):
    full = run_cli(*_args(shapes_dir, tmp_path / "full"))
    assert full.returncode == 0, full.stderr

    monkeypatch.setenv(KILL_ENV, "12")  # step 12 = half-way through epoch 2
    killed = run_cli(*_args(shapes_dir, tmp_path / "part"))
    monkeypatch.delenv(KILL_ENV)
    assert killed.returncode == -signal.SIGKILL
    assert "epoch 1/3" in killed.stdout and "epoch 2/3" not in killed.stdout
    assert load_checkpoint(tmp_path / "part" / "last.pt")["epoch"] == 1
    assert not [p for p in os.listdir(tmp_path / "part") if p.endswith(".tmp")]

    resumed = run_cli(*_args(shapes_dir, tmp_path / "part"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resume: {tmp_path / 'part'}/last.pt after epoch 1 of 3 (step 8)" in resumed.stdout
    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (3, 24)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert all(torch.equal(a["optimizer"]["state"][i]["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
               for i in a["optimizer"]["state"])
    drop = ("images_per_s", "seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["metrics"]["history"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b["metrics"]["history"]]
    assert len((tmp_path / "part" / "log.csv").read_text().splitlines()) == 4


def test_ctrl_c_before_the_first_epoch_leaves_nothing_to_resume(shapes_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv(INTERRUPT_ENV, "3")  # Ctrl-C at step 3 of epoch 1's 8
    r = run_cli(*_args(shapes_dir, out))
    monkeypatch.delenv(INTERRUPT_ENV)
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines()[-1] == ("Interrupted before the first epoch finished: nothing to resume; run the "
                                         "command again")
    assert "Traceback" not in r.stderr and not (out / "last.pt").exists()

    resumed = run_cli(*_args(shapes_dir, out), "--resume")
    assert resumed.returncode == 1
    assert resumed.stderr == (f"Error: --resume: {out} holds no complete epoch (no last.pt): nothing to resume; "
                              "run the command again without --resume\n")


def test_ctrl_c_after_an_epoch_names_it_and_an_overwrite_names_the_earlier_run(shapes_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setenv(INTERRUPT_ENV, "10")  # step 10: epoch 2 of 3 under way
    r = run_cli(*_args(shapes_dir, out))
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines()[-1] == (f"Interrupted: {out} keeps its last complete epoch (1 of 3); continue with "
                                         "--resume")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1

    monkeypatch.setenv(INTERRUPT_ENV, "2")  # --overwrite, stopped in its first epoch: the earlier run is still there
    r = run_cli(*_args(shapes_dir, out), "--overwrite")
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines()[-1] == (f"Interrupted before the first epoch finished: nothing to resume ({out} "
                                         "still holds the earlier run); run the command again")
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
