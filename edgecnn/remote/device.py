"""One device over SSH: probe it, make sure a matching edgecnn runs there (installing it with
``--install``), ship files content-addressed, and start ``edgecnn`` commands through the agent.

Files land in ``~/.edgecnn/files/<sha256>/<name>`` on the device through a temporary name, so a file
already there is never sent again and an interrupted upload leaves nothing a later run could mistake
for a whole file: a rerun resumes from what the device has.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import edgecnn
from edgecnn.fileio import sha256
from edgecnn.remote import agent, wheel
from edgecnn.remote.ssh import Connection, RemoteError

DEFAULT_PYTHON = "~/.edgecnn/venv/bin/python"
_AGENT_SOURCE = Path(agent.__file__).read_text()
_NO_PYTHON = 97


def python_expr(path: str) -> str:
    """A remote path as a POSIX shell word, ``~`` expanded on the device."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + (shlex.quote(path[1:]) if len(path) > 1 else "")
    return shlex.quote(path)


def agent_command(python: str, command: str, *args: str) -> str:
    """The remote shell command running the agent with ``python`` when it runs, else with ``python3``
    (EDGECNN_AGENT_FALLBACK=1 tells the agent so). Wrapped in ``sh -c`` whatever the login shell is."""
    run = f'-c {shlex.quote(_AGENT_SOURCE)} {shlex.quote(command)} "$P" ' + " ".join(shlex.quote(a) for a in args)
    script = (f'P={python_expr(python)}; '
              f'if command -v "$P" >/dev/null 2>&1; then exec "$P" {run}; fi; '
              f'if command -v python3 >/dev/null 2>&1; then export EDGECNN_AGENT_FALLBACK=1; exec python3 {run}; fi; '
              f'exit {_NO_PYTHON}')
    return "sh -c " + shlex.quote(script)


def _reply(conn: Connection, proc: subprocess.CompletedProcess) -> dict:
    """The agent's JSON answer, or RemoteError with the device's or ssh's cause."""
    if proc.returncode == _NO_PYTHON:
        raise RemoteError(conn.target, "no Python 3 on the device; install python3 (>= 3.10) there or point "
                                       "--remote-python at one")
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if proc.returncode == 255 or not isinstance(answer, dict):
        raise conn.failure(proc.stderr if proc.returncode == 255 or not proc.stderr else
                           b"the device's Python failed: " + proc.stderr.strip().splitlines()[-1])
    if "error" in answer:
        raise RemoteError(conn.target, answer["error"])
    return answer


@dataclass
class Upload:
    local: Path
    sha: str
    size: int

    @property
    def key(self) -> str:
        return f"{self.sha}/{self.local.name}"


@dataclass
class Device:
    """A prepared device: ``python`` runs a matching edgecnn; ``info`` is what the agent reported."""

    conn: Connection
    python: str = DEFAULT_PYTHON
    say: Callable[[str], None] = print
    info: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.conn.target

    def call(self, command: str, *args: str, data: bytes | None = None, stdin=None, timeout: float | None = 120):
        return _reply(self.conn, self.conn.run(agent_command(self.python, command, *args), data=data, stdin=stdin,
                                               timeout=timeout))

    def probe(self, uploads: list[Upload] = ()) -> dict:
        self.info = self.call("probe", *(u.key for u in uploads))
        if not self.info["python_ok"]:
            where = "--remote-python " + self.python if self.info["is_target"] else "python3"
            raise RemoteError(self.target, f"Python {self.info['python']} on the device ({where}) is too old: "
                                           "edgecnn needs >= 3.10; install a newer one and pass --remote-python PATH")
        return self.info

    def problem(self, expected: str | None = None) -> str | None:
        """Why the edgecnn on the device cannot run this bench (None when it can): it must have the sources
        of the local edgecnn (``expected``: that fingerprint, default this checkout's)."""
        info, local = self.info, edgecnn.__version__
        if not info["is_target"]:
            return f"no edgecnn on the device ({self.python} not found; Python {info['python']} is there)"
        if info["edgecnn"] is None:
            return f"no edgecnn in {self.python} on the device"
        if info.get("missing"):
            return f"edgecnn's dependencies are missing on the device: {', '.join(info['missing'])}"
        theirs = info["edgecnn"]
        if theirs["fingerprint"] != (expected or wheel.local_fingerprint()):
            same = theirs["version"] == local
            return (f"edgecnn {theirs['version']} on the device differs from the local {local}"
                    + (" (same version, other sources)" if same else ""))
        return None

    def ensure_edgecnn(self, install: bool, wheels: list[Path]) -> None:
        """Refuse a missing or mismatched edgecnn unless ``install``; with it, ship and install the wheel."""
        problem = self.problem()
        if problem is None:
            self.say(f"edgecnn {edgecnn.__version__} ready ({self.python}, Python {self.info['python']}, "
                     f"{self.info['machine']})")
            return
        if not install:
            mismatch = self.info.get("edgecnn") and not self.info.get("missing")
            fix = "replace it with this one" if mismatch else "set it up"
            raise RemoteError(self.target, f"{problem}; rerun with --install to {fix}")
        self.say(f"{problem}: installing")
        built = wheel.build_wheel()
        ups = [prepare_upload(p) for p in [built, *wheels]]
        self.info["present"] = self.call("probe", *(u.key for u in ups))["present"]
        paths = self.upload(ups)
        self.call("install", paths[0], *(["--find-links", *paths[1:]] if wheels else []), timeout=None)
        self.probe()
        problem = self.problem(wheel.wheel_fingerprint(built))
        if problem is not None:
            raise RemoteError(self.target, f"after --install: {problem}")
        self.say(f"installed edgecnn {edgecnn.__version__} into {self.python}"
                 + (f" with {len(wheels)} wheels from --wheels" if wheels else ""))

    def upload(self, uploads: list[Upload]) -> list[str]:
        """Remote paths of ``uploads`` (in order); sends only those the last probe did not find."""
        present = set(self.info.get("present", ()))
        todo = [u for u in uploads if u.key not in present]
        need, free = sum(u.size for u in todo), self.info.get("free_bytes")
        if todo and free is not None and need > free:
            raise RemoteError(self.target, f"disk full on the device: {need / 1e6:.1f} MB to upload, "
                                           f"{free / 1e6:.1f} MB free in {self.info['home']}")
        for u in todo:
            with open(u.local, "rb") as f:
                self.call("put", u.sha, u.local.name, str(u.size), stdin=f, timeout=None)
        skipped = len(uploads) - len(todo)
        if todo or skipped:
            self.say(f"upload: {len(todo)} sent ({need / 1e6:.1f} MB), {skipped} already on the device")
        return [f"{self.info['home']}/files/{u.key}" for u in uploads]


def prepare_upload(path: str | Path) -> Upload:
    p = Path(path)
    return Upload(p, sha256(p), p.stat().st_size)
