"""One path from a checkpoint to a model (``edgecnn.weights.build_model``): a detector checkpoint of width
0.5 rebuilds at width 0.5 in every command that reads one: ``eval``, ``train --init`` and ``--resume``,
``bench --backend torch`` and ``export`` (its test: tests/export/test_export_detect.py, a trained
checkpoint exports with its width). Before, eval rebuilt it at width 1.0 and refused its weights."""

import pytest
import torch

from edgecnn import registry
from edgecnn.contract import Contract, Detection
from edgecnn.train.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from edgecnn.train.shapes import CLASSES, write_shapes

SIZE, WIDTH, NAME = 64, 0.5, "ssdlite_mobilenetv2"


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    """(data, checkpoint, its parameter count): a width-0.5 detector checkpoint as `edgecnn train` writes it."""
    tmp = tmp_path_factory.mktemp("width")
    data = tmp / "det"
    write_shapes(data, 10, SIZE, seed=3, task="detect")
    torch.manual_seed(0)
    model = registry.build(NAME, num_classes=len(CLASSES) + 1, input_size=SIZE, width_mult=WIDTH)
    contract = Contract("detect", NAME, model.preprocess, labels=["background", *CLASSES],
                        outputs=[{"name": "boxes", "kind": "boxes"}, {"name": "scores", "kind": "scores"}],
                        detection=Detection(conf=0.25, iou=0.45, max_det=20, background_class=True))
    path = tmp / "half.pt"
    save_checkpoint({"format": FORMAT, "model": NAME, "epoch": 1, "state_dict": model.state_dict(),
                     "config": {"num_classes": len(CLASSES) + 1, "in_channels": 3, "input_size": SIZE,
                                "width_mult": WIDTH}, "contract": contract.to_dict()}, path)
    full = registry.build(NAME, num_classes=len(CLASSES) + 1, input_size=SIZE)
    assert _params(full) > _params(model)  # the widths differ: a width-1.0 rebuild cannot take these weights
    return data, path, _params(model)


def test_build_model_reads_the_width_and_lets_overrides_win(half):
    from edgecnn.weights import build_model, read_weights

    wf = read_weights(half[1])
    assert _params(build_model(NAME, wf.config)) == half[2]
    assert build_model(NAME, wf.config, width_mult=1.0).width_mult == 1.0
    assert build_model(NAME, wf.config, num_classes=3).num_classes == 3
    assert registry.build("lenet5").__class__ is build_model("lenet5", {"width_mult": 1.0}).__class__  # no width


def test_eval_scores_a_width_half_checkpoint(half):
    from edgecnn.eval.run import EvalOptions, evaluate

    data, path, _ = half
    res = evaluate(EvalOptions(model=str(path), data=str(data), provider="cpu", threads=1))
    assert res.images == 2 and 0.0 <= res.metrics["map50"] <= 1.0


def test_train_init_and_resume_keep_the_width(half, tmp_path):
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.loop import train

    data, path, n = half
    opts = dict(model=NAME, data=str(data), batch_size=4, input_size=SIZE, out=str(tmp_path / "run"),
                device="cpu", threads=1)
    train(TrainConfig(**opts, epochs=1, init=str(path)), echo=lambda m: None)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["config"]["width_mult"] == WIDTH
    result = train(TrainConfig(**opts, epochs=2, resume=True), echo=lambda m: None, warn=lambda m: None)
    assert result["epochs"] == 2 and load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
    from edgecnn.weights import model_from_weights, read_weights

    assert _params(model_from_weights(read_weights(tmp_path / "run" / "last.pt"))) == n


def test_train_width_mult_builds_that_width_and_keeps_it(half, shapes_dir, tmp_path, cli):
    """`train --width-mult 0.5` trains the detector at that width (its checkpoint rebuilds with the fixture's
    parameter count); a model without a width multiplier refuses the option in one line (exit 2)."""
    from edgecnn.weights import model_from_weights, read_weights

    data, _, n = half
    run = tmp_path / "run"
    r = cli("train", NAME, "--data", str(data), "--width-mult", str(WIDTH), "--input-size", str(SIZE), "--epochs",
            "1", "--batch-size", "4", "--device", "cpu", "--threads", "1", "--out", str(run))
    assert r.exit_code == 0, r.output
    assert load_checkpoint(run / "last.pt")["config"]["width_mult"] == WIDTH
    assert _params(model_from_weights(read_weights(run / "last.pt"))) == n
    r = cli("train", "resnet18", "--data", str(shapes_dir), "--width-mult", "0.5", "--out", str(tmp_path / "r18"))
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == (
        "Error: --width-mult: resnet18 has no width multiplier; leave the option out"), r.output


def test_bench_rebuilds_the_width(half):
    from edgecnn.bench.backend_torch import load_model

    _, path, n = half
    assert _params(load_model(str(path)).model) == n
