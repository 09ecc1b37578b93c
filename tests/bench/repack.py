"""Wheels of edgecnn's core dependencies rebuilt from the packages installed in this venv, for the
``--install --wheels DIR`` test: the offline device case without any download.

An installed distribution lists its files in RECORD; a wheel is those files (minus scripts and
bytecode) in a zip with a fresh RECORD. The tag is the one its WHEEL file names, so the wheels install
on this machine's Python only, which is the "device" of the tests.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

SKIP = ("INSTALLER", "RECORD", "REQUESTED", "direct_url.json")


def closure(names: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``names`` need, transitively (markers evaluated, no extras)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        dist = seen[key] = metadata.distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def repack(dist: metadata.Distribution, out: Path) -> Path:
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    tags = [line.split(":", 1)[1].strip().split("-") for line in dist.read_text("WHEEL").splitlines()
            if line.startswith("Tag:")]
    # compressed tag set (py2.py3-none-any): each field's values in their first-seen order
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    target = out / f"{name}-{dist.version}-{tag}.whl"
    records = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        info_dir = None
        for f in dist.files:
            rel = f.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            if rel.endswith(".dist-info/METADATA"):
                info_dir = rel.rsplit("/", 1)[0]
            if Path(rel).name in SKIP and ".dist-info/" in rel:
                continue
            data = Path(f.locate()).read_bytes()
            z.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{rel},sha256={digest},{len(data)}")
        records.append(f"{info_dir}/RECORD,,")
        z.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return target


def dependency_wheels(out: Path, dist_name: str) -> list[Path]:
    """Wheels of everything the installed ``dist_name`` needs (its core requirements, not itself)."""
    out.mkdir(parents=True, exist_ok=True)
    own = re.sub(r"[-_.]+", "-", dist_name).lower()
    return [repack(d, out) for d in closure([dist_name])
            if re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() != own]
