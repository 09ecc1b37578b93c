"""Everything edgecnn does to Typer beyond its documented API, in one place.

Two adjustments, applied by ``cli.main`` to every command's parameters:

- ``plain_metavar``: Typer 0.2x prints ``{model}``, ``<str>``, ``<list[str]>`` in help and usage; edgecnn
  shows click's conventional ``MODEL``, ``--out TEXT``. Uses click's public ``metavar`` and
  ``get_usage_pieces`` and Typer's ``display_type_rich``.
- ``usage_error_types``: the click exception classes ``cli.main`` turns into one-line errors. Typer 0.2x
  runs on its own private copy of click, ``typer._click``; only ``typer.BadParameter`` is public.
- ``light_coercion``: Typer 0.2x converts every value through a pydantic TypeAdapter; importing pydantic
  and building the adapters was ~20% of an ``edgecnn infer one.jpg`` process
  (benchmarks/results/<host>/coldstart*.md). Plain ``str``/``int``/``float``/``bool``/``Path`` parameters
  (and lists of them) without Typer-side constraints are converted directly, with Typer's messages.
  This one needs Typer's private ``typer._coercion.RuntimeParam``, ``typer._param_types.coerce_cli_path``
  and the parameter's ``type_descriptor`` / ``_runtime_param``.

``TESTED`` is the Typer range these were written against (pyproject.toml pins the same range);
``tests/cli/test_typer_compat.py`` fails loudly when an installed Typer lacks what they use, and
``check()`` says what is missing. With any other Typer, ``light_coercion`` leaves the parameter to
Typer's own conversion (slower start, same results).
"""

from __future__ import annotations

from pathlib import Path

import typer

TESTED = ">=0.29,<0.30"  # keep in step with pyproject.toml's typer pin

_TYPE_NAMES = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "Path": "PATH"}
_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"", "0", "false", "f", "no", "n", "off"}


def check() -> list[str]:
    """What ``light_coercion`` needs from Typer and the installed Typer lacks (empty: all there)."""
    missing = []
    try:
        from typer._coercion import RuntimeParam
    except ImportError:
        return ["typer._coercion.RuntimeParam"]
    if not callable(getattr(RuntimeParam, "_coerce_value", None)):
        missing.append("typer._coercion.RuntimeParam._coerce_value")
    try:
        from typer._param_types import coerce_cli_path  # noqa: F401
    except ImportError:
        missing.append("typer._param_types.coerce_cli_path")
    usage, _ = usage_error_types()
    if not issubclass(typer.BadParameter, usage):
        missing.append("typer.BadParameter as a subclass of typer._click.exceptions.UsageError")
    return missing


def usage_error_types() -> tuple[type, type | tuple]:
    """``(UsageError, NoArgsIsHelpError)`` of the click that Typer runs on (``()`` for the second where that
    click has no such class). ``typer.BadParameter`` is a subclass of the first."""
    try:
        from typer._click import exceptions
    except ImportError:  # a Typer on plain click
        from click import exceptions
    return exceptions.UsageError, getattr(exceptions, "NoArgsIsHelpError", ())


def plain_metavar(param) -> None:
    """``MODEL`` / ``PATHS...`` for arguments, ``INTEGER`` / ``TEXT`` / ``PATH`` for options."""
    if param.metavar is not None or getattr(param, "is_flag", False):
        return
    if param.param_type_name == "argument":
        name = param.name.upper() + ("..." if param.nargs != 1 else "")
        param.metavar = name
        param.get_usage_pieces = lambda ctx: [name if param.required else f"[{name}]"]
        param.display_type_rich = lambda ctx: None
    else:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        while getattr(annotation, "__args__", None):  # list[str] -> str, Optional[int] -> int
            annotation = annotation.__args__[0]
        param.metavar = _TYPE_NAMES.get(getattr(annotation, "__name__", ""), "TEXT")


def light_coercion(param) -> None:
    """Convert a plain parameter without pydantic; any other parameter, or another Typer whose internals
    differ, keeps Typer's own conversion."""
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
