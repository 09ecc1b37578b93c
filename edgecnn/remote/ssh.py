"""The SSH transport: the system OpenSSH client, so ``~/.ssh/config`` aliases, keys, the agent and jump
hosts work as they do in a terminal.

BatchMode=yes: ssh never prompts, so a password is never asked for nor stored; a device must accept a
key (or the agent). One master connection per device (ControlMaster, our own child process) carries
every later command, so a probe, a few uploads and the run cost one handshake. ``EDGECNN_SSH_COMMAND``
replaces ``ssh`` the way ``GIT_SSH_COMMAND`` does for git (``EDGECNN_SSH_COMMAND="ssh -F my_config"``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edgecnn.errors import EdgeCNNError, MissingDependencyError, UsageError

SSH_COMMAND_ENV = "EDGECNN_SSH_COMMAND"
OPTIONS = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-T")


class RemoteError(EdgeCNNError):
    """A device could not be reached or used; the message starts with the target as typed."""

    def __init__(self, target: str, cause: str):
        super().__init__(f"{target}: {cause}")
        self.target, self.cause = target, cause


def check_target(target: str) -> str:
    """``alias``, ``user@host`` or ``ssh://user@host:port``, as ssh takes them; never an ssh option."""
    if not target or target.startswith("-") or any(c.isspace() or ord(c) < 32 for c in target):
        raise UsageError(f"--remote takes an ssh destination (alias, user@host or ssh://user@host:port), "
                         f"got '{target}'")
    return target


def ssh_command() -> list[str]:
    """The ssh client argv prefix (``EDGECNN_SSH_COMMAND`` or ``ssh``)."""
    argv = shlex.split(os.environ.get(SSH_COMMAND_ENV) or "ssh")
    if not argv or shutil.which(argv[0]) is None:
        raise MissingDependencyError(f"the OpenSSH client '{argv[0] if argv else ''}' is not installed; "
                                     "install it (Debian/Ubuntu: apt install openssh-client) or set "
                                     f"{SSH_COMMAND_ENV}")
    return argv


# ssh's own messages (OpenSSH 7-9) -> what a user should read; first match wins.
_CAUSES = (
    (r"Could not resolve hostname", "cannot resolve the host name (DNS); check the name or use the address"),
    (r"Connection refused", "connection refused: no SSH server listens on that host and port"),
    (r"No route to host|Network is unreachable|Connection timed out|Operation timed out|timed out during banner",
     "host unreachable (no answer on the network); check that the device is on and the address is right"),
    (r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known",
     "host key unknown or changed; connect once with plain ssh to check and accept it"),
    (r"Permission denied|Too many authentication failures|Authentication failed",
     "authentication refused (keys and ssh-agent only, never a password: install your key with ssh-copy-id)"),
    (r"closed by remote host|Connection reset|Broken pipe|Timeout, server .* not responding|Connection closed"
     r"|read from master failed|Control socket connect|mux_client|client_loop: send disconnect",
     "connection dropped"),
)
_NOISE = re.compile(r"^(Warning: Permanently added|Pseudo-terminal|debug\d:)")


def cause(stderr: str) -> str:
    """One line saying why an ssh command failed, from the client's stderr."""
    for pattern, text in _CAUSES:
        if re.search(pattern, stderr):
            return text
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not _NOISE.match(ln.strip())]
    return f"ssh failed: {lines[-1][:200]}" if lines else "ssh failed without a message"


class Connection:
    """One device: ``open()`` starts the master connection (or raises RemoteError with the cause), then
    ``run``/``popen`` send commands through it; ``close()`` ends it. A context manager."""

    def __init__(self, target: str, connect_timeout: float = 15.0):
        self.target = check_target(target)
        self.connect_timeout = connect_timeout
        self._ssh = ssh_command()
        self._dir = Path(tempfile.mkdtemp(prefix="edgecnn-ssh-"))  # short: socket paths have a length limit
        self._control = self._dir / "c"
        self._master: subprocess.Popen | None = None

    def argv(self, remote_command: str, master: bool = False) -> list[str]:
        mux = (["-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no"] if master
               else ["-o", "ControlMaster=no"])
        tail = [self.target] if master else [self.target, remote_command]
        return [*self._ssh, *OPTIONS, "-o", f"ConnectTimeout={int(self.connect_timeout)}",
                "-o", f"ControlPath={self._control}", *mux, *tail]

    def open(self) -> Connection:
        log = self._dir / "master.log"
        with open(log, "wb") as err:
            self._master = subprocess.Popen(self.argv("", master=True), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + self.connect_timeout + 10
        while not self._control.exists():
            if self._master.poll() is not None:
                raise RemoteError(self.target, cause(log.read_text(errors="replace")))
            if time.monotonic() > deadline:
                self.close()
                raise RemoteError(self.target, "host unreachable (no SSH answer in time)")
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return self._master is not None and self._master.poll() is None

    def run(self, remote_command: str, data: bytes | None = None, timeout: float | None = None,
            stdin=None) -> subprocess.CompletedProcess:
        """Run a shell command on the device; stdin from ``data`` (bytes) or ``stdin`` (an open file)."""
        try:
            return subprocess.run(self.argv(remote_command), input=data, stdin=stdin, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RemoteError(self.target, f"no answer from the device in {timeout:.0f} s") from e

    def popen(self, remote_command: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(remote_command), **kw)

    def failure(self, proc_stderr: bytes | str) -> RemoteError:
        """The RemoteError for a failed command (a dead master means the connection dropped)."""
        text = proc_stderr.decode(errors="replace") if isinstance(proc_stderr, bytes) else proc_stderr
        if self._master is not None:
            try:
                self._master.wait(1.0)  # a link that just broke takes the master a moment to notice
            except subprocess.TimeoutExpired:
                pass
        silent = not text.strip()  # a multiplexed session cut off with its master says nothing
        return RemoteError(self.target, "connection dropped" if silent or not self.alive() else cause(text))

    def close(self) -> None:
        if self._master is not None and self._master.poll() is None:
            self._master.terminate()
            try:
                self._master.wait(5)
            except subprocess.TimeoutExpired:
                self._master.kill()
                self._master.wait()
        with contextlib.suppress(OSError):
            shutil.rmtree(self._dir)

    def __enter__(self) -> Connection:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
