"""A real OpenSSH server on 127.0.0.1 for the ``bench --remote`` tests, and the client config that
reaches it.

Every "device" is a key in ``authorized_keys`` whose ``environment=`` options give it its own HOME
(so ``~/.edgecnn`` of each device is a folder of the test) and a PATH whose ``python3`` is the
interpreter this venv was made from (no torch unless its base has it). sshd runs as the current
user (root in CI: login as root by key only); nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def base_python_dir() -> str:
    """The folder of the interpreter this venv was created from (it can make venvs: it made this one)."""
    return str(Path(getattr(sys, "_base_executable", sys.executable)).resolve().parent)


@dataclass
class Sshd:
    root: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    devices: dict[str, Path] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def client_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def ssh_command(self) -> str:
        return f"ssh -F {self.client_config}"

    def start(self, devices: tuple[str, ...] = ("dev-a", "dev-b"), no_python: tuple[str, ...] = ()) -> Sshd:
        """``devices``: key names (ssh aliases); those in ``no_python`` get a PATH with a shell and no Python."""
        self.root.mkdir(parents=True, exist_ok=True)
        host_pub = keygen(self.root / "host_key")
        bare = self.root / "bin-without-python"
        bare.mkdir()
        (bare / "sh").symlink_to(shutil.which("sh"))
        keys = []
        for name in devices + no_python:
            home = self.root / "devices" / name
            home.mkdir(parents=True)
            self.devices[name] = home
            pub = keygen(self.root / f"key-{name}")
            path = bare if name in no_python else f"{base_python_dir()}:/usr/local/bin:/usr/bin:/bin"
            keys.append(f'environment="HOME={home}",environment="PATH={path}" {pub}')
        keygen(self.root / "key-stranger")  # never authorized
        (self.root / "authorized_keys").write_text("\n".join(keys) + "\n")
        (self.root / "known_hosts").write_text(f"[{LOOPBACK}]:{self.port} {' '.join(host_pub.split()[:2])}\n")
        (self.root / "sshd_config").write_text(f"""\
ListenAddress {LOOPBACK}
HostKey {self.root / 'host_key'}
AuthorizedKeysFile {self.root / 'authorized_keys'}
PidFile {self.root / 'sshd.pid'}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PermitUserEnvironment yes
AllowUsers {self.user}
MaxStartups 100
LogLevel ERROR
""")
        # aliases with their keys; "stranger" holds a key sshd does not know; ssh://...@127.0.0.1 gets dev-a's
        hosts = "".join(f"Host {name}\n  HostName {LOOPBACK}\n  Port {self.port}\n"
                        f"  IdentityFile {self.root / f'key-{name}'}\n" for name in (*devices, *no_python, "stranger"))
        self.client_config.write_text(hosts + f"""\
Host {LOOPBACK}
  IdentityFile {self.root / f'key-{devices[0]}'}
Host *
  IdentitiesOnly yes
  IdentityAgent none
  User {self.user}
  UserKnownHostsFile {self.root / 'known_hosts'}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
""")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder, as Debian's service makes it
        self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(self.root / "sshd_config"), "-p",
                                      str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.root / "sshd.log", "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def sessions(self) -> list[int]:
        """Process ids of every per-connection sshd process below the listener (monitor and session
        child: the latter holds the socket), not the commands they run. Killing them drops the links."""
        procs = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
            procs.append((int(stat.parent.name), int(rest[1]), comm))
        below, found = {self.proc.pid}, []
        changed = True
        while changed:
            changed = False
            for pid, ppid, comm in procs:
                if ppid in below and pid not in below:
                    below.add(pid)
                    changed = True
                    if comm == "sshd":
                        found.append(pid)
        return found

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


def available() -> str | None:
    """None when a test sshd can run here, else why not (the skip reason)."""
    if not SSHD.exists():
        return f"{SSHD} is absent (install Debian's openssh-server: apt-get install -y openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the OpenSSH client tool '{tool}' is not installed"
    return None
