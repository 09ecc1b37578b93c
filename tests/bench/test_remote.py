"""``edgecnn bench --remote``: a real OpenSSH server on 127.0.0.1 plays the devices.

Each "device" is a key whose ``environment=`` gives it its own HOME under the test's folder, so
``~/.edgecnn`` (venv, files) of every device is a fresh folder. The first device is prepared with
``--install --wheels``: the wheel of this checkout plus dependency wheels rebuilt from this venv's
installed packages (no download), into a venv made by the device's own ``python3`` (no torch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecnn.cli.main import app
from edgecnn.fileio import sha256
from edgecnn.remote import wheel
from edgecnn.remote.agent import fingerprint
from edgecnn.remote.fleet import forward_argv
from edgecnn.remote.ssh import cause
from tests.bench import sshd as sshd_mod
from tests.bench.repack import dependency_wheels
from tests.onnx_models import classifier

AGENT = Path(__file__).resolve().parents[2] / "edgecnn" / "remote" / "agent.py"
QUICK = ("--runs", "5", "--warmup", "1")


# ---- without an SSH server ---------------------------------------------------------------------

@pytest.mark.parametrize("stderr, expected", [
    # OpenSSH 9's own messages for each fault
    ("ssh: Could not resolve hostname raspberrypi: Name or service not known", "cannot resolve the host name"),
    ("ssh: connect to host 127.0.0.1 port 2: Connection refused", "connection refused"),
    ("ssh: connect to host 10.0.0.7 port 22: No route to host", "host unreachable"),
    ("ssh: connect to host 10.0.0.7 port 22: Connection timed out", "host unreachable"),
    ("pi@raspberrypi: Permission denied (publickey,password).", "authentication refused"),
    ("Host key verification failed.", "host key unknown or changed"),
    ("Connection to 127.0.0.1 closed by remote host.", "connection dropped"),
    ("client_loop: send disconnect: Broken pipe", "connection dropped"),
    ("Timeout, server 10.0.0.7 not responding.", "connection dropped"),
    ("Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.\nsomething odd",
     "ssh failed: something odd"),
])
def test_ssh_messages_become_one_line_causes(stderr, expected):
    assert cause(stderr).startswith(expected)


def test_a_target_that_looks_like_an_ssh_option_is_refused(tmp_path):
    model = classifier(tmp_path / "m.onnx")
    res = CliRunner().invoke(app, ["bench", str(model), "--remote", "-oProxyCommand=touch /tmp/x", *QUICK,
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "--remote takes an ssh destination" in res.stderr
    assert not (tmp_path / "out").exists()


def test_only_device_side_options_are_forwarded():
    import typer.main

    cmd = typer.main.get_command(app).commands["bench"]
    ctx = cmd.make_context("bench", ["m.onnx", "--precision", "fp32,int8", "--runs", "7", "--peak", "--remote", "a",
                                     "--remote", "b", "--install", "--out", "x", "--format", "json", "--plot"])
    argv = forward_argv(cmd, ctx.params)
    assert argv == ["--precision", "fp32,int8", "--runs", "7", "--peak"]


def test_the_remote_side_imports_without_torch():
    from tests.conftest import run_python

    proc = run_python("""
        import edgecnn.remote.fleet, edgecnn.remote.device, edgecnn.remote.wheel, sys
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None], "torch was imported"
        print("ok")
    """, block_torch=True)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_fingerprint_follows_the_sources_the_wheel_holds(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "stray").mkdir()
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    first = fingerprint(str(pkg))
    (pkg / "stray" / "notes.py").write_text("not a package: the wheel leaves it out\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.py").write_text("")
    assert fingerprint(str(pkg)) == first
    (pkg / "sub" / "__init__.py").write_text("y = 2\n")
    assert fingerprint(str(pkg)) != first


def test_no_wheel_for_the_device_names_the_package_and_the_way_out(tmp_path):
    from edgecnn.remote.agent import _pip_cause

    # pip's real answer when neither the index nor --wheels has a package for this platform (nothing downloads)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed",
                           "--no-index", "--find-links", str(tmp_path), "onnxruntime>=1.17"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    why = _pip_cause(proc.stdout + proc.stderr, "installing edgecnn's dependencies")
    assert why.startswith("no onnxruntime wheel for this device (") and "--wheels DIR" in why


def test_a_full_disk_is_found_before_uploading(tmp_path):
    from edgecnn.remote.device import Device, prepare_upload
    from edgecnn.remote.ssh import RemoteError

    class Unused:  # no command may be sent
        target = "pi@raspberrypi"

    big = tmp_path / "big.onnx"
    big.write_bytes(b"x" * 3_000_000)
    dev = Device(Unused(), info={"present": [], "free_bytes": 1_000_000, "home": "/home/pi/.edgecnn"})
    with pytest.raises(RemoteError, match=r"^pi@raspberrypi: disk full on the device: 3.0 MB to upload, 1.0 MB free"):
        dev.upload([prepare_upload(big)])


def _agent(home: Path, *args: str, data: bytes = b"") -> tuple[int, dict]:
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run([sys.executable, str(AGENT), *args], input=data, capture_output=True, env=env, timeout=60)
    return proc.returncode, json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_upload_is_content_addressed_and_never_half_written(tmp_path):
    import hashlib

    data = os.urandom(3000)
    sha = hashlib.sha256(data).hexdigest()
    code, out = _agent(tmp_path, "put", sys.executable, sha, "m.onnx", "3000", data=data[:1000])  # link drops
    assert code == 1 and "cut off after 1000 of 3000 bytes" in out["error"]
    code, out = _agent(tmp_path, "put", sys.executable, sha, "m.onnx", "3000", data=data[:2999] + b"x")
    assert code == 1 and "corrupted" in out["error"]
    files = tmp_path / ".edgecnn" / "files"
    assert not list(files.rglob("*")) and not list((tmp_path / ".edgecnn" / "tmp").iterdir())
    code, out = _agent(tmp_path, "put", sys.executable, sha, "m.onnx", "3000", data=data)
    assert code == 0 and Path(out["path"]).read_bytes() == data and Path(out["path"]).parent.name == sha
    # the same bytes under another name are found by their hash, not sent again
    code, out = _agent(tmp_path, "probe", sys.executable, f"{sha}/copy.onnx", f"{'0' * 64}/other.onnx")
    assert out["present"] == [f"{sha}/copy.onnx"]
    assert (files / sha / "copy.onnx").read_bytes() == data


# ---- against a real sshd -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = sshd_mod.available()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("sshd")
    srv = sshd_mod.Sshd(root).start(devices=("dev-a", "dev-b", "dev-c"), no_python=("dev-nopy",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGECNN_SSH_COMMAND", srv.ssh_command)
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        # The checkout this test runs from may be edited while it runs (other work in the same tree); the
        # device is compared with the wheel built once here, as a user's checkout that holds still.
        built = wheel.build_wheel()
        mp.setattr(wheel, "local_fingerprint", lambda: wheel.wheel_fingerprint(built))
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return classifier(tmp_path_factory.mktemp("model") / "tiny.onnx")


def bench(*args: str):
    return CliRunner().invoke(app, ["bench", *args])


def host_rows(out_dir: Path) -> tuple[dict, list[dict]]:
    doc = json.loads(next(out_dir.glob("bench-*.json")).read_text())
    return doc, doc["rows"]


@pytest.fixture(scope="module")
def installed(server, model, tmp_path_factory):
    """dev-a prepared from nothing: --install with the local wheel and dependency wheels."""
    folder = dependency_wheels(tmp_path_factory.mktemp("wheels"), "edgecnn")[0].parent
    out = tmp_path_factory.mktemp("out-install")
    t0 = time.monotonic()
    res = bench(str(model), "--remote", "dev-a", "--install", "--wheels", str(folder), *QUICK, "--out", str(out))
    return res, out, time.monotonic() - t0


@pytest.mark.slow
def test_fresh_device_is_installed_and_benched_with_the_local_run(server, model, installed):
    res, out, _ = installed
    assert res.exit_code == 0, res.output
    assert "[dev-a] installed edgecnn" in res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[0] == "host"
    assert [ln.split()[0] for ln in lines[2:4]] == ["local", "dev-a"] and all(" tiny " in ln for ln in lines[2:4])
    assert "host dev-a: " in res.stdout  # the device's environment line under the table
    home = server.devices["dev-a"] / ".edgecnn"
    venv_python = home / "venv" / "bin" / "python"
    probe = subprocess.run([str(venv_python), "-c", "import edgecnn, onnxruntime; import torch"],
                           capture_output=True, text=True)
    assert "No module named 'torch'" in probe.stderr  # the device side is torch-free
    assert (home / "files" / sha256(model) / "tiny.onnx").read_bytes() == model.read_bytes()
    doc, rows = host_rows(out)
    assert set(doc["hosts"]) == {"local", "dev-a"}
    remote = [r for r in rows if r["host"] == "dev-a"]
    assert len(remote) == 1 and remote[0]["status"] == "ok" and remote[0]["target"] == str(model)
    # measured by the installed wheel, not this checkout: the device has no git commit to report
    assert remote[0]["environment"]["git_commit"] is None
    assert remote[0]["latency_ms"]["n"] == 5


@pytest.mark.slow
def test_second_run_reuses_the_device(server, model, installed, tmp_path):
    res = bench(str(model), "--remote", "dev-a", *QUICK, "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "[dev-a] upload: 0 sent (0.0 MB), 1 already on the device" in res.stderr
    assert "installing" not in res.stderr
    assert "[dev-a] edgecnn 0.1.0 ready" in res.stderr


@pytest.mark.slow
def test_two_devices_and_the_local_run_make_one_table(server, model, installed, tmp_path):
    python = str(server.devices["dev-a"] / ".edgecnn" / "venv" / "bin" / "python")
    res = bench(str(model), "--remote", "dev-a", "--remote", "dev-b", "--remote-python", python, *QUICK,
                "--precision", "fp32,fp16", "--html", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    doc, rows = host_rows(tmp_path)
    assert list(doc["hosts"]) == ["local", "dev-a", "dev-b"]
    page = next(tmp_path.glob("bench-*.html")).read_text()
    assert "<th>host</th>" in page and page.count("<td>dev-b</td>") == 2 and "host dev-b: " in page
    assert sorted((r["host"], r["precision"]) for r in rows) == sorted(
        (h, p) for h in ("local", "dev-a", "dev-b") for p in ("fp32", "fp16"))
    assert (server.devices["dev-b"] / ".edgecnn" / "files" / sha256(model) / "tiny.onnx").is_file()
    assert sorted(ln.split()[0] for ln in res.stdout.splitlines()[2:8]) == sorted(["local", "dev-a", "dev-b"] * 2)


@pytest.mark.slow
def test_each_failing_device_is_one_line_and_the_others_still_report(server, model, installed, tmp_path):
    wrong_port = f"ssh://{server.user}@127.0.0.1:{sshd_mod.free_port()}"
    res = bench(str(model), "--remote", wrong_port, "--remote", "stranger", "--remote", "dev-c",
                "--remote", "dev-nopy", "--remote", "dev-a", *QUICK, "--out", str(tmp_path))
    assert res.exit_code == 1
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error: ")]
    assert errors == [
        f"Error: {wrong_port}: connection refused: no SSH server listens on that host and port",
        "Error: stranger: authentication refused (keys and ssh-agent only, never a password: install your key "
        "with ssh-copy-id)",
        "Error: dev-c: no edgecnn on the device (~/.edgecnn/venv/bin/python not found; Python "
        f"{'.'.join(map(str, sys.version_info[:3]))} is there); rerun with --install to set it up",
        "Error: dev-nopy: no Python 3 on the device; install python3 (>= 3.10) there or point --remote-python at one",
    ]
    doc, rows = host_rows(tmp_path)
    assert [r["host"] for r in rows] == ["local", "dev-a"]
    assert doc["remote_failures"] == [e[len("Error: "):] for e in errors]
    assert not (server.devices["dev-c"] / ".edgecnn" / "venv").exists()


def _device_bench_pids(home: Path) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if p.name.isdigit() and cmd and cmd[0].startswith(str(home).encode()) and b"bench" in cmd:
            found.append(int(p.name))
    return found


@pytest.mark.slow
def test_a_dropped_connection_stops_the_device_run_and_keeps_the_rest(server, model, installed, tmp_path):
    home = server.devices["dev-a"]
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("res", bench(
        str(model), "--remote", "dev-a", "--paced", "40", "--runs", "120", "--out", str(tmp_path))))  # 3 s each
    worker.start()
    deadline = time.monotonic() + 60
    while not _device_bench_pids(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _device_bench_pids(home), "the bench never started on the device"
    for pid in server.sessions():  # the server side of every connection goes away at once
        os.kill(pid, signal.SIGKILL)
    worker.join(60)
    assert "res" in result, "bench --remote did not notice the dropped connection"
    res = result["res"]
    assert res.exit_code == 1
    assert "Error: dev-a: connection dropped" in res.stderr
    _, rows = host_rows(tmp_path)
    assert [(r["host"], r["status"]) for r in rows] == [("local", "ok")]  # the local rows are still reported
    deadline = time.monotonic() + 15
    while _device_bench_pids(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _device_bench_pids(home), "the bench kept running on the device"


@pytest.mark.slow
def test_ctrl_c_stops_the_device_run_and_writes_nothing(server, model, installed, tmp_path):
    home, out = server.devices["dev-a"], tmp_path / "out"
    # a real process (Ctrl-C is a signal), with the same pinned fingerprint as this module (see `server`)
    argv = ["edgecnn", "bench", str(model), "--remote", "dev-a", "--paced", "20", "--runs", "400", "--out", str(out)]
    pinned = wheel.local_fingerprint()
    code = (f"import sys; import edgecnn.remote.wheel as w; w.local_fingerprint = lambda: {pinned!r}\n"
            f"sys.argv = {argv!r}\nfrom edgecnn.cli.main import main; main()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not _device_bench_pids(home) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert _device_bench_pids(home), proc.communicate()[1] if proc.poll() is not None else "no bench on the device"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    deadline = time.monotonic() + 15
    while _device_bench_pids(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _device_bench_pids(home), "the bench kept running on the device"
    assert not out.exists() or not any(out.iterdir()), err


@pytest.mark.slow
def test_a_zoo_name_is_exported_here_and_its_file_shipped(server, installed, tmp_path):
    pytest.importorskip("torch")
    res = bench("lenet5", "--remote", "dev-a", *QUICK, "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    _, rows = host_rows(tmp_path)
    assert [(r["host"], r["target"], r["model"], r["file"]) for r in rows] == [
        ("local", "lenet5", "lenet5", None), ("dev-a", "lenet5", "lenet5", None)]
    shipped = list((server.devices["dev-a"] / ".edgecnn" / "files").glob("*/lenet5.onnx"))
    assert len(shipped) == 1 and shipped[0].parent.name == sha256(shipped[0])
