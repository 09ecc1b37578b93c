"""``edgecnn contract`` and the preprocessing/task options every command shares.

The foreign files are made the way other tools make them: opset 11, weights as Constant nodes,
dynamic height and width, and (torch 2.x's default export) weights in an external ``.onnx.data``
file. Their class is the dominant colour of the image, so a wrong preprocessing shows in the answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgecnn.cli.prep_options import OPTIONS
from edgecnn.fileio import sha256
from tests.onnx_models import COLOR_LABELS

COLORS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}


def foreign(path: Path, external: bool = False, channels: int = 3, classes: int = 4) -> Path:
    """opset 11, (N, C, H, W) with H and W dynamic; a 1x1 Conv whose weights are a Constant node
    (4 * identity: class = dominant channel), GlobalAveragePool, Flatten -> logits (N, ``classes``, at least 3;
    2 for one channel)."""
    k = classes if channels == 3 else 2
    w = np.zeros((k, channels, 1, 1), np.float32)
    if channels == 3:
        w[:3, :, 0, 0] = 4 * np.eye(3)
    else:
        w[:, 0, 0, 0] = [-4, 4]
    nodes = [helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(w, "W")),
             helper.make_node("Conv", ["x", "W"], ["y"]),
             helper.make_node("GlobalAveragePool", ["y"], ["p"]),
             helper.make_node("Flatten", ["p"], ["logits"], axis=1)]
    graph = helper.make_graph(nodes, "foreign",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", channels, "H", "W"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="other-tool")
    model.ir_version = 6
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + ".data", size_threshold=0, convert_attribute=True)
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    """An ImageFolder val split: 2 images of each colour, non-square (so the resize matters)."""
    root = tmp_path / "data"
    for name, rgb in COLORS.items():
        (root / "val" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40 + 8 * i, 30), rgb).save(root / "val" / name / f"{i}.png")
    return root


DECLARE = ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--labels", ",".join(COLOR_LABELS)]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_every_command_takes_the_same_options_with_the_same_meaning():
    import typer

    from edgecnn.cli.main import app

    group = typer.main.get_command(app)
    helps = {}
    for name in ("infer", "eval", "quantize", "bench", "contract"):
        params = {opt: p for p in group.commands[name].params for opt in p.opts}
        for field, (flag, help_text) in OPTIONS.items():
            assert flag in params, f"{name} lacks {flag}"
            assert params[flag].name == field and params[flag].help == help_text
            helps.setdefault(flag, set()).add(params[flag].help)
    assert all(len(h) == 1 for h in helps.values()) and len(helps) == len(OPTIONS) >= 15


def test_contract_on_a_foreign_file_then_every_command_reads_it(cli, tmp_path, images):
    model = foreign(tmp_path / "net.onnx")
    red = str(images / "val" / "red" / "0.png")
    r = cli("infer", red, "-m", str(model))
    assert r.exit_code == 2
    assert _lines(r.stderr)[-1] == (f"Error: {model} has no edgecnn contract and a dynamic input size (HxW); "
                                    "give it with --size S or HxW")
    r = cli("contract", str(model), "--size", "32", *DECLARE)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == f"wrote a new contract into {model} (metadata only, weights untouched)\n"
    assert r.stdout.splitlines()[0] == ("task       classify; input 'x' NCHW, 3 channels, 32x32 (the graph takes "
                                        "other sizes too)")
    c = json.loads(cli("inspect", str(model), "-f", "json").stdout)["contract"]
    assert (c["task"], c["input_name"], c["dynamic_size"], c["opset"], c["assumed"]) == ("classify", "x", True, 11,
                                                                                         None)
    assert c["preprocess"]["mean"] == [0.5] * 3 and c["labels"] == COLOR_LABELS

    r = cli("infer", red, "-m", str(model), "-k", "1", "-f", "json")
    assert r.exit_code == 0 and "Warning" not in r.stderr
    doc = json.loads(r.stdout)
    assert doc["contract"] == "file" and doc["results"][0]["predictions"][0]["label"] == "red"

    r = cli("eval", str(model), "--data", str(images), "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["metrics"]["top1"] == 1.0

    r = cli("quantize", str(model), "--calib", str(images), "--no-bench", "-f", "json")
    assert r.exit_code == 0, r.stderr
    q = onnx.load(str(tmp_path / "net.int8.onnx"))
    qc = json.loads({p.key: p.value for p in q.metadata_props}["edgecnn.contract"])
    assert (qc["precision"], qc["labels"], qc["preprocess"]["mean"], qc["assumed"]) == ("int8", COLOR_LABELS,
                                                                                        [0.5] * 3, None)


def test_options_override_the_written_contract(cli, tmp_path, images):
    model = foreign(tmp_path / "net.onnx")
    assert cli("contract", str(model), "--size", "32", *DECLARE).exit_code == 0
    blue = str(images / "val" / "blue" / "0.png")
    # BGR swaps the channels the network sees: the blue image now looks red to it
    r = cli("infer", blue, "-m", str(model), "-k", "1", "-f", "json", "--color", "BGR")
    assert json.loads(r.stdout)["results"][0]["predictions"][0]["label"] == "red"
    r = cli("infer", blue, "-m", str(model), "-k", "1", "-f", "json")
    assert json.loads(r.stdout)["results"][0]["predictions"][0]["label"] == "blue"


def test_external_data_is_kept_in_place_and_copied_beside_a_copy(cli, tmp_path, images):
    model = foreign(tmp_path / "ext" / "net.onnx", external=True)
    data = model.with_name("net.onnx.data")
    before = sha256(data)
    r = cli("contract", str(model), "--size", "32", *DECLARE)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == (f"wrote a new contract into {model} (metadata only, weights untouched; external data "
                        "net.onnx.data kept)\n")
    assert sha256(data) == before and not list(model.parent.glob("*.tmp"))
    copy = tmp_path / "elsewhere" / "declared.onnx"
    r = cli("contract", str(model), "--out", str(copy), "--task", "classify", "--resize", "keep_ratio")
    assert r.exit_code == 0, r.stderr
    assert sha256(copy.parent / "net.onnx.data") == before  # the copy's tensors point at this name
    for f in (model, copy):
        r = cli("infer", str(images / "val" / "green" / "1.png"), "-m", str(f), "-k", "1", "-f", "json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["results"][0]["predictions"][0]["label"] == "green"
    assert json.loads(cli("inspect", str(copy), "-f", "json").stdout)["contract"]["preprocess"]["resize"] == \
        "keep_ratio"


@pytest.mark.parametrize("args, message", [
    (["--size", "32", "--color", "L"], "Error: --color L gives 1 channel but the model's input takes 3"),
    (["--size", "32", "--mean", "0.5"], "Error: --mean has 1 value but --color RGB is 3 channels; give --mean with 3"),
    (["--size", "32", "--task", "classify", "--layout", "yolov8"],
     "Error: --layout applies to --task detect, not --task classify"),
    (["--size", "32", "--conf", "0.5"], "Error: --conf applies to detection, but the task is classify; add --task "
                                        "detect"),
    (["--size", "32", "--resize", "letterbox", "--resize-size", "40"],
     "Error: --resize-size applies to --resize resize_crop, not letterbox"),
    (["--size", "32", "--resize", "pad"],
     "Error: unknown --resize 'pad'; choose one of: resize_crop, letterbox, keep_ratio, stretch"),
    (["--size", "32", "--task", "segment"], "Error: unknown --task 'segment'; choose one of: classify, detect, raw"),
    (["--size", "32", "--scale", "1/0"], "Error: --scale takes a positive number or fraction (1/255), got '1/0'"),
    (["--size", "32", "--pad-value", "300"], "Error: --pad-value must be in [0, 255], got 300"),
    (["--size", "32", "--std", "0,1,1"], "Error: --std values must be > 0, got 0,1,1"),
])
def test_contradictions_are_one_line_usage_errors_and_nothing_is_written(cli, tmp_path, args, message):
    model = foreign(tmp_path / "net.onnx")
    before = sha256(model)
    r = cli("contract", str(model), *args)
    assert r.exit_code == 2 and _lines(r.stderr) == [message] and r.stdout == ""
    assert sha256(model) == before


def test_a_grey_model_wants_one_mean(cli, tmp_path):
    model = foreign(tmp_path / "grey.onnx", channels=1)
    r = cli("contract", str(model), "--size", "28", "--mean", "0.1,0.1,0.1", "--std", "0.3")
    assert r.exit_code == 2 and _lines(r.stderr) == ["Error: --mean has 3 values but --color L is 1 channel; "
                                                     "give --mean with 1"]
    r = cli("contract", str(model), "--size", "28", "--mean", "0.1", "--std", "0.3", "--show", "-f", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["preprocess"]["color"] == "L"
    assert "edgecnn.contract" not in {p.key for p in onnx.load(str(model)).metadata_props}  # --show writes nothing


def test_an_assumed_contract_keeps_warning_after_quantize(cli, tmp_path, images):
    model = foreign(tmp_path / "net.onnx")
    red = str(images / "val" / "red" / "0.png")
    r = cli("quantize", str(model), "--calib", str(images), "--size", "32", "--no-bench", "-f", "json")
    assert r.exit_code == 0, r.stderr
    int8 = tmp_path / "net.int8.onnx"
    assumed = ("a classifier with ImageNet preprocessing (resize 37 + center crop 32x32, mean [0.485, 0.456, 0.406], "
               "std [0.229, 0.224, 0.225]); override with --size/--mean/--std/--labels, or write the right ones into "
               "the file once with 'edgecnn contract'")
    fp32 = cli("infer", red, "-m", str(model), "--size", "32")
    assert fp32.exit_code == 0 and fp32.stderr.splitlines()[0] == f"Warning: net.onnx has no edgecnn contract; " \
                                                                   f"assuming {assumed}"
    q = cli("infer", red, "-m", str(int8))
    assert q.exit_code == 0 and q.stderr.splitlines()[0] == f"Warning: net.int8.onnx was made from a file without " \
                                                            f"a contract, which assumed {assumed}"
    # declaring the normalization ends it
    assert cli("contract", str(int8), "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5").exit_code == 0
    assert not cli("infer", red, "-m", str(int8)).stderr.startswith("Warning")


def test_eval_size_on_a_dynamic_size_model(cli, tmp_path, images):
    model = foreign(tmp_path / "net.onnx")
    r = cli("eval", str(model), "--data", str(images))
    assert r.exit_code == 2 and _lines(r.stderr)[-1].endswith("dynamic input size (HxW); give it with --size S or HxW")
    r = cli("eval", str(model), "--data", str(images), "--size", "24x40", *DECLARE, "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["metrics"]["top1"] == 1.0 and doc["warnings"] == []


def test_bench_image_with_the_options(cli, tmp_path, images):
    model = foreign(tmp_path / "net.onnx")
    r = cli("bench", str(model), "--image", str(images / "val" / "red" / "0.png"), "--size", "32", "--runs", "3",
            "--warmup", "1", "--out", str(tmp_path / "b"), "-f", "json")
    assert r.exit_code == 0, r.stderr
    row = json.loads(r.stdout)["rows"][0]
    assert row["status"] == "ok" and row["input_size"] == [32, 32] and "preprocess" in row["stages_ms"]
    assert "edgecnn.contract" not in {p.key for p in onnx.load(str(model)).metadata_props}  # a copy was edited
    r = cli("bench", "mobilenetv2", "--mean", "0.5,0.5,0.5")
    assert r.exit_code == 2 and _lines(r.stderr)[-1] == ("Error: --mean applies to .onnx files (their contract); "
                                                         "'mobilenetv2' carries its own, edited at export")


def test_bad_files_are_one_line_errors(cli, tmp_path):
    (tmp_path / "junk.onnx").write_text("not a protobuf")
    r = cli("contract", str(tmp_path / "missing.onnx"))
    assert r.exit_code == 1 and _lines(r.stderr) == [f"Error: model file '{tmp_path / 'missing.onnx'}' not found"]
    r = cli("contract", str(tmp_path / "junk.onnx"))
    assert r.exit_code == 1 and _lines(r.stderr)[0].startswith(f"Error: {tmp_path / 'junk.onnx'}: not a readable "
                                                               "ONNX file (")


def test_contract_runs_without_torch(tmp_path):
    from tests.conftest import run_cli

    model = foreign(tmp_path / "net.onnx", external=True)
    r = run_cli("contract", str(model), "--size", "32", *DECLARE, "-f", "json", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["labels"] == COLOR_LABELS


def test_a_yolo_layout_gets_ultralytics_defaults_not_imagenet(cli, tmp_path):
    """``--layout yolov8`` alone declares a detector, with what Ultralytics' predictor does by default
    (letterbox padded with 114, RGB / 255, IoU 0.7, 300 boxes), still marked as assumed."""
    model = foreign(tmp_path / "net.onnx")
    r = cli("contract", str(model), "--size", "64", "--layout", "yolov8", "--show", "-f", "json")
    assert r.exit_code == 0, r.stderr
    c = json.loads(r.stdout)
    p, d = c["preprocess"], c["detection"]
    assert (c["task"], d["layout"], d["iou"], d["max_det"]) == ("detect", "yolov8", 0.7, 300)
    assert (p["resize"], p["pad_value"], p["mean"], p["std"], p["scale"]) == ("letterbox", 114, [0, 0, 0],
                                                                              [1, 1, 1], 1 / 255)
    assert c["assumed"] == ("a yolov8-layout detector (logits Nx4) with Ultralytics preprocessing (letterbox to 64x64, "
                            "mean [0.0, 0.0, 0.0], std [1.0, 1.0, 1.0])")
