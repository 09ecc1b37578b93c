"""Mutation testing of the gate and preprocessing code with mutmut, in a COPY of the working tree.

    .venv/bin/pip install mutmut                      # 3.x; not a dependency of edgecnn
    .venv/bin/python tests/mutants/run_mutmut.py detect [--max-children 2]
    .venv/bin/python tests/mutants/run_mutmut.py image parity quantize
    .venv/bin/python tests/mutants/run_mutmut.py quantize --functions '_agreement*' 'quantize__*'

Each target mutates one file against the test files that are meant to guard it (TARGETS below). The
copy gets a ``[tool.mutmut]`` section in its own pyproject.toml (the project's is untouched), mutmut
runs there (only lines the tests cover are mutated; torch-using tests run under the fork server), and
the result is written to ``tests/mutants/results/<target>.txt``: the counts and the diff of every
mutant that survived. The copy stays in /tmp/edgecnn-mutmut-<target> (``--workdir``), so a stopped
run resumes where it was (mutmut keeps each verdict); ``--fresh`` starts over from the current
tree. ``--functions`` limits a run to the mutants of some functions (mutmut's names are
``x_<function>__mutmut_<n>``); ``--rerun-survivors`` copies the target's current test files into
the run and tests only the mutants that survived (after writing tests to kill them). Slow on 2
cores (minutes to an hour per target): run it in the background; it is not part of CI. What
survived and why it is harmless is recorded in tests/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from deliberate_bugs import ROOT, copy_tree  # noqa: E402

# target: (file, test files, extra pytest arguments). The parity gate's CLI cases re-export a model per
# test (seconds each on a loaded box); its library cases see the same bugs, so mutants run those.
TARGETS = {
    "detect": ("edgecnn/runtime/detect.py", ["tests/runtime/test_nms.py", "tests/runtime/test_postprocess.py",
                                             "tests/runtime/test_detect_oracles.py"], []),
    "image": ("edgecnn/runtime/image.py", ["tests/runtime/test_image.py", "tests/runtime/test_image_oracles.py",
                                           "tests/runtime/test_image_fast.py"], []),
    "parity": ("edgecnn/export/parity.py", ["tests/export/test_parity_oracles.py",
                                            "tests/export/test_export.py::test_compare_counts_ties_apart"],
               ["-k", "not cli"]),
    "quantize": ("edgecnn/quantize.py", ["tests/export/test_int8_oracles.py", "tests/export/test_quantize.py"], []),
}
RESULTS = Path(__file__).parent / "results"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def _prepare(target: str, copy: Path) -> None:
    file, tests, extra = TARGETS[target]
    copy_tree(copy)
    with open(copy / "pyproject.toml", "a") as f:
        f.write(f"""
[tool.mutmut]
source_paths = ["edgecnn"]
only_mutate = ["{file}"]
pytest_add_cli_args = {_toml_list(["-p", "no:cacheprovider", "-m", "not slow", "-q", *extra])}
pytest_add_cli_args_test_selection = {_toml_list(tests)}
mutate_only_covered_lines = true
process_isolation = "forkserver"
use_git_change_detection = false
""")


def summarize(target: str, copy: Path, log: str = "") -> Path:
    """Counts and survivor diffs of the run in ``copy`` -> tests/mutants/results/<target>.txt."""
    file, tests, extra = TARGETS[target]
    mutmut = [sys.executable, "-m", "mutmut"]
    results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=copy, capture_output=True,
                             text=True).stdout
    counts: dict[str, int] = {}
    survivors = []
    for line in results.splitlines():
        if ":" in line:
            name, status = (part.strip() for part in line.rsplit(":", 1))
            counts[status] = counts.get(status, 0) + 1
            if status == "survived":
                survivors.append(name)
    diffs = [subprocess.run([*mutmut, "show", name], cwd=copy, capture_output=True, text=True).stdout
             for name in survivors]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{target}.txt"
    out.write_text(f"mutmut on {file} against {' '.join(tests + extra)}\n"
                   f"counts: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}\n"
                   f"run log tail:\n{log}\n\nsurvivors ({len(survivors)}):\n\n" + "\n".join(diffs))
    return out


def survivors(workdir: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results"], cwd=workdir, capture_output=True,
                         text=True).stdout
    return [line.split(":")[0].strip() for line in out.splitlines() if line.strip().endswith(": survived")]


def refresh_tests(target: str, workdir: Path) -> None:
    """The target's test files (and their helpers) as they are now in the working tree, for a rerun of
    the survivors after new tests were written."""
    for rel in {t.split("::")[0] for t in TARGETS[target][1]}:
        folder = Path(rel).parent
        for src in (ROOT / folder).glob("*.py"):
            shutil.copy2(src, workdir / folder / src.name)


def run(target: str, max_children: int, workdir: Path, fresh: bool, functions: list[str],
        rerun_survivors: bool = False) -> Path:
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    if not (workdir / "pyproject.toml").exists():
        _prepare(target, workdir)
    module = TARGETS[target][0].removesuffix(".py").replace("/", ".")
    names = [f"{module}.x_{f}" if not f.startswith(module) else f for f in functions]
    if rerun_survivors:
        refresh_tests(target, workdir)
        names = survivors(workdir)
        if not names:
            return summarize(target, workdir, "no survivors to rerun")
    r = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *names],
                       cwd=workdir, capture_output=True, text=True)
    tail = (r.stdout.strip().rsplit("\r", 1)[-1][-300:] + "\n" + r.stderr.strip()[-600:]).strip()
    return summarize(target, workdir, tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="+", choices=sorted(TARGETS))
    ap.add_argument("--max-children", type=int, default=1, help="parallel mutants (default 1: a shared 2-core box)")
    ap.add_argument("--workdir", type=Path, help="where the copy lives (default /tmp/edgecnn-mutmut-<target>)")
    ap.add_argument("--fresh", action="store_true", help="start over from the current tree")
    ap.add_argument("--functions", nargs="*", default=[], help="only these functions' mutants (globs)")
    ap.add_argument("--summarize-only", action="store_true", help="write the results of the run in --workdir")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="copy the target's current test files into the run and test only its survivors again")
    args = ap.parse_args()
    for t in args.targets:
        workdir = args.workdir or Path(f"/tmp/edgecnn-mutmut-{t}")
        out = summarize(t, workdir) if args.summarize_only else run(t, args.max_children, workdir, args.fresh,
                                                                       args.functions, args.rerun_survivors)
        print(f"{t}: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
