import json

import onnx
import pytest
from onnx import TensorProto, helper

from edgecnn import registry
from edgecnn.tables import human
from tests.conftest import run_cli
from tests.foreign_onnx import CNN_PARAMS, cnn_macs, torch_cnn


def test_export_cli_table_and_inspect(cli, tmp_path):
    out = tmp_path / "lenet5.onnx"
    r = cli("export", "lenet5", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"wrote {out} (")
    assert "parity gate (fp32, onnxruntime CPU vs PyTorch): PASSED" in r.stdout
    assert "Warning: no --weights: exporting RANDOM-INIT weights for lenet5" in r.stderr
    r = cli("inspect", str(out))
    assert r.exit_code == 0
    assert "input     input: float32 [batch, 1, 32, 32]" in r.stdout
    assert "contract  edgecnn.contract/1: classify model 'lenet5', fp32, weights random-init" in r.stdout
    assert "parity    fp32 passed" in r.stdout
    card = registry.get_card("lenet5")  # no BatchNorm: the file counts what the card counts, and no note
    assert f"params    {card.params:,} in " in r.stdout and "note " not in r.stdout
    assert f"MACs      {card.macs:,} ({human(card.macs)}) per image at 32x32" in r.stdout
    assert "precision fp32 (from the contract)" in r.stdout


def test_export_default_path_is_export_folder_of_cwd(tmp_path):
    r = run_cli("export", "simplecnn", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"] == "export/simplecnn.onnx"
    assert (tmp_path / "export" / "simplecnn.onnx").is_file()


def test_inspect_json_of_a_foreign_file(cli, tmp_path):
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 3, 8, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["data"], ["prob"])], "g", [x], [y]),
                              producer_name="other")
    path = tmp_path / "foreign.onnx"
    onnx.save(model, path)
    info = json.loads(cli("inspect", str(path), "--format", "json").stdout)
    assert info["contract"] is None and info["ops"] == {"Relu": 1}
    assert info["inputs"] == [{"name": "data", "dtype": "float32", "shape": ["N", 3, 8, 8]}]
    assert "contract  none (not exported by edgecnn)" in cli("inspect", str(path)).stdout


def test_inspect_a_foreign_file_with_external_data(cli, tmp_path):
    path = torch_cnn(tmp_path / "f.onnx", opset=11, external=True)  # legacy export, weights in f.onnx.data
    data = tmp_path / "f.onnx.data"
    r = cli("inspect", str(path))
    assert r.exit_code == 0, r.output
    total = path.stat().st_size + data.stat().st_size
    assert f"file      {path} ({human(total)}B = f.onnx {human(path.stat().st_size)}B + f.onnx.data " \
           f"{human(data.stat().st_size)}B)" in r.stdout
    assert f"params    {CNN_PARAMS:,} in " in r.stdout
    (macs,) = [line for line in r.stdout.splitlines() if line.startswith("MACs ")]
    assert macs.startswith("MACs      unknown: the shapes around Conv") and macs.endswith(
        "(the input size is dynamic and no contract says it); give the size it runs at with --size")
    assert "precision fp32 (from the graph)" in r.stdout
    info = json.loads(cli("inspect", str(path), "--size", "24x40", "--format", "json").stdout)
    assert (info["params"], info["macs"], info["macs_size"], info["size_bytes"]) == (
        CNN_PARAMS, cnn_macs(24, 40), [24, 40], total)


def test_inspect_bench_and_summary_agree_on_one_file(cli, tmp_path):
    """The numbers of one exported file, three ways: summary predicts them from the PyTorch model (BN folding
    itemised), inspect and bench count them on the graph; and all three say why the zoo's count differs."""
    out = tmp_path / "m.onnx"
    assert cli("export", "mobilenetv2", "--input-size", "64", "--no-check", "--out", str(out)).exit_code == 0
    info = json.loads(cli("inspect", str(out), "--format", "json").stdout)
    summary = json.loads(cli("summary", "mobilenetv2", "--input-size", "64", "--format", "json").stdout)
    bench = cli("bench", str(out), "--runs", "2", "--warmup", "0", "--out", str(tmp_path / "b"), "--format", "json")
    assert bench.exit_code == 0, bench.output
    (row,) = json.loads(bench.stdout)["rows"]
    assert info["params"] == row["params"] == summary["onnx"]["params"] < summary["params"]
    assert info["macs"] == row["macs"] == summary["macs"] and info["macs_size"] == row["input_size"] == [64, 64]
    assert info["size_bytes"] == row["file_bytes"] == out.stat().st_size
    card = registry.get_card("mobilenetv2")
    diff = card.params - info["params"]
    assert diff == summary["onnx"]["biases_added"] == summary["onnx"]["batchnorm"] // 2 > 0
    because = f"PyTorch model {card.params:,} = file {info['params']:,} + {diff:,}: export folds each BatchNorm"
    assert info["params_note"].startswith(because) and row["params_note"] == info["params_note"]
    text = cli("summary", "mobilenetv2", "--input-size", "64").stdout
    assert f"ONNX export: PyTorch model {card.params:,} = ONNX file {info['params']:,} + {diff:,}: export folds " \
           f"BatchNorm into the convolutions ({diff * 2:,} BN scale and shift parameters out, {diff:,} conv " \
           "biases in)" in text
    assert f"note      {info['params_note']}" in cli("inspect", str(out)).stdout


def test_export_usage_errors(cli, tmp_path):
    r = cli("export", "lenet5", "--precision", "int8")
    assert r.exit_code == 2 and r.stderr == "Error: --precision int8 needs calibration images: add --calib DIR\n"
    r = cli("export", "lenet5", "--batch", "zero")
    assert r.exit_code == 2 and "--batch must be 'dynamic' or a positive integer, got 'zero'" in r.stderr
    labels = tmp_path / "l.txt"
    labels.write_text("a\nb\n")
    r = cli("export", "lenet5", "--labels", str(labels), "--out", str(tmp_path / "x.onnx"))
    assert r.exit_code == 1 and "has 2 labels but the model has 10 classes" in r.stderr
    assert not (tmp_path / "x.onnx").exists()
    r = cli("export", "mobilenet2")
    assert r.exit_code == 1 and r.stderr == "Error: unknown model 'mobilenet2'; did you mean 'mobilenetv2'?\n"


def test_inspect_missing_or_garbage(cli, tmp_path):
    assert cli("inspect", str(tmp_path / "none.onnx")).stderr == f"Error: {tmp_path / 'none.onnx'}: no such file\n"
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    r = cli("inspect", str(bad))
    assert r.exit_code == 1 and r.stderr.startswith(f"Error: {bad}: not a readable ONNX file")


def test_export_without_torch_names_the_extra(tmp_path):
    r = run_cli("export", "lenet5", block_torch=True, cwd=tmp_path)
    assert r.returncode == 1 and 'pip install "edgecnn[torch]"' in r.stderr


def test_inspect_without_torch(tmp_path):
    x = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "g", [x],
                                                [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])]))
    onnx.save(model, tmp_path / "m.onnx")
    r = run_cli("inspect", str(tmp_path / "m.onnx"), block_torch=True)
    assert r.returncode == 0 and "ops       Relu x1" in r.stdout


def test_labels_file_crlf_and_bad_encoding(cli, tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"zero\r\none\r\n\r\ntwo\r\n")
    r = cli("export", "simplecnn", "--num-classes", "3", "--labels", str(crlf), "--out", str(tmp_path / "s.onnx"),
            "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["contract"]["labels"] == ["zero", "one", "two"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa")
    r = cli("export", "simplecnn", "--labels", str(bad), "--out", str(tmp_path / "t.onnx"))
    assert r.exit_code == 1 and r.stderr.startswith(f"Error: --labels {bad}: not a readable labels file")


@pytest.mark.parametrize("out, code, message", [
    ("{tmp}/m.txt", 2, "Error: --out {tmp}/m.txt: the output file must end in .onnx"),
    ("{tmp}/afile/m.onnx", 1, "Error: cannot write {tmp}/afile/m.onnx: {tmp}/afile is not a folder"),
    ("{tmp}/afile/deeper/m.onnx", 1, "Error: cannot write {tmp}/afile/deeper/m.onnx: {tmp}/afile is not a folder"),
])
def test_export_refuses_a_bad_out_before_the_work(cli, tmp_path, monkeypatch, out, code, message):
    from edgecnn.export import exporter

    def no_work(*_a, **_k):
        raise AssertionError("the export ran before --out was checked")

    monkeypatch.setattr(exporter, "_to_onnx", no_work)
    (tmp_path / "afile").write_text("x")
    r = cli("export", "lenet5", "--out", out.format(tmp=tmp_path))
    assert (r.exit_code, r.stderr) == (code, message.format(tmp=tmp_path) + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
