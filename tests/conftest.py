from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The default thread count and the busy-machine line follow the load average (edgecnn.threads); tests run
# on 1 thread whatever else loads the machine: the same bits and stderr every time, and tiny models train
# fastest so on a shared 2-core box (benchmarks/results/*/train_threads.md).
os.environ.setdefault("EDGECNN_THREADS", "1")



@pytest.fixture(autouse=True)
def _torch_threads_as_configured():
    """Every test starts with torch on EDGECNN_THREADS threads, whatever an earlier test left (a CLI test
    applies it for the rest of the process; FP32 results of ill-conditioned nets depend on the count).
    torch is not imported here: torch-free tests stay torch-free."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(os.environ["EDGECNN_THREADS"]))
    yield


# Block torch in a child interpreter the way an edge device lacks it: `import torch` raises.
TORCH_BLOCKER = "import sys; sys.modules['torch'] = None\n"


def run_python(code: str, *, block_torch: bool = False, cwd: Path | None = None, timeout: int = 300):
    """Run ``code`` in a fresh interpreter; returns CompletedProcess (text)."""
    src = (TORCH_BLOCKER if block_torch else "") + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, cwd=cwd or ROOT,
                          env=env, timeout=timeout)


def run_cli(*args: str, block_torch: bool = False, cwd: Path | None = None, timeout: int = 300):
    """Run ``edgecnn ARGS`` as a real subprocess (optionally with torch blocked)."""
    code = f"import sys; sys.argv = ['edgecnn', *{list(args)!r}]\nfrom edgecnn.cli.main import main; main()\n"
    return run_python(code, block_torch=block_torch, cwd=cwd, timeout=timeout)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private edgecnn cache ($EDGECNN_HOME: weights, device profiles), for this process and its children."""
    monkeypatch.setenv("EDGECNN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    from edgecnn.cli.main import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
