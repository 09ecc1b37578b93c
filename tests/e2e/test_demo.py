from tests.conftest import run_cli


def test_demo_runs_and_checks_cards():
    r = run_cli("demo", "--model", "simplecnn", "--model", "mobilenetv1", "--runs", "1")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.split()[:1] in (["simplecnn"],
                                                                                           ["mobilenetv1"])}
    assert "52,138" in rows["simplecnn"] and rows["simplecnn"].rstrip().endswith("ok")
    assert "4,231,976" in rows["mobilenetv1"] and "568.74M" in rows["mobilenetv1"]


def test_demo_unknown_model():
    r = run_cli("demo", "--model", "lenet")
    assert r.returncode == 1 and r.stderr.startswith("Error: unknown model 'lenet'; did you mean 'lenet5'?")
