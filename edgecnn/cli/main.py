"""The ``edgecnn`` command. Library errors become one ``Error: ...`` line and exit code 1 (2 for
usage errors); ``--debug`` lets the traceback through."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError


class _Group(TyperGroup):
    """Maps EdgeCNNError (raised anywhere below a command) to a one-line click error."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeCNNError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="edgecnn",
    help="CNNs from PyTorch to a measured, deployable ONNX file, run torch-free on the edge.",
    rich_markup_mode=None,  # plain one-line errors, no boxes
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgecnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = {"debug": debug}


def _register() -> None:
    # Each module adds its command to ``app``; importing them is cheap (no torch at import time).
    from edgecnn.cli import data, demo, eval, export, infer, inspect, models, quantize, summary, train  # noqa: F401


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
