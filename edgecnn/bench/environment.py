"""The environment recorded beside every benchmark figure, and the device tag results are filed under.

Torch-free. ``capture()`` returns a JSON-ready dict: CPU model, physical/logical/usable cores, the ISA
flags that decide CNN speed on a CPU (avx2, avx512f, avx512_vnni, avx512_bf16, amx, neon/asimd,
dotprod), OS, Python, onnxruntime version and providers, NumPy, edgecnn version, git commit when run
from a checkout, hostname, load average. ``device_tag()`` turns the CPU model, core count and strongest ISA level into a
stable, filesystem-safe name (``amd-epyc-2c-avx512vnni``): the same machine kind has come with AVX2
only and with AVX-512 + VNNI, so results of different hosts never land in one folder.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import edgecnn

# Flags (as Linux /proc/cpuinfo spells them) that change how fast a CNN runs.
ISA_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve",
             "sve2")
# The strongest level present names the tag (first match wins).
_TAG_LEVELS = (("amx_int8", "amx"), ("avx512_vnni", "avx512vnni"), ("avx512f", "avx512"), ("avx_vnni", "avxvnni"),
               ("avx2", "avx2"), ("i8mm", "i8mm"), ("asimddp", "dotprod"), ("asimd", "neon"), ("neon", "neon"))
_MODEL_NOISE = re.compile(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|\b\d+-core\b|@.*$|\bwith radeon.*$|\brev\b.*$",
                          re.IGNORECASE)
_CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str | Path = _CPUINFO) -> set[str]:
    """The CPU feature flags (x86 ``flags`` or ARM ``Features`` of /proc/cpuinfo); empty where unknown.
    On macOS the ARM features are read from sysctl and spelled as Linux does (asimd, asimddp, i8mm)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return _darwin_flags() if sys.platform == "darwin" and Path(cpuinfo) == _CPUINFO else set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _darwin_flags() -> set[str]:
    names = {"hw.optional.neon": "asimd", "hw.optional.arm.FEAT_DotProd": "asimddp",
             "hw.optional.arm.FEAT_I8MM": "i8mm", "hw.optional.arm.FEAT_BF16": "bf16",
             "hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f"}
    found = set()
    for key, flag in names.items():
        if _run(["sysctl", "-n", key]) == "1":
            found.add(flag)
    return found


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model(cpuinfo: str | Path = _CPUINFO) -> str:
    """The CPU's marketing name ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8480C"), or the board's name on
    ARM boards whose cpuinfo has none, or the architecture as a last resort."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line and line.split(":", 1)[1].strip():
                return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        brand = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if brand:
            return brand
    dt = Path("/proc/device-tree/model")
    try:
        return dt.read_text().strip("\x00\n ") or platform.machine()
    except OSError:
        return platform.processor() or platform.machine() or "unknown-cpu"


def physical_cores(cpuinfo: str | Path = _CPUINFO) -> int:
    """Distinct (package, core) pairs of /proc/cpuinfo; the logical count where the file lacks them."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    pairs, phys = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            phys = value.strip()
        elif key == "core id":
            pairs.add((phys, value.strip()))
    return len(pairs) or (os.cpu_count() or 1)


def usable_cores() -> int:
    """Logical CPUs this process may run on (its affinity mask), which bounds sensible --threads."""
    from edgecnn.threads import allowed_cpus

    return len(allowed_cpus())


def checkout_root() -> Path | None:
    """The source checkout edgecnn runs from (a folder with .git and pyproject.toml), or None when it is
    installed as a package."""
    root = Path(edgecnn.__file__).resolve().parent.parent
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def git_commit() -> str | None:
    """HEAD of the checkout edgecnn runs from, with ``-dirty`` when tracked files are modified."""
    root = checkout_root()
    if root is None:
        return None
    head = _run(["git", "rev-parse", "HEAD"], cwd=root)
    if head is None:
        return None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return head + ("-dirty" if dirty else "")


def capture() -> dict:
    """Everything about this machine and software that a latency figure depends on (JSON-ready)."""
    import numpy as np
    import onnxruntime as ort

    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "physical_cores": physical_cores(),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": list(ort.get_available_providers()),
        "numpy": np.__version__,
        "edgecnn": edgecnn.__version__,
        "git_commit": git_commit(),
        "hostname": socket.gethostname(),
        # 1/5/15-minute load averages when captured: other work on the machine moves every figure
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def isa_level(isa: list[str] | set[str]) -> str:
    """The strongest ISA level in ``isa`` as used in tags: amx, avx512vnni, avx512, avxvnni, avx2, i8mm,
    dotprod, neon, or "base"."""
    present = set(isa)
    return next((name for flag, name in _TAG_LEVELS if flag in present), "base")


def device_tag(env: dict | None = None) -> str:
    """Stable, filesystem-safe name of this machine kind: CPU model, physical core count, ISA level
    (``amd-epyc-2c-avx512vnni``, ``intel-xeon-platinum-8480c-4c-amx``, ``raspberry-pi-5-model-b-4c-dotprod``).
    ``env`` is a dict from :func:`capture` (a recorded one gives the tag of the host that recorded it)."""
    if env is None:
        flags = cpu_flags()
        env = {"cpu": cpu_model(), "physical_cores": physical_cores(), "isa": [f for f in ISA_FLAGS if f in flags]}
    model = _MODEL_NOISE.sub(" ", str(env.get("cpu") or ""))
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40].strip("-") or "unknown"
    cores = int(env.get("physical_cores") or env.get("logical_cores") or 1)
    return f"{slug}-{cores}c-{isa_level(env.get('isa') or [])}"
