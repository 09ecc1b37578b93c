import json

import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import run_cli


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
