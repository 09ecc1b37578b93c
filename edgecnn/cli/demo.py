"""``edgecnn demo``: the main job end to end on built-in data.

For now (the zoo stage) it lists the zoo, builds a few models, profiles them at their default input,
checks the counted parameters and MACs against the model cards, and times a PyTorch forward pass.
Later stages (export, infer, bench) extend this same command.
"""

from __future__ import annotations

import statistics
import time

import typer

from edgecnn import registry
from edgecnn.cli.main import app
from edgecnn.cli.output import human, table
from edgecnn.errors import EdgeCNNError, require

DEMO_MODELS = ("simplecnn", "lenet5", "mobilenetv1", "mobilenetv2", "resnet18")


@app.command("demo")
def demo_cmd(
    models: list[str] = typer.Option(list(DEMO_MODELS), "--model", "-m", help="Models to run (repeatable)."),
    runs: int = typer.Option(5, "--runs", help="Timed forward passes per model."),
) -> None:
    """Run the main job on built-in data: build, profile and time zoo models, checked against
    their cards.

    Example: edgecnn demo --model mobilenetv2 --runs 10
    """
    torch = require("torch", "torch", "edgecnn demo")
    from edgecnn.profile import profile

    typer.echo(f"edgecnn zoo: {len(registry.names())} models ({', '.join(registry.names())})\n")
    torch.manual_seed(0)
    rows = []
    for name in models:
        card = registry.get_card(name)
        shape = (card.input_channels, card.input_size, card.input_size)
        model = registry.build(name).eval()
        prof = profile(model, shape, name)
        if (prof.trainable_params, prof.macs) != (card.params, card.macs):
            raise EdgeCNNError(f"{name}: counted {prof.trainable_params:,} params / {prof.macs:,} MACs, "
                               f"card says {card.params:,} / {card.macs:,}; the model or its card is wrong")
        x = torch.rand(1, *shape)
        times = []
        with torch.inference_mode():
            model(x)  # warm-up: first-call allocations are not steady state
            for _ in range(runs):
                t0 = time.perf_counter()
                out = model(x)
                times.append((time.perf_counter() - t0) * 1e3)
        if not torch.isfinite(out).all():
            raise EdgeCNNError(f"{name}: non-finite output")
        rows.append((name, "x".join(map(str, shape)), f"{prof.trainable_params:,}", human(prof.macs),
                     f"{statistics.median(times):.1f}", "ok"))
    typer.echo(table(["model", "input", "params", "MACs", "torch ms (p50)", "card"],
                     rows, right=["params", "MACs", "torch ms (p50)"]))
    typer.echo(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; batch 1, random-init weights")
