"""One rule for every command's errors: a missing file or folder exits 1, a wrong option exits 2, and
either is one ``Error: ...`` line on stderr (click's usage errors included, no 4-line usage block)."""

from __future__ import annotations

import pytest
import typer

from edgecnn.cli.main import COMMANDS, app
from tests import onnx_models


def _one_line(r, code: int) -> str:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    return lines[0]


@pytest.fixture
def model(tmp_path):
    return str(onnx_models.classifier(tmp_path / "m.onnx"))


MISSING = [  # (command line, the one line it must print); run in tmp_path where none of these exist
    (["bench", "missing.onnx"], "Error: missing.onnx: no such file"),
    (["infer", "nope.jpg"], "Error: nope.jpg: no such file or folder"),
    (["inspect", "missing.onnx"], "Error: missing.onnx: no such file"),
    (["quantize", "missing.onnx", "--calib", "imgs"], "Error: missing.onnx: no such ONNX file"),
    (["eval", "missing.onnx", "--data", "nodir"], "Error: --data nodir: no such directory"),
    (["train", "lenet5", "--data", "nodir"],
     "Error: --data nodir: no such directory; give an ImageFolder or IDX directory, or 'shapes'"),
    (["export", "lenet5", "--weights", "nofile.pt"], "Error: nofile.pt: no such weights file"),
]


@pytest.mark.parametrize("args,line", MISSING, ids=[a[0] for a, _ in MISSING])
def test_a_missing_file_exits_1_in_every_command(cli, tmp_path, monkeypatch, args, line):
    monkeypatch.chdir(tmp_path)
    assert _one_line(cli(*args), 1) == line


def test_a_missing_file_given_with_model_exits_1(cli, tmp_path, model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _one_line(cli("quantize", model, "--calib", "nodir"), 1) == "Error: --calib nodir: no such folder"
    assert _one_line(cli("eval", model, "--data", "nodir"), 1) == "Error: --data nodir: no such directory"


def test_quantize_without_calib_is_one_line(cli, model):
    assert _one_line(cli("quantize", model), 2) == "Error: Missing option '--calib'; see 'edgecnn quantize -h'"


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_one_line_exit_2_in_every_command(cli, command):
    line = _one_line(cli(command, "--zzzz"), 2)
    assert line == f"Error: No such option: --zzzz; see 'edgecnn {command} -h'"


def test_click_usage_errors_are_one_line(cli):
    assert _one_line(cli("infer"), 2) == "Error: Missing argument 'PATHS...'; see 'edgecnn infer -h'"
    assert _one_line(cli("nosuch"), 2) == "Error: No such command 'nosuch'; see 'edgecnn -h'"
    assert _one_line(cli("train", "lenet5", "--epochs", "x"), 2) == (
        "Error: Invalid value for '--epochs' / '-e': Input should be a valid integer, unable to parse string as "
        "an integer; see 'edgecnn train -h'")
    assert _one_line(cli("models", "extra"), 2) == (
        "Error: Got unexpected extra argument(s) (extra); see 'edgecnn models -h'")


def test_edgecnn_usage_errors_stay_exit_2(cli):
    assert _one_line(cli("models", "--format", "xml"), 2) == "Error: unknown --format 'xml'; choose one of: table, json"


def test_a_bad_parameter_raised_inside_a_command_is_one_line(cli):
    # a command body raising typer.BadParameter (Typer's public usage error) goes through the same hook
    @app.command("_bad_for_test", hidden=True)
    def _bad() -> None:
        raise typer.BadParameter("nope")

    try:
        assert _one_line(cli("_bad_for_test"), 2) == "Error: Invalid value: nope; see 'edgecnn _bad_for_test -h'"
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "_bad_for_test"]


def test_a_command_alone_still_shows_its_help(cli):
    r = cli()
    assert r.exit_code in (0, 2) and "Usage: edgecnn" in r.stdout + r.stderr and "Error" not in r.stderr
