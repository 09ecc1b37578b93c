"""The runtime side works on a device with no torch: imports, `--help`, `models`; torch commands fail
with one line naming the extra to install."""

import json

from tests.conftest import run_cli, run_python

# Everything the device side uses: runtime, contract, INT8, inspect, benchmarks' timing, and the CLI
# (which registers every command, torch ones included, without importing torch).
RUNTIME_MODULES = [
    "edgecnn", "edgecnn.errors", "edgecnn.registry", "edgecnn.contract", "edgecnn.fileio", "edgecnn.progress",
    "edgecnn.quantize", "edgecnn.onnx_info", "edgecnn.bench.timing", "edgecnn.runtime.image",
    "edgecnn.runtime.sources", "edgecnn.runtime.session", "edgecnn.runtime.classify", "edgecnn.runtime.detect",
    "edgecnn.runtime.draw", "edgecnn.runtime.predict", "edgecnn.runtime.yolo", "edgecnn.runtime.raw",
    "edgecnn.runtime.outputs", "edgecnn.runtime.ranking",
    "edgecnn.runtime.openvino", "edgecnn.runtime.choice", "edgecnn.runtime.profile",
    "edgecnn.bench.backend_openvino", "edgecnn.train.datasets", "edgecnn.train.shapes",
    "edgecnn.cli.main", "edgecnn.cli.output",
    "edgecnn.coco", "edgecnn.eval.run", "edgecnn.eval.coco_map", "edgecnn.eval.classify", "edgecnn.train.coco",
    "edgecnn.train.detect_augment",
    "edgecnn.runtime.video", "edgecnn.runtime.video_writer", "edgecnn.runtime.stream", "edgecnn.bench.video",
    "edgecnn.cli.infer_video", "edgecnn.bench.tune", "edgecnn.cli.tune", "edgecnn.bf16", "edgecnn.export.parity",
]


def test_runtime_modules_import_without_torch():
    r = run_python(f"""
        import importlib
        for m in {RUNTIME_MODULES!r}:
            importlib.import_module(m)
        import sys
        assert sys.modules.get('torch') is None
        print('ok')
    """, block_torch=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_torch_is_really_blocked():
    r = run_python("import torch", block_torch=True)
    assert r.returncode != 0 and "torch" in r.stderr


def test_help_and_models_without_torch():
    assert run_cli("--help", block_torch=True).returncode == 0
    r = run_cli("models", "--format", "json", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert any(d["name"] == "mobilenetv2" for d in json.loads(r.stdout))


def test_torch_command_without_torch_names_the_extra():
    r = run_cli("summary", "lenet5", block_torch=True)
    assert r.returncode == 1
    assert r.stderr == ("Error: building model 'lenet5' needs torch, which is not installed; "
                        'install it with: pip install "edgecnn[torch]"\n')
