"""The training loop on tiny models and generated data: the loss falls, checkpoints hold what the
exporter needs and load with weights_only, validation uses the device's preprocessing, bad input
fails in one line with nothing lost."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecnn import registry
from edgecnn.contract import Contract
from edgecnn.runtime.image import preprocess_file
from edgecnn.train import checkpoint as ckpt_mod
from edgecnn.train.checkpoint import CheckpointError, is_checkpoint, load_checkpoint, model_config
from edgecnn.train.loop import TrainConfig, TrainError, train
from tests.train.conftest import quiet


def _run(shapes_dir: Path, out: Path, **kw):
    cfg = TrainConfig(**{"model": "simplecnn", "data": str(shapes_dir), "epochs": 3, "batch_size": 16,
                         "input_size": 28, "out": str(out), **kw})
    return train(cfg, echo=quiet, warn=quiet)


@pytest.fixture(scope="module")
def trained(shapes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "simplecnn"
    return _run(shapes_dir, out, epochs=4, lr=0.05), out


def test_loss_falls(trained):
    result, _ = trained
    losses = [row["train_loss"] for row in result["history"]]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses
    assert result["val_top1"] > 0.3  # 4 classes: chance is 0.25
    assert sum(c["n"] for c in result["per_class"].values()) == result["val_images"] == 32


def test_checkpoint_format(trained):
    result, out = trained
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.csv", "log.json"]
    raw = torch.load(out / "last.pt", weights_only=True)  # plain types only
    assert raw["format"] == "edgecnn.checkpoint/1" and raw["model"] == "simplecnn" and raw["epoch"] == 4
    assert is_checkpoint(out / "best.pt")
    ckpt = load_checkpoint(out / "last.pt")
    assert model_config(ckpt) == {"num_classes": 4, "in_channels": 1, "input_size": 28}
    contract = Contract.from_dict(ckpt["contract"])
    assert contract.task == "classify" and contract.labels == ["circle", "square", "star", "triangle"]
    assert (contract.preprocess.channels, contract.preprocess.color, contract.preprocess.height) == (1, "L", 28)
    assert set(ckpt["metrics"]) >= {"val_top1", "val_top5", "per_class", "history", "best_top1"}
    assert ckpt["metrics"]["val_top1"] == result["val_top1"]
    assert {"optimizer", "scheduler", "rng", "step"} <= set(ckpt)
    model = registry.build(ckpt["model"], **model_config(ckpt))
    model.load_state_dict(ckpt["state_dict"])  # strict
    lines = (out / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,lr,train_loss,train_acc,val_loss,val_top1,val_top5,images_per_s,seconds"
    assert len(lines) == 5


def test_validation_is_the_device_preprocessing(trained, shapes_dir):
    """Top-1 recomputed from the files with runtime.image and the checkpoint's contract equals the
    training loop's figure: one implementation of the eval transform."""
    _, out = trained
    ckpt = load_checkpoint(out / "last.pt")
    spec = Contract.from_dict(ckpt["contract"]).preprocess
    labels = ckpt["contract"]["labels"]
    model = registry.build(ckpt["model"], **model_config(ckpt)).eval()
    model.load_state_dict(ckpt["state_dict"])
    files = sorted((shapes_dir / "val").rglob("*.png"))
    x = torch.from_numpy(np.stack([preprocess_file(f, spec)[0] for f in files]))
    with torch.no_grad():
        pred = model(x).argmax(1).tolist()
    top1 = sum(labels[p] == f.parent.name for p, f in zip(pred, files, strict=True)) / len(files)
    assert top1 == ckpt["metrics"]["val_top1"]


def test_fine_tune_a_checkpoint_given_as_model(trained, shapes_dir, tmp_path):
    _, out = trained
    result = _run(shapes_dir, tmp_path / "ft", model=str(out / "best.pt"), epochs=1, lr=0.001, input_size=None)
    assert result["model"] == "simplecnn" and result["epochs"] == 1
    assert load_checkpoint(tmp_path / "ft" / "last.pt")["config"]["input_size"] == 28  # taken from the checkpoint


def test_full_disk_keeps_the_previous_checkpoint(shapes_dir, tmp_path, monkeypatch):
    real_save = torch.save
    calls = []

    def save(obj, path):
        calls.append(obj["epoch"])
        if obj["epoch"] == 2:  # the epoch-2 save runs out of space half-way
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(ckpt_mod.torch, "save", save)
    with pytest.raises(CheckpointError) as e:
        _run(shapes_dir, tmp_path / "run")
    assert str(e.value) == (f"could not write checkpoint {tmp_path / 'run' / 'last.pt'}: No space left on device; "
                            "the previous last.pt is kept")
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "last.pt", "log.csv", "log.json"]


def test_corrupt_checkpoint_is_one_line(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match=r"x.pt: not a readable checkpoint \("):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match=r"sd.pt: not an edgecnn checkpoint"):
        load_checkpoint(tmp_path / "sd.pt")
    assert not is_checkpoint(tmp_path / "x.pt") and not is_checkpoint(tmp_path / "sd.pt")


def test_a_run_folder_is_not_overwritten(trained, shapes_dir):
    _, out = trained
    before = (out / "last.pt").read_bytes()
    with pytest.raises(TrainError, match="already holds a run"):
        _run(shapes_dir, out)
    assert (out / "last.pt").read_bytes() == before


def test_resume_without_a_run(shapes_dir, tmp_path):
    with pytest.raises(TrainError, match=r"^--resume: .*none holds no complete epoch \(no last.pt\): nothing to "
                                         r"resume; run the command again without --resume$"):
        _run(shapes_dir, tmp_path / "none", resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda(cli, shapes_dir):
    r = cli("train", "lenet5", "--data", str(shapes_dir), "--device", "cuda")
    assert r.exit_code == 1
    assert r.stderr == (f"Error: --device cuda: CUDA is not available (torch {torch.__version__} is a CPU-only "
                        "build); use --device cpu\n")


def test_cli_unreadable_image_warning_and_summary(cli, tmp_path, shapes_dir):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    (data / "train" / "star" / "broken.png").write_text("no image here")
    r = cli("train", "lenet5", "--data", str(data), "--epochs", "1", "--batch-size", "32",
            "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    assert r.stderr == (f"Warning: skipped 1 unreadable image of 161 in {data} "
                        f"(first: {data / 'train' / 'star' / 'broken.png'}: not a readable image "
                        "(UnidentifiedImageError))\n")
    out = r.stdout.splitlines()
    assert out[0] == f"data: {data} (imagefolder): 128 train / 32 val images, 4 classes"
    assert out[1].startswith("model: lenet5, input 1x32x32 (stretch), ")
    assert out[3].startswith("epoch 1/1  loss ")
    assert out[5].startswith("validation (32 images, epoch 1): top-1 ")
    assert out[6].split() == ["class", "images", "correct", "accuracy"]
    assert out[-1] == f"saved: {tmp_path / 'run' / 'last.pt'}, best.pt, log.csv, log.json"


def test_cli_bad_options_are_one_line(cli, shapes_dir):
    for args, message in [
        (["--optimizer", "adam"], "Error: unknown --optimizer 'adam'; choose sgd or adamw\n"),
        (["--freeze", "stages:x"], "Error: --freeze takes none, backbone or stages:N (N >= 1), got 'stages:x'\n"),
        (["--in-channels", "2"], "Error: --in-channels must be 1 (grayscale) or 3 (colour), got 2\n"),
        (["--layer-lr-decay", "1.5"], "Error: --layer-lr-decay must be in (0, 1], got 1.5\n"),
    ]:
        r = cli("train", "lenet5", "--data", str(shapes_dir), *args)
        assert (r.exit_code, r.stderr) == (2, message)


def test_nproc_runs_torchrun_with_the_same_options(cli, shapes_dir, monkeypatch):
    from edgecnn.train import ddp

    calls = []
    monkeypatch.setattr(ddp, "launch", lambda n, argv: calls.append((n, argv)) or 0)
    r = cli("train", "lenet5", "--data", str(shapes_dir), "--nproc", "2", "--augment", "--no-flip", "--lr", "0.1",
            "-b", "32", "--out", "o")
    assert r.exit_code == 0, r.output
    assert calls == [(2, ["lenet5", "--data", str(shapes_dir), "--batch-size", "32", "--lr", "0.1", "--augment",
                          "--no-flip", "--out", "o"])]
    r = cli("train", "lenet5", "--data", str(shapes_dir), "--nproc", "3", "-b", "32")
    assert (r.exit_code, r.stderr) == (2, "Error: --batch-size 32 does not split over 3 processes; "
                                          "use a multiple of 3\n")


def test_nproc_must_be_positive(cli):
    r = cli("train", "simplecnn", "--data", "shapes", "--nproc", "0")
    assert r.exit_code == 2 and r.stderr == "Error: --nproc must be a positive integer, got 0\n"
