"""The device side of ``edgecnn bench --remote``: a stdlib-only script sent with each ssh command
(``python3 -c <this file> COMMAND PYTHON ARGS...``) and importable here for :func:`fingerprint`.

It must run on whatever Python the device has, if only to say that it is too old: keep the syntax to
Python 3.6 (no walrus, no ``match``, no ``X | Y`` at run time) and import nothing outside the stdlib.
Every command prints one JSON object on its last stdout line; a failure is ``{"error": "<one line>"}``
and exit status 1. Everything lives under ``~/.edgecnn``: ``files/<sha256>/<name>`` (content-addressed
uploads), ``venv/`` (the default Python), ``tmp/`` (run folders, partial uploads).

Commands:
  probe PYTHON KEY...          this interpreter, edgecnn in it, free space; KEY = sha256/name files present
  put PYTHON SHA NAME SIZE     stdin -> files/SHA/NAME through a temporary name, hash checked
  install PYTHON WHEEL [--find-links FILE...]   venv at PYTHON's root if missing, then pip install
  run PYTHON ARG...            PYTHON -m edgecnn ARG... in its own process group, stopped when stdin closes
"""

import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HOME = os.path.join(os.path.expanduser("~"), ".edgecnn")
FILES = os.path.join(HOME, "files")
TMP = os.path.join(HOME, "tmp")
CORE_MODULES = ("numpy", "PIL", "onnxruntime", "onnx", "typer")
MIN_PYTHON = (3, 10)


class Failure(Exception):
    """A one-line reason the command failed on this device."""


def fingerprint(package_dir):
    """sha256 of the package's Python sources (relative paths and contents), so a checkout and the wheel
    built from it agree while any edit makes them differ. Folders without ``__init__.py`` are left out,
    as the wheel leaves them out."""
    h = hashlib.sha256()
    found = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if os.path.isfile(os.path.join(root, d, "__init__.py")))
        for f in files:
            if f.endswith(".py"):
                found.append(os.path.join(root, f))
    for path in sorted(os.path.relpath(p, package_dir).replace(os.sep, "/") for p in found):
        h.update(path.encode() + b"\0")
        with open(os.path.join(package_dir, path), "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def probe(python, keys):
    import importlib.util

    info = {"python": platform.python_version(), "python_ok": sys.version_info[:2] >= MIN_PYTHON,
            "executable": sys.executable, "is_target": not os.environ.get("EDGECNN_AGENT_FALLBACK"),
            "machine": platform.machine(), "system": platform.system(), "home": HOME, "edgecnn": None}
    if info["is_target"] and info["python_ok"]:
        spec = importlib.util.find_spec("edgecnn")
        if spec is not None and spec.submodule_search_locations:
            from importlib import metadata
            try:
                version = metadata.version("edgecnn")
            except metadata.PackageNotFoundError:
                version = None
            info["edgecnn"] = {"version": version, "fingerprint": fingerprint(list(spec.submodule_search_locations)[0])}
        info["missing"] = [m for m in CORE_MODULES if importlib.util.find_spec(m) is None]
    os.makedirs(FILES, exist_ok=True)
    _sweep(TMP, 600)
    info["free_bytes"] = shutil.disk_usage(FILES).free
    info["present"] = [k for k in keys if _adopt(k)]
    return info


def _root(python):
    """The environment root of ``.../bin/python`` (its venv folder)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(python)))


def _adopt(key):
    """True when files/<sha>/<name> exists; a file with the same hash under another name is linked to it."""
    sha, name = key.split("/", 1)
    folder = os.path.join(FILES, sha)
    target = os.path.join(folder, name)
    if os.path.isfile(target):
        return True
    others = [f for f in (os.listdir(folder) if os.path.isdir(folder) else []) if not f.startswith(".")]
    if not others:
        return False
    try:
        os.link(os.path.join(folder, others[0]), target)
    except OSError:
        shutil.copyfile(os.path.join(folder, others[0]), target)
    return True


def _sweep(folder, age_s):
    """Remove what interrupted uploads and runs left behind (older than ``age_s``)."""
    if not os.path.isdir(folder):
        return
    now = time.time()
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            if now - os.path.getmtime(path) > age_s:
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        except OSError:
            pass


def put(sha, name, size):
    if "/" in name or name.startswith("."):
        raise Failure(f"bad file name {name!r}")
    os.makedirs(TMP, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="put-", dir=TMP)
    h, left = hashlib.sha256(), size
    try:
        with os.fdopen(fd, "wb") as out:
            while left > 0:
                block = sys.stdin.buffer.read(min(left, 1 << 20))
                if not block:
                    raise Failure(f"upload of {name} cut off after {size - left} of {size} bytes")
                h.update(block)
                out.write(block)
                left -= len(block)
        if h.hexdigest() != sha:
            raise Failure(f"upload of {name} arrived corrupted (sha256 differs)")
        folder = os.path.join(FILES, sha)
        os.makedirs(folder, exist_ok=True)
        os.replace(tmp, os.path.join(folder, name))
    except OSError as e:
        if e.errno == 28:  # ENOSPC
            raise Failure(f"disk full on the device while storing {name} in {FILES}") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"path": os.path.join(FILES, sha, name)}


def install(python, wheel, find_links):
    log = []
    if os.environ.get("EDGECNN_AGENT_FALLBACK"):  # the wrapper found no runnable PYTHON
        if os.path.basename(os.path.dirname(python)) != "bin" or not os.path.basename(python).startswith("python"):
            raise Failure(f"{python} does not exist on the device; give --remote-python a path DIR/bin/python to "
                          "create a venv at DIR")
        root = _root(python)
        _call([sys.executable, "-m", "venv", root], log, f"creating the venv {root}")
    index = []
    if find_links:
        links = tempfile.mkdtemp(prefix="wheels-", dir=_mkdirs(TMP))
        for path in find_links + [wheel]:
            os.symlink(path, os.path.join(links, os.path.basename(path)))
        index = ["--no-index", "--find-links", links]
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
           "--no-compile"]
    try:
        _call(pip + index + [wheel], log, "installing edgecnn's dependencies")
        _call(pip + ["--no-deps", "--force-reinstall", wheel], log, "installing edgecnn")
    finally:
        if index:
            shutil.rmtree(index[-1], ignore_errors=True)
    return {"installed": wheel}


def _mkdirs(path):
    os.makedirs(path, exist_ok=True)
    return path


def _call(argv, log, what):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.append(proc.stdout)
    if proc.returncode != 0:
        raise Failure(_pip_cause(proc.stdout, what))


def _pip_cause(text, what):
    import re

    where = f"{platform.machine()}, Python {platform.python_version()}"
    if "No space left on device" in text:
        return f"disk full on the device while {what}"
    if "ensurepip is not" in text or "No module named venv" in text:
        return "the device's Python cannot create a venv: install python3-venv there (apt install python3-venv)"
    m = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", text)
    if m:
        return (f"no {m.group(1)} wheel for this device ({where}) on its package index or in --wheels; fetch one with "
                f"pip download {m.group(1)} --only-binary=:all: --platform <its platform tag> and pass --wheels DIR")
    if re.search(r"Failed to establish a new connection|Temporary failure in name resolution|Could not fetch URL",
                 text):
        return f"the device cannot reach its package index while {what}; ship wheels with --wheels DIR"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{what} failed on the device: {lines[-1][:200] if lines else 'no output'}"


def run(python, args):
    workdir = tempfile.mkdtemp(prefix="run-", dir=_mkdirs(TMP))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen([python, "-m", "edgecnn"] + args, stdin=subprocess.DEVNULL, cwd=workdir, env=env,
                             start_new_session=True)

    def stop(*_):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(child.pid, sig)
            except OSError:
                return
            for _ in range(30):
                if child.poll() is not None:
                    return
                time.sleep(0.1)

    def watch():
        # ssh closes our stdin when the workstation goes away (Ctrl-C, a dropped link): stop the bench too
        while sys.stdin.buffer.read(1 << 16):
            pass
        stop()

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, lambda *_: (stop(), os._exit(130)))
    threading.Thread(target=watch, daemon=True).start()
    try:
        code = child.wait()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(code)  # not sys.exit: the watcher thread still blocks on stdin, which finalization would trip over


def main(argv):
    command, python, rest = argv[0], os.path.expanduser(argv[1]), argv[2:]
    try:
        if command == "run":
            run(python, rest)
        if command == "probe":
            emit(probe(python, rest))
        elif command == "put":
            emit(put(rest[0], rest[1], int(rest[2])))
        elif command == "install":
            links = rest[2:] if rest[1:2] == ["--find-links"] else []
            emit(install(python, rest[0], links))
        else:
            raise Failure(f"unknown agent command {command!r}")
    except Failure as e:
        emit({"error": str(e)})
        sys.exit(1)
    except OSError as e:
        emit({"error": f"{command} on the device: {e}"})
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
