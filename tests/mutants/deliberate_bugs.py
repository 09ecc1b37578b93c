"""Apply each deliberate bug to a COPY of the code and run the tests that must see it.

    .venv/bin/python tests/mutants/deliberate_bugs.py            # every bug
    .venv/bin/python tests/mutants/deliberate_bugs.py --baseline # the same tests on the unpatched copy first
    .venv/bin/python tests/mutants/deliberate_bugs.py --only int8_self_compare

Each bug is a text substitution in one file (the old text must be there exactly once, so a refactor
that moves the code makes this script fail loudly instead of testing nothing). The copy holds the
working tree's files (tracked and untracked, not ignored); the tests run with the copy first on
``sys.path``, checked before each run. Prints, per bug, the tests that failed; exits 1 if any bug
went unseen. Not part of the test suite (a run takes about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Bug:
    name: str
    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS = [
    Bug("parity_self_compare", "export parity gate compares PyTorch with itself (onnxruntime's output ignored)",
        "edgecnn/export/parity.py",
        "got = sess.run(None, {inp.name: feed})[0].astype(np.float32)",
        "sess.run(None, {inp.name: feed}); got = ref.copy()",
        ("tests/export/test_parity_oracles.py",)),
    Bug("int8_self_compare", "INT8 agreement compares the FP32 session with itself",
        "edgecnn/quantize.py",
        "b = np.concatenate([int8.run(None, {name: x[None]})[0] for x in arrays])",
        "b = np.concatenate([fp32.run(None, {name: x[None]})[0] for x in arrays])",
        ("tests/export/test_int8_oracles.py",)),
    Bug("crop_off_centre", "resize-and-center-crop window 2 pixels right and 1 down of centre",
        "edgecnn/runtime/image.py",
        "im = im.crop((left, top, left + tw, top + th))",
        "im = im.crop((left + 2, top + 1, left + 2 + tw, top + 1 + th))",
        ("tests/runtime/test_image.py", "tests/runtime/test_image_oracles.py")),
    Bug("interpolation_ignored", "the contract's interpolation ignored (always bilinear)",
        "edgecnn/runtime/image.py",
        "resample = _RESAMPLE[spec.interpolation]",
        "resample = Image.Resampling.BILINEAR",
        ("tests/runtime/test_image.py", "tests/runtime/test_image_oracles.py")),
    Bug("flips_all_ties", "every top-1 flip counted as a numerical tie",
        "edgecnn/export/parity.py",
        "tie = (a != b) & (ref[rows, a] - ref[rows, b] <= 2 * tie_rel * scale)",
        "tie = a != b",
        ("tests/export/test_parity_oracles.py",)),
    Bug("fp16_range_unchecked", "fp16 gate blind to activations beyond float16's range",
        "edgecnn/export/parity.py",
        'if report.passed and peak["value"] > FP16_MAX:',
        "if False:",
        ("tests/export/test_parity_oracles.py",)),
    Bug("int8_gate_threshold_ignored", "INT8 gate passes whatever the agreement",
        "edgecnn/quantize.py",
        'gate["passed"] = value >= opts.min_agreement',
        'gate["passed"] = True',
        ("tests/export/test_int8_oracles.py",)),
]


def copy_tree(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def _apply(copy: Path, bug: Bug) -> None:
    path = copy / bug.file
    text = path.read_text()
    if text.count(bug.old) != 1:
        raise SystemExit(f"{bug.name}: expected the text once in {bug.file}, found it {text.count(bug.old)} times; "
                         "update this script to the current code")
    path.write_text(text.replace(bug.old, bug.new))


def _run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, list[str], str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    where = subprocess.run([sys.executable, "-c", "import edgecnn; print(edgecnn.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not where.startswith(str(copy)):
        raise SystemExit(f"the copy's edgecnn is not the one imported ({where}); fix PYTHONPATH handling")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", "-rf",
                        "-m", "not slow", *tests], cwd=copy, env=env, capture_output=True, text=True)
    failed = re.findall(r"^FAILED (\S+)", r.stdout, re.M)
    summary = (r.stdout.strip().splitlines() or [""])[-1]
    return r.returncode, failed, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="run only this bug (repeatable)")
    ap.add_argument("--baseline", action="store_true", help="first run each bug's tests on the unpatched copy")
    args = ap.parse_args()
    bugs = [b for b in BUGS if not args.only or b.name in args.only]
    unseen = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-bugs-") as td:
        if args.baseline:
            base = Path(td) / "baseline"
            copy_tree(base)
            tests = tuple(sorted({t for b in bugs for t in b.tests}))
            code, failed, summary = _run_tests(base, tests)
            print(f"baseline (no bug): {summary}")
            if code != 0:
                print("  the tests fail without any bug: " + ", ".join(failed))
                return 1
        for bug in bugs:
            copy = Path(td) / bug.name
            copy_tree(copy)
            _apply(copy, bug)
            code, failed, summary = _run_tests(copy, bug.tests)
            seen = code != 0 and bool(failed)
            print(f"{'SEEN  ' if seen else 'UNSEEN'} {bug.name}: {bug.what}\n       {summary}")
            for t in failed:
                print(f"       failed: {t}")
            if not seen:
                unseen.append(bug.name)
            shutil.rmtree(copy)
    if unseen:
        print(f"{len(unseen)} bug(s) no test saw: {', '.join(unseen)}")
        return 1
    print(f"all {len(bugs)} bugs make at least one test fail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
