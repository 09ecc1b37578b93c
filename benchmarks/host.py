"""Where a benchmark's results go and how the host is named in them (shared by the scripts here).

Results of one machine kind live under ``benchmarks/results/<device-tag>/``; the tag comes from
``edgecnn.bench.environment.device_tag()`` (CPU model, physical cores, strongest ISA level), so a run on
another host writes beside, never over, what this one recorded. Every report names the CPU model and
its ISA flags.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def results_dir(tag: str | None = None) -> Path:
    """``benchmarks/results/<tag>/``, this host's tag by default."""
    from edgecnn.bench.environment import device_tag

    return RESULTS / (tag or device_tag())


def describe() -> str:
    """One line for a report: ``AMD EPYC, 2 physical cores, x86_64, ISA avx2 fma avx512f avx512_vnni ...``."""
    from edgecnn.bench.environment import capture, device_tag

    env = capture()
    return (f"{env['cpu']}, {env['physical_cores']} physical cores, {env['machine']}, "
            f"ISA {' '.join(env['isa']) or '(none of avx2/avx512/vnni/amx/neon)'}; device tag {device_tag(env)}")


def write_report(lines: list[str], name: str, out: Path | None = None) -> Path:
    """Print a Markdown report and write it to ``out`` or ``results_dir() / name``; returns the path."""
    text = "\n".join(lines) + "\n"
    print(text)
    path = out or results_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return path
