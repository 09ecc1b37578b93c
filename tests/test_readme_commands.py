"""Every command README.md shows in a code block is run by a test (DESIGN: "any command the README shows
that a test does not run is a defect"), and .ci/readme_commands.py reads the README as a reader sees it.

``COVERED`` names, for each `edgecnn ...` command of the README, the test(s) that run it, usually on
smaller data (fewer images, epochs, a smaller input size, a toy model): the check below asserts that
each test exists and that its source (with the same module's fixtures it takes) holds the command's
subcommand and each of its options, or the ``evidence`` given where a test calls the library the command
is a thin layer over. ``CANNOT_RUN`` lists, with the reason, commands that need what no test machine has.
A README command in neither, or an entry the README no longer shows, fails.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_commands", ROOT / ".ci" / "readme_commands.py")
rc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rc)

FLOWS = "tests/cli/test_readme_flows.py"
COVERED: dict[str, tuple[list[str], list[str] | None]] = {
    # command as README shows it (prompt and comment stripped): ([tests], evidence or None for its options)
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[torch,eval]" && edgecnn demo':
        (["tests/e2e/test_demo.py::test_demo_end_to_end"], None),  # and .ci/run runs it verbatim
    "edgecnn demo": (["tests/e2e/test_demo.py::test_demo_end_to_end"], None),  # on fewer images and epochs
    "edgecnn infer photo.jpg --model mobilenetv2.onnx":
        (["tests/test_device_install.py::test_wheel_installs_torch_free_and_runs_infer"], None),
    "edgecnn export mobilenetv2 --weights imagenet":  # from a local HTTP server standing in for the download
        (["tests/cli/test_first_ten_minutes.py::test_export_imagenet_weights_then_infer_reads_a_label"], None),
    "edgecnn infer cat.jpg --topk 3":
        (["tests/cli/test_first_ten_minutes.py::test_export_imagenet_weights_then_infer_reads_a_label"], None),
    "edgecnn models": (["tests/cli/test_models_summary.py::test_models_table_lists_every_model"], None),
    "edgecnn summary mobilenetv1 --input-size 224":
        (["tests/cli/test_models_summary.py::test_summary_table_shows_block_savings"], None),
    "edgecnn summary mobilenet2": (["tests/cli/test_models_summary.py::test_unknown_model_message"], None),
    "edgecnn summary alexnet --input-size 8":
        (["tests/cli/test_models_summary.py::test_vanishing_feature_map_names_the_layer"], None),
    "edgecnn data shapes --out data/shapes --n 2000 --size 64": ([f"{FLOWS}::test_training_section_flow"], None),
    "edgecnn train simplecnn --data data/shapes --in-channels 3 --input-size 32 --epochs 10 --augment":
        ([f"{FLOWS}::test_training_section_flow"], None),
    "edgecnn export models/simplecnn-shapes/best.pt --out export/shapes.onnx":
        ([f"{FLOWS}::test_training_section_flow"], None),
    "edgecnn infer data/shapes/val/star/000019.png --model export/shapes.onnx":
        ([f"{FLOWS}::test_training_section_flow"], None),
    "edgecnn train lenet5 --data data/shapes --epochs 12 --augment":
        ([f"{FLOWS}::test_resume_and_bad_input_of_the_training_section"], None),
    "edgecnn train lenet5 --data data/shapes --epochs 12 --augment --resume":
        ([f"{FLOWS}::test_resume_and_bad_input_of_the_training_section"], None),
    "edgecnn train resnet18 --data flowers/ --init resnet18-f37072fd.pth --freeze backbone --epochs 5":
        ([f"{FLOWS}::test_transfer_learning_strategies"], None),
    "edgecnn train resnet18 --data xrays/ --init resnet18-f37072fd.pth --freeze stages:2 --in-channels 1":
        ([f"{FLOWS}::test_transfer_learning_strategies"], None),
    "edgecnn train resnet18 --data big/ --init resnet18-f37072fd.pth --lr 0.01 --layer-lr-decay 0.7":
        ([f"{FLOWS}::test_transfer_learning_strategies"], None),
    "edgecnn train models/simplecnn-shapes/best.pt --data data/shapes-more --freeze backbone --epochs 3 --lr 0.01 "
    "--out models/simplecnn-ft": ([f"{FLOWS}::test_training_section_flow"], None),
    "edgecnn data shapes --task detect --out data/shapes-det --n 600 --size 160":
        ([f"{FLOWS}::test_detector_training_command"], None),
    "edgecnn train ssdlite_mobilenetv2 --data data/shapes-det --input-size 160 --epochs 14 --batch-size 16 "
    "--optimizer adamw --lr 0.002": ([f"{FLOWS}::test_detector_training_command"], None),
    "edgecnn train ssdlite_mobilenetv2 --data dd2000 --input-size 160 --anchors auto":  # on shapes at 64 px
        (["tests/train/test_anchor_auto.py::test_auto_anchors_go_from_train_to_eval_and_export"],
         ['TrainConfig(NAME', 'input_size=64', 'anchors="auto"']),
    "edgecnn train lenet5 --data data/shapes --epochs 3 --nproc 2 --out models/lenet5-ddp":
        (["tests/train/test_ddp.py::test_two_gloo_processes_match_one_process"], None),
    "edgecnn train lenet5 --data data/shapes --device cuda":  # its one-line error on a machine without CUDA
        (["tests/train/test_train.py::test_device_cuda_without_cuda"], None),
    "edgecnn train lenet5 --data photos/": ([f"{FLOWS}::test_resume_and_bad_input_of_the_training_section"], None),
    "edgecnn train lenet5 --data data/shapes":
        ([f"{FLOWS}::test_resume_and_bad_input_of_the_training_section"], None),
    "edgecnn data mnist --out data/mnist --mirror http://127.0.0.1:9/mnist/":
        (["tests/train/test_datasets.py::test_data_mnist_offline_is_one_line"], None),
    "edgecnn export mobilenetv2": ([f"{FLOWS}::test_export_section_flow"], None),
    "edgecnn inspect export/mobilenetv2.onnx": ([f"{FLOWS}::test_export_section_flow"], None),
    # --per-channel is the default every quantize test runs
    "edgecnn quantize export/mobilenetv2.onnx --calib images/ [--samples 64] [--per-channel/--per-tensor]":
        (["tests/export/test_quantize.py::test_quantize_report_table",
          "tests/export/test_int8_oracles.py::test_per_tensor_and_explicit_kernels_are_in_the_file"],
         ['"quantize"', '"--calib"', '"--samples"', '"--per-tensor"']),
    "edgecnn export ssdlite_mobilenetv2 --nms graph":
        ([f"{FLOWS}::test_graph_nms_export_of_random_weights"], None),
    "edgecnn infer photos/ --model colors.onnx --topk 2":
        (["tests/cli/test_infer.py::test_classification_table", "tests/cli/test_infer.py::test_jsonl_and_csv"],
         ['"infer"', '"--model"', '"--topk"', "str(folder)"]),
    "edgecnn infer photos/ --model colors.onnx --topk 2 --runtime openvino":
        (["tests/runtime/test_openvino_engine.py::test_infer_runtime_openvino_without_torch"],
         ['"infer"', '"--model"', '"--topk"', '"--runtime", "openvino"', "str(imgs)"]),
    "edgecnn infer photos/red.jpg --model colors.onnx --topk 1 --runtime auto":
        (["tests/runtime/test_openvino_engine.py::test_infer_auto_says_which_runtime_ran_and_why"],
         ['"infer"', '"--runtime", "auto"', "_tuned("]),
    "edgecnn infer street.png --model boxes.onnx --save annotated/":
        (["tests/cli/test_infer.py::test_annotated_detection_boxes_are_at_the_right_pixels"],
         ['"infer"', '"--save"', 'models["det"]']),
    "edgecnn export lenet5 --num-classes 3": ([f"{FLOWS}::test_random_init_lenet5_through_the_export_folder"], None),
    "edgecnn infer photos/red.jpg --model lenet5 --topk 3":
        ([f"{FLOWS}::test_random_init_lenet5_through_the_export_folder"], None),
    "edgecnn infer photos/sky.png --model other.onnx --topk 1 --format csv":
        (["tests/cli/test_infer.py::test_third_party_file_with_overrides",
          "tests/cli/test_infer.py::test_jsonl_and_csv"], ['"infer"', 'models["other"]', '"-k"', '"csv"']),
    "edgecnn infer photos/red.jpg --model colors.onnx --topk 1 --format json":
        (["tests/cli/test_infer.py::test_third_party_file_with_overrides"], ['"infer"', '"-k", "1"', '"json"']),
    "edgecnn infer street.png --model boxes.onnx --format jsonl":
        (["tests/runtime/test_infer_torch_free.py::test_infer_detection_without_torch"], ['"infer"', '"jsonl"']),
    "edgecnn eval export/ssdlite_mobilenetv2.onnx --data data/shapes-det":
        (["tests/cli/test_eval.py::test_detection_map_equals_pycocotools_on_the_same_detections"],
         ['"eval"', '"--data"', "fake_detector"]),
    "edgecnn bench export/mobilenetv2.onnx": ([f"{FLOWS}::test_bench_commands_of_the_bench_section"], None),
    "edgecnn infer red.jpg --model export/mobilenetv2.onnx --topk 1 --runtime auto --precision auto":
        (["tests/runtime/test_precision_choice.py::test_tune_then_infer_auto_runs_the_tuned_choice"], None),
    "edgecnn infer red.jpg --model export/mobilenetv2.onnx --topk 1 --runtime auto":
        (["tests/runtime/test_precision_choice.py::test_tune_then_infer_auto_runs_the_tuned_choice",
          "tests/runtime/test_precision_choice.py::test_auto_without_precision_auto_says_the_file_given_runs"], None),
    "edgecnn infer red.jpg --model export/mobilenetv3_large.onnx --topk 1 --runtime auto --precision auto":
        (["tests/bench/bf16_cases.py::test_infer_runs_bf16_where_the_profile_chose_it_and_when_asked"], None),
    "edgecnn infer red.jpg --model export/mobilenetv3_large.onnx --topk 1 --runtime auto":
        (["tests/bench/bf16_cases.py::test_infer_runs_bf16_where_the_profile_chose_it_and_when_asked"], None),
    "edgecnn bench export/mobilenetv2.onnx --runtime ort,openvino,auto --threads 2 --runs 30":
        (["tests/bench/test_tune.py::test_bench_runtime_auto_measures_the_tuned_choice_beside_the_plain_ones"], None),
    "edgecnn bench mobilenetv3_large.onnx efficientnet_b0.onnx --runtime ort,openvino,auto --threads 2 --runs 40":
        (["tests/bench/bf16_cases.py::test_bench_runtime_auto_runs_openvino_with_the_profile_precision_and_says_bf16"],
         None),  # on a tiny file with a bf16 profile
    "edgecnn tune export/mobilenetv2.onnx --quick":  # on a tiny file, --quick's budget made short
        (["tests/bench/test_tune.py::test_calib_makes_the_int8_file_beside_and_quick_measures_it"], None),
    "edgecnn tune export/mobilenetv2.onnx --calib images/":
        (["tests/bench/test_tune.py::test_calib_makes_the_int8_file_beside_and_quick_measures_it"], None),
    "edgecnn bench mobilenetv2 resnet18 --precision fp32,int8 --threads 1,2 --peak":
        ([f"{FLOWS}::test_bench_commands_of_the_bench_section"], None),
    "edgecnn bench export/ssdlite.onnx --image photos/": ([f"{FLOWS}::test_bench_commands_of_the_bench_section"], None),
    "edgecnn bench model.onnx --paced 30 --min-time 10": ([f"{FLOWS}::test_bench_commands_of_the_bench_section"], None),
    "edgecnn bench mobilenetv2 --runtime ort,torch,openvino --threads 2":
        ([f"{FLOWS}::test_bench_commands_of_the_bench_section"], None),
    "edgecnn bench export/mobilenetv2.onnx --scenario singlestream --min-duration 30":
        (["tests/bench/test_mlperf.py::test_cli_scenario_reports_loadgen_beside_ours"], None),
    "edgecnn bench export/mobilenetv3_small.onnx --remote pi@raspberrypi --install":  # a throwaway sshd on 127.0.0.1
        (["tests/bench/test_remote.py::test_fresh_device_is_installed_and_benched_with_the_local_run"],
         ['"--remote"', '"--install"', "bench("]),
    # the COCO detector fine-tune: the test calls train(), which `edgecnn train` is a thin layer over, with the
    # weights in edgecnn's cache under the card's file name (as after the README's --weights coco export)
    "edgecnn data shapes --task detect --out shapes-det --n 40 --size 64":
        ([f"{FLOWS}::test_detector_training_command"], None),
    "edgecnn train ssdlite320_mobilenetv3_large --init coco --data shapes-det --input-size 64 --freeze backbone "
    "--epochs 2": (["tests/train/test_coco_init.py::test_train_init_coco_freeze_backbone"],
                   ["train(TrainConfig(NAME, str(data)", 'init="coco"', 'freeze="backbone"', "input_size=SIZE",
                    "epochs=1"]),
    "edgecnn quantize mobilenetv2.onnx --calib calib/ --samples 16 --no-bench":
        (["tests/export/test_quantize.py::test_samples_without_bench_reports_the_kernel_it_chose"], None),
    "edgecnn quantize mobilenetv2.onnx --calib calib/ --samples 16 --islands auto --threads 2 --no-bench":
        (["tests/export/test_islands.py::test_islands_cli_without_torch"], None),  # a tiny SE net, 1 thread
    "edgecnn quantize mobilenetv3_small.onnx --calib calib/ --samples 16 --islands auto --threads 2 --no-bench "
    "--out mobilenetv3_small.int8-islands.onnx":  # the FP32 graph written when INT8 does not pay: injected timings
        (["tests/export/test_islands.py::test_islands_cli_without_torch",
          "tests/export/test_islands.py::test_nothing_pays_writes_the_fp32_graph_that_tune_measures"], None),
    "edgecnn quantize resnet18.onnx --calib images/ --size 64 --no-bench":  # parametrized: a legacy opset-11 export
        (["tests/export/test_quantize_foreign.py::test_foreign_file_gives_a_working_int8_file"], None),
    "edgecnn export ssdlite320_mobilenetv3_large --weights coco":  # from a local mirror of the weights
        (["tests/models/test_coco_weights.py::test_export_coco_weights_then_infer_names_a_person"], None),
    "edgecnn infer street.jpg --model ssdlite320_mobilenetv3_large --save out/ --max-det 5":
        (["tests/models/test_coco_weights.py::test_export_coco_weights_then_infer_names_a_person"], None),
    # raw outputs: tests.runtime.heads' dense map and sequence stand in for the text map and the recogniser
    "edgecnn infer photos/red.jpg --model textmap.onnx":
        (["tests/cli/test_infer.py::test_raw_map_table_json_csv",
          "tests/runtime/test_infer_torch_free.py::test_infer_raw_and_yolo_without_torch"], None),
    "edgecnn infer photos/ --model textmap.onnx --save maps/ --format jsonl 2>/dev/null":
        (["tests/cli/test_infer.py::test_raw_save_writes_each_images_outputs"],
         ['"infer"', "str(folder)", 'foreign["map"]', '"--save"', '"-f", "jsonl"']),
    "edgecnn infer photos/sky.png --model recognizer.onnx 2>/dev/null":
        (["tests/cli/test_infer.py::test_sequence_without_contract_is_raw_not_a_class"],
         ['"infer"', '"-m", str(foreign["seq"])']),
    "edgecnn infer photos/sky.png --model textmap-classify.onnx":
        (["tests/cli/test_infer.py::test_classify_contract_on_a_map_is_a_one_line_error"],
         ['"infer"', 'foreign["map_cls"]', '"-m", str(path)']),
    "edgecnn infer scene.jpg --model yolov8n.onnx --max-det 5":
        (["tests/runtime/test_yolov8_ultralytics.py::test_cli_max_det_keeps_ultralytics_best_boxes"], None),
    "edgecnn infer grace_hopper.jpg -m ssdlite320.onnx --conf 0.25 -f jsonl":  # _run passes -f jsonl
        (["tests/cli/test_infer_empty.py::test_no_detection_names_the_best_score_seen",
          "tests/cli/test_infer_empty.py::test_table_output_and_nothing_scored"],
         ['"infer"', '"-m"', '"--conf"', "_run(cli, white"]),
    # a synopsis, like quantize's above: each option it names is run by one of the tests
    "edgecnn contract FILE.onnx [options] [--out COPY.onnx] [--show] [--format table|json]":
        (["tests/cli/test_contract.py::test_external_data_is_kept_in_place_and_copied_beside_a_copy",
          "tests/cli/test_contract.py::test_a_grey_model_wants_one_mean"],
         ['"contract"', '"--out"', '"--show"', '"-f", "json"']),
    # "Video, streams and cameras": tests/videogen.py's small clips and the fixed-box detector stand in for the
    # 640x480 clip and the shapes detector; the camera is a fake V4L2 node whose av.open hands back a clip
    "edgecnn infer clip.mp4 --model export/shapes-det.onnx --save annotated.mp4 --format jsonl > detections.jsonl":
        (["tests/cli/test_infer_video.py::test_saved_video_has_every_frame_and_the_boxes"], None),
    "edgecnn infer clip.mp4 --model export/shapes-det.onnx --every 50":
        (["tests/cli/test_infer_video.py::test_json_document_and_every"], None),
    "edgecnn infer --camera 0 --model export/shapes-det.onnx --every 2 --format jsonl":
        (["tests/cli/test_infer_video.py::test_camera_opens_through_v4l2_and_runs_live"], None),
    "edgecnn bench export/shapes-det.onnx --video clip.mp4":
        (["tests/cli/test_infer_video.py::test_bench_video_inline_and_ahead"], None),
    # "Bring your own ONNX file", step by step, on a stand-in colornet.onnx (dynamic size, external data)
    **{c: ([f"{FLOWS}::test_bring_your_own_onnx_classifier_step_by_step"], None) for c in (
        "edgecnn inspect colornet.onnx",
        "edgecnn infer photos/blue.jpg -m colornet.onnx",
        "edgecnn infer photos/blue.jpg -m colornet.onnx -k 1 --size 224",
        "edgecnn contract colornet.onnx --size 224 --color BGR --scale 1 --mean 104,117,124 --std 1,1,1 "
        "--labels blue,green,red",
        "edgecnn infer photos/ -m colornet.onnx -k 1 -f csv",
        "edgecnn infer photos/blue.jpg -m colornet.onnx -k 1 --color RGB",
        "edgecnn eval colornet.onnx --data colors/",
        "edgecnn quantize colornet.onnx --calib colors/val --no-bench",
        "edgecnn inspect colornet.int8.onnx | grep contract")},
    "edgecnn bench export/mobilenetv2.onnx export/mobilenetv2.int8.onnx":
        (["tests/bench/test_cli_bench.py::test_a_file_and_its_int8_file_side_by_side"], None),
}
CANNOT_RUN = {
    "edgecnn infer rtsp://192.168.1.20:8554/cam --model export/shapes-det.onnx --max-fps 5 --format jsonl > live.jsonl":
        "needs an RTSP server; tests/cli/test_infer_video.py runs an rtsp:// URL that does not answer (the timeout "
        "line), an HTTP stream that breaks off (records and video kept) and --max-fps on a file, and "
        "tests/runtime/test_video.py a slow live source whose frames are dropped",
    "edgecnn bench model.onnx --batch 1,8 --provider cpu,cuda --format json":
        "needs onnxruntime-gpu and a CUDA device; tests/bench/test_cli_bench.py checks the one-line error without "
        "them and tests/bench/test_cli_bench.py::test_partial_failure_writes_the_report_and_exits_1 a provider list "
        "whose second provider is missing",
}


def _functions() -> dict[str, tuple[ast.FunctionDef, str, dict[str, ast.FunctionDef]]]:
    """``path::name`` -> (test function, module source, the module's functions by name) for tests/."""
    out = {}
    # *_cases.py: tests run in a process of their own by a test_*.py beside them (tests/bench/bf16_cases.py)
    for path in sorted([*(ROOT / "tests").rglob("test_*.py"), *(ROOT / "tests").rglob("*_cases.py")]):
        src = path.read_text(encoding="utf-8")
        defs = {n.name: n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef)}
        for name, node in defs.items():
            if name.startswith("test_"):
                out[f"{path.relative_to(ROOT)}::{name}"] = (node, src, defs)
    return out


def _evidence(command: str) -> list[str]:
    """The subcommand and every --option of a README command, as the string literals a test passes."""
    part = command.rsplit("&& ", 1)[-1].split()
    return [f'"{part[1]}"'] + [f'"{o}"' for o in sorted(set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*",
                                                                          " ".join(part))))]


def test_every_readme_command_is_run_by_a_test():
    commands = rc.edgecnn_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) > 30  # the extraction found the README's code blocks
    missing = [c for c in commands if c not in COVERED and c not in CANNOT_RUN]
    assert not missing, f"README commands no test runs (add a test and list it in COVERED): {missing}"
    stale = [c for c in [*COVERED, *CANNOT_RUN] if c not in commands]
    assert not stale, f"listed here but no longer in README.md: {stale}"
    functions = _functions()
    for command, (tests, evidence) in COVERED.items():
        sources = []
        for test in tests:
            assert test in functions, f"{command!r}: no test {test}"
            node, src, defs = functions[test]
            fixtures = [defs[a.arg] for a in node.args.args if a.arg in defs]  # the module's own fixtures
            sources += [ast.get_source_segment(src, n) for n in (node, *fixtures)]
        text = "\n".join(sources)
        lacking = [e for e in (evidence or _evidence(command)) if e not in text]
        assert not lacking, f"{command!r}: {tests} never pass {lacking}"


def test_cannot_run_entries_say_why():
    assert all(len(why) > 30 for why in CANNOT_RUN.values())


# ---- .ci/readme_commands.py: what CI and the check above read from README.md ----

DOC = """# t

## Quick start

Text.

    python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[torch]" && edgecnn demo

More text:

    python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest -q

    pip install torch==2.13.0 --index-url https://example/cpu

## Usage

- a list item
  continued, not code

      $ edgecnn infer a.jpg --model m.onnx --format json
      {"output": "edgecnn infer is not a command here"}

A paragraph ends the list.

    $ edgecnn models
    name  params
    edgecnn bench x.onnx        # a comment
    wrote edgecnn 0.1.0 files

```bash
edgecnn export lenet5 --num-classes 3
python benchmarks/host.py
```

Inline `edgecnn summary x` is not a code block.
"""


def test_quickstart_reads_the_two_venv_commands_of_the_section():
    assert rc.quickstart(DOC) == [
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[torch]" && edgecnn demo',
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest -q']


def test_quickstart_refuses_anything_but_two():
    one = DOC.replace('    python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"', "    pip install")
    with pytest.raises(SystemExit, match="expected 2 quick-start commands"):
        rc.quickstart(one)
    three = DOC.replace("    pip install torch==2.13.0", "    python3 -m venv .venv && . .venv/bin/activate && x")
    with pytest.raises(SystemExit, match="found 3"):
        rc.quickstart(three)


def test_edgecnn_commands_from_indented_nested_and_fenced_blocks():
    assert rc.edgecnn_commands(DOC) == [
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[torch]" && edgecnn demo',
        "edgecnn infer a.jpg --model m.onnx --format json",
        "edgecnn models",
        "edgecnn bench x.onnx",
        "edgecnn export lenet5 --num-classes 3",
    ]


def test_the_readme_quickstart_is_what_ci_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    demo, tests = rc.quickstart(text)
    assert demo.endswith('pip install -e ".[torch,eval]" && edgecnn demo')  # the demo's detection stage needs [eval]
    assert tests.endswith("python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "readme_commands.py quickstart" in ci and "mktemp -d" in ci


# ---- .ci/run itself, on a stand-in checkout whose README commands are cheap shell functions ----

VENV = "python3 -m venv .venv && . .venv/bin/activate && "
FAKE_README = "\n".join([
    "# x", "", "## Quick start", "",
    "    " + VENV + 'echo one > mark.txt && edgecnn() { test "$1" = demo; } && edgecnn demo', "",
    "    " + VENV + "test ! -e mark.txt && printf '#!/bin/sh\\nexit 0\\n' > .venv/bin/ruff && chmod +x .venv/bin/ruff"
    " && pytest() { return RC; } && pytest", "",
    "## Next", ""])


def _skip_if_ci_would_install() -> None:
    import os
    import shutil

    if os.geteuid() == 0 and not (os.access("/usr/sbin/sshd", os.X_OK) and shutil.which("qemu-x86_64")):
        pytest.skip(".ci/run would apt-get install openssh-server / qemu-user here")


def _ci_run(tmp_path, rc: int):
    import os
    import shutil
    import subprocess

    _skip_if_ci_would_install()
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "readme_commands.py", repo / ".ci" / "readme_commands.py")
    # .ci/run holds the real README's commands verbatim; the stand-in runs its own README's cheap ones
    ci = re.sub(r"^DEMO=.*$", "DEMO=$(python3 .ci/readme_commands.py quickstart | sed -n 1p)",
                (ROOT / ".ci" / "run").read_text(), count=1, flags=re.M)
    ci = re.sub(r"^TESTS=.*$", "TESTS=$(python3 .ci/readme_commands.py quickstart | sed -n 2p)", ci, count=1,
                flags=re.M)
    (repo / ".ci" / "run").write_text(ci)
    (repo / "README.md").write_text(FAKE_README.replace("RC", str(rc)))
    (repo / ".gitignore").write_text(".venv/\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=300)


def test_ci_runs_both_readme_commands_each_in_a_fresh_copy(tmp_path):
    r = _ci_run(tmp_path, 0)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ci: [1/2] in a fresh copy of the checkout: python3 -m venv .venv" in r.stdout
    assert "ci: [2/2] in a fresh copy of the checkout: python3 -m venv .venv" in r.stdout  # no mark.txt of [1/2]
    assert not (tmp_path / "repo" / ".venv").exists() and not (tmp_path / "repo" / "mark.txt").exists()


def test_ci_fails_when_pytest_ran_no_test(tmp_path):
    r = _ci_run(tmp_path, 5)  # pytest's "no tests ran"
    assert r.returncode == 5
    assert "ci: the README's quick-start command 2 failed (exit 5)" in r.stderr


def test_ci_fails_when_the_readme_quickstart_is_not_what_it_runs(tmp_path):
    import shutil
    import subprocess

    _skip_if_ci_would_install()
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    for name in ("run", "readme_commands.py"):  # the real .ci/run, unchanged, beside another README
        shutil.copy(ROOT / ".ci" / name, repo / ".ci" / name)
    (repo / "README.md").write_text(FAKE_README.replace("RC", "0"))
    r = subprocess.run(["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 1
    assert "ci: README.md's quick-start commands (>) are not the ones .ci/run runs (<)" in r.stderr
    assert "in a fresh copy" not in r.stdout  # nothing ran
