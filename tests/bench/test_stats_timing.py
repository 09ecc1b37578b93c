"""Statistics against hand-computed figures; the block scheduler's counts, order, pacing and failures."""

from __future__ import annotations

import time

import pytest

from edgecnn.bench.stats import latency_figures, percentile, summarize
from edgecnn.bench.timing import interleaved, run_blocks


def test_percentiles_by_hand():
    s = [1.0, 2.0, 3.0, 4.0, 10.0]  # positions (n-1)*p/100 = 0.04*p
    assert percentile(s, 50) == 3.0
    assert percentile(s, 90) == pytest.approx(4.0 + 0.6 * 6.0)  # index 3.6: 4 + 0.6*(10-4)
    assert percentile(s, 99) == pytest.approx(4.0 + 0.96 * 6.0)
    assert percentile(s, 0) == 1.0 and percentile(s, 100) == 10.0
    assert percentile([7.0], 90) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_by_hand():
    st = summarize([4.0, 2.0, 6.0, 8.0])  # unsorted on purpose
    assert (st["min"], st["max"], st["n"]) == (2.0, 8.0, 4)
    assert st["p50"] == 5.0 and st["p90"] == pytest.approx(6.0 + 0.7 * 2.0)
    assert st["mean"] == 5.0
    assert st["std"] == pytest.approx((20 / 3) ** 0.5)  # sample std: squares 9+1+1+9 over n-1
    assert st["cv"] == pytest.approx((20 / 3) ** 0.5 / 5)


def test_throughput_and_noisy_flag():
    quiet = latency_figures([10.0, 10.0, 10.0, 10.0], batch=8)
    assert quiet["throughput_ips"] == pytest.approx(800.0) and quiet["noisy"] is False
    loud = latency_figures([10.0, 10.0, 10.0, 13.0], batch=1)  # cv = 1.5/10.75 ~ 0.14
    assert loud["noisy"] is True


def test_run_blocks_counts_and_interleaves():
    log: list[str] = []
    blocks: list[tuple[str, int]] = []
    calls = {k: (lambda k=k: log.append(k)) for k in "abc"}
    ns = run_blocks(calls, runs=25, block=10, warmup=2, settle_s=0, seed=1,
                    on_block=lambda k, n, spent: blocks.append((k, n)))
    assert {k: len(v) for k, v in ns.items()} == {"a": 25, "b": 25, "c": 25}
    assert all(t > 0 for v in ns.values() for t in v)
    assert len(log) == 75 + 2 * 9  # 3 blocks each (10, 10, 5 timed), 2 untimed calls before each
    # round-robin: every configuration once per round, 10 then 20 then 25 timed calls
    for i, n in enumerate((10, 20, 25)):
        assert sorted(blocks[3 * i:3 * i + 3]) == [("a", n), ("b", n), ("c", n)]
    # a block's calls are consecutive: 12 (or 7) calls of one configuration at a time
    pos = 0
    for k, n in blocks:
        size = 2 + (n - 20 if n == 25 else 10)
        assert log[pos:pos + size] == [k] * size
        pos += size


def test_run_blocks_min_time_and_paced():
    ns = run_blocks({"x": lambda: time.sleep(0.002)}, min_time_s=0.03, block=5, settle_s=0, block_s=0.005)
    assert sum(ns["x"]) >= 0.03e9 and len(ns["x"]) % 5 == 0 and len(ns["x"]) < 40
    starts = []
    run_blocks({"p": lambda: starts.append(time.perf_counter())}, runs=5, block=5, settle_s=0, period_s=0.02)
    # a fixed frame clock: call i starts no earlier than i periods after the first (a late call is
    # followed by an earlier one, as frames from a camera keep their rate)
    assert all(t - starts[0] >= i * 0.02 - 1e-3 for i, t in enumerate(starts))


def test_a_failing_configuration_is_dropped_and_the_others_go_on():
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] > 3:
            raise RuntimeError("device lost")

    errors = []
    ns = run_blocks({"bad": flaky, "good": lambda: None}, runs=30, block=10, warmup=0, settle_s=0,
                    on_error=lambda k, e: errors.append((k, str(e))))
    assert errors == [("bad", "device lost")] and len(ns["good"]) == 30
    with pytest.raises(RuntimeError):  # without on_error the exception is the caller's
        run_blocks({"bad": _raise}, runs=1, settle_s=0)


def _raise():
    raise RuntimeError("no handler")


def test_interleaved_keeps_its_script_api():
    t = interleaved({"a": lambda: None}, rounds=2, block=3, settle_s=0)
    assert len(t["a"]) == 6 and all(isinstance(v, float) for v in t["a"])


def test_min_time_blocks_grow_for_fast_calls():
    sizes = []
    last = {"n": 0}

    def on_block(name, n, spent):
        sizes.append(n - last["n"])
        last["n"] = n

    ns = run_blocks({"fast": lambda: None}, min_time_s=0.02, block=10, settle_s=0, block_s=0.01, on_block=on_block)
    assert sizes[0] == 10 and len(sizes) > 1 and sizes[1] > 100  # the second block lasts ~10 ms, not 10 calls
    assert sum(ns["fast"]) >= 0.02e9 and len(sizes) < 20
