"""Latency statistics of one configuration. Torch-free, NumPy-free (plain floats in, plain floats out).

Percentiles interpolate linearly between the two nearest ranks (NumPy's default ``linear`` method,
the definition spreadsheets and ``statistics.quantiles(method="inclusive")`` use): for sorted samples
s[0..n-1], p% lies at index (n-1)*p/100. ``std`` is the sample standard deviation (n-1 in the
denominator), ``cv`` = std / mean. A CV above ``NOISY_CV`` flags the row as noisy: on a shared or
throttling machine its percentiles should not be trusted alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

NOISY_CV = 0.10
PERCENTILES = (50, 90, 99)


def percentile(sorted_samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) of already sorted samples, linear interpolation."""
    if not sorted_samples:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    pos = (len(sorted_samples) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """min, p50, p90, p99, max, mean, std, cv and n of the samples (in the samples' unit)."""
    s = sorted(samples)
    if not s:
        raise ValueError("no samples to summarize")
    mean = statistics.fmean(s)
    std = statistics.stdev(s) if len(s) > 1 else 0.0
    out = {"min": s[0], **{f"p{p}": percentile(s, p) for p in PERCENTILES}, "max": s[-1], "mean": mean,
           "std": std, "cv": std / mean if mean else 0.0, "n": len(s)}
    return out


def latency_figures(samples_ms: Sequence[float], batch: int) -> dict:
    """The figures of one row: ``latency_ms`` (summarize), ``throughput_ips`` (images/s = batch / p50)
    and ``noisy`` (cv > NOISY_CV)."""
    lat = summarize(samples_ms)
    return {"latency_ms": lat, "throughput_ips": batch * 1e3 / lat["p50"] if lat["p50"] > 0 else None,
            "noisy": lat["cv"] > NOISY_CV}
