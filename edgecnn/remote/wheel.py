"""The torch-free wheel of the edgecnn that runs here, for ``--install`` on a device.

The wheel is built with ``pip wheel --no-deps`` from a copy of the package sources (the checkout is
left untouched, no ``build/`` folder in it) and cached by the sources' fingerprint, so a rerun
without edits ships the same file and the device skips it by its hash.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import edgecnn
from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.fileio import atomic_path
from edgecnn.remote.agent import fingerprint

PACKAGE_DIR = Path(edgecnn.__file__).resolve().parent


def local_fingerprint() -> str:
    return fingerprint(str(PACKAGE_DIR))


def source_root() -> Path:
    """The folder holding ``pyproject.toml`` beside the ``edgecnn`` package (a checkout or an sdist)."""
    root = PACKAGE_DIR.parent
    if not (root / "pyproject.toml").is_file():
        raise EdgeCNNError(f"--install builds edgecnn from its sources, but {PACKAGE_DIR} is an installed package "
                           "without them; run from a checkout of edgecnn, or install edgecnn on the device yourself")
    return root


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgecnn" / "wheels"


def build_wheel() -> Path:
    """The wheel of these sources, cached as ``~/.cache/edgecnn/wheels/<fingerprint>/edgecnn-*.whl`` (the
    folder name is the fingerprint of what the wheel holds: :func:`wheel_fingerprint`)."""
    folder = cache_dir() / local_fingerprint()
    found = sorted(folder.glob("edgecnn-*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    root = source_root()
    with tempfile.TemporaryDirectory(prefix="edgecnn-wheel-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
            if (root / name).is_file():
                shutil.copy2(root / name, src / name)
        shutil.copytree(PACKAGE_DIR, src / "edgecnn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        folder = cache_dir() / fingerprint(str(src / "edgecnn"))  # what the wheel holds, even if a file changed since
        argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", str(src),
                "-w", str(out)]
        if importlib.util.find_spec("setuptools") is not None:
            argv.insert(4, "--no-build-isolation")  # offline, and seconds faster than a fresh build env
        proc = subprocess.run(argv, capture_output=True, text=True)
        wheels = sorted(out.glob("edgecnn-*.whl"))
        if proc.returncode != 0 or not wheels:
            why = first_line(proc.stderr or proc.stdout)
            raise EdgeCNNError(f"building the edgecnn wheel for --install failed: {why}")
        with atomic_path(folder / wheels[0].name) as tmp_path:
            shutil.copyfile(wheels[0], tmp_path)
    return folder / wheels[0].name


def wheel_fingerprint(path: Path) -> str:
    return Path(path).parent.name
