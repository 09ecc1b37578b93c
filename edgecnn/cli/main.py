"""The ``edgecnn`` command. Library errors become one ``Error: ...`` line and exit code 1 (2 for
usage errors); ``--debug`` lets the traceback through."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from edgecnn import __version__
from edgecnn.errors import EdgeCNNError


class _Group(TyperGroup):
    """Maps EdgeCNNError (raised anywhere below a command) to a one-line click error; takes ``--debug``
    anywhere on the line; gives every command's help plain metavars (``MODEL``, ``--out TEXT``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            for param in command.params:
                _plain_metavar(param)

    def parse_args(self, ctx, args):
        # ``edgecnn export x --debug`` means the same as ``edgecnn --debug export x``
        args = list(args)
        end = args.index("--") if "--" in args else len(args)
        if "--debug" in args[1:end]:
            args.remove("--debug")
            args.insert(0, "--debug")
        for param in self.get_params(ctx):
            _light_coercion(param)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        for param in command.get_params(ctx) if command is not None else ():
            _light_coercion(param)
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeCNNError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None


_TYPE_NAMES = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "Path": "PATH"}


def _plain_metavar(param) -> None:
    """Typer 0.2x prints ``{model}``, ``<str>``, ``<list[str]>``; show click's conventional names instead."""
    if param.metavar is not None or getattr(param, "is_flag", False):
        return
    if param.param_type_name == "argument":
        name = param.name.upper() + ("..." if param.nargs != 1 else "")
        param.metavar = name
        param._usage_display_name = lambda: name if param.required else f"[{name}]"
        param.display_type_rich = lambda ctx: None
        param._rich_display_name = lambda: name
    else:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        while getattr(annotation, "__args__", None):  # list[str] -> str, Optional[int] -> int
            annotation = annotation.__args__[0]
        param.metavar = _TYPE_NAMES.get(getattr(annotation, "__name__", ""), "TEXT")


_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"", "0", "false", "f", "no", "n", "off"}


def _light_coercion(param) -> None:
    """Typer 0.2x converts every parameter through a pydantic TypeAdapter: importing pydantic and
    building the adapters was ~20% of an ``edgecnn infer one.jpg`` process (benchmarks/coldstart_bench.py).
    Plain ``str``/``int``/``float``/``Path`` parameters (and lists of them) without typer-side
    constraints are converted directly instead, with typer's messages; any other parameter, or another
    typer whose internals differ, keeps typer's own conversion."""
    try:
        from typer._coercion import RuntimeParam
        from typer._param_types import coerce_cli_path
    except ImportError:
        return
    desc = getattr(param, "type_descriptor", None)
    if desc is None or getattr(param, "_runtime_param", False) is not None:
        return
    info, kind = desc.parameter_info, desc.annotation
    if desc.is_list:
        kind = kind.__args__[0]
    if (kind not in (str, int, float, bool, Path) or desc.is_file or info.parser is not None
            or getattr(info, "click_type", None) is not None or info.min is not None or info.max is not None):
        return

    def one(value, param, ctx):
        if kind is bool and not isinstance(value, bool):
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise typer.BadParameter("Input should be a valid boolean, unable to interpret input", ctx=ctx, param=param)
        if kind is Path:
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        if kind is str or isinstance(value, kind):
            return kind(value)
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
        if kind is int:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
            if number is not None and number.is_integer():
                return int(number)
            why = "got a number with a fractional part" if number is not None else \
                "unable to parse string as an integer"
            raise typer.BadParameter(f"Input should be a valid integer, {why}", ctx=ctx, param=param) from None
        raise typer.BadParameter("Input should be a valid number, unable to parse string as a number",
                                 ctx=ctx, param=param) from None

    class _Direct(RuntimeParam):
        def _coerce_value(self, value, param, ctx):
            if desc.is_list and isinstance(value, (list, tuple)):
                return [one(v, param, ctx) for v in value]
            return one(value, param, ctx)

    param._runtime_param = _Direct(info, desc.annotation)


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
            "train")


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
