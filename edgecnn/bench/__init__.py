"""Latency protocol, statistics, environment capture (core: no torch)."""
