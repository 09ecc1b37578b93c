"""bf16 (OpenVINO's bf16 inference precision, ``edgecnn.bf16``): the cases live in ``bf16_cases.py`` and run
here in a process of their own.

Why a process of its own: OpenVINO's bf16 kernels run on AMX on a CPU that has it, and a test process that
has run them and then trains with DataLoader worker processes dies of SIGSEGV (reproduced on an AMX Xeon:
``pytest bf16_cases.py tests/train/test_options.py`` in one process crashes in
``test_workers_give_the_same_run`` 4 runs of 4; each file alone passes). Keeping the AMX state out of the
suite's process keeps the rest of the suite independent of the host's ISA.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_bf16_cases_pass_in_their_own_process():
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "bf16_cases.py")],
                       cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout.splitlines()[-1] and "failed" not in r.stdout.splitlines()[-1]
