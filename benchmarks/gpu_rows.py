"""Benchmark: the GPU rows of ``edgecnn bench`` on one CUDA card, recorded under the card's tag in one call.

    pip install -e ".[dev]"  (with a CUDA build of torch; onnxruntime-gpu for the ORT CUDA/TensorRT rows)
    python benchmarks/gpu_rows.py                    # ~3-5 min: two models, compile included
    python benchmarks/gpu_rows.py --models mobilenetv2 resnet18 resnet50 --batch 1,8

Rows, batch 1 by default, every configuration of a model interleaved in blocks (the bench protocol):
PyTorch eager FP32 and FP16, channels-last, CUDA-graph replay and ``torch.compile(mode="reduce-overhead")``
(``edgecnn.bench.backend_torch``: each call ends with ``torch.cuda.synchronize()``, so the host clock brackets
the GPU work), plus onnxruntime's CUDA and TensorRT providers at FP32/FP16 where onnxruntime-gpu has them.
A CUDA-event time of the same calls is recorded beside each torch row (the device-side view, without the
host's launch latency). The reference the issue quotes (torchvision models on an H200, batch 1, FP16):
MobileNetV2 0.54 ms with a CUDA graph, 0.40 ms compiled; ResNet-18 0.35 / 0.28 ms.

Writes benchmarks/results/<card-tag>/gpu_rows.json, .csv, .md and gpu_rows_table.md; <card-tag> is the GPU's
name (``nvidia-h100-80gb-hbm3``), the CPU's device tag kept in the environment. Exit 1 with "CUDA not
available" where torch sees no GPU. The GPU code has NOT been run by this project yet (no GPU machine
when it was written): the first run on a card is also its test.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REFERENCE_H200_FP16_B1 = {("mobilenetv2", "cuda_graph"): 0.54, ("mobilenetv2", "compile"): 0.40,
                          ("resnet18", "cuda_graph"): 0.35, ("resnet18", "compile"): 0.28}


def card_tag(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["mobilenetv2", "resnet18"])
    ap.add_argument("--batch", default="1")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--out", default=None, help="default: benchmarks/results/<card-tag>/")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from edgecnn.bench import backend_torch, report
    from edgecnn.bench.config import Sweep
    from edgecnn.bench.environment import capture, device_tag
    from edgecnn.bench.protocol import Bench, Protocol
    from edgecnn.fileio import atomic_path
    from edgecnn.tables import markdown_table

    if not torch.cuda.is_available():
        print("CUDA not available: torch.cuda.is_available() is False (no GPU, or a CPU build of torch)",
              file=sys.stderr)
        return 1
    props = torch.cuda.get_device_properties(0)
    env = capture()
    env["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                  "capability": f"{props.major}.{props.minor}", "torch": torch.__version__,
                  "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "cpu_tag": device_tag(env)}
    out = Path(args.out) if args.out else RESULTS / card_tag(props.name)
    batches = [int(b) for b in args.batch.split(",")]
    backends, providers = ["torch"], {"torch": ["cuda"]}
    ort_gpu = [p for p, ep in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider"))
               if ep in ort.get_available_providers()]
    if ort_gpu:
        backends.append("ort")
        providers["ort"] = ort_gpu
    print(f"{props.name}: backends {providers}; models {args.models}; batches {batches}", flush=True)

    bench = Bench(Sweep(args.models, backends=backends, providers=providers, precisions=["fp32", "fp16"],
                        batches=batches), Protocol(runs=args.runs, warmup=20, block=20), peak=None, environment=env,
                  on_progress=lambda f, text: print(f"  {f:5.0%} {text}", file=sys.stderr, flush=True))

    def cuda_events(cfg, row, call):  # the device-side time of the same call, while the runner is loaded
        if cfg.backend == "torch":
            t = backend_torch.gpu_time_ms(call, runs=100)
            row["cuda_event_ms"] = {"p50": statistics.median(t), "min": min(t)}

    bench.after_measure.append(cuda_events)
    bench.run()
    doc = bench.document()
    written = report.write(doc, out, "gpu_rows")
    lines = []
    for r in doc["rows"]:
        if r["status"] != "ok":
            lines.append([r["model"], r["backend"], r["provider"], r["mode"], r["precision"], r["batch"], "-", "-",
                          "-", r["error"]])
            continue
        ref = REFERENCE_H200_FP16_B1.get((r["model"], r["mode"])) if r["precision"] == "fp16" and r["batch"] == 1 \
            else None
        ev = r.get("cuda_event_ms") or {}
        lines.append([r["model"], r["backend"], r["provider"], r["mode"], r["precision"], r["batch"],
                      f"{r['latency_ms']['p50']:.3f}", f"{ev['p50']:.3f}" if ev else "-",
                      f"{ref:.2f}" if ref else "-", ""])
    text = (f"# GPU rows on {props.name} ({env['gpu']['memory_gb']} GB, torch {torch.__version__}, CUDA "
            f"{torch.version.cuda}; host {env['cpu']})\n\np50 of the synchronised model call (host clock) and of "
            "CUDA events around the same call; reference: the issue's H200 figures for torchvision's models "
            "(FP16, batch 1).\n\n"
            + markdown_table(["model", "backend", "device", "mode", "precision", "batch", "p50 ms", "cuda-event ms",
                              "H200 ref ms", "error"], lines) + "\n")
    with atomic_path(out / "gpu_rows_table.md") as tmp:
        tmp.write_text(text)
    print(text)
    print("wrote", *written, out / "gpu_rows_table.md", sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
