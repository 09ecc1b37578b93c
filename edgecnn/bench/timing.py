"""Interleaved timing of several configurations on a small shared machine.

Thread pools of onnxruntime and torch keep spinning after a call and steal cores from whatever runs
next, so configurations are interleaved in blocks, not call by call: a short settle pause, a few
untimed calls, then ``block`` timed calls; the order is reshuffled every round. Compare medians and
ratios from one run.

``run_blocks`` is the scheduler (``time.perf_counter_ns`` around each call, a fixed number of runs
or a minimum timed duration per configuration, paced calls, a failing configuration dropped while the
others go on); ``interleaved`` is its short form for scripts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from edgecnn.bench.stats import summarize  # noqa: F401  (scripts import it from here)


def run_blocks(calls: dict[str, Callable[[], object]], *, runs: int | None = None, min_time_s: float | None = None,
               block: int = 10, warmup: int = 2, settle_s: float = 0.05, period_s: float | None = None,
               seed: int = 0, on_error: Callable[[str, BaseException], None] | None = None,
               on_block: Callable[[str, int, int], None] | None = None, block_s: float = 0.2,
               max_block: int = 100_000) -> dict[str, list[int]]:
    """Per-call wall times in nanoseconds for each configuration.

    Stops a configuration after ``runs`` timed calls, or once its timed calls add up to ``min_time_s``
    (and it has at least one full block); give exactly one of the two. With ``min_time_s`` a block grows
    after the first one to last about ``block_s`` (at most ``max_block`` calls), so a model of a few
    microseconds is not measured in thousands of tiny blocks each paying the settle pause.
    ``period_s``: paced mode, each timed call starts one period after the previous one's start (as a
    camera delivers frames), and blocks have no untimed warm-up calls (back-to-back calls would warm the
    caches again).
    A call that raises drops its configuration: ``on_error(name, exc)`` is told and the others go on
    (without ``on_error`` the exception propagates). ``on_block(name, timed calls so far, their total ns)`` after each
    block.
    """
    if (runs is None) == (min_time_s is None):
        raise ValueError("give exactly one of runs and min_time_s")
    if block < 1 or (runs is not None and runs < 1) or (min_time_s is not None and min_time_s <= 0):
        raise ValueError("block, runs and min_time_s must be positive")
    rng = random.Random(seed)
    times: dict[str, list[int]] = {k: [] for k in calls}
    spent = dict.fromkeys(calls, 0)
    active = list(calls)
    size = dict.fromkeys(calls, block)
    min_ns = None if min_time_s is None else int(min_time_s * 1e9)

    def done(name: str) -> bool:
        if runs is not None:
            return len(times[name]) >= runs
        return spent[name] >= min_ns and len(times[name]) >= block

    while active:
        rng.shuffle(active)
        for name in list(active):
            fn = calls[name]
            n = size[name] if runs is None else min(block, runs - len(times[name]))
            try:
                time.sleep(settle_s)
                for _ in range(0 if period_s else warmup):
                    fn()
                tick = time.perf_counter_ns()
                for _ in range(n):
                    if period_s:
                        wait = tick - time.perf_counter_ns()
                        if wait > 0:
                            time.sleep(wait / 1e9)
                        tick += int(period_s * 1e9)
                    t0 = time.perf_counter_ns()
                    fn()
                    dt = time.perf_counter_ns() - t0
                    times[name].append(dt)
                    spent[name] += dt
            except Exception as e:
                if on_error is None:
                    raise
                on_error(name, e)
                active.remove(name)
                continue
            if on_block is not None:
                on_block(name, len(times[name]), spent[name])
            if runs is None and times[name]:
                mean_ns = max(spent[name] / len(times[name]), (period_s or 0) * 1e9, 1)  # paced: a period a call
                size[name] = max(block, min(max_block, int(block_s * 1e9 / mean_ns)))
            if done(name):
                active.remove(name)
    return times


def interleaved(configs: dict[str, Callable[[], object]], rounds: int = 5, block: int = 10, warmup: int = 2,
                settle_s: float = 0.05, seed: int = 0) -> dict[str, list[float]]:
    """Per-call wall times in milliseconds for each configuration: ``rounds`` blocks of ``block`` calls."""
    ns = run_blocks(configs, runs=rounds * block, block=block, warmup=warmup, settle_s=settle_s, seed=seed)
    return {k: [t / 1e6 for t in v] for k, v in ns.items()}
