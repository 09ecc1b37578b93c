"""Training options that had no test: --overwrite, the divergence stop, --optimizer adamw,
--schedule step, --label-smoothing, --workers, and Ctrl-C. Tiny runs on the generated shapes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgecnn.train.checkpoint import load_checkpoint
from edgecnn.train.loop import TrainConfig, lr_factor, train
from edgecnn.train.task import ClassifyTask
from tests.conftest import ROOT
from tests.train.conftest import quiet


def _cfg(shapes_dir, out, **kw) -> TrainConfig:
    # 128 train images, batch 16: 8 optimizer steps an epoch
    return TrainConfig(**{"model": "simplecnn", "data": str(shapes_dir), "epochs": 1, "batch_size": 16,
                          "input_size": 28, "out": str(out), **kw})


def test_overwrite(shapes_dir, tmp_path, cli):
    out = tmp_path / "run"
    train(_cfg(shapes_dir, out), echo=quiet, warn=quiet)
    before = (out / "last.pt").read_bytes()
    args = ["train", "simplecnn", "--data", str(shapes_dir), "--input-size", "28", "--epochs", "2",
            "--batch-size", "16", "--out", str(out)]
    r = cli(*args)
    assert r.exit_code == 1
    assert r.stderr == (f"Error: {out} already holds a run (last.pt); continue it with --resume, or pass "
                        "--overwrite or another --out\n")
    assert (out / "last.pt").read_bytes() == before  # nothing touched
    r = cli(*args, "--overwrite")
    assert r.exit_code == 0, r.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == 2  # a fresh 2-epoch run, not the old one resumed
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 2


def test_a_diverging_loss_stops_the_run(shapes_dir, tmp_path, cli):
    r = cli("train", "simplecnn", "--data", str(shapes_dir), "--input-size", "28", "--epochs", "2",
            "--batch-size", "16", "--lr", "1e12", "--warmup-epochs", "0", "--out", str(tmp_path / "run"))
    assert r.exit_code == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: the loss became ") and line.endswith("; lower --lr (the last checkpoint is kept)")
    value = line.split("the loss became ")[1].split(" ")[0]
    assert not math.isfinite(float(value))
    assert "Traceback" not in r.stderr


def test_adamw_is_the_optimizer_in_the_checkpoint(shapes_dir, tmp_path):
    train(_cfg(shapes_dir, tmp_path / "a", optimizer="adamw"), echo=quiet, warn=quiet)
    opt = load_checkpoint(tmp_path / "a" / "last.pt")["optimizer"]
    state = next(iter(opt["state"].values()))
    assert {"exp_avg", "exp_avg_sq"} <= set(state) and "momentum_buffer" not in state
    decay = [g for g in opt["param_groups"] if not g["name"].endswith("no_decay")]
    assert decay and all(g["weight_decay"] == 0.05 and g["base_lr"] == 1e-3 for g in decay)  # adamw defaults
    train(_cfg(shapes_dir, tmp_path / "s"), echo=quiet, warn=quiet)
    state = next(iter(load_checkpoint(tmp_path / "s" / "last.pt")["optimizer"]["state"].values()))
    assert "momentum_buffer" in state and "exp_avg" not in state


def test_lr_factor_by_hand():
    # step: x0.1 at 50% and 75% of the run; cosine: half-way is half; both after a linear warm-up
    assert [lr_factor(s, 100, 0, "step") for s in (0, 49, 50, 74, 75, 99)] == [1, 1, 0.1, 0.1, 0.1 ** 2, 0.1 ** 2]
    assert lr_factor(50, 100, 0, "cosine") == pytest.approx(0.5)
    assert lr_factor(0, 100, 10, "step") == pytest.approx(0.1) and lr_factor(9, 100, 10, "cosine") == 1.0
    assert lr_factor(60, 100, 0, "none") == 1.0


def test_step_schedule_in_the_log(shapes_dir, tmp_path):
    """4 epochs x 8 steps, no warm-up: steps 0-15 at the base rate, 16-23 x0.1, 24-31 x0.01; the log
    records the rate of each epoch's last step."""
    res = train(_cfg(shapes_dir, tmp_path / "run", epochs=4, schedule="step", warmup_epochs=0.0, lr=0.02),
                echo=quiet, warn=quiet)
    assert [row["lr"] for row in res["history"]] == pytest.approx([0.02, 0.02, 0.002, 0.0002])


def test_label_smoothing_is_the_smoothed_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    model = torch.nn.Identity()
    eps = 0.3
    loss, n, _ = ClassifyTask(eps).step(model, logits, y)
    logp = logits.log_softmax(1)
    target = torch.full((6, 4), eps / 4)
    target[torch.arange(6), y] += 1 - eps  # the true class keeps 1 - eps, every class gets eps / K
    assert n == 6 and loss.item() == pytest.approx(float(-(target * logp).sum(1).mean()), rel=1e-6)
    assert ClassifyTask(0.0).step(model, logits, y)[0].item() == pytest.approx(float(-logp[torch.arange(6), y].mean()))


def test_label_smoothing_reaches_the_run(shapes_dir, tmp_path):
    train(_cfg(shapes_dir, tmp_path / "run", label_smoothing=0.2), echo=quiet, warn=quiet)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["train"]["label_smoothing"] == 0.2


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a worker and a training thread need 2 cores")
def test_workers_give_the_same_run(shapes_dir, tmp_path):
    """Worker processes change where samples are decoded, not which or in what order: same weights.

    The two runs train in a fresh process: forking DataLoader workers from the suite's process, after the
    hundreds of tests before it have loaded onnxruntime's and OpenVINO's thread pools (and AMX state on an AMX
    host), died of SIGSEGV in CI (twice in a row on an AMX Xeon; alone this test passes)."""
    code = (
        "import sys, torch\n"
        "from edgecnn.train.checkpoint import load_checkpoint\n"
        "from edgecnn.train.loop import TrainConfig, train\n"
        "data, out = sys.argv[1], sys.argv[2]\n"
        "def cfg(o, **kw):\n"
        "    return TrainConfig(model='simplecnn', data=data, epochs=2, batch_size=16, input_size=28, out=o,\n"
        "                       threads=1, seed=0, device='cpu', **kw)\n"
        "quiet = lambda *a, **k: None\n"
        "a = train(cfg(out + '/w0'), echo=quiet, warn=quiet)\n"
        "b = train(cfg(out + '/w1', workers=1), echo=quiet, warn=quiet)\n"
        "assert [r['train_loss'] for r in a['history']] == [r['train_loss'] for r in b['history']], 'losses differ'\n"
        "sa = load_checkpoint(out + '/w0/last.pt')['state_dict']\n"
        "sb = load_checkpoint(out + '/w1/last.pt')['state_dict']\n"
        "assert all(torch.equal(sa[k], sb[k]) for k in sa), 'weights differ'\n"
        "print('same', len(a['history']), len(sa))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, str(shapes_dir), str(tmp_path)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[:2] == ["same", "2"], r.stdout


def test_ctrl_c_says_interrupted_and_keeps_the_last_epoch(shapes_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["edgecnn", "train", "simplecnn", "--data", str(shapes_dir), "--input-size", "28", "--epochs", "200",
            "--batch-size", "16", "--out", str(out)]
    code = f"import sys; sys.argv = {argv!r}\nfrom edgecnn.cli.main import main; main()\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "last.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    epoch = load_checkpoint(out / "last.pt")["epoch"]
    assert err.rstrip().endswith(f"Interrupted: {out} keeps its last complete epoch ({epoch} of 200); continue with "
                                 "--resume")
    assert "Traceback" not in err
    assert epoch >= 1


@pytest.fixture
def busy(monkeypatch):
    """A 2-core machine with the load average at 9 and 8 other tasks runnable (injected: no real load
    needed); torch's thread count is restored afterwards."""
    from edgecnn import threads

    before = torch.get_num_threads()
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "load_average", lambda: 9.0)
    monkeypatch.setattr(threads, "runnable_others", lambda: 8)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    yield
    torch.set_num_threads(before)


def test_a_busy_machine_trains_on_one_thread_and_says_so_once(shapes_dir, tmp_path, cli, busy):
    args = ["train", "simplecnn", "--data", str(shapes_dir), "--input-size", "28", "--epochs", "1",
            "--batch-size", "16"]
    r = cli(*args, "--out", str(tmp_path / "auto"))
    assert r.exit_code == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if "busy" in line] == [
        "Warning: the machine is busy (load average 9.0 on 2 cores): running 1 thread, as --threads 1 (faster than 2 "
        "while other jobs hold the cores); --threads N to choose"]
    assert "on cpu, 1 thread\n" in r.stdout and torch.get_num_threads() == 1

    r = cli(*args, "--out", str(tmp_path / "two"), "--threads", "2")  # the user's choice is kept
    assert r.exit_code == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if "busy" in line] == [
        "Warning: the machine is busy (load average 9.0 on 2 cores); running 2 threads as asked, though --threads 1 "
        "is usually faster while other jobs hold the cores"]
    assert "on cpu, 2 threads\n" in r.stdout and torch.get_num_threads() == 2

    r = cli("eval", str(tmp_path / "two" / "best.pt"), "--data", str(shapes_dir))  # eval: the same rule and line
    assert r.exit_code == 0, r.stderr
    assert r.stderr.startswith("Warning: the machine is busy (load average 9.0 on 2 cores): running 1 thread")
    assert torch.get_num_threads() == 1


def test_threads_and_workers_must_fit_the_cores(shapes_dir, tmp_path, cli, busy):
    r = cli("train", "simplecnn", "--data", str(shapes_dir), "--threads", "2", "--workers", "1",
            "--out", str(tmp_path / "r"))
    assert r.exit_code == 2
    assert r.stderr == ("Error: --threads 2 with --workers 1 needs 3 cores and this process has 2; lower one "
                        "(threads + workers <= cores)\n")
