"""edgecnn/cli/typer_compat.py leans on Typer internals for a fast start: these tests fail loudly, naming what
changed, when the installed Typer is not the one it was written for."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from edgecnn.cli import typer_compat
from tests.conftest import run_python

ROOT = Path(__file__).resolve().parents[2]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.match(r"\d+(\.\d+)*", text).group(0).split("."))


def test_the_installed_typer_is_in_the_tested_range_and_pyproject_pins_it():
    low, high = re.fullmatch(r">=([\d.]+),<([\d.]+)", typer_compat.TESTED).groups()
    assert _version(low) <= _version(typer.__version__) < _version(high), (
        f"typer {typer.__version__} is outside the range edgecnn/cli/typer_compat.py was tested with "
        f"({typer_compat.TESTED}): re-measure benchmarks/coldstart_bench.py --cli and update TESTED and pyproject.toml")
    assert f'"typer{typer_compat.TESTED}"' in (ROOT / "pyproject.toml").read_text()


def test_typer_still_has_what_typer_compat_uses():
    assert typer_compat.check() == [], f"typer {typer.__version__} changed: {typer_compat.check()}"


def test_plain_commands_start_without_pydantic():
    # the point of light_coercion: Typer's pydantic adapters are not imported for plain parameters
    code = """
        import sys
        sys.argv = ["edgecnn", "summary", "lenet5", "--input-size", "32", "--format", "json"]
        from edgecnn.cli.main import main
        try:
            main()
        except SystemExit as e:
            assert not e.code, e.code
        print("pydantic loaded:", "pydantic" in sys.modules, file=sys.stderr)
    """
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert "pydantic loaded: False" in r.stderr, r.stderr


def test_typer_conversion_messages_are_kept(cli):
    r = cli("summary", "lenet5", "--num-classes", "2.5")
    assert r.exit_code == 2
    assert "Input should be a valid integer, got a number with a fractional part" in r.stderr
