"""Which INT8 kernel path a file is quantized for: activation/weight types chosen by what the CPU has.

onnxruntime's CPU kernels (MLAS) pick their integer dot product from CPUID at run time, and the paths
differ in what they compute, not only in speed:

- ``u8s8``: uint8 activations x int8 weights. Exact on VNNI (``vpdpbusd``), AMX, ARM and SSE-only x86.
  On AVX2 and AVX-512 without VNNI MLAS uses ``vpmaddubsw``, which adds two u8 x s8 products into a
  saturating int16: 255 x 127 x 2 > 32767, so large activations against large weights are clamped.
- ``u8s8-reduce``: u8s8 with 7-bit weights (onnxruntime's ``reduce_range``): 255 x 64 x 2 fits in int16,
  so nothing saturates, at the price of half the weight resolution on every path.
- ``u8u8``: uint8 activations x uint8 weights; MLAS widens both to 16 bits (``vpmaddwd``): never saturates,
  full 8-bit weights.
- ``s8s8``: int8 x int8, the fast path on ARM (``sdot``). On x86, where onnxruntime 1.32 fuses it into
  QLinearConv, it runs the u8s8 kernels: the same numbers as u8s8, and the same saturation without VNNI
  (measured: benchmarks/results/*-qemu-haswell/int8_kernels*.md).

``choose_kernel`` is a pure function of (requested, machine, flags) so every branch can be tested on any
host; ``process_flags`` reads the flags the running process sees (CPUID, what MLAS dispatches on).
"""

from __future__ import annotations

import platform
from typing import Any

from edgecnn.errors import UsageError

KERNELS = ("u8s8", "u8s8-reduce", "u8u8", "s8s8")
CHOICES = ("auto", *KERNELS)
_TYPES = {"u8s8": ("uint8", "int8", False), "u8s8-reduce": ("uint8", "int8", True),
          "u8u8": ("uint8", "uint8", False), "s8s8": ("int8", "int8", False)}
X86 = ("x86_64", "amd64", "i386", "i686", "x86")
ARM = ("aarch64", "arm64", "armv8l", "armv7l")
# u8s8 is exact on these: the 32-bit dot products (AVX-512 VNNI, AVX-VNNI) and AMX tiles.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# The x86 path for a CPU with AVX2/AVX-512 and no VNNI. Chosen by measurement (benchmarks/int8_kernels.py,
# results/*-qemu-haswell/int8_kernels.md): u8u8 agreed with FP32 as closely as exact u8s8 did on VNNI;
# u8s8-reduce lost accuracy to its 7-bit weights (a detector's score cosine 0.92 -> 0.90, the issue-17 failure).
NO_VNNI_KERNEL = "u8u8"
# The flags numpy reads from CPUID (Linux /proc/cpuinfo spelling) that the choice depends on.
_NUMPY_NAMES = {"AVX": "avx", "AVX2": "avx2", "FMA3": "fma", "AVX512F": "avx512f", "AVX512BW": "avx512bw",
                "AVX512VL": "avx512vl", "AVX512VNNI": "avx512_vnni", "ASIMD": "asimd", "ASIMDDP": "asimddp"}


def relevant(flags: set[str]) -> list[str]:
    """The flags among ``flags`` that the kernel choice reads, sorted (what the report and contract show)."""
    keep = {"avx2", "avx512f", "avx512bw", "asimd", "asimddp", "i8mm", *VNNI_FLAGS}
    return sorted(keep & set(flags))


def saturates(machine: str, flags: set[str]) -> bool:
    """True when full-range u8s8 (and s8s8, which runs on the same kernels on x86) runs on MLAS's saturating
    vpmaddubsw kernel: x86 with AVX2 or AVX-512 and no VNNI/AMX."""
    return (machine.lower() in X86 and bool({"avx2", "avx512f"} & set(flags))
            and not set(VNNI_FLAGS) & set(flags))


def choose_kernel(requested: str, machine: str, flags: set[str]) -> dict[str, Any]:
    """The kernel path for a CPU of architecture ``machine`` (``platform.machine()``) with ``flags`` (Linux
    spelling), with the reason; ``requested`` is auto or one of ``KERNELS`` (an explicit choice wins)."""
    if requested not in CHOICES:
        raise UsageError(f"--int8-kernel must be one of {', '.join(CHOICES)}, got '{requested}'")
    machine = machine.lower()
    x86, arm = machine in X86, machine in ARM
    vnni = bool(set(VNNI_FLAGS) & set(flags))
    if requested != "auto":
        kind = requested
        why = f"{kind} as asked (--int8-kernel)"
        if kind in ("u8s8", "s8s8") and saturates(machine, flags):
            why += f"; WARNING: this CPU has no VNNI, so {kind} runs on vpmaddubsw and large products saturate"
    elif arm:
        kind, why = "s8s8", "ARM: int8 activations x int8 weights run onnxruntime's sdot/NEON kernels"
    elif x86 and vnni:
        which = "AMX" if "amx_int8" in flags else "VNNI"
        kind, why = "u8s8", f"x86 with {which}: u8s8 runs exact 32-bit dot products, onnxruntime's fast path"
    elif saturates(machine, flags):
        kind = NO_VNNI_KERNEL
        why = ("x86 with AVX2/AVX-512 but no VNNI: u8s8 would run on vpmaddubsw, which saturates; u8u8 never "
               "saturates and keeps 8-bit weights (7-bit u8s8-reduce measured less accurate)")
    elif x86:
        kind, why = "u8s8", "x86 without AVX2: onnxruntime's SSE u8s8 kernel widens to 16 bits and does not saturate"
    else:
        kind, why = "s8s8", f"{machine or 'unknown CPU'}: int8 activations x int8 weights (no x86 u8 kernels)"
    act, wts, reduce = _TYPES[kind]
    return {"kernel": kind, "requested": requested, "activations": act, "weights": wts, "reduce_range": reduce,
            "cpu": machine, "vnni": vnni, "isa": relevant(flags), "reason": why}


def process_flags(cpuinfo_flags: set[str] | None = None) -> set[str]:
    """The CPU flags this process can use, in /proc/cpuinfo's spelling. On x86 CPUID (read by numpy, as
    onnxruntime's MLAS reads it) decides: /proc/cpuinfo describes the host, which differs under an emulator
    or a VM that masks features. /proc/cpuinfo's extra flags (avx_vnni, amx_int8, which numpy does not
    report) are kept only when it agrees with CPUID on every flag both report."""
    from edgecnn.bench.environment import cpu_flags

    listed = cpu_flags() if cpuinfo_flags is None else set(cpuinfo_flags)
    seen = cpuid_flags()
    if seen is None or platform.machine().lower() not in X86:
        return listed
    known = set(_NUMPY_NAMES.values()) - {"asimd", "asimddp"}
    if (listed & known) == seen:
        return listed
    return seen


def cpuid_flags() -> set[str] | None:
    """numpy's run-time CPU features (CPUID on x86) as Linux flags; None when numpy does not expose them."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return None
    return {name for key, name in _NUMPY_NAMES.items() if features.get(key)}
