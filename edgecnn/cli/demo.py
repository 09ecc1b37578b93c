"""``edgecnn demo``: the main job end to end on built-in data (see ``edgecnn.demo``)."""

from __future__ import annotations

import typer

from edgecnn.cli import threads as cli_threads
from edgecnn.cli.main import app
from edgecnn.demo import DET_EPOCHS  # light: the stages import what they need when they run
from edgecnn.errors import require


@app.command("demo")
def demo_cmd(
    out: str = typer.Option("demo-run", "--out", "-o", help="Work folder for data, run and ONNX files."),
    model: str = typer.Option("resnet18", "--model", "-m", help="Zoo model to train on the shapes data."),
    epochs: int = typer.Option(5, "--epochs", help="Training epochs."),
    images: int = typer.Option(480, "--images", help="Synthetic images to generate (4/5 train, 1/5 val)."),
    input_size: int = typer.Option(32, "--input-size", help="Training and deploy input size."),
    zoo: list[str] = typer.Option(None, "--zoo", help="Zoo models to check against their cards (repeatable)."),
    runs: int = typer.Option(5, "--runs", help="Timed forward passes per zoo model."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the training."),
    det_epochs: int = typer.Option(DET_EPOCHS, "--det-epochs", help="Detection stage: SSDLite training epochs (0 skips "
                                                           "the stage)."),
    threads: int = cli_threads.option("Torch and onnxruntime threads of every stage"),
) -> None:
    """Run the main job on built-in data: zoo check, synthetic data, training, ONNX export through the
    parity gate, INT8 quantization, and torch-free inference of both files; then detection: a shapes
    COCO set, an SSDLite training sized to the demo's budget, export, annotated images (drawn at 256 px)
    and COCO mAP of the exported file, each step timed.

    Example: edgecnn demo --epochs 3 --out /tmp/demo
    """
    require("torch", "torch", "edgecnn demo")
    from edgecnn.demo import ZOO_CHECK, DemoOptions, run

    run(DemoOptions(out=out, model=model, epochs=epochs, images=images, input_size=input_size, seed=seed,
                    zoo=tuple(zoo) if zoo else ZOO_CHECK, runs=runs, det_epochs=det_epochs, threads=threads),
        typer.echo, lambda m: typer.echo(f"Warning: {m}", err=True))
