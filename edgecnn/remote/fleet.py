"""``edgecnn bench --remote``: the same bench on several devices over SSH at once, rows merged into
the local report.

Each device gets its own thread: connect, probe, check (or ``--install``) edgecnn, ship the files by
hash, then run ``edgecnn bench ... --format json`` there in a temporary folder (so nothing is left
on the device but the content-addressed files and the venv). Its rows come back as the device
measured them, with the device's own environment and tag, plus ``host`` (the target as typed); the
paths it saw are mapped back to the local files. A device that fails is one line naming the target
and the cause; the others' rows are still reported. Ctrl-C (or a dropped link) closes the ssh
session, and the agent on the device then stops the bench's whole process group.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import EdgeCNNError, first_line
from edgecnn.remote.device import DEFAULT_PYTHON, Device, agent_command, prepare_upload
from edgecnn.remote.ssh import Connection, RemoteError, check_target

LOCAL_HOST = "local"
# options of `edgecnn bench` that concern this workstation, never forwarded to a device
LOCAL_ONLY = ("remote", "install", "remote_python", "wheels", "fmt", "out", "plot", "page", "image", "baseline")


@dataclass
class _Job:
    target: str
    device: Device | None = None
    proc: subprocess.Popen | None = None
    doc: dict | None = None
    error: str | None = None
    thread: threading.Thread | None = None
    remote_paths: dict[str, str] = field(default_factory=dict)


class Fleet:
    """``prepare()`` then ``start(argv)`` then ``wait()``; ``close()`` always (a context manager).

    ``files``: local ONNX files (shipped); ``images``: local image files for ``--image`` (shipped);
    ``argv``: bench options to forward (see :func:`forward_argv`); ``say``: progress lines."""

    def __init__(self, targets: list[str], files: list[Path], *, images: list[Path] | None = None,
                 install: bool = False, remote_python: str | None = None, wheels: str | None = None,
                 say: Callable[[str], None] | None = None):
        seen = dict.fromkeys(check_target(t) for t in targets)
        self.jobs = [_Job(t) for t in seen]
        self.files, self.images = [Path(f) for f in files], [Path(i) for i in images or []]
        self.install, self.python = install, remote_python or DEFAULT_PYTHON
        self.wheels = _wheel_files(wheels) if wheels else []
        self._say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._uploads = None
        self.argv: list[str] = []
        self._workspace = None
        self._specs: dict[str, tuple[str, Path | None]] = {}  # shipped file -> (target as typed, its local file)

    def say(self, target: str, line: str) -> None:
        with self._lock:
            self._say(f"[{target}] {line}")

    @classmethod
    def for_bench(cls, bench, targets: list[str], ctx, **kw) -> Fleet:
        """A fleet for a local ``Bench`` (its ONNX files) and the click context of ``edgecnn bench``
        (the options to forward)."""
        from edgecnn.bench.targets import Workspace

        ws = Workspace()  # zoo names and checkpoints: exported here (FP32, default size), the file is shipped
        try:
            files = [t.path if t.kind == "onnx" else ws.onnx(t, "fp32", None) for t in bench.targets.values()]
            fleet = cls(targets, files, **kw)
        except BaseException:
            ws.close()
            raise
        fleet.argv, fleet._workspace = forward_argv(ctx.command, ctx.params), ws
        fleet._specs = {str(f): (t.spec, t.path if t.kind == "onnx" else None)
                        for f, t in zip(files, bench.targets.values(), strict=True)}
        return fleet

    def alongside(self, local_run: Callable[[], list[dict]]) -> list[dict]:
        """Prepare the devices, start their benches, run ``local_run`` here meanwhile, collect: the
        local rows (``host`` "local") followed by every device's. Ctrl-C stops the devices too."""
        try:
            self.prepare()
            self.start(self.argv)
            local = local_run()
            self.wait()
        finally:
            self.close()
        for row in local:
            row["host"] = LOCAL_HOST
        return local + self.rows()

    def annotate(self, doc: dict) -> dict:
        """Add ``hosts`` (target -> device tag and environment, "local" first) to a bench document."""
        doc["hosts"] = {LOCAL_HOST: {"device_tag": doc["device_tag"], "environment": doc["environment"]}}
        for target, d in self.documents.items():
            doc["hosts"][target] = {"device_tag": d.get("device_tag"), "environment": d.get("environment")}
        doc["remote_failures"] = self.failures
        return doc

    def finish(self, exit: bool = True) -> None:
        """One ``Error:`` line per failed device on stderr; exit status 1 when any failed and ``exit``."""
        for line in self.failures:
            self._say(f"Error: {line}")
        if self.failures and exit:
            raise SystemExit(1)

    # ---- the steps -----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Connect, check or install edgecnn and upload, all devices at once; failures are recorded."""
        self._uploads = [prepare_upload(p) for p in [*self.files, *self.images]]
        self._each(self._prepare_one)

    def start(self, argv: list[str]) -> None:
        """Start the bench on every prepared device (returns at once; ``wait()`` collects)."""
        for job in self.jobs:
            if job.error is None:
                job.thread = threading.Thread(target=self._guard, args=(job, self._run_one, argv), daemon=True)
                job.thread.start()

    def wait(self) -> None:
        for job in self.jobs:
            while job.thread is not None and job.thread.is_alive():
                job.thread.join(0.2)  # short joins keep Ctrl-C responsive

    def close(self) -> None:
        """Stop whatever still runs (the device's agent stops its bench when the session ends)."""
        for job in self.jobs:
            if job.proc is not None and job.proc.poll() is None:
                job.proc.terminate()
            if job.device is not None:
                job.device.conn.close()
        if self._workspace is not None:
            self._workspace.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- results -------------------------------------------------------------------------------

    @property
    def failures(self) -> list[str]:
        return [f"{j.target}: {j.error}" for j in self.jobs if j.error is not None]

    @property
    def documents(self) -> dict[str, dict]:
        return {j.target: j.doc for j in self.jobs if j.doc is not None}

    def rows(self) -> list[dict]:
        """Every device's rows, in target order, each with ``host``, and the target and file as given here."""
        out = []
        for job in self.jobs:
            back = {remote: self._specs.get(local, (local, Path(local))) for local, remote in job.remote_paths.items()}
            for row in (job.doc or {}).get("rows", []):
                row = dict(row)
                if row.get("target") in back:
                    shipped = row.get("file") == row["target"]
                    row["target"], local = back[row["target"]]
                    if shipped:  # the device's copy -> the local file (None for a zoo name, as local rows have)
                        row["file"] = str(local) if local is not None else None
                row["id"] = f"{job.target}/{row['id']}"
                row["host"] = job.target
                out.append(row)
        return out

    # ---- per device ----------------------------------------------------------------------------

    def _each(self, fn) -> None:
        threads = [threading.Thread(target=self._guard, args=(j, fn), daemon=True) for j in self.jobs
                   if j.error is None]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)

    def _guard(self, job: _Job, fn, *args) -> None:
        try:
            fn(job, *args)
        except RemoteError as e:
            job.error = e.cause
        except EdgeCNNError as e:
            job.error = str(e)
        except Exception as e:  # a device must never take the others down
            job.error = f"{type(e).__name__}: {first_line(e)}"
        if job.error is not None:
            self.say(job.target, f"FAILED: {job.error}")

    def _prepare_one(self, job: _Job) -> None:
        t0 = time.monotonic()
        self.say(job.target, "connecting")
        conn = Connection(job.target)
        job.device = Device(conn, self.python, say=lambda line: self.say(job.target, line))
        conn.open()
        info = job.device.probe(self._uploads)
        self.say(job.target, f"{info['system']} {info['machine']}, Python {info['python']}")
        job.device.ensure_edgecnn(self.install, self.wheels)
        paths = job.device.upload(self._uploads)
        job.remote_paths = {str(u.local): p for u, p in zip(self._uploads, paths, strict=True)}
        self.say(job.target, f"ready in {time.monotonic() - t0:.1f} s")

    def _run_one(self, job: _Job, argv: list[str]) -> None:
        t0 = time.monotonic()
        files = [job.remote_paths[str(f)] for f in self.files]
        images = [a for i in self.images for a in ("--image", job.remote_paths[str(i)])]
        cmd = agent_command(self.python, "run", "bench", *files, *argv, *images, "--format", "json")
        self.say(job.target, "bench running")
        job.proc = job.device.conn.popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        errors: list[str] = []
        reader = threading.Thread(target=self._relay, args=(job, errors), daemon=True)
        reader.start()
        out = job.proc.stdout.read()
        code = job.proc.wait()
        reader.join(5)
        job.proc.stdin.close()
        doc = _document(out)
        if doc is not None and doc.get("rows"):
            job.doc = doc
            ok = sum(r.get("status") == "ok" for r in doc["rows"])
            self.say(job.target, f"done: {ok} of {len(doc['rows'])} configurations measured in "
                                 f"{time.monotonic() - t0:.1f} s")
            return
        if code == 255 or not job.device.conn.alive():
            raise job.device.conn.failure("\n".join(errors))
        last = next((e[7:] for e in reversed(errors) if e.startswith("Error: ")), errors[-1] if errors else None)
        raise RemoteError(job.target, f"bench failed on the device: {last or f'exit status {code}'}")

    def _relay(self, job: _Job, errors: list[str]) -> None:
        """The device's stderr as progress lines (its own report paths are of a folder that goes away)."""
        for raw in job.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            errors.append(line)
            if not line.startswith(("wrote ", "Error: ")):
                self.say(job.target, line)


def _document(out: bytes) -> dict | None:
    try:
        doc = json.loads(out.decode(errors="replace"))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _wheel_files(folder: str) -> list[Path]:
    p = Path(folder)
    if not p.is_dir():
        raise EdgeCNNError(f"--wheels {folder}: no such folder (it holds .whl files for the device)")
    found = sorted(p.glob("*.whl"))
    if not found:
        raise EdgeCNNError(f"--wheels {folder}: no .whl files in it; fill it with pip download -d {folder} "
                           "edgecnn's dependencies --only-binary=:all: --platform <the device's platform tag>")
    return found


def forward_argv(command, params: dict, skip: tuple[str, ...] = LOCAL_ONLY) -> list[str]:
    """The options of a click ``command`` whose values in ``params`` differ from their defaults, as
    argv (flags as their switch), leaving out the arguments and ``skip``."""
    argv: list[str] = []
    for p in command.params:
        if p.param_type_name != "option" or p.name in skip or p.name not in params:
            continue
        value = params[p.name]
        if value == p.default or value is None or value == [] or value == ():
            continue
        if p.is_flag:
            flags = p.opts if value else p.secondary_opts
            if flags:
                argv.append(flags[0])
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            argv += [p.opts[0], str(v)]
    return argv
