"""``edgecnn models``: the zoo from the registry cards (no torch needed)."""

from __future__ import annotations

import typer

from edgecnn import registry
from edgecnn.cli.main import app
from edgecnn.cli.output import check_format, emit_json
from edgecnn.tables import human, table


@app.command("models")
def models_cmd(
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """List the model zoo: family, task, default input, parameters, MACs, paper.

    Example: edgecnn models --format json
    """
    check_format(fmt)
    cards = [registry.get_card(n) for n in registry.names()]
    if fmt == "json":
        emit_json([c.to_dict() for c in cards])
        return
    rows = [
        (c.name, c.family, c.task, f"{c.input_channels}x{c.input_size}x{c.input_size}",
         f"{c.params:,}", human(c.macs), c.paper)
        for c in cards
    ]
    typer.echo(table(["name", "family", "task", "input", "params", "MACs", "paper"], rows,
                     right=["params", "MACs"]))
