"""The main job end to end (small): zoo check, data, training, export, INT8, torch-free inference."""

from tests.conftest import run_cli


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    r = run_cli("demo", "--out", str(out), "--epochs", "1", "--images", "40", "--zoo", "simplecnn",
                "--zoo", "mobilenetv1", "--runs", "1", "--model", "lenet5", "--det-epochs", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    zoo = {line.split()[0]: line for line in lines if line.split()[:1] in (["simplecnn"], ["mobilenetv1"])}
    assert "52,138" in zoo["simplecnn"] and zoo["simplecnn"].rstrip().endswith("ok")
    assert "4,231,976" in zoo["mobilenetv1"] and "568.74M" in zoo["mobilenetv1"]
    assert any(line.startswith(f"wrote {out / 'lenet5.onnx'}: parity PASSED") for line in lines)
    assert (out / "lenet5.onnx").is_file() and (out / "lenet5.int8.onnx").is_file()
    assert (out / "run" / "best.pt").is_file()
    rows = {line[:17].strip(): line.split() for line in lines if line.startswith(("PyTorch", "ONNX FP32", "ONNX INT8"))}
    assert set(rows) == {"PyTorch (best.pt)", "ONNX FP32", "ONNX INT8"}
    # the exported file computes what PyTorch computed: same validation accuracy
    assert rows["ONNX FP32"][2] == rows["PyTorch (best.pt)"][2]
    # detection: trained, exported through the gate, drawn, evaluated by pycocotools
    assert any(line.startswith(f"wrote {out / 'ssdlite_mobilenetv2.onnx'}: parity PASSED") for line in lines)
    assert any(line.startswith("eval ssdlite_mobilenetv2.onnx on 24 val images (pycocotools): mAP@[.50:.95] ")
               for line in lines)
    assert (out / "run-detect" / "best.pt").is_file() and len(list((out / "detections").iterdir())) == 8


def test_demo_unknown_model(tmp_path):
    r = run_cli("demo", "--zoo", "lenet", "--out", str(tmp_path / "d"))
    assert r.returncode == 1 and r.stderr.startswith("Error: unknown model 'lenet'; did you mean 'lenet5'?")
