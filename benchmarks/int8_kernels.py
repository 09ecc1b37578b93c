"""Benchmark: accuracy (agreement with FP32) of each INT8 kernel path, and its speed on this CPU.

    python benchmarks/int8_kernels.py prepare            # FP32 files + calibration images (torch)
    python benchmarks/int8_kernels.py measure --speed    # quantize with every path, compare, time
    qemu-x86_64 -cpu Haswell-v4,-pcid,-x2apic,-tsc-deadline,-invpcid,-spec-ctrl $(which python) \
        benchmarks/int8_kernels.py measure --tag <this host's device tag>-qemu-haswell

``prepare`` (needs torch) writes to ``--work`` (default /tmp/edgecnn-int8-kernels): simplecnn trained
8 epochs on generated shapes (28 px, calibrated on its validation images), and two untrained networks
made informative: a mobilenetv2 classifier at 96 px and the ssdlite_mobilenetv2 detector of
tests/export/test_export_detect.py at 64 px, both with BatchNorm statistics gathered on data and wider
classifier weights (at init the features vanish and every image gets the same answer), exported with
the weights file as provenance, plus 32 smooth random calibration images (``--samples``, 16 by default, are used).
``measure`` is torch-free, so it also runs under QEMU user-mode emulation with a CPU model that has no
AVX-512/VNNI: onnxruntime's MLAS reads CPUID and takes the AVX2 kernels there (the vpmaddubsw u8s8
kernel that saturates), which is what an AVX2-only host computes. Speed under emulation means nothing;
``--speed`` (native runs only) times FP32 and every INT8 file, interleaved in blocks, medians. Writes
int8_kernels.md under benchmarks/results/<tag>/ (int8_kernels.<model>.<kernel>[.<N>img].md for a ``--models`` or
``--kernels`` subset or ``--samples`` other than 16).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host import describe, write_report  # noqa: E402  (benchmarks/host.py)

from edgecnn.int8_kernel import KERNELS, choose_kernel, cpuid_flags, process_flags  # noqa: E402

WORK = Path("/tmp/edgecnn-int8-kernels")
MODELS = ("shapes", "mobilenetv2", "ssdlite")


def _bn_on_data(model, batches, size):
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(8, 3, size, size) * 4 - 2)
    model.eval()


def prepare(work: Path) -> None:
    """The FP32 files and calibration images; a file already in ``work`` is kept (delete it to remake it)."""
    import torch
    from PIL import Image

    from edgecnn import registry
    from edgecnn.export.exporter import ExportOptions, export
    from edgecnn.train.loop import TrainConfig, train
    from edgecnn.train.shapes import write_shapes

    work.mkdir(parents=True, exist_ok=True)
    calib = work / "calib"
    if not calib.is_dir():
        calib.mkdir()
        rng = np.random.default_rng(0)
        for i in range(32):  # smooth random images: closer to natural statistics than white noise
            small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
            Image.fromarray(small).resize((128, 128), Image.Resampling.BICUBIC).save(calib / f"{i:03d}.png")
    if not (work / "shapes.onnx").is_file():  # a really trained classifier: simplecnn on 4 generated shapes
        write_shapes(work / "shapes-data", n=320, size=32, seed=0)
        train(TrainConfig(model="simplecnn", data=str(work / "shapes-data"), epochs=8, batch_size=16, input_size=28,
                          lr=0.05, out=str(work / "shapes-run")), echo=lambda _m: None, warn=lambda _m: None)
        export(ExportOptions(model=str(work / "shapes-run" / "best.pt"), out=str(work / "shapes.onnx")))
    if not (work / "mobilenetv2.onnx").is_file():
        torch.manual_seed(0)
        cls = registry.build("mobilenetv2", num_classes=10, input_size=96)
        torch.nn.init.normal_(cls.classifier[-1].weight, std=0.5)
        _bn_on_data(cls, 3, 96)
        torch.save(cls.state_dict(), work / "mobilenetv2.pth")
        export(ExportOptions("mobilenetv2", weights=str(work / "mobilenetv2.pth"), num_classes=10, input_size=96,
                             out=str(work / "mobilenetv2.onnx")))
    if not (work / "ssdlite.onnx").is_file():
        torch.manual_seed(0)  # the detector of tests/export/test_export_detect.py
        det = registry.build("ssdlite_mobilenetv2", num_classes=4, input_size=64)
        for block in det.head.classification_head.module_list:
            torch.nn.init.normal_(block[1].weight, std=0.1)
        _bn_on_data(det, 3, 64)
        torch.save(det.state_dict(), work / "ssd.pth")
        export(ExportOptions("ssdlite_mobilenetv2", weights=str(work / "ssd.pth"), num_classes=4, input_size=64,
                             out=str(work / "ssdlite.onnx"), check=False))
    print(f"wrote {work}")


def measure(work: Path, tag: str | None, speed: bool, samples: int, models: list[str], kernels: list[str]) -> None:
    import onnxruntime as ort

    from edgecnn.quantize import QuantizeOptions, quantize

    flags = process_flags()
    auto = choose_kernel("auto", platform.machine(), flags)
    emulated = cpuid_flags() is not None and "avx512f" not in flags and "avx512f" in _cpuinfo_flags()
    lines = ["# INT8 kernel paths: agreement with FP32" + (" and speed" if speed else ""), "",
             f"Host: {describe()}", f"CPUID seen by this process (what onnxruntime's MLAS dispatches on): "
             f"{' '.join(auto['isa']) or '(none)'}" + ("; EMULATED (QEMU user mode: /proc/cpuinfo shows the host, "
                                                         "CPUID the emulated CPU)" if emulated else ""),
             f"auto choice here: {auto['kernel']} ({auto['reason']})",
             f"onnxruntime {ort.__version__}, numpy {np.__version__}, load average {os.getloadavg()[0]:.2f} "
             f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", "",
             "Files from `python benchmarks/int8_kernels.py prepare` (shapes: simplecnn trained 8 epochs on 4 "
             "generated shapes, 28 px, calibrated on its validation images; mobilenetv2 96 px, 10 classes; "
             f"ssdlite_mobilenetv2 64 px, 4 classes; BN statistics on data), calibrated and compared on the same "
             f"{samples} images.", ""]
    lines += ["| model | kernel | weights | top-1 agree / det F1 | cosine (logits / scores) | mean IoU | "
              "max-abs logits |", "|---|---|---|---|---|---|---|"]
    files: dict[str, dict[str, Path]] = {}
    for model in models:
        files[model] = {"fp32": work / f"{model}.onnx"}
        for kernel in kernels:
            calib = work / ("shapes-data/val" if model == "shapes" else "calib")
            res = quantize(QuantizeOptions(model=str(work / f"{model}.onnx"), calib=str(calib),
                                           out=str(work / f"{model}.{kernel}.{tag or 'native'}.onnx"), samples=samples,
                                           kernel=kernel, bench=False, min_agreement=0.0))
            files[model][kernel] = res.path
            a, t = res.agreement, res.types
            bits = "7-bit int8" if t["reduce_range"] else t["weights"]
            if a.get("task") == "detect":
                row = [f"{a['f1']:.3f}", f"{a.get('score_cosine_mean', float('nan')):.4f}", f"{a['mean_iou']:.3f}", ""]
            else:
                row = [f"{a['top1_agreement']:.3f}", f"{a['cosine_mean']:.4f}", "", f"{a['max_abs_logits']:.3g}"]
            lines.append(f"| {model} | {kernel} | {bits} | " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    if speed:
        lines += ["", *_speed(files)]
    part = ([] if set(models) == set(MODELS) else models) + ([] if set(kernels) == set(KERNELS) else kernels)
    part += [] if samples == 16 else [f"{samples}img"]
    name = "int8_kernels" + "".join(f".{p}" for p in part) + ".md"
    write_report(lines, name, _out(tag, name))


def _speed(files: dict[str, dict[str, Path]]) -> list[str]:
    import onnxruntime as ort

    from edgecnn.bench.timing import interleaved, summarize

    out = ["Latency, batch 1, 2 intra-op threads, onnxruntime CPU provider, configurations interleaved "
           "(edgecnn.bench.timing, 5 rounds x 20 runs), medians; ratio = FP32 p50 / INT8 p50.", "",
           "| model | fp32 ms | " + " | ".join(f"{k} ms (x)" for k in KERNELS) + " |",
           "|---|---|" + "---|" * len(KERNELS)]
    for model, paths in files.items():
        o = ort.SessionOptions()
        o.intra_op_num_threads = 2
        sess = {k: ort.InferenceSession(str(p), o, providers=["CPUExecutionProvider"]) for k, p in paths.items()}
        inp = sess["fp32"].get_inputs()[0]
        x = np.random.default_rng(0).standard_normal([1, *inp.shape[1:]]).astype(np.float32)
        feed = {inp.name: x}
        times = interleaved({k: (lambda s=s, f=feed: s.run(None, f)) for k, s in sess.items()}, rounds=5, block=20)
        p50 = {k: summarize(v)["p50"] for k, v in times.items()}
        out.append(f"| {model} | {p50['fp32']:.2f} | " + " | ".join(
            f"{p50[k]:.2f} ({p50['fp32'] / p50[k]:.2f}x)" for k in KERNELS) + " |")
        print(out[-1], flush=True)
    return out


def _cpuinfo_flags() -> set[str]:
    from edgecnn.bench.environment import cpu_flags

    return cpu_flags()


def _out(tag: str | None, name: str) -> Path | None:
    from host import results_dir

    return results_dir(tag) / name if tag else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=("prepare", "measure"))
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--tag", help="results folder (default: this host's device tag)")
    ap.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS),
                    help="a subset, e.g. to run the paths as parallel emulated processes")
    ap.add_argument("--speed", action="store_true", help="also time every file (native runs only)")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                    help="a subset, e.g. to run the models as parallel emulated processes")
    args = ap.parse_args()
    if args.step == "prepare":
        prepare(args.work)
    else:
        if args.speed and (args.kernels != list(KERNELS)):
            ap.error("--speed times every kernel path: leave out --kernels")
        measure(args.work, args.tag, args.speed, args.samples, args.models, args.kernels)


if __name__ == "__main__":
    main()
