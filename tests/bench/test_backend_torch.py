"""``--backend torch``: PyTorch eager on the same weights as the ONNX row; the GPU rows run where CUDA is
and are refused with "CUDA not available" elsewhere (this project's CI and dev machine have no GPU)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch not installed (extra [torch])")

from edgecnn.bench import backend_torch as bt  # noqa: E402
from edgecnn.errors import UsageError  # noqa: E402

CUDA = torch.cuda.is_available()


def test_same_weights_as_the_exported_file(tmp_path):
    from edgecnn.export.exporter import ExportOptions, export

    onnx_path = export(ExportOptions("simplecnn", out=str(tmp_path / "s.onnx"), check=False)).path
    tm = bt.load_model("simplecnn")
    assert (tm.name, tm.channels, tm.size) == ("simplecnn", 1, (28, 28)) and tm.weights.startswith("random-init")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        ref = tm.model(x).numpy()
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_cpu_eager_runs_a_batch_on_the_requested_threads():
    tm = bt.load_model("lenet5", input_size=(32, 32))
    before = torch.get_num_threads()
    try:
        run = bt.prepare(tm, batch=3, threads=1)
        y = run()
        assert tuple(y.shape) == (3, 10) and torch.isfinite(y).all()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_checkpoint_target_loads_its_weights(tmp_path):
    from edgecnn.train.checkpoint import FORMAT, save_checkpoint

    torch.manual_seed(1)
    from edgecnn import registry

    model = registry.build("lenet5")
    path = tmp_path / "ck.pt"
    save_checkpoint({"format": FORMAT, "model": "lenet5", "config": {"num_classes": 10, "in_channels": 1,
                     "input_size": 32}, "state_dict": model.state_dict(), "contract": {}, "epoch": 1}, path)
    tm = bt.load_model(str(path))
    assert tm.name == "lenet5" and tm.weights == str(path)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(tm.model(x), model.eval()(x))


@pytest.mark.parametrize(("device", "precision", "mode", "message"), [
    ("cpu", "int8", "eager", "int8 is not a torch backend precision"),
    ("cpu", "fp16", "eager", "fp16 on the CPU is not a speed mode"),
    ("cpu", "fp32", "cuda_graph", "mode cuda_graph is a GPU row; use --device cuda"),
    ("cpu", "fp32", "compile", "mode compile is a GPU row"),
])
def test_rows_the_cpu_cannot_run(device, precision, mode, message):
    with pytest.raises(bt.TorchBackendError, match=message):
        bt.check(device, precision, mode)


def test_usage_errors():
    with pytest.raises(UsageError, match="unknown --device 'gpu'"):
        bt.check("gpu", "fp32", "eager")
    with pytest.raises(UsageError, match="unknown torch mode 'jit'"):
        bt.check("cpu", "fp32", "jit")
    with pytest.raises(bt.TorchBackendError, match="needs a zoo name or a checkpoint; an ONNX file"):
        bt.load_model("model.onnx")


@pytest.mark.skipif(CUDA, reason="this machine has CUDA; the GPU rows run in test_gpu_rows")
@pytest.mark.parametrize(("precision", "mode"), bt.GPU_ROWS)
def test_gpu_rows_say_cuda_not_available(precision, mode):
    with pytest.raises(bt.TorchBackendError, match="^CUDA not available"):
        bt.prepare(bt.load_model("lenet5"), device="cuda", precision=precision, mode=mode)


@pytest.mark.skipif(not CUDA, reason="CUDA not available: the GPU rows are untested on this machine")
@pytest.mark.parametrize(("precision", "mode"), bt.GPU_ROWS)
def test_gpu_rows(precision, mode):
    tm = bt.load_model("lenet5")
    with torch.no_grad():
        ref = tm.model(torch.from_numpy(np.random.default_rng(0).random((2, 1, 32, 32), dtype=np.float32)))
    run = bt.prepare(tm, batch=2, device="cuda", precision=precision, mode=mode)
    first, second = run().float().cpu(), run().float().cpu()
    tol = 2e-2 if precision == "fp16" else 1e-3
    torch.testing.assert_close(first, ref, rtol=tol, atol=tol)  # the same input as the CPU reference
    torch.testing.assert_close(second, first)  # replay gives the same answer again
    assert len(bt.gpu_time_ms(run, runs=3)) == 3


def test_torch_rows_in_a_bench_sweep(tmp_path):
    from edgecnn.bench.config import Sweep
    from edgecnn.bench.protocol import Bench, Protocol
    from tests.onnx_models import classifier

    onnx_file = str(classifier(tmp_path / "c.onnx"))
    rows = Bench(Sweep(["lenet5", onnx_file], backends=["torch"], precisions=["fp32", "int8"], threads=[1]),
                 Protocol(runs=3, warmup=1), peak=None).run()
    by = {(r["model"], r["precision"]): r for r in rows}
    ok = by[("lenet5", "fp32")]
    assert ok["status"] == "ok" and ok["mode"] == "eager" and ok["device"] == "cpu" and len(ok["samples_ms"]) == 3
    assert ok["params"] == 61_706  # the same architecture as the ONNX row: the card's count
    assert "int8 is not a torch backend precision" in by[("lenet5", "int8")]["error"]
    assert "an ONNX file has no PyTorch model behind it" in by[("c", "fp32")]["error"]


def test_without_torch_the_backend_names_the_extra():
    from tests.conftest import run_python

    code = ("from edgecnn.bench.backend_torch import TorchBackend\n"  # importable on a torch-free device
            "try:\n    TorchBackend().check()\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = run_python(code, block_torch=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MissingDependencyError --backend torch needs torch")
    assert 'pip install "edgecnn[torch]"' in out.stdout
