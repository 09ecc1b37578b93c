"""The ``edgecnn`` command. Library errors become one ``Error: ...`` line and exit code 1 (2 for
usage errors); ``--debug`` lets the traceback through."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from edgecnn import __version__
from edgecnn.cli import typer_compat
from edgecnn.errors import EdgeCNNError

_USAGE_ERROR, _SHOW_HELP = typer_compat.usage_error_types()


def _usage_line(e) -> typer.Exit:
    """A click usage error (missing option, bad value, unknown command; click prints a 4-line block) as
    edgecnn prints every error: one ``Error: ...`` line that says what to do, exit code 2."""
    message = " ".join(e.format_message().split()).rstrip(".")
    command = e.ctx.command_path if getattr(e, "ctx", None) is not None else "edgecnn"
    typer.echo(f"Error: {message}; see '{command} -h'", err=True)
    return typer.Exit(2)


class _Group(TyperGroup):
    """Maps EdgeCNNError (raised anywhere below a command) to a one-line click error and click's usage
    errors to one line too; takes ``--debug`` anywhere on the line; gives every command's help plain
    metavars (``MODEL``, ``--out TEXT``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            for param in command.params:
                typer_compat.plain_metavar(param)

    def parse_args(self, ctx, args):
        # ``edgecnn export x --debug`` means the same as ``edgecnn --debug export x``
        args = list(args)
        ctx.meta["edgecnn.argv"] = list(args)  # the command line as typed, for reports that record it
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:
            args.remove("--debug")
            args.insert(0, "--debug")
        for param in self.get_params(ctx):
            typer_compat.light_coercion(param)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        for param in command.get_params(ctx) if command is not None else ():
            typer_compat.light_coercion(param)
        return name, command, rest

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _SHOW_HELP:
            raise
        except _USAGE_ERROR as e:
            raise _usage_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _SHOW_HELP:
            raise
        except _USAGE_ERROR as e:
            raise _usage_line(e) from None
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


# Each module edgecnn.cli.NAME adds the command NAME to ``app``; importing them is cheap (no torch at import time).
COMMANDS = ("bench", "contract", "data", "demo", "eval", "export", "infer", "inspect", "models", "quantize", "summary",
            "train", "tune")


def _register(argv: list[str]) -> None:
    """Import the command modules. Run as the ``edgecnn`` program (its script, or ``python -m edgecnn``)
    with a command name first, only that command's module: a device script that calls ``edgecnn infer``
    per image pays for one command (benchmarks/coldstart_bench.py). Otherwise (help, a library or
    test import, ``python -m edgecnn.train``) all of them."""
    import importlib

    program = Path(argv[0]) if argv else Path()
    ours = program.name == "edgecnn" or program.resolve() == Path(__file__).resolve().parent.parent / "__main__.py"
    for name in argv[1:2] if ours and argv[1:2] and argv[1] in COMMANDS else COMMANDS:
        importlib.import_module(f"edgecnn.cli.{name}")


_register(sys.argv)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
