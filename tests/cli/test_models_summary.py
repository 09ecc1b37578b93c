import json

from edgecnn import registry
from tests.conftest import run_cli


def test_models_table_lists_every_model(cli):
    r = cli("models")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "task", "input"]
    for name in registry.names():
        assert any(line.startswith(name + " ") for line in lines), name
    assert "3,504,872" in r.stdout and "300.77M" in r.stdout


def test_models_json(cli):
    r = cli("models", "--format", "json")
    data = {d["name"]: d for d in json.loads(r.stdout)}
    assert set(data) == set(registry.names())
    assert data["resnet18"]["params"] == 11_689_512 and data["resnet18"]["input"] == [3, 224, 224]
    assert {"name", "family", "task", "input", "params", "macs", "paper"} <= set(data["lenet5"])


def test_summary_totals_equal_models(cli):
    data = json.loads(cli("summary", "mobilenetv2", "--format", "json").stdout)
    card = registry.get_card("mobilenetv2")
    assert data["params"] == card.params and data["macs"] == card.macs
    layers = [r for r in data["rows"] if r["kind"] == "layer"]
    assert sum(r["params"] for r in layers) == data["params"]
    assert sum(r["macs"] for r in layers) == data["macs"]
    assert data["rows"][0] == {"name": "features.0.0", "type": "Conv2d", "output_shape": [32, 112, 112],
                               "params": 864, "macs": 864 * 112 * 112, "kind": "layer", "saving": None}


def test_summary_table_shows_block_savings(cli):
    r = cli("summary", "mobilenetv1", "--input-size", "64")
    assert r.exit_code == 0
    block = next(line for line in r.stdout.splitlines() if line.startswith("[features.1]"))
    assert "DepthwiseSeparable" in block and "0.127x std conv (1/C_out+1/K^2=0.127)" in block
    assert "mobilenetv1: input 3x64x64 -> 1000" in r.stdout


def test_summary_options_change_the_model(cli):
    data = json.loads(cli("summary", "resnet18", "--input-size", "64x48", "--num-classes", "10",
                          "--in-channels", "1", "--format", "json").stdout)
    assert data["input_shape"] == [1, 64, 48] and data["output_shape"] == [10]
    assert data["rows"][0]["params"] == 64 * 1 * 7 * 7


def test_unknown_model_message(cli):
    r = cli("summary", "mobilenet2")
    assert r.exit_code == 1
    assert r.stderr == "Error: unknown model 'mobilenet2'; did you mean 'mobilenetv2'?\n"


def test_vanishing_feature_map_names_the_layer(cli):
    r = cli("summary", "alexnet", "--input-size", "8")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: input 3x8x8 is too small: the feature map vanishes at layer 'features.2' "
                               "(MaxPool2d)")
    assert len(r.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(cli):
    r = cli("models", "--format", "xml")
    assert r.exit_code == 2 and r.stderr == "Error: unknown --format 'xml'; choose one of: table, json\n"
    r = cli("summary", "lenet5", "--input-size", "32x40")
    assert r.exit_code == 2 and r.stderr == "Error: lenet5 takes a square input (its classifier width follows " \
        "the size), got 32x40\n"
    r = cli("summary", "lenet5", "--input-size", "big")
    assert r.exit_code == 2 and "--input-size takes S, HxW or H,W" in r.stderr


def test_every_command_help_ends_with_an_example(cli):
    for cmd in ("models", "summary", "demo"):
        assert "Example: edgecnn " + cmd in cli(cmd, "--help").stdout


def test_debug_shows_the_traceback():
    plain = run_cli("summary", "mobilenet2")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", "summary", "mobilenet2")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UnknownModelError" in debug.stderr


def test_real_subprocess_models():
    r = run_cli("models", "--format", "json")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == len(registry.names())
