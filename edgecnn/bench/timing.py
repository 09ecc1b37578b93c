"""Interleaved timing of several configurations on a small shared machine.

Thread pools of onnxruntime and torch keep spinning after a call and steal cores from whatever runs
next, so configurations are interleaved in blocks, not call by call: a short settle pause, a few
untimed calls, then ``block`` timed calls; the order is reshuffled every round. Compare medians and
ratios from one run.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def interleaved(configs: dict[str, Callable[[], object]], rounds: int = 5, block: int = 10, warmup: int = 2,
                settle_s: float = 0.05, seed: int = 0) -> dict[str, list[float]]:
    """Per-call wall times in milliseconds for each configuration."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {k: [] for k in configs}
    order = list(configs)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            fn = configs[name]
            time.sleep(settle_s)
            for _ in range(warmup):
                fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def summarize(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]

    mean = statistics.fmean(s)
    return {"p50": statistics.median(s), "p90": pct(90), "p99": pct(99), "min": s[0], "max": s[-1],
            "mean": mean, "cv": statistics.pstdev(s) / mean if mean else 0.0, "n": len(s)}
