"""The device install the README describes: build the wheel from this checkout, install it into a fresh
venv that has no torch, run ``edgecnn infer`` from there.

No network: the fresh venv (``--without-system-site-packages``, the default) gets the wheel's runtime
dependencies -- onnxruntime, onnx, NumPy, Pillow, Typer and what they need, nothing else -- linked in
from this environment, so ``pip install --no-index`` resolves the wheel's declared requirements against
exactly those and fails if the wheel asked for anything more (torch above all)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker

from tests import onnx_models
from tests.conftest import ROOT

RUNTIME = ["onnxruntime", "onnx", "numpy", "pillow", "typer"]  # what the README promises the device needs


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The distributions ``names`` need at run time (no extras), from this environment."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        key = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if key in seen:
            continue
        seen[key] = dist
        for req in dist.requires or []:
            name, _, marker = req.partition(";")
            if marker and ("extra" in marker or not Marker(marker).evaluate()):
                continue
            todo.append(re.match(r"[A-Za-z0-9_.\-]+", name.strip()).group(0))
    return list(seen.values())


def _link_into(dists: list[metadata.Distribution], site: Path) -> None:
    """Make ``dists`` installed in ``site``: symlink their top-level packages and .dist-info folders."""
    for dist in dists:
        root = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top != "__pycache__" and not (site / top).exists():
                (site / top).symlink_to(root / top)


@pytest.mark.slow
def test_wheel_installs_torch_free_and_runs_infer(tmp_path):
    dists = _closure(RUNTIME)
    assert "torch" not in {d.metadata["Name"].lower() for d in dists}
    # 1. the wheel, as on the build machine (no build isolation: no index needed for setuptools)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        str(ROOT), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("edgecnn-*.whl"))
    # 2. a fresh venv on the "device": its own site-packages, no system ones, the runtime deps only
    env_dir = tmp_path / "device"
    venv.create(env_dir, with_pip=True, system_site_packages=False)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    _link_into(dists, site)
    # a PYTHONPATH naming a checkout (its edgecnn.egg-info) would make pip take edgecnn as installed already
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-index", "--no-cache-dir", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=clean)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = subprocess.run([str(py), "-c", "import torch"], capture_output=True, text=True, env=clean)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr
    # the package came from the wheel, with its data file, not from this checkout
    r = subprocess.run([str(py), "-c", "import edgecnn, edgecnn.hub as h; print(edgecnn.__file__); "
                        "print(len(h.imagenet_labels()))"], capture_output=True, text=True, env=clean, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    where, n = r.stdout.split()
    assert where.startswith(str(site)) and n == "1000"
    # 3. inference from the venv's own console script
    # trained weights: a random-init model says "random weights" where the labels would be
    model = onnx_models.classifier(tmp_path / "colors.onnx", weights={"path": "c.pt", "sha256": "0" * 64})
    image = tmp_path / "red.png"
    from PIL import Image

    Image.new("RGB", (64, 48), (250, 10, 10)).save(image)
    r = subprocess.run([str(env_dir / "bin" / "edgecnn"), "infer", str(image), "--model", str(model), "--topk", "1",
                        "--format", "jsonl"], capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["predictions"][0]["label"] == "red"
    # the torch side says what to install, in one line
    r = subprocess.run([str(env_dir / "bin" / "edgecnn"), "export", "lenet5"], capture_output=True, text=True,
                       env=clean, cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert r.stderr == ('Error: edgecnn export needs torch, which is not installed; install it with: '
                        'pip install "edgecnn[torch]"\n')
