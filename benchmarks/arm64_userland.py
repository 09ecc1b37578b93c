"""edgecnn on aarch64, proven in an emulated arm64 Debian userland (issue 17). Needs root and Linux.

    python benchmarks/arm64_userland.py     # as root, with the [dev] extras (the host trains and exports)

The first run debootstraps under emulation (~20 min on a loaded 2-core host); later runs reuse the rootfs
and take 6-14 min.

1. The tools come from the distribution: qemu-user-static, binfmt-support and debootstrap (installed with
   apt-get when missing), and binfmt_misc runs arm64 binaries through qemu-aarch64-static.
2. A minimal arm64 Debian bookworm (python3, python3-venv, python3-pip) is debootstrapped once into
   ``~/.cache/edgecnn-arm64-root`` (``--root``) and reused.
3. The host builds the wheel of this checkout (``edgecnn.remote.wheel.build_wheel``) and downloads the
   arm64 wheels it needs (onnxruntime, onnx, NumPy, Pillow, Typer and theirs) from the package index with
   ``pip download --platform manylinux_2_X_aarch64``, for the chroot's Python and glibc. Inside the
   chroot a fresh venv installs the wheel with ``pip install --no-index`` from those files only: the
   arm64 pip checks every tag, and nothing but what the wheel declares gets in (no torch).
4. The host trains a small zoo model (lenet5, 3 channels, 32 px) on the built-in shapes set for a few
   seconds and exports it (a trained model, so INT8 agreement is judged, not noise against noise).
5. In the chroot: ``edgecnn infer`` (FP32) on the 80 validation images, ``edgecnn quantize --calib``
   (the INT8 choice for this CPU), ``edgecnn infer`` with the INT8 file, ``edgecnn bench`` of both.
6. Checks (exit 1 if one fails): the FP32 scores equal the host's within 1e-4 with the same top-1;
   the INT8 file is s8s8 (the zero points of its QuantizeLinear nodes and of its weights are int8, and
   the quantization section of its contract says so); quantize's own gate passed; INT8 top-1 agrees
   with FP32 on >= 90% of the validation images; bench rows are ok and name the machine aarch64.

Speed under emulation means nothing; the wall time of each step is recorded to say what the emulation
costs. Writes ``benchmarks/results/<host-tag>-qemu-arm64/arm64_userland.json`` and ``.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QEMU = "/usr/bin/qemu-aarch64-static"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
APT_PACKAGES = ["qemu-user-static", "binfmt-support", "debootstrap"]
DEBIAN_PACKAGES = "python3,python3-venv,python3-pip"
DEFAULT_ROOTFS = Path(os.environ.get("EDGECNN_ARM64_ROOT", Path.home() / ".cache" / "edgecnn-arm64-root"))
WORK = "/opt/edgecnn-arm"  # inside the chroot; made afresh every run
FP32_TOL = 1e-4  # softmax scores, host x86 vs emulated arm64 (printed to 6 decimals)
MIN_AGREEMENT = 0.9  # INT8 vs FP32 top-1, as quantize's default gate
ARM_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


class Blocked(RuntimeError):
    """A prerequisite is missing and cannot be made here: the message says which and what to do."""


def sh(argv: list[str], *, env: dict | None = None, timeout: float = 3600, cwd: Path | None = None,
       check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{shlex.join(argv)[:300]} exited {proc.returncode}:\n" + "\n".join(tail))
    return proc


class Clock:
    """Wall seconds per named step, in order."""

    def __init__(self):
        self.steps: dict[str, float] = {}

    @contextmanager
    def step(self, name: str):
        print(f"-- {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round(time.perf_counter() - t0, 2)


def binfmt_enabled() -> bool:
    entry = BINFMT / "qemu-aarch64"
    return entry.is_file() and entry.read_text().startswith("enabled")


def missing_prerequisites() -> list[str]:
    """What stops this script here, without changing anything (the test's skip reason)."""
    if platform.system() != "Linux":
        return ["Linux (chroot, binfmt_misc)"]
    miss = [] if os.geteuid() == 0 else ["root (debootstrap, chroot, mount)"]
    miss += [p for p, exe in (("qemu-user-static", QEMU), ("debootstrap", "debootstrap"))
             if shutil.which(exe) is None]
    if not binfmt_enabled():
        miss.append("binfmt_misc entry qemu-aarch64 (update-binfmts --enable qemu-aarch64)")
    return miss


def ensure_tools(install: bool) -> None:
    """qemu-user-static, binfmt-support and debootstrap from the distribution, and arm64 binfmt on."""
    if os.geteuid() != 0:
        raise Blocked("run as root: debootstrap, chroot and mount need it")
    missing = [p for p, exe in (("qemu-user-static", QEMU), ("debootstrap", "debootstrap"),
                                ("binfmt-support", "update-binfmts")) if shutil.which(exe) is None]
    if missing:
        if not install or shutil.which("apt-get") is None:
            raise Blocked(f"missing {', '.join(missing)}; install: apt-get install {' '.join(APT_PACKAGES)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh(["apt-get", "update", "-q"], env=env)
        sh(["apt-get", "install", "-y", "-q", *APT_PACKAGES], env=env)
    if not binfmt_enabled():
        if not (BINFMT / "register").exists():  # a container without it mounted
            sh(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=False)
        sh(["update-binfmts", "--enable", "qemu-aarch64"], check=False)
    if not binfmt_enabled():
        raise Blocked(f"binfmt_misc has no enabled qemu-aarch64 entry ({BINFMT} not writable here?); arm64 "
                      "programs started inside the chroot (pip, python) cannot run without it")


def rootfs(root: Path, suite: str, mirror: str) -> str:
    """The arm64 Debian userland at ``root``: made once by debootstrap (into ``root``.tmp, then renamed)."""
    marker = root / ".edgecnn-rootfs"
    if marker.is_file():
        return "cached"
    tmp = root.with_name(root.name + ".tmp")
    unmount_all(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    sh(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", suite, str(tmp),
        mirror])
    unmount_all(tmp)
    (tmp / marker.name).write_text(f"debootstrap --arch=arm64 --variant=minbase {suite} {mirror}\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return "debootstrapped"


def unmount_all(root: Path) -> None:
    for sub in ("sys", "proc"):
        if os.path.ismount(root / sub):
            sh(["umount", "-l", str(root / sub)], check=False)


@contextmanager
def mounted(root: Path):
    """/proc in the chroot (Python and edgecnn read the CPU count and load there). Not /sys: with it,
    onnxruntime's cpuinfo finds the host's CPU list, then parses the host's x86 /proc/cpuinfo as ARM's and
    crashes on import (SIGSEGV, onnxruntime 1.32.0 under qemu-user 7.2); without it, cpuinfo gives up with
    a warning and onnxruntime reads the CPU features from the auxiliary vector (HWCAP), as qemu sets it."""
    if not os.path.ismount(root / "proc"):
        sh(["mount", "-t", "proc", "proc", str(root / "proc")], check=False)
    try:
        yield
    finally:
        unmount_all(root)


def arm(root: Path, script: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``script`` run by /bin/sh in the arm64 chroot (every program in it through qemu), from WORK."""
    return sh(["chroot", str(root), "/bin/sh", "-c", f"cd {WORK} && {script}"], env=ARM_ENV, timeout=timeout)


def host(args: list[str], cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``edgecnn ARGS`` with this checkout's code on the host."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return sh([sys.executable, "-m", "edgecnn", *args], env=env, cwd=cwd, timeout=timeout)


def arm_platforms(glibc: str) -> list[str]:
    """pip --platform tags an aarch64 glibc ``glibc`` (e.g. '2.36') accepts, newest first."""
    minor = int(glibc.split(".")[1])
    return [f"manylinux_2_{m}_aarch64" for m in range(minor, 16, -1)] + ["manylinux2014_aarch64", "linux_aarch64"]


def download_arm_wheels(wheel: Path, dest: Path, python: str, glibc: str) -> list[str]:
    """The wheel's runtime dependencies as arm64 wheels from the package index, into ``dest``."""
    plat = [a for p in arm_platforms(glibc) for a in ("--platform", p)]
    major, minor = python.split(".")[:2]
    sh([sys.executable, "-m", "pip", "download", str(wheel), "-d", str(dest), "--only-binary=:all:", *plat,
        "--python-version", f"{major}.{minor}", "--implementation", "cp", "--abi", f"cp{major}{minor}", "--abi",
        "abi3", "--abi", "none", "-q"])
    return sorted(p.name for p in dest.glob("*.whl"))


def read_jsonl(text: str) -> dict[str, list[float]]:
    """``infer --format jsonl --topk K`` -> image name -> scores in class order."""
    out = {}
    for line in text.splitlines():
        rec = json.loads(line)
        scores = [0.0] * len(rec["predictions"])
        for p in rec["predictions"]:
            scores[p["class"]] = p["score"]
        out[Path(rec["image"]).name] = scores
    return out


def top1(scores: list[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)


def compare(a: dict[str, list[float]], b: dict[str, list[float]]) -> dict:
    """Top-1 agreement and the largest score difference of two runs over the same images; a top-1
    differing where ``a``'s two best scores are closer than FP32_TOL counts as a tie, not a miss."""
    if sorted(a) != sorted(b):
        raise RuntimeError(f"the runs saw different images: {sorted(set(a) ^ set(b))[:3]}")
    same = ties = 0
    diff = 0.0
    for name, sa in a.items():
        sb = b[name]
        diff = max(diff, max(abs(x - y) for x, y in zip(sa, sb, strict=True)))
        if top1(sa) == top1(sb):
            same += 1
        elif sorted(sa)[-1] - sorted(sa)[-2] < FP32_TOL:
            ties += 1
    return {"images": len(a), "top1_agreement": same / len(a), "ties": ties, "max_abs_score_diff": diff}


def graph_kernel(path: Path) -> str:
    """'s8s8', 'u8s8', ... from the INT8 file itself: the zero-point type of its QuantizeLinear nodes
    (activations) and of its weight initializers' DequantizeLinear (int32 biases left out)."""
    import onnx

    model = onnx.load(str(path))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    tp = onnx.TensorProto
    act = {inits.get(n.input[2]) for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    wts = {inits[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear"
           and n.input[0] in inits and inits[n.input[0]] != tp.INT32}
    name = {tp.INT8: "s8", tp.UINT8: "u8"}
    if len(act) != 1 or len(wts) != 1:
        return f"mixed (activations {sorted(map(str, act))}, weights {sorted(map(str, wts))})"
    return name.get(act.pop(), "?") + name.get(wts.pop(), "?")


def reported_kernel(quantization: dict) -> str | None:
    """The INT8 kind the contract's quantization section names: a 'kernel' entry, or the activation and
    weight types (either wording of ``edgecnn quantize``)."""
    types = quantization.get("types") or {}
    for where in (quantization, types):
        if isinstance(where.get("kernel"), str) and where["kernel"][:4] in ("s8s8", "u8s8", "u8u8"):
            return where["kernel"][:4]
    short = {"int8": "s8", "uint8": "u8"}
    a, w = short.get(types.get("activations")), short.get(types.get("weights"))
    return a + w if a and w else None


def prepare_model(work: Path) -> tuple[Path, Path]:
    """A trained lenet5 (3 channels, 32 px) exported with its contract, and the shapes set (ImageFolder)."""
    host(["data", "shapes", "--out", "shapes", "--n", "400", "--size", "40", "--seed", "0"], work)
    host(["train", "lenet5", "--data", "shapes", "--in-channels", "3", "--optimizer", "adamw", "--lr", "0.003",
          "--epochs", "10", "--seed", "0", "-o", "run"], work)
    host(["export", "run/best.pt", "-o", "lenet5.onnx"], work)
    return work / "lenet5.onnx", work / "shapes"


def bench_rows(text: str) -> list[dict]:
    """The rows of ``bench --format json``: status, p50 and the environment the row names (under qemu-user
    ``cpu`` and ``isa`` are the host's: the emulated userland reads the host's /proc/cpuinfo)."""
    env = ("machine", "cpu", "isa", "onnxruntime", "python")
    return [{k: r.get(k) for k in ("target", "precision", "status", "error")}
            | {"p50_ms": round((r.get("latency_ms") or {}).get("p50") or 0, 4) or None}
            | {k: r["environment"].get(k) for k in env}
            for r in json.loads(text)["rows"]]


def run(args) -> dict:
    clock, checks, rec = Clock(), [], {}

    def check(name: str, ok: bool, detail) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"   {'ok ' if ok else 'FAIL'} {name}: {detail}", file=sys.stderr, flush=True)

    with clock.step("tools"):
        ensure_tools(not args.no_install)
    rec["qemu"] = sh([QEMU, "--version"]).stdout.splitlines()[0]
    with clock.step("rootfs"):
        rec["rootfs"] = {"path": str(args.root), "state": rootfs(args.root, args.suite, args.mirror)}
    root = args.root
    rec["rootfs"]["debian"] = (root / "etc" / "debian_version").read_text().strip()
    work = Path(tempfile.mkdtemp(prefix="edgecnn-arm64-"))
    with mounted(root):
        shutil.rmtree(root / WORK.lstrip("/"), ignore_errors=True)
        (root / WORK.lstrip("/")).mkdir(parents=True)
        arm_dir = root / WORK.lstrip("/")
        with clock.step("arm python"):
            info = json.loads(arm(root, "python3 -c 'import json, platform; print(json.dumps([platform.machine(), "
                                        "platform.python_version(), platform.libc_ver()[1]]))'").stdout)
        rec["arm"] = dict(zip(("machine", "python", "glibc"), info, strict=True))
        check("uname -m in the chroot is aarch64", info[0] == "aarch64", info[0])
        with clock.step("wheel build (host)"):
            from edgecnn.remote.wheel import build_wheel

            wheel = build_wheel()
        with clock.step("arm64 wheels download (host, from the index)"):
            cache = args.root.with_name(args.root.name + "-wheels")
            cache.mkdir(exist_ok=True)
            deps = download_arm_wheels(wheel, cache, info[1], info[2])
        shutil.copytree(cache, arm_dir / "wheels")
        shutil.copy2(wheel, arm_dir / "wheels" / wheel.name)
        with clock.step("python3 -m venv (arm)"):
            arm(root, "python3 -m venv venv")
        # --no-compile: byte-compiling every module of the wheels (most never imported) under emulation took
        # ~4 of the install's 5 minutes; what is imported gets compiled on first use as usual
        with clock.step("pip install --no-index (arm)"):
            out = arm(root, f"venv/bin/pip install --no-compile --no-cache-dir --find-links wheels "
                            f"wheels/{wheel.name}").stdout
        installed = next((ln.split("Successfully installed ", 1)[1].split() for ln in out.splitlines()
                          if ln.startswith("Successfully installed ")), [])
        rec["installed"] = installed
        rec["wheels"] = [w for w in deps if w.endswith(".whl")]
        check("no torch in the arm venv", not any(p.lower().startswith("torch") for p in installed),
              f"{len(installed)} packages: {' '.join(installed)}")
        with clock.step("model: train lenet5 on shapes + export (host)"):
            model, shapes = prepare_model(work)
        shutil.copy2(model, arm_dir / "lenet5.onnx")
        shutil.copytree(shapes, arm_dir / "shapes")
        edge = "venv/bin/edgecnn"
        infer = "infer shapes/val --format jsonl --topk 4"
        with clock.step("infer FP32 (host)"):
            host_fp32 = read_jsonl(host([*shlex.split(infer), "--model", str(model)], work).stdout)
        with clock.step("infer FP32 (arm)"):
            arm_fp32 = read_jsonl(arm(root, f"{edge} {infer} --model lenet5.onnx").stdout)
        fp = compare(host_fp32, arm_fp32)
        rec["fp32_host_vs_arm"] = fp
        check("FP32 arm64 == x86 host", fp["max_abs_score_diff"] <= FP32_TOL and fp["top1_agreement"] + fp["ties"]
              / fp["images"] == 1.0, f"max |score diff| {fp['max_abs_score_diff']:.2g} (tolerance {FP32_TOL}), "
              f"top-1 {fp['top1_agreement']:.1%} of {fp['images']}")
        with clock.step("quantize --calib (arm)"):
            q = json.loads(arm(root, f"{edge} quantize lenet5.onnx --calib shapes/train --samples 64 --no-bench "
                                     "--format json -o lenet5.int8.onnx").stdout)
        quant = q["contract"].get("quantization") or {}
        rec["quantize"] = {"quantization": quant, "parity": q["contract"].get("parity"),
                           "float_ops": q.get("float_ops"), "notes": q.get("notes")}
        shutil.copy2(arm_dir / "lenet5.int8.onnx", work / "lenet5.int8.onnx")  # for the host's runs
        kernel, said = graph_kernel(work / "lenet5.int8.onnx"), reported_kernel(quant)
        rec["int8_kernel"] = {"graph": kernel, "contract": said}
        check("the INT8 file is s8s8 (graph zero points)", kernel == "s8s8", kernel)
        check("the contract names s8s8", said == "s8s8", json.dumps(quant.get("types"))[:200])
        gate = q["contract"].get("parity") or {}
        check("quantize's own gate passed (judged)", gate.get("passed") is True,
              f"{gate.get('agreement')} on {gate.get('images')} calibration images")
        with clock.step("infer INT8 (arm)"):
            arm_int8 = read_jsonl(arm(root, f"{edge} {infer} --model lenet5.int8.onnx").stdout)
        ag = compare(arm_fp32, arm_int8)
        rec["int8_vs_fp32_arm"] = ag
        check(f"INT8 top-1 agrees with FP32 on >= {MIN_AGREEMENT:.0%}", ag["top1_agreement"] >= MIN_AGREEMENT,
              f"{ag['top1_agreement']:.1%} of {ag['images']} val images, max |score diff| "
              f"{ag['max_abs_score_diff']:.3f}")
        with clock.step("infer INT8 (host, the arm-made file)"):
            host_int8 = read_jsonl(host([*shlex.split(infer), "--model", str(work / "lenet5.int8.onnx")], work).stdout)
        rec["int8_arm_vs_host"] = compare(arm_int8, host_int8)  # the same s8s8 graph through x86 kernels
        rec["bench"] = []
        opts = "--runs 30 --warmup 3 --format json"
        for prec, name in (("fp32", "lenet5.onnx"), ("int8", "lenet5.int8.onnx")):
            with clock.step(f"bench {prec} (arm)"):
                arm_rows = bench_rows(arm(root, f"{edge} bench {name} --precision {prec} {opts} -o bench").stdout)
            with clock.step(f"bench {prec} (host)"):
                host_rows = bench_rows(host(["bench", name, "--precision", prec, *opts.split(), "-o", "bench"],
                                            work).stdout)
            x86 = host_rows[0]["p50_ms"]
            for r in arm_rows:
                rec["bench"].append(r | {"host_p50_ms": x86})
                check(f"bench {prec} row ok on aarch64", r["status"] == "ok" and r["machine"] == "aarch64",
                      f"{r['status']}, machine {r['machine']}, p50 {r['p50_ms']} ms (x86 host {x86} ms)")
    shutil.rmtree(work, ignore_errors=True)
    rec["seconds"] = clock.steps
    rec["checks"] = checks
    rec["passed"] = all(c["ok"] for c in checks)
    return rec


def environment() -> dict:
    from edgecnn.bench.environment import capture, device_tag

    env = capture()
    return {"device_tag": device_tag(env), "cpu": env["cpu"], "isa": env["isa"], "cores": env["physical_cores"],
            "load_average_start": env["load_average"], "onnxruntime_host": env["onnxruntime"],
            "python_host": env["python"], "git_commit": env["git_commit"]}


def markdown(doc: dict) -> str:
    r, h = doc["result"], doc["host"]
    lines = [f"# edgecnn on arm64 (qemu-user, Debian {r['rootfs']['debian']}), {doc['created']}", "",
             f"Host: {h['cpu']}, {h['cores']} cores, ISA {' '.join(h['isa'])}; load average at start "
             f"{' '.join(f'{x:.1f}' for x in h['load_average_start'])}, at end "
             f"{' '.join(f'{x:.1f}' for x in doc['load_average_end'])}. {r['qemu']}.",
             f"Chroot: {r['arm']['machine']}, Python {r['arm']['python']}, glibc {r['arm']['glibc']}; rootfs "
             f"{r['rootfs']['state']}. Command: `{doc['command']}`.", "",
             f"**{'PASSED' if r['passed'] else 'FAILED'}**", "", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c['check']} | {'yes' if c['ok'] else '**no**'} | {c['detail']} |" for c in r["checks"]]
    x = r["int8_arm_vs_host"]
    lines += ["", f"The arm-made INT8 file run on the x86 host: top-1 {x['top1_agreement']:.1%} of {x['images']} "
              f"with arm's INT8, max |score diff| {x['max_abs_score_diff']:.2g}. Float ops left in the INT8 graph: "
              f"{r['quantize']['float_ops']}.", "",
              "Installed in the arm64 venv (`pip install --no-index` of the wheel, arm64 wheels from the index):", "",
              " ".join(f"`{p}`" for p in r["installed"]), "",
              "`edgecnn bench` in the chroot (30 runs, batch 1): the row says machine aarch64, but its cpu and "
              "isa are the host's (qemu-user shows the host's /proc/cpuinfo); p50 under emulation against the x86 "
              "host's says what TCG costs, nothing about an ARM CPU:", "",
              "| precision | p50 ms, qemu arm64 | p50 ms, x86 host | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {b['precision']} | {b['p50_ms']:.3f} | {b['host_p50_ms']:.4f} | "
              f"{b['p50_ms'] / b['host_p50_ms']:,.0f}x |" for b in r["bench"] if b["p50_ms"] and b["host_p50_ms"]]
    lines += ["", "Wall time per step (s): what emulation costs, "
              "not a speed of any ARM CPU:", "", "| step | s |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in r["seconds"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOTFS, help="arm64 rootfs cache folder")
    ap.add_argument("--suite", default="bookworm")
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing tools")
    ap.add_argument("--out", type=Path, default=None, help="results folder [benchmarks/results/<host>-qemu-arm64]")
    args = ap.parse_args(argv)
    from edgecnn.fileio import atomic_path

    doc = {"created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": shlex.join(["python", "benchmarks/arm64_userland.py", *(argv or sys.argv[1:])]),
           "host": environment()}
    t0 = time.perf_counter()
    try:
        doc["result"] = run(args)
    except Blocked as e:
        print(f"Error: blocked: {e}", file=sys.stderr)
        return 2
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    doc["load_average_end"] = list(os.getloadavg())
    out = args.out or ROOT / "benchmarks" / "results" / f"{doc['host']['device_tag']}-qemu-arm64"
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("arm64_userland.json", json.dumps(doc, indent=1) + "\n"),
                       ("arm64_userland.md", markdown(doc))):
        with atomic_path(out / name) as tmp:
            Path(tmp).write_text(text)
    print(f"wrote {out / 'arm64_userland.json'}, .md; {'passed' if doc['result']['passed'] else 'FAILED'} "
          f"in {doc['wall_s']:.0f} s", file=sys.stderr)
    return 0 if doc["result"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
